import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { convertDiffusers } from '../converters/diffusers.js';
import { readNpy } from '../src/io/npy.js';
import { TextToVideo } from '../src/pipeline/text2video.js';
import { checkCase, DIR, fixtures } from './parity-cases.js';

// Text-to-video with dpm-solver++ (with and without Karras sigmas), euler and unipc against diffusers'
// TextToVideoSDPipeline with DPMSolverMultistepScheduler / EulerDiscreteScheduler / UniPCMultistepScheduler
// `from_config` of the folder's DDIM config, from the same initial latents (test/fixtures/diffusers/schedulers,
// tools/reference/diffusers_schedulers_reference.py). These schedulers come from branch `sched`: without them the
// cases fail with "not available in this build".
let tmp: string;
let model: string;
const run = JSON.parse(readFileSync(join(DIR, 'run.json'), 'utf8')) as { prompt: string; negative_prompt: string; guide_scale: number };
const t2vCases = Object.entries(fixtures?.cases ?? {}).filter(([, c]) => c.kind === 't2v');

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 't2v-sched-'));
  model = join(tmp, 'hub');
  await convertDiffusers(join(DIR, 'hub'), model, { dtype: 'float32' });
});
after(() => rmSync(tmp, { recursive: true, force: true }));

for (const backend of ['cpu', 'wasm']) {
  test(`schedulers in the pipeline on ${backend}: final latents within 1e-4 of diffusers, frames within 1 level, no leak`,
    { skip: fixtures ? false : 'no scheduler fixtures (tools/reference/diffusers_schedulers_reference.py)' }, async () => {
      if (backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
      await tf.setBackend(backend);
      await tf.ready();
      const t2v = await TextToVideo.load(model);
      const failures: string[] = [];
      try {
        const noise = readNpy(join(DIR, 'noise.npy'));
        const [, , frames, lh, lw] = noise.shape;
        for (const [name, c] of t2vCases) {
          const before = tf.memory().numTensors;
          try {
            const r = await t2v.generate({
              prompt: run.prompt, negativePrompt: run.negative_prompt, guidance: run.guide_scale, steps: c.steps,
              frames, height: lh * 8, width: lw * 8, noise, scheduler: c.scheduler, karrasSigmas: c.karras_sigmas || undefined,
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
      assert.ok(t2vCases.length >= 4, 'four text-to-video cases');
      assert.deepEqual(failures, []);
    });
}
