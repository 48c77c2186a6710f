import type * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { SubgroupMatrixConfig } from '../dawn.js';
import type { AttentionLayout } from './attention.js';
import { program, run } from './program.js';
import { matrixOps } from './subgroup-matrix.js';

/**
 * Attention on tensor cores: S = Q K^T and O += P V as 16x16x16 f16 subgroup-matrix products with f32 accumulation,
 * the online softmax in between done by the lanes (each subgroup owns 16 query rows, two lanes a row). A workgroup
 * of four subgroups takes 64 query rows of one (batch, head) and streams K and V through workgroup memory 64 keys at
 * a time, so no [n, n] score matrix exists. Inputs are the same f32 layouts as the fp32 kernel (attention.ts):
 * q, k, v [B, N, heads*d] or one packed [B, N, 3*heads*d]; inputs are rounded to f16 as the GEMMs on tensor cores
 * round theirs, P is rounded to f16 before P V (as fp16 flash attention does), everything else is f32.
 *
 * `emulate` replaces the subgroup-matrix builtins by plain per-lane loops with the same load/multiply/store
 * semantics (32 consecutive invocations as one "subgroup"), so the kernel's indexing, masking and softmax can be
 * checked on a device without subgroup matrices (lavapipe). The emulation is slow; it is for tests only.
 */
const KT = 64; // keys per tile
const PAD = 8;

/** Which attention shapes go to tensor cores (nq queries, nk keys; packed: q|k|v in one tensor), besides fitting. */
export type TCAttentionFilter = (s: { b: number; nq: number; nk: number; heads: number; d: number; packed: boolean }) => boolean;

let tcConfig: SubgroupMatrixConfig | null = null;
let tcFilter: TCAttentionFilter | null = null;
/**
 * Attention goes to tensor cores (where tcAttentionSupported and `filter`, if given, agree) while a configuration
 * is set; null switches it off.
 */
export function setTensorCoreAttention(cfg: SubgroupMatrixConfig | null, filter: TCAttentionFilter | null = null): void {
  tcConfig = cfg;
  tcFilter = filter;
}

let emulateForTests = false;
/** Tests only: build the kernel with emulated subgroup matrices (see above). */
export function emulateTensorCoreAttention(on: boolean): void {
  emulateForTests = on;
}

export function tcAttentionSupported(b: number, nq: number, nk: number, heads: number, d: number, causal: boolean,
  packed: boolean): boolean {
  const fits = tcConfig !== null && tcConfig.M === 16 && tcConfig.N === 16 && tcConfig.K === 16;
  return (fits || emulateForTests) && !causal && d % 16 === 0 && d <= KT && nk > 16
    && (emulateForTests || !tcFilter || tcFilter({ b, nq, nk, heads, d, packed }));
}

/** Dispatches of the tensor-core attention so far (tests and the benchmark check that it ran). */
export const tcAttentionStats = { calls: 0 };

/** `L`: where q, k and v lie in `inputs` (attention.ts's layout: three tensors or one packed). */
export function tcAttention(backend: WebGPUBackend, inputs: tf.TensorInfo[], L: AttentionLayout, b: number, nq: number,
  nk: number, inner: number, heads: number): tf.TensorInfo {
  tcAttentionStats.calls++;
  const d = inner / heads;
  const emulate = emulateForTests;
  const d4 = d / 4;
  // four subgroups (64 query rows) a workgroup where the workgroup memory allows (44 KB for d = 64), else two
  const bytes = (sg: number) => 2 * (2 * KT * (d + PAD) + 16 * sg * Math.max(d, KT) + PAD * 16 * sg) + 4 * 16 * sg * KT;
  const SG = bytes(4) <= backend.device.limits.maxComputeWorkgroupStorageSize ? 4 : 2;
  const ROWS = 16 * SG;
  const DK = d / 16; // 16-wide slices of the head dimension
  const KB = KT / 16; // 16-key blocks of a tile
  const QST = d + PAD; // row strides in workgroup memory (f16 elements)
  const KST = d + PAD;
  const PST = KT + PAD;
  const half = KT / 2; // keys per lane in the softmax (two lanes a row)
  const dh = d / 2; // output columns per lane
  const scale = Math.LOG2E / Math.sqrt(d);
  const code = () => {
    const m = matrixOps(emulate);
    const lines: string[] = [];
    // Q (scaled, f16) -> this subgroup's DK left matrices, kept for the whole key loop
    // (Q is staged in Ps, free until the first softmax: 44 KB of workgroup memory in all for d = 64)
    for (let j = 0; j < DK; j++) lines.push(m.loadLeft(`q${j}`, 'Ps', `(sg * 16u) * ${QST}u + ${j * 16}u`, QST));
    const qLoads = lines.splice(0).join('\n  ');
    // S = Q K^T for 16 rows x KT keys
    const sBlocks: string[] = [];
    for (let n = 0; n < KB; n++) {
      sBlocks.push(m.zero(`s${n}`));
      for (let j = 0; j < DK; j++) {
        sBlocks.push(m.loadRight(`k${n}_${j}`, 'Ks', `${n * 16}u * ${KST}u + ${j * 16}u`, KST, true));
        sBlocks.push(m.mma(`s${n}`, `q${j}`, `k${n}_${j}`));
      }
      sBlocks.push(m.store('Ss', `(sg * 16u) * ${KT}u + ${n * 16}u`, `s${n}`, KT));
    }
    // P V for 16 rows x d
    const pv: string[] = [];
    for (let kk = 0; kk < KB; kk++) pv.push(m.loadLeft(`p${kk}`, 'Ps', `(sg * 16u) * ${PST}u + ${kk * 16}u`, PST));
    for (let n = 0; n < DK; n++) {
      pv.push(m.zero(`o${n}`));
      for (let kk = 0; kk < KB; kk++) {
        pv.push(m.loadRight(`v${n}_${kk}`, 'Vs', `${kk * 16}u * ${KST}u + ${n * 16}u`, KST, false));
        pv.push(m.mma(`o${n}`, `p${kk}`, `v${n}_${kk}`));
      }
      pv.push(m.store('Ss', `(sg * 16u) * ${d}u + ${n * 16}u`, `o${n}`, d));
    }
    return `
${m.enable}
enable f16;
enable subgroups;
const NQ = ${nq}u;
const NK = ${nk}u;
const HEADS = ${heads}u;
const D4 = ${d4}u;
const QS4 = ${L.qs4}u;
const KVS4 = ${L.kvs4}u;
const OUT = ${inner}u;
const SCALE = ${scale.toPrecision(9)};
const MASKED = -1.0e30;
var<workgroup> Ks : array<f16, ${KT * KST}>;
var<workgroup> Vs : array<f16, ${KT * KST}>;
var<workgroup> Ps : array<f16, ${ROWS * PST}>;
var<workgroup> Ss : array<f32, ${ROWS * KT}>;

fn main() {
  let tid = localIndex;
  let sg = tid / 32u;
  let lane = tid % 32u;
  let r = lane / 2u;
  let hh = lane % 2u;
  let bh = workgroupId.y;
  let b = bh / HEADS;
  let h = bh % HEADS;
  let row0 = workgroupId.x * ${ROWS}u;
  for (var e = tid; e < ${ROWS}u * D4; e += ${32 * SG}u) {
    let rr = e / D4;
    let c4 = e % D4;
    let qi = min(row0 + rr, NQ - 1u);
    let v = ${L.Q}[(b * NQ + qi) * QS4 + h * D4 + c4] * SCALE;
    let o = rr * ${QST}u + c4 * 4u;
    Ps[o] = f16(v.x); Ps[o + 1u] = f16(v.y); Ps[o + 2u] = f16(v.z); Ps[o + 3u] = f16(v.w);
  }
  workgroupBarrier();
  ${qLoads}
  var acc : array<f32, ${dh}>;
  var m = MASKED;
  var l = 0.0;
  for (var k0 = 0u; k0 < NK; k0 += ${KT}u) {
    workgroupBarrier();
    for (var e = tid; e < ${KT}u * D4; e += ${32 * SG}u) {
      let kr = e / D4;
      let c4 = e % D4;
      let src = (b * NK + min(k0 + kr, NK - 1u)) * KVS4 + h * D4 + c4;
      let kv = ${L.K}[src + ${L.koff}u];
      let vv = ${L.V}[src + ${L.voff}u];
      let o = kr * ${KST}u + c4 * 4u;
      Ks[o] = f16(kv.x); Ks[o + 1u] = f16(kv.y); Ks[o + 2u] = f16(kv.z); Ks[o + 3u] = f16(kv.w);
      Vs[o] = f16(vv.x); Vs[o + 1u] = f16(vv.y); Vs[o + 2u] = f16(vv.z); Vs[o + 3u] = f16(vv.w);
    }
    workgroupBarrier();
    ${sBlocks.join('\n    ')}
    workgroupBarrier();
    // online softmax: lane (r, hh) takes keys hh*${half} .. of row r
    let srow = (sg * 16u + r) * ${KT}u + hh * ${half}u;
    var tmax = MASKED;
    for (var j = 0u; j < ${half}u; j++) {
      if (k0 + hh * ${half}u + j < NK) { tmax = max(tmax, Ss[srow + j]); }
    }
    tmax = max(tmax, subgroupShuffleXor(tmax, 1u));
    let mn = max(m, tmax);
    let corr = exp2(m - mn);
    var ps = 0.0;
    let prow = (sg * 16u + r) * ${PST}u + hh * ${half}u;
    for (var j = 0u; j < ${half}u; j++) {
      var p = 0.0;
      if (k0 + hh * ${half}u + j < NK) { p = exp2(Ss[srow + j] - mn); }
      ps += p;
      Ps[prow + j] = f16(p);
    }
    l = l * corr + ps;
    m = mn;
    workgroupBarrier();
    ${pv.join('\n    ')}
    workgroupBarrier();
    let orow = (sg * 16u + r) * ${d}u + hh * ${dh}u;
    for (var j = 0u; j < ${dh}u; j++) { acc[j] = fma(acc[j], corr, Ss[orow + j]); }
  }
  let lt = l + subgroupShuffleXor(l, 1u);
  let qi = row0 + sg * 16u + r;
  if (qi < NQ) {
    let inv = 1.0 / lt;
    let o = (b * NQ + qi) * OUT + h * ${d}u + hh * ${dh}u;
    for (var j = 0u; j < ${dh}u; j++) { result[o + j] = acc[j] * inv; }
  }
}`;
  };
  return run(backend, program({
    key: `t2vAttentionTC_${b}_${nq}_${nk}_${heads}_${d}_${SG}_${L.tag}_${emulate ? 'emu' : ''}`,
    inputs: L.inputs,
    outputShape: [b, nq, inner],
    workgroupSize: 32 * SG,
    dispatch: [Math.ceil(nq / ROWS), b * heads, 1],
    components: L.inputs.map(() => 4),
    outputComponent: 1,
    code,
  }), inputs);
}
