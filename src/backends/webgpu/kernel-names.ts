/**
 * The tfjs kernels this package registers for webgpu (src/backends/webgpu/register.ts). Only WebGPUOps
 * (src/backends/webgpu/ops.ts) runs them; tfjs's own kernels are left as they are.
 */
export const FusedAttention = 'T2VFusedAttention';
/** Self-attention on one [B, N, 3*inner] tensor holding q, k and v side by side (attrs as FusedAttention's). */
export const FusedPackedAttention = 'T2VFusedPackedAttention';
/**
 * Attention of q [B, Nq, inner] to keys and values read from one [rows, width] tensor: row b*keys + j holds key j of
 * batch b, its key at columns offset .. offset+inner and its value right after (every cross-attention's to_k|to_v of
 * one context, from one matmul).
 */
export const FusedContextAttention = 'T2VFusedContextAttention';
export const FusedGroupNorm = 'T2VFusedGroupNorm';
export const FusedGEGLU = 'T2VFusedGEGLU';
export const FusedLayerNorm = 'T2VFusedLayerNorm';
/** a [m, k] x b [k, n] (+ bias [n]) + residual [m, n] as tfjs's matmul kernel, then Add: the tensor cores off. */
export const FusedMatMulAdd = 'T2VFusedMatMulAdd';
/** conv2d (+ bias) + residual as tfjs's FusedConv2D kernel, then Add: the tensor cores off. */
export const FusedConv2DAdd = 'T2VFusedConv2DAdd';
/** A GEMM (+ bias) (+ residual) on the tensor-core route (gemv or the staged kernel): attrs { route }. */
export const TensorCoreGemm = 'T2VTensorCoreGemm';
/** A convolution as an implicit GEMM on the tensor-core route: attrs { route, geom }. */
export const TensorCoreConv = 'T2VTensorCoreConv';
/** Packed self-attention [B, N, 3*inner] on tensor cores (attention-tc.ts): attrs { heads, route }. */
export const TensorCoreAttention = 'T2VTensorCoreAttention';
/** Tensors concatenated along an axis in vec4 copies (concat.ts): attrs { axis }. */
export const FusedConcat = 'T2VFusedConcat';
/** Rows of a [rows, width] tensor as one vec4 copy (concat.ts): attrs { start, size }. */
export const FusedRowSlice = 'T2VFusedRowSlice';
/** Packed float16 pairs (float32 [n/2] bit patterns) -> float32 of attrs.shape: float16-resident weights. */
export const UnpackHalf = 'T2VUnpackHalf';

export interface FusedAttentionAttrs {
  heads: number; causal: boolean;
  /** Short sequences: lanes per query (laneAttention), 0 for a thread per query; absent: laneGroupSize's pick (lane-groups.ts). */
  lanes?: number;
}
export interface ContextAttentionAttrs { heads: number; keys: number; offset: number }
export interface FusedGroupNormAttrs {
  groups: number; eps: number; silu: boolean;
  /** false: the per-group statistics pass even where the row-block one fits (benchmark; group-norm.ts). */
  rowStats?: boolean;
}
