import * as tf from '@tensorflow/tfjs';
import { Conv2d } from '../common/conv.js';
import { Module } from '../module.js';

/** Upstream Upsample: nearest-neighbour x2 (output pixel i takes input i // 2), then a 3x3 conv if with_conv. */
export class Upsample extends Module {
  readonly conv: Conv2d | null;

  constructor(readonly in_channels: number, readonly with_conv: boolean) {
    super();
    this.conv = with_conv ? this.child('conv', new Conv2d(in_channels, in_channels, 3, 1, 1)) : null;
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [, h, w] = x.shape;
      const up = tf.image.resizeNearestNeighbor(x, [2 * h, 2 * w]);
      return this.conv ? this.conv.forward(up) : up;
    });
  }
}
