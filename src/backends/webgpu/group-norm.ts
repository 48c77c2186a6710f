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
 * GroupNorm over channels-last x [N, ..., C] (statistics per sample and group), optionally followed by SiLU:
 * chunked statistics (each chunk a mean pass then a centred variance pass, as accurate as tf.moments), then one
 * elementwise pass that merges the chunks of its sample's groups, normalizes, scales, shifts and applies SiLU in
 * registers: two dispatches.
 */
export function fusedGroupNorm(backend: WebGPUBackend, x: tf.TensorInfo, gamma: tf.TensorInfo, beta: tf.TensorInfo,
  attrs: FusedGroupNormAttrs): tf.TensorInfo {
  const { groups, eps, silu } = attrs;
  const n = x.shape[0];
  const c = x.shape[x.shape.length - 1];
  const size = x.shape.reduce((a, s) => a * s, 1);
  const s = size / (n * c);
  const cg = c / groups;
  // statistics in two steps so that even one video (N = 1, 32 groups of 160 k values) spreads over the GPU:
  // K chunks per (sample, group) give a count, mean and centred sum of squares each, merged by Chan's formula
  const total = s * cg;
  // with enough (sample, group) pairs to fill the GPU (frames as samples) one chunk each: the partial pass then
  // holds the final statistics
  // (apply workgroups merge the chunks of their own sample: a sample must fill whole apply workgroups)
  const chunks = n * groups >= SPREAD || (s * c) % (APPLY_THREADS * 4) !== 0 ? 1
    : Math.max(1, Math.min(64, Math.ceil(total / CHUNK)));
  const chunk = Math.ceil(total / chunks);
  const partialCode = () => `
const WG = ${STATS_THREADS}u;
const C = ${c}u;
const CG = ${cg}u;
const S = ${s}u;
const TOTAL = ${total}u;
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
  const partials = run(backend, program({
    key: `t2vGroupNormPartial_${c}_${groups}_${s}_${chunks}`,
    inputs: ['X'],
    outputShape: [n * groups * chunks * 2],
    workgroupSize: STATS_THREADS,
    dispatch: [chunks, groups, n],
    components: [1],
    outputComponent: 1,
    code: partialCode,
  }), [x]);
  const vecs = size / 4;
  // with several chunks, every apply workgroup first merges its sample's partials (Chan's formula) into
  // workgroup memory: no combine pass of its own, one dispatch less per GroupNorm
  const merged = chunks > 1;
  // and, so that this merge is not repeated for every 1024 values, each such workgroup covers up to 16 times more
  const iters = merged ? [16, 8, 4, 2, 1].find((r) => (s * c) % (APPLY_THREADS * 4 * r) === 0)! : 1;
  const applyCode = () => `
const C = ${c}u;
const CG = ${cg}u;
const G = ${groups}u;
const PER_SAMPLE = ${s * c}u;
const VECS = ${vecs}u;
${merged ? `const K = ${chunks}u;
const CHUNK = ${chunk}u;
const TOTAL = ${total}u;
var<workgroup> stats : array<vec2<f32>, ${groups}>;` : ''}
${FLAT_WORKGROUP_WGSL}
fn main() {
  ${merged ? `// a workgroup's ${APPLY_THREADS * 4 * iters} values lie within one sample (PER_SAMPLE is a multiple of them)
  let sample = (flatWorkgroup() * ${APPLY_THREADS * 4 * iters}u) / PER_SAMPLE;
  for (var g = localId.x; g < G; g += ${APPLY_THREADS}u) {
    var cnt = 0.0;
    var mean = 0.0;
    var m2 = 0.0;
    let p0 = (sample * G + g) * K;
    for (var k = 0u; k < K; k++) {
      let nb = f32(min(TOTAL, (k + 1u) * CHUNK) - k * CHUNK);
      let mb = Stats[(p0 + k) * 2u];
      let qb = Stats[(p0 + k) * 2u + 1u];
      let nab = cnt + nb;
      let delta = mb - mean;
      mean = mean + delta * nb / nab;
      m2 = m2 + qb + delta * delta * cnt * nb / nab;
      cnt = nab;
    }
    stats[g] = vec2<f32>(mean, inverseSqrt(m2 / cnt + ${eps}));
  }
  workgroupBarrier();` : ''}
  for (var it = 0u; it < ${iters}u; it++) {
  let i = (flatWorkgroup() * ${iters}u + it) * ${APPLY_THREADS}u + localId.x;
  if (i >= VECS) { return; }
  let e0 = i * 4u;
  ${merged ? '' : 'let nn = e0 / PER_SAMPLE;'}
  let c0 = e0 % C;
  let xv = X[i];
  var y : vec4<f32>;
  for (var k = 0u; k < 4u; k++) {
    let ch = c0 + k;
    ${merged ? 'let st = stats[ch / CG];' : 'let st0 = (nn * G + ch / CG) * 2u;'}
    y[k] = (xv[k] - ${merged ? 'st.x' : 'Stats[st0]'}) * ${merged ? 'st.y' : `inverseSqrt(Stats[st0 + 1u] / ${total}.0 + ${eps})`} * Gamma[ch] + Beta[ch];
  }
  ${silu ? 'y = y / (1.0 + exp(-y));' : ''}
  result[i] = y;
  }
}`;
  const out = run(backend, program({
    key: `t2vGroupNormApply_${c}_${groups}_${s}_${vecs}_${silu}_${merged ? `merge_${chunks}_${chunk}_${iters}` : 'm2'}_${eps}`,
    inputs: ['X', 'Stats', 'Gamma', 'Beta'],
    outputShape: x.shape,
    workgroupSize: APPLY_THREADS,
    dispatch: flatDispatch(Math.ceil(vecs / (APPLY_THREADS * iters))),
    components: [4, 1, 1, 1],
    outputComponent: 4,
    code: applyCode,
  }), [x, partials, gamma, beta]);
  backend.disposeData(partials.dataId);
  return out;
}
