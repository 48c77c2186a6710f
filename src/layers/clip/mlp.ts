import * as tf from '@tensorflow/tfjs';
import { Module } from '../module.js';
import { Linear } from '../common/linear.js';

/** torch.nn.GELU() (exact, erf form): x * (1 + erf(x / sqrt 2)) / 2. */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
}

/** open_clip's block MLP: Sequential(c_fc, GELU, c_proj). */
export class Mlp extends Module {
  readonly c_fc: Linear;
  readonly c_proj: Linear;

  constructor(width: number, hidden: number) {
    super();
    this.c_fc = this.child('c_fc', new Linear(width, hidden));
    this.c_proj = this.child('c_proj', new Linear(hidden, width));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.c_proj.forward(gelu(this.c_fc.forward(x))));
  }
}
