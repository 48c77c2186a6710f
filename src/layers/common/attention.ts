import * as tf from '@tensorflow/tfjs';
import {
  FusedAttention, FusedContextAttention, FusedPackedAttention, fusedKernelFor, hasFusedKernel, runFused,
} from '../../backends/kernels.js';

/**
 * Multi-head scaled dot-product attention, the one place every network's attention goes through, so a backend
 * can register a fused kernel here (issue 5) while the others keep these plain ops.
 * q [B, Nq, heads*d], k and v [B, Nk, heads*d] -> [B, Nq, heads*d]. `causal` masks keys after the query position.
 */
export function attention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, heads: number, causal = false): tf.Tensor3D {
  const attrs = { heads, causal };
  if (fusedKernelFor(FusedAttention, [q, k, v], attrs)) return runFused(FusedAttention, { q, k, v }, attrs);
  return tf.tidy(() => {
    const [b, nq, inner] = q.shape;
    const nk = k.shape[1];
    const d = inner / heads;
    const split = (t: tf.Tensor3D, n: number) => t.reshape([b, n, heads, d]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
    const qh = split(q, nq);
    const kh = split(k, nk);
    const vh = split(v, nk);
    let scores = tf.mul(tf.matMul(qh, kh, false, true), 1 / Math.sqrt(d));
    if (causal) {
      const mask = tf.linalg.bandPart(tf.ones([nq, nk]), -1, 0); // lower triangle incl. diagonal
      scores = tf.add(scores, tf.mul(tf.sub(1, mask), -1e30));
    }
    const out = tf.matMul(tf.softmax(scores, -1), vh);
    return out.transpose([0, 2, 1, 3]).reshape([b, nq, inner]) as tf.Tensor3D;
  });
}

/** True when the active backend has a fused attention kernel for these shapes (no [n, n] scores in memory). */
export function attentionIsFused(q: tf.Tensor3D, k: tf.Tensor3D, heads: number): boolean {
  return fusedKernelFor(FusedAttention, [q, k], { heads, causal: false });
}

/**
 * Self-attention on q, k and v side by side in one tensor qkv [B, N, 3*heads*d] (what one matmul with to_q, to_k
 * and to_v's weights concatenated gives), or [B, N, S, 3*heads*d] for attention over N in each of the S columns. Only
 * the fused kernel reads that layout; `packedAttentionFor` says whether the active backend has it, and callers keep
 * separate q, k and v otherwise.
 */
export function packedAttention<T extends tf.Tensor3D | tf.Tensor4D>(qkv: T, heads: number, causal = false): T {
  return runFused(FusedPackedAttention, { qkv }, { heads, causal });
}

/**
 * Whether packedAttention runs for a qkv of [b, n, 3*inner] (or [b, n, columns, 3*inner]) on the active backend
 * (asked before computing qkv).
 */
export function packedAttentionFor(b: number, n: number, inner: number, heads: number, columns = 0): boolean {
  const shape = columns > 0 ? [b, n, columns, 3 * inner] : [b, n, 3 * inner];
  const shapeOnly = { shape, dtype: 'float32' } as unknown as tf.Tensor;
  return fusedKernelFor(FusedPackedAttention, [shapeOnly], { heads, causal: false });
}

/**
 * Attention of q [B, Nq, heads*d] to keys and values in kv [rows, width]: row b*keys + j holds batch b's key j at
 * columns offset .. offset+heads*d and its value right after (every cross-attention's to_k|to_v of one context, from
 * one matmul). The fused kernel reads them where they lie; other backends slice.
 */
export function contextAttention(q: tf.Tensor3D, kv: tf.Tensor2D, keys: number, offset: number, heads: number): tf.Tensor3D {
  const attrs = { heads, keys, offset };
  if (fusedKernelFor(FusedContextAttention, [q, kv], attrs)) return runFused(FusedContextAttention, { q, kv }, attrs);
  return tf.tidy(() => {
    const [b, , inner] = q.shape;
    const part = (at: number) => kv.slice([0, at], [b * keys, inner]).reshape([b, keys, inner]) as tf.Tensor3D;
    return attention(q, part(offset), part(offset + inner), heads);
  });
}

/** Whether the active backend reads keys and values for contextAttention in place (else slicing them is no gain). */
export function contextAttentionIsFused(): boolean {
  return hasFusedKernel(FusedContextAttention);
}
