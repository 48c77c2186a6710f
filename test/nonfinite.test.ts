import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { TextToVideo } from '../src/pipeline/text2video.js';
import { validateSettings } from '../src/pipeline/options.js';
import { standIns } from './stand-ins.js';

// Silent garbage (issue 17, defects 1 and 6): NaN/Inf in the text features or the latents is an error naming the
// likely cause, never a black video; absurd guidance and non-finite noise are refused up front; preview.frame(i)
// takes only a frame that exists. Stand-in networks, so it runs in moments.

before(async () => {
  await tf.setBackend('cpu');
});

const small = { prompt: 'a cat', steps: 4, guidance: 9, frames: 3, height: 16, width: 24 };

test('NaN text features (a broken text encoder) fail before sampling, naming the text encoder and t2v verify; no leak', async () => {
  const parts = standIns();
  const good = parts.textEncoder.forward;
  parts.textEncoder.forward = (ids) => tf.tidy(() => tf.mul(good(ids), NaN) as tf.Tensor3D);
  const t2v = new TextToVideo(parts);
  const base = tf.memory().numTensors;
  await assert.rejects(t2v.generate({ ...small, seed: 1 }),
    /^Error: the text features of the prompt are NaN\/Inf \(1 of 1 values\): the text encoder's weights may be corrupt \(run `t2v verify MODEL_DIR`\)/);
  assert.equal(parts.calls.unet, 0, 'no UNet call after bad features');
  assert.equal(tf.memory().numTensors, base);
  // a bad result is not cached: a repaired encoder gives a video
  parts.textEncoder.forward = good;
  const r = await t2v.generate({ ...small, seed: 1 });
  assert.equal(r.numFrames, 3);
});

test('latents that become NaN stop the run at that step, naming the step and the causes; no leak', async () => {
  const parts = standIns();
  const good = parts.unet.forward;
  let calls = 0;
  parts.unet.forward = (x, t, ctx) => tf.tidy(() => (++calls >= 3 ? tf.mul(good(x, t, ctx), Infinity) : good(x, t, ctx)) as tf.Tensor5D);
  const t2v = new TextToVideo(parts);
  const base = tf.memory().numTensors;
  // two UNet calls per step without batch guidance: the third call is step 2
  await assert.rejects(t2v.generate({ ...small, seed: 1, steps: 10, batchGuidance: false }),
    /^Error: the latents became NaN\/Inf at step 2 of 10: the UNet's weights may be corrupt \(run `t2v verify MODEL_DIR`\) or the guidance or noise is out of range; nothing was written$/);
  assert.ok(calls <= 6, `stopped within a step of the damage (${calls} UNet calls)`);
  assert.equal(parts.calls.vae, 0, 'nothing decoded');
  assert.equal(tf.memory().numTensors, base);
});

test('a NaN away from the probed element is caught on the final latents', async () => {
  const parts = standIns();
  const good = parts.unet.forward;
  // element [0, 0, 0, 1, 0] of the channels-last output: not the one read per step
  parts.unet.forward = (x, t, ctx) => tf.tidy(() => {
    const out = good(x, t, ctx);
    const mask = tf.oneHot(tf.tensor1d([1], 'int32'), out.shape[3]).reshape([1, 1, 1, out.shape[3], 1]);
    return tf.add(out, tf.mul(mask, NaN).where(mask.cast('bool'), tf.zerosLike(mask))) as tf.Tensor5D;
  });
  const t2v = new TextToVideo(parts);
  const base = tf.memory().numTensors;
  await assert.rejects(t2v.generate({ ...small, seed: 1 }), /the latents became NaN\/Inf \(\d+ of 72 values\) at step 4 of 4/);
  assert.equal(parts.calls.vae, 0);
  assert.equal(tf.memory().numTensors, base);
});

test('guidance must be finite and within 1e4; noise must be finite', async () => {
  const t2v = new TextToVideo(standIns());
  for (const g of [1e308, -2e4, Infinity, NaN]) {
    await assert.rejects(t2v.generate({ ...small, guidance: g }), /guidance must be/);
  }
  assert.throws(() => validateSettings({ ...small, guidance: 10001 }), /guidance must be within -10000..10000.*got 10001/);
  validateSettings({ ...small, guidance: -1e4 });
  const noise = new Float32Array(72).fill(0.5);
  noise[17] = NaN;
  await assert.rejects(t2v.generate({ ...small, noise }), /noise holds NaN\/Inf \(value NaN at index 17\)/);
  noise[17] = -Infinity;
  await assert.rejects(t2v.generate({ ...small, noise: { dtype: 'float32', shape: [1, 4, 3, 2, 3], data: noise } }), /value -Infinity at index 17/);
});

test('preview.frame(i) takes an integer in [0, frames); anything else is a RangeError, and frame(2) of 3 works', async () => {
  const t2v = new TextToVideo(standIns());
  const errors: string[] = [];
  let last: { width: number; height: number; rgb: Uint8Array } | null = null;
  await t2v.generate({
    ...small, steps: 1, seed: 3,
    onStep: async (_s, _t, p) => {
      for (const i of [3, 99, -1, 0.5, NaN, Infinity]) {
        await p.frame(i).then(() => errors.push(`no error for ${i}`), (e: Error) => {
          if (!(e instanceof RangeError) || !/preview\.frame\(i\): i must be an integer in 0\.\.2, got/.test(e.message)) errors.push(e.message);
        });
      }
      last = await p.frame(2);
    },
  });
  assert.deepEqual(errors, []);
  assert.ok(last);
  assert.equal((last as { rgb: Uint8Array }).rgb.length, 16 * 24 * 3);
});
