import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { SubgroupMatrixConfig } from '../dawn.js';
import { convF16Supported, convRows, matMulF16StagedInfo, matMulF16StagedSupported, paddedRows, tilesFit, type ConvGeom, type Tiles } from './matmul-f16-staged.js';
import { gemvInfo, gemvSupported } from './gemv.js';
import { FLAT_WORKGROUP_WGSL, flatDispatch, program } from './program.js';

/** Each subgroup (32 invocations) owns a 32 x 64 block of the output; four of them stack into a 128 x 64 tile. */
const BLOCK_M = 32;
const BLOCK_N = 64;
const SUBGROUPS = 4;
const TILE_M = BLOCK_M * SUBGROUPS;

/** The f16 x f16 -> f32 configuration whose sizes tile a block, or null. */
export function pickConfig(configs: SubgroupMatrixConfig[]): SubgroupMatrixConfig | null {
  return configs.find((c) => c.componentType === 'f16' && c.resultComponentType === 'f32'
    && BLOCK_M % c.M === 0 && BLOCK_N % c.N === 0) ?? null;
}

export function matMulF16Supported(m: number, n: number, k: number): boolean {
  return m % TILE_M === 0 && n % BLOCK_N === 0 && k % 16 === 0;
}

/** float32 [.., 2j] -> f16 pairs packed into float32 [.., j] (bit patterns, for `// t2v:f16` bindings). */
function packF16(backend: WebGPUBackend, x: tf.TensorInfo): tf.TensorInfo {
  const size = x.shape.reduce((a, b) => a * b, 1);
  const pairs = size / 2;
  const code = () => `
${FLAT_WORKGROUP_WGSL}
fn main() {
  let i = flatWorkgroup() * 256u + localId.x;
  if (i >= ${pairs}u) { return; }
  result[i] = bitcast<f32>(pack2x16float(vec2<f32>(X[2u * i], X[2u * i + 1u])));
}`;
  return backend.runWebGPUProgram(program({
    key: `t2vPackF16_${pairs}`, inputs: ['X'], outputShape: [pairs], workgroupSize: 256,
    dispatch: flatDispatch(Math.ceil(pairs / 256)), components: [1], outputComponent: 1, code,
  }), [x], 'float32');
}

/**
 * Experimental: C[m, n] = A[m, k] B[k, n] on tensor cores through subgroup matrices (f16 inputs, f32 accumulation),
 * float32 tensors in and out. A and B are first packed to f16 (one elementwise pass each); then every subgroup loads
 * its 16x16 operands straight from those buffers (the cache shares them between subgroups; no workgroup memory, no
 * barriers) and accumulates a 32x64 block. Needs useWebGPUWithTensorCores() and tile-multiple sizes. Expect about
 * 3e-4 relative error on a matmul from the f16 inputs.
 */
export function matMulF16(a: tf.Tensor2D, b: tf.Tensor2D, cfg: SubgroupMatrixConfig): tf.Tensor2D {
  const info = matMulF16Info(tf.backend() as WebGPUBackend, a, b, cfg, [a.shape[0], b.shape[1]]);
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D;
}

/** The same on TensorInfos of [.., m, k] and [.., k, n] with a batch of 1 (what a kernel function gets). */
export function matMulF16Info(backend: WebGPUBackend, a: tf.TensorInfo, b: tf.TensorInfo, cfg: SubgroupMatrixConfig,
  outShape: number[]): tf.TensorInfo {
  const m = a.shape[a.shape.length - 2];
  const k = a.shape[a.shape.length - 1];
  const n = b.shape[b.shape.length - 1];
  if (!matMulF16Supported(m, n, k)) throw new Error(`matMulF16: [${m},${k}]x[${k},${n}] does not fit the tiles`);
  const { M: SM, N: SN, K: SK } = cfg;
  const rm = BLOCK_M / SM;
  const rn = BLOCK_N / SN;
  const left = `subgroup_matrix_left<f16, ${SK}, ${SM}>`;
  const right = `subgroup_matrix_right<f16, ${SN}, ${SK}>`;
  const res = `subgroup_matrix_result<f32, ${SN}, ${SM}>`;
  const accDecl: string[] = [];
  const mma: string[] = [];
  const store: string[] = [];
  for (let i = 0; i < rm; i++) mma.push(`let a${i} = subgroupMatrixLoad<${left}>(&AH, (row + ${i * SM}u) * K + kk, false, K);`);
  for (let j = 0; j < rn; j++) mma.push(`let b${j} = subgroupMatrixLoad<${right}>(&BH, kk * N + col + ${j * SN}u, false, N);`);
  for (let i = 0; i < rm; i++) {
    for (let j = 0; j < rn; j++) {
      accDecl.push(`var acc${i}_${j} = ${res}();`);
      mma.push(`acc${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, acc${i}_${j});`);
      store.push(`subgroupMatrixStore(&result, (row + ${i * SM}u) * N + col + ${j * SN}u, acc${i}_${j}, false, N);`);
    }
  }
  const code = () => `
enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
// t2v:f16 AH BH
const N = ${n}u;
const K = ${k}u;
fn main() {
  let sg = localIndex / 32u;
  let row = workgroupId.y * ${TILE_M}u + sg * ${BLOCK_M}u;
  let col = workgroupId.x * ${BLOCK_N}u;
  ${accDecl.join('\n  ')}
  for (var kk = 0u; kk < K; kk += ${SK}u) {
    ${mma.join('\n    ')}
  }
  ${store.join('\n  ')}
}`;
  const ah = packF16(backend, a);
  const bh = packF16(backend, b);
  const prog = program({
    key: `t2vMatMulF16_${m}_${n}_${k}_${SM}_${SN}_${SK}`,
    inputs: ['AH', 'BH'],
    outputShape: outShape,
    workgroupSize: 32 * SUBGROUPS,
    dispatch: [n / BLOCK_N, m / TILE_M, 1],
    components: [1, 1],
    outputComponent: 1,
    code,
  });
  const out = backend.runWebGPUProgram(prog, [ah, bh], 'float32');
  backend.disposeData(ah.dataId);
  backend.disposeData(bh.dataId);
  return out;
}

/**
 * Experimental: route the webgpu backend's MatMul kernels (BatchMatMul, _FusedMatMul with a bias and no
 * activation) through the staged kernel (bias in the accumulators) or matMulF16 wherever the shapes fit (batch 1, no transposes, tile multiples); the rest keep
 * tfjs's kernels. Returns a function that restores the originals.
 */
export interface RouteStats { routed: number; fallback: number }

/** One GEMM the route sends to the staged kernel: C[m, n] = A[m, k] B[k, n] (+ bias), A implicit for a convolution. */
export interface GemmShape { m: number; n: number; k: number; bias: boolean; conv?: ConvGeom }
/** Picks the tiling for a GEMM; null (or a tiling that does not fit) keeps the default (defaultTiles). */
export type TileChooser = (s: GemmShape) => Tiles | null;

let tileChooser: TileChooser | null = null;
/** Every routed GEMM asks `choose` for its tiling from now on (null: the default tiling); the benchmark sweeps with it. */
export function setTileChooser(choose: TileChooser | null): void {
  tileChooser = choose;
}
/** Called with every GEMM the route sends to the staged kernel (the benchmark collects the UNet's shapes). */
let gemmObserver: ((s: GemmShape) => void) | null = null;
export function observeGemms(observer: ((s: GemmShape) => void) | null): void {
  gemmObserver = observer;
}

function chosenTiles(s: GemmShape): Tiles | undefined {
  gemmObserver?.(s);
  const t = tileChooser?.(s);
  return t && tilesFit(t, s.m, s.n, s.k) && (!s.conv || s.conv.c % t.tk === 0) ? t : undefined;
}

let routed: { cfg: SubgroupMatrixConfig; kernel: 'staged' | 'direct'; minKN: number; stats: RouteStats } | null = null;

/**
 * C = A B (+ bias) (+ residual) on the tensor-core route when it is on and the shapes fit (batch 1, no transposes,
 * tile multiples, bias [n], a residual of the output's size); null otherwise.
 */
export function routedMatMul(backend: WebGPUBackend, a: tf.TensorInfo, b: tf.TensorInfo, bias: tf.TensorInfo | null,
  residual: tf.TensorInfo | null, attrs: { transposeA?: boolean; transposeB?: boolean; activation?: string } = {},
  prelu: tf.TensorInfo | null = null): tf.TensorInfo | null {
  if (!routed) return null;
  const { cfg, kernel, minKN, stats } = routed;
  const batchA = a.shape.slice(0, -2).reduce((x, y) => x * y, 1);
  const batchB = b.shape.slice(0, -2).reduce((x, y) => x * y, 1);
  const m = a.shape[a.shape.length - 2];
  const k = a.shape[a.shape.length - 1];
  const n = b.shape[b.shape.length - 1];
  const plain = !attrs.transposeA && !attrs.transposeB && batchA === 1 && batchB === 1
    && (attrs.activation === undefined || attrs.activation === 'linear') && prelu == null;
  const vectorBias = !bias || (bias.shape.length === 1 && bias.shape[0] === n);
  const outShape = a.shape.length > 2 ? [...a.shape.slice(0, -1), n] : [m, n];
  if (plain && gemvSupported(m, n) && vectorBias && (!residual || tf.util.sizeFromShape(residual.shape) === n)) {
    stats.routed++;
    return gemvInfo(backend, a, b, bias, residual, outShape);
  }
  const fits = plain
    && (kernel === 'staged' ? matMulF16StagedSupported(m, n, k) : matMulF16Supported(m, n, k)) && k * n >= minKN
    && (!residual || (kernel === 'staged' && tf.util.sizeFromShape(residual.shape) === m * n && vectorBias && paddedRows(m) === m));
  if (!fits) {
    stats.fallback++;
    return null;
  }
  stats.routed++;
  if (kernel === 'staged' && vectorBias) {
    const tiles = chosenTiles({ m: paddedRows(m), n, k, bias: bias != null });
    return matMulF16StagedInfo(backend, a, b, bias, cfg, outShape, undefined, tiles, residual);
  }
  const out = matMulF16Info(backend, a, b, cfg, outShape);
  if (!bias) return out;
  const add = tf.getKernel('Add', 'webgpu')!;
  const y = add.kernelFunc({ inputs: { a: out, b: bias }, backend, attrs: {} }) as tf.TensorInfo;
  backend.disposeData(out.dataId);
  return y;
}

/** The same for a convolution convGeom accepts (an implicit GEMM on the staged kernel), or null. */
export function routedConv2D(backend: WebGPUBackend, x: tf.TensorInfo, filter: tf.TensorInfo, bias: tf.TensorInfo | null,
  residual: tf.TensorInfo | null, attrs: Record<string, unknown>, prelu: tf.TensorInfo | null = null): tf.TensorInfo | null {
  if (!routed || routed.kernel !== 'staged') return null;
  const { cfg, stats } = routed;
  const geom = convGeom(x, filter, attrs);
  const out = filter.shape[3];
  const ok = geom !== null && convF16Supported(geom, out) && prelu == null
    && (!bias || (bias.shape.length === 1 && bias.shape[0] === out))
    && (!residual || tf.util.sizeFromShape(residual.shape) === convRows(geom) * out);
  if (!ok) {
    stats.fallback++;
    return null;
  }
  stats.routed++;
  const tiles = chosenTiles({ m: convRows(geom), n: out, k: geom.kh * geom.kw * geom.c, bias: bias != null, conv: geom });
  return matMulF16StagedInfo(backend, x, filter, bias, cfg, [geom.n, geom.oh ?? geom.h, geom.ow ?? geom.w, out], geom, tiles, residual);
}

export function routeMatMulsToTensorCores(cfg: SubgroupMatrixConfig, kernel: 'staged' | 'direct' = 'staged',
  opts: { minKN?: number; stats?: RouteStats } = {}): () => void {
  // matmuls with k * n below minKN stay on tfjs's kernel (the tensor-core tile is wasteful on them)
  routed = { cfg, kernel, minKN: opts.minKN ?? 0, stats: opts.stats ?? { routed: 0, fallback: 0 } };
  const saved: tf.KernelConfig[] = [];
  for (const name of ['BatchMatMul', '_FusedMatMul']) {
    const orig = tf.getKernel(name, 'webgpu');
    if (!orig) continue;
    saved.push(orig);
    tf.unregisterKernel(name, 'webgpu');
    tf.registerKernel({
      kernelName: name, backendName: 'webgpu',
      kernelFunc: (args) => {
        const { inputs, attrs, backend } = args;
        return routedMatMul(backend as WebGPUBackend, inputs.a!, inputs.b!, inputs.bias ?? null, null,
          attrs as { transposeA?: boolean; transposeB?: boolean; activation?: string }, inputs.preluActivationWeights ?? null)
          ?? orig.kernelFunc(args) as tf.TensorInfo;
      },
    });
  }
  // convolutions (3x3 'same', the temporal (3,1), the stride-2 Downsample) as implicit GEMMs on the staged kernel
  for (const name of ['Conv2D', 'FusedConv2D']) {
    const orig = tf.getKernel(name, 'webgpu');
    if (!orig || kernel !== 'staged') continue;
    saved.push(orig);
    tf.unregisterKernel(name, 'webgpu');
    tf.registerKernel({
      kernelName: name, backendName: 'webgpu',
      kernelFunc: (args) => {
        const { inputs, attrs, backend } = args;
        return routedConv2D(backend as WebGPUBackend, inputs.x!, inputs.filter!, inputs.bias ?? null, null,
          attrs as Record<string, unknown>, inputs.preluActivationWeights ?? null) ?? orig.kernelFunc(args) as tf.TensorInfo;
      },
    });
  }
  return () => {
    routed = null;
    for (const k of saved) {
      tf.unregisterKernel(k.kernelName, 'webgpu');
      tf.registerKernel(k);
    }
  };
}

/** Switch for the benchmark: stride-2 convolutions on the tensor-core route (else tfjs's kernel, as before 4012bb9). */
export const stridedConvs = { enabled: true };

/**
 * The implicit-GEMM geometry of an undilated NHWC convolution: stride 1 keeping h x w ('same', or explicit padding
 * that sums to the kernel size minus one), or stride 2 with explicit padding (the UNet's Downsample), or null.
 */
function convGeom(x: tf.TensorInfo, filter: tf.TensorInfo, attrs: Record<string, unknown>): ConvGeom | null {
  const ones = (v: unknown) => v === undefined || v === 1 || (Array.isArray(v) && v.every((d) => d === 1));
  const s = attrs.strides;
  const stride = s === undefined ? 1 : typeof s === 'number' ? s : Array.isArray(s) && s.every((d) => d === s[0]) ? s[0] as number : 0;
  if ((stride !== 1 && (stride !== 2 || !stridedConvs.enabled)) || !ones(attrs.dilations) || (attrs.dataFormat ?? 'NHWC') !== 'NHWC') return null;
  if (attrs.activation !== undefined && attrs.activation !== 'linear') return null;
  if (x.shape.length !== 4 || filter.shape.length !== 4) return null;
  const [n, h, w, c] = x.shape;
  const [kh, kw] = filter.shape;
  const pad = attrs.pad;
  let padTop: number;
  let padLeft: number;
  if (stride === 2) {
    // explicit padding only: tfjs's 'same' pads stride-2 convolutions asymmetrically
    if (!Array.isArray(pad)) return null;
    const [[, ], [t, bt], [l, r]] = pad as number[][];
    const oh = Math.floor((h + t + bt - kh) / 2) + 1;
    const ow = Math.floor((w + l + r - kw) / 2) + 1;
    return { n, h, w, c, kh, kw, padTop: t, padLeft: l, stride, oh, ow };
  }
  if (pad === 'same') {
    if (kh % 2 === 0 || kw % 2 === 0) return null;
    padTop = (kh - 1) / 2;
    padLeft = (kw - 1) / 2;
  } else if (Array.isArray(pad)) {
    const [[, ], [t, bt], [l, r]] = pad as number[][];
    if (t + bt !== kh - 1 || l + r !== kw - 1) return null;
    padTop = t;
    padLeft = l;
  } else if (typeof pad === 'number') {
    if (2 * pad !== kh - 1 || 2 * pad !== kw - 1) return null;
    padTop = pad;
    padLeft = pad;
  } else {
    return null;
  }
  return { n, h, w, c, kh, kw, padTop, padLeft };
}
