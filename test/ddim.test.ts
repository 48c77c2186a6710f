import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { readNpy } from '../src/io/npy.js';
import { ddimTimesteps, diffusionTables } from '../src/pipeline/diffusion.js';
import { TextToVideo } from '../src/pipeline/text2video.js';
import { FIXTURES, relMaxError } from './helpers.js';
import { standIns } from './stand-ins.js';

const DIR = join(FIXTURES, 'e2e', 'ddim');

before(async () => {
  await tf.setBackend('cpu');
});

test('ddim: alphas_cumprod equals upstream float64 table', () => {
  const ref = readNpy(join(DIR, 'alphas_cumprod.npy'));
  assert.equal(ref.dtype, 'float64');
  const ours = diffusionTables().alphasCumprod;
  let worst = 0;
  for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i] - (ref.data as Float64Array)[i]) / (ref.data as Float64Array)[i]);
  assert.ok(worst < 1e-14, `relative error ${worst}`);
});

test('ddim: timesteps as upstream (reversed 1 + arange, clamped; an extra one when steps do not divide 1000)', () => {
  const t50 = ddimTimesteps(50);
  assert.equal(t50.length, 50);
  assert.equal(t50[0], 981);
  assert.equal(t50[49], 1);
  assert.deepEqual(ddimTimesteps(3), [999, 667, 334, 1]);
  assert.deepEqual(ddimTimesteps(1), [1]);
  assert.equal(ddimTimesteps(1000).length, 1000);
  assert.equal(ddimTimesteps(1000)[0], 999);
  assert.throws(() => ddimTimesteps(0), /steps must be an integer in 1..1000/);
  assert.throws(() => ddimTimesteps(1001), /steps must be an integer in 1..1000/);
});

test('ddim: sampling loop with guidance matches upstream ddim_sample_loop (stand-in model)', async () => {
  const cases = JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as { runs: { steps: number; guidance: number }[] };
  const noise = readNpy(join(DIR, 'noise.npy'));
  const [, , frames, h, w] = noise.shape;
  const parts = standIns();
  const t2v = new TextToVideo(parts);
  for (const run of cases.runs) {
    const before = parts.calls.unet;
    const r = await t2v.generate({
      prompt: 'x', steps: run.steps, guidance: run.guidance, frames, height: h * 8, width: w * 8, noise, batchGuidance: false,
    });
    const ref = readNpy(join(DIR, `final_${run.steps}.npy`));
    assert.deepEqual(r.latentsShape, ref.shape);
    const err = relMaxError(r.latents, ref.data as Float32Array);
    assert.ok(err <= 1e-6, `steps ${run.steps}: relMaxError ${err}`);
    assert.equal(parts.calls.unet - before, 2 * ddimTimesteps(run.steps).length, 'two model calls per timestep');
  }
});

test('ddim: batched guidance (b=2) gives the same latents as two calls on the stand-in', async () => {
  const noise = readNpy(join(DIR, 'noise.npy'));
  const t2v = new TextToVideo(standIns());
  const opts = { prompt: 'x', steps: 7, guidance: 4.5, frames: 2, height: 24, width: 40, noise };
  const a = await t2v.generate({ ...opts, batchGuidance: false });
  const b = await t2v.generate({ ...opts, batchGuidance: true });
  assert.equal(relMaxError(b.latents, a.latents), 0);
});
