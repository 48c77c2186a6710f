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

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = x.reshape([-1, this.inFeatures]) as tf.Tensor2D;
      let y: tf.Tensor = tf.matMul(x2, this.weight.tensor as tf.Tensor2D);
      if (this.bias) y = tf.add(y, this.bias.tensor);
      return y.reshape([...lead, this.outFeatures]);
    });
  }
}
