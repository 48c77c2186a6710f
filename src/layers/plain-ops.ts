import * as tf from '@tensorflow/tfjs';
import type { ExplicitPadding, KeyValueWeights, Ops, ProjectedContext, QKVWeights, Weight } from './ops.js';

/** A weight operand's float32 values (a plain tensor as it is; Weight.tensor unpacks a float16-resident one). */
export function valuesOf<T extends tf.Tensor>(w: T | Weight): T {
  return w instanceof tf.Tensor ? w : w.tensor as T;
}

/** Scores above this many elements are computed in batch chunks (same numbers, bounded memory). */
const MAX_SCORE_ELEMENTS = 1 << 27;

type MatMul = (a: tf.Tensor, b: tf.Tensor, transposeA?: boolean, transposeB?: boolean) => tf.Tensor;

/**
 * Attention in tfjs ops, one batch chunk at a time when the [heads, Nq, Nk] scores of the whole batch would pass
 * MAX_SCORE_ELEMENTS. `matMul` is the matmul the scores and the weighted sum use (WebGPUOps passes its own).
 */
export function plainAttention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, heads: number, causal = false,
  matMul: MatMul = tf.matMul): tf.Tensor3D {
  const [b, nq] = q.shape;
  const chunk = Math.max(1, Math.floor(MAX_SCORE_ELEMENTS / (heads * nq * k.shape[1])));
  if (chunk >= b) return tf.tidy(() => attentionOnce(q, k, v, heads, causal, matMul));
  return tf.tidy(() => {
    const parts: tf.Tensor3D[] = [];
    for (let s = 0; s < b; s += chunk) {
      const size = Math.min(chunk, b - s);
      const part = (t: tf.Tensor3D) => t.slice([s, 0, 0], [size, -1, -1]);
      parts.push(tf.tidy(() => attentionOnce(part(q), part(k), part(v), heads, causal, matMul)));
    }
    return tf.concat(parts, 0);
  });
}

function attentionOnce(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, heads: number, causal: boolean, matMul: MatMul): tf.Tensor3D {
  const [b, nq, inner] = q.shape;
  const nk = k.shape[1];
  const d = inner / heads;
  const split = (t: tf.Tensor3D, n: number) => t.reshape([b, n, heads, d]).transpose([0, 2, 1, 3]) as tf.Tensor4D;
  let scores = tf.mul(matMul(split(q, nq), split(k, nk), false, true), 1 / Math.sqrt(d));
  if (causal) {
    const mask = tf.linalg.bandPart(tf.ones([nq, nk]), -1, 0); // lower triangle incl. diagonal
    scores = tf.add(scores, tf.mul(tf.sub(1, mask), -1e30));
  }
  const out = matMul(tf.softmax(scores, -1), split(v, nk));
  return out.transpose([0, 2, 1, 3]).reshape([b, nq, inner]) as tf.Tensor3D;
}

/** GELU with the exact (erf) form, as torch.nn.functional.gelu's default. */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
}

/**
 * Mean of [n, P, g, c] over P and c, kept as [n, 1, g, 1]. Large P is summed in two stages of about sqrt(P) values:
 * one float32 pass over the 262,144 values of a 256x256 VAE group (wasm accumulates in float32) drifted by 3e-5,
 * 20x PyTorch's own float32 error; equal chunks keep the mean of means exact.
 */
function groupMean(t: tf.Tensor4D): tf.Tensor {
  const [n, p, g, c] = t.shape;
  let m = p >= 4096 ? Math.floor(Math.sqrt(p)) : 1;
  while (m > 1 && p % m !== 0) m--;
  if (m < 16) return tf.mean(t, [1, 3], true);
  return tf.mean(tf.mean(t.reshape([n, p / m, m, g, c]), [2, 4]), 1).reshape([n, 1, g, 1]);
}

/** The context as given and each layer's to_k / to_v: every cross-attention projects its own keys and values. */
class ContextAsGiven implements ProjectedContext {
  readonly batch: number;
  readonly keys: number;
  constructor(readonly context: tf.Tensor3D, readonly layers: readonly KeyValueWeights[]) {
    [this.batch, this.keys] = context.shape;
  }
}

/** The networks' computations in tfjs ops: what cpu, wasm and tensorflow run, and the reference the others match. */
export class PlainOps implements Ops {
  readonly name: string = 'plain';

  linear(x: tf.Tensor2D, w: tf.Tensor2D | Weight, bias: tf.Tensor | null = null, residual: tf.Tensor2D | null = null): tf.Tensor2D {
    return tf.tidy(() => {
      let y: tf.Tensor2D = tf.matMul(x, valuesOf(w));
      if (bias) y = tf.add(y, bias);
      return residual ? tf.add(y, residual) : y;
    });
  }

  conv2d(x: tf.Tensor4D, filter: tf.Tensor4D | Weight, strides: number, pad: 'same' | ExplicitPadding, bias: tf.Tensor | null = null,
    residual: tf.Tensor4D | null = null): tf.Tensor4D {
    return tf.tidy(() => {
      let y = tf.conv2d(x, valuesOf(filter), strides, pad);
      if (bias) y = tf.add(y, bias);
      return residual ? tf.add(y, residual) : y;
    });
  }

  groupNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps: number, silu: boolean): tf.Tensor {
    return tf.tidy(() => {
      const shape = x.shape;
      const c = shape[shape.length - 1];
      const xg = x.reshape([shape[0], -1, groups, c / groups]) as tf.Tensor4D;
      const mean = groupMean(xg);
      const centred = tf.sub(xg, mean) as tf.Tensor4D;
      const variance = groupMean(tf.square(centred) as tf.Tensor4D);
      const y = tf.mul(centred, tf.rsqrt(tf.add(variance, eps))).reshape(shape);
      const out = tf.add(tf.mul(y, gamma), beta);
      return silu ? tf.mul(out, tf.sigmoid(out)) : out;
    });
  }

  layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      const y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, eps)));
      return tf.add(tf.mul(y, gamma), beta);
    });
  }

  concat(xs: tf.Tensor[], axis: number): tf.Tensor {
    return tf.concat(xs, axis);
  }

  rowSlice(x: tf.Tensor2D, start: number, size: number): tf.Tensor2D {
    return tf.slice(x, [start, 0], [size, x.shape[1]]);
  }

  geglu(h: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [x, gate] = tf.split(h, 2, -1);
      return tf.mul(x, gelu(gate));
    });
  }

  attention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, heads: number, causal = false): tf.Tensor3D {
    return plainAttention(q, k, v, heads, causal);
  }

  selfAttention<T extends tf.Tensor3D | tf.Tensor4D>(x: T, w: QKVWeights, heads: number): T {
    return tf.tidy(() => {
      if (x.rank === 4) {
        // attention over N in each column: the columns become the batch, and back
        const [b, n, s, c] = x.shape as [number, number, number, number];
        const rows = x.transpose([0, 2, 1, 3]).reshape([b * s, n, c]) as tf.Tensor3D;
        const y = this.selfAttention(rows, w, heads);
        return y.reshape([b, s, n, -1]).transpose([0, 2, 1, 3]) as T;
      }
      const [b, n, c] = x.shape;
      const x2 = x.reshape([b * n, c]) as tf.Tensor2D;
      const project = (wt: tf.Tensor2D | Weight) => this.linear(x2, wt).reshape([b, n, wt.shape[1]]) as tf.Tensor3D;
      return this.attention(project(w.q), project(w.k), project(w.v), heads) as T;
    });
  }

  projectContext(context: tf.Tensor3D, layers: readonly KeyValueWeights[], _packed?: () => tf.Tensor2D | Weight | null): ProjectedContext {
    return new ContextAsGiven(context, layers);
  }

  contextAttention(q: tf.Tensor3D, context: ProjectedContext, layer: number, heads: number): tf.Tensor3D {
    const c = context as ContextAsGiven;
    return tf.tidy(() => {
      const [b, keys, width] = c.context.shape;
      const ctx = c.context.reshape([b * keys, width]) as tf.Tensor2D;
      const { k, v } = c.layers[layer];
      const project = (wt: tf.Tensor2D | Weight) => this.linear(ctx, wt).reshape([b, keys, wt.shape[1]]) as tf.Tensor3D;
      return this.attention(q, project(k), project(v), heads);
    });
  }
}

export const plainOps: Ops = new PlainOps();
