import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { guide } from '../src/pipeline/diffusion.js';
import { findFfmpeg } from '../src/media/ffmpeg.js';
import { encodePng, type Frames } from '../src/media/images.js';
import { NoiseGenerator, seededNoise } from '../src/pipeline/noise.js';
import { ddimScheduler } from '../src/pipeline/schedulers/ddim.js';
import { MODELSCOPE_SCHEDULE } from '../src/pipeline/schedulers/scheduler.js';
import { TextToVideo, type TextToVideoComponents } from '../src/pipeline/text2video.js';
import { readVideoInput, resizeFrames } from '../src/media/video-input.js';
import { writeVideo } from '../src/media/video-writer.js';
import { standIns } from './stand-ins.js';

// Video-to-video through the pipeline with stand-in networks (test/stand-ins.ts) and an encoder stand-in: the flow
// (pixels to [-1, 1], encoder mean times the scale, addNoise at the strength's start, the remaining steps) checked
// against the same computation written out here; inputs from frames, PNG folders, GIF and mp4; errors; no leaks.

let work: string;
before(async () => {
  await tf.setBackend('cpu');
  work = mkdtempSync(join(tmpdir(), 't2v-v2v-'));
});
after(() => rmSync(work, { recursive: true, force: true }));

/** 8x8 mean pooling of the image and of its channel mean: 4 "latent" channels. */
const encodeStandIn = (x: tf.Tensor4D) => tf.tidy(() => {
  const p = tf.avgPool(x, 8, 8, 'valid') as tf.Tensor4D;
  return tf.concat([p, tf.mean(p, 3, true)], 3) as tf.Tensor4D;
});

function components(): TextToVideoComponents & { calls: { text: number; unet: number; vae: number }; encodes: number[] } {
  const c = standIns();
  const encodes: number[] = [];
  return { ...c, encodes, vae: { ...c.vae, encode: (x: tf.Tensor4D) => { encodes.push(x.shape[0]); return encodeStandIn(x); } } };
}

function clip(frames: number, height: number, width: number): Frames {
  const data = new Uint8Array(frames * height * width * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + (i % 7) * 11) % 256;
  return { data, frames, height, width };
}

test('video-to-video: encoder mean x scale, noised to the start step, then the remaining DDIM steps; no tensor left', async () => {
  const c = components();
  const t2v = new TextToVideo(c);
  const video = clip(3, 16, 24);
  const noise = seededNoise(9, [1, 4, 3, 2, 3]);
  const seen: number[] = [];
  const before = tf.memory().numTensors;
  const r = await t2v.generate({ prompt: 'p', video, strength: 0.6, steps: 10, guidance: 3, noise, decodeChunk: 2, onStep: (_s, t) => { seen.push(t); } });
  assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
  assert.deepEqual(r.timesteps, [501, 401, 301, 201, 101, 1]);
  assert.deepEqual(seen, r.timesteps);
  assert.deepEqual(c.encodes, [2, 1], 'the encoder runs in chunks of decodeChunk frames');
  assert.deepEqual([r.numFrames, r.height, r.width], [3, 16, 24]);

  // the same flow written out
  const want = tf.tidy(() => {
    const px = tf.sub(tf.mul(tf.div(tf.tensor4d(Float32Array.from(video.data), [3, 16, 24, 3]), 255), 2), 1) as tf.Tensor4D;
    const init = tf.mul(tf.scalar(0.18215), encodeStandIn(px)).expandDims(0);
    const run = ddimScheduler(MODELSCOPE_SCHEDULE).start(10);
    let x = run.addNoise(init, tf.tensor5d(noise, [1, 4, 3, 2, 3]).transpose([0, 2, 3, 4, 1]), 4);
    const ctx = (v: number) => tf.fill([1, 1, 1], v) as tf.Tensor3D;
    for (let i = 4; i < 10; i++) {
      const t = tf.tensor1d([run.timesteps[i]]);
      const out = guide(c.unet.forward(x as tf.Tensor5D, t, ctx(0.7)), c.unet.forward(x as tf.Tensor5D, t, ctx(-0.3)), 3);
      x = run.step(out, i, x).prev;
    }
    return x.transpose([0, 4, 1, 2, 3]);
  });
  const w = want.dataSync();
  want.dispose();
  let worst = 0;
  for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(w[i] - r.latents[i]));
  assert.ok(worst < 1e-6, `latents off by ${worst}`);
});

test('video-to-video: a seed gives the added noise, repeatably; eta > 0 draws step noise from seed + 1', async () => {
  const t2v = new TextToVideo(components());
  const video = clip(2, 16, 16);
  const a = await t2v.generate({ prompt: 'p', video, steps: 5, seed: 3, strength: 1 });
  const b = await t2v.generate({ prompt: 'p', video, steps: 5, noise: seededNoise(3, [1, 4, 2, 2, 2]), strength: 1 });
  assert.deepEqual(a.latents, b.latents);
  assert.equal(a.seed, 3);
  assert.equal(a.timesteps.length, 5);
  const e1 = await t2v.generate({ prompt: 'p', video, steps: 5, seed: 3, eta: 0.5 });
  const e2 = await t2v.generate({ prompt: 'p', video, steps: 5, seed: 3, eta: 0.5 });
  assert.deepEqual(e1.latents, e2.latents);
  assert.notDeepEqual(e1.latents, (await t2v.generate({ prompt: 'p', video, steps: 5, seed: 3 })).latents);
  assert.ok(new NoiseGenerator(4).normal(1)[0] !== undefined);
});

test('video-to-video: a PNG folder and a GIF read as frames; --frames keeps the first N; resizing', async () => {
  const video = clip(3, 16, 24);
  const dir = join(work, 'pngs');
  mkdirSync(dir);
  for (let i = 0; i < 3; i++) {
    const n = 16 * 24 * 3;
    writeFileSync(join(dir, `frame_${i + 1}.png`), encodePng(video.data.subarray(i * n, (i + 1) * n), 24, 16));
  }
  writeFileSync(join(dir, 'notes.txt'), 'not a frame');
  const back = await readVideoInput(dir);
  assert.deepEqual([back.frames, back.height, back.width], [3, 16, 24]);
  assert.deepEqual(back.data, video.data, 'PNG frames are lossless');
  const two = await readVideoInput(dir, { frames: 2 });
  assert.deepEqual(two.data, video.data.subarray(0, 2 * 16 * 24 * 3));
  const t2v = new TextToVideo(components());
  const fromDir = await t2v.generate({ prompt: 'p', video: dir, steps: 5, seed: 1 });
  const fromFrames = await t2v.generate({ prompt: 'p', video, steps: 5, seed: 1 });
  assert.deepEqual(fromDir.latents, fromFrames.latents);

  // a flat colour stays flat through resizing
  const flat: Frames = { data: new Uint8Array(2 * 10 * 12 * 3).fill(0).map((_, i) => [200, 40, 90][i % 3]), frames: 2, height: 10, width: 12 };
  const big = await resizeFrames(flat, 32, 16);
  assert.deepEqual([big.frames, big.height, big.width, big.data.length], [2, 16, 32, 2 * 16 * 32 * 3]);
  for (let i = 0; i < big.data.length; i++) assert.ok(Math.abs(big.data[i] - [200, 40, 90][i % 3]) <= 1, `pixel ${i}: ${big.data[i]}`);
  const r = await t2v.generate({ prompt: 'p', video: flat, width: 32, height: 16, frames: 1, steps: 4, seed: 1 });
  assert.deepEqual([r.numFrames, r.height, r.width], [1, 16, 32]);

  let ffmpeg = true;
  try { findFfmpeg(); } catch { ffmpeg = false; }
  if (ffmpeg) {
    for (const ext of ['gif', 'mp4']) {
      const f = join(work, `clip.${ext}`);
      await writeVideo(f, flat, { fps: 8 });
      const v = await readVideoInput(f);
      assert.deepEqual([v.frames, v.height, v.width], [2, 10, 12], ext);
      let worst = 0;
      for (let i = 0; i < v.data.length; i++) worst = Math.max(worst, Math.abs(v.data[i] - flat.data[i]));
      assert.ok(worst <= 12, `${ext}: decoded colours within 12 levels, got ${worst}`);
      const one = await readVideoInput(f, { frames: 1, width: 16, height: 8 });
      assert.deepEqual([one.frames, one.height, one.width], [1, 8, 16]);
    }
  }
});

test('video-to-video: bad input is one clear error, before any network runs', async () => {
  const c = components();
  const t2v = new TextToVideo(c);
  const video = clip(2, 16, 16);
  const bad = async (o: object, re: RegExp) => {
    const before = tf.memory().numTensors;
    await assert.rejects(t2v.generate({ prompt: 'p', ...o }), re);
    assert.equal(tf.memory().numTensors, before);
  };
  await bad({ video: join(work, 'missing.mp4') }, /video .*missing\.mp4: no such file or folder/);
  writeFileSync(join(work, 'clip.txt'), 'x');
  await bad({ video: join(work, 'clip.txt') }, /give an \.mp4, \.webm or \.gif file, or a folder of PNG frames/);
  mkdirSync(join(work, 'empty'));
  await bad({ video: join(work, 'empty') }, /the folder has no \.png frames/);
  writeFileSync(join(work, 'broken.gif'), 'GIF89a not really');
  let ffmpeg = true;
  try { findFfmpeg(); } catch { ffmpeg = false; }
  if (ffmpeg) await bad({ video: join(work, 'broken.gif') }, /broken\.gif: ffmpeg cannot decode it/);
  await bad({ video: clip(2, 12, 16) }, /the video is 16x12: this model needs a width and height that are multiples of 8; give width and height/);
  await bad({ video, strength: 0 }, /strength must be a number in \(0, 1\], got 0/);
  await bad({ video, strength: 1.2 }, /strength must be a number in \(0, 1\], got 1.2/);
  await bad({ video, strength: 0.1, steps: 5 }, /runs no step/);
  await bad({ strength: 0.5 }, /strength is for video-to-video: give a video too/);
  await bad({ video, frames: 3 }, /video has 2 frames, fewer than the 3 asked for/);
  await bad({ video, width: 32 }, /give both width and height/);
  await bad({ video: { data: new Uint8Array(5), frames: 1, height: 8, width: 8 } }, /data must be a Uint8Array of frames \* height \* width \* 3 = 192 bytes/);
  await bad({ video, noise: new Float32Array(7) }, /noise has shape \[7\], expected \[1,4,2,2,2\]/);
  await bad({ video, scheduler: 'pndm' }, /unknown scheduler "pndm"/);
  await bad({ video, eta: 0.3, scheduler: 'euler' }, /eta is an option of ddim, not of euler/);
  await bad({ video, karrasSigmas: true }, /karras sigmas are for dpm-solver\+\+, euler and unipc, not ddim/);
  const noEncoder = new TextToVideo(standIns());
  await assert.rejects(noEncoder.generate({ prompt: 'p', video }), /video-to-video needs the VAE encoder/);
  assert.equal(c.calls.unet, 0, 'no UNet call');
});
