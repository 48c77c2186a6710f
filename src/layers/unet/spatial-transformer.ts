import * as tf from '@tensorflow/tfjs';
import { Module } from '../module.js';
import { GroupNorm } from '../common/norm.js';
import { Linear } from '../common/linear.js';
import { BasicTransformerBlock } from './transformer-block.js';
import type { ProjectedContext } from '../ops.js';

/**
 * Upstream `SpatialTransformer` as UNetSD builds it (use_linear True, depth 1): GroupNorm (eps 1e-6), Linear
 * `proj_in`, one BasicTransformerBlock over the h*w pixels of each frame with cross-attention to the text,
 * Linear `proj_out`, residual. Upstream declares proj_out as Linear(in_channels, inner_dim), which only runs
 * when the two are equal; the config inference enforces that.
 */
export class SpatialTransformer extends Module {
  readonly norm: GroupNorm;
  readonly proj_in: Linear;
  readonly block: BasicTransformerBlock;
  readonly proj_out: Linear;
  /** This transformer's attn2 among the UNet's cross-attentions, in order: where it reads a projected context. */
  contextIndex = 0;

  constructor(readonly inChannels: number, nHeads: number, dHead: number, contextDim: number, groups: number) {
    super();
    const inner = nHeads * dHead;
    this.norm = this.child('norm', new GroupNorm(groups, inChannels, 1e-6));
    this.proj_in = this.child('proj_in', new Linear(inChannels, inner));
    this.block = this.child('transformer_blocks.0', new BasicTransformerBlock(inner, nHeads, dHead, contextDim));
    this.proj_out = this.child('proj_out', new Linear(inChannels, inner));
  }

  /** x [b*f, h, w, c]; context [b, L, contextDim] (or projected by the UNet), shared by the f frames of each video. */
  forward(x: tf.Tensor4D, context: tf.Tensor3D | ProjectedContext): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, h, w, c] = x.shape;
      let y = this.norm.forward(x).reshape([n, h * w, c]) as tf.Tensor3D;
      y = this.proj_in.forward(y) as tf.Tensor3D;
      y = this.block.forward(y, context instanceof tf.Tensor ? context : { projected: context, layer: this.contextIndex });
      return this.proj_out.forward(y, x.reshape([n, h * w, c])).reshape([n, h, w, c]) as tf.Tensor4D;
    });
  }
}
