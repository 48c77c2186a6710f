import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_WEBGPU_OPTIONS, resolveWebGPUOptions, WEBGPU_KERNELS } from '../src/backends/webgpu/options.js';

const env = (vars: Record<string, string>) => (name: string) => vars[name];

test('webgpu options: given fields win over the environment, which wins over the defaults', () => {
  assert.deepEqual(resolveWebGPUOptions({}, env({})), DEFAULT_WEBGPU_OPTIONS);
  for (const v of ['0', 'off', 'FALSE', 'no']) {
    assert.equal(resolveWebGPUOptions({}, env({ T2V_TENSOR_CORES: v })).tensorCores, false, v);
    assert.equal(resolveWebGPUOptions({ tensorCores: true }, env({ T2V_TENSOR_CORES: v })).tensorCores, true, `option over ${v}`);
  }
  for (const v of ['1', 'on', 'true', 'Yes']) assert.equal(resolveWebGPUOptions({}, env({ T2V_UNIFORM_CACHE: v })).uniformCache, true, v);
  const o = resolveWebGPUOptions({ kernels: ['attention'] }, env({
    T2V_BIND_GROUP_CACHE: '0', T2V_COMPUTE_UNITS: '78', T2V_DAWN_FLAGS: ' a  b ',
  }));
  assert.deepEqual(o.kernels, ['attention']);
  assert.equal(o.bindGroupCache, false);
  assert.equal(o.computeUnits, 78);
  assert.deepEqual(o.dawnFlags, ['a', 'b']);
  assert.ok(Object.isFrozen(o));
  assert.deepEqual(DEFAULT_WEBGPU_OPTIONS.kernels, WEBGPU_KERNELS);
});

test('webgpu options: a bad value is one error naming the variable or the field', () => {
  assert.throws(() => resolveWebGPUOptions({}, env({ T2V_TENSOR_CORES: 'maybe' })), /^WebGPUOptionsError: T2V_TENSOR_CORES=maybe: use 0 or 1$/);
  assert.throws(() => resolveWebGPUOptions({}, env({ T2V_UNIFORM_CACHE: 'sometimes' })), /T2V_UNIFORM_CACHE=sometimes: use 0 or 1/);
  assert.throws(() => resolveWebGPUOptions({}, env({ T2V_COMPUTE_UNITS: '1.5' })), /T2V_COMPUTE_UNITS=1.5: use a whole number/);
  assert.throws(() => resolveWebGPUOptions({ kernels: ['flash'] as never }), /webgpu option kernels: \["flash"\]; valid kernels: attention, /);
  assert.throws(() => resolveWebGPUOptions({ splitK: 'yes' as never }), /webgpu option splitK must be true or false/);
  assert.throws(() => resolveWebGPUOptions({ tensorcores: true } as never), /unknown webgpu option tensorcores; valid: tensorCores, /);
  assert.throws(() => resolveWebGPUOptions({ computeUnits: 0 }), /computeUnits must be a positive whole number or null/);
});
