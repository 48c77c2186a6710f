import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { SubgroupMatrixConfig } from './device-facts.js';
import { convF16Supported, convRows, matMulF16StagedInfo, matMulF16StagedSupported, paddedRows, tilesFit, type ConvGeom, type GemmProbe, type Tiles } from './matmul-f16-staged.js';
import { gemvInfo, gemvSupported } from './gemv.js';

/** The f16 x f16 -> f32 subgroup-matrix configuration whose sizes tile the staged kernel's blocks, or null. */
export function pickConfig(configs: readonly SubgroupMatrixConfig[]): SubgroupMatrixConfig | null {
  return configs.find((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && 32 % c.M === 0 && 64 % c.N === 0) ?? null;
}

/** One GEMM the route sends to the staged kernel: C[m, n] = A[m, k] B[k, n] (+ bias), A implicit for a convolution. */
export interface GemmShape { m: number; n: number; k: number; bias: boolean; conv?: ConvGeom }
/** Picks the tiling for a GEMM; null (or a tiling that does not fit) keeps the default (defaultTiles). */
export type TileChooser = (s: GemmShape) => Tiles | null;
/** Counts of GEMMs the route took (routed) or left to tfjs's kernels (fallback). */
export interface RouteStats { routed: number; fallback: number }

/**
 * Everything the tensor-core route of one WebGPUOps needs: the device's subgroup-matrix configuration and, for the
 * benchmark, a tiling override and an observer of every GEMM it runs.
 */
export interface GemmRoute {
  cfg: SubgroupMatrixConfig;
  splitK: boolean;
  tiles: TileChooser | null;
  onGemm: ((s: GemmShape) => void) | null;
  stats: RouteStats;
  /** Tests: the staged kernel with its matrix builtins emulated (software adapters have no subgroup matrices). */
  emulate: boolean;
  /** Benchmark timing probe of the staged kernel (StagedOptions.probe; garbage results). */
  probe?: GemmProbe;
  /** Experimental: the bytes of the staged kernel's workgroup-memory stores (StagedOptions.storeBytes). */
  storeBytes?: 2 | 8 | 16;
  /** Experimental: A's prefetch held as halves (StagedOptions.halfRegisters). */
  halfRegisters?: boolean;
}

/** Whether `rows` run as they are (no rounding up to the tiles, so a residual can start the accumulators). */
const unpadded = (rows: number) => paddedRows(rows) === rows;

/** How a GEMM [m, k] x [k, n] (+ bias [n]) (+ a residual of `residualSize` values) runs on the route, or null. */
export function planGemm(m: number, n: number, k: number, residualSize: number | null): 'gemv' | 'staged' | null {
  if (gemvSupported(m, n) && (residualSize === null || residualSize === n)) return 'gemv';
  if (!matMulF16StagedSupported(m, n, k)) return null;
  return residualSize === null || (residualSize === m * n && unpadded(m)) ? 'staged' : null;
}

function chosenTiles(route: GemmRoute, s: GemmShape): Tiles | undefined {
  route.onGemm?.(s);
  const t = route.tiles?.(s);
  return t && tilesFit(t, s.m, s.n, s.k) && (!s.conv || s.conv.c % t.tk === 0) ? t : undefined;
}

/**
 * How B arrives: `n` columns, as float32 [k, n], or (`half`) as float16 pairs packed two to a float32 element
 * ([k * n / 2], Param.half), which the kernels read as f16 without an unpacking pass.
 */
export interface BOperand { half: boolean; n: number }

/** The TensorCoreGemm kernel: a [.., m, k] x b [k, n] (+ bias [n]) (+ residual) as planGemm planned it (`plan`). */
export function tensorCoreGemm(backend: WebGPUBackend, route: GemmRoute, plan: 'gemv' | 'staged', a: tf.TensorInfo,
  b: tf.TensorInfo, bias: tf.TensorInfo | null, residual: tf.TensorInfo | null, bOp: BOperand): tf.TensorInfo {
  const m = a.shape[a.shape.length - 2];
  const k = a.shape[a.shape.length - 1];
  const n = bOp.n;
  const outShape = a.shape.length > 2 ? [...a.shape.slice(0, -1), n] : [m, n];
  route.stats.routed++;
  if (plan === 'gemv') return gemvInfo(backend, a, b, bias, residual, outShape, bOp.half);
  const tiles = chosenTiles(route, { m: paddedRows(m), n, k, bias: bias != null });
  return matMulF16StagedInfo(backend, a, b, bias, route.cfg, outShape, { tiles, residual, splitK: route.splitK, emulate: route.emulate, b: bOp, probe: route.probe, storeBytes: route.storeBytes, halfRegisters: route.halfRegisters });
}

/**
 * The implicit-GEMM geometry of an undilated NHWC convolution the staged kernel takes (stride 1 keeping h x w, or
 * stride 2 with explicit padding: the UNet's Downsample) with `out` output channels, or null.
 */
export function planConv(x: readonly number[], filter: readonly number[], strides: number, pad: 'same' | number[][]): ConvGeom | null {
  if (x.length !== 4 || filter.length !== 4) return null;
  const [n, h, w, c] = x;
  const [kh, kw, , out] = filter;
  let geom: ConvGeom;
  if (strides === 2) {
    // explicit padding only: tfjs's 'same' pads stride-2 convolutions asymmetrically
    if (!Array.isArray(pad)) return null;
    const [, [t, bt], [l, r]] = pad;
    const oh = Math.floor((h + t + bt - kh) / 2) + 1;
    const ow = Math.floor((w + l + r - kw) / 2) + 1;
    geom = { n, h, w, c, kh, kw, padTop: t, padLeft: l, stride: 2, oh, ow };
  } else if (strides !== 1) {
    return null;
  } else if (pad === 'same') {
    if (kh % 2 === 0 || kw % 2 === 0) return null;
    geom = { n, h, w, c, kh, kw, padTop: (kh - 1) / 2, padLeft: (kw - 1) / 2 };
  } else {
    const [, [t, bt], [l, r]] = pad;
    if (t + bt !== kh - 1 || l + r !== kw - 1) return null;
    geom = { n, h, w, c, kh, kw, padTop: t, padLeft: l };
  }
  return convF16Supported(geom, out) ? geom : null;
}

/** Whether the convolution's residual can be added in the accumulators (its rows need no rounding up). */
export function convTakesResidual(geom: ConvGeom): boolean {
  return unpadded(convRows(geom));
}

/** The TensorCoreConv kernel: conv2d (+ bias) (+ residual) as an implicit GEMM on the staged kernel. */
export function tensorCoreConv(backend: WebGPUBackend, route: GemmRoute, x: tf.TensorInfo, filter: tf.TensorInfo,
  bias: tf.TensorInfo | null, residual: tf.TensorInfo | null, geom: ConvGeom, bOp: BOperand): tf.TensorInfo {
  const out = bOp.n;
  if (residual && tf.util.sizeFromShape(residual.shape) !== convRows(geom) * out) throw new Error('tensor-core conv: residual is not the output');
  if (residual && !convTakesResidual(geom)) throw new Error('tensor-core conv: a residual needs rows a multiple of 128');
  route.stats.routed++;
  const tiles = chosenTiles(route, { m: paddedRows(convRows(geom)), n: out, k: geom.kh * geom.kw * geom.c, bias: bias != null, conv: geom });
  return matMulF16StagedInfo(backend, x, filter, bias, route.cfg, [geom.n, geom.oh ?? geom.h, geom.ow ?? geom.w, out],
    { conv: geom, tiles, residual, splitK: route.splitK, emulate: route.emulate, b: bOp, probe: route.probe, storeBytes: route.storeBytes, halfRegisters: route.halfRegisters });
}
