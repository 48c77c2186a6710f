import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

function t2v(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bin', 't2v-dev.ts'), ...args],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, T2V_BACKEND: 'cpu' } });
}

test('usage errors are one line `t2v: ...` and exit 1; --help exits 0', () => {
  const cases: [string[], RegExp][] = [
    [['convert', '/tmp/only-source'], /^t2v: missing required argument 'out'$/],
    [['frobnicate'], /^t2v: unknown command 'frobnicate'$/],
    [['convert', 'a', 'b', '--bogus'], /^t2v: unknown option '--bogus'$/],
    [['convert', 'a', 'b', '--dtype', 'bf16'], /^t2v: unknown --dtype bf16; valid: float16, float32$/],
    [['convert', 'a', 'b', '--backend', 'gpu'], /^t2v: unknown backend "gpu"; valid: auto, tensorflow, webgpu, wasm, cpu$/],
  ];
  for (const [args, pattern] of cases) {
    const r = t2v(args);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '');
    assert.match(r.stderr.trimEnd(), pattern);
  }
  const help = t2v(['convert', '--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Usage: t2v convert \[options\] <source> <out>/);
  assert.match(help.stdout, /--dtype <dtype>/);
  assert.match(help.stdout, /--tokenizer <path>/);
  assert.match(help.stdout, /--backend <name>/);
});
