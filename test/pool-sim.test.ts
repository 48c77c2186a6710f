import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { hasClipVocab, ROOT } from './helpers.js';

// bench/pool-sim.ts: the benchmark over a simulated device (no GPU, no memory): the pool's figures come out for every
// variant column, peaks ordered, and the tensor-core route is taken as on the H200.
test('bench over the simulated GPU (--tiny): a memory figure with its pool per variant, the tensor-core route', () => {
  const out = mkdtempSync(join(tmpdir(), 't2v-pool-sim-'));
  try {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'bench/pool-sim.ts', out, '--tiny', '--scenarios', 'guided-step',
      '--runs', '1', '--variants', 'default,no-pool-best-fit'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /tensor cores f16 16x16x16 -> f32/);
    const md = readFileSync(join(out, 'table.md'), 'utf8');
    assert.match(md, /\| GPU memory, peak in use \(pool: peak allocated\) \| \d+\.\d\d GiB \(pool \d+\.\d\d\) \| \d+\.\d\d GiB \(pool \d+\.\d\d\) \|/);
    const raw = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
      scenarios: Record<string, { gpu_memory?: { inUse: number; peakInUse: number; allocated: number; peakAllocated: number } }>;
    };
    for (const v of ['default', 'no-pool-best-fit']) {
      const m = raw.scenarios[`guided-step 2x32x32 ${v}`]?.gpu_memory;
      assert.ok(m, v);
      assert.ok(m.peakInUse >= m.inUse && m.peakAllocated >= m.allocated && m.peakAllocated >= m.peakInUse && m.inUse > 0, JSON.stringify(m));
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

// Weights are resident once, each in a buffer of its own size: TextToVideo.load's float16-resident weights exactly, and
// the benchmark's random weights as near as tfjs's buffer rounding allows (best fit had once put them in freed draws
// up to twice their size: 4.24 GB in use for 3.67 GB of the released model's weights).
test('simulated GPU: loaded weights take exactly their tensors\' bytes; the benchmark\'s random weights too, to 1%', { skip: !hasClipVocab && 'no CLIP vocabulary in ../shared' }, () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/sim-weights-run.ts'], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const { loaded, bench } = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<'loaded' | 'bench', { inUse: number; tensorBytes: number; half?: boolean }>;
  assert.equal(loaded.half, true, 'the tiny model was loaded float16-resident');
  assert.equal(loaded.inUse, loaded.tensorBytes);
  assert.ok(bench.tensorBytes > 0 && bench.inUse >= bench.tensorBytes && bench.inUse <= 1.01 * bench.tensorBytes, JSON.stringify(bench));
});
