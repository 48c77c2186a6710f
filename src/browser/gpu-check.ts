import * as tf from '@tensorflow/tfjs';

/** What a page can learn about WebGPU before loading a model, with a one-line reason when it cannot run one. */
export interface WebGPUCheck {
  ok: boolean;
  /** Why not, for people (set when ok is false). */
  message?: string;
  adapter?: { description: string; vendor: string; architecture: string };
  features: string[];
  /** shader-f16: float16 kernels (tensor cores where subgroup matrices exist too). */
  f16: boolean;
  maxBufferBytes: number;
}

/**
 * Looks for `navigator.gpu` and an adapter, and checks that its buffers can hold `largestBufferBytes` (the model's
 * largest weight, or an activation at the wanted size). Requests nothing: the backend makes its own device.
 */
export async function checkWebGPU(largestBufferBytes = 0): Promise<WebGPUCheck> {
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  const none: WebGPUCheck = { ok: false, features: [], f16: false, maxBufferBytes: 0 };
  if (!gpu) {
    const secure = (globalThis as { isSecureContext?: boolean }).isSecureContext;
    return { ...none, message: secure === false
      ? 'WebGPU needs a secure page: open it over https or from localhost'
      : 'this browser has no WebGPU: use a recent Chrome or Edge (or enable WebGPU in the browser\'s flags)' };
  }
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    return { ...none, message: `WebGPU did not give an adapter: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (!adapter) return { ...none, message: 'WebGPU is there but gave no adapter (the GPU may be blocklisted: see chrome://gpu)' };
  const info = adapter.info;
  const features = [...adapter.features].map(String).sort();
  const maxBufferBytes = Math.min(adapter.limits.maxStorageBufferBindingSize, adapter.limits.maxBufferSize);
  const r: WebGPUCheck = {
    ok: true, features, f16: adapter.features.has('shader-f16'), maxBufferBytes,
    adapter: { description: info.description, vendor: info.vendor, architecture: info.architecture },
  };
  if (largestBufferBytes > maxBufferBytes) {
    const mb = (n: number) => `${Math.ceil(n / 2 ** 20)} MB`;
    return { ...r, ok: false, message: `this GPU's WebGPU adapter cannot hold a ${mb(largestBufferBytes)} buffer (its limit is ${mb(maxBufferBytes)}): use a smaller size or fewer frames per decode` };
  }
  return r;
}

/** A failure during loading or generating, as one line for people (GPU memory, a lost device, the rest unchanged). */
export function describeGpuError(err: unknown): string {
  const msg = (err instanceof Error ? err.message : String(err)).split('\n')[0].trim();
  const name = (err as { constructor?: { name?: string } })?.constructor?.name ?? '';
  if (name === 'GPUOutOfMemoryError' || /out of memory|OOM|allocation failed|Failed to allocate|RangeError: Array buffer allocation/i.test(`${name}: ${msg}`)) {
    return `not enough GPU memory (${msg}): use a smaller size or fewer frames, or close other tabs using the GPU`;
  }
  if (/device (was )?lost|GPUDevice.*lost/i.test(msg)) return `the GPU device was lost (${msg}): reload the page; if it repeats, use a smaller size`;
  return msg;
}

/**
 * Calls `onError` (once) with a one-line message when the active webgpu backend's device reports an error nobody
 * caught (out of memory, validation) or is lost. Returns a function that stops watching.
 */
export function watchGpuErrors(onError: (message: string) => void): () => void {
  const device = (tf.backend() as unknown as { device?: GPUDevice }).device;
  if (tf.getBackend() !== 'webgpu' || !device) return () => undefined;
  let told = false;
  const tell = (m: string) => { if (!told) { told = true; onError(m); } };
  const onUncaptured = (e: Event) => {
    const err = (e as GPUUncapturedErrorEvent).error;
    tell(describeGpuError(typeof GPUOutOfMemoryError !== 'undefined' && err instanceof GPUOutOfMemoryError
      ? Object.assign(new Error(`out of memory: ${err.message}`), { name: 'GPUOutOfMemoryError' }) : err));
  };
  device.addEventListener('uncapturederror', onUncaptured);
  let live = true;
  void device.lost.then((info) => { if (live && info.reason !== 'destroyed') tell(describeGpuError(new Error(`device lost: ${info.message}`))); });
  return () => { live = false; device.removeEventListener('uncapturederror', onUncaptured); };
}
