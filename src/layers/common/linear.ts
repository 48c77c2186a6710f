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
      const w = this.weight.tensor as tf.Tensor2D;
      let y: tf.Tensor;
      // webgpu adds the bias inside the matmul kernel (one dispatch less per layer); elsewhere the plain ops
      if (this.bias && tf.getBackend() === 'webgpu') y = tf.fused.matMul({ a: x2, b: w, bias: this.bias.tensor });
      else {
        y = tf.matMul(x2, w);
        if (this.bias) y = tf.add(y, this.bias.tensor);
      }
      return y.reshape([...lead, this.outFeatures]);
    });
  }
}
