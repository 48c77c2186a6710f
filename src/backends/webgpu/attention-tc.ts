import type * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { SubgroupMatrixConfig } from './device-facts.js';
import { MAX_WORKGROUPS, program } from './program.js';
import { matrixOps } from './subgroup-matrix.js';

/** Query rows of one workgroup: four subgroups of 16 rows. */
const QUERY_TILE = 64;
/** Keys per step of the key loop. */
const KEY_BLOCK = 32;
const SUBGROUPS = QUERY_TILE / 16;

/** Whether packed self-attention [B, N, 3*heads*d] runs on tensor cores: d a multiple of 16 up to 128, N of 64. */
export function tensorCoreAttentionSupported(qkv: tf.TensorInfo, heads: number, cfg: SubgroupMatrixConfig | null): boolean {
  if (!cfg || cfg.M !== 16 || cfg.N !== 16 || cfg.K !== 16 || qkv.shape.length !== 3 || qkv.dtype !== 'float32') return false;
  const [b, n, c] = qkv.shape;
  const d = c / 3 / heads;
  return Number.isInteger(d) && d % 16 === 0 && d <= 128 && n % QUERY_TILE === 0 && b * heads <= MAX_WORKGROUPS;
}

/**
 * Self-attention of q, k and v packed side by side ([B, N, 3*inner]: to_q|to_k|to_v's one matmul) on tensor cores:
 * f16 operands, f32 scores and sums. Each workgroup owns 64 query rows of one (batch, head), 16 per subgroup, kept as
 * matrices for the whole kernel. The scores of a block of keys are a matrix product, stored to workgroup memory where
 * the lanes read them as numbers. Two passes over the keys: the first finds each row's max and sum of exponentials,
 * the second makes the normalized probabilities (f16) and multiplies them with the values into f32 accumulators. So
 * the accumulators never need rescaling (which subgroup matrices cannot do element by element), at the price of the
 * scores computed twice. No [N, N] matrix exists anywhere; q, k, v are read in place.
 */
export function tensorCoreAttention(backend: WebGPUBackend, qkv: tf.TensorInfo, heads: number, cfg: SubgroupMatrixConfig,
  emulate = false): tf.TensorInfo {
  const [b, n, c] = qkv.shape;
  const inner = c / 3;
  const d = inner / heads;
  const d4 = d / 4;
  const dm = d / 16;
  const kb = KEY_BLOCK / 16;
  const DS = d + 8; // f16 row of a staged key, value or query (padded against bank conflicts)
  const SS = KEY_BLOCK + 4; // f32 row of a subgroup's scores
  const PS = KEY_BLOCK + 8; // f16 row of its probabilities
  const threads = 32 * SUBGROUPS;
  // scores go through exp2: log2(e) / sqrt(d) is folded into q
  const scale = Math.LOG2E / Math.sqrt(d);
  const code = () => {
    const mx = matrixOps(emulate, cfg);
    const q: string[] = [];
    for (let i = 0; i < dm; i++) q.push(mx.loadLeft(`qm${i}`, 'Ks', `(sg * 16u) * DS + ${i * 16}u`, 'DS'));
    // the scores of this subgroup's 16 rows against the block's keys, into Ss
    const scores: string[] = [];
    for (let j = 0; j < kb; j++) {
      scores.push(mx.zero(`s${j}`));
      for (let i = 0; i < dm; i++) {
        scores.push(mx.loadRight(`kt${i}_${j}`, 'Ks', `${j * 16}u * DS + ${i * 16}u`, 'DS', true));
        scores.push(mx.mma(`s${j}`, `qm${i}`, `kt${i}_${j}`));
      }
      scores.push(mx.store('Ss', `sBase + ${j * 16}u`, `s${j}`, 'SS'));
    }
    const pv: string[] = [];
    for (let kk = 0; kk < kb; kk++) {
      pv.push(mx.loadLeft(`p${kk}`, 'Ps', `pBase + ${kk * 16}u`, 'PS'));
      for (let j = 0; j < dm; j++) {
        pv.push(mx.loadRight(`v${kk}_${j}`, 'Vs', `${kk * 16}u * DS + ${j * 16}u`, 'DS'));
        pv.push(mx.mma(`o${j}`, `p${kk}`, `v${kk}_${j}`));
      }
    }
    const zeroO = Array.from({ length: dm }, (_, j) => mx.zero(`o${j}`));
    const storeO = Array.from({ length: dm }, (_, j) =>
      mx.store('result', `(rowBase + row0 + sg * 16u) * INNER + h * ${d}u + ${j * 16}u`, `o${j}`, 'INNER'));
    const stage = (dst: string, rows: number, colOffset: string, key: boolean) => `
    for (var e = tid; e < ${rows * d4}u; e += ${threads}u) {
      let r = e / D4;
      let v = QKV[(rowBase + ${key ? 'k0' : 'row0'} + r) * C4 + ${colOffset} + e % D4]${key ? '' : ' * SCALE'};
      let o = r * DS + (e % D4) * 4u;
      ${dst}[o] = f16(v.x); ${dst}[o + 1u] = f16(v.y); ${dst}[o + 2u] = f16(v.z); ${dst}[o + 3u] = f16(v.w);
    }`;
    return `
enable f16;
enable subgroups;
${mx.enable}
const N = ${n}u;
const C4 = ${c / 4}u;
const INNER = ${inner}u;
const INNER4 = ${inner / 4}u;
const HEADS = ${heads}u;
const D4 = ${d4}u;
const DS = ${DS}u;
const SS = ${SS}u;
const PS = ${PS}u;
const SCALE = ${scale.toPrecision(9)};
var<workgroup> Ks : array<f16, ${QUERY_TILE * DS}>;
var<workgroup> Vs : array<f16, ${KEY_BLOCK * DS}>;
var<workgroup> Ss : array<f32, ${SUBGROUPS * 16 * SS}>;
var<workgroup> Ps : array<f16, ${SUBGROUPS * 16 * PS}>;
fn main() {
  let tid = localId.x;
  let sg = tid / 32u;
  let lane = tid % 32u;
  let bi = workgroupId.y / HEADS;
  let h = workgroupId.y % HEADS;
  let row0 = workgroupId.x * ${QUERY_TILE}u;
  let rowBase = bi * N;
  let sBase = sg * 16u * SS;
  let pBase = sg * 16u * PS;
  // q (scaled) is staged in Ks once and kept as matrices
  ${stage('Ks', QUERY_TILE, 'h * D4', false)}
  workgroupBarrier();
  ${q.join('\n  ')}
  // each row of the subgroup's 16 belongs to two lanes (row lane / 2, half lane % 2 of the block's keys): running max
  // and sum of exp2, the pair's partial results combined through a shuffle
  let r = lane / 2u;
  let sRow = sBase + r * SS + (lane % 2u) * ${KEY_BLOCK / 2}u;
  var m = -1.0e30;
  var l = 0.0;
  for (var k0 = 0u; k0 < N; k0 += ${KEY_BLOCK}u) {
    workgroupBarrier();
    ${stage('Ks', KEY_BLOCK, 'INNER4 + h * D4', true)}
    workgroupBarrier();
    ${scores.join('\n    ')}
    workgroupBarrier();
    var bm = m;
    for (var j = 0u; j < ${KEY_BLOCK / 2}u; j++) { bm = max(bm, Ss[sRow + j]); }
    bm = max(bm, subgroupShuffleXor(bm, 1u));
    var sum = 0.0;
    for (var j = 0u; j < ${KEY_BLOCK / 2}u; j++) { sum += exp2(Ss[sRow + j] - bm); }
    sum += subgroupShuffleXor(sum, 1u);
    l = l * exp2(m - bm) + sum;
    m = bm;
  }
  let inv = 1.0 / l;
  ${zeroO.join('\n  ')}
  for (var k0 = 0u; k0 < N; k0 += ${KEY_BLOCK}u) {
    workgroupBarrier();
    ${stage('Ks', KEY_BLOCK, 'INNER4 + h * D4', true)}
    ${stage('Vs', KEY_BLOCK, '2u * INNER4 + h * D4', true)}
    workgroupBarrier();
    ${scores.join('\n    ')}
    workgroupBarrier();
    let pRow = pBase + r * PS + (lane % 2u) * ${KEY_BLOCK / 2}u;
    for (var j = 0u; j < ${KEY_BLOCK / 2}u; j++) { Ps[pRow + j] = f16(exp2(Ss[sRow + j] - m) * inv); }
    workgroupBarrier();
    ${pv.join('\n    ')}
  }
  ${storeO.join('\n  ')}
}`;
  };
  return backend.runWebGPUProgram(program({
    key: `t2vTensorCoreAttention${emulate ? 'Emu' : ''}_${b}_${n}_${inner}_${heads}`,
    inputs: ['QKV'], outputShape: [b, n, inner], workgroupSize: threads,
    dispatch: [n / QUERY_TILE, b * heads, 1], components: [4], outputComponent: 1, code,
  }), [qkv], 'float32');
}
