import * as tf from '@tensorflow/tfjs';

export const BACKENDS = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendRequest = BackendName | 'auto';
export const BACKEND_REQUESTS: readonly BackendRequest[] = ['auto', ...BACKENDS];

/** Dawn toggles that expose shader-f16 and subgroup matrices on NVIDIA (see ../shared/gpu/README.md). */
export const DEFAULT_DAWN_FLAGS = ['enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia'];

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
}

/** Thrown when the requested backend cannot be used; the message is one line for the CLI. */
export class BackendError extends Error {}

/** `--backend` value, else `T2V_BACKEND`, else `auto`; an unknown name is an error listing the valid ones. */
export function resolveBackendRequest(name?: string): BackendRequest {
  const raw = (name ?? process.env.T2V_BACKEND ?? 'auto').trim().toLowerCase() || 'auto';
  if (!(BACKEND_REQUESTS as readonly string[]).includes(raw)) {
    const from = name === undefined && process.env.T2V_BACKEND !== undefined ? ' (from T2V_BACKEND)' : '';
    throw new BackendError(`unknown backend "${raw}"${from}; valid: ${BACKEND_REQUESTS.join(', ')}`);
  }
  return raw as BackendRequest;
}

type Attempt = { ok: true; details: Record<string, string> } | { ok: false; reason: string };

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

interface AdapterLike {
  info?: Record<string, unknown>;
  isFallbackAdapter?: boolean;
  features?: Set<string>;
  requestAdapterInfo?: () => Promise<Record<string, unknown>>;
}

/** A software adapter (SwiftShader, llvmpipe, lavapipe, a CPU device) does not count as a GPU. */
export function softwareAdapterReason(adapter: AdapterLike, info: Record<string, unknown>): string | null {
  if (adapter.isFallbackAdapter === true || info.isFallbackAdapter === true) return 'fallback adapter';
  const text = ['vendor', 'architecture', 'device', 'description', 'adapterType', 'type']
    .map((k) => String(info[k] ?? '')).join(' ').toLowerCase();
  const m = /swiftshader|llvmpipe|lavapipe|software|\bcpu\b/.exec(text);
  return m ? `software adapter (${m[0]})` : null;
}

async function tryWebgpu(allowSoftware: boolean): Promise<Attempt> {
  let gpu: { requestAdapter(o?: unknown): Promise<AdapterLike | null> };
  try {
    const mod = (await importOptional('webgpu')) as { create(flags: string[]): typeof gpu; globals: object };
    const flags = process.env.T2V_DAWN_FLAGS !== undefined
      ? process.env.T2V_DAWN_FLAGS.split(/\s+/).filter(Boolean) : DEFAULT_DAWN_FLAGS;
    const g = globalThis as { navigator?: { gpu?: unknown } };
    if (g.navigator?.gpu === undefined) {
      Object.assign(globalThis, mod.globals);
      const nav = { ...(g.navigator ?? {}), gpu: mod.create(flags) };
      Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
    }
    gpu = g.navigator!.gpu as typeof gpu;
  } catch (err) {
    return { ok: false, reason: `the webgpu package does not load: ${message(err)}` };
  }
  let adapter: AdapterLike | null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (err) {
    return { ok: false, reason: `requestAdapter failed: ${message(err)}` };
  }
  if (adapter === null) return { ok: false, reason: 'no WebGPU adapter found' };
  const info: Record<string, unknown> = { ...(adapter.info ?? (await adapter.requestAdapterInfo?.()) ?? {}) };
  for (const k of ['vendor', 'architecture', 'device', 'description']) {
    if (info[k] === undefined && adapter.info) info[k] = (adapter.info as Record<string, unknown>)[k];
  }
  const soft = softwareAdapterReason(adapter, info);
  if (soft !== null && !allowSoftware) return { ok: false, reason: soft };
  try {
    await import('@tensorflow/tfjs-backend-webgpu');
  } catch (err) {
    return { ok: false, reason: `@tensorflow/tfjs-backend-webgpu does not load: ${message(err)}` };
  }
  if (!(await activate('webgpu'))) return { ok: false, reason: 'the tfjs WebGPU backend did not initialize' };
  // the fused WGSL kernels (attention, GroupNorm+SiLU, LayerNorm, GEGLU; docs/gpu.md) that layer code picks up
  (await import('./backends/webgpu/register.js')).registerWebGPUKernels();
  const adapterText = ['vendor', 'architecture', 'device', 'description']
    .map((k) => String(info[k] ?? '')).filter(Boolean).join(' / ');
  const details: Record<string, string> = { adapter: adapterText || 'unknown' };
  if (adapter.features) details.features = [...adapter.features].sort().join(', ');
  if (soft !== null) details.warning = soft;
  return { ok: true, details };
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

function attempt(name: BackendName, explicit: boolean): Promise<Attempt> {
  switch (name) {
    case 'tensorflow': return tryTensorflow();
    case 'webgpu': return tryWebgpu(explicit);
    case 'wasm': return tryWasm();
    case 'cpu': return tryCpu();
  }
}

/**
 * Makes one tfjs backend current. `auto` (the default, or `T2V_BACKEND`) takes the first that works in the
 * order tensorflow, webgpu, wasm, cpu; a software WebGPU adapter counts only when webgpu is asked for by name.
 */
export async function selectBackend(name?: string): Promise<BackendChoice> {
  const req = resolveBackendRequest(name);
  const order: readonly BackendName[] = req === 'auto' ? BACKENDS : [req];
  const skipped: BackendSkip[] = [];
  for (const b of order) {
    const r = await attempt(b, req !== 'auto');
    if (r.ok) {
      tf.env().set('PROD', true); // drops tfjs's per-op NaN checks and debug warnings
      return { name: b, skipped, details: { tfjs: tf.version.tfjs, ...r.details } };
    }
    skipped.push({ name: b, reason: r.reason });
  }
  if (req !== 'auto') throw new BackendError(`backend ${req} is not available: ${skipped[0].reason}`);
  throw new BackendError(`no backend works: ${skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}`);
}
