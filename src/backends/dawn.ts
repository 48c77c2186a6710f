import * as tf from '@tensorflow/tfjs';

/** Dawn flags that expose shader-f16 and subgroup matrices on NVIDIA (see docs/gpu.md). */
export const DAWN_FLAGS = ['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia'];

export interface DawnAdapter {
  description: string;
  architecture: string;
  vendor: string;
  software: boolean;
  features: string[];
}

/**
 * Node has no WebGPU of its own: install Dawn's binding (npm `webgpu`) as `navigator.gpu`, which must happen before
 * `@tensorflow/tfjs-backend-webgpu` is first imported, or that backend never registers. Returns the adapter found,
 * or null when there is none (no GPU, no Vulkan driver); then webgpu stays unregistered.
 */
export async function installDawn(flags: string[] = DAWN_FLAGS): Promise<DawnAdapter | null> {
  const g = globalThis as unknown as { navigator?: { gpu?: GPU } };
  if (!g.navigator?.gpu) {
    let webgpu: { create: (flags: string[]) => GPU; globals: object };
    try {
      webgpu = await import('webgpu') as unknown as typeof webgpu;
    } catch {
      return null;
    }
    Object.assign(globalThis, webgpu.globals);
    const gpu = webgpu.create(flags);
    if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  }
  const adapter = await g.navigator!.gpu!.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return null;
  await import('@tensorflow/tfjs-backend-webgpu');
  const info = adapter.info;
  return {
    description: info?.description ?? '',
    architecture: info?.architecture ?? '',
    vendor: info?.vendor ?? '',
    software: info?.architecture === 'software' || /llvmpipe|swiftshader|lavapipe/i.test(info?.description ?? ''),
    features: [...adapter.features].map(String),
  };
}

/** installDawn, then make webgpu the active tfjs backend. */
export async function useWebGPU(flags: string[] = DAWN_FLAGS): Promise<DawnAdapter | null> {
  const adapter = await installDawn(flags);
  if (!adapter) return null;
  if (!(await tf.setBackend('webgpu'))) return null;
  await tf.ready();
  return adapter;
}
