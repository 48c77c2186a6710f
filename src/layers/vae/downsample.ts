import * as tf from '@tensorflow/tfjs';
import { Conv2d } from '../common/conv.js';
import { Module } from '../module.js';

/**
 * Upstream Downsample: with_conv pads zero on the bottom and right only (0, 1, 0, 1), then a 3x3 stride-2 conv
 * without padding; otherwise 2x2 average pooling.
 */
export class Downsample extends Module {
  readonly conv: Conv2d | null;

  constructor(readonly in_channels: number, readonly with_conv: boolean) {
    super();
    this.conv = with_conv ? this.child('conv', new Conv2d(in_channels, in_channels, 3, 2, [0, 1, 0, 1])) : null;
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => (this.conv ? this.conv.forward(x) : tf.avgPool(x, 2, 2, 'valid')));
  }
}
