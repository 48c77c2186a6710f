import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../src/backends/select.js';
import { readNpy } from '../src/io/npy.js';
import { dpmSolverMultistep } from '../src/pipeline/schedulers/dpm-solver.js';
import { eulerDiscrete } from '../src/pipeline/schedulers/euler.js';
import {
  MODELSCOPE_SCHEDULE, type NoiseSchedule, type Scheduler, type SchedulerOptions,
} from '../src/pipeline/schedulers/scheduler.js';
import { eulerSchedule, multistepSchedule, trainingTables } from '../src/pipeline/schedulers/sigmas.js';
import { uniPCMultistep } from '../src/pipeline/schedulers/unipc.js';
import { FIXTURES, relMaxError } from './helpers.js';

const DIR = join(FIXTURES, 'schedulers');
const TOL = 1e-6;

interface Case {
  case: { scheduler: 'dpm-solver++' | 'euler' | 'unipc'; steps: number; karras?: boolean; strength?: number };
  config: {
    timestep_spacing: NoiseSchedule['timestepSpacing'];
    prediction_type: NoiseSchedule['predictionType'];
    beta_schedule: NoiseSchedule['betaSchedule'];
  };
  timesteps: number[];
  sigmas: number[];
  init_noise_sigma: number;
  begin_index: number;
}

const FACTORIES: Record<Case['case']['scheduler'], (s: NoiseSchedule, o: SchedulerOptions) => Scheduler> = {
  'dpm-solver++': dpmSolverMultistep, euler: eulerDiscrete, unipc: uniPCMultistep,
};

const caseIds = (JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as { cases: string[] }).cases;

function load(id: string) {
  const meta = JSON.parse(readFileSync(join(DIR, id, 'case.json'), 'utf8')) as Case;
  const schedule: NoiseSchedule = {
    ...MODELSCOPE_SCHEDULE, timestepSpacing: meta.config.timestep_spacing, predictionType: meta.config.prediction_type,
    betaSchedule: meta.config.beta_schedule,
  };
  const arr = (name: string) => readNpy(join(DIR, id, `${name}.npy`));
  return { meta, schedule, arr };
}

/** Row k of a stacked [n, ...] float32 array. */
function rowData(a: ReturnType<typeof readNpy>, k: number): Float32Array {
  const size = a.shape.slice(1).reduce((x, y) => x * y, 1);
  return (a.data as Float32Array).subarray(k * size, (k + 1) * size);
}

const row = (a: ReturnType<typeof readNpy>, k: number) => tf.tensor(rowData(a, k), a.shape.slice(1));

const whole = (a: ReturnType<typeof readNpy>) => tf.tensor(a.data as Float32Array, a.shape);

before(async () => {
  await tf.setBackend('cpu');
});

test('schedulers: betas and alphas_cumprod are diffusers\' torch float32 tables, bit for bit', () => {
  const tables = trainingTables(MODELSCOPE_SCHEDULE);
  assert.deepEqual(Array.from(tables.betas), Array.from(readNpy(join(DIR, 'betas.npy')).data as Float32Array));
  assert.deepEqual(Array.from(tables.alphas_cumprod),
    Array.from(readNpy(join(DIR, 'alphas_cumprod.npy')).data as Float32Array));
});

test('schedulers: timesteps, sigmas and init_noise_sigma as diffusers sets them', () => {
  for (const id of caseIds) {
    const { meta, schedule } = load(id);
    const tables = trainingTables(schedule);
    const { scheduler, steps, karras = false } = meta.case;
    const s = scheduler === 'euler'
      ? eulerSchedule(schedule, tables, steps, karras)
      : multistepSchedule(scheduler, schedule, tables, steps, karras);
    assert.deepEqual(Array.from(s.sigmas), meta.sigmas.map(Math.fround), `${id}: sigmas`);
    const run = FACTORIES[scheduler](schedule, { karrasSigmas: karras }).start(steps);
    if (scheduler === 'euler' && karras) {
      // Fractional timesteps through numpy's float32 log of the sigma table, whose SIMD version is not correctly
      // rounded: within a few float32 ulps (3e-5 near t = 500).
      assert.equal(run.timesteps.length, meta.timesteps.length);
      run.timesteps.forEach((t, k) => assert.ok(Math.abs(t - meta.timesteps[k]) <= 1e-4, `${id}: timestep ${k}: ${t} vs ${meta.timesteps[k]}`));
    } else {
      assert.deepEqual(run.timesteps, meta.timesteps, `${id}: timesteps`);
    }
    assert.equal(run.initNoiseSigma, Math.fround(meta.init_noise_sigma), `${id}: init_noise_sigma`);
    run.dispose();
  }
});

/** Runs one fixture case through our scheduler; returns the worst relative error of each kind. */
function runCase(id: string) {
  const { meta, schedule, arr } = load(id);
  const { scheduler, steps, karras = false } = meta.case;
  const run = FACTORIES[scheduler](schedule, { karrasSigmas: karras }).start(steps);
  const outputs = arr('model_outputs');
  const prevRef = arr('prev');
  const x0Ref = arr('x0');
  const scaledRef = scheduler === 'euler' ? arr('scaled') : null;
  const worst = { latents: 0, scaled: 0, x0: 0, prev: 0 };
  const noise = whole(arr('noise'));
  let x: tf.Tensor;
  if (meta.case.strength !== undefined) {
    const clean = whole(arr('clean'));
    x = run.addNoise(clean, noise, meta.begin_index);
    clean.dispose();
  } else {
    x = tf.tidy(() => tf.mul(noise, tf.scalar(run.initNoiseSigma)));
  }
  noise.dispose();
  worst.latents = relMaxError(x.dataSync(), arr('latents').data as Float32Array);
  for (let i = meta.begin_index, k = 0; i < run.timesteps.length; i++, k++) {
    const scaled = run.scaleModelInput(x, i);
    if (scaledRef) worst.scaled = Math.max(worst.scaled, relMaxError(scaled.dataSync(), rowData(scaledRef, k)));
    scaled.dispose();
    const out = row(outputs, i);
    const r = run.step(out, i, x);
    out.dispose();
    worst.prev = Math.max(worst.prev, relMaxError(r.prev.dataSync(), rowData(prevRef, k)));
    worst.x0 = Math.max(worst.x0, relMaxError(r.x0.dataSync(), rowData(x0Ref, k)));
    tf.dispose([r.x0, x]);
    x = r.prev; // our own trajectory, so errors accumulate as they would in a generation
  }
  x.dispose();
  run.dispose();
  return worst;
}

function checkCase(id: string, backend: string): void {
  const base = tf.memory().numTensors;
  const w = runCase(id);
  assert.equal(tf.memory().numTensors, base, `${id} (${backend}): no tensor outlives the run`);
  for (const [k, v] of Object.entries(w)) assert.ok(v <= TOL, `${id} (${backend}): ${k} relMaxError ${v}`);
  if (process.env.T2V_SCHED_REPORT) console.log(backend, id, JSON.stringify(w));
}

for (const id of caseIds) {
  test(`schedulers: ${id} steps as diffusers' within ${TOL} (cpu)`, () => checkCase(id, 'cpu'));
}

test(`schedulers: every case within ${TOL} on wasm`, async () => {
  const choice = await selectBackend('wasm');
  assert.equal(choice.name, 'wasm');
  try {
    for (const id of caseIds) checkCase(id, 'wasm');
  } finally {
    await tf.setBackend('cpu');
  }
});

test('schedulers: steps out of order and bad step counts are clear errors', () => {
  const run = dpmSolverMultistep(MODELSCOPE_SCHEDULE).start(5);
  const x = tf.zeros([1, 4, 1, 2, 2]);
  const r = run.step(x, 2, x);
  tf.dispose([r.prev, r.x0]);
  assert.throws(() => run.step(x, 4, x), /dpm-solver\+\+: step 4 after step 2; a run's steps go in order/);
  assert.throws(() => run.addNoise(x, x, 5), /step index 5 is outside 0\.\.4/);
  run.dispose();
  x.dispose();
  assert.throws(() => uniPCMultistep(MODELSCOPE_SCHEDULE).start(0), /unipc: steps must be an integer in 1\.\.1000, got 0/);
  assert.throws(() => eulerDiscrete(MODELSCOPE_SCHEDULE).start(2.5), /euler: steps must be an integer/);
});

test('schedulers: one scheduler serves interleaved runs, each with its own history', () => {
  for (const id of ['dpm-solverpp-7-leading', 'unipc-5-leading']) {
    const { meta, schedule, arr } = load(id);
    const scheduler = FACTORIES[meta.case.scheduler](schedule, {});
    const runs = [scheduler.start(meta.case.steps), scheduler.start(meta.case.steps)];
    const outputs = arr('model_outputs');
    const xs = runs.map(() => whole(arr('latents')));
    for (let i = 0; i < meta.timesteps.length; i++) {
      runs.forEach((run, r) => {
        const out = row(outputs, i);
        const s = run.step(out, i, xs[r]);
        tf.dispose([out, s.x0, xs[r]]);
        xs[r] = s.prev;
      });
    }
    const last = rowData(arr('prev'), meta.timesteps.length - 1);
    for (const x of xs) assert.ok(relMaxError(x.dataSync(), last) <= TOL, id);
    tf.dispose(xs);
    runs.forEach((run) => run.dispose());
  }
});

test('schedulers: a schedule that names no spacing (the ms-1.7b release) gets diffusers from_config timesteps', () => {
  for (const [id, make] of [['dpm-solverpp-25-default', dpmSolverMultistep], ['euler-20-default', eulerDiscrete],
    ['unipc-20-default', uniPCMultistep]] as const) {
    const meta = JSON.parse(readFileSync(join(DIR, id, 'case.json'), 'utf8')) as Case;
    const run = make(MODELSCOPE_SCHEDULE, {}).start(meta.case.steps);
    assert.deepEqual(run.timesteps, meta.timesteps, id);
    run.dispose();
  }
});
