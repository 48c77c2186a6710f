import type * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { FLAT_WORKGROUP_WGSL, flatDispatch, program, run } from './program.js';

const THREADS = 256;

export function gegluSupported(h: tf.TensorInfo): boolean {
  const last = h.shape[h.shape.length - 1];
  return h.dtype === 'float32' && last % 8 === 0 && h.shape.reduce((a, s) => a * s, 1) < 2 ** 31;
}

/**
 * h [..., 2*inner] -> h[..., :inner] * gelu(h[..., inner:]) in one pass. erf is the Abramowitz-Stegun 7.1.26 form
 * with the constants tfjs's own erf uses, so this matches the plain-op path to float rounding.
 */
export function fusedGEGLU(backend: WebGPUBackend, h: tf.TensorInfo): tf.TensorInfo {
  const last = h.shape[h.shape.length - 1];
  const inner4 = last / 8;
  const vecs = (h.shape.reduce((a, s) => a * s, 1) / last) * inner4;
  const code = () => `
const INNER4 = ${inner4}u;
const VECS = ${vecs}u;
${FLAT_WORKGROUP_WGSL}
fn erfv(x : vec4<f32>) -> vec4<f32> {
  let a = abs(x);
  let t = 1.0 / fma(vec4<f32>(0.3275911), a, vec4<f32>(1.0));
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign(x) * (1.0 - poly * exp(-a * a));
}
fn main() {
  let i = flatWorkgroup() * ${THREADS}u + localId.x;
  if (i >= VECS) { return; }
  let row = i / INNER4;
  let col = i % INNER4;
  let x = H[row * 2u * INNER4 + col];
  let gate = H[row * 2u * INNER4 + INNER4 + col];
  result[i] = x * (0.5 * gate * (1.0 + erfv(gate * 0.70710678118654752)));
}`;
  return run(backend, program({
    key: `t2vGEGLU_${inner4}_${vecs}`,
    inputs: ['H'],
    outputShape: [...h.shape.slice(0, -1), last / 2],
    workgroupSize: THREADS,
    dispatch: flatDispatch(Math.ceil(vecs / THREADS)),
    components: [4],
    outputComponent: 4,
    code,
  }), [h]);
}
