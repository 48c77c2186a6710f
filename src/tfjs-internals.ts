import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';

/**
 * Every use of a private or undocumented TensorFlow.js member, in one place, with the start-up check that says when the
 * installed tfjs lacks one (docs/gpu.md, "tfjs internals"). The package.json pins @tensorflow/* to the version these
 * were read from; a different version is checked, not trusted.
 *
 * Used through their public API, so not here: WebGPUBackend.runWebGPUProgram, disposeData, uploadToGPU, device and
 * bufferManager (the field itself), engine().makeTensorFromTensorInfo and runKernel, tf.getKernel/registerKernel with
 * their kernelFunc, and WebGPUProgram's fields (an exported type). Not members but conventions of tfjs's shader
 * generator that our kernels lean on (src/backends/webgpu/program.ts: `main()` without a flat index when dispatchLayout
 * has y, the `uniforms` struct, `var<storage, read> NAME : array<f32>` bindings retyped by dawn.ts's hoistDirectives):
 * the WebGPU kernel tests exercise them. This module imports no tfjs-backend-webgpu code at run time: that package
 * must load only after Dawn is `navigator.gpu` (src/backends/dawn.ts).
 */
export const TFJS_WRITTEN_AGAINST = '4.22.0';

// ---- tfjs-core: the engine's scope state ----------------------------------------------------------------------

export interface EngineState { activeScope?: unknown }
const engineState = (): EngineState => tf.engine().state as unknown as EngineState;

let scopeKnown: boolean | null = null;

/**
 * Whether a tf.tidy scope is open: `engine().state.activeScope` (a field of tfjs-core's unexported EngineState; no public
 * API says it). Checked on first use (checkEngineScope); where tfjs no longer has it, the line says so and this answers
 * true, so a streamed weight is not refused outside a scope (it may leak there instead).
 */
export function inTidy(): boolean {
  scopeKnown ??= checkEngineScope();
  return scopeKnown ? engineState().activeScope != null : true;
}

/**
 * engine().state.activeScope is a new scope inside tf.tidy and the previous one (null outside any) again after it;
 * else one line on stderr, and false. May run inside a tidy.
 */
export function checkEngineScope(warn: (line: string) => void = console.error, state: () => EngineState = engineState): boolean {
  const before = state().activeScope;
  let inside: unknown;
  tf.tidy(() => {
    inside = state().activeScope;
  });
  // undefined until the first tidy, null after one
  const ok = 'activeScope' in state() && inside != null && inside !== before && (state().activeScope ?? null) === (before ?? null);
  if (!ok) {
    warn(`t2v: @tensorflow/tfjs-core ${tf.version_core} lacks engine().state.activeScope (t2v is written against `
      + `${TFJS_WRITTEN_AGAINST}): streamed and float16 weights are not checked for a tf.tidy scope`);
  }
  return ok;
}

// ---- tfjs-backend-webgpu: WebGPUBackend and its BufferManager --------------------------------------------------

export type Uniform = { type: string; data: number[] };
export interface UniformBinding { buffer: GPUBuffer; offset: number; size: number }

/** What recordAndSubmit receives (a compiled WebGPUProgram; tfjs sets `pipeline` before recording). */
export interface RecordedProgram {
  pipeline: GPUComputePipeline | Promise<GPUComputePipeline>;
  pixelsOpType?: unknown;
  size?: boolean;
  outputShape: number[];
  outputComponent?: number;
  dispatch: [number, number, number];
}

export type RecordAndSubmit = (program: RecordedProgram, output: tf.TensorInfo, inputs: tf.TensorInfo[], uniforms?: Uniform[]) => void;
export type MakeUniforms = (u: Uniform[]) => UniformBinding;

/**
 * The parts of tfjs-backend-webgpu 4.22's BufferManager (not exported by the package) that pick a pooled buffer and
 * count its bytes. releaseBuffer keys a buffer by its own `buffer.size`, as acquireBuffer keys it by the size asked,
 * and returns at once while `freeBuffers` holds no key at all (so a pool that drops its free buffers keeps the keys).
 */
export interface BufferPool {
  acquireBuffer(size: number, usage: number, mappedAtCreation?: boolean, reuse?: boolean): GPUBuffer;
  releaseBuffer(buffer: GPUBuffer, reuse?: boolean): void;
  /** private: free buffers per `${size}_${usage}` (tfjs's getBufferKey), taken from the end */
  freeBuffers: Map<string, GPUBuffer[]>;
  /** private: how many buffers the free lists hold */
  numFreeBuffers: number;
  /** bytes of the buffers handed out and not released (tfjs's memory().numBytesInGPU) */
  numBytesUsed: number;
  /** bytes of every buffer made and not destroyed, handed out or free (memory().numBytesAllocatedInGPU) */
  numBytesAllocated: number;
}

/** An entry of WebGPUBackend's tensorMap (its TensorData), as far as the pool's read-backs touch it. */
export interface TensorData {
  resource?: unknown;
  /** values cached on the CPU (read, readSync and uploads put them here) */
  values?: unknown;
  shape: number[];
  dtype: string;
}

/**
 * WebGPUBackend's members the dispatch caches use (src/backends/webgpu/backend.ts, bind-groups.ts). Private in 4.22's
 * typings: recordAndSubmit, makeUniforms, uniformPendingDisposal, tensorDataPendingDisposal, commandQueueOwnedIds,
 * activeTimers, commandEncoder, computePassEncoder, dispatchCountInPass. Public there but undocumented: tensorMap (its entries' `resource`, and
 * `values`, `shape`, `dtype` for the read-backs of src/backends/webgpu/buffer-pool.ts), ensureCommandEncoderReady,
 * endComputePassEncoder, submitQueue.
 */
export interface WebGPUBackendInternals {
  recordAndSubmit: RecordAndSubmit;
  makeUniforms: MakeUniforms;
  uniformPendingDisposal: GPUBuffer[];
  /** disposed tensors whose buffers wait for the batch that uses them to be submitted (disposeData, submitQueue) */
  tensorDataPendingDisposal: object[];
  commandQueueOwnedIds: { add(id: object): void };
  activeTimers: unknown[] | null | undefined;
  commandEncoder: GPUCommandEncoder | null;
  computePassEncoder: GPUComputePassEncoder | null;
  dispatchCountInPass: number;
  tensorMap: { get(dataId: object): TensorData | undefined };
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  device: GPUDevice;
  bufferManager: BufferPool;
}

/** The backend seen with its private members (only after checkTfjsInternals passed on it). */
export const internalsOf = (backend: WebGPUBackend | object): WebGPUBackendInternals => backend as unknown as WebGPUBackendInternals;

/** The private methods a subclass may replace (TypeScript refuses to redeclare a private member, so they are assigned). */
export type PrivateMethods = Pick<WebGPUBackendInternals, 'recordAndSubmit' | 'makeUniforms'>;

/** Puts `fn` over WebGPUBackend's private method `name` on a subclass prototype (never on an instance). */
export function overridePrivate<K extends keyof PrivateMethods>(proto: object, name: K,
  fn: (this: WebGPUBackendInternals, ...args: Parameters<PrivateMethods[K]>) => ReturnType<PrivateMethods[K]>): void {
  Object.defineProperty(proto, name, { value: fn, writable: true, configurable: true });
}

/** WebGPUBackend's own private method `name`, called on `backend` (what a subclass's override falls back to). */
export function stockMethod<K extends keyof PrivateMethods>(base: object, name: K): PrivateMethods[K] {
  return (base as Record<K, PrivateMethods[K]>)[name];
}

/** The free list tfjs puts `buffer` on when it is released (BufferManager's private freeBuffers, getBufferKey's key). */
export function freeListOf(pool: BufferPool, buffer: GPUBuffer): GPUBuffer[] | undefined {
  return pool.freeBuffers.get(`${buffer.size}_${buffer.usage}`);
}

/** BufferManager's class, which the package does not export: taken from the instance the backend made. */
export function bufferManagerClass(backend: object): new (device: GPUDevice) => BufferPool {
  return Object.getPrototypeOf(internalsOf(backend).bufferManager).constructor as new (device: GPUDevice) => BufferPool;
}

// ---- the start-up check -----------------------------------------------------------------------------------------

export interface InternalsCheck {
  ok: boolean;
  /** The installed @tensorflow/tfjs-backend-webgpu version. */
  version: string;
  /** `Class.member` for each expectation that failed (empty when ok). */
  missing: string[];
}

type Expectation = { name: string; test: (backend: Record<string, unknown>, base: Record<string, unknown>) => boolean };

const isFn = (v: unknown): v is (...a: unknown[]) => unknown => typeof v === 'function';
/** A stock method that exists and whose source names `uses` (the members our re-implementation touches in its place). */
const method = (name: string, ...uses: string[]): Expectation => ({
  name: `WebGPUBackend.${name}`,
  test: (_b, base) => isFn(base[name]) && uses.every((u) => String(base[name]).includes(u)),
});
const field = (name: string, test: (v: unknown) => boolean): Expectation => ({
  name: `WebGPUBackend.${name}`,
  test: (b) => name in b && test(b[name]),
});

/**
 * What tfjs-backend-webgpu 4.22.0 has and our caches rely on: the stock methods (on WebGPUBackend.prototype) exist and
 * still use the members we use in their place, and a freshly made backend has the fields with the expected types.
 * BufferManager is exercised on a throw-away instance over a stand-in device: a released buffer must land at the end of
 * `freeBuffers.get(`${size}_${usage}`)` and be the one acquired next.
 */
const EXPECTED: Expectation[] = [
  method('runWebGPUProgram', 'recordAndSubmit'),
  method('recordAndSubmit', 'makeUniforms', 'commandQueueOwnedIds', 'activeTimers', 'computePassEncoder', 'dispatchCountInPass',
    'ensureCommandEncoderReady', 'endComputePassEncoder', 'submitQueue', 'tensorToBinding'),
  method('makeUniforms', 'uniformPendingDisposal', 'acquireBuffer'),
  method('submitQueue', 'uniformPendingDisposal', 'commandEncoder', 'dispatchCountInPass', 'tensorDataPendingDisposal'),
  method('disposeData', 'commandQueueOwnedIds', 'tensorDataPendingDisposal'),
  method('ensureCommandEncoderReady', 'commandEncoder'),
  method('endComputePassEncoder', 'computePassEncoder'),
  method('time', 'activeTimers'),
  method('tensorToBinding', 'resource'),
  // the read-backs that trim a tensor read from a buffer larger than it (buffer-pool.ts, fitToTensor)
  method('read', 'getBufferData', 'convertAndCacheOnCPU'),
  method('readSync', 'convertAndCacheOnCPU'),
  method('convertAndCacheOnCPU', 'values'),
  field('uniformPendingDisposal', Array.isArray),
  field('tensorDataPendingDisposal', Array.isArray),
  field('commandQueueOwnedIds', (v) => isFn((v as { add?: unknown } | null)?.add)),
  field('commandEncoder', (v) => v === null || typeof v === 'object'),
  field('computePassEncoder', (v) => v === null || typeof v === 'object'),
  field('dispatchCountInPass', (v) => typeof v === 'number'),
  field('tensorMap', (v) => isFn((v as { get?: unknown } | null)?.get)),
  { name: 'BufferManager.freeBuffers', test: (b) => bufferPoolBehaves(b.bufferManager) },
];

/**
 * A throw-away BufferManager of the same class over a stand-in device: LIFO free lists keyed `${size}_${usage}`, and
 * the byte and free-buffer counts as 4.22 keeps them.
 */
function bufferPoolBehaves(pool: unknown): boolean {
  const p = pool as Partial<BufferPool> | null;
  if (!p || !isFn(p.acquireBuffer) || !isFn(p.releaseBuffer) || !(p.freeBuffers instanceof Map)) return false;
  try {
    // the class tfjs made (a pool of ours extends it: probe the base)
    let Pool = Object.getPrototypeOf(p).constructor as new (device: unknown) => BufferPool;
    while (Object.getPrototypeOf(Pool.prototype) !== Object.prototype) Pool = Object.getPrototypeOf(Pool) as typeof Pool;
    const device = { createBuffer: (d: { size: number; usage: number }) => ({ size: d.size, usage: d.usage, destroy() {} }) };
    const probe = new Pool(device);
    const [a, b] = [probe.acquireBuffer(16, 72), probe.acquireBuffer(16, 72)];
    const counted = probe.numBytesUsed === 32 && probe.numBytesAllocated === 32 && probe.numFreeBuffers === 0;
    probe.releaseBuffer(a);
    probe.releaseBuffer(b);
    const list = probe.freeBuffers.get('16_72');
    const freed = probe.numBytesUsed === 0 && probe.numBytesAllocated === 32 && probe.numFreeBuffers === 2;
    return counted && freed && list !== undefined && list.length === 2 && list[1] === b && probe.acquireBuffer(16, 72) === b;
  } catch {
    return false;
  }
}

/**
 * Checks `backend` (a WebGPUBackend just made, or a subclass instance) against what the caches expect; `base` is
 * WebGPUBackend.prototype (the stock methods, whatever a subclass puts over them). Cheap: run once per backend made.
 */
export function checkTfjsInternals(backend: object, base: object, version: string): InternalsCheck {
  const b = backend as Record<string, unknown>;
  const p = base as Record<string, unknown>;
  const missing = EXPECTED.filter((e) => {
    try {
      return !e.test(b, p);
    } catch {
      return true;
    }
  }).map((e) => e.name);
  return { ok: missing.length === 0, version, missing };
}

/** The one stderr line for a failed check: what is missing, the installed and the pinned version, what is off. */
export function internalsMessage(c: InternalsCheck): string {
  return `t2v: @tensorflow/tfjs-backend-webgpu ${c.version} lacks ${c.missing.join(', ')} (t2v is written against `
    + `${TFJS_WRITTEN_AGAINST}): the dispatch caches and the buffer pool are off (stock tfjs)`;
}
