import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { ROOT } from './helpers.js';
import { ffprobePath, probe } from './ffprobe.js';
import { makeTestModel } from './test-model.js';

// The README's "From code" example, run as written in a fresh process (no backend chosen beforehand) with only the
// model folder and the output path replaced: the test model, whose defaults are 4 frames of 32x32.
let work: string;
let model: string;

before(async () => {
  await tf.setBackend('cpu');
  work = mkdtempSync(join(tmpdir(), 't2v-readme-'));
  model = await makeTestModel(join(work, 'model'));
});

after(() => { if (work) rmSync(work, { recursive: true, force: true }); });

/** The ```ts block of README.md that loads a model. */
function readmeExample(): string {
  const blocks = [...readFileSync(join(ROOT, 'README.md'), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  const code = blocks.find((b) => b.includes('TextToVideo.load('));
  assert.ok(code, 'README.md has a ```ts example that calls TextToVideo.load');
  return code;
}

test('README example: runs on a CPU-only machine with backend auto, no tfjs-node banner, writes the mp4',
  { skip: ffprobePath() === null && 'needs ffprobe' }, () => {
    const code = readmeExample();
    const modelPath = /TextToVideo\.load\('([^']+)'/.exec(code)?.[1];
    const outPath = /video\.save\('([^']+)'\)/.exec(code)?.[1];
    assert.ok(modelPath && outPath, 'the example names a model folder and an output file');
    const out = join(work, outPath);
    const script = code
      .replace(`from 't2v'`, `from ${JSON.stringify(pathToFileURL(join(ROOT, 'src', 'index.ts')).href)}`)
      .replace(`'${modelPath}'`, JSON.stringify(model))
      .replace(`'${outPath}'`, JSON.stringify(out))
      + '\nconsole.log(`backend: ${t2v.backend?.name}`);\n';
    const file = join(work, 'example.mts');
    writeFileSync(file, script);
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.T2V_BACKEND;
    delete env.T2V_DEBUG;
    const r = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, encoding: 'utf8', env });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /looks like you are running TensorFlow\.js in Node\.js/);
    assert.doesNotMatch(r.stderr, /Couldn't load Vulkan/);
    const backend = /^backend: (\S+)$/m.exec(r.stdout)?.[1];
    assert.ok(backend && ['tensorflow', 'webgpu', 'wasm'].includes(backend), `auto picked ${backend}, not tfjs's cpu default`);
    const steps = r.stdout.split('\n').filter((l) => /^\d+ \d+$/.test(l));
    assert.equal(steps.length, 50, 'onStep logged each of the 50 steps');
    assert.ok(existsSync(out));
    const p = probe(out);
    assert.equal(p.codec_name, 'h264');
    assert.equal(`${p.width}x${p.height}`, '32x32');
    assert.equal(p.nb_read_frames, '4');
  });

/** Words of a shell line: plain words and "double-quoted" strings (all the README's commands use). */
const words = (line: string) => [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]);

test('README quick start: its offline commands run as written on a fresh checkout (the tiny test model)', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Quick start'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'a ```sh block in the quick start');
  const lines = block.trim().split('\n');
  assert.equal(lines.length, 2);
  const dir = join(work, 'quick');
  for (const line of lines) {
    const args = words(line);
    assert.deepEqual(args.slice(0, 2), ['npx', 't2v']);
    // the same command with its outputs in a scratch folder instead of weights/ and the current directory
    const argv = args.slice(2).map((a) => (a === 'weights/tiny' ? join(dir, 'tiny') : a === 'tiny.gif' ? join(dir, 'tiny.gif') : a));
    const env: NodeJS.ProcessEnv = { ...process.env, HF_ENDPOINT: 'http://127.0.0.1:9' };   // offline: nothing may be fetched
    delete env.T2V_BACKEND;
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bin', 't2v-dev.ts'), ...argv], { cwd: ROOT, encoding: 'utf8', env });
    assert.equal(r.status, 0, `${line}\n${r.stderr}`);
  }
  assert.ok(existsSync(join(dir, 'tiny.gif')));
  assert.equal(readFileSync(join(dir, 'tiny.gif')).subarray(0, 6).toString('latin1'), 'GIF89a');
});
