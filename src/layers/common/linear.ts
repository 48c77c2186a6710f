import * as tf from '@tensorflow/tfjs';
import { FusedMatMulAdd, fusedKernelFor, runFused } from '../../backends/kernels.js';
import { Module, type Param } from '../module.js';

/**
 * a [m, k] x b [k, n] (+ bias [n]) (+ residual [m, n]). On webgpu the bias is added inside the matmul kernel and the
 * residual too where the backend has FusedMatMulAdd (one dispatch instead of three); elsewhere the plain ops, in
 * that order.
 */
export function matMulBias(a: tf.Tensor2D, b: tf.Tensor2D, bias: tf.Tensor | null, residual: tf.Tensor2D | null = null): tf.Tensor2D {
  if (residual && fusedKernelFor(FusedMatMulAdd, [a, b, residual], {})) {
    return runFused<tf.Tensor2D>(FusedMatMulAdd, bias ? { a, b, bias, residual } : { a, b, residual }, {});
  }
  let y: tf.Tensor2D;
  if (bias && tf.getBackend() === 'webgpu') y = tf.fused.matMul({ a, b, bias }) as tf.Tensor2D;
  else {
    y = tf.matMul(a, b);
    if (bias) y = tf.add(y, bias);
  }
  return residual ? tf.add(y, residual) : y;
}

/** torch.nn.Linear: `weight` [out, in] (stored [in, out]), optional `bias`. Works on any leading dims. */
export class Linear extends Module {
  readonly weight: Param;
  readonly bias: Param | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, bias = true) {
    super();
    this.weight = this.param('weight', [outFeatures, inFeatures], 'linear');
    this.bias = bias ? this.param('bias', [outFeatures]) : null;
  }

  /** x [.., in] -> [.., out]; plus `residual` (the output's shape) when given, added in the same kernel on webgpu. */
  forward(x: tf.Tensor, residual?: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = x.reshape([-1, this.inFeatures]) as tf.Tensor2D;
      const r = residual ? residual.reshape([-1, this.outFeatures]) as tf.Tensor2D : null;
      return matMulBias(x2, this.weight.tensor as tf.Tensor2D, this.bias?.tensor ?? null, r).reshape([...lead, this.outFeatures]);
    });
  }
}
