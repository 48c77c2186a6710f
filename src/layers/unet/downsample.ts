import * as tf from '@tensorflow/tfjs';
import { Module } from '../module.js';
import { Conv2d } from '../common/conv.js';

/** Upstream `Downsample` (use_conv, dims 2): `op`, a 3x3 convolution with stride 2 and padding 1 on each frame. */
export class Downsample extends Module {
  readonly op: Conv2d;

  constructor(readonly channels: number, outChannels = channels) {
    super();
    this.op = this.child('op', new Conv2d(channels, outChannels, 3, 2, 1));
  }

  /** x [n, h, w, c] -> [n, ceil(h/2), ceil(w/2), out]. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return this.op.forward(x);
  }
}
