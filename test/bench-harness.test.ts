import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BenchUsageError, DEFAULT_SCENARIOS, parseBenchArgs } from '../bench/harness/options.js';
import { formatStat, stat } from '../bench/harness/stats.js';
import { ResultTable } from '../bench/harness/table.js';
import { findVariants, VARIANTS } from '../bench/harness/variants.js';
import { SCENARIOS } from '../bench/scenarios/index.js';
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
  for (const bad of [['o', '--scenarios', 'nope'], ['o', '--runs', '0'], ['o', '--backend', 'gl'], ['o', '--variants', 'x'],
    ['o', '--torch-modes', 'jit'], [], ['o', '--frobnicate']]) {
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
