import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { FLAT_WORKGROUP_WGSL, flatDispatch, program } from './webgpu.js';

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
  if (i >= uniforms.count) { return; }
  let r = pcg(i ^ pcg(uniforms.seed));
  result[i] = (f32(r >> 8u) * (1.0 / 16777216.0) * 2.0 - 1.0) * uniforms.scale;
}`;
  // size, seed and scale are uniforms: one pipeline serves every weight
  const prog = program({
    key: 't2vRandom', inputs: [], outputShape: shape, workgroupSize: 256,
    dispatch: flatDispatch(Math.ceil(size / 256)), components: [], outputComponent: 1, code,
  });
  prog.uniforms = 'count : u32, seed : u32, scale : f32,';
  const info = backend.runWebGPUProgram(prog, [], 'float32', [
    { type: 'uint32', data: [size] }, { type: 'uint32', data: [seed >>> 0] }, { type: 'float32', data: [scale] }]);
  return tf.engine().makeTensorFromTensorInfo(info);
}

/** float32 `x` as float16 pairs packed two to a float32 element ([n/2]: Param.half's layout), made on the GPU. */
export function gpuPackHalf(x: tf.Tensor): tf.Tensor {
  const n = x.size;
  if (n % 2 !== 0) throw new Error(`gpuPackHalf: ${n} values (an even count is needed)`);
  const backend = tf.backend() as WebGPUBackend;
  const prog = program({
    key: `t2vPackHalf_${n}`, inputs: ['X'], outputShape: [n / 2], workgroupSize: 256,
    dispatch: flatDispatch(Math.ceil(n / 2 / 256)), components: [1], outputComponent: 1, code: `
${FLAT_WORKGROUP_WGSL}
fn main() {
  let i = flatWorkgroup() * 256u + localId.x;
  if (i < ${n / 2}u) { result[i] = bitcast<f32>(pack2x16float(vec2<f32>(X[2u * i], X[2u * i + 1u]))); }
}`,
  });
  return tf.engine().makeTensorFromTensorInfo(backend.runWebGPUProgram(prog, [x], 'float32'));
}
