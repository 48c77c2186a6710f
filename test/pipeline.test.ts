import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { TextToVideo } from '../src/pipeline/text2video.js';
import { FIXTURES } from './helpers.js';
import { standIns } from './stand-ins.js';

// The pipeline's behaviour around the numbers (seeds, callbacks, cancellation, chunking, memory), on stand-in
// networks so it runs in moments; parity with upstream is in ddim.test.ts and e2e.test.ts.

before(async () => {
  await tf.setBackend('cpu');
});

const small = { prompt: 'a cat', steps: 4, guidance: 9, frames: 3, height: 16, width: 24 };

test('pipeline: a seed gives the same video every time; another seed another one', async () => {
  const t2v = new TextToVideo(standIns());
  const a = await t2v.generate({ ...small, seed: 5 });
  const b = await t2v.generate({ ...small, seed: 5 });
  const c = await t2v.generate({ ...small, seed: 6 });
  assert.equal(a.seed, 5);
  assert.deepEqual(a.latents, b.latents);
  assert.deepEqual(a.frames, b.frames);
  assert.notDeepEqual(a.latents, c.latents);
  const r = await t2v.generate(small);
  assert.ok(Number.isInteger(r.seed), 'a random seed is reported');
});

test('pipeline: text features of recent prompts are reused, with the same result', async () => {
  const parts = standIns();
  const t2v = new TextToVideo(parts);
  const base = tf.memory().numTensors;
  const a = await t2v.generate({ ...small, seed: 4 });
  assert.equal(parts.calls.text, 2);
  const b = await t2v.generate({ ...small, seed: 4 });
  assert.equal(parts.calls.text, 2, 'prompt and empty text both cached');
  assert.deepEqual(a.latents, b.latents);
  await t2v.generate({ ...small, seed: 4, negativePrompt: 'grey' });
  assert.equal(parts.calls.text, 3);
  assert.equal(tf.memory().numTensors, base, 'the cache holds no tensors');
});

test('pipeline: result layout, defaults from the components, timings', async () => {
  const t2v = new TextToVideo({ ...standIns(), defaults: { frames: 2, height: 8, width: 16, steps: 2, fps: 12 } });
  const r = await t2v.generate({ prompt: 'x', seed: 1 });
  assert.deepEqual(r.latentsShape, [1, 4, 2, 1, 2]);
  assert.equal(r.latents.length, 16);
  assert.equal(r.frames.length, 2 * 8 * 16 * 3);
  assert.equal(r.numFrames, 2);
  assert.equal(r.fps, 12);
  assert.deepEqual(r.timesteps, [501, 1]);
  for (const k of ['text', 'denoise', 'decode', 'total'] as const) assert.ok(r.timings[k] >= 0);
  assert.ok(r.timings.total >= r.timings.denoise);
});

test('pipeline: decode chunk size does not change the frames; the VAE is called once per chunk', async () => {
  const parts = standIns();
  const t2v = new TextToVideo(parts);
  const frames = 5;
  const one = await t2v.generate({ ...small, frames, seed: 3, decodeChunk: 1 });
  const calls = parts.calls.vae;
  const two = await t2v.generate({ ...small, frames, seed: 3, decodeChunk: 2 });
  assert.equal(parts.calls.vae - calls, 3);
  const all = await t2v.generate({ ...small, frames, seed: 3, decodeChunk: 16 });
  assert.deepEqual(one.frames, two.frames);
  assert.deepEqual(one.frames, all.frames);
});

test('pipeline: onStep gets every step with its timestep and a preview of x0', async () => {
  const t2v = new TextToVideo(standIns());
  const seen: [number, number][] = [];
  let preview: { rgb: Uint8Array; width: number; height: number } | null = null;
  let latents: Float32Array | null = null;
  const r = await t2v.generate({
    ...small, seed: 2, onStep: async (step, t, p) => {
      seen.push([step, t]);
      if (step === 2) {
        preview = await p.frame(1);
        latents = p.latents();
      }
    },
  });
  assert.deepEqual(seen, [[1, 751], [2, 501], [3, 251], [4, 1]]);
  assert.ok(preview !== null);
  const pv = preview as { rgb: Uint8Array; width: number; height: number };
  assert.equal(pv.width, 24);
  assert.equal(pv.rgb.length, 16 * 24 * 3);
  assert.equal((latents as Float32Array | null)?.length, r.latents.length);
});

test('pipeline: an AbortSignal stops the generation and frees its tensors', async () => {
  const t2v = new TextToVideo(standIns());
  const base = tf.memory().numTensors;
  const ctl = new AbortController();
  await assert.rejects(t2v.generate({ ...small, seed: 1, signal: ctl.signal, onStep: (s) => { if (s === 2) ctl.abort(); } }),
    (e: Error) => e.name === 'AbortError');
  assert.equal(tf.memory().numTensors, base);
  const ctl2 = new AbortController();
  ctl2.abort(new Error('stop now'));
  await assert.rejects(t2v.generate({ ...small, signal: ctl2.signal }), /stop now/);
});

test('pipeline: numTensors back at baseline after two generations; dispose frees the weights', async () => {
  const t2v = new TextToVideo(standIns());
  const base = tf.memory().numTensors;
  await t2v.generate({ ...small, seed: 1 });
  await t2v.generate({ ...small, seed: 2, negativePrompt: 'dull', batchGuidance: true });
  assert.equal(tf.memory().numTensors, base);
  t2v.dispose();
  await assert.rejects(t2v.generate(small), /disposed/);
});

test('pipeline: bad settings and noise are refused with one clear line', async () => {
  const t2v = new TextToVideo(standIns());
  await assert.rejects(t2v.generate({ ...small, height: 20 }), /^Error: height must be a positive multiple of 8, got 20$/);
  await assert.rejects(t2v.generate({ ...small, frames: 0 }), /frames must be an integer >= 1/);
  await assert.rejects(t2v.generate({ ...small, steps: 1001 }), /steps must be an integer in 1..1000/);
  await assert.rejects(t2v.generate({ ...small, noise: new Float32Array(10) }), /noise has shape \[10\], expected \[1,4,3,2,3\]/);
  await assert.rejects(t2v.generate({ ...small, noise: { dtype: 'float64', shape: [1, 4, 3, 2, 3], data: new Float64Array(72) } }),
    /noise must be float32, got float64/);
  await assert.rejects(t2v.generate({ ...small, noise: { dtype: 'float32', shape: [1, 4, 3, 3, 2], data: new Float32Array(72) } }),
    /noise has shape \[1,4,3,3,2\], expected \[1,4,3,2,3\]/);
});

test('pipeline: sizes the UNet cannot halve are refused before sampling', async () => {
  const parts = standIns();
  const t2v = new TextToVideo({ ...parts, unet: Object.assign(parts.unet, { config: { dimMult: [1, 2, 4, 4] } }) });
  assert.equal(t2v.latentMultiple(), 8);
  await assert.rejects(t2v.generate({ ...small, height: 72, width: 64 }),
    /height must be a multiple of 64 for this model \(its UNet halves the 9-pixel latents 3 times\), got 72/);
  assert.equal(parts.calls.unet, 0);
  const r = await t2v.generate({ ...small, height: 64, width: 128, steps: 1, frames: 1 });
  assert.equal(r.width, 128);
});

test('pipeline: notebook helpers give a GIF, PNGs and data URLs', async () => {
  const t2v = new TextToVideo(standIns());
  const r = await t2v.generate({ ...small, seed: 9 });
  assert.equal(r.toGif().toString('latin1', 0, 6), 'GIF89a');
  assert.equal(r.toPng(2).subarray(1, 4).toString(), 'PNG');
  assert.match(r.toPngDataUrl(), /^data:image\/png;base64,/);
  assert.match(r.toGifDataUrl(), /^data:image\/gif;base64,R0lGOD/);
  assert.match(r.contactSheetDataUrl(), /^data:image\/png;base64,/);
  assert.throws(() => r.frame(3), /frame 3 out of range 0..2/);
  assert.equal(r.frame(1).length, 16 * 24 * 3);
});

test('pipeline: TextToVideo.load refuses a folder that is not a converted model', async () => {
  await assert.rejects(TextToVideo.load(join(FIXTURES, 'e2e', 'tiny')), /is not a converted t2v model \(no t2v\.json\).*t2v convert/);
  assert.ok(readFileSync(join(FIXTURES, 'e2e', 'tiny', 'configuration.json')).length > 0);
});
