import * as tf from '@tensorflow/tfjs';
import { Module, type Param } from '../module.js';
import { GroupNorm } from '../common/norm.js';
import { BasicTransformerBlock } from './transformer-block.js';

/** torch.nn.Conv1d with kernel size 1 (upstream TemporalTransformer's proj_in/proj_out): a per-position Linear. */
export class PointwiseConv1d extends Module {
  readonly weight: Param;
  readonly bias: Param;

  constructor(readonly inChannels: number, readonly outChannels: number) {
    super();
    this.weight = this.param('weight', [outChannels, inChannels, 1], 'conv1d');
    this.bias = this.param('bias', [outChannels]);
  }

  /** x [..., inChannels] -> [..., outChannels], plus `residual` (that shape) when given. */
  forward(x: tf.Tensor, residual?: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const r = residual ? residual.reshape([-1, this.outChannels]) as tf.Tensor2D : null;
      return this.ops.linear(x.reshape([-1, this.inChannels]) as tf.Tensor2D, this.weight.as([this.inChannels, this.outChannels]), this.bias.tensor, r).reshape([...lead, this.outChannels]);
    });
  }
}

/**
 * Upstream `TemporalTransformer` as UNetSD builds it (only_self_att, use_linear False, depth 1, no
 * multiply_zero): GroupNorm (eps 1e-6) over each video's frames and pixels, Conv1d `proj_in`, one
 * BasicTransformerBlock whose attn1 and attn2 both attend across the frames of each pixel, Conv1d `proj_out`,
 * residual. The text context is not used.
 */
export class TemporalTransformer extends Module {
  readonly norm: GroupNorm;
  readonly proj_in: PointwiseConv1d;
  readonly block: BasicTransformerBlock;
  readonly proj_out: PointwiseConv1d;

  constructor(readonly inChannels: number, nHeads: number, dHead: number, groups: number) {
    super();
    const inner = nHeads * dHead;
    this.norm = this.child('norm', new GroupNorm(groups, inChannels, 1e-6));
    this.proj_in = this.child('proj_in', new PointwiseConv1d(inChannels, inner));
    this.block = this.child('transformer_blocks.0', new BasicTransformerBlock(inner, nHeads, dHead, null));
    this.proj_out = this.child('proj_out', new PointwiseConv1d(inner, inChannels));
  }

  /**
   * x [b*f, h, w, c] (frames of each video consecutive) -> same shape. The transformer sees [b, f, h*w, c] and
   * attends over the frames of each pixel in place (upstream moves them together, `b c f h w -> (b h w) f c`; every
   * other layer here works row by row, so the order of the rows does not matter to it).
   */
  forward(x: tf.Tensor4D, batch: number): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, h, w, c] = x.shape;
      const video = x.reshape([batch, n / batch, h * w, c]) as tf.Tensor4D;
      let y = this.norm.forward(video) as tf.Tensor4D;
      y = this.proj_in.forward(y) as tf.Tensor4D;
      y = this.block.forward(y);
      return this.proj_out.forward(y, video).reshape([n, h, w, c]) as tf.Tensor4D;
    });
  }
}
