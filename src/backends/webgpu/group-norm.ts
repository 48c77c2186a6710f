import type * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { FusedGroupNormAttrs } from './kernel-names.js';
import { FLAT_WORKGROUP_WGSL, MAX_WORKGROUPS, flatDispatch, program, run } from './program.js';

const STATS_THREADS = 256;
const APPLY_THREADS = 256;
/** Values per statistics workgroup. */
const CHUNK = 4096;
/** From this many (sample, group) pairs on, one statistics workgroup per pair. */
const SPREAD = 256;

export function groupNormSupported(x: tf.TensorInfo, groups: number): boolean {
  const c = x.shape[x.shape.length - 1];
  const n = x.shape[0];
  const size = x.shape.reduce((a, s) => a * s, 1);
  return x.dtype === 'float32' && c % 4 === 0 && c % groups === 0 && n <= MAX_WORKGROUPS && groups <= MAX_WORKGROUPS
    && size < 2 ** 31 && size > 0;
}

/**
 * The row-block statistics pass of one GroupNorm: workgroups of `threads` = C/4 columns x `lanes` row lanes, each
 * workgroup `rows` rows of one sample (`chunks` blocks a sample), null where the workgroup would not fit the device.
 */
interface RowStatsPlan { threads: number; lanes: number; rows: number; chunks: number }

/** Statistics workgroups a GroupNorm aims for (a few per SM), and the most blocks a sample is cut into. */
const ROW_STATS_GROUPS = 512;
const MAX_ROW_CHUNKS = 1024;

function rowStatsPlan(n: number, s: number, c: number, groups: number,
  limits: Pick<GPUSupportedLimits, 'maxComputeInvocationsPerWorkgroup' | 'maxComputeWorkgroupSizeX' | 'maxComputeWorkgroupStorageSize'>): RowStatsPlan | null {
  const c4 = c / 4;
  const lanes = Math.max(1, Math.floor(STATS_THREADS / c4));
  const threads = c4 * lanes;
  if (threads > limits.maxComputeInvocationsPerWorkgroup || threads > limits.maxComputeWorkgroupSizeX
    // workgroup memory: a vec4 mean, a vec4 M2 and a count per thread
    || 36 * threads > limits.maxComputeWorkgroupStorageSize || groups > threads) return null;
  const want = Math.min(s, MAX_ROW_CHUNKS, Math.ceil(ROW_STATS_GROUPS / n));
  // at least four rows a lane where the sample has them
  const rows = Math.min(s, Math.max(Math.ceil(s / want), 4 * lanes));
  return { threads, lanes, rows, chunks: Math.ceil(s / rows) };
}

/**
 * GroupNorm over channels-last x [N, ..., C] (statistics per sample and group), optionally followed by SiLU, in up
 * to three dispatches: statistics per block of rows (rowStats: every group of a block at once, the rows read as
 * whole vec4 rows; or, where that workgroup does not fit or `rowStats` is false, the older pass that reads one
 * group's values of a chunk twice, for its mean and then its centred sum of squares), the blocks' partial
 * statistics merged by Chan's formula (one thread per sample and group, skipped where a sample is one block), and
 * one elementwise pass that normalizes, scales, shifts and applies SiLU in registers.
 */
export function fusedGroupNorm(backend: WebGPUBackend, x: tf.TensorInfo, gamma: tf.TensorInfo, beta: tf.TensorInfo,
  attrs: FusedGroupNormAttrs): tf.TensorInfo {
  const { groups, eps, silu } = attrs;
  const n = x.shape[0];
  const c = x.shape[x.shape.length - 1];
  const size = x.shape.reduce((a, s) => a * s, 1);
  const s = size / (n * c);
  const cg = c / groups;
  const total = s * cg;
  const plan = attrs.rowStats === false ? null : rowStatsPlan(n, s, c, groups, backend.device.limits);
  // each partial's values: blocks of `chunk` values of a group (its rows x CG channels), the last one shorter
  let chunks: number;
  let chunk: number;
  let partials: tf.TensorInfo;
  if (plan) {
    ({ chunks } = plan);
    chunk = plan.rows * cg;
    partials = rowStats(backend, x, n, s, c, groups, plan);
  } else {
    // statistics in chunks so that even one video (N = 1, 32 groups of 160 k values) spreads over the GPU; with
    // enough (sample, group) pairs to fill it (frames as samples) one chunk each
    chunks = n * groups >= SPREAD ? 1 : Math.max(1, Math.min(64, Math.ceil(total / CHUNK)));
    chunk = Math.ceil(total / chunks);
    partials = groupStats(backend, x, n, s, c, groups, chunks, chunk);
  }
  const stats = chunks > 1 ? mergeStats(backend, partials, n * groups, chunks, chunk, total) : partials;
  if (stats !== partials) backend.disposeData(partials.dataId);
  const vecs = size / 4;
  const applyCode = () => `
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
    let st0 = (nn * G + ch / CG) * 2u;
    y[k] = (xv[k] - Stats[st0]) * inverseSqrt(Stats[st0 + 1u] / ${total}.0 + ${eps}) * Gamma[ch] + Beta[ch];
  }
  ${silu ? 'y = y / (1.0 + exp(-y));' : ''}
  result[i] = y;
}`;
  const out = run(backend, program({
    key: `t2vGroupNormApply_${c}_${groups}_${s}_${vecs}_${silu}_${eps}`,
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

/**
 * Per block of `plan.rows` rows of a sample: every channel's count, mean and centred sum of squares from its
 * threads' sums around a pivot (the block's first value of that channel, so no cancellation unless a channel's
 * mean lies far from its own values), merged over the row lanes and then over each group's channels (Chan's
 * formula, equal counts): [n, groups, chunks, 2] of (mean, M2).
 */
function rowStats(backend: WebGPUBackend, x: tf.TensorInfo, n: number, s: number, c: number, groups: number,
  plan: RowStatsPlan): tf.TensorInfo {
  const { threads, lanes, rows, chunks } = plan;
  const c4 = c / 4;
  const cg = c / groups;
  const code = () => `
const C4 = ${c4}u;
const RL = ${lanes}u;
const S = ${s}u;
const ROWS = ${rows}u;
const G = ${groups}u;
const CG = ${cg}u;
const K = ${chunks}u;
var<workgroup> wMean : array<vec4<f32>, ${threads}>;
var<workgroup> wM2 : array<vec4<f32>, ${threads}>;
var<workgroup> wCnt : array<f32, ${threads}>;
fn main() {
  let tid = localId.x;
  let col = tid % C4;
  let rl = tid / C4;
  let k = workgroupId.x;
  let nn = workgroupId.y;
  let r0 = k * ROWS;
  let r1 = min(S, r0 + ROWS);
  let base = nn * S * C4 + col;
  let pivot = X[base + r0 * C4];
  var s1 = vec4<f32>(0.0);
  var s2 = vec4<f32>(0.0);
  var cnt = 0.0;
  for (var r = r0 + rl; r < r1; r += RL) {
    let d = X[base + r * C4] - pivot;
    s1 += d;
    s2 = fma(d, d, s2);
    cnt += 1.0;
  }
  let inv = 1.0 / max(cnt, 1.0);
  wMean[tid] = pivot + s1 * inv;
  wM2[tid] = max(s2 - s1 * s1 * inv, vec4<f32>(0.0));
  wCnt[tid] = cnt;
  workgroupBarrier();
  if (rl == 0u) {
    var na = wCnt[col];
    var mean = wMean[col];
    var m2 = wM2[col];
    for (var j = 1u; j < RL; j++) {
      let nb = wCnt[col + j * C4];
      if (nb > 0.0) {
        let nab = na + nb;
        let delta = wMean[col + j * C4] - mean;
        mean += delta * (nb / nab);
        m2 += wM2[col + j * C4] + delta * delta * (na * nb / nab);
        na = nab;
      }
    }
    wMean[col] = mean;
    wM2[col] = m2;
  }
  workgroupBarrier();
  let per = f32(r1 - r0);
  for (var g = tid; g < G; g += ${threads}u) {
    var msum = 0.0;
    for (var ch = g * CG; ch < (g + 1u) * CG; ch++) { msum += wMean[ch / 4u][ch % 4u]; }
    let mg = msum / ${cg}.0;
    var m2 = 0.0;
    for (var ch = g * CG; ch < (g + 1u) * CG; ch++) {
      let dm = wMean[ch / 4u][ch % 4u] - mg;
      m2 += wM2[ch / 4u][ch % 4u] + per * dm * dm;
    }
    let o = ((nn * G + g) * K + k) * 2u;
    result[o] = mg;
    result[o + 1u] = m2;
  }
}`;
  return run(backend, program({
    key: `t2vGroupNormRowStats_${c}_${groups}_${s}_${n}_${threads}_${rows}`,
    inputs: ['X'],
    outputShape: [n * groups * chunks * 2],
    workgroupSize: threads,
    dispatch: [chunks, n, 1],
    components: [4],
    outputComponent: 1,
    code,
  }), [x]);
}

/** One group's values of a chunk per workgroup, read twice (mean, then centred sum of squares): [n, groups, chunks, 2]. */
function groupStats(backend: WebGPUBackend, x: tf.TensorInfo, n: number, s: number, c: number, groups: number,
  chunks: number, chunk: number): tf.TensorInfo {
  const cg = c / groups;
  const code = () => `
const WG = ${STATS_THREADS}u;
const C = ${c}u;
const CG = ${cg}u;
const S = ${s}u;
const TOTAL = ${s * cg}u;
const CHUNK = ${chunk}u;
const K = ${chunks}u;
const G = ${groups}u;
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
  let k = workgroupId.x;
  let g = workgroupId.y;
  let nn = workgroupId.z;
  let base = nn * S * C + g * CG;
  let e0 = k * CHUNK;
  let e1 = min(TOTAL, e0 + CHUNK);
  var sum = 0.0;
  for (var e = e0 + tid; e < e1; e += WG) { sum += X[base + (e / CG) * C + e % CG]; }
  let mean = reduceSum(sum) / f32(e1 - e0);
  var sq = 0.0;
  for (var e = e0 + tid; e < e1; e += WG) {
    let dlt = X[base + (e / CG) * C + e % CG] - mean;
    sq = fma(dlt, dlt, sq);
  }
  let m2 = reduceSum(sq);
  if (tid == 0u) {
    let o = ((nn * G + g) * K + k) * 2u;
    result[o] = mean;
    result[o + 1u] = m2;
  }
}`;
  return run(backend, program({
    key: `t2vGroupNormPartial_${c}_${groups}_${s}_${chunks}`,
    inputs: ['X'],
    outputShape: [n * groups * chunks * 2],
    workgroupSize: STATS_THREADS,
    dispatch: [chunks, groups, n],
    components: [1],
    outputComponent: 1,
    code,
  }), [x]);
}

/** Each (sample, group)'s `chunks` partial statistics merged in order (Chan's formula): [pairs, 2] of (mean, M2). */
function mergeStats(backend: WebGPUBackend, partials: tf.TensorInfo, pairs: number, chunks: number, chunk: number,
  total: number): tf.TensorInfo {
  const code = () => `
const K = ${chunks}u;
const CHUNK = ${chunk}u;
const TOTAL = ${total}u;
${FLAT_WORKGROUP_WGSL}
fn main() {
  let i = flatWorkgroup() * 64u + localId.x;
  if (i >= ${pairs}u) { return; }
  var cnt = 0.0;
  var mean = 0.0;
  var m2 = 0.0;
  for (var k = 0u; k < K; k++) {
    let nb = f32(min(TOTAL, (k + 1u) * CHUNK) - k * CHUNK);
    let mb = P[(i * K + k) * 2u];
    let qb = P[(i * K + k) * 2u + 1u];
    let nab = cnt + nb;
    let delta = mb - mean;
    mean += delta * (nb / nab);
    m2 += qb + delta * delta * (cnt * nb / nab);
    cnt = nab;
  }
  result[i * 2u] = mean;
  result[i * 2u + 1u] = m2;
}`;
  return run(backend, program({
    key: `t2vGroupNormMerge_${pairs}_${chunks}_${chunk}_${total}`,
    inputs: ['P'],
    outputShape: [pairs * 2],
    workgroupSize: 64,
    dispatch: flatDispatch(Math.ceil(pairs / 64)),
    components: [1],
    outputComponent: 1,
    code,
  }), [partials]);
}
