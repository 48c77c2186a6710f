import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import {
  FusedAttention, FusedContextAttention, FusedConv2DAdd, FusedGEGLU, FusedGroupNorm, FusedLayerNorm, FusedMatMulAdd,
  FusedPackedAttention, setSupportCheck, type ContextAttentionAttrs, type FusedAttentionAttrs, type FusedGroupNormAttrs,
} from '../kernels.js';
import {
  attentionSupported, contextAttentionSupported, fusedAttention, fusedContextAttention, fusedPackedAttention, packedAttentionSupported,
} from './attention.js';
import { fusedConv2DAdd, fusedMatMulAdd } from './gemm-add.js';
import { fusedGEGLU, gegluSupported } from './geglu.js';
import { fusedGroupNorm, groupNormSupported } from './group-norm.js';
import { fusedLayerNorm, layerNormSupported } from './layer-norm.js';

const BACKEND = 'webgpu';
export type WebGPUKernel = 'attention' | 'packed-attention' | 'context-attention' | 'groupnorm' | 'layernorm' | 'geglu'
  | 'matmul-add' | 'conv2d-add';
export const ALL_KERNELS: WebGPUKernel[] = [
  'attention', 'packed-attention', 'context-attention', 'groupnorm', 'layernorm', 'geglu', 'matmul-add', 'conv2d-add'];

const configs: Record<WebGPUKernel, { name: string; config: tf.KernelConfig; supports: (i: tf.Tensor[], a: Record<string, unknown>) => boolean }> = {
  attention: {
    name: FusedAttention,
    config: {
      kernelName: FusedAttention, backendName: BACKEND,
      kernelFunc: ({ inputs, backend, attrs }) => fusedAttention(backend as WebGPUBackend, inputs.q!, inputs.k!,
        inputs.v!, attrs as unknown as FusedAttentionAttrs),
    },
    supports: ([q, k], a) => attentionSupported(q, k, a.heads as number),
  },
  'packed-attention': {
    name: FusedPackedAttention,
    config: {
      kernelName: FusedPackedAttention, backendName: BACKEND,
      kernelFunc: ({ inputs, backend, attrs }) => fusedPackedAttention(backend as WebGPUBackend, inputs.qkv!,
        attrs as unknown as FusedAttentionAttrs),
    },
    supports: ([qkv], a) => packedAttentionSupported(qkv, a.heads as number),
  },
  'context-attention': {
    name: FusedContextAttention,
    config: {
      kernelName: FusedContextAttention, backendName: BACKEND,
      kernelFunc: ({ inputs, backend, attrs }) => fusedContextAttention(backend as WebGPUBackend, inputs.q!, inputs.kv!,
        attrs as unknown as ContextAttentionAttrs),
    },
    supports: ([q, kv], a) => contextAttentionSupported(q, kv, a as unknown as ContextAttentionAttrs),
  },
  groupnorm: {
    name: FusedGroupNorm,
    config: {
      kernelName: FusedGroupNorm, backendName: BACKEND,
      kernelFunc: ({ inputs, backend, attrs }) => fusedGroupNorm(backend as WebGPUBackend, inputs.x!, inputs.gamma!,
        inputs.beta!, attrs as unknown as FusedGroupNormAttrs),
    },
    supports: ([x], a) => groupNormSupported(x, a.groups as number),
  },
  layernorm: {
    name: FusedLayerNorm,
    config: {
      kernelName: FusedLayerNorm, backendName: BACKEND,
      kernelFunc: ({ inputs, backend, attrs }) => fusedLayerNorm(backend as WebGPUBackend, inputs.x!, inputs.gamma!,
        inputs.beta!, (attrs as { eps: number }).eps),
    },
    supports: ([x]) => layerNormSupported(x),
  },
  geglu: {
    name: FusedGEGLU,
    config: {
      kernelName: FusedGEGLU, backendName: BACKEND,
      kernelFunc: ({ inputs, backend }) => fusedGEGLU(backend as WebGPUBackend, inputs.h!),
    },
    supports: ([h]) => gegluSupported(h),
  },
  'matmul-add': {
    name: FusedMatMulAdd,
    config: {
      kernelName: FusedMatMulAdd, backendName: BACKEND,
      kernelFunc: ({ inputs, backend }) => fusedMatMulAdd(backend as WebGPUBackend, inputs.a!, inputs.b!,
        inputs.bias ?? null, inputs.residual!),
    },
    supports: () => true,
  },
  'conv2d-add': {
    name: FusedConv2DAdd,
    config: {
      kernelName: FusedConv2DAdd, backendName: BACKEND,
      kernelFunc: ({ inputs, backend, attrs }) => fusedConv2DAdd(backend as WebGPUBackend, inputs.x!, inputs.filter!,
        inputs.bias ?? null, inputs.residual!, attrs ?? {}),
    },
    supports: () => true,
  },
};

/**
 * Registers the fused WGSL kernels for the webgpu backend (idempotent). Layer code then takes them through
 * `attention()`, `GroupNorm.forward(x, silu)` and `geglu()`; unregistering brings the stock ops back, which is how
 * the benchmark measures both.
 */
export function registerWebGPUKernels(which: WebGPUKernel[] = ALL_KERNELS): void {
  for (const k of which) {
    const { name, config, supports } = configs[k];
    if (tf.getKernel(name, BACKEND) === undefined) tf.registerKernel(config);
    setSupportCheck(name, BACKEND, supports);
  }
}

export function unregisterWebGPUKernels(which: WebGPUKernel[] = ALL_KERNELS): void {
  for (const k of which) {
    const { name } = configs[k];
    if (tf.getKernel(name, BACKEND) !== undefined) tf.unregisterKernel(name, BACKEND);
    setSupportCheck(name, BACKEND, null);
  }
}
