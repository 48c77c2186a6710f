import * as tf from '@tensorflow/tfjs';
import type { RecordedProgram, Uniform, UniformBinding, WebGPUBackendInternals } from '../../tfjs-internals.js';

/**
 * Switch and counts of one backend's bind-group cache (the benchmark and tests flip `enabled`). They recur because the
 * pool hands buffers out oldest first (buffer-pool.ts, PoolStats.oldestFirst).
 */
export interface BindGroupStats {
  enabled: boolean;
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
    this.stats = { enabled, hits: 0, misses: 0 };
  }

  private id(o: object): number {
    let i = this.ids.get(o);
    if (i === undefined) {
      i = this.nextId++;
      this.ids.set(o, i);
    }
    return i;
  }

  /** Drops the bind groups that bind any of `buffers` (destroyed ones: a group would keep them alive and bind them). */
  forget(buffers: readonly GPUBuffer[]): number {
    const gone = new Set<string>();
    for (const b of buffers) {
      const i = this.ids.get(b);
      if (i !== undefined) gone.add(String(i));
    }
    if (gone.size === 0) return 0;
    let n = 0;
    for (const key of [...this.groups.keys()]) {
      // key: layout id, then `buffer id:offset:size` per binding
      if (key.split(',').slice(1).some((e) => gone.has(e.slice(0, e.indexOf(':'))))) {
        this.groups.delete(key);
        n++;
      }
    }
    return n;
  }

  /** Records the dispatch on `b`; false (nothing done) where tfjs's own recordAndSubmit must do it. */
  record(b: WebGPUBackendInternals, program: RecordedProgram, output: tf.TensorInfo, inputs: tf.TensorInfo[],
    programUniforms?: Uniform[]): boolean {
    const pipeline = program.pipeline;
    if (!this.stats.enabled || program.pixelsOpType != null || b.activeTimers != null || pipeline instanceof Promise) return false;
    const tensors = [output, ...inputs];
    const bindings: Binding[] = [];
    for (const t of tensors) {
      const r = b.tensorMap.get(t.dataId)?.resource;
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
