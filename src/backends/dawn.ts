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

export interface SubgroupMatrixConfig { componentType: string; resultComponentType: string; M: number; N: number; K: number }

/** Configurations of `chromium-experimental-subgroup-matrix` (tensor cores) the webgpu device was made with. */
export let subgroupMatrixConfigs: SubgroupMatrixConfig[] = [];

/**
 * WGSL wants `enable` and `diagnostic` directives before any declaration, but tfjs puts its own declarations in front
 * of a program's code: move them to the top when the shader module is made.
 */
function hoistDirectives(code: string): string {
  const directives: string[] = [];
  const rest = code.replace(/^\s*(enable [\w, ]+;|diagnostic\([^)]*\);)\s*$/gm, (line) => {
    directives.push(line.trim());
    return '';
  });
  // `// t2v:f16 NAME...` retypes those storage bindings to array<f16> (data packed two halves per float32 element)
  let body = rest;
  for (const m of code.matchAll(/\/\/ t2v:f16 ([\w ]+)/g)) {
    for (const name of m[1].trim().split(/\s+/)) {
      body = body.replace(new RegExp(`(var<storage, read> ${name}\\s*: )array<f32>`), '$1array<f16>');
    }
  }
  return directives.length ? `${[...new Set(directives)].join('\n')}\n${body}` : body;
}

/**
 * installDawn, then register 'webgpu' over a device of our own that has shader-f16, subgroups and subgroup matrices
 * (tfjs's own device asks for none of them) and make it the active backend. Experimental: the f16 tensor-core
 * matmul (src/backends/webgpu/matmul-f16.ts) needs it.
 */
export async function useWebGPUWithTensorCores(flags: string[] = DAWN_FLAGS): Promise<DawnAdapter | null> {
  const info = await installDawn(flags);
  if (!info) return null;
  const gpu = (globalThis as unknown as { navigator: { gpu: GPU } }).navigator.gpu;
  const adapter = (await gpu.requestAdapter({ powerPreference: 'high-performance' }))!;
  const wanted = ['timestamp-query', 'shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f)) as GPUFeatureName[];
  const l = adapter.limits;
  const device = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    },
  });
  // Dawn's device object ignores assigned properties: hand tfjs a proxy whose createShaderModule hoists directives
  const create = device.createShaderModule.bind(device);
  const hoisting = (desc: GPUShaderModuleDescriptor) => create({ ...desc, code: hoistDirectives(desc.code) });
  const proxied = new Proxy(device, {
    get(target, prop) {
      if (prop === 'createShaderModule') return hoisting;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const adapterInfo = adapter.info as GPUAdapterInfo & { subgroupMatrixConfigs?: SubgroupMatrixConfig[] };
  subgroupMatrixConfigs = device.features.has('chromium-experimental-subgroup-matrix')
    ? [...(adapterInfo.subgroupMatrixConfigs ?? [])].map((c) => ({ componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K })) : [];
  const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
  try {
    tf.removeBackend('webgpu'); // the package registered a factory for its own device on import
  } catch {
    // none registered
  }
  tf.registerBackend('webgpu', () => new WebGPUBackend(proxied, adapter.info), 3);
  if (!(await tf.setBackend('webgpu'))) return null;
  await tf.ready();
  return { ...info, features: [...device.features].map(String) };
}
