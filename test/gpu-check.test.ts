import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { checkWebGPU, describeGpuError } from '../src/browser/gpu-check.js';

// What the page says before loading a model, from a stand-in navigator.gpu (Node has none).

const g = globalThis as unknown as { navigator?: unknown; isSecureContext?: boolean };
const had = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
afterEach(() => {
  if (had) Object.defineProperty(globalThis, 'navigator', had); else delete g.navigator;
  delete g.isSecureContext;
});
const setGpu = (gpu: unknown) => Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
const adapter = (limit: number, features: string[] = ['subgroups']) => ({
  info: { vendor: 'google', architecture: 'swiftshader', description: 'SwiftShader' },
  features: new Set(features), limits: { maxStorageBufferBindingSize: limit, maxBufferSize: 2 * limit },
});

test('checkWebGPU: no WebGPU, not a secure page, no adapter, buffers too small; ok with what the adapter has', async () => {
  setGpu(undefined);
  assert.match((await checkWebGPU()).message!, /^this browser has no WebGPU: use a recent Chrome or Edge/);
  g.isSecureContext = false;
  assert.match((await checkWebGPU()).message!, /^WebGPU needs a secure page: open it over https or from localhost$/);
  setGpu({ requestAdapter: async () => null });
  assert.match((await checkWebGPU()).message!, /gave no adapter \(the GPU may be blocklisted: see chrome:\/\/gpu\)/);
  setGpu({ requestAdapter: async () => adapter(128 * 2 ** 20) });
  const small = await checkWebGPU(300 * 2 ** 20);
  assert.equal(small.ok, false);
  assert.match(small.message!, /cannot hold a 300 MB buffer \(its limit is 128 MB\)/);
  setGpu({ requestAdapter: async () => adapter(2 ** 31, ['shader-f16', 'subgroups']) });
  const ok = await checkWebGPU(300 * 2 ** 20);
  assert.deepEqual({ ok: ok.ok, f16: ok.f16, features: ok.features, max: ok.maxBufferBytes }, { ok: true, f16: true, features: ['shader-f16', 'subgroups'], max: 2 ** 31 });
});

test('describeGpuError: out of memory and a lost device say what to do; other errors pass through as one line', () => {
  class GPUOutOfMemoryError extends Error {}
  assert.match(describeGpuError(new GPUOutOfMemoryError('Failed to create buffer')), /^not enough GPU memory \(Failed to create buffer\): use a smaller size or fewer frames/);
  assert.match(describeGpuError(new Error('Out of memory while allocating')), /^not enough GPU memory/);
  assert.match(describeGpuError(new Error('device lost: reset')), /^the GPU device was lost \(device lost: reset\): reload the page/);
  assert.equal(describeGpuError(new Error('prompt must be a string\nstack')), 'prompt must be a string');
});
