import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { installDawn } from '../src/backends/dawn.js';
import type { T2VWebGPUBackend } from '../src/backends/webgpu/backend.js';
import { registerWebGPUKernels } from '../src/backends/webgpu/register.js';
import {
  FusedAttention, FusedConcat, FusedContextAttention, FusedGEGLU, FusedGroupNorm, FusedRowSlice, FusedLayerNorm, FusedPackedAttention, TensorCoreAttention, TensorCoreConv, TensorCoreGemm,
} from '../src/backends/webgpu/kernel-names.js';
import { WebGPUOps, type WebGPUInstruments } from '../src/backends/webgpu/ops.js';
import { resolveWebGPUOptions, type WebGPUOptions } from '../src/backends/webgpu/options.js';
import type { ExplicitPadding, Ops } from '../src/layers/ops.js';
import { plainAttention, plainOps } from '../src/layers/plain-ops.js';
import { laneGroupSize } from '../src/backends/webgpu/lane-groups.js';
import { deviceFactsOf } from '../src/backends/webgpu/device-facts.js';
import { gemvInfo } from '../src/backends/webgpu/gemv.js';
import { tensorCoreAttention, tensorCoreAttentionSupported } from '../src/backends/webgpu/attention-tc.js';
import { matMulF16StagedInfo, type Tiles } from '../src/backends/webgpu/matmul-f16-staged.js';
import { GroupNorm, LayerNorm } from '../src/layers/common/norm.js';
import { CrossAttention } from '../src/layers/unet/cross-attention.js';
import type { UNetConfig } from '../src/layers/unet/config.js';
import { UNetSD } from '../src/layers/unet/unet.js';
import { relMaxError } from './helpers.js';
import { webgpuSkip } from './webgpu-gate.js';

// The fused WGSL kernels against the plain ops on the cpu backend. They need a WebGPU adapter: a GPU with a Vulkan
// driver (software adapters such as lavapipe only with T2V_WEBGPU_SOFTWARE=1; they are slow but exact). CI runs
// them on lavapipe (.ci/lavapipe.sh) with T2V_REQUIRE_WEBGPU=1: no adapter is a failure there.
const adapter = await installDawn();
const skip = await webgpuSkip(adapter);
const TOL = 1e-5;

await tf.setBackend('cpu');

function rand(shape: number[], seed: number): Float32Array {
  return tf.tidy(() => tf.randomNormal(shape, 0, 1, 'float32', seed).dataSync() as Float32Array).slice();
}

/** WebGPU ops as the tests use them: tensor cores off (software adapters have none) unless asked. */
function webgpuOps(options: Partial<WebGPUOptions> = {}, configs: WebGPUOps['tensorCores'][] = [], instruments: WebGPUInstruments = {}): WebGPUOps {
  return new WebGPUOps(resolveWebGPUOptions({ tensorCores: false, ...options }), { subgroupMatrixConfigs: configs.filter((c) => c !== null) }, instruments);
}

/** Runs `fn` with the plain ops on the cpu backend, then with WebGPUOps on webgpu; returns both results. */
async function both(fn: (ops: Ops) => tf.Tensor, kernel: string, gpuOps: Ops = webgpuOps()): Promise<{ ref: Float32Array; gpu: Float32Array; leaked: number }> {
  await tf.setBackend('cpu');
  const r = fn(plainOps);
  const ref = (await r.data()) as Float32Array;
  r.dispose();
  await tf.setBackend('webgpu');
  const before = tf.memory().numTensors;
  const prof = await tf.profile(() => fn(gpuOps));
  const g = prof.result as tf.Tensor;
  const gpu = (await g.data()) as Float32Array;
  g.dispose();
  const leaked = tf.memory().numTensors - before;
  assert.ok(prof.kernelNames.includes(kernel), `${kernel} did not run: ${prof.kernelNames.join(', ')}`);
  return { ref, gpu, leaked };
}

/** `run()` (which loads its module's weights itself) with the plain ops on the cpu backend, then profiled with WebGPUOps. */
async function moduleOnBoth(run: () => tf.Tensor, m: { disposeWeights(): number; useOps(ops: Ops): unknown }): Promise<{ ref: Float32Array; gpu: Float32Array; kernelNames: string[] }> {
  await tf.setBackend('cpu');
  m.useOps(plainOps);
  const r = run();
  const ref = (await r.data()) as Float32Array;
  r.dispose();
  m.disposeWeights();
  await tf.setBackend('webgpu');
  m.useOps(webgpuOps());
  const prof = await tf.profile(() => run());
  const y = prof.result as tf.Tensor;
  const gpu = (await y.data()) as Float32Array;
  y.dispose();
  return { ref, gpu, kernelNames: prof.kernelNames };
}

const attentionCases: [string, number, number, number, number, number, boolean][] = [
  // name, b, nq, nk, heads, d, causal
  ['self-attention, nq not a multiple of the row tile', 2, 70, 70, 2, 64, false],
  ['cross-attention, 77 keys', 2, 40, 77, 3, 32, false],
  ['causal (text tower)', 1, 77, 77, 4, 16, true],
  ['temporal, 16 frames (short-sequence kernel)', 24, 16, 16, 2, 64, false],
  ['short causal, 9 keys', 3, 9, 9, 2, 32, true],
  ['33 keys (tiled kernel, partial tile)', 2, 20, 33, 2, 64, false],
];
for (const [name, b, nq, nk, heads, d, causal] of attentionCases) {
  test(`webgpu fused attention matches plain ops: ${name}`, { skip }, async () => {
    const qd = rand([b, nq, heads * d], 1);
    const kd = rand([b, nk, heads * d], 2);
    const vd = rand([b, nk, heads * d], 3);
    const { ref, gpu, leaked } = await both((ops) => tf.tidy(() => ops.attention(
      tf.tensor3d(qd, [b, nq, heads * d]), tf.tensor3d(kd, [b, nk, heads * d]), tf.tensor3d(vd, [b, nk, heads * d]),
      heads, causal)), FusedAttention);
    const err = relMaxError(gpu, ref);
    console.log(`${name}: rel err ${err.toExponential(2)}`);
    assert.ok(err <= TOL, `rel err ${err}`);
    assert.equal(leaked, 0);
  });
}

test('lane groups: a power of two up to 16 lanes dividing a row\'s vec4s and within the smallest subgroup', () => {
  assert.deepEqual([laneGroupSize(16, 32), laneGroupSize(16, 8), laneGroupSize(2, 32), laneGroupSize(6, 32), laneGroupSize(1, 32), laneGroupSize(16, 0), laneGroupSize(16, 1)],
    [16, 8, 2, 2, 0, 0, 0]);
});

// the short-sequence kernels (temporal attention: 16 frames) in both forms: lanes of a subgroup per query (shuffles;
// the default where the device has subgroups) and a thread per query (lanes 0), over [b, n, c] and over the columns
// of [b, frames, pixels, 3 * inner] as the temporal transformer runs it
test('webgpu short-sequence attention: lanes per query and a thread per query match plain attention, causal and over the columns of [b, frames, pixels, c]', { skip }, async () => {
  const cases = [
    { name: 'temporal, 16 frames, d 64', b: 6, n: 16, heads: 2, d: 64, causal: false, cols: 0 },
    { name: 'causal, 9 keys, d 32', b: 3, n: 9, heads: 2, d: 32, causal: true, cols: 0 },
    { name: 'over the columns of [2, 16, 5, c], d 32', b: 2, n: 16, heads: 2, d: 32, causal: false, cols: 5 },
    { name: 'over the columns of [2, 7, 3, c], d 8', b: 2, n: 7, heads: 3, d: 8, causal: false, cols: 3 },
  ];
  try {
    await tf.setBackend('webgpu');
    const sub = deviceFactsOf(tf.backend()).subgroupMinSize;
    for (const c of cases) {
      const inner = c.heads * c.d;
      const seqs = c.cols > 0 ? c.b * c.cols : c.b;
      const shape = c.cols > 0 ? [c.b, c.n, c.cols, 3 * inner] : [c.b, c.n, 3 * inner];
      const qkvd = rand(shape, 31);
      await tf.setBackend('cpu');
      // the reference: each column's sequence as a batch item of plain attention
      const ref = tf.tidy(() => {
        const qkv = tf.tensor(qkvd, shape);
        const part = (i: number) => {
          const x = tf.slice(qkv, [...shape.slice(0, -1).map(() => 0), i * inner], [...shape.slice(0, -1), inner]);
          return (c.cols > 0 ? x.transpose([0, 2, 1, 3]) : x).reshape([seqs, c.n, inner]) as tf.Tensor3D;
        };
        const o = plainAttention(part(0), part(1), part(2), c.heads, c.causal);
        return c.cols > 0 ? o.reshape([c.b, c.cols, c.n, inner]).transpose([0, 2, 1, 3]) : o;
      });
      const want = (await ref.data()) as Float32Array;
      tf.dispose(ref);
      await tf.setBackend('webgpu');
      const lanes = [0, 2, laneGroupSize(c.d / 4, sub)].filter((l, i, all) => all.indexOf(l) === i && (l === 0 || (c.d / 4) % l === 0));
      for (const l of lanes) {
        const before = tf.memory().numTensors;
        const qkv = tf.tensor(qkvd, shape);
        const out = tf.engine().runKernel(FusedPackedAttention, { qkv }, { heads: c.heads, causal: c.causal, lanes: l } as unknown as tf.NamedAttrMap) as tf.Tensor;
        const got = (await out.data()) as Float32Array;
        tf.dispose([qkv, out]);
        const err = relMaxError(got, want);
        console.log(`${c.name}, ${l} lanes a query: rel err ${err.toExponential(2)}`);
        assert.ok(err <= TOL, `${c.name}, ${l} lanes: rel err ${err}`);
        assert.equal(tf.memory().numTensors, before);
      }
    }
  } finally {
    await tf.setBackend('cpu');
  }
});

// cross-attention to keys and values of several layers side by side in one matmul's output (UNetSD's projected
// context): the kernel reads this layer's columns in place, rows past batch*keys (a padded matmul's) unused
for (const [name, b, nq, keys, heads, d] of [['77 keys (tiled kernel)', 2, 70, 77, 2, 32], ['12 keys (short-sequence kernel)', 3, 10, 12, 2, 16]] as const) {
  test(`webgpu attention to keys and values at a column offset of a wider tensor matches plain ops: ${name}`, { skip }, async () => {
    const inner = heads * d;
    const width = 5 * inner;
    const rows = b * keys + 7;
    const qd = rand([b, nq, inner], 1);
    const kvd = rand([rows, width], 2);
    // the context projected for three layers (k|v each): layer 1's keys start at column 2*inner
    const ctxd = rand([b, keys, 24], 3);
    const wd = rand([24, 6 * inner], 4);
    const { ref, gpu, leaked } = await both((ops) => tf.tidy(() => {
      const w = tf.tensor2d(wd, [24, 6 * inner]);
      const layers = [0, 1, 2].map((i) => ({ k: w.slice([0, 2 * i * inner], [24, inner]), v: w.slice([0, (2 * i + 1) * inner], [24, inner]) }));
      const ctx = ops.projectContext(tf.tensor3d(ctxd, [b, keys, 24]), layers, () => w);
      return ops.contextAttention(tf.tensor3d(qd, [b, nq, inner]), ctx, 1, heads);
    }), FusedContextAttention);
    const err = relMaxError(gpu, ref);
    console.log(`${name}: rel err ${err.toExponential(2)}`);
    assert.ok(err <= TOL, `rel err ${err}`);
    assert.equal(leaked, 0);
  });
}

// self-attention in the UNet: on webgpu one matmul with to_q|to_k|to_v concatenated (kept once per module) and the
// packed kernel; on cpu three matmuls and the plain ops
// (cols > 0: x [b, n, cols, dim], attention over n in each column, as the temporal transformer runs it, + a residual)
for (const [name, b, n, heads, d, cols] of [['tiled kernel', 2, 70, 2, 64, 0], ['short-sequence kernel (frames)', 12, 16, 2, 32, 0],
  ['short-sequence kernel over the columns of [b, frames, pixels, c], plus a residual', 2, 16, 2, 32, 6]] as const) {
  test(`webgpu packed q|k|v self-attention (CrossAttention) matches the plain ops: ${name}`, { skip }, async () => {
    const dim = 48;
    const attn = new CrossAttention(dim, null, heads, d);
    const data = new Map([...attn.namedParams()].map(([k, p], i) => [k, { v: rand(p.tfShape, 10 + i), shape: p.tfShape }]));
    const shape = cols > 0 ? [b, n, cols, dim] : [b, n, dim];
    const xd = rand(shape, 7);
    const rd = rand(shape, 8);
    const call = () => (cols > 0
      ? attn.forward(tf.tensor4d(xd, shape as [number, number, number, number]), undefined, tf.tensor4d(rd, shape as [number, number, number, number]))
      : attn.forward(tf.tensor3d(xd, shape as [number, number, number])));
    const run = () => {
      attn.disposeWeights();
      attn.loadWeights((k) => tf.tensor(data.get(k)!.v, data.get(k)!.shape));
      return tf.tidy(call);
    };
    {
      const { ref, gpu, kernelNames } = await moduleOnBoth(run, attn);
      const err = relMaxError(gpu, ref);
      console.log(`${name}: rel err ${err.toExponential(2)}`);
      assert.ok(kernelNames.includes(FusedPackedAttention), `packed attention did not run: ${kernelNames.join(', ')}`);
      assert.ok(err <= TOL, `rel err ${err}`);
      // the concatenated weights are made once, then reused; disposeWeights frees them with the weights
      const before = tf.memory().numTensors;
      tf.tidy(call).dispose();
      assert.equal(tf.memory().numTensors, before);
      assert.equal(attn.disposeWeights(), 5);
      assert.equal(tf.memory().numTensors, before - 5 - 1, 'the five weights and the concatenated q|k|v are freed');
    }
  });
}

const groupNormCases: [string, number[], number, boolean][] = [
  ['groups straddle vec4 lanes', [2, 3, 5, 8, 40], 4, false],
  ['groups straddle vec4 lanes, +SiLU', [2, 3, 5, 8, 40], 4, true],
  ['one video, 131072 values a group (chunked statistics), +SiLU', [1, 4, 64, 64, 64], 8, true],
  ['frames as samples, 512 (sample, group) pairs of 10240 values, +SiLU', [16, 32, 32, 320], 32, true],
  ['1280 channels (a workgroup of 320), rows not a multiple of the row lanes or blocks', [3, 7, 9, 1280], 32, false],
  ['row blocks of a sample shorter than its row lanes', [1, 5, 64], 4, true],
];
for (const [name, shape, groups, silu] of groupNormCases) for (const rowStats of [true, false]) {
  test(`webgpu fused GroupNorm matches plain ops: ${name}${rowStats ? '' : ' (per-group statistics pass)'}`, { skip }, async () => {
    const c = shape[shape.length - 1];
    const xd = rand(shape, 4).map((v) => v * 3 + 1.5);
    const gn = new GroupNorm(groups, c);
    const w = rand([c], 5);
    const bi = rand([c], 6);
    const { ref, gpu, leaked } = await both((ops) => tf.tidy(() => {
      gn.useOps(ops);
      gn.weight.value = tf.tensor1d(w);
      gn.bias.value = tf.tensor1d(bi);
      const y = gn.forward(tf.tensor(xd, shape), silu);
      tf.keep(gn.weight.value);
      tf.keep(gn.bias.value);
      return y;
    }), FusedGroupNorm, webgpuOps({}, [], { groupNormRowStats: rowStats }));
    tf.dispose([gn.weight.value!, gn.bias.value!]);
    const err = relMaxError(gpu, ref);
    console.log(`${name}: rel err ${err.toExponential(2)}`);
    assert.ok(err <= TOL, `rel err ${err}`);
    assert.ok(leaked <= 2, `leaked ${leaked}`); // the two weights set inside
  });
}

// lanes: the subgroup kernel's pick (undefined), a workgroup per row (0), two lanes a row (2); the UNet's 320 and
// the text tower's 1024 channels, and 40 (10 vec4s: at most two lanes divide them)
for (const [shape, lanes] of [[[3, 77, 1024], undefined], [[3, 77, 1024], 0], [[5, 33, 320], undefined], [[5, 33, 320], 2], [[7, 40], undefined]] as const) test(`webgpu fused LayerNorm matches plain ops: [${shape}], ${lanes ?? 'default'} lanes`, { skip }, async () => {
  const c = shape[shape.length - 1];
  const xd = rand([...shape], 8).map((v) => v * 2 - 0.7);
  const ln = new LayerNorm(c);
  const w = rand([c], 9);
  const bi = rand([c], 10);
  const { ref, gpu, leaked } = await both((ops) => tf.tidy(() => {
    ln.useOps(ops);
    ln.weight.value = tf.keep(tf.tensor1d(w));
    ln.bias.value = tf.keep(tf.tensor1d(bi));
    return ln.forward(tf.tensor(xd, [...shape]));
  }), FusedLayerNorm, webgpuOps({}, [], lanes === undefined ? {} : { layerNormLanes: lanes }));
  tf.dispose([ln.weight.value!, ln.bias.value!]);
  const err = relMaxError(gpu, ref);
  assert.ok(err <= TOL, `rel err ${err}`);
  assert.ok(leaked <= 2, `leaked ${leaked}`);
});

test('webgpu fused GEGLU matches plain ops', { skip }, async () => {
  const shape = [3, 7, 48];
  const hd = rand(shape, 7).map((v) => v * 2);
  const { ref, gpu, leaked } = await both((ops) => tf.tidy(() => ops.geglu(tf.tensor(hd, shape))), FusedGEGLU);
  assert.equal(gpu.length, 3 * 7 * 24);
  const err = relMaxError(gpu, ref);
  assert.ok(err <= TOL, `rel err ${err}`);
  assert.equal(leaked, 0);
});

// vec4 copies: the UNet's skip concatenation (channels), FeedForward's chunks (rows; more than one pass's seven
// inputs), its row slices; copies are exact
test('webgpu concat and row slices match tfjs exactly: channels, nine row chunks, a slice at a row offset', { skip }, async () => {
  const cases: [string, string, (ops: Ops) => tf.Tensor][] = [
    ['skip concatenation, channels', FusedConcat, (ops) => tf.tidy(() => ops.concat([tf.tensor(rand([2, 3, 5, 8], 81), [2, 3, 5, 8]),
      tf.tensor(rand([2, 3, 5, 12], 82), [2, 3, 5, 12])], 3))],
    ['nine chunks of rows', FusedConcat, (ops) => tf.tidy(() => ops.concat(Array.from({ length: 9 }, (_, i) =>
      tf.tensor(rand([3 + i, 8], 90 + i), [3 + i, 8])), 0))],
    ['rows 5..12 of 20', FusedRowSlice, (ops) => tf.tidy(() => ops.rowSlice(tf.tensor2d(rand([20, 12], 99), [20, 12]), 5, 7))],
  ];
  for (const [name, kernel, fn] of cases) {
    const { ref, gpu, leaked } = await both(fn, kernel);
    assert.deepEqual(gpu, ref, name);
    assert.equal(leaked, 0, name);
  }
  await tf.setBackend('webgpu');
  // widths that are no multiple of 4 take tfjs's kernels
  const ops = webgpuOps();
  const odd = await tf.profile(() => tf.tidy(() => ops.concat([tf.ones([2, 3]), tf.ones([2, 5])], 1)));
  assert.ok(!odd.kernelNames.includes(FusedConcat));
  (odd.result as tf.Tensor).dispose();
  await tf.setBackend('cpu');
});

// WebGPUOps' tensor-core route with the staged kernel's matrices emulated (subgroup-matrix.ts) and small tiles: Linear
// with bias and residual in the accumulators, the 3x3 and temporal (3, 1) convolutions, a one-row matmul (gemv), and
// a matmul whose rows the tiles do not divide. Inputs are multiples of 1/8 below 4 (exact in f16).
test('webgpu ops on the tensor-core route (emulated matrices) match the plain ops: linear, residual, convolutions, gemv', { skip }, async () => {
  const cfg = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 };
  const small = { bm: 16, sgRows: 2, sgCols: 2, bn: 16, tk: 16 };
  const exact = (shape: number[], seed: number) => rand(shape, seed).map((v) => Math.max(-32, Math.min(31, Math.round(v * 8))) / 8);
  const shapes: string[] = [];
  const ops = webgpuOps({ tensorCores: true }, [cfg], {
    tiles: () => small, onGemm: (g) => shapes.push(`${g.m}x${g.n}x${g.k}${g.conv ? ' conv' : ''}`), emulateMatrices: true,
  });
  assert.deepEqual(ops.tensorCores, cfg);
  const a = exact([128, 96], 21);
  const w = exact([96, 128], 22);
  const bias = rand([128], 23);
  const r = rand([128, 128], 24);
  try {
    // 128 rows: the residual starts the accumulators (fewer rows run padded, then Add)
    const lin = await both((o) => tf.tidy(() => o.linear(tf.tensor2d(a, [128, 96]), tf.tensor2d(w, [96, 128]), tf.tensor1d(bias),
      tf.tensor2d(r, [128, 128]))), TensorCoreGemm, ops);
    assert.ok(relMaxError(lin.gpu, lin.ref) <= TOL, `linear: rel err ${relMaxError(lin.gpu, lin.ref)}`);
    assert.equal(lin.leaked, 0);
    const one = await both((o) => tf.tidy(() => o.linear(tf.tensor2d(a.slice(0, 96), [1, 96]), tf.tensor2d(w, [96, 128]), tf.tensor1d(bias),
      tf.tensor2d(r.slice(0, 128), [1, 128]))), TensorCoreGemm, ops);
    assert.ok(relMaxError(one.gpu, one.ref) <= TOL, 'gemv');
    const x = exact([4, 4, 8, 64], 25); // 128 output rows: the staged kernel's smallest convolution
    const res = rand([4, 4, 8, 128], 26);
    for (const [kh, kw, pad] of [[3, 3, 'same'], [3, 1, [[0, 0], [1, 1], [0, 0], [0, 0]]]] as const) {
      const f = exact([kh, kw, 64, 128], 27);
      const { ref, gpu, leaked } = await both((o) => tf.tidy(() => o.conv2d(tf.tensor4d(x, [4, 4, 8, 64]),
        tf.tensor4d(f, [kh, kw, 64, 128]), 1, pad as 'same' | ExplicitPadding, tf.tensor1d(bias), tf.tensor4d(res, [4, 4, 8, 128]))), TensorCoreConv, ops);
      const err = relMaxError(gpu, ref);
      assert.ok(err <= TOL, `conv ${kh}x${kw}: rel err ${err}`);
      assert.equal(leaked, 0);
    }
    // 35 output rows (zeroscope's 576x320 leaves its deepest levels such counts): run on 128, cut back, residual added after
    const xr = exact([1, 5, 7, 64], 28);
    const fr = exact([3, 3, 64, 128], 29);
    const resr = rand([1, 5, 7, 128], 30);
    const ragged = await both((o) => tf.tidy(() => o.conv2d(tf.tensor4d(xr, [1, 5, 7, 64]), tf.tensor4d(fr, [3, 3, 64, 128]), 1, 'same',
      tf.tensor1d(bias), tf.tensor4d(resr, [1, 5, 7, 128]))), TensorCoreConv, ops);
    assert.ok(relMaxError(ragged.gpu, ragged.ref) <= TOL, `conv with ragged rows: rel err ${relMaxError(ragged.gpu, ragged.ref)}`);
    assert.equal(ragged.leaked, 0);
    assert.deepEqual(shapes, ['128x128x96', '128x128x576 conv', '128x128x192 conv', '128x128x576 conv'], 'the GEMMs the route ran (gemv is not tiled)');
    assert.equal(ops.tensorCoreStats.fallback, 0);
  } finally {
    await tf.setBackend('cpu');
  }
});

test('webgpu one-row matmul (gemv: the time embedding\'s Linears) matches plain ops, with bias and residual', { skip }, async () => {
  await tf.setBackend('webgpu');
  const backend = tf.backend() as unknown as WebGPUBackend;
  const [k, n] = [96, 192];
  const x = rand([1, k], 41);
  const w = rand([k, n], 42);
  const bias = rand([n], 43);
  const res = rand([1, n], 44);
  const t = [tf.tensor2d(x, [1, k]), tf.tensor2d(w, [k, n]), tf.tensor1d(bias), tf.tensor2d(res, [1, n])];
  const info = (u: tf.Tensor) => ({ dataId: u.dataId, shape: u.shape, dtype: u.dtype });
  const out = tf.engine().makeTensorFromTensorInfo(gemvInfo(backend, info(t[0]), info(t[1]), info(t[2]), info(t[3]), [1, n]));
  const gpu = (await out.data()) as Float32Array;
  tf.dispose([...t, out]);
  await tf.setBackend('cpu');
  const ref = tf.tidy(() => tf.add(tf.add(tf.matMul(tf.tensor2d(x, [1, k]), tf.tensor2d(w, [k, n])), tf.tensor1d(bias)), tf.tensor2d(res, [1, n])).dataSync());
  const err = relMaxError(gpu, ref as Float32Array);
  assert.ok(err <= TOL, `rel err ${err}`);
});

// The staged tensor-core GEMM needs subgroup matrices, which software adapters lack: its WGSL is compiled here with
// the matrix builtins replaced by scalar stand-ins, so Tint still checks everything else (syntax, types, the
// uniformity of its barriers: a loop bound read from workgroupId broke every such GEMM on the H200 in run 25).
function stubMatrices(code: string): string {
  return code
    .replace(/enable chromium_experimental_subgroup_matrix;/, '')
    .replace(/diagnostic\(off, chromium\.subgroup_matrix_uniformity\);/, '')
    .replace(/subgroup_matrix_result<f32, \d+, \d+>\(\)/g, '0.0')
    .replace(/subgroupMatrixLoad<.*?>>\(&(\w+|\(\*\w+\)), ([^,]+), (?:false|true), ([^)]+)\)/g, 'f32($1[$2])')
    .replace(/subgroupMatrixMultiplyAccumulate\(/g, 'fma(')
    .replace(/subgroupMatrixStore\(&(\w+|\(\*\w+\)), (.+?), (\w+), false, (\w+)\);/g, '$1[$2] = $3;');
}
test('webgpu tensor-core GEMM: its WGSL (matrix builtins stubbed) passes Tint for plain, bias, residual, split-K and probe variants', { skip }, async () => {
  await tf.setBackend('webgpu');
  const backend = tf.backend() as unknown as WebGPUBackend;
  const progs: WebGPUProgram[] = [];
  const capture = {
    device: { limits: { maxComputeWorkgroupStorageSize: backend.device.limits.maxComputeWorkgroupStorageSize } },
    runWebGPUProgram: (p: WebGPUProgram) => { progs.push(p); return { dataId: {}, shape: p.outputShape, dtype: 'float32' }; },
    disposeData: () => undefined,
  } as unknown as WebGPUBackend;
  const cfg = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 };
  const info = (shape: number[]) => ({ dataId: {}, shape, dtype: 'float32' as const });
  const conv = { n: 16, h: 4, w: 4, c: 256, kh: 3, kw: 3, padTop: 1, padLeft: 1 };
  matMulF16StagedInfo(capture, info([256, 512]), info([512, 256]), null, cfg, [256, 256]);
  matMulF16StagedInfo(capture, info([256, 512]), info([512, 256]), info([256]), cfg, [256, 256]);
  matMulF16StagedInfo(capture, info([256, 512]), info([512, 256]), info([256]), cfg, [256, 256], { residual: info([256, 256]) });
  matMulF16StagedInfo(capture, info([16, 4, 4, 256]), info([3, 3, 256, 256]), info([256]), cfg, [16, 4, 4, 256], {
    conv, tiles: { bm: 32, sgRows: 4, sgCols: 2, bn: 64, tk: 32, splits: 4 }, residual: info([16, 4, 4, 256]) });
  // B as packed halves (float16-resident weights)
  matMulF16StagedInfo(capture, info([256, 512]), info([512, 256]), info([256]), cfg, [256, 256], { b: { half: true, n: 256 } });
  assert.ok(progs.some((p) => /h_/.test(p.shaderKey)), 'the half-B program was made');
  // the benchmark's timing probes (bench/harness/variants.ts) compile too
  matMulF16StagedInfo(capture, info([256, 512]), info([512, 256]), info([256]), cfg, [256, 256], { probe: 'mma-only' });
  matMulF16StagedInfo(capture, info([256, 512]), info([512, 256]), info([256]), cfg, [256, 256], { probe: 'staging-only' });
  matMulF16StagedInfo(capture, info([256, 512]), info([512, 256]), info([256]), cfg, [256, 256], { probe: 'mma-no-loads' });
  matMulF16StagedInfo(capture, info([256, 512]), info([512, 256]), info([256]), cfg, [256, 256], { probe: 'b-col-major', b: { half: true, n: 256 } });
  // A's prefetch held as halves, plain and as a convolution
  matMulF16StagedInfo(capture, info([256, 512]), info([512, 256]), info([256]), cfg, [256, 256], { halfRegisters: true, b: { half: true, n: 256 } });
  matMulF16StagedInfo(capture, info([16, 4, 4, 256]), info([3, 3, 256, 256]), info([256]), cfg, [16, 4, 4, 256], { conv, halfRegisters: true });
  // and the wide-stores experiment (buffer views of the tiles: 8- and 16-byte stores), B as floats and as halves
  for (const storeBytes of [8, 16] as const) {
    matMulF16StagedInfo(capture, info([256, 512]), info([512, 256]), info([256]), cfg, [256, 256], { storeBytes });
    matMulF16StagedInfo(capture, info([256, 512]), info([512, 256]), info([256]), cfg, [256, 256], { storeBytes, b: { half: true, n: 256 } });
  }
  assert.ok(progs.some((p) => /As4\[o \/ 4u\] = bitcast<vec2<u32>>/.test(p.getUserCode())), 'a program stores 8 bytes at a time');
  assert.ok(progs.some((p) => /As8\[o \/ 8u\] = vec4<u32>/.test(p.getUserCode())), 'a program stores 16 bytes at a time');
  tensorCoreAttention(capture, info([2, 128, 3 * 32]), 2, cfg); // head dim 16: wider heads compile for minutes on lavapipe
  tensorCoreAttention(capture, info([2, 100, 3 * 32]), 2, cfg, { rowTiles: 2, keyBlock: 16 }); // two row tiles, keys and queries past N
  tensorCoreAttention(capture, info([2, 100, 3 * 32]), 2, cfg, { onePass: true }); // one pass over the keys
  tensorCoreAttention(capture, info([2, 128, 3 * 32]), 2, cfg, { rowTiles: 2, keyBlock: 16, onePass: true });
  tensorCoreAttention(capture, info([2, 100, 3 * 32]), 2, cfg, { vectorScores: true });
  tensorCoreAttention(capture, info([2, 100, 3 * 32]), 2, cfg, { rowTiles: 2, keyBlock: 16, onePass: true, vectorScores: true, rescaleAlways: true });
  assert.ok(progs.some((p) => p.shaderKey.startsWith('t2vSplitKSum')), 'split-K made its summing pass');
  for (const p of progs) {
    const prog = { ...p, shaderKey: `${p.shaderKey}_stubbed`, getUserCode: () => stubMatrices(p.getUserCode()) };
    const inputs = p.variableNames.map(() => tf.zeros([1 << 20]));
    backend.device.pushErrorScope('validation');
    const out = backend.runWebGPUProgram(prog, inputs.map((x) => ({ dataId: x.dataId, shape: x.shape, dtype: 'float32' as const })), 'float32');
    const err = await backend.device.popErrorScope();
    backend.disposeData(out.dataId);
    tf.dispose(inputs);
    assert.equal(err?.message ?? null, null, p.shaderKey);
  }
  await tf.setBackend('cpu');
});

// The staged tensor-core GEMM with emulated subgroup matrices (subgroup-matrix.ts), so its tiling, implicit-GEMM
// indexing, epilogues and split-K are checked here too. Inputs are multiples of 1/8 below 4 (exact in f16), so only
// the order of the f32 sums differs from the cpu backend; bias and residual are arbitrary floats.
test('webgpu tensor-core GEMM (emulated matrices) matches plain ops: matmul, bias, residual, split-K, convolutions', { skip }, async () => {
  const cfg = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 };
  const exact = (shape: number[], seed: number) => rand(shape, seed).map((v) => Math.max(-32, Math.min(31, Math.round(v * 8))) / 8);
  type Case = { name: string; a: number[]; b: number[]; bias: boolean; residual: boolean; tiles?: Tiles;
    conv?: { strides: number; pad: 'same' | ExplicitPadding }; storeBytes?: 2 | 8 | 16; halfRegisters?: boolean };
  // small tiles (2 x 2 subgroups of one 16 x 16 block each): the emulation compiles slowly on lavapipe
  const tiles = { bm: 16, sgRows: 2, sgCols: 2, bn: 16, tk: 16 };
  const cases: Case[] = [
    { name: 'matmul + bias', a: [64, 48], b: [48, 64], bias: true, residual: false, tiles },
    { name: 'matmul of 77 rows (run on 128) + bias', a: [77, 48], b: [48, 64], bias: true, residual: false, tiles },
    { name: 'matmul + bias + residual, split-K 3', a: [64, 48], b: [48, 64], bias: true, residual: true, tiles: { ...tiles, splits: 3 } },
    { name: '3x3 convolution + residual', a: [2, 4, 4, 16], b: [3, 3, 16, 32], bias: false, residual: true, tiles, conv: { strides: 1, pad: 'same' } },
    { name: 'temporal (3, 1) convolution + bias', a: [2, 4, 8, 16], b: [3, 1, 16, 32], bias: true, residual: false, tiles,
      conv: { strides: 1, pad: [[0, 0], [1, 1], [0, 0], [0, 0]] } },
    { name: 'stride-2 3x3 convolution (Downsample) + bias', a: [2, 8, 8, 16], b: [3, 3, 16, 32], bias: true, residual: false, tiles,
      conv: { strides: 2, pad: [[0, 0], [1, 1], [1, 1], [0, 0]] } },
    // the wide-stores experiment (8- and 16-byte stores into buffer views of the tiles; 16 pairs a thread's vec4s,
    // so K steps of 32 give each thread two of A's and two of B's)
    { name: '8-byte stores: matmul + bias + residual, split-K 3', a: [64, 48], b: [48, 64], bias: true, residual: true,
      tiles: { ...tiles, splits: 3 }, storeBytes: 8 },
    { name: '8-byte stores: 3x3 convolution + bias', a: [2, 4, 4, 16], b: [3, 3, 16, 32], bias: true, residual: false, tiles,
      conv: { strides: 1, pad: 'same' }, storeBytes: 8 },
    { name: '16-byte stores: matmul of 77 rows (run on 128) + bias', a: [77, 64], b: [64, 64], bias: true, residual: false,
      tiles: { ...tiles, tk: 32 }, storeBytes: 16 },
    { name: '16-byte stores: 3x3 convolution + residual', a: [2, 4, 4, 32], b: [3, 3, 32, 32], bias: false, residual: true,
      tiles: { ...tiles, tk: 32 }, conv: { strides: 1, pad: 'same' }, storeBytes: 16 },
    // A's prefetch held as halves
    { name: 'half registers: matmul of 77 rows (run on 128) + bias', a: [77, 48], b: [48, 64], bias: true, residual: false, tiles, halfRegisters: true },
    { name: 'half registers: 3x3 convolution + residual, 8-byte stores', a: [2, 4, 4, 16], b: [3, 3, 16, 32], bias: false, residual: true, tiles,
      conv: { strides: 1, pad: 'same' }, storeBytes: 8, halfRegisters: true },
  ];
  try {
    for (const c of cases) {
      const ad = exact(c.a, 51);
      const bd = exact(c.b, 52);
      const biasd = rand([c.b[c.b.length - 1]], 53);
      await tf.setBackend('cpu');
      const ref = tf.tidy(() => {
        const a = tf.tensor(ad, c.a);
        const b = tf.tensor(bd, c.b);
        let y = c.conv ? tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.conv.strides, c.conv.pad) : tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D);
        if (c.bias) y = tf.add(y, tf.tensor1d(biasd));
        return y;
      });
      const outShape = ref.shape;
      const rd = rand(outShape, 54);
      const want = (await (c.residual ? tf.add(ref, tf.tensor(rd, outShape)) : ref).data()) as Float32Array;
      tf.dispose(ref);
      await tf.setBackend('webgpu');
      const backend = tf.backend() as unknown as WebGPUBackend;
      const t = [tf.tensor(ad, c.a), tf.tensor(bd, c.b), tf.tensor1d(biasd), tf.tensor(rd, outShape)];
      const info = (u: tf.Tensor) => ({ dataId: u.dataId, shape: u.shape, dtype: u.dtype });
      const geom = c.conv ? { n: c.a[0], h: c.a[1], w: c.a[2], c: c.a[3], kh: c.b[0], kw: c.b[1],
        padTop: c.conv.pad === 'same' ? (c.b[0] - 1) / 2 : c.conv.pad[1][0], padLeft: c.conv.pad === 'same' ? (c.b[1] - 1) / 2 : c.conv.pad[2][0],
        stride: c.conv.strides, oh: outShape[1], ow: outShape[2] } : undefined;
      const out = tf.engine().makeTensorFromTensorInfo(matMulF16StagedInfo(backend, info(t[0]), info(t[1]), c.bias ? info(t[2]) : null,
        cfg, outShape, { conv: geom, tiles: c.tiles, residual: c.residual ? info(t[3]) : null, emulate: true, storeBytes: c.storeBytes, halfRegisters: c.halfRegisters }));
      const got = (await out.data()) as Float32Array;
      tf.dispose([...t, out]);
      const err = relMaxError(got, want);
      console.log(`${c.name}: rel err ${err.toExponential(2)}`);
      assert.ok(err <= 1e-5, `${c.name}: rel err ${err}`);
    }
  } finally {
    await tf.setBackend('cpu');
  }
});

// Packed self-attention on tensor cores (emulated matrices): f16 q, k, v and probabilities, so the tolerance is f16's
test('webgpu tensor-core self-attention (emulated matrices) matches plain attention within f16 rounding', { skip }, async () => {
  const cfg = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 };
  // head dim 16: lavapipe compiles the emulation of wider heads for minutes (the H200 runs d = 64: bench ops)
  // one and two 16-row tiles per subgroup (two with 16-key blocks: lavapipe's workgroup memory is 32 KiB); 100 and 40
  // rows: keys past N masked, queries past N not written
  // one pass (attentionOnePass): its default margin, and margin 0 (a rescale whenever a row's maximum grows); keys that
  // grow along the sequence (growing: key j scaled by 1 + j / 16) move the maxima past the default margin too
  // vectorScores (scores read and probabilities written four at a time through buffer views) in both forms, and the
  // one-pass diagnostic that rescales after every block
  type Pass = { onePass: boolean; rescaleMargin?: number; growing?: boolean; vectorScores?: boolean; rescaleAlways?: boolean };
  const cases: [number, number, number, number, number, number, Pass][] = [
    [2, 128, 2, 16, 1, 32, { onePass: false }], [2, 128, 2, 16, 2, 16, { onePass: false }], [1, 64, 3, 16, 1, 32, { onePass: false }],
    [1, 100, 3, 16, 1, 32, { onePass: false }], [2, 40, 2, 16, 2, 16, { onePass: false }],
    [2, 128, 2, 16, 1, 32, { onePass: true }], [1, 100, 3, 16, 2, 16, { onePass: true, rescaleMargin: 0 }],
    [1, 100, 2, 16, 1, 32, { onePass: false, growing: true }],
    [1, 100, 2, 16, 1, 32, { onePass: true, growing: true }], [2, 40, 2, 16, 2, 16, { onePass: true, rescaleMargin: 0 }],
    [1, 100, 3, 16, 1, 32, { onePass: false, vectorScores: true }], [2, 40, 2, 16, 2, 16, { onePass: true, rescaleMargin: 0, vectorScores: true }],
    [1, 100, 2, 16, 1, 32, { onePass: true, growing: true, vectorScores: true }],
    [1, 100, 2, 16, 1, 32, { onePass: true, growing: true, rescaleAlways: true }], [1, 100, 2, 16, 1, 64, { onePass: false }],
  ];
  for (const [b, n, heads, d, rowTiles, keyBlock, pass] of cases) {
    const inner = heads * d;
    const qkvd = rand([b, n, 3 * inner], 61);
    if (pass.growing) {
      for (let i = 0; i < b * n; i++) {
        const f = 1 + (i % n) / 16;
        for (let c = inner; c < 2 * inner; c++) qkvd[i * 3 * inner + c] *= f;
      }
    }
    await tf.setBackend('cpu');
    const ref = tf.tidy(() => {
      const [q, k, v] = tf.split(tf.tensor3d(qkvd, [b, n, 3 * inner]), 3, -1) as tf.Tensor3D[];
      return plainOps.attention(q, k, v, heads);
    });
    const want = (await ref.data()) as Float32Array;
    ref.dispose();
    await tf.setBackend('webgpu');
    registerWebGPUKernels();
    const before = tf.memory().numTensors;
    const qkv = tf.tensor3d(qkvd, [b, n, 3 * inner]);
    assert.ok(tensorCoreAttentionSupported(qkv, heads, cfg));
    const out = tf.engine().runKernel(TensorCoreAttention, { qkv }, { heads, rowTiles, keyBlock, ...pass, route: { cfg, emulate: true } } as unknown as tf.NamedAttrMap) as tf.Tensor;
    const got = (await out.data()) as Float32Array;
    tf.dispose([qkv, out]);
    assert.equal(tf.memory().numTensors, before);
    const err = relMaxError(got, want);
    console.log(`tensor-core attention [${b}, ${n}], ${heads} heads of ${d}, ${rowTiles} row tile(s), ${JSON.stringify(pass)}: rel err ${err.toExponential(2)}`);
    assert.ok(err <= 4e-3, `rel err ${err}`);
  }
  await tf.setBackend('cpu');
});

test('webgpu uniform and bind-group caches: repeated dispatches reuse their uniform buffers and bind groups and compute exactly what tfjs computes without them', { skip }, async () => {
  await tf.setBackend('webgpu');
  registerWebGPUKernels();
  const xd = rand([2, 6, 5, 8, 40], 11);
  const gn = new GroupNorm(4, 40).useOps(webgpuOps());
  gn.weight.value = tf.tensor1d(rand([40], 12));
  gn.bias.value = tf.tensor1d(rand([40], 13));
  const w = tf.tensor2d(rand([40, 24], 14), [40, 24]);
  const x = tf.tensor(xd, [2, 6, 5, 8, 40]);
  const run = async () => {
    const y = tf.tidy(() => tf.add(tf.matMul(gn.forward(x, true).reshape([-1, 40]), w), 0.5));
    const d = (await y.data()) as Float32Array;
    y.dispose();
    return d;
  };
  const { uniforms: uniformCache, bindGroups: bindGroupCache } = (tf.backend() as T2VWebGPUBackend).caches;
  const was = [uniformCache.enabled, bindGroupCache.enabled];
  try {
    uniformCache.enabled = false;
    bindGroupCache.enabled = false;
    const plain = await run();
    uniformCache.enabled = true;
    const hits0 = uniformCache.hits;
    const first = await run();
    const second = await run();
    assert.ok(uniformCache.hits > hits0, 'the second run found its uniforms in the cache');
    assert.deepEqual(first, plain);
    assert.deepEqual(second, plain);
    // bind groups: the same pipelines meet the same pooled buffers run after run (once the pool has settled)
    bindGroupCache.enabled = true;
    for (let i = 0; i < 3; i++) assert.deepEqual(await run(), plain);
    const [groupHits, groupMisses] = [bindGroupCache.hits, bindGroupCache.misses];
    assert.deepEqual(await run(), plain);
    assert.ok(bindGroupCache.hits > groupHits, 'a later run found its bind groups in the cache');
    assert.equal(bindGroupCache.misses, groupMisses, 'a later run made no bind group');
  } finally {
    [uniformCache.enabled, bindGroupCache.enabled] = was;
    tf.dispose([gn.weight.value!, gn.bias.value!, w, x]);
    await tf.setBackend('cpu');
  }
});

// tfjs's pool hands out the buffer freed last; freed in another order than taken, the buffers a run gets rotate
// from one run to the next and its bind groups are new each time. Oldest-first reuse makes them recur.
test('webgpu pooled buffers are reused oldest first: a run that frees out of order meets the same buffers (and bind groups) every time', { skip }, async () => {
  await tf.setBackend('webgpu');
  const bindGroupCache = (tf.backend() as T2VWebGPUBackend).caches.bindGroups;
  const pool = (tf.backend() as T2VWebGPUBackend).pool!;
  const x = tf.tensor1d(rand([4096], 21));
  const run = async () => {
    const t = [tf.add(x, 1)];
    for (let i = 1; i < 7; i++) t.push(tf.mul(t[i - 1], 1.5));
    const y = tf.addN(t);
    for (const i of [3, 0, 5, 1, 6, 2, 4]) t[i].dispose();
    const d = (await y.data()) as Float32Array;
    y.dispose();
    return d;
  };
  const misses = async (runs: number) => {
    const m0 = bindGroupCache.misses;
    for (let i = 0; i < runs; i++) await run();
    return bindGroupCache.misses - m0;
  };
  const was = pool.oldestFirst;
  try {
    pool.oldestFirst = false;
    await misses(3);
    const lifo = await misses(4);
    pool.oldestFirst = true;
    await misses(2);
    assert.equal(await misses(4), 0, 'oldest first: later runs make no bind group');
    console.log(`bind groups made in 4 settled runs: ${lifo} last-freed first, 0 oldest first`);
    assert.ok(lifo > 0, 'the out-of-order frees defeat last-freed-first reuse (else this test shows nothing)');
  } finally {
    pool.oldestFirst = was;
    x.dispose();
    await tf.setBackend('cpu');
  }
});

test('webgpu UNet (fused kernels, packed q|k|v) matches the cpu backend on a small configuration', { skip }, async () => {
  // width >= 128: tfjs-webgpu 4.22 miscompiles 5-D binary ops with a 1-D operand of < 128 elements
  const cfg: UNetConfig = {
    inDim: 4, dim: 128, embedDim: 512, contextDim: 64, decoderContextDim: 64, outDim: 4, dimMult: [1, 2], numHeads: 2,
    headDim: 64, numResBlocks: 1, attnScales: [1, 0.5], temporalAttention: true, normGroups: 32,
  };
  const net = new UNetSD(cfg);
  const weights = new Map([...net.namedParams()].map(([k, p], i) => {
    const fanIn = p.torchShape.slice(1).reduce((a, b) => a * b, 1);
    const v = rand(p.tfShape, 100 + i).map((x) => (p.torchShape.length > 1 ? x / Math.sqrt(fanIn) : k.endsWith('.weight') ? 1 + 0.1 * x : 0.05 * x));
    return [k, { v, shape: p.tfShape }];
  }));
  const [b, f, s] = [2, 4, 8];
  const xd = rand([b, f, s, s, 4], 1);
  const cd = rand([b, 77, 64], 2);
  const run = () => {
    net.disposeWeights();
    net.loadWeights((k) => tf.tensor(weights.get(k)!.v, weights.get(k)!.shape));
    return tf.tidy(() => net.forward(tf.tensor5d(xd, [b, f, s, s, 4]), tf.tensor1d([500, 20]), tf.tensor3d(cd, [b, 77, 64])));
  };
  try {
    const { ref, gpu, kernelNames } = await moduleOnBoth(run, net);
    const err = relMaxError(gpu, ref);
    console.log(`small UNet, webgpu vs cpu: rel err ${err.toExponential(2)}`);
    assert.ok(kernelNames.includes(FusedPackedAttention), 'packed attention did not run');
    assert.ok(kernelNames.includes(FusedContextAttention), 'cross-attention on the projected context did not run');
    assert.ok(err <= 1e-4, `rel err ${err}`);
  } finally {
    net.disposeWeights();
  }
});
