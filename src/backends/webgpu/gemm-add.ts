import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { routedConv2D, routedMatMul } from './matmul-f16.js';

/** `name`'s webgpu kernel (as registered now, so the tensor-core route's where it is on), then + residual. */
function thenAdd(backend: WebGPUBackend, name: string, inputs: tf.NamedTensorInfoMap, attrs: tf.NamedAttrMap,
  residual: tf.TensorInfo): tf.TensorInfo {
  const y = tf.getKernel(name, 'webgpu')!.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
  const z = tf.getKernel('Add', 'webgpu')!.kernelFunc({ inputs: { a: y, b: residual }, backend, attrs: {} }) as tf.TensorInfo;
  backend.disposeData(y.dataId);
  return z;
}

/**
 * a [m, k] x b [k, n] (+ bias [n]) + residual [m, n]: on the tensor-core route the accumulators start from the
 * residual (matMulF16StagedInfo), so the residual add of a transformer block costs no pass and no dispatch of its own;
 * elsewhere the matmul kernel, then Add.
 */
export function fusedMatMulAdd(backend: WebGPUBackend, a: tf.TensorInfo, b: tf.TensorInfo, bias: tf.TensorInfo | null,
  residual: tf.TensorInfo): tf.TensorInfo {
  return routedMatMul(backend, a, b, bias, residual)
    ?? thenAdd(backend, bias ? '_FusedMatMul' : 'BatchMatMul', bias ? { a, b, bias } : { a, b },
      { transposeA: false, transposeB: false }, residual);
}

/** conv2d (+ bias) + residual, the same way: one kernel on the tensor-core route, else FusedConv2D then Add. */
export function fusedConv2DAdd(backend: WebGPUBackend, x: tf.TensorInfo, filter: tf.TensorInfo, bias: tf.TensorInfo | null,
  residual: tf.TensorInfo, attrs: tf.NamedAttrMap): tf.TensorInfo {
  return routedConv2D(backend, x, filter, bias, residual, attrs)
    ?? thenAdd(backend, 'FusedConv2D', bias ? { x, filter, bias } : { x, filter }, attrs, residual);
}
