import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  checkEngineScope, checkTfjsInternals, inTidy, internalsMessage, internalsOf, TFJS_WRITTEN_AGAINST,
} from '../src/tfjs-internals.js';
import { resolveWebGPUOptions } from '../src/backends/webgpu/options.js';

// The start-up check of the tfjs internals the WebGPU dispatch caches use, on the installed tfjs (no GPU needed: our
// backend is made over a stand-in device, which its constructor and makeUniforms touch only through createBuffer and
// queue.writeBuffer), and its fallback when a member is missing.

// loaded before navigator.gpu exists, so the package registers no webgpu backend of its own here
const { T2VWebGPUBackend, TFJS_WEBGPU_VERSION } = await import('../src/backends/webgpu/backend.js');
const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu');
const g = globalThis as Record<string, unknown>;
g.navigator ??= {};
(g.navigator as Record<string, unknown>).gpu ??= {}; // tfjs's constructor asks only that it exists
g.GPUBufferUsage ??= { COPY_DST: 8, UNIFORM: 64 };

function standInDevice() {
  const writes: number[] = [];
  const device = {
    features: new Set<string>(),
    limits: {},
    queue: { writeBuffer: (_b: unknown, _o: number, _d: ArrayBuffer, _s: number, size: number) => writes.push(size) },
    createBuffer: (d: { size: number; usage: number }) => ({ size: d.size, usage: d.usage, destroy() {} }),
  };
  return { device: device as unknown as GPUDevice, writes };
}

const uniforms = () => [{ type: 'int32', data: [3, 4] }, { type: 'float32', data: [0.5] }];

test(`tfjs internals: the installed tfjs-backend-webgpu (${TFJS_WEBGPU_VERSION}) has every member the caches use; they run`, () => {
  assert.equal(TFJS_WEBGPU_VERSION, TFJS_WRITTEN_AGAINST, 'package.json pins the version the internals were read from');
  const lines: string[] = [];
  const { device, writes } = standInDevice();
  const b = new T2VWebGPUBackend(device, undefined, { options: resolveWebGPUOptions({}, () => undefined), warn: (l) => lines.push(l) });
  assert.deepEqual(b.internals, { ok: true, version: TFJS_WEBGPU_VERSION, missing: [] });
  assert.deepEqual(lines, []);
  assert.equal(b.caches.uniforms.enabled, true);
  assert.equal(b.caches.bindGroups.enabled, true);
  assert.equal(Object.getPrototypeOf(internalsOf(b).bufferManager).constructor.name, 'T2VBufferPool', 'our pool');
  // the uniform cache: the same content twice is one buffer written once, kept out of tfjs's release list
  const first = internalsOf(b).makeUniforms(uniforms());
  const second = internalsOf(b).makeUniforms(uniforms());
  assert.equal(second, first);
  assert.equal(writes.length, 1);
  assert.deepEqual(internalsOf(b).uniformPendingDisposal, []);
  assert.deepEqual([b.caches.uniforms.hits, b.caches.uniforms.misses], [1, 1]);
});

test('tfjs internals: a backend lacking a member fails the check, naming it and the installed version in one line', () => {
  const { device } = standInDevice();
  const real = new WebGPUBackend(device);
  const proto = WebGPUBackend.prototype as unknown as Record<string, unknown>;
  const withoutRecord = Object.fromEntries(Object.getOwnPropertyNames(proto).filter((k) => k !== 'recordAndSubmit').map((k) => [k, proto[k]]));
  const c = checkTfjsInternals(real, withoutRecord, '4.23.0');
  assert.deepEqual(c, { ok: false, version: '4.23.0', missing: ['WebGPUBackend.recordAndSubmit'] });
  assert.equal(internalsMessage(c), 't2v: @tensorflow/tfjs-backend-webgpu 4.23.0 lacks WebGPUBackend.recordAndSubmit '
    + `(t2v is written against ${TFJS_WRITTEN_AGAINST}): the dispatch caches and the buffer pool are off (stock tfjs)`);
  // fields of the instance, and a buffer pool whose free lists are not what tfjs 4.22 keeps
  const fake = { ...real, uniformPendingDisposal: undefined, dispatchCountInPass: '0' } as Record<string, unknown>;
  delete fake.commandEncoder;
  fake.bufferManager = { acquireBuffer() {}, releaseBuffer() {}, freeBuffers: {} };
  assert.deepEqual(checkTfjsInternals(fake, proto, '5.0.0').missing, [
    'WebGPUBackend.uniformPendingDisposal', 'WebGPUBackend.commandEncoder', 'WebGPUBackend.dispatchCountInPass',
    'BufferManager.freeBuffers',
  ]);
  assert.deepEqual(checkTfjsInternals(real, proto, TFJS_WEBGPU_VERSION).missing, []);
});

test('tfjs internals: where the check fails, one line on stderr and our backend runs stock tfjs (no caches)', () => {
  const proto = WebGPUBackend.prototype as unknown as Record<string, unknown>;
  const makeUniforms = proto.makeUniforms;
  const lines: string[] = [];
  let b: InstanceType<typeof T2VWebGPUBackend>;
  const { device, writes } = standInDevice();
  delete proto.makeUniforms; // as a tfjs that renamed it
  try {
    b = new T2VWebGPUBackend(device, undefined, { options: resolveWebGPUOptions({}, () => undefined), warn: (l) => lines.push(l) });
  } finally {
    proto.makeUniforms = makeUniforms;
  }
  assert.deepEqual(lines, [`t2v: @tensorflow/tfjs-backend-webgpu ${TFJS_WEBGPU_VERSION} lacks WebGPUBackend.makeUniforms `
    + `(t2v is written against ${TFJS_WRITTEN_AGAINST}): the dispatch caches and the buffer pool are off (stock tfjs)`]);
  assert.equal(b.internals.ok, false);
  assert.equal(b.caches.uniforms.enabled, false);
  assert.equal(b.caches.bindGroups.enabled, false);
  assert.equal(Object.getPrototypeOf(internalsOf(b).bufferManager).constructor.name, 'BufferManager', "tfjs's own pool");
  assert.deepEqual([b.pool, b.gpuMemory().peakInUse, b.releasePooledBuffers()], [null, null, 0], 'no peaks, nothing released');
  // switched on again by hand, the caches still stay off: every call is tfjs's own (a write and a pooled buffer each)
  b.caches.uniforms.enabled = true;
  internalsOf(b).makeUniforms(uniforms());
  internalsOf(b).makeUniforms(uniforms());
  assert.equal(writes.length, 2);
  assert.equal(internalsOf(b).uniformPendingDisposal.length, 2);
  assert.deepEqual([b.caches.uniforms.hits, b.caches.uniforms.misses], [0, 0]);
  // caches switched off by option: nothing to warn about
  const quiet: string[] = [];
  proto.makeUniforms = undefined;
  try {
    new T2VWebGPUBackend(standInDevice().device, undefined, {
      options: resolveWebGPUOptions({ uniformCache: false, bindGroupCache: false, poolBestFit: false }, () => undefined),
      warn: (l) => quiet.push(l),
    });
  } finally {
    proto.makeUniforms = makeUniforms;
  }
  assert.deepEqual(quiet, []);
});

test('tfjs internals: the engine scope (tf.tidy) check, and inTidy', () => {
  const lines: string[] = [];
  assert.equal(checkEngineScope((l) => lines.push(l)), true);
  assert.equal(tf.tidy(() => checkEngineScope((l) => lines.push(l))), true, 'also inside a tidy');
  assert.deepEqual(lines, []);
  assert.equal(inTidy(), false);
  assert.equal(tf.tidy(() => inTidy()), true);
  assert.equal(checkEngineScope((l) => lines.push(l), () => ({})), false);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^t2v: @tensorflow\/tfjs-core \S+ lacks engine\(\)\.state\.activeScope \(t2v is written against 4\.22\.0\): /);
});
