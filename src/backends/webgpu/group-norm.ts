import type * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { FusedGroupNormAttrs } from '../kernels.js';
import { FLAT_WORKGROUP_WGSL, MAX_WORKGROUPS, flatDispatch, program, run } from './program.js';

const STATS_THREADS = 256;
const APPLY_THREADS = 256;

export function groupNormSupported(x: tf.TensorInfo, groups: number): boolean {
  const c = x.shape[x.shape.length - 1];
  const n = x.shape[0];
  const size = x.shape.reduce((a, s) => a * s, 1);
  return x.dtype === 'float32' && c % 4 === 0 && c % groups === 0 && n * groups <= MAX_WORKGROUPS
    && size < 2 ** 31 && size > 0;
}

/**
 * GroupNorm over channels-last x [N, ..., C] (statistics per sample and group), optionally followed by SiLU, in
 * two passes: one workgroup per (sample, group) computes mean and 1/std (a mean pass, then a centred variance pass,
 * as accurate as tf.moments), then one elementwise pass normalizes, scales, shifts and applies SiLU in registers.
 */
export function fusedGroupNorm(backend: WebGPUBackend, x: tf.TensorInfo, gamma: tf.TensorInfo, beta: tf.TensorInfo,
  attrs: FusedGroupNormAttrs): tf.TensorInfo {
  const { groups, eps, silu } = attrs;
  const n = x.shape[0];
  const c = x.shape[x.shape.length - 1];
  const size = x.shape.reduce((a, s) => a * s, 1);
  const s = size / (n * c);
  const cg = c / groups;
  const statsCode = `
const WG = ${STATS_THREADS}u;
const C = ${c}u;
const CG = ${cg}u;
const G = ${groups}u;
const S = ${s}u;
const EPS = ${eps};
var<workgroup> red : array<f32, ${STATS_THREADS}>;
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
  let g = workgroupId.x;
  let nn = workgroupId.y;
  let total = S * CG;
  let base = nn * S * C + g * CG;
  var sum = 0.0;
  for (var e = tid; e < total; e += WG) { sum += X[base + (e / CG) * C + e % CG]; }
  let mean = reduceSum(sum) / f32(total);
  var sq = 0.0;
  for (var e = tid; e < total; e += WG) {
    let dlt = X[base + (e / CG) * C + e % CG] - mean;
    sq = fma(dlt, dlt, sq);
  }
  let variance = reduceSum(sq) / f32(total);
  if (tid == 0u) {
    result[(nn * G + g) * 2u] = mean;
    result[(nn * G + g) * 2u + 1u] = inverseSqrt(variance + EPS);
  }
}`;
  const stats = run(backend, program({
    key: `t2vGroupNormStats_${c}_${groups}_${s}_${eps}`,
    inputs: ['X'],
    outputShape: [n * groups * 2],
    workgroupSize: STATS_THREADS,
    dispatch: [groups, n, 1],
    components: [1],
    outputComponent: 1,
    code: statsCode,
  }), [x]);

  const vecs = size / 4;
  const applyCode = `
const C = ${c}u;
const CG = ${cg}u;
const G = ${groups}u;
const PER_SAMPLE = ${s * c}u;
const VECS = ${vecs}u;
${FLAT_WORKGROUP_WGSL}
fn main() {
  let i = flatWorkgroup() * ${APPLY_THREADS}u + localId.x;
  if (i >= VECS) { return; }
  let e0 = i * 4u;
  let nn = e0 / PER_SAMPLE;
  let c0 = e0 % C;
  let xv = X[i];
  var y : vec4<f32>;
  for (var k = 0u; k < 4u; k++) {
    let ch = c0 + k;
    let st = (nn * G + ch / CG) * 2u;
    y[k] = (xv[k] - Stats[st]) * Stats[st + 1u] * Gamma[ch] + Beta[ch];
  }
  ${silu ? 'y = y / (1.0 + exp(-y));' : ''}
  result[i] = y;
}`;
  const out = run(backend, program({
    key: `t2vGroupNormApply_${c}_${groups}_${s}_${vecs}_${silu}`,
    inputs: ['X', 'Stats', 'Gamma', 'Beta'],
    outputShape: x.shape,
    workgroupSize: APPLY_THREADS,
    dispatch: flatDispatch(Math.ceil(vecs / APPLY_THREADS)),
    components: [4, 1, 1, 1],
    outputComponent: 4,
    code: applyCode,
  }), [x, stats, gamma, beta]);
  backend.disposeData(stats.dataId);
  return out;
}
