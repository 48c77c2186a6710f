import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { CATEGORY, classify, summarize } from '../bench/harness/kernel-categories.js';
import { BenchUsageError, DEFAULT_SCENARIOS, parseBenchArgs } from '../bench/harness/options.js';
import { formatStat, stat } from '../bench/harness/stats.js';
import { ResultTable } from '../bench/harness/table.js';
import { timedKernels, type TimedKernel } from '../bench/harness/timing.js';
import { findVariants, VARIANTS } from '../bench/harness/variants.js';
import { SCENARIOS } from '../bench/scenarios/index.js';
import { renderCall, type CallProfile } from '../bench/scenarios/profile.js';
import { torchColumns } from '../bench/scenarios/torch.js';
import { resolveWebGPUOptions } from '../src/backends/webgpu/options.js';
import { ROOT } from './helpers.js';

const names = SCENARIOS.map((s) => s.name);

test('bench stat: median of an even and an odd count, range, samples kept in order', () => {
  assert.deepEqual(stat([3, 1, 2]), { median: 2, min: 1, max: 3, runs: [3, 1, 2] });
  assert.equal(stat([4, 1, 3, 2]).median, 2.5);
  assert.equal(formatStat(stat([5370, 5260, 5410]), 's', 2, 1e-3), '5.37 s (5.26-5.41)');
  assert.equal(formatStat(stat([62]), 'ms', 1), '62.0 ms');
  assert.throws(() => stat([]));
});

test('bench table: one section per shape, figures, "not run", failures and skips numbered below', () => {
  const t = new ResultTable(50, 9);
  const sh = { frames: 16, height: 256, width: 256 };
  t.expect(sh, ['unet-call', 'guided-step', 'video', 'memory'], 't2v');
  t.expect(sh, ['unet-call', 'guided-step', 'memory'], 'eager');
  t.expect(sh, ['unet-call'], 'graph');
  t.set(sh, 'unet-call', 't2v', { stat: stat([62, 61, 63]), unit: 'ms' });
  t.set(sh, 'video', 't2v', { stat: stat([5370]), unit: 's' });
  t.set(sh, 'memory', 't2v', { bytes: 5.1 * 2 ** 30, poolBytes: 6 * 2 ** 30 });
  t.fail(sh, ['unet-call', 'guided-step', 'memory'], 'eager', 'PyTorch side: no torch');
  t.fail(sh, ['unet-call'], 't2v', 'never shown: the cell has a figure');
  t.set(sh, 'unet-call', 'graph', { skipped: 'graph: CUDA graphs need a CUDA device' });
  t.renameColumn('eager', 'diffusers eager');
  const md = t.render().split('\n');
  assert.equal(md[0], '### 16 frames, 256x256 (latents 4x16x32x32)');
  assert.equal(md[2], '| | t2v | diffusers eager | graph |');
  assert.equal(md[4], '| one UNet call, batch 1 | 62.0 ms (61.0-63.0) | failed [1] | skipped [2] |');
  assert.match(md[5], /^\| guided step .* \| not run \| failed \[1\] \| not run \|$/);
  assert.match(md[6], /^\| 50-step video, DDIM, guidance 9 .*\| 5\.37 s \| not run \| not run \|$/);
  assert.equal(md[7], '| GPU memory, peak in use (pool: peak allocated) | 5.10 GiB (pool 6.00) | failed [1] | not run |');
  assert.ok(md.includes('[1] PyTorch side: no torch  '));
  assert.ok(md.includes('[2] graph: CUDA graphs need a CUDA device  '));
  assert.ok(!md.join('\n').includes('never shown'));
});

test('bench options: defaults, paths from the caller\'s folder, one-line errors', () => {
  const o = parseBenchArgs(['out'], '/work/here', names);
  assert.equal(o.out, '/work/here/out');
  assert.deepEqual(o.scenarios, DEFAULT_SCENARIOS);
  assert.deepEqual([o.runs, o.videoRuns, o.steps, o.guidance, o.backend], [10, 3, 50, 9, 'webgpu']);
  assert.deepEqual(o.torchModes, ['eager', 'graph', 'compile']);
  const p = parseBenchArgs(['/abs', '--scenarios', 'torch,zeroscope-576', '--runs', '3', '--tiny', '--backend', 'cpu',
    '--torch-args=--device cpu --dtype fp32', '--diffusers', 'd'], '/o', names);
  assert.equal(p.out, '/abs');
  assert.deepEqual(p.scenarios, ['torch', 'zeroscope-576']);
  assert.deepEqual(p.torchArgs, ['--device', 'cpu', '--dtype', 'fp32']);
  assert.equal(p.diffusers, '/o/d');
  const q = parseBenchArgs(['o', '--parity-backends', 'webgpu,webgpu-tc', '--profile-shapes', '16x256x256,24x576x1024'], '/o', names);
  assert.deepEqual(q.parityBackends, ['webgpu', 'webgpu-tc']);
  assert.deepEqual(q.profileShapes, [{ frames: 16, height: 256, width: 256 }, { frames: 24, height: 576, width: 1024 }]);
  assert.deepEqual(o.parityBackends, ['cpu', 'wasm', 'webgpu', 'webgpu-tc']);
  for (const bad of [['o', '--scenarios', 'nope'], ['o', '--runs', '0'], ['o', '--backend', 'gl'], ['o', '--variants', 'x'],
    ['o', '--torch-modes', 'jit'], [], ['o', '--frobnicate'], ['o', '--parity-backends', 'gl'], ['o', '--profile-shapes', '16x250x256']]) {
    assert.throws(() => parseBenchArgs(bad, '/o', names), (e: Error) => e instanceof BenchUsageError && !e.message.includes('\n'), bad.join(' '));
  }
});

test('bench variants: each a valid Partial<WebGPUOptions>, names unique; PyTorch columns follow the dtype', () => {
  assert.equal(new Set(VARIANTS.map((v) => v.name)).size, VARIANTS.length);
  for (const v of VARIANTS) assert.doesNotThrow(() => resolveWebGPUOptions(v.options, () => undefined), v.name);
  assert.equal(findVariants(['default'])[0].label, 't2v (webgpu, tensor cores)');
  assert.deepEqual(torchColumns(['eager', 'graph', 'compile'], []).map((c) => c.label),
    ['diffusers fp16 (SDPA) eager', 'diffusers fp16, CUDA graph replay', 'torch.compile (reduce-overhead)']);
  assert.equal(torchColumns(['eager'], ['--dtype', 'fp32'])[0].label, 'diffusers fp32 (SDPA) eager');
});

test('bench harness end to end on cpu (--tiny): the table is written, a failing scenario is one line and the rest run', () => {
  const out = mkdtempSync(join(tmpdir(), 't2v-bench-'));
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/gpu.ts', 'bench', out, '--backend', 'cpu', '--tiny',
      '--scenarios', 'guided-step,torch', '--runs', '1', '--python', join(out, 'no-python'), '--diffusers', out],
    { cwd: ROOT, encoding: 'utf8', timeout: 150_000 });
    assert.equal(r.status, 1, r.stderr);
    const failed = r.stdout.split('\n').filter((l) => l.includes('failed'));
    assert.deepEqual(failed.filter((l) => !l.startsWith('|') && !l.startsWith('[')).length, 1, r.stdout);
    assert.match(failed[0], /^torch failed: .*could not start .*no-python/);
    const md = readFileSync(join(out, 'table.md'), 'utf8');
    assert.match(md, /\| guided step [^|]* \| \d+\.\d ms \| failed \[1\] \| failed \[1\] \| failed \[1\] \|\n/);
    assert.match(md, /\| GPU memory, peak in use \(pool: peak allocated\) \| n\/a \(cpu\) \| failed \[1\]/);
    const raw = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { scenarios: Record<string, { 'guided-step'?: { runs: number[] } }> };
    assert.equal(raw.scenarios['guided-step 2x32x32 default']['guided-step']?.runs.length, 1);
    assert.ok(!readdirSync(out).some((f) => f.endsWith('.tmp')));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

// hand-made records of the kernels a UNet call runs on webgpu (shapes of the released model at 16x256x256)
const kernel = (name: string, inputShapes: (number[] | null)[], out: number[], ms: number, programs?: { name: string; ms: number }[]): TimedKernel =>
  ({ name, inputShapes: inputShapes as number[][], outputShapes: [out], ms, ...(programs ? { programs } : {}) });

test('bench profile: kernels are categorized from their names and shapes, with their work', () => {
  const one = (k: TimedKernel) => {
    const parts = classify(k);
    assert.equal(parts.length, 1, k.name);
    return parts[0];
  };
  const conv3 = one(kernel('T2VTensorCoreConv', [[16, 32, 32, 320], [3, 3, 320, 320], [320], [16, 32, 32, 320]], [16, 32, 32, 320], 1));
  assert.deepEqual(conv3, { category: CATEGORY.conv3x3, ms: 1, flop: 2 * 16 * 32 * 32 * 9 * 320 * 320 });
  assert.equal(one(kernel('FusedConv2D', [[16, 32, 32, 320], [3, 3, 320, 320], [320], null], [16, 32, 32, 320], 1)).category, CATEGORY.conv3x3);
  const temporal = one(kernel('T2VTensorCoreConv', [[1, 16, 1024, 320], [3, 1, 320, 320], [320]], [1, 16, 1024, 320], 1));
  assert.deepEqual(temporal, { category: CATEGORY.temporal, ms: 1, flop: 2 * 16 * 1024 * 3 * 320 * 320 });
  // float16-resident filters arrive as their packed halves
  const halfTemporal = one(kernel('T2VTensorCoreConv', [[1, 16, 1024, 320], [3 * 320 * 320 / 2], [320]], [1, 16, 1024, 320], 1));
  assert.deepEqual(halfTemporal, temporal);
  assert.deepEqual(one(kernel('T2VTensorCoreConv', [[16, 32, 32, 320], [9 * 320 * 320 / 2], [320]], [16, 32, 32, 320], 1)), conv3);
  assert.equal(one(kernel('T2VTensorCoreConv', [[16, 32, 32, 320], [3, 3, 320, 320], [320]], [16, 16, 16, 320], 1)).category, CATEGORY.stride2);
  // to_out: bias [n] and a residual [m, n]; the packed to_q|to_k|to_v: neither; ff.net.2 with only a residual
  const out = one(kernel('T2VTensorCoreGemm', [[16384, 320], [320, 320], [320], [16384, 320]], [16384, 320], 2));
  assert.deepEqual(out, { category: CATEGORY.linearBias, ms: 2, flop: 2 * 16384 * 320 * 320 });
  assert.equal(one(kernel('T2VTensorCoreGemm', [[16384, 320], [320, 960]], [16384, 960], 1)).category, CATEGORY.linear);
  assert.equal(one(kernel('T2VTensorCoreGemm', [[16384, 1280], [1280, 320], [16384, 320]], [16384, 320], 1)).category, CATEGORY.linear);
  assert.equal(one(kernel('T2VTensorCoreGemm', [[1, 320], [320, 1280], [1280]], [1, 1280], 1)).category, CATEGORY.gemv);
  assert.equal(one(kernel('_FusedMatMul', [[1, 16384, 320], [1, 320, 320], [320], null], [1, 16384, 320], 1)).category, CATEGORY.linearBias);
  // tfjs's matmuls: 2-D is a Linear, batched (q k^T on tfjs ops, k transposed) attention
  assert.equal(one(kernel('BatchMatMul', [[77, 1024], [1024, 320]], [77, 320], 1)).category, CATEGORY.linear);
  assert.deepEqual(one(kernel('BatchMatMul', [[80, 1024, 64], [80, 1024, 64]], [80, 1024, 1024], 1)),
    { category: CATEGORY.attention, ms: 1, flop: 2 * 80 * 1024 * 1024 * 64 });
  // packed self-attention: [B, N, 3C] is spatial (pixels of each frame), [B, N, S, 3C] temporal (frames of each pixel)
  assert.deepEqual(one(kernel('T2VFusedPackedAttention', [[16, 1024, 960]], [16, 1024, 320], 3)),
    { category: CATEGORY.spatial, ms: 3, flop: 4 * 16 * 1024 * 1024 * 320 });
  assert.deepEqual(one(kernel('T2VTensorCoreAttention', [[16, 1024, 960]], [16, 1024, 320], 3)),
    { category: CATEGORY.spatial, ms: 3, flop: 4 * 16 * 1024 * 1024 * 320 });
  assert.deepEqual(one(kernel('T2VFusedPackedAttention', [[1, 16, 1024, 960]], [1, 16, 1024, 320], 1)),
    { category: CATEGORY.temporalAttn, ms: 1, flop: 4 * 1024 * 16 * 16 * 320 });
  assert.deepEqual(one(kernel('T2VFusedContextAttention', [[1, 16384, 320], [77, 10240]], [1, 16384, 320], 1)),
    { category: CATEGORY.cross, ms: 1, flop: 4 * 16384 * 77 * 320 });
  assert.equal(one(kernel('T2VFusedGroupNorm', [[16, 32, 32, 320], [320], [320]], [16, 32, 32, 320], 1, [{ name: 'Object', ms: 0.4 }, { name: 'Object', ms: 0.6 }])).category, CATEGORY.groupNorm);
  assert.equal(one(kernel('Add', [[16, 32, 32, 320], [16, 32, 32, 320]], [16, 32, 32, 320], 1, [{ name: 'BinaryOpProgram', ms: 1 }])).category, 'tfjs Add');
  assert.equal(one(kernel('Reshape', [[16, 32, 32, 320]], [16, 1024, 320], 0, [])).category, CATEGORY.free);
  // a split-K GEMM on padded rows: the GEMM, its sum and the Slice, each its own category
  assert.deepEqual(classify(kernel('T2VTensorCoreGemm', [[100, 1280], [1280, 1280], [1280]], [100, 1280], 0.7,
    [{ name: 'Object', ms: 0.5 }, { name: 'Object', ms: 0.15 }, { name: 'SliceProgram', ms: 0.05 }])), [
    { category: CATEGORY.linearBias, ms: 0.5, flop: 2 * 100 * 1280 * 1280 },
    { category: CATEGORY.splitK, ms: 0.15, flop: 0 }, { category: CATEGORY.padding, ms: 0.05, flop: 0 }]);
  // the bundle's name for tfjs's SliceProgram (esbuild renames a taken class name)
  assert.deepEqual(classify(kernel('T2VTensorCoreGemm', [[100, 320], [320, 2560], [2560]], [100, 2560], 0.3,
    [{ name: 'Object', ms: 0.2 }, { name: 'SliceProgram2', ms: 0.1 }]))[1], { category: CATEGORY.padding, ms: 0.1, flop: 0 });
});

test('bench profile: categories add up to the total, rates from the shapes, and no timestamps is one line', () => {
  const ks = [
    kernel('T2VTensorCoreConv', [[16, 32, 32, 320], [3, 3, 320, 320], [320]], [16, 32, 32, 320], 0.1, [{ name: 'Object', ms: 0.1 }]),
    kernel('T2VTensorCoreConv', [[16, 32, 32, 320], [3, 3, 320, 320], [320]], [16, 32, 32, 320], 0.2, [{ name: 'Object', ms: 0.2 }]),
    kernel('T2VTensorCoreGemm', [[128, 1280], [1280, 1280]], [128, 1280], 0.04, [{ name: 'Object', ms: 0.03 }, { name: 'Object', ms: 0.01 }]),
    kernel('Add', [[4], [4]], [4], 0.01, [{ name: 'BinaryOpProgram', ms: 0.01 }]),
    kernel('Reshape', [[4]], [2, 2], 0, []),
  ];
  const s = summarize(ks, 2);
  assert.equal(s.kernels, 5);
  assert.equal(s.dispatches, 5);
  assert.ok(Math.abs(s.totalMs - 0.35) < 1e-12);
  assert.ok(Math.abs(s.categories.reduce((a, c) => a + c.ms, 0) - s.totalMs) < 1e-12);
  assert.deepEqual(s.categories.map((c) => [c.category, c.calls]),
    [[CATEGORY.conv3x3, 2], [CATEGORY.linear, 1], [CATEGORY.splitK, 1], [CATEGORY.free, 1], ['tfjs Add', 1]]);
  const conv = s.categories[0];
  assert.ok(Math.abs(conv.tflops! - 2 * 2 * 16 * 32 * 32 * 9 * 320 * 320 / 0.3e-3 / 1e12) < 1e-6);
  assert.ok(Math.abs(s.categories[1].tflops! - 2 * 128 * 1280 * 1280 / 0.03e-3 / 1e12) < 1e-6, 'a split GEMM is rated on its own pass');
  assert.equal(s.categories[2].tflops, null);
  assert.equal(s.top.length, 2);
  assert.deepEqual([s.top[0].name, s.top[0].calls, s.top[0].msEach], ['T2VTensorCoreConv', 2, 0.15000000000000002]);
  assert.equal(s.top[1].programs, 'Object+Object');
  const p = { ...s, timing: 'gpu' as const, wall: stat([0.5]), dispatchReport: null, untimedOwn: 0 };
  const md = renderCall('one UNet call, batch 1', p);
  assert.match(md, /\| 3x3 convolutions \| 2 \| 0\.30 \| 85\.7% \| \d+\.\d \|/);
  assert.match(md, /\| total \| 6 \| 0\.35 \| 100% \| \|/);
  const none = renderCall('one UNet call, batch 1', { ...p, timing: 'none' }).split('\n');
  assert.equal(none.filter((l) => /timestamp/.test(l)).length, 1);
  assert.ok(!none.some((l) => /\| ms \|/.test(l) || /\b0\.00\b/.test(l)), 'no table of zeros');
});

test('bench profile: tf.profile\'s scopes of custom-gradient ops are not kernels (their kernels are counted once)', async () => {
  await tf.setBackend('cpu');
  const x = tf.ones([1, 8, 8, 4]) as tf.Tensor4D;
  const f = tf.ones([3, 3, 4, 8]) as tf.Tensor4D;
  const b = tf.ones([8]) as tf.Tensor1D;
  const ks = await timedKernels(() => tf.fused.conv2d({ x, filter: f, bias: b, strides: 1, pad: 'same' }));
  tf.dispose([x, f, b]);
  assert.deepEqual(ks.map((k) => k.name), ['FusedConv2D']);
  assert.deepEqual(ks[0].outputShapes, [[1, 8, 8, 8]]);
  assert.equal(ks[0].programs, undefined, 'no per-dispatch breakdown on cpu');
});

test('bench profile scenario on cpu (--tiny): both calls profiled, categories sum to the total, CPU times said so', () => {
  const out = mkdtempSync(join(tmpdir(), 't2v-profile-'));
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/gpu.ts', 'bench', out, '--backend', 'cpu', '--tiny',
      '--scenarios', 'profile'], { cwd: ROOT, encoding: 'utf8', timeout: 150_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /profile unet-call 2x32x32 \(default\): [\d.]+ ms of kernels vs [\d.]+ ms wall \(CPU times\)/);
    assert.match(r.stdout, /tensors left 0/);
    const raw = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
      scenarios: { profile: { variants: Record<string, { calls: Record<string, CallProfile> }> } } };
    for (const row of ['unet-call', 'guided-step']) {
      const p = raw.scenarios.profile.variants['2x32x32 default'].calls[row];
      assert.equal(p.timing, 'cpu');
      assert.ok(p.totalMs > 0 && p.kernels > 100, row);
      assert.ok(Math.abs(p.categories.reduce((a, c) => a + c.ms, 0) - p.totalMs) < 1e-6 * p.totalMs, row);
      assert.ok(p.categories.some((c) => c.category === CATEGORY.conv3x3 && c.tflops! > 0), row);
    }
    const md = readFileSync(join(out, 'profile.md'), 'utf8');
    assert.equal(md.match(/No GPU timestamps on this backend/g)?.length, 2);
    assert.match(md, /### 2x32x32 \(latents 4x2x4x4\), default: t2v \(cpu\)/);
    assert.ok(!readdirSync(out).some((f) => f.endsWith('.tmp')));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
