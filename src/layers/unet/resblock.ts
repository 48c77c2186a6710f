import * as tf from '@tensorflow/tfjs';
import { Module, type Param } from '../module.js';
import { Conv2d } from '../common/conv.js';
import { GroupNorm } from '../common/norm.js';
import { Linear } from '../common/linear.js';
import { replace } from '../replace.js';

/**
 * torch.nn.Conv3d with kernel (3, 1, 1) and padding (1, 0, 0): a convolution over frames only. Stored [3, 1, I, O]
 * (role conv3d_temporal) and run as a 2-D convolution over a [b, f, pixels, c] view, padded by one frame.
 */
export class TemporalConv3d extends Module {
  readonly weight: Param;
  readonly bias: Param;

  constructor(readonly inChannels: number, readonly outChannels: number) {
    super();
    this.weight = this.param('weight', [outChannels, inChannels, 3, 1, 1], 'conv3d_temporal');
    this.bias = this.param('bias', [outChannels]);
  }

  /** x [b, f, pixels, c] -> [b, f, pixels, outChannels], plus `residual` (that shape) when given. */
  forward(x: tf.Tensor4D, residual?: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.ops.conv2d(x, this.weight, 1, [[0, 0], [1, 1], [0, 0], [0, 0]],
      this.bias.tensor, residual ?? null));
  }
}

/**
 * Upstream `TemporalConvBlock_v2`: four GroupNorm -> SiLU -> (dropout) -> Conv3d(3,1,1) stages over the frames,
 * added to the input. The GroupNorms take statistics over the frames and pixels of each video together.
 */
export class TemporalConvBlock_v2 extends Module {
  readonly stages: Array<[GroupNorm, TemporalConv3d]>;

  constructor(readonly inDim: number, readonly outDim: number, groups: number) {
    super();
    this.stages = [
      [this.child('conv1.0', new GroupNorm(groups, inDim)), this.child('conv1.2', new TemporalConv3d(inDim, outDim))],
      [this.child('conv2.0', new GroupNorm(groups, outDim)), this.child('conv2.3', new TemporalConv3d(outDim, inDim))],
      [this.child('conv3.0', new GroupNorm(groups, outDim)), this.child('conv3.3', new TemporalConv3d(outDim, inDim))],
      [this.child('conv4.0', new GroupNorm(groups, outDim)), this.child('conv4.3', new TemporalConv3d(outDim, inDim))],
    ];
  }

  /** x [b, f, pixels, c] -> same shape. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    let h = x;
    // the last convolution adds the input itself; each stage frees the one before (see `replace`)
    this.stages.forEach(([norm, conv], i) => {
      h = replace(h, x, () => conv.forward(norm.forward(h, true) as tf.Tensor4D, i === this.stages.length - 1 ? x : undefined));
    });
    return h;
  }
}

/**
 * Upstream `ResBlock` as UNetSD builds it (no up/down, use_scale_shift_norm False, 1x1 skip when the width
 * changes, temporal convolution on): in_layers (GroupNorm, SiLU, conv), plus emb_layers (SiLU, Linear) of the
 * time embedding, out_layers (GroupNorm, SiLU, dropout, conv), skip, then `temopral_conv` (upstream's spelling).
 */
export class ResBlock extends Module {
  readonly inNorm: GroupNorm;
  readonly inConv: Conv2d;
  readonly embLinear: Linear;
  readonly outNorm: GroupNorm;
  readonly outConv: Conv2d;
  readonly skip: Conv2d | null;
  readonly temporal: TemporalConvBlock_v2;

  constructor(readonly channels: number, embChannels: number, readonly outChannels: number, groups: number) {
    super();
    this.inNorm = this.child('in_layers.0', new GroupNorm(groups, channels));
    this.inConv = this.child('in_layers.2', new Conv2d(channels, outChannels, 3, 1, 1));
    this.embLinear = this.child('emb_layers.1', new Linear(embChannels, outChannels));
    this.outNorm = this.child('out_layers.0', new GroupNorm(groups, outChannels));
    this.outConv = this.child('out_layers.3', new Conv2d(outChannels, outChannels, 3, 1, 1));
    this.skip = outChannels === channels ? null : this.child('skip_connection', new Conv2d(channels, outChannels, 1));
    this.temporal = this.child('temopral_conv', new TemporalConvBlock_v2(outChannels, outChannels, groups));
  }

  /**
   * x [b*f, h, w, channels] -> [b*f, h, w, outChannels]. `embSilu` is emb_layers' SiLU of the time embedding, one
   * row per video ([b, embChannels]) or one row for all (the UNet computes it once for every ResBlock).
   */
  forward(x: tf.Tensor4D, embSilu: tf.Tensor2D, batch: number): tf.Tensor4D {
    return tf.tidy(() => {
      const [n, h, w] = x.shape;
      const f = n / batch;
      // emb_layers' output and in_layers' conv bias as one bias: one row for every frame, or one per video
      const bias = this.embLinear.forward(embSilu, this.inConv.bias!.tensor.reshape([1, this.outChannels]));
      let y = tf.tidy(() => {
        const hIn = this.inNorm.forward(x, true) as tf.Tensor4D;
        if (embSilu.shape[0] === 1) return this.inConv.forward(hIn, undefined, bias.reshape([this.outChannels]));
        const perVideo = this.inConv.forward(hIn, undefined, null).reshape([batch, f * h * w, this.outChannels]);
        return tf.add(perVideo, bias.reshape([batch, 1, this.outChannels])).reshape([n, h, w, this.outChannels]) as tf.Tensor4D;
      });
      y = replace(y, x, () => this.outConv.forward(this.outNorm.forward(y, true) as tf.Tensor4D, this.skip ? this.skip.forward(x) : x));
      const video = y.reshape([batch, f, h * w, this.outChannels]) as tf.Tensor4D;
      const out = this.temporal.forward(video);
      video.dispose();
      y.dispose();
      return out.reshape([n, h, w, this.outChannels]) as tf.Tensor4D;
    });
  }
}
