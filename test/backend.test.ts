import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { BackendError, resolveBackendRequest, selectBackend, softwareAdapterReason } from '../src/backends/select.js';
import { vulkanLoaderMissing } from '../src/backends/dawn.js';
import { ROOT } from './helpers.js';

function withEnv<T>(value: string | undefined, f: () => Promise<T>): Promise<T> {
  const old = process.env.T2V_BACKEND;
  if (value === undefined) delete process.env.T2V_BACKEND; else process.env.T2V_BACKEND = value;
  return f().finally(() => { if (old === undefined) delete process.env.T2V_BACKEND; else process.env.T2V_BACKEND = old; });
}

test('auto picks a working backend and says why the others were skipped', async () => {
  const choice = await withEnv(undefined, () => selectBackend('auto'));
  assert.ok(['tensorflow', 'webgpu', 'wasm', 'cpu'].includes(choice.name));
  assert.equal(tf.getBackend(), choice.name);
  const order = ['tensorflow', 'webgpu', 'wasm', 'cpu'];
  assert.deepEqual(choice.skipped.map((s) => s.name), order.slice(0, order.indexOf(choice.name)));
  for (const s of choice.skipped) assert.ok(s.reason.length > 0);
  // Without tfjs-node and without a GPU adapter (this machine, CI), auto must land on wasm, which works in Node.
  const tfNode = choice.skipped.find((s) => s.name === 'tensorflow');
  const webgpu = choice.skipped.find((s) => s.name === 'webgpu');
  if (tfNode && /not installed/.test(tfNode.reason) && webgpu) assert.equal(choice.name, 'wasm');
  assert.equal(tf.tidy(() => tf.add(tf.tensor1d([1, 2]), 1).arraySync()).join(), '2,3');
});

test('explicit cpu and wasm work', async () => {
  const cpu = await selectBackend('cpu');
  assert.equal(cpu.name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.deepEqual(cpu.skipped, []);
  const wasm = await selectBackend('wasm');
  assert.equal(wasm.name, 'wasm');
  assert.match(wasm.details.threads, /yes|no/);
  await tf.setBackend('cpu');
});

test('unknown backend name is an error listing the valid names', async () => {
  await assert.rejects(selectBackend('cuda'), (e: Error) => e instanceof BackendError
    && /unknown backend "cuda"; valid: auto, tensorflow, webgpu, wasm, cpu/.test(e.message));
});

test('T2V_BACKEND is honoured when no name is given, and a name overrides it', async () => {
  await withEnv('cpu', async () => {
    assert.equal(resolveBackendRequest(), 'cpu');
    assert.equal((await selectBackend()).name, 'cpu');
    assert.equal(resolveBackendRequest('wasm'), 'wasm');
  });
  await withEnv('nonsense', async () => {
    assert.throws(() => resolveBackendRequest(), /unknown backend "nonsense" \(from T2V_BACKEND\)/);
  });
  await tf.setBackend('cpu');
});

test('software WebGPU adapters are recognised', () => {
  assert.equal(softwareAdapterReason({ isFallbackAdapter: true }, {}), 'fallback adapter');
  assert.match(softwareAdapterReason({}, { vendor: 'google', description: 'SwiftShader Device (Subzero)' }) ?? '', /swiftshader/);
  assert.match(softwareAdapterReason({}, { description: 'llvmpipe (LLVM 15.0.6, 256 bits)' }) ?? '', /llvmpipe/);
  assert.equal(softwareAdapterReason({}, { vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100 80GB HBM3' }), null);
});

test('t2v info prints the chosen backend and the skipped ones; a bad --backend is one line and exit 1', () => {
  const run = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath,
    ['--import', 'tsx', 'bin/t2v-dev.ts', ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
  const ok = run(['info', '--backend', 'cpu']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^backend: cpu\n {2}tfjs: \d+\.\d+\.\d+/);
  const auto = run(['info'], { T2V_BACKEND: 'auto' });
  assert.equal(auto.status, 0, auto.stderr);
  assert.match(auto.stdout, /backend: (tensorflow|webgpu|wasm|cpu)/);
  assert.match(auto.stdout, /skipped tensorflow: /);
  const bad = run(['info', '--backend', 'tpu']);
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr.trim().split('\n').filter((l) => l.startsWith('t2v:')).length, 1);
  assert.match(bad.stderr, /^t2v: unknown backend "tpu"; valid: auto, tensorflow, webgpu, wasm, cpu$/m);
});

test('no Vulkan loader: webgpu is skipped before Dawn starts, so Dawn prints no warning; t2v info says why; T2V_DEBUG=1 lets Dawn try', () => {
  const missing = (name: string) => { throw new Error(`${name}: cannot open shared object file: No such file or directory`); };
  const loads = () => { throw new Error("Module did not self-register: 'libvulkan.so.1'."); };
  assert.match(vulkanLoaderMissing(missing, 'linux') ?? '', /^no Vulkan loader \(libvulkan\.so\.1: cannot open shared object file.*T2V_DEBUG=1/);
  assert.equal(vulkanLoaderMissing(loads, 'linux'), null, 'the library loaded (it is not a node addon)');
  assert.equal(vulkanLoaderMissing(missing, 'darwin'), null, 'Metal, D3D elsewhere: nothing to check');

  const run = (env: Record<string, string>) => spawnSync(process.execPath, ['--import', 'tsx', 'bin/t2v-dev.ts', 'info'],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, T2V_BACKEND: 'auto', ...env } });
  const quiet = run({ T2V_DEBUG: '0' });
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.doesNotMatch(quiet.stderr, /Couldn't load Vulkan/);
  if (vulkanLoaderMissing() !== null) {
    assert.match(quiet.stdout, /skipped webgpu: no Vulkan loader \(libvulkan\.so\.1/);
    const loud = run({ T2V_DEBUG: '1' });
    assert.equal(loud.status, 0, loud.stderr);
    assert.match(loud.stderr, /Couldn't load Vulkan/);
    assert.match(loud.stdout, /skipped webgpu: no WebGPU adapter found/);
  }
});

test('cpu and wasm ignore the tensor-core option and report nothing about it', async () => {
  for (const name of ['cpu', 'wasm']) {
    const c = await selectBackend(name, { tensorCores: true });
    assert.equal(c.name, name);
    assert.equal(c.details['tensor cores'], undefined);
    assert.equal(c.ops.name, 'plain');
  }
  await tf.setBackend('cpu');
});
