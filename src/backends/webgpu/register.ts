import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { fusedAttention, fusedContextAttention, fusedPackedAttention } from './attention.js';
import { fusedConcat, fusedRowSlice } from './concat.js';
import { fusedGEGLU } from './geglu.js';
import { fusedGroupNorm } from './group-norm.js';
import {
  FusedAttention, FusedConcat, FusedContextAttention, FusedGEGLU, FusedRowSlice, FusedGroupNorm, FusedLayerNorm, FusedPackedAttention, TensorCoreConv,
  TensorCoreAttention, TensorCoreGemm, UnpackHalf, type ContextAttentionAttrs, type FusedAttentionAttrs, type FusedGroupNormAttrs,
} from './kernel-names.js';
import { fusedLayerNorm } from './layer-norm.js';
import type { ConvGeom } from './matmul-f16-staged.js';
import { tensorCoreConv, tensorCoreGemm, type GemmRoute } from './tensor-core-route.js';
import { unpackHalf } from './unpack-half.js';
import { tensorCoreAttention } from './attention-tc.js';

type Func = (backend: WebGPUBackend, inputs: tf.NamedTensorInfoMap, attrs: Record<string, unknown>) => tf.TensorInfo;

const KERNELS: Record<string, Func> = {
  [FusedAttention]: (b, i, a) => fusedAttention(b, i.q!, i.k!, i.v!, a as unknown as FusedAttentionAttrs),
  [FusedPackedAttention]: (b, i, a) => fusedPackedAttention(b, i.qkv!, a as unknown as FusedAttentionAttrs),
  [FusedContextAttention]: (b, i, a) => fusedContextAttention(b, i.q!, i.kv!, a as unknown as ContextAttentionAttrs),
  [FusedGroupNorm]: (b, i, a) => fusedGroupNorm(b, i.x!, i.gamma!, i.beta!, a as unknown as FusedGroupNormAttrs),
  [FusedLayerNorm]: (b, i, a) => fusedLayerNorm(b, i.x!, i.gamma!, i.beta!, a.eps as number, a.lanes as number | undefined),
  [FusedGEGLU]: (b, i) => fusedGEGLU(b, i.h!),
  [TensorCoreGemm]: (b, i, a) => tensorCoreGemm(b, a.route as GemmRoute, a.plan as 'gemv' | 'staged', i.a!, i.b!, i.bias ?? null,
    i.residual ?? null, { half: a.half === true, n: a.n as number }),
  [TensorCoreConv]: (b, i, a) => tensorCoreConv(b, a.route as GemmRoute, i.x!, i.filter!, i.bias ?? null, i.residual ?? null,
    a.geom as ConvGeom, { half: a.half === true, n: a.n as number }),
  [TensorCoreAttention]: (b, i, a) => tensorCoreAttention(b, i.qkv!, a.heads as number, (a.route as GemmRoute).cfg,
    { emulate: (a.route as GemmRoute).emulate, rowTiles: a.rowTiles as number | undefined, keyBlock: a.keyBlock as number | undefined,
      onePass: a.onePass === true, rescaleMargin: a.rescaleMargin as number | undefined, rescaleAlways: a.rescaleAlways === true,
      vectorScores: a.vectorScores === true }),
  [UnpackHalf]: (b, i, a) => unpackHalf(b, i.x!, a.shape as number[]),
  [FusedConcat]: (b, i, a) => fusedConcat(b, Array.from({ length: a.count as number }, (_, k) => i[`x${k}`]!), a.axis as number),
  [FusedRowSlice]: (b, i, a) => fusedRowSlice(b, i.x!, a.start as number, a.size as number),
};

/**
 * Registers this package's WGSL kernels with tfjs for the webgpu backend (idempotent). They are new kernels under our
 * own names (kernel-names.ts): tfjs's own kernels stay as they are, and only WebGPUOps runs these.
 */
export function registerWebGPUKernels(): void {
  for (const [kernelName, f] of Object.entries(KERNELS)) {
    if (tf.getKernel(kernelName, 'webgpu') !== undefined) continue;
    tf.registerKernel({
      kernelName, backendName: 'webgpu',
      kernelFunc: ({ inputs, backend, attrs }) => f(backend as WebGPUBackend, inputs, (attrs ?? {}) as Record<string, unknown>),
    });
  }
}
