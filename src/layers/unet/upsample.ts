import * as tf from '@tensorflow/tfjs';
import { Module } from '../module.js';
import { Conv2d } from '../common/conv.js';

/**
 * Upstream `Upsample` as UNetSD builds it (dims=2.0, so the 3-D branch is never taken): nearest-neighbour x2 in
 * height and width of each frame (frames are not upsampled), then `conv`, a 3x3 convolution.
 */
export class Upsample extends Module {
  readonly conv: Conv2d;

  constructor(readonly channels: number, outChannels = channels) {
    super();
    this.conv = this.child('conv', new Conv2d(channels, outChannels, 3, 1, 1));
  }

  /** x [n, h, w, c] -> [n, 2h, 2w, out]. */
  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [, h, w] = x.shape;
      return this.conv.forward(tf.image.resizeNearestNeighbor(x, [2 * h, 2 * w]));
    });
  }
}
