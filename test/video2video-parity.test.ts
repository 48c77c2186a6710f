import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { convertDiffusers } from '../converters/diffusers.js';
import { readNpy } from '../src/io/npy.js';
import { encodePng, type Frames } from '../src/media/images.js';
import { TextToVideo } from '../src/pipeline/text2video.js';
import { runCli } from './cli-run.js';
import { PARITY_TOL, relMaxError } from './helpers.js';
import { checkCase, DIR, fixtures, SCHED_DIR } from './parity-cases.js';

// Video-to-video at strength 0.6 from a 3-frame clip against diffusers' VideoToVideoSDPipeline (DDIM and
// DPM-Solver++), its `retrieve_latents` taken as the posterior mode and the added noise given
// (tools/reference/diffusers_schedulers_reference.py). The dpm-solver++ case needs branch `sched`.
let tmp: string;
let model: string;
const run = JSON.parse(readFileSync(join(DIR, 'run.json'), 'utf8')) as { prompt: string; negative_prompt: string; guide_scale: number };
const v2vCases = Object.entries(fixtures?.cases ?? {}).filter(([, c]) => c.kind === 'v2v');
const skip = fixtures ? false : 'no scheduler fixtures (tools/reference/diffusers_schedulers_reference.py)';

function clip(): Frames {
  const v = readNpy(join(DIR, 'v2v_video.npy'));
  const [frames, height, width] = v.shape;
  return { data: v.data as Uint8Array, frames, height, width };
}

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 't2v-v2v-parity-'));
  model = join(tmp, 'hub');
  await convertDiffusers(join(DIR, 'hub'), model, { dtype: 'float32' });
});
after(() => rmSync(tmp, { recursive: true, force: true }));

test('video-to-video: the encoded clip (posterior mean x scale) within 1e-4 of diffusers\'', { skip }, async () => {
  await tf.setBackend('cpu');
  const t2v = await TextToVideo.load(model);
  try {
    const { encodeVideo } = await import('../src/pipeline/video2video.js');
    const z = await encodeVideo(t2v.components.vae as never, clip(), t2v.scaleFactor, 2);
    const ours = tf.tidy(() => z.transpose([0, 4, 1, 2, 3])).dataSync() as Float32Array;
    z.dispose();
    const e = relMaxError(ours, readNpy(join(SCHED_DIR, 'sched_v2v_init_latents.npy')).data as Float32Array);
    console.log(`v2v init latents vs diffusers: ${e.toExponential(2)}`);
    assert.ok(e <= PARITY_TOL, `init latents off by ${e}`);
  } finally {
    t2v.dispose();
  }
});

for (const backend of ['cpu', 'wasm']) {
  test(`video-to-video on ${backend}: final latents within 1e-4 of diffusers' VideoToVideoSDPipeline, frames within 1 level`, { skip }, async () => {
    if (backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
    await tf.setBackend(backend);
    await tf.ready();
    const t2v = await TextToVideo.load(model);
    const failures: string[] = [];
    try {
      for (const [name, c] of v2vCases) {
        const before = tf.memory().numTensors;
        try {
          const r = await t2v.generate({
            prompt: run.prompt, negativePrompt: run.negative_prompt, guidance: run.guide_scale, steps: c.steps,
            video: clip(), strength: c.strength, noise: readNpy(join(DIR, c.noise)), scheduler: c.scheduler, decodeChunk: 2,
          });
          checkCase(name, r, c, backend);
        } catch (err) {
          failures.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
        }
        assert.equal(tf.memory().numTensors, before, `${name}: no tensor left behind`);
      }
    } finally {
      t2v.dispose();
    }
    assert.ok(v2vCases.length >= 2, 'two video-to-video cases');
    assert.deepEqual(failures, []);
  });
}

test('video-to-video through the CLI (--video a PNG folder, --strength, --noise, --scheduler ddim) on wasm', { skip }, async () => {
  const c = fixtures!.cases['v2v-ddim'];
  const frames = join(tmp, 'frames');
  mkdirSync(frames);
  const v = clip();
  const n = v.height * v.width * 3;
  for (let i = 0; i < v.frames; i++) writeFileSync(join(frames, `${i}.png`), encodePng(v.data.subarray(i * n, (i + 1) * n), v.width, v.height));
  const lat = join(tmp, 'lat.npy');
  const r = await runCli(['generate', run.prompt, '--model', model, '--video', frames, '--strength', String(c.strength),
    '--steps', String(c.steps), '--guidance', String(run.guide_scale), '--noise', join(DIR, c.noise), '--scheduler', 'ddim',
    '--save-latents', lat, '--out', join(tmp, 'out.gif'), '--backend', 'wasm', '--decode-chunk', '2', '--no-progress']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /3 frames 64x64/);
  assert.match(r.stdout, /\(6 steps,/);
  const e = relMaxError(readNpy(lat).data as Float32Array, readNpy(join(SCHED_DIR, 'sched_v2v-ddim_latents.npy')).data as Float32Array);
  console.log(`CLI v2v ddim latents vs diffusers: ${e.toExponential(2)}`);
  assert.ok(e <= PARITY_TOL, `CLI latents off by ${e}`);
});
