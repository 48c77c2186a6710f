import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { CATEGORY } from '../bench/harness/kernel-categories.js';
import { EXACT_TIMESTAMPS_FLAG, gpuTimestamps } from '../bench/harness/webgpu.js';
import { profileCall } from '../bench/scenarios/profile.js';
import { installDawn } from '../src/backends/dawn.js';
import { TensorCoreGemm } from '../src/backends/webgpu/kernel-names.js';
import { WebGPUOps } from '../src/backends/webgpu/ops.js';
import { resolveWebGPUOptions } from '../src/backends/webgpu/options.js';
import { webgpuSkip } from './webgpu-gate.js';

// The profile scenario's timing on a real WebGPU device (lavapipe in CI): a kernel of ours that runs three programs
// (a split-K GEMM on rows padded to its tiles, the sum of its parts, the Slice back to its rows) has each dispatch
// timed and counted in its own category.
const base = resolveWebGPUOptions();
const adapter = await installDawn(resolveWebGPUOptions({ dawnFlags: [...base.dawnFlags, EXACT_TIMESTAMPS_FLAG] }));
const skip = await webgpuSkip(adapter);

test('bench profile on webgpu: every dispatch of a split-K, padded tensor-core GEMM is timed and categorized', { skip }, async () => {
  await tf.setBackend('webgpu');
  try {
    const cfg = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 };
    const tiles = { bm: 16, sgRows: 2, sgCols: 2, bn: 16, tk: 16, splits: 2 };
    const ops = new WebGPUOps(resolveWebGPUOptions({ tensorCores: true }), { subgroupMatrixConfigs: [cfg] }, { tiles: () => tiles, emulateMatrices: true });
    const x = tf.randomUniform([100, 64], -1, 1, 'float32', 1) as tf.Tensor2D;
    const w = tf.randomUniform([64, 64], -1, 1, 'float32', 2) as tf.Tensor2D;
    const b = tf.randomUniform([64], -1, 1, 'float32', 3) as tf.Tensor1D;
    const before = tf.memory().numTensors;
    const p = await profileCall(() => ops.linear(x, w, b), 5);
    assert.equal(tf.memory().numTensors, before, 'nothing leaked');
    tf.dispose([x, w, b]);
    assert.equal(p.kernels, 1);
    assert.equal(p.dispatches, 3);
    assert.match(p.dispatchReport ?? '', /^3 dispatches/);
    assert.equal(p.top[0].name, TensorCoreGemm);
    assert.equal(p.top[0].programs, 'Object+Object+SliceProgram');
    assert.deepEqual(p.categories.map((c) => [c.category, c.calls]), [[CATEGORY.linearBias, 1], [CATEGORY.splitK, 1], [CATEGORY.padding, 1]]);
    assert.ok(Math.abs(p.categories.reduce((a, c) => a + c.ms, 0) - p.totalMs) < 1e-9);
    assert.equal(p.untimedOwn, 0);
    if (gpuTimestamps()) {
      assert.equal(p.timing, 'gpu');
      assert.ok(p.categories.every((c) => c.ms > 0), JSON.stringify(p.categories));
    } else {
      assert.equal(p.timing, 'none');
    }
  } finally {
    await tf.setBackend('cpu');
  }
});
