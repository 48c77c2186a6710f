import type { WebGPUInstruments } from '../../src/backends/webgpu/ops.js';
import { WEBGPU_KERNELS, type WebGPUOptions } from './webgpu.js';

/**
 * The t2v columns a run can add (--variants a,b): each a Partial<WebGPUOptions> over the defaults, and for the timing
 * probes WebGPUInstruments, applied in the same process between scenarios (harness/webgpu.ts). Device-level fields
 * (dawnFlags) need a process of their own.
 */
export interface Variant { name: string; label: string; options: Partial<WebGPUOptions>; instruments?: WebGPUInstruments }

export const VARIANTS: readonly Variant[] = [
  { name: 'default', label: 't2v (webgpu, tensor cores)', options: {} },
  { name: 'fp32', label: 't2v (webgpu, fp32: tensor cores off)', options: { tensorCores: false } },
  { name: 'no-context-projection', label: 't2v, a context projection per layer', options: { kernels: WEBGPU_KERNELS.filter((k) => k !== 'context-attention') } },
  { name: 'no-tensor-core-attention', label: 't2v, self-attention on the fp32 kernel', options: { kernels: WEBGPU_KERNELS.filter((k) => k !== 'tensor-core-attention') } },
  { name: 'attention-one-pass', label: 't2v, tensor-core attention in one pass (lazy maxima; wrong on the H200, run 59)', options: { attentionOnePass: true } },
  { name: 'attention-one-row-tile', label: 't2v, tensor-core attention with 16 query rows a subgroup', options: { attentionRowTiles: 1 } },
  { name: 'no-split-k', label: 't2v, K never split', options: { splitK: false } },
  { name: 'no-vec4-copies', label: "t2v, tfjs's Concat and Slice", options: { kernels: WEBGPU_KERNELS.filter((k) => k !== 'concat' && k !== 'row-slice') } },
  { name: 'stock-kernels', label: 't2v, tfjs kernels only (no fused WGSL)', options: { kernels: [] } },
  { name: 'no-bind-group-cache', label: 't2v, bind groups made per dispatch', options: { bindGroupCache: false } },
  { name: 'no-uniform-cache', label: 't2v, uniforms written per dispatch', options: { uniformCache: false } },
  { name: 'no-pool-best-fit', label: 't2v, free buffers reused at their exact size only', options: { poolBestFit: false } },
  // timing probes of the staged GEMM: garbage results (profile them; never read their numbers)
  { name: 'probe-gemm-mma-only', label: 't2v, GEMMs without workgroup-memory staging (timing probe)', options: {}, instruments: { probeGemm: 'mma-only' } },
  { name: 'probe-gemm-staging-only', label: 't2v, GEMMs without matrix multiplies (timing probe)', options: {}, instruments: { probeGemm: 'staging-only' } },
  { name: 'probe-gemm-mma-no-loads', label: 't2v, GEMMs with only their matrix multiplies (timing probe)', options: {}, instruments: { probeGemm: 'mma-no-loads' } },
  { name: 'probe-gemm-b-col-major', label: 't2v, GEMMs with B staged as [n, k] rows, loaded column-major (timing probe)', options: {}, instruments: { probeGemm: 'b-col-major' } },
  // experiments
  { name: 'gemm-stores-8', label: 't2v, GEMMs staging with 8-byte stores (buffer_view)', options: {}, instruments: { gemmStoreBytes: 8 } },
  { name: 'gemm-half-registers', label: "t2v, GEMMs holding A's prefetch as halves", options: {}, instruments: { gemmHalfRegisters: true } },
  { name: 'short-attention-thread', label: 't2v, temporal attention a thread per query (before run 67)', options: {}, instruments: { shortAttentionLanes: 0 } },
  { name: 'group-norm-per-group', label: "t2v, GroupNorm's per-group statistics pass (before run 67)", options: {}, instruments: { groupNormRowStats: false } },
  { name: 'layer-norm-workgroup', label: 't2v, LayerNorm a workgroup per row (before run 67)', options: {}, instruments: { layerNormLanes: 0 } },
  { name: 'gemm-stores-16', label: 't2v, GEMMs staging with 16-byte stores (buffer_view)', options: {}, instruments: { gemmStoreBytes: 16 } },
  { name: 'attention-scalar-scores', label: 't2v, tensor-core attention reading scores one at a time (before run 62)', options: {}, instruments: { attention: { vectorScores: false } } },
  { name: 'attention-one-pass-vec4', label: 't2v, tensor-core attention in one pass, vec4 scores', options: { attentionOnePass: true }, instruments: { attention: { vectorScores: true } } },
  { name: 'attention-key-block-64', label: 't2v, tensor-core attention over 64-key blocks', options: {}, instruments: { attention: { keyBlock: 64 } } },
  { name: 'attention-one-pass-always', label: 't2v, tensor-core attention in one pass, rescaled every block (diagnostic)', options: { attentionOnePass: true }, instruments: { attention: { rescaleAlways: true } } },
];

export function findVariants(names: string[]): Variant[] {
  return names.map((n) => {
    const v = VARIANTS.find((x) => x.name === n);
    if (!v) throw new Error(`unknown variant ${n}; valid: ${VARIANTS.map((x) => x.name).join(', ')}`);
    return v;
  });
}
