import type * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { deviceFactsOf } from './device-facts.js';
import { checkLanes, laneGroupSize, laneSum, perLane } from './lane-groups.js';
import { FLAT_WORKGROUP_WGSL, flatDispatch, program, run } from './program.js';

const THREADS = 64;

export function layerNormSupported(x: tf.TensorInfo): boolean {
  const c = x.shape[x.shape.length - 1];
  return x.dtype === 'float32' && c % 4 === 0 && c > 0 && x.shape.reduce((a, s) => a * s, 1) < 2 ** 31;
}

/** Most vec4s of a row one lane holds in registers (laneLayerNorm). */
const MAX_LANE_VECS = 32;

/**
 * LayerNorm over the last dimension in one dispatch: laneLayerNorm where the device has subgroups and a row fits its
 * lanes' registers (`lanes` pins it; 0: the workgroup kernel), else a workgroup per row that computes the mean, then
 * the centred variance (as tf.moments does), then writes (x - mean) / sqrt(var + eps) * gamma + beta.
 */
export function fusedLayerNorm(backend: WebGPUBackend, x: tf.TensorInfo, gamma: tf.TensorInfo, beta: tf.TensorInfo,
  eps: number, asked?: number): tf.TensorInfo {
  const c = x.shape[x.shape.length - 1];
  const rows = x.shape.reduce((a, s) => a * s, 1) / c;
  const c4 = c / 4;
  const lanes = asked ?? laneGroupSize(c4, deviceFactsOf(backend).subgroupMinSize);
  checkLanes(lanes, c4, 'layer norm, a row');
  if (lanes > 0 && c4 / lanes <= MAX_LANE_VECS) return laneLayerNorm(backend, x, gamma, beta, eps, rows, c, lanes);
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

/**
 * LayerNorm on a lane group of one subgroup per row (lane-groups.ts): the row in the lanes' registers (one read of
 * x), the mean and then the centred variance summed through subgroupShuffleXor; no workgroup memory, no barriers.
 */
function laneLayerNorm(backend: WebGPUBackend, x: tf.TensorInfo, gamma: tf.TensorInfo, beta: tf.TensorInfo, eps: number,
  rows: number, c: number, lanes: number): tf.TensorInfo {
  const per = c / 4 / lanes;
  const code = () => `
enable subgroups;
const ROWS = ${rows}u;
const LANES = ${lanes}u;
${FLAT_WORKGROUP_WGSL}
fn main() {
  let g = flatWorkgroup() * ${THREADS}u + localId.x;
  let lane = g % LANES;
  // a group past the last row normalizes the last one again and writes nothing (the shuffles need every lane)
  let row = min(g / LANES, ROWS - 1u);
  let base = row * ${c / 4}u + lane;
  ${perLane(per, (t) => `let x${t} = X[base + ${t * lanes}u];`)}
  var s = dot(${perLane(per, (t) => `x${t}`, ' + ')}, vec4<f32>(1.0));
  ${laneSum('s', lanes)}
  let mean = s / ${c}.0;
  ${perLane(per, (t) => `let d${t} = x${t} - mean;`)}
  var q = ${perLane(per, (t) => `dot(d${t}, d${t})`, ' + ')};
  ${laneSum('q', lanes)}
  let rstd = inverseSqrt(q / ${c}.0 + ${eps});
  if (g / LANES < ROWS) {
    ${perLane(per, (t) => `{ let i = 4u * (lane + ${t * lanes}u);
    result[base + ${t * lanes}u] = d${t} * rstd * vec4<f32>(Gamma[i], Gamma[i + 1u], Gamma[i + 2u], Gamma[i + 3u])
      + vec4<f32>(Beta[i], Beta[i + 1u], Beta[i + 2u], Beta[i + 3u]); }`)}
  }
}`;
  return run(backend, program({
    key: `t2vLayerNormLanes_${c}_${rows}_${eps}_${lanes}`,
    inputs: ['X', 'Gamma', 'Beta'],
    outputShape: x.shape,
    workgroupSize: THREADS,
    dispatch: flatDispatch(Math.ceil((rows * lanes) / THREADS)),
    components: [4, 1, 1],
    outputComponent: 4,
    code,
  }), [x, gamma, beta]);
}
