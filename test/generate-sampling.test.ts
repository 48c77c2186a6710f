import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { encodePng } from '../src/media/images.js';
import { runCli } from './cli-run.js';

// The sampling flags of `t2v generate` (--scheduler, --karras-sigmas, --eta, --video, --strength): bad values are
// refused in one line before any network is loaded (a folder with only t2v.json is enough).
let work: string;
let model: string;

before(async () => {
  await tf.setBackend('cpu');
  work = mkdtempSync(join(tmpdir(), 't2v-gen-sampling-'));
  model = join(work, 'model');
  mkdirSync(model);
  writeFileSync(join(model, 't2v.json'), JSON.stringify({
    format: 't2v-model', version: 1, dtype: 'float32', source: {}, scale_factor: 0.18215,
    defaults: { height: 256, width: 256, frames: 16, steps: 50, guidance: 9, fps: 8 },
    scheduler: { num_timesteps: 1000, beta_schedule: 'linear_sd', beta_start: 0.00085, beta_end: 0.012, mean_type: 'eps' },
    networks: {},
  }));
  mkdirSync(join(work, 'odd'));
  writeFileSync(join(work, 'odd', '0.png'), encodePng(new Uint8Array(12 * 20 * 3), 20, 12));
  writeFileSync(join(work, 'clip.txt'), 'x');
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

test('generate: --scheduler, --eta and --karras-sigmas are checked', async () => {
  await refused(['--scheduler', 'pndm'], /--scheduler must be one of ddim, dpm-solver\+\+, euler, unipc, got "pndm"/);
  await refused(['--eta', '-0.5'], /--eta must be >= 0, got -0.5/);
  await refused(['--eta', 'x'], /--eta must be a number, got "x"/);
  await refused(['--eta', '0.5', '--scheduler', 'unipc'], /--eta is for --scheduler ddim, not unipc/);
  await refused(['--karras-sigmas'], /--karras-sigmas is for --scheduler dpm-solver\+\+, euler or unipc, not ddim/);
});

test('generate: --video and --strength are checked before the model loads', async () => {
  await refused(['--strength', '0.5'], /--strength needs --video/);
  await refused(['--video', join(work, 'odd'), '--strength', '0'], /--strength must be in \(0, 1\], got 0/);
  await refused(['--video', join(work, 'odd'), '--strength', '1.5'], /--strength must be in \(0, 1\], got 1.5/);
  await refused(['--video', join(work, 'missing.mp4')], /video .*missing\.mp4: no such file or folder/);
  await refused(['--video', join(work, 'clip.txt')], /give an \.mp4, \.webm or \.gif file, or a folder of PNG frames/);
  await refused(['--video', join(work, 'odd')], /--video .*odd is 20x12, not a multiple of 8: give --width and --height to resize it/);
  await refused(['--video', join(work, 'odd'), '--width', '16'], /give both --width and --height/);
  await refused(['--video', join(work, 'odd'), '--frames', '2', '--width', '16', '--height', '16'], /video has 1 frames, fewer than the 2 asked for/);
  await refused(['--video', join(work, 'odd'), '--width', '16', '--height', '16', '--strength', '0.6', '--steps', '1'],
    /strength 0.6 at 1 steps runs no step/);
  // a resized video passes every check and reaches the model (which has no networks here)
  await refused(['--video', join(work, 'odd'), '--width', '16', '--height', '16', '--strength', '0.7'], /is not a complete t2v model/);
});
