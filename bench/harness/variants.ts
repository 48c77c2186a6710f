import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { defaultTiles, tilesBytes, tilesFit, type Tiles } from '../../src/backends/webgpu/matmul-f16-staged.js';
import type { WebGPUInstruments } from '../../src/backends/webgpu/ops.js';
import type { GemmShape, TileChooser } from '../../src/backends/webgpu/tensor-core-route.js';
import { webgpuFacts } from '../../src/backends/dawn.js';
import { WEBGPU_KERNELS, type WebGPUOptions } from './webgpu.js';

/**
 * The t2v columns a run can add (--variants a,b): each a Partial<WebGPUOptions> over the defaults, and for tiling
 * experiments instruments (a tile chooser), applied in the same process between scenarios (harness/webgpu.ts).
 * Device-level fields (dawnFlags) need a process of their own.
 */
export interface Variant { name: string; label: string; options: Partial<WebGPUOptions>; instruments?: WebGPUInstruments }

/**
 * A tile chooser that replaces the default tiling of the GEMMs with enough workgroups to keep K whole (the
 * 128-row tiles of largeTiles) by `alt(default tiling, shape)`, where that fits the GEMM and the device's workgroup
 * memory; split-K and the few-workgroup tilings stay as they are.
 */
function largeGemms(alt: (t: Tiles, s: GemmShape) => Tiles): TileChooser {
  return (s) => {
    const maxBytes = (tf.backend() as unknown as WebGPUBackend).device.limits.maxComputeWorkgroupStorageSize;
    const t = defaultTiles(s.m, s.n, s.k, { bias: s.bias, convC: s.conv?.c, maxBytes, units: webgpuFacts().computeUnits });
    if ((t.splits ?? 1) > 1 || t.bm * t.sgRows !== 128 || t.sgRows * t.sgCols !== 8) return null;
    const a = alt(t, s);
    const fits = tilesFit(a, s.m, s.n, s.k) && (!s.conv || s.conv.c % a.tk === 0) && tilesBytes(a, s.bias) <= maxBytes;
    return fits ? a : null;
  };
}
/** Each subgroup a 64 x 64 block (64 x 32 where N is not a multiple of 128), 2 x 2 subgroups: 128 x 128 (x 64) tiles. */
const warp64 = (t: Tiles): Tiles => ({ bm: 64, sgRows: 2, sgCols: 2, bn: t.bn, tk: 32 });

export const VARIANTS: readonly Variant[] = [
  { name: 'default', label: 't2v (webgpu, tensor cores)', options: {} },
  { name: 'fp32', label: 't2v (webgpu, fp32: tensor cores off)', options: { tensorCores: false } },
  { name: 'no-context-projection', label: 't2v, a context projection per layer', options: { kernels: WEBGPU_KERNELS.filter((k) => k !== 'context-attention') } },
  { name: 'no-tensor-core-attention', label: 't2v, self-attention on the fp32 kernel', options: { kernels: WEBGPU_KERNELS.filter((k) => k !== 'tensor-core-attention') } },
  { name: 'no-staged-short-attention', label: 't2v, temporal attention one thread per query (no staged short-sequence kernel)',
    options: { kernels: WEBGPU_KERNELS.filter((k) => k !== 'staged-short-attention') } },
  { name: 'attention-one-row-tile', label: 't2v, tensor-core attention with 16 query rows a subgroup', options: { attentionRowTiles: 1 } },
  { name: 'no-split-k', label: 't2v, K never split', options: { splitK: false } },
  { name: 'stock-kernels', label: 't2v, tfjs kernels only (no fused WGSL)', options: { kernels: [] } },
  { name: 'no-bind-group-cache', label: 't2v, bind groups made per dispatch', options: { bindGroupCache: false } },
  { name: 'no-uniform-cache', label: 't2v, uniforms written per dispatch', options: { uniformCache: false } },
  { name: 'no-pool-best-fit', label: 't2v, free buffers reused at their exact size only', options: { poolBestFit: false } },
  { name: 'gemm-two-stages', label: 't2v, large GEMMs in two workgroup-memory stages (K steps of 32)', options: {},
    instruments: { tiles: largeGemms((t) => ({ ...t, tk: 32, stages: 2 })) } },
  { name: 'gemm-warp-64', label: 't2v, large GEMMs with 64 x 64 subgroup blocks (4 subgroups)', options: {},
    instruments: { tiles: largeGemms(warp64) } },
  { name: 'gemm-warp-64-two-stages', label: 't2v, large GEMMs with 64 x 64 subgroup blocks in two stages', options: {},
    instruments: { tiles: largeGemms((t) => ({ ...warp64(t), stages: 2 })) } },
  { name: 'gemm-64-rows', label: 't2v, large GEMMs in 64-row tiles (4 subgroups of 32 x 64 or 32 x 32)', options: {},
    instruments: { tiles: largeGemms((t) => ({ ...t, sgRows: 2, sgCols: 2 })) } },
  { name: 'gemm-no-prefetch', label: "t2v, large GEMMs without the next K step's register prefetch", options: {},
    instruments: { tiles: largeGemms((t) => ({ ...t, prefetch: false })) } },
  { name: 'gemm-64-rows-no-prefetch', label: 't2v, large GEMMs in 64-row tiles without register prefetch', options: {},
    instruments: { tiles: largeGemms((t) => ({ ...t, sgRows: 2, sgCols: 2, prefetch: false })) } },
  // a timing probe: its generations are garbage (profile it; never read its numbers)
  { name: 'probe-gemm-half-a', label: 't2v, GEMMs reading A as float16 (timing probe: garbage results)', options: {},
    instruments: { probeHalfA: true } },
  { name: 'gemm-256-rows', label: 't2v, large GEMMs in 256-row tiles (8 subgroups of 64 x 64 or 64 x 32)', options: {},
    instruments: { tiles: largeGemms((t) => ({ bm: 64, sgRows: 4, sgCols: 2, bn: t.bn, tk: 32 })) } },
];

export function findVariants(names: string[]): Variant[] {
  return names.map((n) => {
    const v = VARIANTS.find((x) => x.name === n);
    if (!v) throw new Error(`unknown variant ${n}; valid: ${VARIANTS.map((x) => x.name).join(', ')}`);
    return v;
  });
}
