import * as tf from '@tensorflow/tfjs';
import { Module } from '../module.js';
import { LayerNorm } from '../common/norm.js';
import { CrossAttention, type ContextFor } from './cross-attention.js';
import { FeedForward } from './feed-forward.js';

/**
 * Upstream `BasicTransformerBlock` (disable_self_attn False, gated FF): pre-LayerNorm self-attention `attn1`,
 * cross-attention `attn2` (self-attention too when built without a context width), GEGLU feed-forward `ff`,
 * each added to the residual. Declared in upstream's order.
 */
export class BasicTransformerBlock extends Module {
  readonly attn1: CrossAttention;
  readonly ff: FeedForward;
  readonly attn2: CrossAttention;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly norm3: LayerNorm;

  constructor(readonly dim: number, heads: number, dimHead: number, contextDim: number | null) {
    super();
    this.attn1 = this.child('attn1', new CrossAttention(dim, null, heads, dimHead));
    this.ff = this.child('ff', new FeedForward(dim));
    this.attn2 = this.child('attn2', new CrossAttention(dim, contextDim, heads, dimHead));
    this.norm1 = this.child('norm1', new LayerNorm(dim));
    this.norm2 = this.child('norm2', new LayerNorm(dim));
    this.norm3 = this.child('norm3', new LayerNorm(dim));
  }

  /**
   * x [B, N, dim], or [B, N, S, dim] for attention over N in each of the S columns (both attentions self-attention
   * then); context as CrossAttention takes it, or none for self-attention in attn2.
   */
  forward<T extends tf.Tensor3D | tf.Tensor4D>(x: T, context?: tf.Tensor3D | ContextFor): T {
    return tf.tidy(() => {
      // each sub-layer's last Linear adds the residual
      let h = this.attn1.forward(this.norm1.forward(x) as T, undefined, x);
      h = this.attn2.forward(this.norm2.forward(h) as T, context, h);
      return this.ff.forward(this.norm3.forward(h), h) as T;
    });
  }
}
