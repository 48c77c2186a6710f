import * as tf from '@tensorflow/tfjs';
import { ddimCoefficients, ddimStep, ddimTimesteps, diffusionTables, type DiffusionTables } from '../diffusion.js';
import { NoiseGenerator } from '../noise.js';
import { MODELSCOPE_SCHEDULE, type NoiseSchedule, type SamplingRun, type Scheduler, type SchedulerOptions } from './scheduler.js';

const f32 = Math.fround;

/** GaussianDiffusion's float64 tables for a schedule ('scaled_linear' is upstream's 'linear_sd'). */
export function scheduleTables(s: NoiseSchedule): DiffusionTables {
  return diffusionTables({ numTimesteps: s.numTrainTimesteps, betaStart: s.betaStart, betaEnd: s.betaEnd, betaSchedule: s.betaSchedule });
}

/** numpy's round: halves to even. */
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * DDIM's timesteps for a schedule. The ModelScope rule ('leading', steps_offset 1) is upstream's
 * `(1 + arange(0, T, T // steps)).clamp(0, T - 1).flip(0)` (one more timestep than asked when steps does not divide
 * T, as upstream samples); other spacings follow diffusers' DDIMScheduler.set_timesteps.
 */
export function ddimScheduleTimesteps(s: NoiseSchedule, steps: number): number[] {
  const T = s.numTrainTimesteps;
  const spacing = s.timestepSpacing ?? 'leading'; // DDIMScheduler's default
  if (spacing === 'leading' && s.stepsOffset === 1) return ddimTimesteps(steps, T);
  if (!Number.isInteger(steps) || steps < 1 || steps > T) throw new Error(`steps must be an integer in 1..${T}, got ${steps}`);
  const ts: number[] = [];
  if (spacing === 'leading') {
    const ratio = Math.floor(T / steps);
    for (let i = steps - 1; i >= 0; i--) ts.push(Math.min(i * ratio + s.stepsOffset, T - 1));
  } else if (spacing === 'trailing') {
    const ratio = T / steps;
    for (let v = T; v > 0; v -= ratio) ts.push(roundHalfEven(v) - 1);
  } else {
    const step = (T - 1) / (steps - 1 || 1);
    for (let i = steps - 1; i >= 0; i--) ts.push(roundHalfEven(i * step));
  }
  return ts;
}

class DdimRun implements SamplingRun {
  readonly initNoiseSigma = 1;
  private readonly stride: number;
  private noise: NoiseGenerator | null = null;

  constructor(private readonly tables: DiffusionTables, readonly timesteps: number[], steps: number, T: number,
    private readonly eta: number, private readonly seed: number | undefined) {
    this.stride = Math.floor(T / steps);
  }

  scaleModelInput(x: tf.Tensor): tf.Tensor {
    return x.clone();
  }

  step(modelOutput: tf.Tensor, i: number, x: tf.Tensor): { prev: tf.Tensor; x0: tf.Tensor } {
    const c = ddimCoefficients(this.tables, this.timesteps[i], this.stride, this.eta);
    // upstream adds the noise wherever t != 0 (its timesteps never reach 0 under the ModelScope rule)
    let z: Float32Array | undefined;
    if (c.sigma !== 0 && c.t !== 0) {
      if (this.seed === undefined) throw new Error('ddim with eta > 0 needs a seed for the noise each step adds');
      this.noise ??= new NoiseGenerator(this.seed);
      z = this.noise.normal(x.size);
    }
    const [prev, x0] = ddimStep(x, modelOutput, c, z);
    return { prev, x0 };
  }

  /** q_sample: sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise, with float32 coefficients from the float64 tables. */
  addNoise(x0: tf.Tensor, noise: tf.Tensor, i: number): tf.Tensor {
    const abar = this.tables.alphasCumprod[this.timesteps[i]];
    return tf.tidy(() => tf.add(tf.mul(tf.scalar(f32(Math.sqrt(abar))), x0), tf.mul(tf.scalar(f32(Math.sqrt(1 - abar))), noise)));
  }

  dispose(): void {
    this.noise = null;
  }
}

/**
 * Upstream ModelScope's DDIM (GaussianDiffusion.ddim_sample) as a Scheduler: float64 tables, float32 coefficients,
 * eps prediction. `eta` > 0 adds sigma * z each step, z drawn from NoiseGenerator(seed) in the latents' element order.
 */
export function ddimScheduler(schedule: NoiseSchedule = MODELSCOPE_SCHEDULE, opts: SchedulerOptions = {}): Scheduler {
  if (schedule.predictionType !== 'epsilon') throw new Error(`ddim: prediction type ${schedule.predictionType} is not supported (epsilon only)`);
  const eta = opts.eta ?? 0;
  if (!(Number.isFinite(eta) && eta >= 0)) throw new Error(`eta must be a number >= 0, got ${eta}`);
  const tables = scheduleTables(schedule);
  return {
    name: 'ddim',
    schedule,
    start: (steps: number) => new DdimRun(tables, ddimScheduleTimesteps(schedule, steps), steps, schedule.numTrainTimesteps, eta, opts.seed),
  };
}
