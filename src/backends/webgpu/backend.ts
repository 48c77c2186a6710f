import type { BackendValues } from '@tensorflow/tfjs';
import { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import webgpuPackage from '@tensorflow/tfjs-backend-webgpu/package.json' with { type: 'json' };
import {
  bufferManagerClass, checkTfjsInternals, internalsMessage, internalsOf, overridePrivate, stockMethod, type InternalsCheck,
  type WebGPUBackendInternals,
} from '../../tfjs-internals.js';
import type { SubgroupMatrixConfig } from './device-facts.js';
import { BindGroupCache, type BindGroupStats } from './bind-groups.js';
import { fitToTensor, poolMemory, poolStats, t2vPool, type GPUMemory, type PoolStats, type T2VPool } from './buffer-pool.js';
import { deviceFacts, type DeviceFacts } from './device-facts.js';
import type { WebGPUOptions } from './options.js';
import { UniformCache, type CacheStats } from './uniform-cache.js';

/** The installed tfjs-backend-webgpu version (the package exports none). */
export const TFJS_WEBGPU_VERSION: string = webgpuPackage.version;

export interface T2VBackendInit {
  /** Resolved options (resolveWebGPUOptions): uniformCache, bindGroupCache and poolBestFit are read here, once. */
  options: Readonly<WebGPUOptions>;
  /** The f16 subgroup-matrix configurations the device was made with (src/backends/dawn.ts). */
  subgroupMatrixConfigs?: readonly SubgroupMatrixConfig[];
  /** Whether the device's WGSL has the `buffer_view` language feature (src/backends/dawn.ts). */
  wgslBufferView?: boolean;
  /** Where the one line goes when the installed tfjs lacks a member the caches use (default console.error: stderr). */
  warn?: (line: string) => void;
}

/**
 * A batch of dispatches is also submitted once the tensors disposed while it is open hold this many bytes: tfjs frees
 * a disposed tensor's buffer only after the batch that used it is submitted, so 15 dispatches on zeroscope XL's
 * 0.5-1.7 GB activations held gigabytes of dead buffers. bench/pool-sim.ts, a guided step's peak in use without / with:
 * 1024x576 15.14 / 11.72 GiB, 576x320 8.52 / 7.64; 16x256x256 5.12 / 5.13 GiB and 82 / 83 submits (3 early ones).
 */
const PENDING_BYTES = 2 ** 30;

function pendingBytes(b: WebGPUBackendInternals): number {
  let n = 0;
  for (const id of b.tensorDataPendingDisposal) {
    const r = b.tensorMap.get(id)?.resource;
    if (r instanceof GPUBuffer) n += r.size;
  }
  return n;
}

const stockRecordAndSubmit = stockMethod(WebGPUBackend.prototype, 'recordAndSubmit');
const stockMakeUniforms = stockMethod(WebGPUBackend.prototype, 'makeUniforms');

/**
 * tfjs's WebGPU backend with t2v's dispatch caches (docs/gpu.md): one uniform buffer per distinct uniform content
 * (UniformCache), bind groups kept per (layout, buffers) (BindGroupCache), and a buffer pool (buffer-pool.ts) that
 * hands buffers out oldest first, serves a request with a free buffer of up to twice its size (best fit), keeps peak
 * figures (gpuMemory) and can give its free buffers back (releasePooledBuffers). They replace private members of
 * WebGPUBackend (src/tfjs-internals.ts), so each instance checks them first (checkTfjsInternals): where the installed
 * tfjs lacks one, one line on stderr names it and the instance runs tfjs's own code throughout (the caches stay off,
 * tfjs's own pool). It also carries the device's facts (compute units, subgroup-matrix configurations) for the
 * kernels.
 */
export class T2VWebGPUBackend extends WebGPUBackend {
  readonly options: Readonly<WebGPUOptions>;
  readonly facts: DeviceFacts;
  /** What the start-up check found (ok: the caches may run). */
  readonly internals: InternalsCheck;
  /** The caches' switches and counts; a switch turned on has no effect where the check failed. */
  readonly caches: { uniforms: CacheStats; bindGroups: BindGroupStats };
  /** The pool's switches (oldest first, best fit) and figures; null where the check failed (tfjs's own pool). */
  readonly pool: PoolStats | null;
  private readonly uniformCache: UniformCache;
  private readonly bindGroupCache: BindGroupCache;

  constructor(device: GPUDevice, adapterInfo: GPUAdapterInfo | undefined, init: T2VBackendInit) {
    super(device, adapterInfo);
    this.options = init.options;
    const subgroups = device.features?.has('subgroups') ? (adapterInfo as { subgroupMinSize?: number } | undefined)?.subgroupMinSize ?? 0 : 0;
    this.facts = deviceFacts(init.options, init.subgroupMatrixConfigs, init.wgslBufferView, subgroups);
    this.internals = checkTfjsInternals(this, WebGPUBackend.prototype, TFJS_WEBGPU_VERSION);
    const wanted = init.options.uniformCache || init.options.bindGroupCache || init.options.poolBestFit;
    if (!this.internals.ok && wanted) (init.warn ?? console.error)(internalsMessage(this.internals));
    const ok = this.internals.ok;
    this.uniformCache = new UniformCache(ok && init.options.uniformCache);
    this.bindGroupCache = new BindGroupCache(ok && init.options.bindGroupCache);
    this.caches = { uniforms: this.uniformCache.stats, bindGroups: this.bindGroupCache.stats };
    this.pool = ok ? poolStats(init.options.bindGroupCache, init.options.poolBestFit) : null;
    if (this.pool) {
      // no buffer is taken yet: the pool tfjs made is replaced, not drained
      const Pool = t2vPool(bufferManagerClass(this));
      internalsOf(this).bufferManager = new Pool(device, this.pool);
    }
  }

  /** Bytes in buffers now, at their peak, and pooled (free buffers kept for reuse). */
  gpuMemory(): GPUMemory {
    return poolMemory(internalsOf(this).bufferManager, this.pool);
  }

  /** Starts the peaks of gpuMemory afresh from what is in use and allocated now. */
  resetPeak(): void {
    if (!this.pool) return;
    const m = this.gpuMemory();
    this.pool.peakInUse = m.inUse;
    this.pool.peakAllocated = m.allocated;
  }

  /**
   * Destroys the pool's free buffers (what tfjs keeps for reuse) and the bind groups that bind them; returns the bytes
   * given back. Queued work is submitted first, so no buffer in an open command encoder goes. Tensors are untouched; the
   * next ops make buffers anew (and their bind groups), so call it between generations, not between UNet calls.
   * 0 where tfjs's own pool runs.
   */
  releasePooledBuffers(): number {
    if (!this.pool) return 0;
    const b = internalsOf(this);
    if (b.commandEncoder) {
      b.endComputePassEncoder();
      b.submitQueue();
    }
    const pool = b.bufferManager as T2VPool;
    const gone = pool.releaseFree();
    this.bindGroupCache.forget(gone);
    return gone.reduce((n, g) => n + g.size, 0);
  }

  override async read(dataId: object): Promise<BackendValues> {
    const v = await super.read(dataId);
    return this.pool ? fitToTensor(internalsOf(this).tensorMap.get(dataId), v) : v;
  }

  override readSync(dataId: object): BackendValues {
    const v = super.readSync(dataId);
    return this.pool ? fitToTensor(internalsOf(this).tensorMap.get(dataId), v) : v;
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
      // timed runs (tf.profile) submit each dispatch themselves
      if (self.internals.ok && this.activeTimers == null && this.commandEncoder && pendingBytes(this) >= PENDING_BYTES) {
        this.endComputePassEncoder();
        this.submitQueue();
      }
    });
    overridePrivate(this.prototype, 'makeUniforms', function (u) {
      const self = this as unknown as T2VWebGPUBackend;
      return self.internals.ok ? self.uniformCache.make(this, u, stockMakeUniforms) : stockMakeUniforms.call(this, u);
    });
  }
}
