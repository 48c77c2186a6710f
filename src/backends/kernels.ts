import * as tf from '@tensorflow/tfjs';

/**
 * Names of the fused kernels that a backend may register (src/backends/webgpu/ does for webgpu). Layer code asks
 * `fusedKernelFor(name)` and falls back to plain tfjs ops when the active backend has none, so every other backend
 * computes exactly what it computed before.
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
/** a [m, k] x b [k, n] (+ bias [n]) + residual [m, n]: a Linear and the residual add after it, one kernel. */
export const FusedMatMulAdd = 'T2VFusedMatMulAdd';
/** conv2d(x, filter, attrs) (+ bias) + residual (the output's shape): a convolution and the residual add after it. */
export const FusedConv2DAdd = 'T2VFusedConv2DAdd';

export interface FusedAttentionAttrs { heads: number; causal: boolean }
export interface ContextAttentionAttrs { heads: number; keys: number; offset: number }
export interface FusedGroupNormAttrs { groups: number; eps: number; silu: boolean }

/** Shape checks live with the kernel; a kernel says no to shapes it does not cover and the plain ops run. */
export type Supports = (inputs: tf.Tensor[], attrs: Record<string, unknown>) => boolean;
const supportChecks = new Map<string, Supports>();

export function setSupportCheck(kernelName: string, backendName: string, check: Supports | null): void {
  const key = `${kernelName}@${backendName}`;
  if (check) supportChecks.set(key, check); else supportChecks.delete(key);
}

/** True when the active backend has `kernelName` registered and it accepts these inputs. */
export function fusedKernelFor(kernelName: string, inputs: tf.Tensor[], attrs: Record<string, unknown>): boolean {
  const backend = tf.getBackend();
  if (!backend || tf.getKernel(kernelName, backend) === undefined) return false;
  const check = supportChecks.get(`${kernelName}@${backend}`);
  return check ? check(inputs, attrs) : true;
}

/** True when the active backend has `kernelName` registered (shapes aside). */
export function hasFusedKernel(kernelName: string): boolean {
  const backend = tf.getBackend();
  return !!backend && tf.getKernel(kernelName, backend) !== undefined;
}

export function runFused<T extends tf.Tensor>(kernelName: string, inputs: Record<string, tf.Tensor>, attrs: object): T {
  return tf.engine().runKernel(kernelName, inputs as unknown as tf.NamedTensorMap,
    attrs as unknown as tf.NamedAttrMap) as T;
}

/** Packed float16 pairs (float32 [n/2] bit patterns) -> float32 of attrs.shape: float16-resident weights. */
export const UnpackHalf = 'T2VUnpackHalf';
