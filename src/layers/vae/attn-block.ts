import * as tf from '@tensorflow/tfjs';
import { Conv2d } from '../common/conv.js';
import type { GroupNorm } from '../common/norm.js';
import { Module } from '../module.js';
import type { VAEConfig } from './config.js';
import { Normalize } from './normalize.js';

/**
 * Upstream AttnBlock: single-head self-attention over the h*w pixels with 1x1-conv q, k, v and proj_out, scale
 * c^-0.5, added to the input.
 */
export class AttnBlock extends Module {
  readonly norm: GroupNorm;
  readonly q: Conv2d;
  readonly k: Conv2d;
  readonly v: Conv2d;
  readonly proj_out: Conv2d;

  constructor(readonly in_channels: number, c: VAEConfig) {
    super();
    this.norm = this.child('norm', Normalize(in_channels, c));
    this.q = this.child('q', new Conv2d(in_channels, in_channels, 1));
    this.k = this.child('k', new Conv2d(in_channels, in_channels, 1));
    this.v = this.child('v', new Conv2d(in_channels, in_channels, 1));
    this.proj_out = this.child('proj_out', new Conv2d(in_channels, in_channels, 1));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      const hn = this.norm.forward(x) as tf.Tensor4D;
      const seq = (t: tf.Tensor4D) => t.reshape([b, h * w, c]) as tf.Tensor3D;
      const a = this.ops.attention(seq(this.q.forward(hn)), seq(this.k.forward(hn)), seq(this.v.forward(hn)), 1);
      return tf.add(x, this.proj_out.forward(a.reshape([b, h, w, c]) as tf.Tensor4D));
    });
  }
}
