import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { SubgroupMatrixConfig } from './device-facts.js';
import { deviceFactsOf } from './device-facts.js';
import { FLAT_WORKGROUP_WGSL, flatDispatch, program } from './program.js';
import { matrixOps } from './subgroup-matrix.js';


/** Plain GEMMs may have any number of rows: they run on a multiple of this many (every tiling's rows divide it). */
const RAGGED_ROWS = 128;
const PAD = 8; // f16 elements of padding per workgroup-memory row, against bank conflicts of the matrix loads

/**
 * The tiling of one dispatch: a workgroup of sgRows x sgCols subgroups (32 invocations each) computes a
 * (bm * sgRows) x (bn * sgCols) tile of C, each subgroup a bm x bn block, stepping through K by tk.
 */
export interface Tiles {
  bm: number; sgRows: number; sgCols: number; bn: number; tk: number;
  /** Split-K: `splits` workgroups share each tile's K range, then one pass sums their partial products (default 1). */
  splits?: number;
}

/** The tiling measured best on large GEMMs (H100 runs 10-13): 128 x 128 tiles, 128 x 64 where N is not a multiple of 128. */
export function largeTiles(n: number): Tiles {
  return { bm: 32, sgRows: 4, sgCols: 2, bn: n % 128 === 0 ? 64 : 32, tk: 32 };
}

/** Workgroups per compute unit a GEMM should have before its K range is left whole. */
const ENOUGH_WAVES = 3;
/** K steps each part of a split keeps at least. */
const MIN_SPLIT_STEPS = 8;

/**
 * What the tiling of one GEMM depends on besides its shape: whether it has a bias, the convolution's channels, the
 * device's workgroup memory (`maxBytes`) and compute units (`units`: SMs; one wave is that many workgroups), both
 * device facts (deviceFactsOf, limits); `splitK` false keeps K whole (WebGPUOptions.splitK; default true).
 */
export type TileOpts = { bias?: boolean; convC?: number; maxBytes?: number; units: number; splitK?: boolean };

/**
 * The tiling a GEMM [m, k] x [k, n] gets: largeTiles, unless that leaves the GPU short of workgroups (the UNet's
 * deepest levels): then 64 x 128 tiles below two waves, 64 x 64 below one (H200 run 18: 12-15% off those GEMMs).
 * Where the tile is 128 wide, K steps by 64 instead of 32 when the device's workgroup memory (`maxBytes`) holds it:
 * half the barriers (run 20). Where that still leaves fewer than three workgroups per SM, K is split: 128 x 128
 * (else 64 x 128) tiles and the fewest parts that reach three waves (each part at least 8 K steps), then a pass
 * sums the parts (batch 1's levels 1-3: H200 runs 29-31, bench/RESULTS.md).
 */
export function defaultTiles(m: number, n: number, k: number, opts: TileOpts): Tiles {
  if (!Number.isInteger(opts.units) || opts.units < 1) throw new Error(`defaultTiles: units must be a positive whole number, not ${opts.units}`);
  // asked for every GEMM of every call: the search below is remembered per shape and device
  const key = `${m},${n},${k},${opts.bias ?? false},${opts.convC},${opts.maxBytes},${opts.units},${opts.splitK ?? true}`;
  let t = tilesMemo.get(key);
  if (t === undefined) {
    t = searchTiles(m, n, k, opts);
    tilesMemo.set(key, t);
  }
  return t;
}
const tilesMemo = new Map<string, Tiles>();

function searchTiles(m: number, n: number, k: number, opts: TileOpts): Tiles {
  const t = wholeKTiles(m, n, k, opts);
  const enough = ENOUGH_WAVES * opts.units;
  if (opts.splitK === false || groupsOf(t, m, n) >= enough) return t;
  let best = t;
  const bases: Tiles[] = [largeTiles(n), { bm: 32, sgRows: 2, sgCols: 2, bn: n % 128 === 0 ? 64 : 32, tk: 32 }];
  for (const base of bases) {
    const tt = deepK(base, n, opts);
    if (!tilesFit(tt, m, n, k)) continue;
    for (let s = 2; s <= 16; s++) {
      if (k % (tt.tk * s) !== 0 || k / (tt.tk * s) < MIN_SPLIT_STEPS) continue;
      const split = { ...tt, splits: s };
      if (groupsOf(split, m, n) > groupsOf(best, m, n)) best = split;
      if (groupsOf(split, m, n) >= enough) return split;
    }
  }
  return best;
}

/** Workgroups a tiling dispatches (split-K parts included). */
function groupsOf(t: Tiles, m: number, n: number): number {
  return (m / (t.bm * t.sgRows)) * (n / (t.bn * t.sgCols)) * (t.splits ?? 1);
}

/** defaultTiles without split-K. */
function wholeKTiles(m: number, n: number, k: number, opts: TileOpts): Tiles {
  const large = largeTiles(n);
  const groups = (m / (large.bm * large.sgRows)) * (n / (large.bn * large.sgCols));
  let t = large;
  if (groups < 2 * opts.units && m % 64 === 0) {
    if (groups >= opts.units) t = n % 128 === 0 ? { bm: 32, sgRows: 2, sgCols: 2, bn: 64, tk: 32 } : large;
    else t = n % 64 === 0 ? { bm: 32, sgRows: 2, sgCols: 2, bn: 32, tk: 32 } : large;
  }
  const deep = deepK(t, n, opts);
  return deep !== t && tilesFit(deep, m, n, k) ? deep : t;
}

/** `t` with K steps of 64 where the tile is 128 wide and the device's workgroup memory holds it, else `t`. */
function deepK(t: Tiles, n: number, opts: TileOpts): Tiles {
  const deep = { ...t, tk: 64 };
  return n % 128 === 0 && opts.maxBytes !== undefined && (opts.convC === undefined || opts.convC % 64 === 0)
    && tilesBytes(deep, opts.bias ?? false) <= opts.maxBytes ? deep : t;
}

/**
 * Workgroup memory a tiling takes: the f16 A and B tiles (padded rows) and, with a bias, one f32 row block (or, with
 * a residual too, the bias as f16 rows and a block of ones).
 */
export function tilesBytes(t: Tiles, bias: boolean, sm = 16): number {
  const tm = t.bm * t.sgRows;
  const tn = t.bn * t.sgCols;
  return 2 * (tm * (t.tk + PAD) + t.tk * (tn + PAD)) + (bias ? 4 * sm * tn : 0);
}

export function tilesFit(t: Tiles, m: number, n: number, k: number, cfg?: { M: number; N: number; K: number }): boolean {
  const tm = t.bm * t.sgRows;
  const tn = t.bn * t.sgCols;
  const threads = 32 * t.sgRows * t.sgCols;
  return m % tm === 0 && n % tn === 0 && k % (t.tk * (t.splits ?? 1)) === 0 && (tm * t.tk / 4) % threads === 0
    && (t.tk * tn / 4) % threads === 0 && threads <= 1024
    && (!cfg || (t.bm % cfg.M === 0 && t.bn % cfg.N === 0 && t.tk % cfg.K === 0));
}

/** Whether a plain GEMM fits the staged kernel; any m does (rounded up to a multiple of 128 rows). */
export function matMulF16StagedSupported(m: number, n: number, k: number): boolean {
  return m > 0 && tilesFit(largeTiles(n), paddedRows(m), n, k);
}

/** The rows a plain GEMM of m rows runs on. */
export function paddedRows(m: number): number {
  return Math.ceil(m / RAGGED_ROWS) * RAGGED_ROWS;
}

/**
 * A convolution as an implicit GEMM: A[m, k] is read from the NHWC input x [n, h, w, c] at m = (image, output y,
 * output x) and k = (ky, kx, channel) with zero padding, so no im2col buffer exists; B is the HWIO filter seen as
 * [kh*kw*c, out]. Stride 1 keeps h x w (padTop/padLeft as given, the rest implied); stride 2 gives oh x ow.
 */
export interface ConvGeom {
  n: number; h: number; w: number; c: number; kh: number; kw: number; padTop: number; padLeft: number;
  /** Stride (both axes; 1 when absent) and the output's height and width (h and w when absent). */
  stride?: number; oh?: number; ow?: number;
}

/** Output rows of the implicit GEMM: images x output pixels. */
export function convRows(g: ConvGeom): number {
  return g.n * (g.oh ?? g.h) * (g.ow ?? g.w);
}

/** Whether a convolution fits the staged kernel; any number of output rows does (rounded up like a plain GEMM's). */
export function convF16Supported(g: ConvGeom, out: number): boolean {
  return g.c % largeTiles(out).tk === 0 && tilesFit(largeTiles(out), paddedRows(convRows(g)), out, g.kh * g.kw * g.c);
}

/** What a staged GEMM may have besides its operands. */
export interface StagedOptions {
  /** A is the NHWC input of this convolution (an implicit GEMM). */
  conv?: ConvGeom;
  /** The tiling (else defaultTiles). */
  tiles?: Tiles;
  /** Added to the output in the accumulators (float32, the output's m x n elements). */
  residual?: tf.TensorInfo | null;
  /** defaultTiles may split K (WebGPUOptions.splitK; default true). */
  splitK?: boolean;
  /** Tests: the subgroup-matrix builtins replaced by per-lane loops (subgroup-matrix.ts; 16x16x16 only). */
  emulate?: boolean;
  /** B's columns and whether B is float16 pairs packed in float32 elements (Param.half); default: float32 [k, n]. */
  b?: { half: boolean; n: number };
  /** Benchmark timing probe (garbage results). */
  probe?: GemmProbe;
  /**
   * Experimental: the bytes of each store into workgroup memory: 2 (an f16 at a time, the default), 8 (a vec4 as
   * vec2<u32>) or 16 (two vec4s as vec4<u32>, where each thread stages an even number of vec4s, else 8). Wider stores
   * declare the tiles as WGSL `buffer`s viewed both as f16 (matrix loads) and as u32 vectors (stores): the
   * `buffer_view` language feature.
   */
  storeBytes?: 2 | 8 | 16;
  /**
   * Experimental: A's prefetched vec4s are converted to f16 as they arrive and held as halves (half the registers of
   * the prefetch; the kernel's occupancy is bound by registers).
   */
  halfRegisters?: boolean;
}

/**
 * A timing probe of the staged kernel (garbage results): 'mma-only' stages nothing into workgroup memory,
 * 'staging-only' multiplies nothing, 'mma-no-loads' only multiplies (the matrices loaded once before the K loop:
 * the raw rate of the matrix products), 'b-col-major' stages B as if it came transposed ([n, k], so its staging
 * writes rows of K like A's) and loads it column-major.
 */
export type GemmProbe = 'mma-only' | 'staging-only' | 'mma-no-loads' | 'b-col-major';

/**
 * Experimental tensor-core matmul that reads float32 A [m, k] and B [k, n] directly (no packing pass): tiles of
 * 128 x (64|128) x 32 are read as vec4 into registers one step ahead (so global loads overlap the matrix math),
 * converted to f16 in padded workgroup memory, and each subgroup accumulates a 32 x 64 (or 32 x 32) block in f32 matrices.
 * An optional bias [n] starts the accumulators (loaded from a replicated 16-row tile), so Linear needs no Add.
 *
 * An optional `residual` (float32, the output's m x n elements) is added too, with no pass of its own: the
 * accumulators start from it, read straight from its buffer, and the bias then comes in through one extra
 * matrix product, ones x [hi; bias - hi] with hi the bias cut to f16 precision, exact to about 2^-21 of the bias.
 */
export function matMulF16StagedInfo(backend: WebGPUBackend, a: tf.TensorInfo, b: tf.TensorInfo,
  bias: tf.TensorInfo | null, cfg: SubgroupMatrixConfig, outShape: number[], opts: StagedOptions = {}): tf.TensorInfo {
  const { conv, tiles, residual = null, splitK = true, emulate = false, storeBytes = 2, halfRegisters = false } = opts;
  const bCol = opts.probe === 'b-col-major';
  const wideStores = storeBytes !== 2;
  const halfB = opts.b?.half ?? false;
  // A's rows; a GEMM (or convolution) whose rows its tiling does not divide runs on rows rounded up to a multiple of
  // 128 (A's last row read again) and its output is cut back to `rows`
  const rows = conv ? convRows(conv) : a.shape[a.shape.length - 2];
  const k = conv ? conv.kh * conv.kw * conv.c : a.shape[a.shape.length - 1];
  const n = opts.b?.n ?? b.shape[b.shape.length - 1];
  const m = tiles && tilesFit(tiles, rows, n, k) ? rows : paddedRows(rows);
  const t = tiles ?? defaultTiles(m, n, k, { bias: bias !== null, convC: conv?.c,
    maxBytes: backend.device.limits.maxComputeWorkgroupStorageSize, units: deviceFactsOf(backend).computeUnits, splitK });
  if (!tilesFit(t, m, n, k, cfg) || (conv && conv.c % t.tk !== 0)) {
    throw new Error(`matMulF16Staged: [${m},${k}]x[${k},${n}] does not fit the tiles ${JSON.stringify(t)}`);
  }
  if (residual && (rows !== m || tf.util.sizeFromShape(residual.shape) !== m * n)) {
    throw new Error(`matMulF16Staged: residual [${residual.shape}] is not the ${m}x${n} output`);
  }
  const { bm: BLOCK_M, sgCols, bn: blockN, tk: TK } = t;
  const S = t.splits ?? 1;
  const TM = BLOCK_M * t.sgRows;
  const TN = blockN * sgCols;
  const threads = 32 * t.sgRows * sgCols;
  const AS = TK + PAD;
  // B's workgroup rows: K rows of TN, or (b-col-major probe) TN rows of K
  const BS = bCol ? TK + PAD : TN + PAD;
  const aVecs = (TM * TK / 4) / threads;
  const bVecs = (TK * TN / 4) / threads;
  const { M: SM, N: SN, K: SK } = cfg;
  const rm = BLOCK_M / SM;
  const rn = blockN / SN;
  const [stride, oh, ow] = conv ? [conv.stride ?? 1, conv.oh ?? conv.h, conv.ow ?? conv.w] : [1, 0, 0];
  // the source is built only when the backend compiles this key (program() takes a function)
  const code = () => {
    const mx = matrixOps(emulate, cfg);
    const lines = { acc: [] as string[], frag: [] as string[], mma: [] as string[], store: [] as string[] };
    // with wide stores the tiles are buffer views: pointers, read through (*As)
    const [as, bs] = wideStores ? ['(*As)', '(*Bs)'] : ['As', 'Bs'];
    for (let i = 0; i < rm; i++) lines.frag.push(mx.loadLeft(`a${i}`, as, `(sgRow + ${i * SM}u) * AS + kk`, AS));
    for (let j = 0; j < rn; j++) {
      lines.frag.push(bCol ? mx.loadRight(`b${j}`, bs, `(sgCol + ${j * SN}u) * BS + kk`, BS, true)
        : mx.loadRight(`b${j}`, bs, `kk * BS + sgCol + ${j * SN}u`, BS));
    }
    // the accumulators start from the residual and/or the bias (only split 0's, with split-K)
    const init: string[] = [];
    if (residual && bias) {
      init.push(mx.loadLeft('ones', 'onesTile', '0u', SK));
      for (let j = 0; j < rn; j++) init.push(mx.loadRight(`bias${j}`, 'biasHL', `sgCol + ${j * SN}u`, TN));
    }
    for (let i = 0; i < rm; i++) {
      for (let j = 0; j < rn; j++) {
        lines.acc.push(mx.zero(`acc${i}_${j}`));
        if (residual) {
          init.push(mx.loadResult(`acc${i}_${j}`, 'Residual', `(row0 + sgRow + ${i * SM}u) * N + col0 + sgCol + ${j * SN}u`, 'N'));
          if (bias) init.push(mx.mma(`acc${i}_${j}`, 'ones', `bias${j}`));
        } else if (bias) {
          init.push(mx.loadResult(`acc${i}_${j}`, 'biasTile', `sgCol + ${j * SN}u`, 'TN'));
        }
        lines.mma.push(mx.mma(`acc${i}_${j}`, `a${i}`, `b${j}`));
        lines.store.push(mx.store('result', `${S > 1 ? 'part0 + ' : ''}(row0 + sgRow + ${i * SM}u) * N + col0 + sgCol + ${j * SN}u`, `acc${i}_${j}`, 'N'));
      }
    }
    if (init.length) lines.acc.push(S > 1 ? `if (workgroupId.z == 0u) {\n    ${init.join('\n    ')}\n  }` : init.join('\n  '));
    // which tile element thread `tid`'s v-th staged vec4 is: row r and vec4 column c of a tile `perRow` vec4s wide.
    // 16-byte stores pair vec4s 2j and 2j + 1 of a thread as adjacent columns (one store of eight halves).
    const paired = (vecs: number) => storeBytes === 16 && vecs % 2 === 0;
    const at = (v: number, perRow: number, pairs: boolean) => {
      const e = `(tid + ${(pairs ? v >> 1 : v) * threads}u)`;
      return pairs
        ? `let r = ${e} / ${perRow / 2}u; let c = (${e} % ${perRow / 2}u) * 2u + ${v & 1}u;`
        : `let r = ${e} / ${perRow}u; let c = ${e} % ${perRow}u;`;
    };
    const [pairA, pairB] = [paired(aVecs), paired(bVecs)];
    const rowA = rows < m ? `min(row0 + r, ${rows - 1}u)` : '(row0 + r)';
    const toRegA = (x: string) => (halfRegisters ? `vec4<f16>(${x})` : x);
    const loadA = (v: number, k0: string) => conv
      ? `{ ${at(v, TK / 4, pairA)} let mm = ${rowA}; let tap = ${k0} / ${conv.c}u;
        let xx = i32(mm % ${ow}u) * ${stride} + i32(tap % ${conv.kw}u) - ${conv.padLeft};
        let yy = i32((mm / ${ow}u) % ${oh}u) * ${stride} + i32(tap / ${conv.kw}u) - ${conv.padTop};
        var v = vec4<f32>(0.0);
        if (xx >= 0 && xx < ${conv.w} && yy >= 0 && yy < ${conv.h}) {
          v = A[((mm / ${ow * oh}u * ${conv.h}u + u32(yy)) * ${conv.w}u + u32(xx)) * ${conv.c / 4}u + (${k0} % ${conv.c}u) / 4u + c];
        }
        ra[${v}] = ${toRegA('v')}; }`
      : `{ ${at(v, TK / 4, pairA)} ra[${v}] = ${toRegA(`A[${rowA} * K4 + ${k0} / 4u + c]`)}; }`;
    // the b-col-major probe reads B's buffer as [n, k] (the same number of elements)
    const loadB = (v: number, k0: string) => (bCol
      ? `{ ${at(v, TK / 4, pairB)} rb[${v}] = B[(col0 + r) * K4 + ${k0} / 4u + c]; }`
      : `{ ${at(v, TN / 4, pairB)} rb[${v}] = B[(${k0} + r) * N4 + col0 / 4u + c]; }`);
    const loadRegs = (k0: string) => [
      ...Array.from({ length: aVecs }, (_, v) => loadA(v, k0)),
      ...Array.from({ length: bVecs }, (_, v) => loadB(v, k0)),
    ].join('\n    ');
    // staged vec4s into workgroup memory: four f16 stores each, or one 8-byte store, or (paired) one 16-byte store of
    // two; B read as halves needs no conversion
    const bits = (x: string, half: boolean) => `bitcast<vec2<u32>>(${half ? x : `vec4<f16>(${x})`})`;
    const put = (dst: string, x: string, half: boolean) => storeBytes === 8
      ? `${dst}4[o / 4u] = ${bits(x, half)};`
      : ['x', 'y', 'z', 'w'].map((c, i) => `${dst}[o${i ? ` + ${i}u` : ''}] = ${half ? `${x}.${c}` : `f16(${x}.${c})`};`).join(' ');
    const stage = (dst: string, regs: string, vecs: number, perRow: number, stride: string, half: boolean, pairs: boolean) => pairs
      ? Array.from({ length: vecs / 2 }, (_, j) => `{ ${at(2 * j, perRow, true)} let o = r * ${stride} + c * 4u; `
        + `${dst}8[o / 8u] = vec4<u32>(${bits(`${regs}[${2 * j}]`, half)}, ${bits(`${regs}[${2 * j + 1}]`, half)}); }`)
      : Array.from({ length: vecs }, (_, v) => `{ ${at(v, perRow, false)} let o = r * ${stride} + c * 4u; let x = ${regs}[${v}]; ${put(dst, 'x', half)} }`);
    const storeRegsReal = [
      ...stage('As', 'ra', aVecs, TK / 4, 'AS', halfRegisters, pairA),
      ...stage('Bs', 'rb', bVecs, bCol ? TK / 4 : TN / 4, 'BS', halfB, pairB),
    ].join('\n    ');
    // the probes without staging still read A and B (unused: the compiler drops the reads, the bindings stay)
    const noStaging = opts.probe === 'mma-only' || opts.probe === 'mma-no-loads';
    const storeRegs = noStaging ? '' : storeRegsReal;
    if (opts.probe === 'staging-only') lines.frag.length = lines.mma.length = 0;
    // mma-no-loads: the matrices once, before the K loop
    const hoisted = opts.probe === 'mma-no-loads' ? `let kk = 0u;\n  ${lines.frag.join('\n  ')}` : '';
    const inner = [...(hoisted ? [] : lines.frag), ...lines.mma];
    return `
  enable f16;
  ${mx.enable}
  ${wideStores ? 'requires buffer_view;' : ''}
  ${halfB ? '// t2v:f16 B' : ''}
  const N = ${n}u;
  const K4 = ${k / 4}u;
  const N4 = ${n / 4}u;
  const TN = ${TN}u;
  const AS = ${AS}u;
  const BS = ${BS}u;
  ${wideStores ? `var<workgroup> smemA : buffer<${TM * AS * 2}>;
  var<workgroup> smemB : buffer<${TK * BS * 2}>;` : `var<workgroup> As : array<f16, ${TM * AS}>;
  var<workgroup> Bs : array<f16, ${(bCol ? TN : TK) * BS}>;`}
  ${!bias ? '' : residual ? `var<workgroup> onesTile : array<f16, ${SM * SK}>;
  var<workgroup> biasHL : array<f16, ${SK * TN}>;` : `var<workgroup> biasTile : array<f32, ${SM * TN}>;`}
  fn main() {
    let tid = localIndex;
    let sg = tid / 32u;
    let lane = tid % 32u;
    let row0 = workgroupId.y * ${TM}u;
    let col0 = workgroupId.x * TN;
    let sgRow = (sg / ${sgCols}u) * ${BLOCK_M}u;
    let sgCol = (sg % ${sgCols}u) * ${blockN}u;
    ${wideStores ? `let As = bufferView<array<f16, ${TM * AS}>>(&smemA, 0u);
    let As4 = bufferView<array<vec2<u32>, ${TM * AS / 4}>>(&smemA, 0u);
    let Bs = bufferView<array<f16, ${TK * BS}>>(&smemB, 0u);
    let Bs4 = bufferView<array<vec2<u32>, ${TK * BS / 4}>>(&smemB, 0u);
    let As8 = bufferView<array<vec4<u32>, ${TM * AS / 8}>>(&smemA, 0u);
    let Bs8 = bufferView<array<vec4<u32>, ${TK * BS / 8}>>(&smemB, 0u);` : ''}
    ${!bias ? '' : residual ? `for (var e = tid; e < ${SM * SK}u; e += ${threads}u) { onesTile[e] = select(0.0h, 1.0h, e % ${SK}u < 2u); }
    for (var e = tid; e < ${SK}u * TN; e += ${threads}u) {
      let r = e / TN;
      let v = Bias[col0 + e % TN];
      // hi: v cut to f16's 10 mantissa bits by masking (f32(f16(v)) may be folded to v by a compiler, losing lo)
      let hi = bitcast<f32>(bitcast<u32>(v) & 0xffffe000u);
      biasHL[e] = select(0.0h, select(f16(v - hi), f16(hi), r == 0u), r < 2u);
    }
    workgroupBarrier();` : `for (var e = tid; e < ${SM}u * TN; e += ${threads}u) { biasTile[e] = Bias[col0 + e % TN]; }
    workgroupBarrier();`}
    ${lines.acc.join('\n  ')}
    var ra : array<vec4<${halfRegisters ? 'f16' : 'f32'}>, ${aVecs}>;
    var rb : array<vec4<${halfB ? 'f16' : 'f32'}>, ${bVecs}>;
    // workgroupId is not provably uniform (tfjs copies it into a private variable): the loop counts steps, so that
    // its barriers stay in uniform control flow
    let kBegin = ${S > 1 ? `workgroupId.z * ${k / S}u` : '0u'};
    ${S > 1 ? `let part0 = workgroupId.z * ${m * n}u;` : ''}
    ${loadRegs('kBegin')}
    ${hoisted}
    for (var step = 0u; step < ${k / S / TK}u; step++) {
      let k0 = kBegin + step * ${TK}u;
      ${storeRegs}
      workgroupBarrier();
      if (step + 1u < ${k / S / TK}u) {
        let k1 = k0 + ${TK}u;
        ${loadRegs('k1')}
      }
      for (var kStep = 0u; kStep < ${TK}u; kStep += ${SK}u) {
        ${hoisted ? '' : 'let kk = kStep;'}
        ${inner.join('\n      ')}
      }
      workgroupBarrier();
    }
    ${lines.store.join('\n  ')}
  }`;
  };
  const inputs = [a, b, ...(bias ? [bias] : []), ...(residual ? [residual] : [])];
  const prog = program({
    key: `t2vMatMulF16Staged${emulate ? 'Emu' : ''}_${rows}_${m}_${n}_${k}_${SM}_${SN}_${SK}_${BLOCK_M}x${t.sgRows}x${sgCols}x${blockN}x${TK}_${bias ? 'b' : ''}${residual ? 'r' : ''}${S > 1 ? `s${S}` : ''}${halfB ? 'h' : ''}${wideStores ? `w${storeBytes}` : ''}${halfRegisters ? 'hr' : ''}${opts.probe ?? ''}_${conv ? Object.values(conv).join('x') : ''}`,
    inputs: ['A', 'B', ...(bias ? ['Bias'] : []), ...(residual ? ['Residual'] : [])],
    outputShape: S > 1 ? [S * m * n] : rows < m ? [m * n] : outShape,
    workgroupSize: threads,
    dispatch: [n / TN, m / TM, S],
    components: [4, 4, ...(bias ? [1] : []), ...(residual ? [1] : [])],
    outputComponent: 1,
    code,
  });
  const out = backend.runWebGPUProgram(prog, inputs, 'float32');
  if (S === 1 && rows === m) return out;
  const sum = S > 1 ? sumSplits(backend, out, S, rows < m ? [m * n] : outShape) : out;
  if (S > 1) backend.disposeData(out.dataId);
  if (rows === m) return sum;
  const cut = tf.getKernel('Slice', 'webgpu')!.kernelFunc({ inputs: { x: sum }, backend, attrs: { begin: [0], size: [rows * n] } }) as tf.TensorInfo;
  backend.disposeData(sum.dataId);
  return { ...cut, shape: outShape };
}

/** The sum of a split-K GEMM's `splits` partial products, [splits * size] -> outShape (size elements). */
function sumSplits(backend: WebGPUBackend, parts: tf.TensorInfo, splits: number, outShape: number[]): tf.TensorInfo {
  const vecs = tf.util.sizeFromShape(outShape) / 4;
  const terms = Array.from({ length: splits }, (_, s) => `P[i + ${s * vecs}u]`).join(' + ');
  return backend.runWebGPUProgram(program({
    key: `t2vSplitKSum_${splits}_${vecs}`,
    inputs: ['P'],
    outputShape: outShape,
    workgroupSize: 256,
    dispatch: flatDispatch(Math.ceil(vecs / 256)),
    components: [4],
    outputComponent: 4,
    code: () => `
${FLAT_WORKGROUP_WGSL}
fn main() {
  let i = flatWorkgroup() * 256u + localId.x;
  if (i < ${vecs}u) { result[i] = ${terms}; }
}`,
  }), [parts], 'float32');
}

export function matMulF16Staged(a: tf.Tensor2D, b: tf.Tensor2D, cfg: SubgroupMatrixConfig, bias?: tf.Tensor1D): tf.Tensor2D {
  const info = matMulF16StagedInfo(tf.backend() as WebGPUBackend, a, b, bias ?? null, cfg, [a.shape[0], b.shape[1]]);
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D;
}
