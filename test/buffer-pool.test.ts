import { test } from 'node:test';
import assert from 'node:assert/strict';
import { internalsOf, type TensorData } from '../src/tfjs-internals.js';
import { resolveWebGPUOptions, type WebGPUOptions } from '../src/backends/webgpu/options.js';
import { BindGroupCache } from '../src/backends/webgpu/bind-groups.js';
import { BEST_FIT_FROM, fitToTensor, type T2VPool } from '../src/backends/webgpu/buffer-pool.js';

// The buffer pool of our webgpu backend (src/backends/webgpu/buffer-pool.ts) over a stand-in device, no GPU: its
// figures, best fit and releasing the free buffers. test/webgpu-pool.test.ts runs the same on a real device.

// loaded before navigator.gpu exists, so the package registers no webgpu backend of its own here
const { T2VWebGPUBackend } = await import('../src/backends/webgpu/backend.js');
const g = globalThis as Record<string, unknown>;
g.navigator ??= {};
(g.navigator as Record<string, unknown>).gpu ??= {};
g.GPUBufferUsage ??= { COPY_DST: 8, UNIFORM: 64 };

const STORAGE = 0x80 | 0x4 | 0x8; // STORAGE | COPY_SRC | COPY_DST, as tfjs asks for a tensor's buffer
const MiB = 2 ** 20;

interface FakeBuffer { size: number; usage: number; destroyed: boolean; destroy(): void }

function backend(options: Partial<WebGPUOptions> = {}, limit = 2 ** 31) {
  const made: FakeBuffer[] = [];
  const device = {
    features: new Set<string>(),
    limits: { maxStorageBufferBindingSize: limit, maxBufferSize: limit },
    queue: { writeBuffer() {} },
    createBuffer: (d: { size: number; usage: number }) => {
      const b: FakeBuffer = { size: d.size, usage: d.usage, destroyed: false, destroy() { this.destroyed = true; } };
      made.push(b);
      return b;
    },
  };
  const b = new T2VWebGPUBackend(device as unknown as GPUDevice, undefined, { options: resolveWebGPUOptions(options, () => undefined) });
  return { b, pool: internalsOf(b).bufferManager as T2VPool, made };
}

test('pool figures: in use, its peak, pooled and allocated move as buffers are taken and freed', () => {
  const { b, pool } = backend();
  const base = b.gpuMemory();
  assert.deepEqual(base, { inUse: 0, peakInUse: 0, pooled: 0, allocated: 0, peakAllocated: 0 });
  const x = pool.acquireBuffer(3 * MiB, STORAGE);
  const y = pool.acquireBuffer(100, STORAGE);
  let m = b.gpuMemory();
  assert.deepEqual([m.inUse, m.pooled, m.allocated], [3 * MiB + 100, 0, 3 * MiB + 100]);
  pool.releaseBuffer(x);
  m = b.gpuMemory();
  assert.deepEqual([m.inUse, m.peakInUse, m.pooled, m.allocated], [100, 3 * MiB + 100, 3 * MiB, 3 * MiB + 100]);
  b.resetPeak();
  assert.equal(b.gpuMemory().peakInUse, 100, 'reset: the peak is what is in use now');
  pool.releaseBuffer(y);
  m = b.gpuMemory();
  assert.equal(m.allocated, m.inUse + m.pooled);
  assert.ok(m.peakInUse! >= m.inUse && m.peakAllocated! >= m.allocated);
  assert.equal(b.pool!.created, 2);
});

test('best fit on: a tensor of size s, then a smaller one s\' (within 2x), share one buffer; off: two', () => {
  const s1 = 3 * MiB + 4096;
  const s2 = 3 * MiB - 200_000;
  for (const on of [true, false]) {
    const { b, pool, made } = backend({ poolBestFit: on });
    const x = pool.acquireBuffer(s1, STORAGE, true);
    pool.releaseBuffer(x);
    const y = pool.acquireBuffer(s2, STORAGE);
    const m = b.gpuMemory();
    if (on) {
      assert.equal(y, x, 'the free larger buffer serves the second size');
      assert.equal(made.length, 1);
      assert.equal(m.allocated, s1);
      assert.equal(m.inUse, s1, 'in use counts the buffer, not the tensor');
    } else {
      assert.notEqual(y, x);
      assert.deepEqual(made.map((f) => f.size), [s1, s2], "tfjs's exact sizes");
      assert.equal(m.allocated, s1 + s2);
    }
    pool.releaseBuffer(y);
  }
  // below BEST_FIT_FROM, staging (not STORAGE) and buffers taken without reuse: exact sizes only
  const { pool, made } = backend();
  const STAGING = 0x1 | 0x8; // MAP_READ | COPY_DST
  pool.releaseBuffer(pool.acquireBuffer(1.5 * MiB, STORAGE));
  pool.releaseBuffer(pool.acquireBuffer(s1, STAGING));
  pool.releaseBuffer(pool.acquireBuffer(s1, STORAGE));
  pool.acquireBuffer(BEST_FIT_FROM - 4, STORAGE);
  pool.acquireBuffer(s2, STAGING);
  pool.acquireBuffer(s2, STORAGE, false, false);
  assert.deepEqual(made.map((f) => f.size), [1.5 * MiB, s1, s1, BEST_FIT_FROM - 4, s2, s2]);
});

test('best fit: with no free buffer of its size, a request takes the smallest free one of up to twice its size', () => {
  const { b, pool, made } = backend();
  const [x2, x3, x5] = [2, 3, 5].map((m) => pool.acquireBuffer(m * MiB, STORAGE));
  for (const x of [x5, x3, x2]) pool.releaseBuffer(x);
  assert.equal(pool.acquireBuffer(1.5 * MiB, STORAGE), x2, '2 MiB free, 1.5 MiB asked');
  assert.equal(pool.acquireBuffer(1.5 * MiB, STORAGE), x3, 'the next smallest within 2x');
  const y = pool.acquireBuffer(2 * MiB, STORAGE);
  assert.ok(![x2, x3, x5].includes(y), '5 MiB is more than twice 2 MiB: a new buffer');
  assert.equal(made.length, 4);
  assert.equal(b.gpuMemory().inUse, 7 * MiB, 'in use counts the buffers, larger than asked');
  // a staging (not STORAGE) request never takes a storage buffer
  assert.equal(pool.acquireBuffer(4 * MiB, 0x1 | 0x8).size, 4 * MiB);
});

test('releasing the pool destroys the free buffers only; later releases still land in the pool', () => {
  const { b, pool, made } = backend();
  const live = pool.acquireBuffer(2 * MiB, STORAGE);
  const free = [pool.acquireBuffer(5 * MiB, STORAGE), pool.acquireBuffer(64, STORAGE)];
  for (const f of free) pool.releaseBuffer(f);
  const before = b.gpuMemory();
  const bytes = b.releasePooledBuffers();
  assert.equal(bytes, before.pooled);
  assert.deepEqual(made.map((f) => f.destroyed), [false, true, true]);
  const m = b.gpuMemory();
  assert.deepEqual([m.inUse, m.pooled, m.allocated], [2 * MiB, 0, 2 * MiB]);
  assert.equal(b.pool!.destroyed, 2);
  // tfjs's releaseBuffer ignores everything once freeBuffers has no key: the keys stayed, so this one is pooled
  pool.releaseBuffer(live);
  assert.deepEqual([b.gpuMemory().inUse, b.gpuMemory().pooled], [0, 2 * MiB]);
  assert.equal(pool.acquireBuffer(2 * MiB, STORAGE), live, 'and reused');
  assert.equal(b.releasePooledBuffers(), 0, 'nothing free: nothing to give back');
});

test('the bind-group cache forgets exactly the groups that bind a destroyed buffer', () => {
  const cache = new BindGroupCache(true);
  const groups = (cache as unknown as { groups: Map<string, unknown> }).groups;
  const id = (o: object) => (cache as unknown as { id(o: object): number }).id(o);
  const [layout, a, bb, u] = [{}, {}, {}, {}];
  groups.set(`${id(layout)},${id(a)}:0:,${id(u)}:0:16`, 1);
  groups.set(`${id(layout)},${id(bb)}:0:,${id(u)}:0:16`, 2);
  assert.equal(cache.forget([a as GPUBuffer, {} as GPUBuffer]), 1);
  assert.deepEqual([...groups.values()], [2]);
  assert.equal(cache.forget([layout as GPUBuffer]), 0, 'a layout id is not a binding');
});

test('a read from a larger buffer is cut to the tensor, in the values tfjs caches too', () => {
  const long = new Float32Array([1, 2, 3, 4, 5, 6]);
  const data: TensorData = { shape: [2, 2], dtype: 'float32', values: long };
  const cut = fitToTensor(data, long);
  assert.deepEqual([...cut], [1, 2, 3, 4]);
  assert.equal(data.values, cut);
  const exact = new Int32Array(4);
  assert.equal(fitToTensor({ shape: [4], dtype: 'int32' }, exact), exact, 'the right length: the same array');
  assert.equal(fitToTensor({ shape: [1], dtype: 'complex64' }, long), long, 'complex: merged from its parts, left alone');
});

test('the option: T2V_POOL_BEST_FIT=0|1, on by default, a bad value one line naming it', () => {
  assert.equal(resolveWebGPUOptions({}, () => undefined).poolBestFit, true);
  assert.equal(resolveWebGPUOptions({}, (n) => (n === 'T2V_POOL_BEST_FIT' ? '0' : undefined)).poolBestFit, false);
  assert.throws(() => resolveWebGPUOptions({}, (n) => (n === 'T2V_POOL_BEST_FIT' ? 'maybe' : undefined)),
    /^WebGPUOptionsError: T2V_POOL_BEST_FIT=maybe: use 0 or 1$/);
  assert.throws(() => resolveWebGPUOptions({ poolBestFit: 1 as unknown as boolean }, () => undefined), /poolBestFit must be true or false/);
  const { b } = backend({ poolBestFit: false, bindGroupCache: false });
  assert.deepEqual([b.pool!.bestFit, b.pool!.oldestFirst], [false, false], 'oldest first follows the bind-group cache');
});
