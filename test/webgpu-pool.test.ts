import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { installDawn } from '../src/backends/dawn.js';
import { gpuMemory, releasePooledBuffers, resetGPUMemoryPeak } from '../src/backends/gpu-memory.js';
import type { T2VWebGPUBackend } from '../src/backends/webgpu/backend.js';
import { webgpuSkip } from './webgpu-gate.js';

// The buffer pool (src/backends/webgpu/buffer-pool.ts) on a real WebGPU device (lavapipe in CI): best fit puts a
// tensor into a larger free buffer without letting stale bytes into results, the figures follow, releasing the pool gives
// the free buffers back and the next op still runs. test/buffer-pool.test.ts has the same without a GPU.
const adapter = await installDawn();
const skip = await webgpuSkip(adapter);
const MiB = 2 ** 20;

async function onWebGPU<T>(fn: (b: T2VWebGPUBackend) => Promise<T>): Promise<T> {
  await tf.setBackend('webgpu');
  const b = tf.backend() as T2VWebGPUBackend;
  releasePooledBuffers(); // start from an empty pool
  const before = tf.memory().numTensors;
  try {
    const r = await fn(b);
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
    return r;
  } finally {
    b.pool!.bestFit = true;
  }
}

test('webgpu pool: a tensor in a larger free buffer reads back exactly, a reduction over it sees no stale bytes', { skip }, async () => {
  await onWebGPU(async (b) => {
    const n1 = 3 * MiB / 4 + 50_000; // floats: 3.19 MiB
    const n2 = 3 * MiB / 4 + 1_000; // 3.00 MiB: within twice n1's size, served by its buffer
    const big = tf.fill([n1], 7); // the bytes past n2 hold 7s when its buffer serves the smaller tensor
    await big.data();
    const m1 = b.gpuMemory();
    big.dispose();
    const ones = tf.ones([n2]);
    const sum = tf.sum(ones);
    const [values, total] = await Promise.all([ones.data(), sum.data()]);
    // the ones took the free buffer of the 7s (and their read-back its staging buffer): what is new is the sum's few bytes
    const grew = b.gpuMemory().allocated - m1.allocated;
    assert.ok(grew < 4096, `allocated grew by ${grew} bytes, not by the second tensor`);
    assert.equal(values.length, n2, 'read back at the tensor\'s size, not the buffer\'s');
    assert.ok(values.every((v) => v === 1));
    assert.equal(total[0], n2, 'the sum covers the tensor only');
    // a reshape shares the buffer; max over rows of the view also stays inside it
    const top = tf.tidy(() => tf.max(tf.max(tf.reshape(ones, [n2 / 8, 8]), 1)));
    assert.equal((await top.data())[0], 1);
    tf.dispose([ones, sum, top]);
  });
});

test('webgpu pool: best fit off is tfjs\'s exact-size pool again (two nearby sizes, two buffers)', { skip }, async () => {
  await onWebGPU(async (b) => {
    b.pool!.bestFit = false;
    const a = tf.fill([MiB / 2 + 2000], 2);
    await a.data();
    const allocated = b.gpuMemory().allocated;
    a.dispose();
    const c = tf.fill([MiB / 2 + 1000], 3);
    const grew = b.gpuMemory().allocated - allocated - 4 * (MiB / 2 + 1000);
    assert.ok(grew >= 0 && grew < 4096, `a new buffer of the exact size (and ${grew} bytes of uniforms)`);
    const v = await c.data();
    assert.equal(v.length, MiB / 2 + 1000);
    c.dispose();
  });
});

test('webgpu pool: figures follow tensors; releasing the pool frees the free buffers and the next op runs (bind groups rebuilt)', { skip }, async () => {
  await onWebGPU(async (b) => {
    resetGPUMemoryPeak();
    const x = tf.randomUniform([512, 1024], 0, 1, 'float32', 5);
    const y = tf.mul(x, 2);
    const ref = await y.data();
    y.dispose();
    let m = gpuMemory()!;
    assert.ok(m.peakInUse! >= m.inUse + 2 * MiB, 'the peak saw x and y at once');
    assert.equal(m.allocated, m.inUse + m.pooled);
    assert.ok(m.pooled >= 2 * MiB, 'y\'s buffer went to the pool');
    const misses = b.caches.bindGroups.misses;
    const again = async () => {
      const z = tf.mul(x, 2);
      const v = await z.data();
      z.dispose();
      return v;
    };
    await again();
    assert.equal(b.caches.bindGroups.misses, misses, 'the same op on the same buffers: its bind group kept');
    const freed = releasePooledBuffers();
    m = gpuMemory()!;
    assert.ok(freed >= 2 * MiB);
    assert.equal(m.pooled, 0);
    assert.equal(m.allocated, m.inUse);
    assert.deepEqual(await again(), ref, 'the op after the release computes the same');
    assert.ok(b.caches.bindGroups.misses > misses, 'its bind group was made anew over the new buffer');
    x.dispose();
  });
});
