import * as tf from '@tensorflow/tfjs';
import { Module } from '../module.js';
import { LayerNorm } from '../common/norm.js';
import { MultiheadAttention } from './attention.js';
import { Mlp } from './mlp.js';

/** open_clip's ResidualAttentionBlock (pre-LN, no layer scale): x + attn(ln_1(x)), then + mlp(ln_2(x)). */
export class ResidualAttentionBlock extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: MultiheadAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: Mlp;

  constructor(width: number, heads: number, mlpWidth: number, eps: number) {
    super();
    this.ln_1 = this.child('ln_1', new LayerNorm(width, eps));
    this.attn = this.child('attn', new MultiheadAttention(width, heads));
    this.ln_2 = this.child('ln_2', new LayerNorm(width, eps));
    this.mlp = this.child('mlp', new Mlp(width, mlpWidth));
  }

  /** x [b, n, w]; `causal` is the text tower's attn_mask. */
  forward(x: tf.Tensor3D, causal = true): tf.Tensor3D {
    return tf.tidy(() => {
      const h = tf.add(x, this.attn.forward(this.ln_1.forward(x) as tf.Tensor3D, causal));
      return tf.add(h, this.mlp.forward(this.ln_2.forward(h))) as tf.Tensor3D;
    });
  }
}
