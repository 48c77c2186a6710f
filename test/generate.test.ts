import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { writeNpy } from '../src/io/npy.js';
import { FIXTURES, ROOT } from './helpers.js';
import { runCli } from './cli-run.js';

// Bad input is refused before any network is loaded: a folder with only t2v.json is enough here.
let work: string;
let model: string;

before(async () => {
  await tf.setBackend('cpu');
  work = mkdtempSync(join(tmpdir(), 't2v-generate-'));
  model = join(work, 'model');
  mkdirSync(model);
  writeFileSync(join(model, 't2v.json'), JSON.stringify({
    format: 't2v-model', version: 1, dtype: 'float32', source: {}, scale_factor: 0.18215,
    defaults: { height: 256, width: 256, frames: 16, steps: 50, guidance: 9, fps: 8 },
    scheduler: { num_timesteps: 1000, beta_schedule: 'linear_sd', beta_start: 0.00085, beta_end: 0.012, mean_type: 'eps' },
    networks: {},
  }));
  writeNpy(join(work, 'noise.npy'), { dtype: 'float32', shape: [1, 4, 2, 4, 4], data: new Float32Array(128) });
  writeNpy(join(work, 'noise64.npy'), { dtype: 'float64', shape: [1, 4, 2, 4, 4], data: new Float64Array(128) });
});

after(() => rmSync(work, { recursive: true, force: true }));

async function refused(args: string[], pattern: RegExp): Promise<void> {
  const before = readdirSync(work).sort();
  const r = await runCli(['generate', 'a prompt', '--model', model, '--out', join(work, 'v.gif'), ...args]);
  assert.equal(r.code, 1, `expected exit 1: ${r.stdout}${r.stderr}`);
  const lines = r.stderr.split('\n');
  assert.equal(lines.length, 1, `one line expected: ${r.stderr}`);
  assert.match(lines[0], /^t2v: /);
  assert.match(lines[0], pattern);
  assert.deepEqual(readdirSync(work).sort(), before, 'nothing written');
}

test('generate: height or width not a multiple of 8', async () => {
  await refused(['--height', '30'], /height must be a positive multiple of 8, got 30/);
  await refused(['--width', '0'], /width must be a positive multiple of 8, got 0/);
  await refused(['--width', 'wide'], /--width must be an integer, got "wide"/);
});

test('generate: frames < 1, steps outside 1..1000, bad guidance, fps, decode chunk', async () => {
  await refused(['--frames', '0'], /frames must be an integer >= 1, got 0/);
  await refused(['--steps', '0'], /steps must be an integer in 1..1000, got 0/);
  await refused(['--steps', '1001'], /steps must be an integer in 1..1000, got 1001/);
  await refused(['--guidance', 'x'], /--guidance must be a number/);
  await refused(['--fps', '0'], /fps must be a positive number/);
  await refused(['--decode-chunk', '0'], /decode chunk must be an integer >= 1/);
  await refused(['--seed', '-1'], /--seed must be a non-negative integer/);
});

test('generate: noise file of the wrong shape or dtype, or not a .npy', async () => {
  const base = ['--frames', '2', '--height', '32', '--width', '32'];
  await refused([...base, '--width', '40', '--noise', join(work, 'noise.npy')], /shape \[1,4,2,4,4\], expected \[1,4,2,4,5\]/);
  await refused(['--frames', '3', '--height', '32', '--width', '32', '--noise', join(work, 'noise.npy')], /expected \[1,4,3,4,4\]/);
  await refused([...base, '--noise', join(work, 'noise64.npy')], /dtype float64, expected float32/);
  await refused([...base, '--noise', join(work, 'missing.npy')], /--noise .*missing\.npy/);
  await refused([...base, '--noise', join(work, 'noise.npy'), '--seed', '3'], /give --seed or --noise, not both/);
});

test('generate: a folder that is not a converted model', async () => {
  const r = await runCli(['generate', 'p', '--model', join(FIXTURES, 'e2e', 'tiny'), '--out', join(work, 'v.gif')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^t2v: .*is not a converted t2v model .*t2v convert/);
  const r2 = await runCli(['generate', 'p', '--model', join(work, 'nowhere'), '--out', join(work, 'v.gif')]);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /not a converted t2v model \(no such folder\)/);
});

test('generate: output that cannot be written, or of unknown kind', async () => {
  await refused(['--out', join(work, 'no', 'such', 'dir', 'v.mp4')], /cannot write .*v\.mp4: directory .* does not exist/);
  await refused(['--out', join(work, 'v.avi')], /cannot tell the output format .*\.avi/);
  await refused(['--save-latents', join(work, 'no', 'l.npy')], /cannot write --save-latents/);
  await refused(['--contact-sheet', join(work, 'sheet.jpg')], /--contact-sheet must name a \.png/);
});

test('generate: .mp4 with an unusable FFMPEG_PATH is refused before sampling', async () => {
  const saved = process.env.FFMPEG_PATH;
  process.env.FFMPEG_PATH = join(work, 'no-ffmpeg');
  try {
    await refused(['--out', join(work, 'v.mp4')], /FFMPEG_PATH=.*no-ffmpeg is not an executable file/);
  } finally {
    if (saved === undefined) delete process.env.FFMPEG_PATH;
    else process.env.FFMPEG_PATH = saved;
  }
});

test('generate: a model folder without networks fails at load with a clear line', async () => {
  const r = await runCli(['generate', 'p', '--model', model, '--out', join(work, 'v.gif'), '--backend', 'cpu', '--steps', '1', '--frames', '1', '--height', '8', '--width', '8']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^t2v: .*not a complete t2v model: it has no text_encoder\/.*t2v convert/);
  assert.deepEqual(readdirSync(work).filter((f) => f.startsWith('v.') || f.startsWith('.v.')), []);
});

test('generate: the t2v process exits 1 with one stderr line', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bin', 't2v-dev.ts'), 'generate', 'p', '--model', model,
    '--height', '30', '--out', join(work, 'v.gif')], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.trim(), 't2v: height must be a positive multiple of 8, got 30');
});
