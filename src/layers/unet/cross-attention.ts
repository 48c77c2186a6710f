import * as tf from '@tensorflow/tfjs';
import { Module, concatWeights } from '../module.js';
import { Linear } from '../common/linear.js';
import type { KeyValueWeights, ProjectedContext, QKVWeights } from '../ops.js';

/**
 * A text context as the UNet's cross-attentions read it: projected once per call for all of them
 * (`Ops.projectContext`), and which layer this is.
 */
export interface ContextFor {
  projected: ProjectedContext;
  /** This layer's index among the UNet's cross-attentions (`CrossAttention.contextIndex`). */
  layer: number;
}

/**
 * Upstream `CrossAttention`: bias-free to_q/to_k/to_v, `to_out.0` Linear (to_out.1 is dropout), softmax scale
 * dim_head**-0.5. Self-attention when no context is given.
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
   * Self-attention: x [B, N, queryDim], or [B, N, S, queryDim] for attention over N in each of the S columns (the
   * temporal transformer's frames of each pixel, left where they lie). Cross-attention: x [B, N, queryDim] and a
   * context of batch Bc with B a multiple of Bc: query rows b*g .. b*g+g-1 all attend to context b (upstream's
   * `repeat_interleave` of the context over frames, without computing keys and values once per frame); a plain
   * context tensor [Bc, L, contextDim] or the UNet's projected one. `residual` (x's shape) is added by to_out.
   */
  forward<T extends tf.Tensor3D | tf.Tensor4D>(x: T, context?: tf.Tensor3D | ContextFor, residual?: T): T {
    return tf.tidy(() => {
      if (!context) return this.to_out.forward(this.ops.selfAttention(x, this.qkvWeights(), this.heads), residual) as T;
      if (x.rank !== 3) throw new Error('CrossAttention: a context with [B, N, S, C] input is not supported');
      const c = context instanceof tf.Tensor ? { projected: this.ops.projectContext(context, [this.keyValueWeights()], () => null), layer: 0 } : context;
      const [bq, n] = x.shape;
      const bc = c.projected.batch;
      if (bq % bc !== 0) throw new Error(`CrossAttention: query batch ${bq} is not a multiple of context batch ${bc}`);
      const q = this.to_q.forward(x).reshape([bc, (bq / bc) * n, this.innerDim]) as tf.Tensor3D;
      const out = this.ops.contextAttention(q, c.projected, c.layer, this.heads).reshape([bq, n, this.innerDim]);
      return this.to_out.forward(out, residual) as T;
    });
  }

  /** to_k and to_v's weights (what Ops.projectContext reads), read when used (a streamed weight uploads then). */
  keyValueWeights(): KeyValueWeights {
    return { k: this.to_k.weight, v: this.to_v.weight };
  }

  private qkvWeights(): QKVWeights {
    const [q, k, v] = [this.to_q.weight, this.to_k.weight, this.to_v.weight];
    return {
      inner: this.innerDim,
      q, k, v,
      // to_q|to_k|to_v side by side, made once and kept with the weights (resident weights only)
      packed: () => concatWeights([q, k, v], (kind, from, make) => this.derived(`to_qkv_${kind}`, from, make)),
    };
  }
}
