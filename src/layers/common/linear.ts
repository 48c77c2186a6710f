import * as tf from '@tensorflow/tfjs';
import { Module, type Param } from '../module.js';

/** torch.nn.Linear: `weight` [out, in] (stored [in, out]), optional `bias`. Works on any leading dims. */
export class Linear extends Module {
  readonly weight: Param;
  readonly bias: Param | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = true) {
    super();
    this.weight = this.param('weight', [outFeatures, inFeatures], 'linear');
    this.bias = bias ? this.param('bias', [outFeatures]) : null;
  }

  /** x [.., in] -> [.., out], plus `residual` (the output's shape) when given; `bias` replaces the layer's. */
  forward(x: tf.Tensor, residual?: tf.Tensor, bias: tf.Tensor | null = this.bias?.tensor ?? null): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = x.reshape([-1, this.inFeatures]) as tf.Tensor2D;
      const r = residual ? residual.reshape([-1, this.outFeatures]) as tf.Tensor2D : null;
      return this.ops.linear(x2, this.weight, bias, r).reshape([...lead, this.outFeatures]);
    });
  }
}
