import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { installDawn } from '../src/backends/dawn.js';
import { registerWebGPUKernels } from '../src/backends/webgpu/register.js';
import { TensorCoreAttention, TensorCoreConv, TensorCoreGemm, UnpackHalf } from '../src/backends/webgpu/kernel-names.js';
import { WebGPUOps } from '../src/backends/webgpu/ops.js';
import { resolveWebGPUOptions } from '../src/backends/webgpu/options.js';
import { unpackHalfWeight } from '../src/backends/webgpu/unpack-half.js';
import { fromFloat16, toFloat16 } from '../src/io/float16.js';
import { HALF_MIN_VALUES } from '../src/io/model-folder.js';
import { concatWeights, Param } from '../src/layers/module.js';
import { PlainOps } from '../src/layers/plain-ops.js';
import type { UNetConfig } from '../src/layers/unet/config.js';
import { UNetSD } from '../src/layers/unet/unet.js';
import { relMaxError } from './helpers.js';
import { webgpuSkip } from './webgpu-gate.js';

// Float16-resident weights (Param.half) on WebGPUOps' tensor-core route: the GEMMs read the packed halves as B
// directly (no unpack pass), and compute exactly what the same values in float32 compute. The matrices are emulated
// (software adapters have no subgroup matrices), so this runs on lavapipe in CI.
const adapter = await installDawn();
const skip = await webgpuSkip(adapter, ['shader-f16']);
if (!skip) {
  await tf.setBackend('webgpu');
  registerWebGPUKernels();
}

function rand(shape: number[], seed: number): Float32Array {
  return tf.tidy(() => tf.randomNormal(shape, 0, 1, 'float32', seed).dataSync() as Float32Array).slice();
}

/** float16 bits of `v`, packed two to a float32 element, as the loader uploads them (model-folder.ts halfWeights). */
function packHalves(v: Float32Array): tf.Tensor1D {
  return tf.tensor1d(new Float32Array(toFloat16(v).buffer, 0, v.length / 2), 'float32');
}

/** `v` rounded to float16 (what a half-resident weight holds). */
function roundedToHalf(v: Float32Array): Float32Array {
  return fromFloat16(toFloat16(v));
}

const cfg = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 };
const small = { bm: 16, sgRows: 2, sgCols: 2, bn: 16, tk: 16 };
// 16-byte stores pair a thread's vec4s: K steps of 32 give it two
const tensorCoreOps = (gemmStoreBytes: 2 | 8 | 16 = 2) => new WebGPUOps(resolveWebGPUOptions({ tensorCores: true }),
  { subgroupMatrixConfigs: [cfg] }, { tiles: () => (gemmStoreBytes === 16 ? { ...small, tk: 32 } : small), emulateMatrices: true, gemmStoreBytes });

test('half weights: concatenated packed halves keep every bit (pairs that read as float32 denormals or zeros too)', { skip }, async () => {
  // a zero high half makes the float32 pattern a denormal: a copy that flushed denormals would lose the low half
  const [rows, cols] = [4, 6];
  const parts = [0, 1].map((seed) => {
    const p = new Param([cols, rows], 'linear');
    const bits = new Uint16Array(rows * cols);
    for (let i = 0; i < bits.length; i++) bits[i] = i % 2 === 0 ? 0x3c00 + seed + i : (i % 4 === 1 ? 0 : 0x8000);
    p.half = tf.tensor1d(new Float32Array(bits.buffer), 'float32');
    p.unpack = unpackHalfWeight;
    return { p, bits };
  });
  const made: tf.Tensor[] = [];
  const w = concatWeights(parts.map((x) => x.p), (_kind, _from, make) => {
    const t = tf.keep(tf.tidy(make));
    made.push(t);
    return t;
  });
  assert.ok(w && !(w instanceof tf.Tensor) && w.half, 'halves give a half weight');
  assert.deepEqual(w.shape, [rows, 2 * cols]);
  const got = new Uint16Array(((await w.half.data()) as Float32Array).buffer);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < 2 * cols; c++) {
      const { bits } = parts[Math.floor(c / cols)];
      assert.equal(got[r * 2 * cols + c], bits[r * cols + (c % cols)], `row ${r} column ${c}`);
    }
  }
  const unpacked = tf.tidy(() => w.tensor);
  assert.equal(((await unpacked.data()) as Float32Array)[0], 1, 'the unpacked copy reads the halves');
  unpacked.dispose();
  tf.dispose([...made, ...parts.map((x) => x.p.half!)]);
});

// and again with the staged GEMM's wide-stores experiment (8- and 16-byte stores of B's halves as they are)
for (const storeBytes of [2, 8, 16] as const) test(`half weights: linear, gemv and convolutions read packed halves on the tensor-core route (no unpack) and match float32 weights${storeBytes !== 2 ? `, ${storeBytes}-byte stores` : ''}`, { skip }, async () => {
  const ops = tensorCoreOps(storeBytes);
  const exact = (shape: number[], seed: number) => rand(shape, seed).map((v) => Math.max(-32, Math.min(31, Math.round(v * 8))) / 8);
  const w = rand([96, 128], 31);
  const f = rand([3, 3, 64, 128], 32);
  const t = rand([3, 1, 64, 128], 33);
  const weight = (v: Float32Array, shape: number[]) => {
    const p = new Param([shape[shape.length - 1], v.length / shape[shape.length - 1]], 'plain');
    p.half = packHalves(v);
    p.unpack = unpackHalfWeight;
    return p.as(shape);
  };
  const cases: [string, string, (half: boolean) => tf.Tensor][] = [
    ['linear + bias + residual', TensorCoreGemm, (half) => ops.linear(tf.tensor2d(exact([128, 96], 34), [128, 96]),
      half ? weight(w, [96, 128]) : tf.tensor2d(roundedToHalf(w), [96, 128]), tf.tensor1d(rand([128], 35)), tf.tensor2d(rand([128, 128], 36), [128, 128]))],
    ['ragged rows (padded, then cut)', TensorCoreGemm, (half) => ops.linear(tf.tensor2d(exact([77, 96], 37), [77, 96]),
      half ? weight(w, [96, 128]) : tf.tensor2d(roundedToHalf(w), [96, 128]))],
    ['gemv', TensorCoreGemm, (half) => ops.linear(tf.tensor2d(rand([1, 96], 38), [1, 96]),
      half ? weight(w, [96, 128]) : tf.tensor2d(roundedToHalf(w), [96, 128]), tf.tensor1d(rand([128], 39)))],
    ['3x3 convolution', TensorCoreConv, (half) => ops.conv2d(tf.tensor4d(exact([4, 4, 8, 64], 40), [4, 4, 8, 64]),
      half ? weight(f, [3, 3, 64, 128]) : tf.tensor4d(roundedToHalf(f), [3, 3, 64, 128]), 1, 'same', tf.tensor1d(rand([128], 41)))],
    ['temporal convolution + residual', TensorCoreConv, (half) => ops.conv2d(tf.tensor4d(exact([4, 4, 8, 64], 42), [4, 4, 8, 64]),
      half ? weight(t, [3, 1, 64, 128]) : tf.tensor4d(roundedToHalf(t), [3, 1, 64, 128]), 1, [[0, 0], [1, 1], [0, 0], [0, 0]],
      tf.tensor1d(rand([128], 43)), tf.tensor4d(rand([4, 4, 8, 128], 44), [4, 4, 8, 128]))],
  ];
  for (const [name, kernel, fn] of cases) {
    const r = tf.tidy(() => fn(false));
    const ref = (await r.data()) as Float32Array;
    r.dispose();
    const before = tf.memory().numTensors;
    const prof = await tf.profile(() => tf.tidy(() => fn(true)));
    const y = prof.result as tf.Tensor;
    const got = (await y.data()) as Float32Array;
    y.dispose();
    assert.ok(prof.kernelNames.includes(kernel), `${name}: ${kernel} did not run (${prof.kernelNames.join(', ')})`);
    assert.ok(!prof.kernelNames.includes(UnpackHalf), `${name}: the halves were unpacked`);
    const err = relMaxError(got, ref);
    assert.ok(err <= 1e-6, `${name}: rel err ${err} from the same values in float32`);
    // the packed halves were made inside the case's tidy (packHalves): nothing else may stay
    assert.equal(tf.memory().numTensors, before, `${name}: leaked tensors`);
  }
  assert.equal(ops.tensorCoreStats.fallback, 0);
});

test('half weights: a small UNet on the tensor-core route (packed q|k|v, tensor-core attention, projected context) computes what the same values in float32 do', { skip }, async () => {
  const unetCfg: UNetConfig = {
    inDim: 4, dim: 128, embedDim: 512, contextDim: 64, decoderContextDim: 64, outDim: 4, dimMult: [1], numHeads: 8,
    headDim: 16, numResBlocks: 1, attnScales: [1], temporalAttention: true, normGroups: 32,
  };
  const net = new UNetSD(unetCfg);
  const weights = new Map([...net.namedParams()].map(([k, p], i) => {
    const fanIn = p.torchShape.slice(1).reduce((a, b) => a * b, 1);
    const v = rand(p.tfShape, 100 + i).map((x) => (p.torchShape.length > 1 ? x / Math.sqrt(fanIn) : k.endsWith('.weight') ? 1 + 0.1 * x : 0.05 * x));
    const n = v.length;
    return [k, { v: n >= HALF_MIN_VALUES ? roundedToHalf(v) : v, shape: p.tfShape, half: n >= HALF_MIN_VALUES }];
  }));
  const [b, f, s] = [1, 4, 8]; // 256 rows: every GEMM fits the tensor-core route
  const xd = rand([b, f, s, s, 4], 1);
  const cd = rand([b, 77, 64], 2);
  const forward = () => tf.tidy(() => net.forward(tf.tensor5d(xd, [b, f, s, s, 4]), tf.tensor1d([500]), tf.tensor3d(cd, [b, 77, 64])));
  net.useOps(tensorCoreOps());
  const baseline = tf.memory().numTensors;
  try {
    net.loadWeights((k) => tf.tensor(weights.get(k)!.v, weights.get(k)!.shape));
    const r = forward();
    const ref = (await r.data()) as Float32Array;
    r.dispose();
    net.disposeWeights();
    const halves = [...weights.values()].filter((w) => w.half).length;
    assert.ok(halves > 10, `${halves} half weights`);
    net.loadWeights((k) => (weights.get(k)!.half ? undefined : tf.tensor(weights.get(k)!.v, weights.get(k)!.shape)),
      (k) => (weights.get(k)!.half ? packHalves(weights.get(k)!.v) : undefined), unpackHalfWeight);
    const prof = await tf.profile(forward);
    const y = prof.result as tf.Tensor;
    const got = (await y.data()) as Float32Array;
    y.dispose();
    const unpacked = prof.kernels.filter((k) => k.name === UnpackHalf).length;
    const err = relMaxError(got, ref);
    console.log(`small UNet, half-resident vs float32 weights (same values): rel err ${err.toExponential(2)}, ${unpacked} unpacks of ${halves} half weights`);
    assert.ok(err <= 1e-6, `rel err ${err}`);
    assert.equal(unpacked, 0, 'every half weight was read as it is');
    assert.ok(prof.kernelNames.includes(TensorCoreAttention), 'the self-attention ran on tensor cores');
    // the packed q|k|v and context weights were kept with the module and go with its weights: nothing else stays
    net.disposeWeights();
    assert.equal(tf.memory().numTensors, baseline, 'tensors left after disposeWeights');
    // the route's f16 rounding against the cpu backend's float32 on the same values (issue 16's quality bar: 3e-3 of the
    // largest value): every GEMM, convolution and the spatial self-attention run as f16 products with f32 sums
    await tf.setBackend('cpu');
    net.useOps(new PlainOps());
    net.loadWeights((k) => tf.tensor(weights.get(k)!.v, weights.get(k)!.shape));
    const c = forward();
    const cpu = (await c.data()) as Float32Array;
    c.dispose();
    const q = relMaxError(got, cpu);
    console.log(`small UNet on the tensor-core route vs the cpu backend: rel err ${q.toExponential(2)}`);
    assert.ok(q <= 3e-3, `rel err ${q} against the cpu backend`);
  } finally {
    net.disposeWeights();
    await tf.setBackend('webgpu');
  }
});
