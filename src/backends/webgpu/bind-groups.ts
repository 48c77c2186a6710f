import * as tf from '@tensorflow/tfjs';
import { envVar } from '../../env.js';

/** Switch (T2V_BIND_GROUP_CACHE=0 starts it off) and counts of the bind-group cache below. */
export const bindGroupCache = {
  enabled: !['0', 'off', 'false'].includes((envVar('T2V_BIND_GROUP_CACHE') ?? '').toLowerCase()),
  /** Pooled buffers handed out oldest first (reuseLowestBuffers), so bind groups recur; the benchmark's switch. */
  oldestFirst: true,
  hits: 0,
  misses: 0,
};
const CACHE_MAX = 1 << 14; // kept bind groups (each a descriptor set): cleared when full

interface Binding { buffer: GPUBuffer; offset?: number; size?: number }
interface Program {
  pipeline: GPUComputePipeline | Promise<GPUComputePipeline>;
  pixelsOpType?: unknown;
  size?: boolean;
  outputShape: number[];
  outputComponent?: number;
  dispatch: [number, number, number];
}
type Uniform = { type: string; data: number[] };
/** The parts of tfjs-backend-webgpu 4.22's WebGPUBackend that its recordAndSubmit uses. */
interface Recorder {
  recordAndSubmit(program: Program, output: tf.TensorInfo, inputs: tf.TensorInfo[], uniforms?: Uniform[]): void;
  makeUniforms(u: Uniform[]): Binding;
  tensorMap: { get(id: unknown): { resource: unknown } };
  commandQueueOwnedIds: Set<unknown>;
  activeTimers: unknown[] | null;
  device: GPUDevice;
  commandEncoder: GPUCommandEncoder;
  computePassEncoder: GPUComputePassEncoder | null;
  dispatchCountInPass: number;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

/**
 * tfjs makes a bind group for every dispatch (on Vulkan a descriptor set that Dawn allocates and writes) and fetches
 * the pipeline's layout anew each time; Dawn calls made there were the largest part of the JavaScript side of a
 * batch-1 UNet call in a CPU profile on the H200 (bench/RESULTS.md, run 19). The same pipelines often meet the same
 * pooled buffers again, so this records dispatches as tfjs 4.22 does but keeps each pipeline's layout and each
 * distinct (layout, buffers, offsets, sizes) bind group: about 40% of a UNet call's dispatches find theirs (run 20).
 * Timed runs (tf.profile), pixel programs and textures keep tfjs's path.
 */
export function cacheBindGroups<B extends object>(backend: B): B {
  const b = backend as unknown as Recorder;
  reuseLowestBuffers((backend as unknown as { bufferManager: BufferPool }).bufferManager);
  const original = b.recordAndSubmit.bind(b);
  const layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();
  const ids = new WeakMap<object, number>();
  let nextId = 1;
  const id = (o: object) => {
    let i = ids.get(o);
    if (i === undefined) {
      i = nextId++;
      ids.set(o, i);
    }
    return i;
  };
  const groups = new Map<string, GPUBindGroup>();
  const buffer = (t: tf.TensorInfo): Binding | null => {
    const r = b.tensorMap.get(t.dataId).resource;
    return r instanceof GPUBuffer ? { buffer: r } : null;
  };

  b.recordAndSubmit = (program, output, inputs, programUniforms) => {
    const pipeline = program.pipeline;
    if (!bindGroupCache.enabled || program.pixelsOpType != null || b.activeTimers != null || pipeline instanceof Promise) {
      return original(program, output, inputs, programUniforms);
    }
    const tensors = [output, ...inputs];
    const bindings: Binding[] = [];
    for (const t of tensors) {
      const r = buffer(t);
      if (r === null) return original(program, output, inputs, programUniforms);
      bindings.push(r);
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

    let layout = layouts.get(pipeline);
    if (layout === undefined) {
      layout = pipeline.getBindGroupLayout(0);
      layouts.set(pipeline, layout);
    }
    let key = `${id(layout)}`;
    for (const r of bindings) key += `,${id(r.buffer)}:${r.offset ?? 0}:${r.size ?? ''}`;
    let group = groups.get(key);
    if (group === undefined) {
      bindGroupCache.misses++;
      group = b.device.createBindGroup({ layout, entries: bindings.map((resource, binding) => ({ binding, resource })) });
      if (groups.size >= CACHE_MAX) groups.clear();
      groups.set(key, group);
    } else {
      bindGroupCache.hits++;
    }

    b.ensureCommandEncoderReady();
    b.computePassEncoder ??= b.commandEncoder.beginComputePass({});
    b.computePassEncoder.setPipeline(pipeline);
    b.computePassEncoder.setBindGroup(0, group);
    b.computePassEncoder.dispatchWorkgroups(program.dispatch[0], program.dispatch[1], program.dispatch[2]);
    b.dispatchCountInPass++;
    if ((tf.env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE') as number) <= b.dispatchCountInPass) {
      b.endComputePassEncoder();
      b.submitQueue();
    }
  };
  return backend;
}

/** The parts of tfjs-backend-webgpu 4.22's BufferManager that pick a pooled buffer. */
interface BufferPool {
  acquireBuffer(size: number, usage: number, mappedAtCreation?: boolean, reuse?: boolean): GPUBuffer;
  releaseBuffer(buffer: GPUBuffer, reuse?: boolean): void;
  freeBuffers: Map<string, GPUBuffer[]>;
}

/**
 * tfjs hands out the buffer freed last (LIFO); buffers are freed in another order than taken, so every UNet call
 * meets a permutation of the previous call's buffers and most of its bind groups are new (run 32: about 75% made
 * afresh). Here each free list stays sorted by creation and the oldest free buffer is taken: which buffer a dispatch
 * gets then depends only on which buffers are free, the same from one identical call to the next, so their bind
 * groups recur. Sizes, counts and memory are as before.
 */
export function reuseLowestBuffers(pool: BufferPool): void {
  if (!bindGroupCache.enabled || typeof pool?.acquireBuffer !== 'function') return;
  const order = new WeakMap<GPUBuffer, number>();
  let next = 0;
  const acquire = pool.acquireBuffer.bind(pool);
  const release = pool.releaseBuffer.bind(pool);
  pool.acquireBuffer = (size, usage, mappedAtCreation = false, reuse = true) => {
    const buffer = acquire(size, usage, mappedAtCreation, reuse);
    if (!order.has(buffer)) order.set(buffer, next++);
    return buffer;
  };
  pool.releaseBuffer = (buffer, reuse = true) => {
    release(buffer, reuse);
    // tfjs pushed it onto its free list (key as tfjs's getBufferKey) and pops from the end: keep the list in
    // descending creation order, so the end is the oldest
    const list = reuse && bindGroupCache.oldestFirst ? pool.freeBuffers.get(`${buffer.size}_${buffer.usage}`) : undefined;
    if (!list || list[list.length - 1] !== buffer) return;
    let rank = order.get(buffer);
    if (rank === undefined) order.set(buffer, rank = next++);
    let i = list.length - 1;
    while (i > 0 && (order.get(list[i - 1]) ?? 0) < rank) {
      list[i] = list[i - 1];
      i--;
    }
    list[i] = buffer;
  };
}
