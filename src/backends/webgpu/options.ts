import { envVar } from '../../env.js';

/**
 * The fused WGSL kernels (src/backends/webgpu/*.ts) that WebGPU execution may use; one left out runs as tfjs ops.
 * packed-attention: self-attention reads q|k|v from one matmul; context-attention: every cross-attention's keys and
 * values come from one matmul per UNet call and are read in place.
 */
/** `tensor-core-attention`: packed self-attention on tensor cores where tensorCores is on and the shape fits (attention-tc.ts). */
export const WEBGPU_KERNELS = ['attention', 'packed-attention', 'tensor-core-attention', 'context-attention', 'groupnorm', 'layernorm', 'geglu', 'concat', 'row-slice'] as const;
export type WebGPUKernel = (typeof WEBGPU_KERNELS)[number];

/**
 * Dawn toggles: allow_unsafe_apis and vulkan_enable_f16_on_nvidia expose shader-f16 and subgroup matrices on NVIDIA;
 * disable_robustness drops the bounds clamps Tint puts on every access (a browser's guard against hostile shaders; we
 * run only our own and tfjs's kernels). It makes a guided UNet step 1.5x faster on the H200 (bench/RESULTS.md).
 * Lavapipe runs unclamped shaders very slowly: its kernel tests take the first two (docs/gpu.md).
 */
export const DEFAULT_DAWN_FLAGS: readonly string[] = [
  'enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness',
];

/**
 * Every choice WebGPU execution makes, in one place: resolved once (resolveWebGPUOptions) from what the caller passes,
 * then the environment, then the defaults, and handed to whatever needs it. Nothing reads these from module state.
 *
 * Device-level fields (dawnFlags, uniformCache, bindGroupCache, poolBestFit, computeUnits) take effect when the device is made, the first time
 * webgpu is activated in a process; the rest apply per model (the ops a network runs with).
 */
export interface WebGPUOptions {
  /**
   * GEMMs and convolutions on tensor cores (f16 inputs, f32 accumulation) where the device offers an f16
   * subgroup-matrix configuration. `T2V_TENSOR_CORES` (0 or 1); default on (upstream's own default is fp16 autocast).
   */
  tensorCores: boolean;
  /** The fused kernels in use (default all); a kernel left out runs as tfjs ops. */
  kernels: readonly WebGPUKernel[];
  /** Tensor-core tiling: split K where the tiles alone leave the GPU short of workgroups. */
  splitK: boolean;
  /**
   * Tensor-core self-attention: 16-row query tiles per subgroup, 1 or 2; null: 2 where the workgroup memory holds it
   * (attention-tc.ts).
   */
  attentionRowTiles: 1 | 2 | null;
  /**
   * Experimental, default off: tensor-core self-attention in one pass over the keys, its rows' maxima moved lazily
   * (attention-tc.ts), instead of a first pass for the maxima. Faster (H200 run 58: 24x1024x576's spatial attention
   * 573 -> 500 ms a guided step) and right under emulated matrices (lavapipe), but wrong on the H200 (run 59: the
   * parity scenario's small model 4.13e-1 from fp32, against 1.47e-3 in two passes), even where no row's maximum moves after
   * the first block (run 62): not understood yet.
   */
  attentionOnePass: boolean;
  /**
   * Compute units (SMs on NVIDIA) the tiling sizes its waves for. `T2V_COMPUTE_UNITS`; null: from the device
   * (see the tiling policy).
   */
  computeUnits: number | null;
  /** One uniform buffer per distinct uniform content instead of a pooled write per dispatch. `T2V_UNIFORM_CACHE` (0/1). */
  uniformCache: boolean;
  /**
   * Bind groups kept per (pipeline layout, buffers) and pooled buffers handed out oldest first, so they recur from one
   * UNet call to the next. `T2V_BIND_GROUP_CACHE` (0/1).
   */
  bindGroupCache: boolean;
  /**
   * A request for a storage buffer of 1 MiB or more with no free buffer of its exact size takes the smallest free one
   * of up to twice its size instead of making a new one (src/backends/webgpu/buffer-pool.ts). `T2V_POOL_BEST_FIT` (0/1).
   */
  poolBestFit: boolean;
  /** Dawn toggles (Node, where Dawn is ours). `T2V_DAWN_FLAGS`, space-separated. */
  dawnFlags: readonly string[];
}

export const DEFAULT_WEBGPU_OPTIONS: Readonly<WebGPUOptions> = Object.freeze({
  tensorCores: true,
  kernels: WEBGPU_KERNELS,
  splitK: true,
  attentionRowTiles: null,
  attentionOnePass: false,
  computeUnits: null,
  uniformCache: true,
  bindGroupCache: true,
  poolBestFit: true,
  dawnFlags: DEFAULT_DAWN_FLAGS,
});

/** A bad option or environment value; the message names it and says what is valid. */
export class WebGPUOptionsError extends Error {
  override readonly name = 'WebGPUOptionsError';
}

type Env = (name: string) => string | undefined;

function envBool(env: Env, name: string): boolean | undefined {
  const raw = env(name);
  if (raw === undefined) return undefined;
  const v = raw.trim().toLowerCase();
  if (v === '') return undefined;
  if (['0', 'off', 'false', 'no'].includes(v)) return false;
  if (['1', 'on', 'true', 'yes'].includes(v)) return true;
  throw new WebGPUOptionsError(`${name}=${raw}: use 0 or 1`);
}

function envUnits(env: Env, name: string): number | undefined {
  const raw = env(name);
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65536) throw new WebGPUOptionsError(`${name}=${raw}: use a whole number of compute units (1 to 65536)`);
  return n;
}

function check(o: WebGPUOptions): WebGPUOptions {
  const bools = ['tensorCores', 'splitK', 'attentionOnePass', 'uniformCache', 'bindGroupCache', 'poolBestFit'] as const;
  for (const k of bools) {
    if (typeof o[k] !== 'boolean') throw new WebGPUOptionsError(`webgpu option ${k} must be true or false, not ${JSON.stringify(o[k])}`);
  }
  if (!Array.isArray(o.kernels) || o.kernels.some((k) => !(WEBGPU_KERNELS as readonly string[]).includes(k))) {
    throw new WebGPUOptionsError(`webgpu option kernels: ${JSON.stringify(o.kernels)}; valid kernels: ${WEBGPU_KERNELS.join(', ')}`);
  }
  if (o.attentionRowTiles !== null && o.attentionRowTiles !== 1 && o.attentionRowTiles !== 2) {
    throw new WebGPUOptionsError(`webgpu option attentionRowTiles must be 1, 2 or null, not ${JSON.stringify(o.attentionRowTiles)}`);
  }
  if (o.computeUnits !== null && (!Number.isInteger(o.computeUnits) || o.computeUnits < 1)) {
    throw new WebGPUOptionsError(`webgpu option computeUnits must be a positive whole number or null, not ${o.computeUnits}`);
  }
  if (!Array.isArray(o.dawnFlags) || o.dawnFlags.some((f) => typeof f !== 'string')) {
    throw new WebGPUOptionsError('webgpu option dawnFlags must be a list of strings');
  }
  return o;
}

/**
 * The options in force: `given` first, then the environment (T2V_TENSOR_CORES, T2V_UNIFORM_CACHE,
 * T2V_BIND_GROUP_CACHE, T2V_POOL_BEST_FIT, T2V_COMPUTE_UNITS, T2V_DAWN_FLAGS), then DEFAULT_WEBGPU_OPTIONS. A bad value is an error
 * naming the field or the variable. The result is frozen.
 */
export function resolveWebGPUOptions(given: Partial<WebGPUOptions> = {}, env: Env = envVar): Readonly<WebGPUOptions> {
  const flags = env('T2V_DAWN_FLAGS');
  const fromEnv: Partial<WebGPUOptions> = {
    tensorCores: envBool(env, 'T2V_TENSOR_CORES'),
    uniformCache: envBool(env, 'T2V_UNIFORM_CACHE'),
    bindGroupCache: envBool(env, 'T2V_BIND_GROUP_CACHE'),
    poolBestFit: envBool(env, 'T2V_POOL_BEST_FIT'),
    computeUnits: envUnits(env, 'T2V_COMPUTE_UNITS'),
    dawnFlags: flags !== undefined ? flags.split(/\s+/).filter(Boolean) : undefined,
  };
  const merged: Record<string, unknown> = { ...DEFAULT_WEBGPU_OPTIONS };
  for (const src of [fromEnv, given] as Array<Record<string, unknown>>) {
    for (const [k, v] of Object.entries(src)) if (v !== undefined) merged[k] = v;
  }
  for (const k of Object.keys(given)) {
    if (!(k in DEFAULT_WEBGPU_OPTIONS)) throw new WebGPUOptionsError(`unknown webgpu option ${k}; valid: ${Object.keys(DEFAULT_WEBGPU_OPTIONS).join(', ')}`);
  }
  return Object.freeze(check(merged as unknown as WebGPUOptions));
}
