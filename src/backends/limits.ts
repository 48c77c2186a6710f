import * as tf from '@tensorflow/tfjs';

/** The largest buffer one binding of the active webgpu device takes, or null on other backends. */
export function webgpuBufferLimit(): number | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const l = (tf.backend() as unknown as { device?: GPUDevice }).device?.limits;
  return l ? Math.min(l.maxStorageBufferBindingSize, l.maxBufferSize) : null;
}

/** A one-line reason when the active webgpu device cannot hold a buffer of `bytes` (`what` names it), else null. */
export function bufferLimitProblem(bytes: number, what: string, remedy: string): string | null {
  const limit = webgpuBufferLimit();
  if (limit === null || bytes <= limit) return null;
  const mb = (n: number) => `${Math.ceil(n / 2 ** 20)} MB`;
  return `this GPU's WebGPU device cannot hold ${what} (${mb(bytes)}; its buffers stop at ${mb(limit)}): ${remedy}`;
}
