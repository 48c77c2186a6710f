import type * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { SubgroupMatrixConfig } from './device-facts.js';
import { MAX_WORKGROUPS, program } from './program.js';
import { matrixOps } from './subgroup-matrix.js';

/** Query rows staged at a time: four subgroups of 16 rows. */
const QUERY_CHUNK = 64;
/** Keys per step of the key loop (unless asked otherwise). */
const KEY_BLOCK_DEFAULT = 32;
const SUBGROUPS = QUERY_CHUNK / 16;
const threads = 32 * SUBGROUPS;

/** Whether packed self-attention [B, N, 3*heads*d] runs on tensor cores: d a multiple of 16 up to 128, any N. */
export function tensorCoreAttentionSupported(qkv: tf.TensorInfo, heads: number, cfg: SubgroupMatrixConfig | null): boolean {
  if (!cfg || cfg.M !== 16 || cfg.N !== 16 || cfg.K !== 16 || qkv.shape.length !== 3 || qkv.dtype !== 'float32') return false;
  const [b, n, c] = qkv.shape;
  const d = c / 3 / heads;
  return Number.isInteger(d) && d % 16 === 0 && d <= 128 && n > 0 && b * heads <= MAX_WORKGROUPS;
}

/** Workgroup memory of the kernel with `rowTiles` 16-row tiles per subgroup and head dim d (f16 stages, f32 scores). */
export function tensorCoreAttentionBytes(d: number, rowTiles: number, keyBlock = KEY_BLOCK_DEFAULT, onePass = false): number {
  const rows = QUERY_CHUNK * rowTiles;
  return 2 * (QUERY_CHUNK + keyBlock) * (d + 8) + 4 * rows * (keyBlock + 4) + 2 * rows * (keyBlock + 8) + (rowTiles > 1 ? 4 * rows : 0)
    + (onePass ? 4 * rows + 4 : 0);
}

/** One-pass attention: a row's reference maximum moves only when a block's scores pass it by more than this (log2 units). */
const RESCALE_MARGIN = 8;

/**
 * The kernel's shape: 16-row query tiles per subgroup (attentionRowTiles), keys per step (32), one pass over the keys
 * instead of two (attentionOnePass), its rescale margin (tests: 0 rescales whenever a maximum grows), matrices emulated
 * (tests).
 */
export interface AttentionTiles {
  rowTiles?: number; keyBlock?: number; onePass?: boolean; rescaleMargin?: number; emulate?: boolean;
  /** Diagnostic (one pass): rescale the accumulators after every block, with no branch on whether a maximum moved. */
  rescaleAlways?: boolean;
  /**
   * The lanes read their rows' scores four at a time (vec4<f32>) and write the probabilities four at a time (8 bytes),
   * through buffer views of the score and probability tiles (the WGSL `buffer_view` feature; WebGPUOps turns it on
   * where the device has it).
   */
  vectorScores?: boolean;
}

/**
 * How many 16-row tiles of queries each subgroup owns: two (each key and value matrix loaded once for both) where the
 * workgroup memory holds it, else one; `asked` pins it (tests, the benchmark).
 */
export function attentionRowTiles(d: number, maxBytes: number, keyBlock = KEY_BLOCK_DEFAULT, asked?: number, onePass = false): number {
  if (asked !== undefined) return asked;
  return tensorCoreAttentionBytes(d, 2, keyBlock, onePass) <= maxBytes ? 2 : 1;
}

/**
 * Self-attention of q, k and v packed side by side ([B, N, 3*inner]: to_q|to_k|to_v's one matmul) on tensor cores:
 * f16 operands, f32 scores and sums. Each workgroup owns 64 * rowTiles query rows of one (batch, head), 16 * rowTiles
 * per subgroup, kept as matrices for the whole kernel. The scores of a block of keys are a matrix product, stored to
 * workgroup memory where the lanes read them as numbers. Two passes over the keys: the first finds each row's max,
 * the second makes the probabilities exp2(s - max) (f16, at most 1), sums them per row and multiplies them with the
 * values into f32 accumulators; the accumulators, never rescaled (which subgroup matrices cannot do element by
 * element), are divided by the sums on the way out through workgroup memory. The next block's keys (and values) are
 * read into registers while the current block's products run. No [N, N] matrix exists anywhere; q, k, v are read in
 * place. N need not be a multiple of anything: keys past N count as absent, queries past N are not written.
 *
 * `onePass`: a single pass over the keys, each row's reference maximum m kept lazily: a block whose scores pass m by
 * more than RESCALE_MARGIN moves it (probabilities then stay at most 2^8, well inside f16), and only then are the
 * rows' sums and (past the first block) accumulators rescaled, the accumulators through workgroup memory, every
 * subgroup taking that detour when any row of the workgroup needs it.
 */
export function tensorCoreAttention(backend: WebGPUBackend, qkv: tf.TensorInfo, heads: number, cfg: SubgroupMatrixConfig,
  opts: AttentionTiles = {}): tf.TensorInfo {
  const { emulate = false, keyBlock: KEY_BLOCK = KEY_BLOCK_DEFAULT, onePass = false, rescaleMargin = RESCALE_MARGIN,
    rescaleAlways = false, vectorScores = false } = opts;
  const [b, n, c] = qkv.shape;
  const inner = c / 3;
  const d = inner / heads;
  const d4 = d / 4;
  const dm = d / 16;
  const kb = KEY_BLOCK / 16;
  const rt = attentionRowTiles(d, backend.device.limits.maxComputeWorkgroupStorageSize, KEY_BLOCK, opts.rowTiles, onePass);
  if (KEY_BLOCK % 16 !== 0 || (rt !== 1 && rt !== 2)) {
    throw new Error(`tensor-core attention: ${rt} row tiles and blocks of ${KEY_BLOCK} keys do not fit heads of ${d}`);
  }
  const rows = 16 * rt; // query rows of a subgroup
  const DS = d + 8; // f16 row of a staged key, value or query (padded against bank conflicts)
  const SS = KEY_BLOCK + 4; // f32 row of a subgroup's scores
  const PS = KEY_BLOCK + 8; // f16 row of its probabilities
  const kv4 = Math.ceil((KEY_BLOCK * d4) / threads); // vec4 of one staged key block per invocation
  const partial = kv4 * threads !== KEY_BLOCK * d4; // the last round leaves invocations idle
  const lanesPerRow = 2 / rt;
  const keysPerLane = KEY_BLOCK / lanesPerRow;
  const raggedKeys = n % KEY_BLOCK !== 0;
  // scores go through exp2: log2(e) / sqrt(d) is folded into q
  const scale = Math.LOG2E / Math.sqrt(d);
  const [Ss, Ps] = vectorScores ? ['(*Ss)', '(*Ps)'] : ['Ss', 'Ps'];
  const code = () => {
    const mx = matrixOps(emulate, cfg);
    // query tile t of subgroup sg: rows t * 64 + sg * 16 of the workgroup's, staged 64 rows at a time
    const q: string[] = [];
    for (let t = 0; t < rt; t++) {
      q.push(stageQuery(t));
      for (let i = 0; i < dm; i++) q.push(mx.loadLeft(`qm${t}_${i}`, 'Ks', `(sg * 16u) * DS + ${i * 16}u`, 'DS'));
      q.push('workgroupBarrier();');
    }
    // the scores of this subgroup's rows against the block's keys, into Ss (tile t at rows t * 16)
    const scores: string[] = [];
    for (let t = 0; t < rt; t++) for (let j = 0; j < kb; j++) scores.push(mx.zero(`s${t}_${j}`));
    for (let j = 0; j < kb; j++) {
      for (let i = 0; i < dm; i++) {
        scores.push(mx.loadRight(`kt${i}_${j}`, 'Ks', `${j * 16}u * DS + ${i * 16}u`, 'DS', true));
        for (let t = 0; t < rt; t++) scores.push(mx.mma(`s${t}_${j}`, `qm${t}_${i}`, `kt${i}_${j}`));
      }
    }
    for (let t = 0; t < rt; t++) for (let j = 0; j < kb; j++) scores.push(mx.store(Ss, `sBase + ${t * 16}u * SS + ${j * 16}u`, `s${t}_${j}`, 'SS'));
    const pv: string[] = [];
    for (let kk = 0; kk < kb; kk++) {
      for (let t = 0; t < rt; t++) pv.push(mx.loadLeft(`p${t}_${kk}`, Ps, `pBase + ${t * 16}u * PS + ${kk * 16}u`, 'PS'));
      for (let j = 0; j < dm; j++) {
        pv.push(mx.loadRight(`v${kk}_${j}`, 'Vs', `${kk * 16}u * DS + ${j * 16}u`, 'DS'));
        for (let t = 0; t < rt; t++) pv.push(mx.mma(`o${t}_${j}`, `p${t}_${kk}`, `v${kk}_${j}`));
      }
    }
    // one pass: each accumulator block through the subgroup's score rows, scaled by its row's factor, and back
    const rescale: string[] = [];
    for (let t = 0; t < rt; t++) {
      for (let j = 0; j < dm; j++) {
        rescale.push(mx.store(Ss, 'sBase', `o${t}_${j}`, 'SS'), 'workgroupBarrier();', `{
        let a = Alpha[sg * ${rows}u + ${t * 16}u + lane / 2u];
        for (var i = 0u; i < 8u; i++) { ${Ss}[sBase + (lane / 2u) * SS + (lane % 2u) * 8u + i] *= a; }
      }`, 'workgroupBarrier();', mx.loadResult(`o${t}_${j}`, Ss, 'sBase', 'SS'), 'workgroupBarrier();');
      }
    }
    const zeroO: string[] = [];
    for (let t = 0; t < rt; t++) for (let j = 0; j < dm; j++) zeroO.push(mx.zero(`o${t}_${j}`));
    // out: each 16 x 16 block of o through the subgroup's score rows, divided by its row's sum, rows past N left out
    const out: string[] = [];
    for (let t = 0; t < rt; t++) {
      for (let j = 0; j < dm; j++) {
        out.push(mx.store(Ss, 'sBase', `o${t}_${j}`, 'SS'), 'workgroupBarrier();', `{
    let orow = row0 + ${t * QUERY_CHUNK}u + sg * 16u + lane / 2u;
    let rinv = ${rt === 1 ? 'inv' : `Inv[sg * ${rows}u + ${t * 16}u + lane / 2u]`};
    if (orow < N) {
      for (var i = 0u; i < 8u; i++) {
        result[(rowBase + orow) * INNER + h * ${d}u + ${j * 16}u + (lane % 2u) * 8u + i] = ${Ss}[sBase + (lane / 2u) * SS + (lane % 2u) * 8u + i] * rinv;
      }
    }
  }`, 'workgroupBarrier();');
      }
    }
    // keys and values: global -> registers (the next block, during this one's products) -> f16 workgroup memory
    const fetch = (regs: string, colOffset: string) => `for (var v = 0u; v < ${kv4}u; v++) {
      let e = tid + v * ${threads}u;${partial ? `
      if (e >= ${KEY_BLOCK * d4}u) { break; }` : ''}
      let key = k1 + e / D4;
      ${regs}[v] = ${raggedKeys ? `select(vec4<f32>(0.0), QKV[(rowBase + min(key, N - 1u)) * C4 + ${colOffset} + e % D4], key < N)`
    : `QKV[(rowBase + key) * C4 + ${colOffset} + e % D4]`};
    }`;
    const put = (dst: string, regs: string) => `for (var v = 0u; v < ${kv4}u; v++) {
      let e = tid + v * ${threads}u;${partial ? `
      if (e >= ${KEY_BLOCK * d4}u) { break; }` : ''}
      let o = (e / D4) * DS + (e % D4) * 4u;
      let x = ${regs}[v];
      ${dst}[o] = f16(x.x); ${dst}[o + 1u] = f16(x.y); ${dst}[o + 2u] = f16(x.z); ${dst}[o + 3u] = f16(x.w);
    }`;
    const valid = (j: string) => (raggedKeys ? `k0 + kCol + ${j} < N` : 'true');
    // vector scores: four keys at a time, keys past N read as -1e30 (no maximum, probability 0)
    const kpl4 = keysPerLane / 4;
    const read4 = (j: string) => (raggedKeys
      ? `select(vec4<f32>(-1.0e30), Ss4[sRow / 4u + ${j}], vec4<u32>(k0 + kCol + 4u * ${j}) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(N))`
      : `Ss4[sRow / 4u + ${j}]`);
    const maxOf = (v: string) => (vectorScores
      ? `for (var j = 0u; j < ${kpl4}u; j++) { let s = ${read4('j')}; ${v} = max(${v}, max(max(s.x, s.y), max(s.z, s.w))); }`
      : `for (var j = 0u; j < ${keysPerLane}u; j++) { ${v} = max(${v}, ${raggedKeys ? `select(-1.0e30, Ss[sRow + j], ${valid('j')})` : 'Ss[sRow + j]'}); }`);
    const probabilities = vectorScores ? `for (var j = 0u; j < ${kpl4}u; j++) {
      let p = exp2(${read4('j')} - vec4<f32>(m));
      l += (p.x + p.y) + (p.z + p.w);
      Ps4[pRow / 4u + j] = bitcast<vec2<u32>>(vec4<f16>(p));
    }` : `for (var j = 0u; j < ${keysPerLane}u; j++) {
      let p = ${raggedKeys ? `select(0.0, exp2(Ss[sRow + j] - m), ${valid('j')})` : 'exp2(Ss[sRow + j] - m)'};
      l += p;
      Ps[pRow + j] = f16(p);
    }`;
    // two passes: the first finds each row's maximum
    const maxPass = `${fetch('rk', 'INNER4 + h * D4')}
  for (var k0 = 0u; k0 < N; k0 += ${KEY_BLOCK}u) {
    workgroupBarrier();
    ${put('Ks', 'rk')}
    workgroupBarrier();
    k1 = k0 + ${KEY_BLOCK}u;
    if (k1 < N) {
      ${fetch('rk', 'INNER4 + h * D4')}
    }
    ${scores.join('\n    ')}
    workgroupBarrier();
    ${maxOf('m')}
  }
  ${lanesPerRow === 2 ? 'm = max(m, subgroupShuffleXor(m, 1u));' : ''}`;
    // one pass: the block's maximum of each row moves m when it passes it by more than the margin; the factor
    // exp2(m - new m) rescales the row's sum now and its accumulators (rescale), past the first block, before the
    // block's products. No lane-divergent branch around the update (selects; only the flag's store is conditional):
    // the subgroup-matrix products that follow need the subgroup's lanes together
    const moveMax = `{
      var bm = -1.0e30;
      ${maxOf('bm')}
      ${lanesPerRow === 2 ? 'bm = max(bm, subgroupShuffleXor(bm, 1u));' : ''}
      let moved = bm > m + ${rescaleMargin.toFixed(1)};
      let alpha = select(1.0, exp2(m - bm), moved);
      m = select(m, bm, moved);
      l *= alpha;
      if (moved && k0 > 0u) { rescaleFlag = 1u; }
      Alpha[sg * ${rows}u + r] = alpha;
    }`;
    return `
enable f16;
enable subgroups;
${mx.enable}
${vectorScores ? 'requires buffer_view;' : ''}
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
var<workgroup> Ks : array<f16, ${QUERY_CHUNK * DS}>;
var<workgroup> Vs : array<f16, ${KEY_BLOCK * DS}>;
${vectorScores ? `var<workgroup> smemS : buffer<${4 * SUBGROUPS * rows * SS}>;
var<workgroup> smemP : buffer<${2 * SUBGROUPS * rows * PS}>;` : `var<workgroup> Ss : array<f32, ${SUBGROUPS * rows * SS}>;
var<workgroup> Ps : array<f16, ${SUBGROUPS * rows * PS}>;`}${rt === 1 ? '' : `
var<workgroup> Inv : array<f32, ${SUBGROUPS * rows}>;`}${onePass ? `
var<workgroup> Alpha : array<f32, ${SUBGROUPS * rows}>;
var<workgroup> rescaleFlag : u32;` : ''}
fn main() {
  let tid = localId.x;
  let sg = tid / 32u;
  let lane = tid % 32u;
  let bi = workgroupId.y / HEADS;
  let h = workgroupId.y % HEADS;
  let row0 = workgroupId.x * ${QUERY_CHUNK * rt}u;
  let rowBase = bi * N;
  let sBase = sg * ${rows}u * SS;
  let pBase = sg * ${rows}u * PS;${vectorScores ? `
  let Ss = bufferView<array<f32, ${SUBGROUPS * rows * SS}>>(&smemS, 0u);
  let Ss4 = bufferView<array<vec4<f32>, ${SUBGROUPS * rows * SS / 4}>>(&smemS, 0u);
  let Ps = bufferView<array<f16, ${SUBGROUPS * rows * PS}>>(&smemP, 0u);
  let Ps4 = bufferView<array<vec2<u32>, ${SUBGROUPS * rows * PS / 4}>>(&smemP, 0u);` : ''}
  // q (scaled) is staged in Ks and kept as matrices
  ${q.join('\n  ')}
  // each of the subgroup's rows belongs to ${lanesPerRow} lane(s) (${lanesPerRow === 2 ? 'row lane / 2, half lane % 2 of the block\'s keys; the pair\'s maxima and sums combined through a shuffle' : 'row = lane'})
  let r = lane / ${lanesPerRow}u;
  let kCol = ${lanesPerRow === 2 ? `(lane % 2u) * ${keysPerLane}u` : '0u'};
  let sRow = sBase + r * SS + kCol;
  let pRow = pBase + r * PS + kCol;
  var rk : array<vec4<f32>, ${kv4}>;
  var rv : array<vec4<f32>, ${kv4}>;
  var m = -1.0e30;
  var k1 = 0u;
  ${onePass ? '' : maxPass}
  var l = 0.0;
  ${zeroO.join('\n  ')}
  k1 = 0u;
  ${fetch('rk', 'INNER4 + h * D4')}
  ${fetch('rv', '2u * INNER4 + h * D4')}
  for (var k0 = 0u; k0 < N; k0 += ${KEY_BLOCK}u) {
    workgroupBarrier();
    ${put('Ks', 'rk')}
    ${put('Vs', 'rv')}
    ${onePass ? 'if (tid == 0u) { rescaleFlag = 0u; }' : ''}
    workgroupBarrier();
    k1 = k0 + ${KEY_BLOCK}u;
    if (k1 < N) {
      ${fetch('rk', 'INNER4 + h * D4')}
      ${fetch('rv', '2u * INNER4 + h * D4')}
    }
    ${scores.join('\n    ')}
    workgroupBarrier();
    ${onePass ? moveMax : ''}
    ${probabilities}
    workgroupBarrier();
    ${!onePass ? '' : rescaleAlways ? `{
      ${rescale.join('\n      ')}
    }` : `if (workgroupUniformLoad(&rescaleFlag) != 0u) {
      ${rescale.join('\n      ')}
    }`}
    ${pv.join('\n    ')}
  }
  ${lanesPerRow === 2 ? 'l += subgroupShuffleXor(l, 1u);' : ''}
  let inv = 1.0 / l;
  ${rt === 1 ? '' : `// another lane writes the row out: the sums go through workgroup memory (a shuffle would assume subgroups of 32)
  Inv[sg * ${rows}u + r] = inv;`}
  workgroupBarrier();
  ${out.join('\n  ')}
}`;
    function stageQuery(t: number): string {
      return `for (var e = tid; e < ${QUERY_CHUNK * d4}u; e += ${threads}u) {
    let qr = min(row0 + ${t * QUERY_CHUNK}u + e / D4, N - 1u);
    let v = QKV[(rowBase + qr) * C4 + h * D4 + e % D4] * SCALE;
    let o = (e / D4) * DS + (e % D4) * 4u;
    Ks[o] = f16(v.x); Ks[o + 1u] = f16(v.y); Ks[o + 2u] = f16(v.z); Ks[o + 3u] = f16(v.w);
  }
  workgroupBarrier();`;
    }
  };
  return backend.runWebGPUProgram(program({
    key: `t2vTensorCoreAttention${emulate ? 'Emu' : ''}${onePass ? `OnePass${rescaleMargin}${rescaleAlways ? 'A' : ''}` : ''}${vectorScores ? 'V4' : ''}_${b}_${n}_${inner}_${heads}_${rt}_${KEY_BLOCK}`,
    inputs: ['QKV'], outputShape: [b, n, inner], workgroupSize: threads,
    dispatch: [Math.ceil(n / (QUERY_CHUNK * rt)), b * heads, 1], components: [4], outputComponent: 1, code,
  }), [qkv], 'float32');
}
