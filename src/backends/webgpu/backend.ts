import { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import webgpuPackage from '@tensorflow/tfjs-backend-webgpu/package.json' with { type: 'json' };
import {
  bufferManagerClass, checkTfjsInternals, internalsMessage, internalsOf, overridePrivate, stockMethod, type InternalsCheck,
} from '../../tfjs-internals.js';
import type { SubgroupMatrixConfig } from './device-facts.js';
import { BindGroupCache, oldestFirstPool, type BindGroupStats } from './bind-groups.js';
import { deviceFacts, type DeviceFacts } from './device-facts.js';
import type { WebGPUOptions } from './options.js';
import { UniformCache, type CacheStats } from './uniform-cache.js';

/** The installed tfjs-backend-webgpu version (the package exports none). */
export const TFJS_WEBGPU_VERSION: string = webgpuPackage.version;

export interface T2VBackendInit {
  /** Resolved options (resolveWebGPUOptions): uniformCache and bindGroupCache are read here, once. */
  options: Readonly<WebGPUOptions>;
  /** The f16 subgroup-matrix configurations the device was made with (src/backends/dawn.ts). */
  subgroupMatrixConfigs?: readonly SubgroupMatrixConfig[];
  /** Where the one line goes when the installed tfjs lacks a member the caches use (default console.error: stderr). */
  warn?: (line: string) => void;
}

const stockRecordAndSubmit = stockMethod(WebGPUBackend.prototype, 'recordAndSubmit');
const stockMakeUniforms = stockMethod(WebGPUBackend.prototype, 'makeUniforms');

/**
 * tfjs's WebGPU backend with t2v's dispatch caches (docs/gpu.md): one uniform buffer per distinct uniform content
 * (UniformCache), bind groups kept per (layout, buffers) (BindGroupCache), and pooled buffers handed out oldest first
 * (oldestFirstPool). They replace private members of WebGPUBackend (src/tfjs-internals.ts), so each instance checks
 * them first (checkTfjsInternals): where the installed tfjs lacks one, one line on stderr names it and the instance
 * runs tfjs's own code throughout (the caches stay off). It also carries the device's facts (compute units,
 * subgroup-matrix configurations) for the kernels.
 */
export class T2VWebGPUBackend extends WebGPUBackend {
  readonly options: Readonly<WebGPUOptions>;
  readonly facts: DeviceFacts;
  /** What the start-up check found (ok: the caches may run). */
  readonly internals: InternalsCheck;
  /** The caches' switches and counts; a switch turned on has no effect where the check failed. */
  readonly caches: { uniforms: CacheStats; bindGroups: BindGroupStats };
  private readonly uniformCache: UniformCache;
  private readonly bindGroupCache: BindGroupCache;

  constructor(device: GPUDevice, adapterInfo: GPUAdapterInfo | undefined, init: T2VBackendInit) {
    super(device, adapterInfo);
    this.options = init.options;
    this.facts = deviceFacts(init.options, init.subgroupMatrixConfigs);
    this.internals = checkTfjsInternals(this, WebGPUBackend.prototype, TFJS_WEBGPU_VERSION);
    const wanted = init.options.uniformCache || init.options.bindGroupCache;
    if (!this.internals.ok && wanted) (init.warn ?? console.error)(internalsMessage(this.internals));
    const ok = this.internals.ok;
    this.uniformCache = new UniformCache(ok && init.options.uniformCache);
    this.bindGroupCache = new BindGroupCache(ok && init.options.bindGroupCache);
    this.caches = { uniforms: this.uniformCache.stats, bindGroups: this.bindGroupCache.stats };
    if (ok && init.options.bindGroupCache) {
      // no buffer is taken yet: the pool tfjs made is replaced, not drained
      const Pool = oldestFirstPool(bufferManagerClass(this));
      internalsOf(this).bufferManager = new Pool(device, this.bindGroupCache.stats);
    }
  }

  /** The f16 subgroup-matrix configurations (tensor cores) of this backend's device; empty without them. */
  get subgroupMatrixConfigs(): readonly SubgroupMatrixConfig[] {
    return this.facts.subgroupMatrixConfigs;
  }

  static {
    // WebGPUBackend's recordAndSubmit and makeUniforms are private, which a subclass cannot redeclare in TypeScript:
    // they are put on this prototype instead (never on instances)
    overridePrivate(this.prototype, 'recordAndSubmit', function (program, output, inputs, uniforms) {
      const self = this as unknown as T2VWebGPUBackend;
      if (!self.internals.ok || !self.bindGroupCache.record(this, program, output, inputs, uniforms)) {
        stockRecordAndSubmit.call(this, program, output, inputs, uniforms);
      }
    });
    overridePrivate(this.prototype, 'makeUniforms', function (u) {
      const self = this as unknown as T2VWebGPUBackend;
      return self.internals.ok ? self.uniformCache.make(this, u, stockMakeUniforms) : stockMakeUniforms.call(this, u);
    });
  }
}
