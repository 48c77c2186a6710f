import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import yargs, { type CommandModule } from 'yargs';
import { command as generate } from '../src/cli/generate.js';
import { PARSER } from '../src/cli/main.js';
import { ROOT } from './helpers.js';

function t2v(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bin', 't2v-dev.ts'), ...args],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, T2V_BACKEND: 'cpu' } });
}

test('usage errors are one line `t2v: ...` and exit 1; --help exits 0', () => {
  const cases: [string[], RegExp][] = [
    [['convert', '/tmp/only-source'], /^t2v: missing required argument 'out'$/],
    [['frobnicate'], /^t2v: unknown command 'frobnicate' \(commands: info, convert, generate, download, verify, worker, enqueue, serve, serve-web\)$/],
    [['convert', 'a', 'b', '--bogus'], /^t2v: unknown option '--bogus'$/],
    [['convert', 'a', 'b', 'c'], /^t2v: unexpected argument 'c'$/],
    [['generate', 'p', '--steps'], /^t2v: option '--steps' needs a value$/],
    [['generate', '--steps', '2'], /^t2v: missing required argument 'prompt'$/],
    [[], /^t2v: no command given; run t2v --help$/],
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
  assert.match(help.stdout, /^t2v convert <source> <out>/);
  assert.match(help.stdout, /--dtype +weight storage: float16\|float32/);
  assert.match(help.stdout, /--tokenizer /);
  assert.match(help.stdout, /--backend /);
  const top = t2v(['--help']);
  assert.equal(top.status, 0);
  for (const c of ['info', 'convert <source> <out>', 'generate <prompt>', 'download <hub-id>']) assert.match(top.stdout, new RegExp(`t2v ${c} `));
});

test('--version prints the version of package.json', () => {
  const r = t2v(['--version']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
});

test('flags reach the command as commander gave them: --no-* negations, the last of a repeated option, string values', async () => {
  let seen: Record<string, unknown> = {};
  // the real generate module, its handler swapped for a probe
  const spy: CommandModule<object, Record<string, unknown>> = { ...(generate as CommandModule<object, Record<string, unknown>>), handler: (a) => { seen = a; } };
  const run = (args: string[]) => yargs().command(spy).strict().parserConfiguration(PARSER).fail((m, e) => { throw e ?? new Error(m); }).parseAsync(args);
  await run(['generate', '0123', '--model', 'm', '--steps', '5', '--steps', '7', '--no-batch-guidance', '--no-stream-weights', '--no-progress']);
  assert.equal(seen.prompt, '0123');
  assert.equal(seen.steps, '7');
  assert.equal(seen.batchGuidance, false);
  assert.equal(seen.streamWeights, false);
  assert.equal(seen.progress, false);
  await run(['generate', 'p', '--model', 'm', '--batch-guidance', '--negative', '']);
  assert.equal(seen.batchGuidance, true);
  assert.equal(seen.streamWeights, undefined, 'unset: the backend decides');
  assert.equal(seen.progress, true);
  assert.equal(seen.negative, '');
});
