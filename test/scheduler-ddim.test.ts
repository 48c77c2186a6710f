import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { DDIMScheduler } from '../src/pipeline/diffusion.js';
import { NoiseGenerator } from '../src/pipeline/noise.js';
import { ddimScheduleTimesteps, ddimScheduler } from '../src/pipeline/schedulers/ddim.js';
import { createScheduler, noiseScheduleFromInfo } from '../src/pipeline/schedulers/index.js';
import { MODELSCOPE_SCHEDULE, type NoiseSchedule, type SchedulerName } from '../src/pipeline/schedulers/scheduler.js';
import { strengthStart, timestepsToRun } from '../src/pipeline/video2video.js';

before(async () => {
  await tf.setBackend('cpu');
});

const shape = [1, 2, 3, 3, 4];
const normal = (seed: number) => tf.tensor(new NoiseGenerator(seed).normal(shape.reduce((a, b) => a * b, 1)), shape);

test('ddim scheduler: the same timesteps and bit-identical steps as the DDIMScheduler it replaces (50, 7 steps)', () => {
  for (const steps of [50, 7]) {
    const old = new DDIMScheduler();
    const run = ddimScheduler(MODELSCOPE_SCHEDULE).start(steps);
    assert.deepEqual(run.timesteps, old.timesteps(steps));
    assert.equal(run.initNoiseSigma, 1);
    let x = normal(1);
    let y = x.clone();
    for (let i = 0; i < run.timesteps.length; i++) {
      const out = tf.tidy(() => tf.sin(tf.mul(x, 1 + i)));
      const input = run.scaleModelInput(x, i);
      assert.deepEqual(input.dataSync(), x.dataSync());
      input.dispose();
      const a = run.step(out, i, x);
      const [bPrev, bX0] = old.step(y, out, run.timesteps[i], steps);
      assert.deepEqual(a.prev.dataSync(), bPrev.dataSync(), `steps ${steps}, step ${i}`);
      assert.deepEqual(a.x0.dataSync(), bX0.dataSync());
      tf.dispose([x, y, out, a.x0, bX0]);
      x = a.prev;
      y = bPrev;
    }
    tf.dispose([x, y]);
    run.dispose();
  }
});

test('ddim scheduler: eta adds sigma * z from NoiseGenerator(seed) (upstream sigma formula), repeatable per seed', () => {
  const eta = 0.7;
  const steps = 10;
  const run = ddimScheduler(MODELSCOPE_SCHEDULE, { eta, seed: 5 }).start(steps);
  const plain = ddimScheduler(MODELSCOPE_SCHEDULE).start(steps);
  const x = normal(2);
  const out = normal(3);
  const i = 3;
  const { prev, x0 } = run.step(out, i, x);
  const ref = plain.step(out, i, x);
  // x_prev = sqrt(ap) x0 + sqrt(1 - ap - s^2) eps + s z, in float64 for the check
  const abar = (t: number) => {
    let acc = 1;
    for (let k = 0; k <= t; k++) {
      const b = (0.00085 ** 0.5 + ((0.012 ** 0.5 - 0.00085 ** 0.5) * k) / 999) ** 2;
      acc *= 1 - b;
    }
    return acc;
  };
  const t = run.timesteps[i];
  const at = abar(t);
  const ap = abar(t - 100);
  const sigma = eta * Math.sqrt((1 - ap) / (1 - at) * (1 - at / ap));
  const z = new NoiseGenerator(5).normal(x.size);
  const xs = x.dataSync();
  const os = out.dataSync();
  const got = prev.dataSync();
  const x0s = x0.dataSync();
  assert.deepEqual(x0s, ref.x0.dataSync(), 'eta does not change the x0 estimate');
  let worst = 0;
  for (let k = 0; k < got.length; k++) {
    const e0 = Math.sqrt(1 / at) * xs[k] - Math.sqrt(1 / at - 1) * os[k];
    const eps = (Math.sqrt(1 / at) * xs[k] - e0) / Math.sqrt(1 / at - 1);
    const want = Math.sqrt(ap) * e0 + Math.sqrt(1 - ap - sigma * sigma) * eps + sigma * z[k];
    worst = Math.max(worst, Math.abs(got[k] - want));
  }
  assert.ok(worst < 1e-5, `eta step off by ${worst}`);
  assert.ok(sigma > 0.05);
  // the same seed repeats; another seed differs
  const again = ddimScheduler(MODELSCOPE_SCHEDULE, { eta, seed: 5 }).start(steps).step(out, i, x);
  assert.deepEqual(again.prev.dataSync(), got);
  const other = ddimScheduler(MODELSCOPE_SCHEDULE, { eta, seed: 6 }).start(steps).step(out, i, x);
  assert.notDeepEqual(other.prev.dataSync(), got);
  assert.throws(() => ddimScheduler(MODELSCOPE_SCHEDULE, { eta }).start(steps).step(out, i, x), /needs a seed/);
  assert.throws(() => ddimScheduler(MODELSCOPE_SCHEDULE, { eta: -1 }), /eta must be a number >= 0/);
  tf.dispose([x, out, prev, x0, ref.prev, ref.x0, again.prev, again.x0, other.prev, other.x0]);
});

test('ddim scheduler: addNoise is q_sample at step i', () => {
  const run = ddimScheduler(MODELSCOPE_SCHEDULE).start(10);
  const x0 = normal(7);
  const n = normal(8);
  const got = run.addNoise(x0, n, 4).dataSync();
  const old = new DDIMScheduler();
  const abar = old.tables.alphasCumprod[run.timesteps[4]];
  assert.equal(run.timesteps[4], 501);
  const a = x0.dataSync();
  const b = n.dataSync();
  for (let k = 0; k < got.length; k++) {
    assert.ok(Math.abs(got[k] - (Math.sqrt(abar) * a[k] + Math.sqrt(1 - abar) * b[k])) < 1e-6);
  }
  tf.dispose([x0, n]);
});

test('ddim scheduler: other spacings follow diffusers DDIMScheduler.set_timesteps', () => {
  const s = (timestepSpacing: NoiseSchedule['timestepSpacing'], stepsOffset: number): NoiseSchedule => ({ ...MODELSCOPE_SCHEDULE, timestepSpacing, stepsOffset });
  assert.deepEqual(ddimScheduleTimesteps(s('trailing', 0), 10), [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
  assert.deepEqual(ddimScheduleTimesteps(s('linspace', 0), 10), [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
  assert.deepEqual(ddimScheduleTimesteps(s('leading', 0), 10), [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
  assert.deepEqual(ddimScheduleTimesteps(s('leading', 1), 3), [999, 667, 334, 1], 'ModelScope rule: upstream timesteps');
});

test('schedulers: createScheduler by name, one line for an unknown name', () => {
  const d = createScheduler('ddim', MODELSCOPE_SCHEDULE, {});
  assert.equal(d.name, 'ddim');
  assert.deepEqual(d.start(5).timesteps, [801, 601, 401, 201, 1]);
  assert.throws(() => createScheduler('pndm' as SchedulerName, MODELSCOPE_SCHEDULE, {}),
    /^Error: unknown scheduler "pndm": use one of ddim, dpm-solver\+\+, euler, unipc$/);
});

test('schedulers: a config without timestep_spacing gives each scheduler its diffusers default (leading for ddim, else linspace)', () => {
  const unstated = noiseScheduleFromInfo(undefined);
  assert.equal(unstated.timestepSpacing, undefined);
  const ddim = createScheduler('ddim', unstated, {}).start(5);
  assert.deepEqual(ddim.timesteps, [801, 601, 401, 201, 1], 'leading, offset 1: upstream');
  ddim.dispose();
  const euler = createScheduler('euler', unstated, {}).start(4);
  assert.deepEqual(euler.timesteps, [999, 666, 333, 0], 'linspace');
  euler.dispose();
  const trailing = createScheduler('euler', { ...MODELSCOPE_SCHEDULE, timestepSpacing: 'trailing' }, {}).start(4);
  assert.deepEqual(trailing.timesteps, [999, 749, 499, 249]);
  trailing.dispose();
});

test('schedulers: noiseScheduleFromInfo (ModelScope folders: the release values; diffusers folders: their spacing)', () => {
  const ms = { num_timesteps: 1000, beta_schedule: 'linear_sd', beta_start: 0.00085, beta_end: 0.012, mean_type: 'eps', var_type: 'fixed_small' };
  assert.deepEqual(noiseScheduleFromInfo(ms), { ...MODELSCOPE_SCHEDULE });
  assert.deepEqual(noiseScheduleFromInfo(undefined), { ...MODELSCOPE_SCHEDULE });
  assert.deepEqual(noiseScheduleFromInfo({ ...ms, steps_offset: 1 } as never), { ...MODELSCOPE_SCHEDULE },
    'a diffusers config without timestep_spacing');
  assert.deepEqual(noiseScheduleFromInfo({ ...ms, steps_offset: 0, timestep_spacing: 'trailing' } as never),
    { ...MODELSCOPE_SCHEDULE, stepsOffset: 0, timestepSpacing: 'trailing' });
  assert.deepEqual(noiseScheduleFromInfo({ ...ms, mean_type: 'v', steps_offset: 1 } as never),
    { ...MODELSCOPE_SCHEDULE, predictionType: 'v_prediction' });
  assert.throws(() => noiseScheduleFromInfo({ ...ms, beta_schedule: 'cosine' }), /beta_schedule "cosine" is not supported/);
  assert.throws(() => noiseScheduleFromInfo({ ...ms, mean_type: 'x0' }), /mean_type "x0" is not supported/);
  assert.throws(() => noiseScheduleFromInfo({ ...ms, steps_offset: 1, timestep_spacing: 'karras' } as never), /timestep_spacing "karras"/);
});

test('video-to-video: the start step as diffusers get_timesteps (init = min(floor(steps * strength), steps))', () => {
  assert.equal(strengthStart(10, 0.6), 4);
  assert.equal(strengthStart(50, 0.7), 15);
  assert.equal(strengthStart(10, 0.3), 7, '10 * 0.3 is 3.0000000000000004: 3 steps');
  assert.equal(strengthStart(25, 1), 0);
  assert.deepEqual(timestepsToRun([901, 801, 701, 601, 501, 401, 301, 201, 101, 1], 10, 0.6), [501, 401, 301, 201, 101, 1]);
  assert.throws(() => strengthStart(10, 0), /strength must be a number in \(0, 1\], got 0/);
  assert.throws(() => strengthStart(10, 1.5), /strength must be a number in \(0, 1\]/);
  assert.throws(() => strengthStart(10, 0.05), /runs no step/);
});
