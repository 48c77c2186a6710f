import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { UnpackHalf as UnpackHalfFn } from '../../layers/module.js';
import { UnpackHalf } from './kernel-names.js';
import { FLAT_WORKGROUP_WGSL, flatDispatch, program } from './program.js';

/**
 * Float16-resident weights (Param.half): n half floats packed two to a float32 element, unpacked to float32 `shape`
 * for one use. pack/unpack2x16float are core WGSL, so this needs no shader-f16.
 */
export function unpackHalf(backend: WebGPUBackend, x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  const n = shape.reduce((a, b) => a * b, 1);
  if (2 * x.shape.reduce((a, b) => a * b, 1) !== n) throw new Error(`unpackHalf: ${x.shape} packed values for shape [${shape}]`);
  const code = () => `
${FLAT_WORKGROUP_WGSL}
fn main() {
  let i = flatWorkgroup() * 256u + localId.x;
  if (i >= ${n / 2}u) { return; }
  let v = unpack2x16float(bitcast<u32>(X[i]));
  result[2u * i] = v.x;
  result[2u * i + 1u] = v.y;
}`;
  return backend.runWebGPUProgram(program({
    key: `t2vUnpackHalf_${n}`, inputs: ['X'], outputShape: shape, workgroupSize: 256,
    dispatch: flatDispatch(Math.ceil(n / 2 / 256)), components: [1], outputComponent: 1, code,
  }), [x], 'float32');
}

/** A float16-resident weight's float32 values for one use (Param.unpack), through the registered kernel. */
export const unpackHalfWeight: UnpackHalfFn = (packed, shape) =>
  tf.engine().runKernel(UnpackHalf, { x: packed }, { shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
