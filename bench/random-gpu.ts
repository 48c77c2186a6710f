import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { FLAT_WORKGROUP_WGSL, flatDispatch, program } from '../src/backends/webgpu/program.js';

/**
 * Uniform noise in [-scale, scale) made on the GPU by a hash of the index: the full UNet's 1.4 G weights in well under
 * a second, with nothing uploaded. Elsewhere it falls back to tf.randomUniform.
 */
export function gpuRandom(shape: number[], scale: number, seed: number): tf.Tensor {
  const size = shape.reduce((a, s) => a * s, 1);
  if (tf.getBackend() !== 'webgpu') return tf.randomUniform(shape, -scale, scale, 'float32', seed);
  const backend = tf.backend() as WebGPUBackend;
  const code = `
${FLAT_WORKGROUP_WGSL}
fn pcg(v : u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}
fn main() {
  let i = flatWorkgroup() * 256u + localId.x;
  if (i >= ${size}u) { return; }
  let r = pcg(i ^ pcg(${seed >>> 0}u));
  result[i] = (f32(r >> 8u) * (1.0 / 16777216.0) * 2.0 - 1.0) * ${scale.toPrecision(9)};
}`;
  const prog = program({
    key: `t2vRandom_${size}_${seed}_${scale}`, inputs: [], outputShape: shape, workgroupSize: 256,
    dispatch: flatDispatch(Math.ceil(size / 256)), components: [], outputComponent: 1, code,
  });
  const info = backend.runWebGPUProgram(prog, [], 'float32');
  return tf.engine().makeTensorFromTensorInfo(info);
}
