import * as tf from '@tensorflow/tfjs';
import { envVar } from '../env.js';
import { loadDawnBinding, type DawnBinding } from './dawn-binding.js';
import { deviceFactsOf, type DeviceFacts, type SubgroupMatrixConfig } from './webgpu/device-facts.js';
import { resolveWebGPUOptions, type WebGPUOptions } from './webgpu/options.js';
import { registerWebGPUKernels } from './webgpu/register.js';

/**
 * The one place that sets up WebGPU in Node (docs/gpu.md): Dawn's binding (npm `webgpu`) as `navigator.gpu`, a
 * webgpu backend over a Dawn device of our own (shader-f16, subgroups and subgroup matrices where the adapter has
 * them), the fused kernels, and optionally the tensor-core route for matmuls and convolutions. `selectBackend`
 * (src/backends/select.ts), the benchmark and the tests all come through here.
 */

export interface DawnAdapter {
  description: string;
  architecture: string;
  vendor: string;
  software: boolean;
  /** Why the adapter counts as software (SwiftShader, llvmpipe, ...), or null for a GPU. */
  softwareReason: string | null;
  features: string[];
}

interface AdapterLike {
  info?: Record<string, unknown>;
  isFallbackAdapter?: boolean;
}

/** A software adapter (SwiftShader, llvmpipe, lavapipe, a CPU device) does not count as a GPU. */
export function softwareAdapterReason(adapter: AdapterLike, info: Record<string, unknown>): string | null {
  if (adapter.isFallbackAdapter === true || info.isFallbackAdapter === true) return 'fallback adapter';
  if (info.architecture === 'software') return 'software adapter (software)';
  const text = ['vendor', 'architecture', 'device', 'description', 'adapterType', 'type']
    .map((k) => String(info[k] ?? '')).join(' ').toLowerCase();
  const m = /swiftshader|llvmpipe|lavapipe|software|\bcpu\b/.exec(text);
  return m ? `software adapter (${m[0]})` : null;
}

export type DawnOpen = { ok: true; adapter: GPUAdapter; info: DawnAdapter } | { ok: false; reason: string };

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].trim();
}

let opened: Promise<DawnOpen> | null = null;

/** `T2V_DEBUG=1`: let Dawn print its own diagnostics (its Vulkan loader warnings among them). */
export const dawnDebug = (): boolean => /^(1|true|on|yes)$/i.test(envVar('T2V_DEBUG') ?? '');

/**
 * Linux: why Dawn cannot find a GPU, checked before Dawn starts (Dawn itself prints a two-line `Couldn't load
 * Vulkan` warning to stderr when the loader is missing); null when the Vulkan loader loads, or elsewhere.
 * `load` is dlopen (process.dlopen, whose "did not self-register" means the library itself loaded).
 */
export function vulkanLoaderMissing(load: (name: string) => void = (name) => process.dlopen({ exports: {} }, name),
  platform: string | undefined = globalThis.process?.platform): string | null {
  if (platform !== 'linux') return null; // a page (no process) or another OS
  try {
    load('libvulkan.so.1');
  } catch (err) {
    const m = firstLine(err);
    if (/did not self-register/i.test(m)) return null;
    return `no Vulkan loader (${m}): WebGPU needs libvulkan.so.1 and a GPU driver; T2V_DEBUG=1 lets Dawn try anyway`;
  }
  return null;
}


/**
 * Installs Dawn as `navigator.gpu` (before `@tensorflow/tfjs-backend-webgpu` is first imported, or that backend never
 * registers), finds the adapter, then replaces the tfjs package's backend factory by one that makes our own
 * device (`makeDevice`) and our backend over it (T2VWebGPUBackend, with `options`: default resolveWebGPUOptions()).
 * Says why not when there is no usable Dawn or adapter, or an option is bad. Done once per process: the first call's
 * options hold (the Dawn toggles, the caches, the compute units).
 */
export function openDawn(options?: Readonly<WebGPUOptions>): Promise<DawnOpen> {
  opened ??= (async (): Promise<DawnOpen> => {
    let resolved: Readonly<WebGPUOptions>;
    try {
      resolved = options ?? resolveWebGPUOptions();
    } catch (err) {
      return { ok: false, reason: firstLine(err) };
    }
    const flags = [...resolved.dawnFlags];
    const g = globalThis as unknown as { navigator?: { gpu?: GPU } };
    if (!g.navigator?.gpu) {
      const noVulkan = dawnDebug() ? null : vulkanLoaderMissing();
      if (noVulkan !== null) return { ok: false, reason: noVulkan };
      let webgpu: DawnBinding;
      try {
        webgpu = await loadDawnBinding();
      } catch (err) {
        return { ok: false, reason: `the webgpu package does not load: ${firstLine(err)}` };
      }
      Object.assign(globalThis, webgpu.globals);
      const gpu = webgpu.create(flags);
      if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
      else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    }
    let adapter: GPUAdapter | null;
    try {
      adapter = await g.navigator!.gpu!.requestAdapter({ powerPreference: 'high-performance' });
    } catch (err) {
      return { ok: false, reason: `requestAdapter failed: ${firstLine(err)}` };
    }
    if (!adapter) return { ok: false, reason: 'no WebGPU adapter found' };
    try {
      await import('@tensorflow/tfjs-backend-webgpu');
    } catch (err) {
      return { ok: false, reason: `@tensorflow/tfjs-backend-webgpu does not load: ${firstLine(err)}` };
    }
    const raw = { ...(adapter.info as unknown as Record<string, unknown>) };
    for (const k of ['vendor', 'architecture', 'device', 'description']) raw[k] ??= (adapter.info as unknown as Record<string, unknown>)[k];
    const softwareReason = softwareAdapterReason(adapter as unknown as AdapterLike, raw);
    const info: DawnAdapter = {
      description: String(raw.description ?? ''),
      architecture: String(raw.architecture ?? ''),
      vendor: String(raw.vendor ?? ''),
      software: softwareReason !== null,
      softwareReason,
      features: [...adapter.features].map(String),
    };
    // imported only now: it loads tfjs-backend-webgpu, which must come after navigator.gpu
    const { T2VWebGPUBackend } = await import('./webgpu/backend.js');
    try {
      tf.removeBackend('webgpu'); // the package registered a factory for a device of its own on import
    } catch {
      // none registered
    }
    const a = adapter;
    // vec4 reads of workgroup tiles that subgroup matrices also use (the tensor-core attention's scores)
    const wgslBufferView = (g.navigator!.gpu!.wgslLanguageFeatures as ReadonlySet<string> | undefined)?.has('buffer_view') ?? false;
    tf.registerBackend('webgpu', async () => {
      const device = await makeDevice(a);
      return new T2VWebGPUBackend(device, a.info, { options: resolved, subgroupMatrixConfigs: subgroupMatrixConfigsOf(a, device),
        wgslBufferView });
    }, 3);
    return { ok: true, adapter, info };
  })();
  return opened;
}

/** openDawn, returning the adapter's description, or null when there is none (no GPU, no Vulkan driver). */
export async function installDawn(options?: Readonly<WebGPUOptions>): Promise<DawnAdapter | null> {
  const r = await openDawn(options);
  return r.ok ? r.info : null;
}

export type { SubgroupMatrixConfig } from './webgpu/device-facts.js';

/** Configurations of `chromium-experimental-subgroup-matrix` (tensor cores) that `device` was made with (f16 needed too). */
function subgroupMatrixConfigsOf(adapter: GPUAdapter, device: GPUDevice): SubgroupMatrixConfig[] {
  const info = adapter.info as GPUAdapterInfo & { subgroupMatrixConfigs?: SubgroupMatrixConfig[] };
  return device.features.has('chromium-experimental-subgroup-matrix') && device.features.has('shader-f16')
    ? [...(info.subgroupMatrixConfigs ?? [])].map((c) => ({ componentType: c.componentType, resultComponentType: c.resultComponentType, M: c.M, N: c.N, K: c.K }))
    : [];
}

/** The facts of the webgpu backend we made (compute units, subgroup-matrix configurations); defaults before one exists. */
export function webgpuFacts(): DeviceFacts {
  return deviceFactsOf(tf.findBackend('webgpu'));
}

/**
 * WGSL wants `enable`, `requires` and `diagnostic` directives before any declaration, but tfjs puts its own declarations in front
 * of a program's code: move them to the top when the shader module is made.
 */
function hoistDirectives(code: string): string {
  const directives: string[] = [];
  const rest = code.replace(/^\s*(enable [\w, ]+;|requires [\w, ]+;|diagnostic\([^)]*\);)\s*$/gm, (line) => {
    directives.push(line.trim());
    return '';
  });
  // `// t2v:f16 NAME...` retypes those storage bindings to array<f16> (or vec2/vec4<f16>: data packed two halves per
  // float32 element)
  let body = rest;
  for (const m of code.matchAll(/\/\/ t2v:f16 ([\w ]+)/g)) {
    for (const name of m[1].trim().split(/\s+/)) {
      body = body.replace(new RegExp(`(var<storage, read> ${name}\\s*: )array<(vec[24]<)?f32(>?)>`), '$1array<$2f16$3>');
    }
  }
  return directives.length ? `${[...new Set(directives)].join('\n')}\n${body}` : body;
}

/**
 * The device tfjs gets: the limits tfjs asks for itself plus shader-f16, subgroups and subgroup matrices where the
 * adapter has them (tfjs asks for none), behind a proxy of ours (not a tfjs member: the GPUDevice is WebGPU's) whose
 * createShaderModule hoists directives (Dawn's device object ignores assigned properties).
 */
async function makeDevice(adapter: GPUAdapter): Promise<GPUDevice> {
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
  const create = device.createShaderModule.bind(device);
  const hoisting = (desc: GPUShaderModuleDescriptor) => create({ ...desc, code: hoistDirectives(desc.code) });
  // methods bound once, not on every access (tfjs reaches the device several times per dispatch)
  const bound = new Map<PropertyKey, unknown>([['createShaderModule', hoisting]]);
  return new Proxy(device, {
    get(target, prop) {
      const b = bound.get(prop);
      if (b !== undefined) return b;
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      const f = (v as (...a: unknown[]) => unknown).bind(target);
      bound.set(prop, f);
      return f;
    },
  });
}

export interface WebGPUSetup {
  adapter: DawnAdapter;
}

/**
 * openDawn, then make webgpu the active tfjs backend over our device, with our kernels registered. Throws with a
 * one-line reason otherwise. What runs on it is the ops' choice (WebGPUOps: src/backends/webgpu/ops.ts).
 */
export async function activateWebGPU(opts: { allowSoftware?: boolean; options?: Readonly<WebGPUOptions> } = {}): Promise<WebGPUSetup> {
  const r = await openDawn(opts.options);
  if (!r.ok) throw new Error(r.reason);
  if (r.info.software && opts.allowSoftware === false) throw new Error(r.info.softwareReason!);
  let ok = false;
  try {
    ok = (await tf.setBackend('webgpu')) && tf.getBackend() === 'webgpu';
  } catch {
    ok = false;
  }
  if (!ok) throw new Error('the tfjs WebGPU backend did not initialize');
  await tf.ready();
  registerWebGPUKernels();
  return { adapter: r.info };
}

/** openDawn, then make webgpu (our device, our kernels registered) the active backend. Null without an adapter. */
export async function useWebGPU(options?: Readonly<WebGPUOptions>): Promise<DawnAdapter | null> {
  try {
    return (await activateWebGPU({ options })).adapter;
  } catch {
    return null;
  }
}
