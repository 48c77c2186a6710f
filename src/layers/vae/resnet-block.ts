import * as tf from '@tensorflow/tfjs';
import { Conv2d } from '../common/conv.js';
import type { GroupNorm } from '../common/norm.js';
import { Module } from '../module.js';
import type { VAEConfig } from './config.js';
import { Normalize } from './normalize.js';

/**
 * Upstream ResnetBlock as the autoencoder builds it: no timestep embedding (temb_channels 0), dropout a no-op in
 * eval, and a 1x1 `nin_shortcut` when the channel count changes (Encoder and Decoder never ask for conv_shortcut).
 */
export class ResnetBlock extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly nin_shortcut: Conv2d | null;

  constructor(readonly in_channels: number, readonly out_channels: number, c: VAEConfig) {
    super();
    this.norm1 = this.child('norm1', Normalize(in_channels, c));
    this.conv1 = this.child('conv1', new Conv2d(in_channels, out_channels, 3, 1, 1));
    this.norm2 = this.child('norm2', Normalize(out_channels, c));
    this.conv2 = this.child('conv2', new Conv2d(out_channels, out_channels, 3, 1, 1));
    this.nin_shortcut = in_channels !== out_channels
      ? this.child('nin_shortcut', new Conv2d(in_channels, out_channels, 1, 1, 0))
      : null;
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.conv1.forward(this.norm1.forward(x, true) as tf.Tensor4D);
      h = this.conv2.forward(this.norm2.forward(h, true) as tf.Tensor4D);
      const skip = this.nin_shortcut ? this.nin_shortcut.forward(x) : x;
      return tf.add(skip, h);
    });
  }
}
