/**
 * The one file of bench/ that reaches into src/backends: it opens the backend a run measures and applies a variant
 * (a Partial<WebGPUOptions>) through today's API (activateWebGPU / selectBackend and the module switches). When the
 * execution-layer redesign lands (issue 15), this file alone changes: the options object goes to the new API whole.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/backend.js';
import { activateWebGPU, dawnFlags, setTensorCores, tensorCoresOn, tensorCoreStats, uniformCache } from '../../src/backends/dawn.js';
import { bindGroupCache } from '../../src/backends/webgpu/bind-groups.js';
import { splitK } from '../../src/backends/webgpu/matmul-f16-staged.js';
import { DEFAULT_WEBGPU_OPTIONS, resolveWebGPUOptions, WEBGPU_KERNELS, type WebGPUKernel,
  type WebGPUOptions } from '../../src/backends/webgpu/options.js';
import { registerWebGPUKernels, unregisterWebGPUKernels } from '../../src/backends/webgpu/register.js';
import { contextProjection } from '../../src/layers/unet/unet.js';

export type { WebGPUKernel, WebGPUOptions };
export { FLAT_WORKGROUP_WGSL, flatDispatch, program } from '../../src/backends/webgpu/program.js';
export { geglu } from '../../src/backends/geglu.js';
export { registerWebGPUKernels, unregisterWebGPUKernels, tensorCoreStats };

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

/** Makes `backend` the tfjs backend for the whole run; on webgpu with `base` (device-level fields fixed from here on). */
export async function openBackend(backend: Backend, base: Partial<WebGPUOptions> = {}): Promise<Device> {
  if (backend === 'wasm') await wasmFiles();
  if (backend !== 'webgpu') {
    const choice = await selectBackend(backend);
    device = { backend, details: choice.details, base: null };
    return device;
  }
  let opts = resolveWebGPUOptions(base);
  const setup = await activateWebGPU({ tensorCores: opts.tensorCores, flags: [...opts.dawnFlags] });
  // a device without subgroup matrices runs the default column in fp32 (the details line says why)
  if (!setup.tensorCores) opts = resolveWebGPUOptions({ ...opts, tensorCores: false }, () => undefined);
  tf.env().set('PROD', true);
  const a = setup.adapter;
  const tc = setup.tensorCores;
  device = {
    backend,
    details: {
      adapter: [a.vendor, a.architecture, a.description].filter(Boolean).join(' / ') || 'unknown',
      features: [...a.features].sort().join(' '),
      'tensor cores': tc ? `f16 ${tc.M}x${tc.N}x${tc.K} -> f32` : `off: ${setup.tensorCoresOff}`,
      'dawn flags': dawnFlags().join(' '),
      tfjs: tf.version.tfjs,
      ...(a.softwareReason ? { warning: a.softwareReason } : {}),
    },
    base: opts,
  };
  applyVariant({});
  return device;
}

/**
 * Puts every switch to `variant` over the device's base options (so a scenario that moved a switch is undone by the
 * next apply). Returns the options in force. Throws, naming the field, for what cannot change after the device exists.
 */
export function applyVariant(variant: Partial<WebGPUOptions>): Readonly<WebGPUOptions> | null {
  if (!device) throw new Error('applyVariant before openBackend');
  if (device.backend !== 'webgpu') {
    if (Object.keys(variant).length) throw new Error(`webgpu options do not apply to the ${device.backend} backend`);
    return null;
  }
  const base = device.base ?? DEFAULT_WEBGPU_OPTIONS;
  const o = resolveWebGPUOptions({ ...base, ...variant }, () => undefined);
  if (o.dawnFlags.join(' ') !== base.dawnFlags.join(' ')) {
    throw new Error('dawnFlags are fixed when the device is made: run a separate process with T2V_DAWN_FLAGS');
  }
  if (o.computeUnits !== null) throw new Error('computeUnits cannot be set through today\'s API (the tiling assumes 132)');
  // both caches are consulted per dispatch, so they can switch in a running process
  uniformCache.enabled = o.uniformCache;
  bindGroupCache.enabled = o.bindGroupCache;
  const on = new Set<WebGPUKernel>(o.kernels);
  unregisterWebGPUKernels(WEBGPU_KERNELS.filter((k) => !on.has(k)));
  registerWebGPUKernels([...on]);
  contextProjection.enabled = o.contextProjection;
  splitK.enabled = o.splitK;
  const cfg = setTensorCores(o.tensorCores);
  if (o.tensorCores && !cfg) throw new Error('tensorCores: the device has no f16 subgroup-matrix configuration');
  return o;
}

/** Whether matmuls and convolutions go to the tensor cores now. */
export function tensorCoresActive(): boolean {
  return tensorCoresOn() !== null;
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
 * webgpu with tensor cores. It leaves the switches moved; the harness applies the variant again after it.
 */
export async function activateForParity(b: 'cpu' | 'wasm' | 'webgpu' | 'webgpu-tc'): Promise<void> {
  if (b === 'wasm') await wasmFiles();
  if (!(await tf.setBackend(b === 'webgpu-tc' ? 'webgpu' : b))) throw new Error(`backend ${b} did not initialize`);
  if (b.startsWith('webgpu')) {
    const cfg = setTensorCores(b === 'webgpu-tc');
    if (b === 'webgpu-tc' && !cfg) throw new Error('no tensor cores on this device');
  }
}

/** Back to the run's backend after a scenario that switched it (parity). */
export async function restoreBackend(): Promise<void> {
  if (device && tf.getBackend() !== device.backend) await tf.setBackend(device.backend);
}
