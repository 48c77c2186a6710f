import * as tf from '@tensorflow/tfjs';
import { freeListOf, type BufferPool, type TensorData } from '../../tfjs-internals.js';

/**
 * The pool's switches and figures, one per backend (T2VWebGPUBackend.pool). The benchmark and tests flip the switches;
 * the figures are bytes.
 */
export interface PoolStats {
  /** Free buffers handed out oldest first (so bind groups recur: bind-groups.ts); false: tfjs's last-freed first. */
  oldestFirst: boolean;
  /**
   * A storage request of BEST_FIT_FROM bytes or more with no free buffer of its exact size takes the smallest free one
   * of up to BEST_FIT_RATIO times its size (tfjs: exact sizes only).
   */
  bestFit: boolean;
  /** The most bytes in buffers handed out at once since the pool was made or resetPeak. */
  peakInUse: number;
  /** The most bytes allocated (handed out + free) at once since the pool was made or resetPeak. */
  peakAllocated: number;
  /** Buffers made (device.createBuffer) and free buffers destroyed by releaseFree. */
  created: number;
  destroyed: number;
}

/** Bytes of one backend's buffers now and at their peak (T2VWebGPUBackend.gpuMemory). */
export interface GPUMemory {
  /** in buffers handed out (tensors, uniforms, staging): tfjs's memory().numBytesInGPU */
  inUse: number;
  /** the most of inUse since the backend was made or the peak was reset; null where tfjs's own pool runs */
  peakInUse: number | null;
  /** free buffers the pool keeps for reuse */
  pooled: number;
  /** inUse + pooled: every buffer made and not destroyed (memory().numBytesAllocatedInGPU) */
  allocated: number;
  /** the most of allocated since the backend was made or the peak was reset; null where tfjs's own pool runs */
  peakAllocated: number | null;
}

/** Best fit serves requests from this size on (below, every size is its own, as in tfjs). */
export const BEST_FIT_FROM = 1 << 20;
/** The largest free buffer best fit hands out, in multiples of the size asked. */
export const BEST_FIT_RATIO = 2;

const STORAGE = 0x80; // GPUBufferUsage.STORAGE (the WebGPU spec's value; the global may be absent under test)

/*
 * Best fit puts a tensor into a buffer up to twice its size. Why that is safe in tfjs-backend-webgpu 4.22.0 (read in dist/backend_webgpu.js and
 * buffer_manager.js), where it reaches a tensor's buffer:
 * - bind groups: tensorToBinding binds the whole buffer ({ buffer }, no size), as bind-groups.ts does; tfjs's shaders
 *   index by the shapes and sizes in their uniforms and never call arrayLength (none in the package's WGSL, none in
 *   ours), so the bytes past the tensor are never read. Whole-buffer bindings stay within
 *   maxStorageBufferBindingSize: only buffers that exist (bound before) are handed out.
 * - uploads (uploadToGPU): a reused buffer is filled through a staging buffer of the tensor's exact size
 *   (copyBufferToBuffer with that size; reuse = false, so never rounded); a new one mapped at creation gets the values
 *   written at offset 0 of its mapped range (new buffers are made at the exact size). Both leave the tail as it was.
 * - read-backs: getBufferData copies and maps `buffer.size` bytes, and read/readSync turn them into as many values, so a
 *   tensor read from a larger buffer would come back with stale values after its own: fitToTensor (the backend's
 *   read/readSync) cuts them to the tensor's size, also in tfjs's CPU cache of the values.
 * - copyBuffer / readToGPU (createTensorFromGPUData, tensor.dataToGPU) copy the whole source buffer into one of the same
 *   size: correct values, the tail copied along; dataToGPU's buffer is the whole buffer, its first bytes the tensor.
 * - releaseBuffer keys by buffer.size, the size acquireBuffer is called with here (the free buffer's), so free lists
 *   agree.
 * - textures (TextureManager), staging and uniform buffers (not STORAGE) are never served larger.
 */

/** `values` of a tensor read from a buffer larger than the tensor, cut to the tensor's size (and re-cached so). */
export function fitToTensor<T>(data: TensorData | undefined, values: T): T {
  if (!data || data.dtype === 'string' || data.dtype === 'complex64' || !ArrayBuffer.isView(values)) return values;
  const n = tf.util.sizeFromShape(data.shape);
  const v = values as unknown as { length: number; slice(a: number, b: number): T };
  if (v.length <= n) return values;
  const cut = v.slice(0, n);
  if (data.values === values) data.values = cut;
  return cut;
}

type PoolClass = new (device: GPUDevice) => BufferPool;
export type T2VPool = BufferPool & { releaseFree(): GPUBuffer[] };
export type T2VPoolClass = new (device: GPUDevice, stats: PoolStats) => T2VPool;
const poolClasses = new WeakMap<PoolClass, T2VPoolClass>();

/** Fresh switches and figures: oldest first and best fit as given. */
export function poolStats(oldestFirst: boolean, bestFit: boolean): PoolStats {
  return { oldestFirst, bestFit, peakInUse: 0, peakAllocated: 0, created: 0, destroyed: 0 };
}

/**
 * tfjs's BufferManager (`Base`: the package does not export it, so it is taken from a backend's instance) with three
 * changes, each behind a switch of `stats`:
 * - oldest first: tfjs hands out the buffer freed last (LIFO); buffers are freed in another order than taken, so
 *   every UNet call met a permutation of the previous call's buffers and most of its bind groups were new (run 32:
 *   about 75% made afresh). Each free list is kept sorted by creation and the oldest free buffer handed out: which
 *   buffer a dispatch gets then depends only on which buffers are free, the same from one identical call to the next.
 * - best fit: tfjs keys free buffers by their exact size and never destroys one, so its pool grows to the high-water
 *   mark of every distinct size ever used. A storage request from BEST_FIT_FROM on with no free buffer of its size
 *   takes the smallest free one of up to BEST_FIT_RATIO times its size (the tensor keeps its own shape and size).
 *   Rounding new buffers up to size classes (8 per power of two) as well was measured and left out: it gained
 *   nothing (the UNet's sizes differ by powers of two, not by percents) and cost up to 1/8 of every buffer
 *   (docs/gpu.md, "GPU memory").
 * - figures: the peaks of bytes in use and allocated (stats), and releaseFree, which destroys the free buffers.
 */
export function t2vPool(Base: PoolClass): T2VPoolClass {
  let Pool = poolClasses.get(Base);
  if (Pool === undefined) {
    Pool = class T2VBufferPool extends (Base as new (device: GPUDevice) => BufferPool & object) {
      private readonly order = new WeakMap<GPUBuffer, number>();
      private readonly sizes = new Map<number, number[]>();
      private next = 0;
      constructor(device: GPUDevice, private readonly stats: PoolStats) {
        super(device);
      }

      override acquireBuffer(size: number, usage: number, mappedAtCreation = false, reuse = true): GPUBuffer {
        const fitted = reuse && this.stats.bestFit && (usage & STORAGE) !== 0 && size >= BEST_FIT_FROM;
        const s = fitted ? this.fit(size, usage) : size;
        const made = this.numBytesAllocated;
        const buffer = super.acquireBuffer(s, usage, mappedAtCreation, reuse);
        if (this.numBytesAllocated !== made) {
          this.stats.created++;
          if (fitted) this.noteSize(s, usage);
        }
        if (!this.order.has(buffer)) this.order.set(buffer, this.next++);
        if (this.numBytesUsed > this.stats.peakInUse) this.stats.peakInUse = this.numBytesUsed;
        if (this.numBytesAllocated > this.stats.peakAllocated) this.stats.peakAllocated = this.numBytesAllocated;
        return buffer;
      }

      /**
       * `s` where its free list has a buffer; else the smallest size up to BEST_FIT_RATIO * s whose free list has one;
       * else `s` (made anew, exactly). A 16x256x256 video's pool peaked at 14.2 GiB without, 11.8 with it
       * (bench/pool-sim.ts).
       */
      private fit(s: number, usage: number): number {
        if (this.freeBuffers.get(`${s}_${usage}`)?.length) return s;
        const sizes = this.sizes.get(usage);
        if (!sizes) return s;
        let lo = 0;
        let hi = sizes.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (sizes[mid] <= s) lo = mid + 1; else hi = mid;
        }
        for (let i = lo; i < sizes.length && sizes[i] <= BEST_FIT_RATIO * s; i++) {
          if (this.freeBuffers.get(`${sizes[i]}_${usage}`)?.length) return sizes[i];
        }
        return s;
      }

      /** Every size made for `usage` under best fit, sorted (fit searches them). */
      private noteSize(s: number, usage: number): void {
        let sizes = this.sizes.get(usage);
        if (!sizes) this.sizes.set(usage, sizes = []);
        let i = sizes.length;
        while (i > 0 && sizes[i - 1] > s) i--;
        if (sizes[i - 1] !== s) sizes.splice(i, 0, s);
      }

      override releaseBuffer(buffer: GPUBuffer, reuse = true): void {
        super.releaseBuffer(buffer, reuse);
        // tfjs pushed it onto its free list and pops from the end: keep the list in descending creation order, so the
        // end is the oldest
        const list = reuse && this.stats.oldestFirst ? freeListOf(this, buffer) : undefined;
        if (!list || list[list.length - 1] !== buffer) return;
        let rank = this.order.get(buffer);
        if (rank === undefined) this.order.set(buffer, rank = this.next++);
        let i = list.length - 1;
        while (i > 0 && (this.order.get(list[i - 1]) ?? 0) < rank) {
          list[i] = list[i - 1];
          i--;
        }
        list[i] = buffer;
      }

      /**
       * Destroys every free buffer and returns them (their bind groups must go too). The keys stay, emptied: tfjs's
       * releaseBuffer ignores every buffer while freeBuffers has no key at all.
       */
      releaseFree(): GPUBuffer[] {
        const gone: GPUBuffer[] = [];
        for (const list of this.freeBuffers.values()) {
          for (const b of list) {
            this.numBytesAllocated -= b.size;
            b.destroy();
            gone.push(b);
          }
          list.length = 0;
        }
        this.numFreeBuffers = 0;
        this.stats.destroyed += gone.length;
        return gone;
      }
    };
    poolClasses.set(Base, Pool);
  }
  return Pool;
}

/** The figures of `pool` (null peaks: tfjs's own pool, which keeps none). */
export function poolMemory(pool: BufferPool, stats: PoolStats | null): GPUMemory {
  const inUse = pool.numBytesUsed;
  const allocated = pool.numBytesAllocated;
  return { inUse, peakInUse: stats ? Math.max(stats.peakInUse, inUse) : null, pooled: allocated - inUse, allocated,
    peakAllocated: stats ? Math.max(stats.peakAllocated, allocated) : null };
}
