import type { WebGPUOptions } from './options.js';

/**
 * The last resort for the compute-unit count: the SMs of the H100 SXM and the H200 (132 each, NVIDIA's data sheets),
 * the GPUs the tensor-core tiling's thresholds were measured on (bench/RESULTS.md, runs 18-34). Used only where
 * neither `computeUnits` (T2V_COMPUTE_UNITS) nor the adapter says: Dawn's adapter (npm `webgpu` 0.6.2) exposes no
 * compute-unit count (adapter.info: vendor, architecture, device, description, subgroupMinSize, subgroupMaxSize,
 * isFallbackAdapter, subgroupMatrixConfigs; adapter.limits: the WebGPU limits only), and a start-up probe (a
 * spinning kernel timed at 1..N workgroups) would find resident workgroups per wave, units times an occupancy that
 * differs by GPU, not units (docs/gpu.md).
 */
export const DEFAULT_COMPUTE_UNITS = 132;

/** One `chromium-experimental-subgroup-matrix` configuration of a device (tensor cores): operand and result types, M x N x K. */
export interface SubgroupMatrixConfig { componentType: string; resultComponentType: string; M: number; N: number; K: number }

/** What the kernels need to know about the device the backend runs on. */
export interface DeviceFacts {
  /** Compute units (SMs on NVIDIA) the tensor-core tiling sizes its waves for. */
  computeUnits: number;
  /** Where computeUnits came from. */
  computeUnitsFrom: 'option' | 'default';
  /** The f16 -> f32 subgroup-matrix configurations (tensor cores) the device was made with; empty without them. */
  subgroupMatrixConfigs: readonly SubgroupMatrixConfig[];
  /** WGSL's `buffer_view` language feature (one workgroup array seen as f32 and as vec4<f32>): the attention's vec4 scores. */
  wgslBufferView: boolean;
  /** The device's smallest subgroup (adapter.info.subgroupMinSize) where it was made with `subgroups`, else 0. */
  subgroupMinSize: number;
}

/** The facts of a device made with `options` over an adapter offering `configs`. */
export function deviceFacts(options: Pick<WebGPUOptions, 'computeUnits'>, configs: readonly SubgroupMatrixConfig[] = [],
  wgslBufferView = false, subgroupMinSize = 0): DeviceFacts {
  const given = options.computeUnits;
  return Object.freeze({
    computeUnits: given ?? DEFAULT_COMPUTE_UNITS,
    computeUnitsFrom: given !== null ? 'option' : 'default',
    subgroupMatrixConfigs: Object.freeze([...configs]),
    wgslBufferView,
    subgroupMinSize,
  });
}

const UNKNOWN: DeviceFacts = deviceFacts({ computeUnits: null });

/**
 * The facts of a tfjs backend: our WebGPU backend's (src/backends/webgpu/backend.ts), else the defaults (a stock
 * backend: no subgroup matrices known). Read by property so that this module loads no tfjs-backend-webgpu code.
 */
export function deviceFactsOf(backend: object | null | undefined): DeviceFacts {
  return (backend as { facts?: DeviceFacts } | null | undefined)?.facts ?? UNKNOWN;
}
