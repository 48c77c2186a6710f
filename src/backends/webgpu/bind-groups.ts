import * as tf from '@tensorflow/tfjs';
import {
  freeListOf, type BufferPool, type RecordedProgram, type Uniform, type UniformBinding, type WebGPUBackendInternals,
} from '../../tfjs-internals.js';

/** Switch and counts of one backend's bind-group cache (the benchmark and tests flip `enabled` and `oldestFirst`). */
export interface BindGroupStats {
  enabled: boolean;
  /** Pooled buffers handed out oldest first (oldestFirstPool), so bind groups recur; the benchmark's switch. */
  oldestFirst: boolean;
  hits: number;
  misses: number;
}

const CACHE_MAX = 1 << 14; // kept bind groups (each a descriptor set): cleared when full

type Binding = { buffer: GPUBuffer; offset?: number; size?: number } | UniformBinding;

/**
 * tfjs makes a bind group for every dispatch (on Vulkan a descriptor set that Dawn allocates and writes) and fetches
 * the pipeline's layout anew each time; Dawn calls made there were the largest part of the JavaScript side of a
 * batch-1 UNet call in a CPU profile on the H200 (bench/RESULTS.md, run 19). The same pipelines often meet the same
 * pooled buffers again, so `record` records a dispatch as tfjs 4.22's recordAndSubmit does but keeps each pipeline's
 * layout and each distinct (layout, buffers, offsets, sizes) bind group: about 40% of a UNet call's dispatches find
 * theirs (run 20). Timed runs (tf.profile), pixel programs and textures keep tfjs's path.
 */
export class BindGroupCache {
  readonly stats: BindGroupStats;
  private readonly layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;
  private readonly groups = new Map<string, GPUBindGroup>();

  constructor(enabled: boolean) {
    this.stats = { enabled, oldestFirst: true, hits: 0, misses: 0 };
  }

  private id(o: object): number {
    let i = this.ids.get(o);
    if (i === undefined) {
      i = this.nextId++;
      this.ids.set(o, i);
    }
    return i;
  }

  /** Records the dispatch on `b`; false (nothing done) where tfjs's own recordAndSubmit must do it. */
  record(b: WebGPUBackendInternals, program: RecordedProgram, output: tf.TensorInfo, inputs: tf.TensorInfo[],
    programUniforms?: Uniform[]): boolean {
    const pipeline = program.pipeline;
    if (!this.stats.enabled || program.pixelsOpType != null || b.activeTimers != null || pipeline instanceof Promise) return false;
    const tensors = [output, ...inputs];
    const bindings: Binding[] = [];
    for (const t of tensors) {
      const r = b.tensorMap.get(t.dataId).resource;
      if (!(r instanceof GPUBuffer)) return false;
      bindings.push({ buffer: r });
    }
    // the uniforms exactly as tfjs lays them out: NaN, Infinity, each input's and the output's shape and strides, size
    const u: Uniform[] = [{ type: 'float32', data: [NaN] }, { type: 'float32', data: [Infinity] }];
    for (const t of [...inputs, output]) {
      u.push({ type: 'int32', data: t.shape }, { type: 'int32', data: tf.util.computeStrides(t.shape) });
    }
    if (program.size) {
      const size = tf.util.sizeFromShape(program.outputShape);
      u.push({ type: 'int32', data: [program.outputComponent ? size / program.outputComponent : size] });
    }
    if (programUniforms) u.push(...programUniforms);
    bindings.push(b.makeUniforms(u));
    for (const t of tensors) b.commandQueueOwnedIds.add(t.dataId);

    let layout = this.layouts.get(pipeline);
    if (layout === undefined) {
      layout = pipeline.getBindGroupLayout(0);
      this.layouts.set(pipeline, layout);
    }
    let key = `${this.id(layout)}`;
    for (const r of bindings) key += `,${this.id(r.buffer)}:${r.offset ?? 0}:${r.size ?? ''}`;
    let group = this.groups.get(key);
    if (group === undefined) {
      this.stats.misses++;
      group = b.device.createBindGroup({ layout, entries: bindings.map((resource, binding) => ({ binding, resource })) });
      if (this.groups.size >= CACHE_MAX) this.groups.clear();
      this.groups.set(key, group);
    } else {
      this.stats.hits++;
    }

    b.ensureCommandEncoderReady();
    const pass = b.computePassEncoder ??= b.commandEncoder!.beginComputePass({});
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(program.dispatch[0], program.dispatch[1], program.dispatch[2]);
    b.dispatchCountInPass++;
    if ((tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE') as number) <= b.dispatchCountInPass) {
      b.endComputePassEncoder();
      b.submitQueue();
    }
    return true;
  }
}

type PoolClass = new (device: GPUDevice) => BufferPool;
const oldestFirstClasses = new WeakMap<PoolClass, new (device: GPUDevice, stats: BindGroupStats) => BufferPool>();

/**
 * tfjs hands out the buffer freed last (LIFO); buffers are freed in another order than taken, so every UNet call
 * meets a permutation of the previous call's buffers and most of its bind groups are new (run 32: about 75% made
 * afresh). This subclass of tfjs's BufferManager (`Base`: the package does not export it, so it is taken from a
 * backend's instance) keeps each free list sorted by creation and hands out the oldest free buffer: which buffer a
 * dispatch gets then depends only on which buffers are free, the same from one identical call to the next, so their
 * bind groups recur. Sizes, counts and memory are as before. `stats.oldestFirst = false` restores tfjs's order.
 */
export function oldestFirstPool(Base: PoolClass): new (device: GPUDevice, stats: BindGroupStats) => BufferPool {
  let Pool = oldestFirstClasses.get(Base);
  if (Pool === undefined) {
    Pool = class OldestFirstPool extends (Base as new (device: GPUDevice) => BufferPool & object) {
      private readonly order = new WeakMap<GPUBuffer, number>();
      private next = 0;
      constructor(device: GPUDevice, private readonly stats: BindGroupStats) {
        super(device);
      }

      override acquireBuffer(size: number, usage: number, mappedAtCreation = false, reuse = true): GPUBuffer {
        const buffer = super.acquireBuffer(size, usage, mappedAtCreation, reuse);
        if (!this.order.has(buffer)) this.order.set(buffer, this.next++);
        return buffer;
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
    };
    oldestFirstClasses.set(Base, Pool);
  }
  return Pool;
}
