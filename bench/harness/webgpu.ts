/**
 * The one file of bench/ that reaches into src/backends: it opens the backend a run measures and applies a variant
 * (a Partial<WebGPUOptions>) through today's API (activateWebGPU / selectBackend and the module switches). When the
 * execution-layer redesign lands (issue 15), this file alone changes: the options object goes to the new API whole.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/backends/select.js';
import { activateWebGPU, webgpuFacts } from '../../src/backends/dawn.js';
import type { T2VWebGPUBackend } from '../../src/backends/webgpu/backend.js';
import { WebGPUOps, type WebGPUInstruments } from '../../src/backends/webgpu/ops.js';
import { DEFAULT_WEBGPU_OPTIONS, resolveWebGPUOptions, type WebGPUKernel, type WebGPUOptions } from '../../src/backends/webgpu/options.js';
import type { Module } from '../../src/layers/module.js';
import type { ParityBackend } from './options.js';
import type { Ops } from '../../src/layers/ops.js';
import { plainOps } from '../../src/layers/plain-ops.js';
import { shouldKeepHalf } from '../../src/pipeline/text2video.js';
import * as T2V_KERNELS from '../../src/backends/webgpu/kernel-names.js';
import { tensorCoreAttentionSupported, type AttentionTiles } from '../../src/backends/webgpu/attention-tc.js';
import { pickConfig, type RouteStats } from '../../src/backends/webgpu/tensor-core-route.js';

export type { AttentionTiles, Ops, WebGPUKernel, WebGPUOptions };
export { WEBGPU_KERNELS } from '../../src/backends/webgpu/options.js';
export { FLAT_WORKGROUP_WGSL, flatDispatch, program } from '../../src/backends/webgpu/program.js';
export { unpackHalfWeight } from '../../src/backends/webgpu/unpack-half.js';
export { HALF_MIN_VALUES } from '../../src/io/model-folder.js';
export { T2V_KERNELS };

/**
 * Dawn rounds timestamp queries to a 65.5 us grid by default (a browser's guard against timing attacks), coarser than
 * most of a UNet call's dispatches; the profile scenario asks for exact ones (bench/scenarios/profile.ts).
 */
export const EXACT_TIMESTAMPS_FLAG = 'disable-dawn-features=timestamp_quantization';
export { gpuMemory, releasePooledBuffers, resetGPUMemoryPeak } from '../../src/backends/gpu-memory.js';

export type Backend = 'webgpu' | 'wasm' | 'cpu';
export const BACKENDS: readonly Backend[] = ['webgpu', 'wasm', 'cpu'];

export interface Device {
  backend: Backend;
  /** adapter, tensor cores, tfjs version, ... as one line each */
  details: Record<string, string>;
  /** the options the device was made with (webgpu only) */
  base: Readonly<WebGPUOptions> | null;
}

let device: Device | null = null;
/** The ops of the variant in force, and the networks that run on them (track). */
let current: Ops = plainOps;
const tracked = new Set<Module>();

/** The networks in `ms` run on the variant in force, now and after every applyVariant. */
export function track(...ms: Module[]): void {
  for (const m of ms) {
    tracked.add(m);
    m.useOps(current);
  }
}

/** WebGPU ops with `variant` over the device's options (for a scenario that compares two ways itself), or plainOps. */
export function opsWith(variant: Partial<WebGPUOptions>): Ops {
  if (!device || device.backend !== 'webgpu') return plainOps;
  return new WebGPUOps(resolveWebGPUOptions({ ...(device.base ?? DEFAULT_WEBGPU_OPTIONS), ...variant }, () => undefined), webgpuFacts());
}

/**
 * Makes `backend` the tfjs backend for the whole run; on webgpu with `base` (device-level fields fixed from here on)
 * and `extraFlags` after the Dawn flags in force (T2V_DAWN_FLAGS or the default).
 */
export async function openBackend(backend: Backend, base: Partial<WebGPUOptions> = {}, extraFlags: readonly string[] = []): Promise<Device> {
  if (backend === 'wasm') await wasmFiles();
  if (backend !== 'webgpu') {
    const choice = await selectBackend(backend);
    device = { backend, details: choice.details, base: null };
    current = plainOps;
    return device;
  }
  let opts = resolveWebGPUOptions(base);
  const more = extraFlags.filter((f) => !opts.dawnFlags.includes(f));
  if (more.length) opts = resolveWebGPUOptions({ ...opts, dawnFlags: [...opts.dawnFlags, ...more] });
  const setup = await activateWebGPU({ options: opts });
  const facts = webgpuFacts();
  const probe = new WebGPUOps(opts, facts);
  // a device without subgroup matrices runs the default column in fp32 (the details line says why)
  if (!probe.tensorCores) opts = resolveWebGPUOptions({ ...opts, tensorCores: false }, () => undefined);
  tf.env().set('PROD', true);
  const a = setup.adapter;
  const tc = probe.tensorCores;
  device = {
    backend,
    details: {
      adapter: [a.vendor, a.architecture, a.description].filter(Boolean).join(' / ') || 'unknown',
      features: [...a.features].sort().join(' '),
      'tensor cores': tc ? `f16 ${tc.M}x${tc.N}x${tc.K} -> f32` : `off: ${probe.tensorCoresOff}`,
      'compute units': `${facts.computeUnits} (${facts.computeUnitsFrom})`,
      'dawn flags': opts.dawnFlags.join(' '),
      tfjs: tf.version.tfjs,
      ...(a.softwareReason ? { warning: a.softwareReason } : {}),
    },
    base: opts,
  };
  applyVariant({});
  return device;
}

/**
 * Makes the ops of `variant` over the device's base options the ones every tracked network runs on, and puts the
 * backend's caches to it. Returns the options in force. Throws, naming the field, for what cannot change after the
 * device exists.
 */
export function applyVariant(variant: Partial<WebGPUOptions>, instruments: WebGPUInstruments = {}): Readonly<WebGPUOptions> | null {
  if (!device) throw new Error('applyVariant before openBackend');
  if (device.backend !== 'webgpu') {
    if (Object.keys(variant).length || Object.keys(instruments).length) throw new Error(`webgpu options do not apply to the ${device.backend} backend`);
    return null;
  }
  const base = device.base ?? DEFAULT_WEBGPU_OPTIONS;
  const o = resolveWebGPUOptions({ ...base, ...variant }, () => undefined);
  if (o.dawnFlags.join(' ') !== base.dawnFlags.join(' ')) {
    throw new Error('dawnFlags are fixed when the device is made: run a separate process with T2V_DAWN_FLAGS');
  }
  if (o.computeUnits !== base.computeUnits) throw new Error('computeUnits is fixed when the device is made: run a separate process with T2V_COMPUTE_UNITS');
  // both caches are consulted per dispatch and the pool's best fit per buffer taken, so they can switch in a
  // running process
  const b = tf.backend() as unknown as T2VWebGPUBackend;
  if (b.caches) {
    b.caches.uniforms.enabled = o.uniformCache;
    b.caches.bindGroups.enabled = o.bindGroupCache;
  }
  if (b.pool) b.pool.bestFit = o.poolBestFit;
  const ops = new WebGPUOps(o, webgpuFacts(), instruments);
  if (o.tensorCores && !ops.tensorCores) throw new Error('tensorCores: the device has no f16 subgroup-matrix configuration');
  current = ops;
  for (const m of tracked) m.useOps(current);
  return o;
}

/** The tensor-core route's counts of the ops in force (zeros elsewhere). */
export function tensorCoreStats(): RouteStats {
  return current instanceof WebGPUOps ? current.tensorCoreStats : { routed: 0, fallback: 0 };
}

/**
 * Where the wasm backend finds its .wasm files in a bundle: T2V_WASM_DIR, else wasm/ beside the bundle (bench/pack.sh
 * puts them there). Under tsx the package finds its own.
 */
async function wasmFiles(): Promise<void> {
  const wasm = await import('@tensorflow/tfjs-backend-wasm');
  const beside = join(dirname(process.argv[1] ?? '.'), 'wasm');
  const dir = process.env.T2V_WASM_DIR ?? (existsSync(join(beside, 'tfjs-backend-wasm.wasm')) ? beside : undefined);
  if (dir) {
    (globalThis as { __dirname?: string }).__dirname ??= dir; // the ESM bundle has none; Emscripten's loader reads it
    wasm.setWasmPaths(dir.replace(/\/?$/, '/'));
  }
}

/**
 * The parity scenario's backends: cpu, wasm (with the .wasm files from T2V_WASM_DIR in a bundle), webgpu fp32 and
 * webgpu with tensor cores. Returns the ops networks built by hand run on there, and the webgpu options a
 * TextToVideo.load there takes. The harness applies the variant again after it.
 */
export async function activateForParity(b: ParityBackend): Promise<{ ops: Ops; webgpu?: Partial<WebGPUOptions> }> {
  if (b === 'wasm') await wasmFiles();
  if (!(await tf.setBackend(b === 'webgpu-tc' ? 'webgpu' : b))) throw new Error(`backend ${b} did not initialize`);
  if (!b.startsWith('webgpu')) return { ops: plainOps };
  const webgpu = { tensorCores: b === 'webgpu-tc' };
  const ops = new WebGPUOps(resolveWebGPUOptions(webgpu), webgpuFacts());
  if (b === 'webgpu-tc' && !ops.tensorCores) throw new Error('no tensor cores on this device');
  return { ops, webgpu };
}

/** Back to the run's backend after a scenario that switched it (parity). */
export async function restoreBackend(): Promise<void> {
  if (device && tf.getBackend() !== device.backend) await tf.setBackend(device.backend);
}

/** Whether the webgpu device can time dispatches ('timestamp-query'; tfjs times each one then); null elsewhere. */
export function gpuTimestamps(): boolean | null {
  if (tf.getBackend() !== 'webgpu') return null;
  return (tf.backend() as unknown as { device: GPUDevice }).device.features.has('timestamp-query');
}

/**
 * What one call of `fn` costs the CPU side on webgpu: dispatches (runWebGPUProgram calls) and the bind-group and
 * uniform caches' hits and misses; null on other backends. Counting wraps the backend instance's public
 * runWebGPUProgram for that one call.
 */
export async function dispatchReport(fn: () => tf.Tensor): Promise<string | null> {
  if (tf.getBackend() !== 'webgpu') return null;
  const b = tf.backend() as unknown as T2VWebGPUBackend;
  const counted = b as unknown as { runWebGPUProgram: (...a: unknown[]) => unknown };
  const own = Object.prototype.hasOwnProperty.call(b, 'runWebGPUProgram');
  const orig = counted.runWebGPUProgram;
  let n = 0;
  counted.runWebGPUProgram = function (this: unknown, ...a: unknown[]) { n++; return orig.apply(this, a); };
  const c = b.caches;
  const before = c ? [c.bindGroups.hits, c.bindGroups.misses, c.uniforms.hits, c.uniforms.misses] : [0, 0, 0, 0];
  try {
    const y = fn();
    await y.data();
    y.dispose();
  } finally {
    if (own) counted.runWebGPUProgram = orig; else delete (counted as { runWebGPUProgram?: unknown }).runWebGPUProgram;
  }
  if (!c) return `${n} dispatches (no t2v caches)`;
  const d = [c.bindGroups.hits, c.bindGroups.misses, c.uniforms.hits, c.uniforms.misses].map((v, i) => v - before[i]);
  return `${n} dispatches; bind groups ${d[0]} kept, ${d[1]} made; uniforms ${d[2]} kept, ${d[3]} written (internals ${b.internals?.ok ? 'ok' : 'NOT ok'})`;
}

/** Whether TextToVideo.load would keep the weights float16-resident here, with the ops in force (shouldKeepHalf). */
export function halfWeightsByDefault(): boolean {
  return shouldKeepHalf(undefined, current);
}

/**
 * Packed self-attention (qkv [B, N, 3*inner]) through the fused fp32 kernel, or (`tensorCores`) the tensor-core kernel
 * (null where the device or the shape has none).
 */
export function packedAttention(qkv: tf.Tensor3D, heads: number, tensorCores: boolean, tiles: AttentionTiles = {}): tf.Tensor | null {
  // the kernels were registered when webgpu was activated (openBackend)
  if (!tensorCores) return tf.engine().runKernel(T2V_KERNELS.FusedPackedAttention, { qkv }, { heads, causal: false } as unknown as tf.NamedAttrMap) as tf.Tensor;
  const cfg = pickConfig(webgpuFacts().subgroupMatrixConfigs);
  if (!tensorCoreAttentionSupported(qkv, heads, cfg)) return null;
  return tf.engine().runKernel(T2V_KERNELS.TensorCoreAttention, { qkv }, { ...tiles, heads, route: { cfg, emulate: false } } as unknown as tf.NamedAttrMap) as tf.Tensor;
}
