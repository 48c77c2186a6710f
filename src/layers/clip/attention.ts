import * as tf from '@tensorflow/tfjs';
import { Module, type Param } from '../module.js';
import { Linear } from '../common/linear.js';

/**
 * torch.nn.MultiheadAttention as open_clip's text blocks use it (self-attention, packed q/k/v projection):
 * `in_proj_weight` [3w, w] (q, k, v rows in that order), `in_proj_bias` [3w], `out_proj`.
 */
export class MultiheadAttention extends Module {
  readonly in_proj_weight: Param;
  readonly in_proj_bias: Param;
  readonly out_proj: Linear;

  constructor(readonly embedDim: number, readonly numHeads: number) {
    super();
    this.in_proj_weight = this.param('in_proj_weight', [3 * embedDim, embedDim], 'linear');
    this.in_proj_bias = this.param('in_proj_bias', [3 * embedDim]);
    this.out_proj = this.child('out_proj', new Linear(embedDim, embedDim));
  }

  /** x [b, n, w] -> [b, n, w]. */
  forward(x: tf.Tensor3D, causal: boolean): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, n, w] = x.shape;
      const qkv = this.ops.linear(x.reshape([b * n, w]) as tf.Tensor2D, this.in_proj_weight, this.in_proj_bias.tensor);
      const [q, k, v] = tf.split(qkv, 3, 1).map((t) => t.reshape([b, n, w]) as tf.Tensor3D);
      return this.out_proj.forward(this.ops.attention(q, k, v, this.numHeads, causal)) as tf.Tensor3D;
    });
  }
}
