import * as tf from '@tensorflow/tfjs';
import { Module } from '../module.js';
import { ResidualAttentionBlock } from './residual-block.js';

/** open_clip's Transformer: `resblocks.<i>`, run in order. */
export class Transformer extends Module {
  readonly resblocks: ResidualAttentionBlock[] = [];

  constructor(width: number, layers: number, heads: number, mlpWidth: number, eps: number) {
    super();
    for (let i = 0; i < layers; i++) {
      this.resblocks.push(this.child(`resblocks.${i}`, new ResidualAttentionBlock(width, heads, mlpWidth, eps)));
    }
  }

  forward(x: tf.Tensor3D, causal = true): tf.Tensor3D {
    return tf.tidy(() => {
      let h = x;
      for (const block of this.resblocks) h = block.forward(h, causal);
      return h;
    });
  }
}
