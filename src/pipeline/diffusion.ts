// Upstream GaussianDiffusion's arithmetic (ModelScope's diffusion.py): the float64 noise tables, DDIM's timesteps,
// coefficients and step, classifier-free guidance. The samplers in schedulers/ build on it.
import * as tf from '@tensorflow/tfjs';

/** The noise schedule upstream builds: `beta_schedule('linear_sd', 1000, 0.00085, 0.012)`, eps prediction. */
export interface ScheduleConfig {
  numTimesteps: number;
  betaStart: number;
  betaEnd: number;
}

export const DEFAULT_SCHEDULE: ScheduleConfig = { numTimesteps: 1000, betaStart: 0.00085, betaEnd: 0.012 };

/** torch.linspace on CPU in float64: the first half counts up from start, the second half down from end. */
export function linspace(start: number, end: number, n: number): Float64Array {
  const out = new Float64Array(n);
  if (n === 1) {
    out[0] = start;
    return out;
  }
  const step = (end - start) / (n - 1);
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < half ? start + step * i : end - step * (n - i - 1);
  return out;
}

/** The float64 tables of GaussianDiffusion that DDIM sampling reads. */
export interface DiffusionTables {
  betas: Float64Array;
  alphasCumprod: Float64Array;
  sqrtRecipAlphasCumprod: Float64Array;
  sqrtRecipm1AlphasCumprod: Float64Array;
}

/** `betaSchedule` 'linear' spaces the betas themselves; the default is upstream's 'linear_sd' (diffusers' 'scaled_linear'). */
export function diffusionTables(cfg: ScheduleConfig & { betaSchedule?: 'scaled_linear' | 'linear' } = DEFAULT_SCHEDULE): DiffusionTables {
  const n = cfg.numTimesteps;
  const betas = cfg.betaSchedule === 'linear'
    ? linspace(cfg.betaStart, cfg.betaEnd, n)
    : linspace(cfg.betaStart ** 0.5, cfg.betaEnd ** 0.5, n).map((b) => b * b);
  const alphasCumprod = new Float64Array(n);
  let acc = 1;
  for (let i = 0; i < n; i++) {
    acc *= 1 - betas[i];
    alphasCumprod[i] = acc;
  }
  return {
    betas,
    alphasCumprod,
    sqrtRecipAlphasCumprod: alphasCumprod.map((a) => Math.sqrt(1 / a)),
    sqrtRecipm1AlphasCumprod: alphasCumprod.map((a) => Math.sqrt(1 / a - 1)),
  };
}

/**
 * Upstream's DDIM timesteps: `(1 + arange(0, T, T // steps)).clamp(0, T - 1).flip(0)`. When `steps` does not divide
 * T there is one more timestep than asked for (steps 3: 999, 667, 334, 1), exactly as upstream samples.
 */
export function ddimTimesteps(steps: number, numTimesteps = DEFAULT_SCHEDULE.numTimesteps): number[] {
  if (!Number.isInteger(steps) || steps < 1 || steps > numTimesteps) {
    throw new Error(`steps must be an integer in 1..${numTimesteps}, got ${steps}`);
  }
  const stride = Math.floor(numTimesteps / steps);
  const ts: number[] = [];
  for (let i = 0; i < numTimesteps; i += stride) ts.push(Math.min(1 + i, numTimesteps - 1));
  return ts.reverse();
}

/**
 * The float32 coefficients of one DDIM step at timestep t, as upstream's ddim_sample casts them (`_i(table, t, x)`
 * is a float32 value): sigma = eta * sqrt((1 - ap) / (1 - at) * (1 - at / ap)).
 */
export interface DdimCoefficients {
  t: number;
  prevT: number;
  /** sqrt(1 / abar_t) and sqrt(1 / abar_t - 1): x0 = a * xt - b * eps_model; eps = (a * xt - x0) / b. */
  sqrtRecip: number;
  sqrtRecipm1: number;
  /** sqrt(abar_prev) and sqrt(1 - abar_prev - sigma^2), computed in float32 from float32 abar_prev. */
  sqrtAlphaPrev: number;
  sqrtDirection: number;
  /** The standard deviation of the noise the step adds (0 for eta 0). */
  sigma: number;
}

const f32 = Math.fround;

export function ddimCoefficients(tables: DiffusionTables, t: number, stride: number, eta = 0): DdimCoefficients {
  const prevT = Math.max(t - stride, 0);
  const at = f32(tables.alphasCumprod[t]);
  const ap = f32(tables.alphasCumprod[prevT]);
  // eta = 0: sigma = 0 * sqrt(...) = 0, so 1 - abar_prev - sigma^2 is 1 - abar_prev rounded to float32.
  const sigma = eta === 0 ? 0
    : f32(f32(eta) * f32(Math.sqrt(f32(f32(f32(1 - ap) / f32(1 - at)) * f32(1 - f32(at / ap))))));
  return {
    t,
    prevT,
    sqrtRecip: f32(tables.sqrtRecipAlphasCumprod[t]),
    sqrtRecipm1: f32(tables.sqrtRecipm1AlphasCumprod[t]),
    sqrtAlphaPrev: f32(Math.sqrt(ap)),
    sqrtDirection: f32(Math.sqrt(f32(f32(1 - ap) - f32(sigma * sigma)))),
    sigma,
  };
}

/** Classifier-free guidance as upstream: `u + g * (c - u)`, each operation in float32. */
export function guide(cond: tf.Tensor, uncond: tf.Tensor, scale: number): tf.Tensor {
  return tf.tidy(() => tf.add(uncond, tf.mul(tf.scalar(f32(scale)), tf.sub(cond, uncond))));
}

/**
 * One DDIM step from the guided model output, in upstream's order of float32 operations:
 * x0 = a*xt - b*out; eps = (a*xt - x0) / b; x_prev = sqrt(abar_prev)*x0 + sqrt(1 - abar_prev - sigma^2)*eps
 * (+ sigma * z when the step's noise z is given). Returns [x_prev, x0].
 */
export function ddimStep(xt: tf.Tensor, out: tf.Tensor, c: DdimCoefficients, z?: Float32Array): [tf.Tensor, tf.Tensor] {
  return tf.tidy(() => {
    const a = tf.scalar(c.sqrtRecip);
    const b = tf.scalar(c.sqrtRecipm1);
    const x0 = tf.sub(tf.mul(a, xt), tf.mul(b, out));
    const eps = tf.div(tf.sub(tf.mul(a, xt), x0), b);
    let prev = tf.add(tf.mul(tf.scalar(c.sqrtAlphaPrev), x0), tf.mul(tf.scalar(c.sqrtDirection), eps));
    if (z) prev = tf.add(prev, tf.mul(tf.scalar(c.sigma), tf.tensor(z, xt.shape, 'float32')));
    return [prev, x0];
  });
}

/** The DDIM sampler: a small object holding the schedule, as diffusers' schedulers are. */
export class DDIMScheduler {
  readonly tables: DiffusionTables;
  constructor(readonly config: ScheduleConfig = DEFAULT_SCHEDULE) {
    this.tables = diffusionTables(config);
  }

  timesteps(steps: number): number[] {
    return ddimTimesteps(steps, this.config.numTimesteps);
  }

  coefficients(t: number, steps: number): DdimCoefficients {
    return ddimCoefficients(this.tables, t, Math.floor(this.config.numTimesteps / steps));
  }

  step(xt: tf.Tensor, out: tf.Tensor, t: number, steps: number): [tf.Tensor, tf.Tensor] {
    return ddimStep(xt, out, this.coefficients(t, steps));
  }
}
