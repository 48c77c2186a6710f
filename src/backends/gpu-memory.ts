import * as tf from '@tensorflow/tfjs';
import type { GPUMemory } from './webgpu/buffer-pool.js';

export type { GPUMemory } from './webgpu/buffer-pool.js';

/** What T2VWebGPUBackend adds (src/backends/webgpu/backend.ts); found by shape, so this module loads no webgpu code. */
interface PoolFigures {
  gpuMemory(): GPUMemory;
  resetPeak(): void;
  releasePooledBuffers(): number;
}

const ours = (b: unknown): b is PoolFigures => typeof (b as Partial<PoolFigures> | null)?.releasePooledBuffers === 'function';

/**
 * GPU memory of `backend` (default: the active one) in bytes: in buffers now and at the peak since the backend was
 * made or resetGPUMemoryPeak, free buffers pooled for reuse, and both together. tfjs's own webgpu backend (the
 * browser) gives no peaks (null); other backends have no GPU buffers: null.
 */
export function gpuMemory(backend: object = tf.backend()): GPUMemory | null {
  if (ours(backend)) return backend.gpuMemory();
  const m = (backend as { memory?: () => { numBytesInGPU?: number; numBytesAllocatedInGPU?: number } }).memory?.();
  if (m?.numBytesInGPU === undefined || m.numBytesAllocatedInGPU === undefined) return null;
  return { inUse: m.numBytesInGPU, peakInUse: null, pooled: m.numBytesAllocatedInGPU - m.numBytesInGPU,
    allocated: m.numBytesAllocatedInGPU, peakAllocated: null };
}

/** Starts gpuMemory's peaks afresh from now (a no-op where there are none). */
export function resetGPUMemoryPeak(backend: object = tf.backend()): void {
  if (ours(backend)) backend.resetPeak();
}

/**
 * Destroys the free buffers the webgpu pool keeps (and the bind groups that bind them); returns the bytes given back
 * (0 elsewhere). Tensors are untouched; the next ops make their buffers anew, so this belongs between generations.
 */
export function releasePooledBuffers(backend: object = tf.backend()): number {
  return ours(backend) ? backend.releasePooledBuffers() : 0;
}
