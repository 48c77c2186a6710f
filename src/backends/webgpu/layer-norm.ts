import type * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { FLAT_WORKGROUP_WGSL, flatDispatch, program, run } from './program.js';

const THREADS = 64;

export function layerNormSupported(x: tf.TensorInfo): boolean {
  const c = x.shape[x.shape.length - 1];
  return x.dtype === 'float32' && c % 4 === 0 && c > 0 && x.shape.reduce((a, s) => a * s, 1) < 2 ** 31;
}

/**
 * LayerNorm over the last dimension in one dispatch: a workgroup per row computes the mean, then the centred
 * variance (as tf.moments does), then writes (x - mean) / sqrt(var + eps) * gamma + beta.
 */
export function fusedLayerNorm(backend: WebGPUBackend, x: tf.TensorInfo, gamma: tf.TensorInfo, beta: tf.TensorInfo,
  eps: number): tf.TensorInfo {
  const c = x.shape[x.shape.length - 1];
  const rows = x.shape.reduce((a, s) => a * s, 1) / c;
  const c4 = c / 4;
  const code = () => `
const WG = ${THREADS}u;
const C4 = ${c4}u;
const ROWS = ${rows}u;
const EPS = ${eps};
var<workgroup> red : array<f32, ${THREADS}>;
${FLAT_WORKGROUP_WGSL}
fn reduceSum(v : f32) -> f32 {
  let tid = localId.x;
  red[tid] = v;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
    if (tid < stride) { red[tid] = red[tid] + red[tid + stride]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn main() {
  let tid = localId.x;
  let row = min(flatWorkgroup(), ROWS - 1u);
  let base = row * C4;
  var s = vec4<f32>(0.0);
  for (var i = tid; i < C4; i += WG) { s += X[base + i]; }
  let mean = reduceSum(s.x + s.y + s.z + s.w) / f32(C4 * 4u);
  var q = vec4<f32>(0.0);
  for (var i = tid; i < C4; i += WG) { let d = X[base + i] - mean; q = fma(d, d, q); }
  let rstd = inverseSqrt(reduceSum(q.x + q.y + q.z + q.w) / f32(C4 * 4u) + EPS);
  if (flatWorkgroup() < ROWS) {
    for (var i = tid; i < C4; i += WG) {
      let g = vec4<f32>(Gamma[4u * i], Gamma[4u * i + 1u], Gamma[4u * i + 2u], Gamma[4u * i + 3u]);
      let b = vec4<f32>(Beta[4u * i], Beta[4u * i + 1u], Beta[4u * i + 2u], Beta[4u * i + 3u]);
      result[base + i] = (X[base + i] - mean) * rstd * g + b;
    }
  }
}`;
  return run(backend, program({
    key: `t2vLayerNorm_${c}_${rows}_${eps}`,
    inputs: ['X', 'Gamma', 'Beta'],
    outputShape: x.shape,
    workgroupSize: THREADS,
    dispatch: flatDispatch(rows),
    components: [4, 1, 1],
    outputComponent: 4,
    code,
  }), [x, gamma, beta]);
}
