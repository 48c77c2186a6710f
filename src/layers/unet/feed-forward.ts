import * as tf from '@tensorflow/tfjs';
import { Module } from '../module.js';
import { Linear } from '../common/linear.js';
import { geglu } from '../../backends/geglu.js';

/** Upstream `GEGLU`: `proj` to twice the width, split into value and gate halves, value * gelu(gate). */
export class GEGLU extends Module {
  readonly proj: Linear;

  constructor(readonly dimIn: number, readonly dimOut: number) {
    super();
    this.proj = this.child('proj', new Linear(dimIn, dimOut * 2));
  }

  forward(x: tf.Tensor): tf.Tensor {
    // value * gelu(gate) after the split; one fused kernel where the backend has it (src/backends/geglu.ts)
    return tf.tidy(() => geglu(this.proj.forward(x)));
  }
}

/**
 * Upstream `FeedForward` as BasicTransformerBlock builds it (glu=True, mult 4): `net.0` GEGLU, `net.1` dropout,
 * `net.2` Linear back to dim.
 */
export class FeedForward extends Module {
  readonly geglu: GEGLU;
  readonly out: Linear;

  constructor(readonly dim: number, mult = 4) {
    super();
    const inner = Math.floor(dim * mult);
    this.geglu = this.child('net.0', new GEGLU(dim, inner));
    this.out = this.child('net.2', new Linear(inner, dim));
  }

  /** x [.., dim] -> [.., dim], plus `residual` when given (added by the last Linear). */
  forward(x: tf.Tensor, residual?: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.out.forward(this.geglu.forward(x), residual));
  }
}
