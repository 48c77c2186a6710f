import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readNpy } from '../src/io/npy.js';
import type { VideoResult } from '../src/pipeline/result.js';
import type { SchedulerName } from '../src/pipeline/schedulers/scheduler.js';
import { FIXTURES, PARITY_TOL, relMaxError } from './helpers.js';

// The fixtures of tools/reference/diffusers_schedulers_reference.py: diffusers' TextToVideoSDPipeline and
// VideoToVideoSDPipeline with each scheduler on the small diffusers-layout model (test/fixtures/diffusers/hub).
export const DIR = join(FIXTURES, 'diffusers');
export const SCHED_DIR = join(DIR, 'schedulers');

export interface ParityCase {
  kind: 't2v' | 'v2v';
  scheduler: SchedulerName;
  karras_sigmas: boolean;
  steps: number;
  strength?: number;
  noise: string;
  video?: string;
  timesteps: number[];
}

export const fixtures = existsSync(join(SCHED_DIR, 'cases.json'))
  ? JSON.parse(readFileSync(join(SCHED_DIR, 'cases.json'), 'utf8')) as {
    prompt: string; negative_prompt: string; guide_scale: number; cases: Record<string, ParityCase>;
  }
  : null;

/** Final latents within 1e-4 of diffusers' (relative to the largest value), frames within 1 level, same timesteps. */
export function checkCase(name: string, r: VideoResult, c: ParityCase, backend: string): { latents: number; frames: number } {
  assert.equal(r.timesteps.length, c.timesteps.length, `${name}: number of steps`);
  r.timesteps.forEach((t, i) => assert.ok(Math.abs(t - c.timesteps[i]) <= 1e-3 * Math.max(1, Math.abs(t)),
    `${name}: timestep ${i} is ${t}, diffusers ran ${c.timesteps[i]}`));
  const lat = readNpy(join(SCHED_DIR, `sched_${name}_latents.npy`));
  assert.deepEqual(r.latentsShape, lat.shape);
  const e = relMaxError(r.latents, lat.data as Float32Array);
  const ref = readNpy(join(SCHED_DIR, `sched_${name}_frames.npy`)).data as Uint8Array;
  assert.equal(r.frames.length, ref.length);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(r.frames[i] - ref[i]));
  console.log(`${backend} ${name}: latents ${e.toExponential(2)} of diffusers', frames within ${worst} level(s)`);
  assert.ok(e <= PARITY_TOL, `${name} on ${backend}: latents off by ${e}`);
  assert.ok(worst <= 1, `${name} on ${backend}: frames off by ${worst} levels`);
  return { latents: e, frames: worst };
}
