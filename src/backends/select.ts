import * as tf from '@tensorflow/tfjs';
import { activateWebGPU, softwareAdapterReason, webgpuFacts } from './dawn.js';
import { WebGPUOps } from './webgpu/ops.js';
import { resolveWebGPUOptions, type WebGPUOptions } from './webgpu/options.js';
import { envVar } from '../env.js';
import type { Ops } from '../layers/ops.js';
import { plainOps } from '../layers/plain-ops.js';

export { softwareAdapterReason };

export const BACKENDS = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendRequest = BackendName | 'auto';
export const BACKEND_REQUESTS: readonly BackendRequest[] = ['auto', ...BACKENDS];

/** What selectBackend may be told besides the backend's name. */
export interface BackendOptions {
  /** webgpu only: how it executes (src/backends/webgpu/options.ts); unset fields from the environment, then defaults. */
  webgpu?: Partial<WebGPUOptions>;
  /**
   * webgpu only, the same as `webgpu.tensorCores`: matmuls and convolutions on tensor cores (f16 inputs, f32
   * accumulation) where the device has subgroup matrices. Default: `T2V_TENSOR_CORES` (0 or 1), else on.
   */
  tensorCores?: boolean;
}

function webgpuOptions(opts: BackendOptions): Partial<WebGPUOptions> {
  return opts.tensorCores === undefined ? { ...opts.webgpu } : { ...opts.webgpu, tensorCores: opts.tensorCores };
}

/**
 * The ops networks run on with the active backend: WebGPUOps (with these options, validated) on webgpu, plainOps
 * elsewhere. For an application that made the backend current itself; selectBackend returns them too.
 */
export function opsForActiveBackend(opts: BackendOptions = {}): Ops {
  if (tf.getBackend() !== 'webgpu') return plainOps;
  return new WebGPUOps(resolveWebGPUOptions(webgpuOptions(opts)), webgpuFacts());
}

export interface BackendSkip {
  name: BackendName;
  reason: string;
}

export interface BackendChoice {
  name: BackendName;
  /** What was tried before the chosen one and why it was passed over (only for `auto`). */
  skipped: BackendSkip[];
  /** Facts worth printing: package used, tfjs version, wasm threads, WebGPU adapter. */
  details: Record<string, string>;
  /** What the networks run on with this backend (Module.useOps): WebGPUOps on webgpu, plainOps elsewhere. */
  ops: Ops;
}

/** Thrown when the requested backend cannot be used; the message is one line for the CLI. */
export class BackendError extends Error {}

/** `--backend` value, else `T2V_BACKEND`, else `auto`; an unknown name is an error listing the valid ones. */
export function resolveBackendRequest(name?: string): BackendRequest {
  const raw = (name ?? envVar('T2V_BACKEND') ?? 'auto').trim().toLowerCase() || 'auto';
  if (!(BACKEND_REQUESTS as readonly string[]).includes(raw)) {
    const from = name === undefined && envVar('T2V_BACKEND') !== undefined ? ' (from T2V_BACKEND)' : '';
    throw new BackendError(`unknown backend "${raw}"${from}; valid: ${BACKEND_REQUESTS.join(', ')}`);
  }
  return raw as BackendRequest;
}

type Attempt = { ok: true; details: Record<string, string>; ops?: Ops } | { ok: false; reason: string };

function message(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.split('\n')[0].trim();
}

// Optional packages that cannot be installed everywhere: imported by a computed name so the build never needs them.
async function importOptional(pkg: string): Promise<unknown> {
  return import(pkg);
}

async function activate(name: BackendName): Promise<boolean> {
  try {
    return (await tf.setBackend(name)) && tf.getBackend() === name;
  } catch {
    return false;
  }
}

async function tryTensorflow(): Promise<Attempt> {
  const reasons: string[] = [];
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    try {
      await importOptional(pkg);
    } catch (err) {
      const code = (err as { code?: string }).code;
      reasons.push(code === 'ERR_MODULE_NOT_FOUND' ? `${pkg} is not installed` : `${pkg} does not load: ${message(err)}`);
      continue;
    }
    if (await activate('tensorflow')) return { ok: true, details: { package: pkg } };
    reasons.push(`${pkg} loaded but its backend did not initialize`);
  }
  return { ok: false, reason: reasons.join('; ') };
}

async function tryWebgpu(allowSoftware: boolean, opts: BackendOptions): Promise<Attempt> {
  // Dawn, our device, the fused kernels and (where wanted and offered) the tensor-core route: src/backends/dawn.ts
  let setup;
  let ops: WebGPUOps;
  try {
    const options = resolveWebGPUOptions(webgpuOptions(opts)); // a bad option or variable is an error, not a skip
    setup = await activateWebGPU({ allowSoftware, options });
    ops = new WebGPUOps(options, webgpuFacts());
  } catch (err) {
    if (err instanceof Error && err.name === 'WebGPUOptionsError') throw new BackendError(err.message);
    return { ok: false, reason: message(err) };
  }
  const a = setup.adapter;
  const adapterText = [a.vendor, a.architecture, a.description].filter(Boolean).join(' / ');
  const details: Record<string, string> = { adapter: adapterText || 'unknown', features: [...a.features].sort().join(', ') };
  const tc = ops.tensorCores;
  details['tensor cores'] = tc ? `on (f16 ${tc.M}x${tc.N}x${tc.K} -> f32; T2V_TENSOR_CORES=0 turns them off)` : `off: ${ops.tensorCoresOff}`;
  if (a.softwareReason !== null) details.warning = a.softwareReason;
  return { ok: true, details, ops };
}

async function tryWasm(): Promise<Attempt> {
  try {
    await import('@tensorflow/tfjs-backend-wasm');
  } catch (err) {
    return { ok: false, reason: `@tensorflow/tfjs-backend-wasm does not load: ${message(err)}` };
  }
  if (!(await activate('wasm'))) return { ok: false, reason: 'the wasm backend did not initialize' };
  const threads = tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT');
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  return { ok: true, details: { simd: String(simd), threads: threads ? 'yes' : 'no (single-threaded)' } };
}

async function tryCpu(): Promise<Attempt> {
  return (await activate('cpu')) ? { ok: true, details: {} } : { ok: false, reason: 'the cpu backend did not initialize' };
}

function attempt(name: BackendName, explicit: boolean, opts: BackendOptions): Promise<Attempt> {
  switch (name) {
    case 'tensorflow': return tryTensorflow();
    case 'webgpu': return tryWebgpu(explicit, opts);
    case 'wasm': return tryWasm();
    case 'cpu': return tryCpu();
  }
}

/**
 * Makes one tfjs backend current. `auto` (the default, or `T2V_BACKEND`) takes the first that works in the
 * order tensorflow, webgpu, wasm, cpu; a software WebGPU adapter counts only when webgpu is asked for by name.
 * On webgpu the choice carries WebGPUOps made with `opts.webgpu` (fused kernels, and the tensor-core route where the
 * device offers subgroup matrices unless `tensorCores` or `T2V_TENSOR_CORES=0` say otherwise).
 */
export async function selectBackend(name?: string, opts: BackendOptions = {}): Promise<BackendChoice> {
  const req = resolveBackendRequest(name);
  const order: readonly BackendName[] = req === 'auto' ? BACKENDS : [req];
  const skipped: BackendSkip[] = [];
  for (const b of order) {
    const r = await attempt(b, req !== 'auto', opts);
    if (r.ok) {
      tf.env().set('PROD', true); // drops tfjs's per-op NaN checks and debug warnings
      return { name: b, skipped, details: { tfjs: tf.version.tfjs, ...r.details }, ops: r.ops ?? plainOps };
    }
    skipped.push({ name: b, reason: r.reason });
  }
  if (req !== 'auto') throw new BackendError(`backend ${req} is not available: ${skipped[0].reason}`);
  throw new BackendError(`no backend works: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`);
}
