import * as tf from '@tensorflow/tfjs';
import { Module } from '../module.js';
import { Linear } from '../common/linear.js';
import { attention, attentionIsFused, contextAttention, packedAttention, packedAttentionFor } from '../common/attention.js';

/** Scores above this many elements are computed in batch chunks (same numbers, bounded memory). */
const MAX_SCORE_ELEMENTS = 1 << 27;

/**
 * The keys and values of one context for several cross-attentions, from one matmul of the context with their to_k and
 * to_v weights side by side (UNetSD does this once per call): kv [batch*keys (or more), width], each layer's k at its
 * offset and v right after.
 */
export interface ProjectedContext {
  kv: tf.Tensor2D;
  batch: number;
  keys: number;
  offsets: Map<CrossAttention, number>;
}

/**
 * Upstream `CrossAttention`: bias-free to_q/to_k/to_v, `to_out.0` Linear (to_out.1 is dropout), softmax scale
 * dim_head**-0.5 (what `attention()` uses). Self-attention when no context is given.
 */
export class CrossAttention extends Module {
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  readonly to_out: Linear;
  readonly innerDim: number;

  constructor(readonly queryDim: number, contextDim: number | null, readonly heads: number, readonly dimHead: number) {
    super();
    this.innerDim = heads * dimHead;
    const ctx = contextDim ?? queryDim;
    this.to_q = this.child('to_q', new Linear(queryDim, this.innerDim, false));
    this.to_k = this.child('to_k', new Linear(ctx, this.innerDim, false));
    this.to_v = this.child('to_v', new Linear(ctx, this.innerDim, false));
    this.to_out = this.child('to_out.0', new Linear(this.innerDim, queryDim));
  }

  /**
   * x [B, N, queryDim]; context [Bc, L, contextDim] with B a multiple of Bc: query rows b*g .. b*g+g-1 all attend
   * to context b. That is upstream's `repeat_interleave` of the context over frames, without computing keys and
   * values once per frame. `residual` (x's shape), when given, is added by to_out. The context may come projected
   * already (ProjectedContext, holding this layer's keys and values).
   *
   * x may also be [B, N, S, queryDim] (self-attention only): attention over N in each of the S columns, as the
   * temporal transformer needs for the frames of each pixel, without moving the frames next to each other.
   */
  forward<T extends tf.Tensor3D | tf.Tensor4D>(x: T, context?: tf.Tensor3D | ProjectedContext, residual?: T): T {
    if (x.rank === 4) {
      if (context) throw new Error('CrossAttention: a context with [B, N, S, C] input is not supported');
      return this.columns(x as tf.Tensor4D, residual as tf.Tensor4D | undefined) as T;
    }
    return tf.tidy(() => {
      const [bq, n] = x.shape;
      const wq = this.to_q.weight.value;
      if (!context && wq && packedAttentionFor(bq, n, this.innerDim, this.heads)) {
        // self-attention with a fused kernel: q, k and v from one matmul, read by the kernel where they lie
        const qkv = tf.matMul(x.reshape([bq * n, this.queryDim]) as tf.Tensor2D, this.qkvWeight()).reshape([bq, n, 3 * this.innerDim]);
        return this.to_out.forward(packedAttention(qkv as tf.Tensor3D, this.heads), residual) as T;
      }
      const q = this.to_q.forward(x) as tf.Tensor3D;
      const projected = context && !(context instanceof tf.Tensor) ? context : null;
      const src = (projected ? undefined : context as tf.Tensor3D | undefined) ?? (x as tf.Tensor3D);
      const bc = projected ? projected.batch : src.shape[0];
      if (bq % bc !== 0) throw new Error(`CrossAttention: query batch ${bq} is not a multiple of context batch ${bc}`);
      const qg = q.reshape([bc, (bq / bc) * n, this.innerDim]) as tf.Tensor3D;
      let grouped: tf.Tensor3D;
      if (projected) {
        const at = projected.offsets.get(this);
        if (at === undefined) throw new Error('CrossAttention: the projected context holds no keys for this layer');
        grouped = contextAttention(qg, projected.kv, projected.keys, at, this.heads);
      } else {
        grouped = this.attend(qg, this.to_k.forward(src) as tf.Tensor3D, this.to_v.forward(src) as tf.Tensor3D);
      }
      const out = grouped.reshape([bq, n, this.innerDim]);
      return this.to_out.forward(out, residual) as T;
    });
  }

  /** to_q, to_k and to_v's weights side by side, made once (kept while the weights are). */
  private qkvWeight(): tf.Tensor2D {
    const [wq, wk, wv] = [this.to_q.weight.value!, this.to_k.weight.value!, this.to_v.weight.value!];
    return this.derived('to_qkv', [wq, wk, wv], () => tf.concat([wq, wk, wv], 1)) as tf.Tensor2D;
  }

  /** x [B, N, S, queryDim]: self-attention over N in each column; the fused kernel where the backend has it. */
  private columns(x: tf.Tensor4D, residual?: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, n, s, c] = x.shape;
      if (this.to_q.weight.value && packedAttentionFor(b, n, this.innerDim, this.heads, s)) {
        const qkv = tf.matMul(x.reshape([b * n * s, c]) as tf.Tensor2D, this.qkvWeight()).reshape([b, n, s, 3 * this.innerDim]);
        return this.to_out.forward(packedAttention(qkv as tf.Tensor4D, this.heads), residual) as tf.Tensor4D;
      }
      const y = this.forward(x.transpose([0, 2, 1, 3]).reshape([b * s, n, c]) as tf.Tensor3D);
      const back = y.reshape([b, s, n, c]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
      return residual ? tf.add(back, residual) : back;
    });
  }

  private attend(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D): tf.Tensor3D {
    const [b, nq] = q.shape;
    const perItem = this.heads * nq * k.shape[1];
    const chunk = Math.max(1, Math.floor(MAX_SCORE_ELEMENTS / perItem));
    // a fused kernel holds no scores: chunks would only add slices and a concat
    if (chunk >= b || attentionIsFused(q, k, this.heads)) return attention(q, k, v, this.heads);
    const parts: tf.Tensor3D[] = [];
    for (let s = 0; s < b; s += chunk) {
      const size = Math.min(chunk, b - s);
      parts.push(tf.tidy(() => attention(
        q.slice([s, 0, 0], [size, -1, -1]), k.slice([s, 0, 0], [size, -1, -1]), v.slice([s, 0, 0], [size, -1, -1]), this.heads)));
    }
    const out = tf.concat(parts, 0);
    tf.dispose(parts);
    return out;
  }
}
