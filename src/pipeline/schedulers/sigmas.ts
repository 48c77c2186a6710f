import * as tf from '@tensorflow/tfjs';
import type { NoiseSchedule } from './scheduler.js';

/**
 * The numbers diffusers' DPMSolverMultistepScheduler, EulerDiscreteScheduler and UniPCMultistepScheduler compute
 * before sampling: the training tables in torch float32, the inference timesteps and sigmas in numpy float64 (cast to
 * float32 at the end, as they are), Karras et al.'s sigmas, and the float32 scalar maths of their steps. Names follow
 * diffusers so the two read side by side.
 */

export const f32 = Math.fround;

/** torch's float32 scalar functions of a 0-d tensor, rounded once from the double result. */
export const logF32 = (x: number): number => f32(Math.log(x));
export const expF32 = (x: number): number => f32(Math.exp(x));
export const expm1F32 = (x: number): number => f32(Math.expm1(x));

/**
 * torch.linspace(start, end, steps, dtype=float32) as torch's CPU kernel computes it: step = (end - start) / (steps - 1)
 * in float32; the first half counts up from start and the second half down from end; values are written 8 lanes at a
 * time, in pairs of vectors (each vector's first value by a fused multiply-add, the others base + k * step), and the
 * last steps % 16 one by one. This reproduces the betas of torch 1.13's AVX2 kernel bit for bit; other vector widths
 * differ in the last bit of a few values.
 */
export function torchLinspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  const s = f32(start);
  const e = f32(end);
  if (steps === 1) {
    out[0] = s;
    return out;
  }
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  // b * c is exact in double for these magnitudes, so this is one rounding, as an FMA.
  const at = (idx: number) => (idx < halfway ? f32(s + step * idx) : f32(e - step * (steps - idx - 1)));
  const vectorEnd = Math.floor(steps / 16) * 16;
  for (let base = 0; base < vectorEnd; base += 8) {
    const b = at(base);
    out[base] = b;
    for (let k = 1; k < 8; k++) out[base + k] = f32(b + f32(k * step));
  }
  for (let idx = vectorEnd; idx < steps; idx++) out[idx] = at(idx);
  return out;
}

/** The schedule's training tables as the schedulers' __init__ builds them (all float32, as torch keeps them). */
export interface TrainingTables {
  betas: Float32Array;
  alphas_cumprod: Float32Array;
  /** ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5, one per training timestep. */
  sigmas: Float32Array;
  /** np.log of those float32 sigmas (float32). */
  log_sigmas: Float32Array;
}

export function trainingTables(schedule: NoiseSchedule): TrainingTables {
  const n = schedule.numTrainTimesteps;
  let betas: Float32Array;
  if (schedule.betaSchedule === 'scaled_linear') {
    betas = torchLinspaceF32(Math.sqrt(schedule.betaStart), Math.sqrt(schedule.betaEnd), n).map((b) => f32(b * b));
  } else if (schedule.betaSchedule === 'linear') {
    betas = torchLinspaceF32(schedule.betaStart, schedule.betaEnd, n);
  } else {
    throw new Error(`beta schedule "${String(schedule.betaSchedule)}" is not supported (scaled_linear, linear)`);
  }
  // torch.cumprod on the CPU accumulates float32 input in double and rounds each output.
  const alphas_cumprod = new Float32Array(n);
  let acc = 1;
  for (let i = 0; i < n; i++) {
    acc *= f32(1 - betas[i]);
    alphas_cumprod[i] = acc;
  }
  const sigmas = alphas_cumprod.map((a) => f32(Math.sqrt(f32(f32(1 - a) / a))));
  return { betas, alphas_cumprod, sigmas, log_sigmas: sigmas.map(logF32) };
}

/** numpy's round: halves to even. */
export function roundHalfEven(x: number): number {
  const fl = Math.floor(x);
  const d = x - fl;
  if (d > 0.5) return fl + 1;
  if (d < 0.5) return fl;
  return fl % 2 === 0 ? fl : fl + 1;
}

/** np.linspace(start, stop, num) in float64: start + i * step, the last value exactly stop. */
export function npLinspace(start: number, stop: number, num: number): Float64Array {
  const y = new Float64Array(num);
  const div = num - 1;
  const step = (stop - start) / div;
  for (let i = 0; i < num; i++) y[i] = (div > 0 ? i * step : i * (stop - start)) + start;
  if (num > 1) y[num - 1] = stop;
  return y;
}

/** np.arange(start, stop, step) in float64: numpy fills start + i * ((start + step) - start). */
export function npArange(start: number, stop: number, step: number): Float64Array {
  const len = Math.max(Math.ceil((stop - start) / step), 0);
  const y = new Float64Array(len);
  const delta = start + step - start;
  for (let i = 0; i < len; i++) y[i] = i === 0 ? start : i === 1 ? start + step : start + i * delta;
  return y;
}

/** np.interp(x, np.arange(0, len(fp)), fp) in float64. */
export function interpArange(x: number, fp: ArrayLike<number>): number {
  const n = fp.length;
  if (x <= 0) return fp[0];
  if (x >= n - 1) return fp[n - 1];
  const j = Math.floor(x);
  if (j === x) return fp[j];
  const slope = fp[j + 1] - fp[j];
  return slope * (x - j) + fp[j];
}

/** Karras et al. (2022) sigmas, rho 7, from sigma_max down to sigma_min (float64, `_convert_to_karras`). */
export function convertToKarras(sigma_min: number, sigma_max: number, num_inference_steps: number): Float64Array {
  const rho = 7.0;
  const ramp = npLinspace(0, 1, num_inference_steps);
  const min_inv_rho = sigma_min ** (1 / rho);
  const max_inv_rho = sigma_max ** (1 / rho);
  return ramp.map((r) => (max_inv_rho + r * (min_inv_rho - max_inv_rho)) ** rho);
}

/**
 * `_sigma_to_t`: the (fractional) training timestep of a sigma, interpolating log sigma between its neighbours.
 * The comparison runs in float32 as numpy 1.x does for a float64 scalar against the float32 table.
 */
export function sigmaToT(sigma: number, log_sigmas: Float32Array): number {
  const log_sigma = Math.log(Math.max(sigma, 1e-10));
  const ls32 = f32(log_sigma);
  let count = 0;
  while (count < log_sigmas.length && log_sigmas[count] <= ls32) count++;
  const low_idx = Math.min(Math.max(count - 1, 0), log_sigmas.length - 2);
  const high_idx = low_idx + 1;
  const low = log_sigmas[low_idx];
  const high = log_sigmas[high_idx];
  let w = (low - log_sigma) / f32(low - high);
  w = Math.min(Math.max(w, 0), 1);
  return (1 - w) * low_idx + w * high_idx;
}

/** `_sigma_to_alpha_sigma_t` in float32: alpha_t = 1 / sqrt(sigma^2 + 1), sigma_t = sigma * alpha_t. */
export function sigmaToAlphaSigmaT(sigma: number): { alpha_t: number; sigma_t: number } {
  const alpha_t = f32(1 / f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  return { alpha_t, sigma_t: f32(sigma * alpha_t) };
}

/** lambda = log(alpha_t) - log(sigma_t), each log a float32 torch.log. */
export function lambdaOf(sigma: number): number {
  const { alpha_t, sigma_t } = sigmaToAlphaSigmaT(sigma);
  return f32(logF32(alpha_t) - logF32(sigma_t));
}

/** The timesteps and sigmas of one `set_timesteps(steps)`; sigmas has one more entry, the final 0. */
export interface InferenceSchedule {
  timesteps: number[];
  sigmas: Float32Array;
}

/** The timestep spacing of DPMSolverMultistep, EulerDiscrete and UniPCMultistep: 'linspace' where the config is silent. */
export function spacing(schedule: NoiseSchedule): NonNullable<NoiseSchedule['timestepSpacing']> {
  return schedule.timestepSpacing ?? 'linspace';
}

function checkSteps(name: string, schedule: NoiseSchedule, steps: number): void {
  if (!Number.isInteger(steps) || steps < 1 || steps > schedule.numTrainTimesteps) {
    throw new Error(`${name}: steps must be an integer in 1..${schedule.numTrainTimesteps}, got ${steps}`);
  }
}

/** Integer timesteps by spacing, as DPMSolverMultistepScheduler and UniPCMultistepScheduler space them. */
function multistepTimesteps(schedule: NoiseSchedule, num_inference_steps: number): number[] {
  const T = schedule.numTrainTimesteps;
  if (spacing(schedule) === 'linspace') {
    return Array.from(npLinspace(0, T - 1, num_inference_steps + 1), roundHalfEven).reverse().slice(0, -1);
  }
  if (spacing(schedule) === 'leading') {
    const step_ratio = Math.floor(T / (num_inference_steps + 1));
    const ts: number[] = [];
    for (let i = num_inference_steps; i >= 1; i--) ts.push(i * step_ratio + schedule.stepsOffset);
    return ts;
  }
  if (spacing(schedule) === 'trailing') {
    const step_ratio = T / num_inference_steps;
    return Array.from(npArange(T, 0, -step_ratio), (t) => roundHalfEven(t) - 1);
  }
  throw new Error(`timestep spacing "${String(spacing(schedule))}" is not supported (linspace, leading, trailing)`);
}

/** DPMSolverMultistepScheduler.set_timesteps (and UniPCMultistepScheduler's, the same for these options). */
export function multistepSchedule(
  name: string, schedule: NoiseSchedule, tables: TrainingTables, steps: number, karras: boolean,
): InferenceSchedule {
  checkSteps(name, schedule, steps);
  let timesteps = multistepTimesteps(schedule, steps);
  let sigmas: ArrayLike<number>;
  if (karras) {
    const T = tables.sigmas.length;
    sigmas = convertToKarras(tables.sigmas[0], tables.sigmas[T - 1], steps);
    timesteps = Array.from(sigmas, (s) => roundHalfEven(sigmaToT(s, tables.log_sigmas)));
  } else {
    sigmas = timesteps.map((t) => interpArange(t, tables.sigmas));
  }
  return { timesteps, sigmas: Float32Array.from([...Array.from(sigmas), 0]) };
}

/** EulerDiscreteScheduler.set_timesteps: float32 timesteps (fractional with Karras sigmas). */
export function eulerSchedule(
  schedule: NoiseSchedule, tables: TrainingTables, steps: number, karras: boolean,
): InferenceSchedule {
  checkSteps('euler', schedule, steps);
  const T = schedule.numTrainTimesteps;
  let timesteps: number[];
  if (spacing(schedule) === 'linspace') {
    timesteps = Array.from(npLinspace(0, T - 1, steps), f32).reverse();
  } else if (spacing(schedule) === 'leading') {
    const step_ratio = Math.floor(T / steps);
    timesteps = [];
    for (let i = steps - 1; i >= 0; i--) timesteps.push(f32(i * step_ratio + schedule.stepsOffset));
  } else if (spacing(schedule) === 'trailing') {
    timesteps = Array.from(npArange(T, 0, -T / steps), (t) => f32(roundHalfEven(t) - 1));
  } else {
    throw new Error(`timestep spacing "${String(spacing(schedule))}" is not supported (linspace, leading, trailing)`);
  }
  let sigmas: ArrayLike<number> = timesteps.map((t) => interpArange(t, tables.sigmas));
  if (karras) {
    sigmas = convertToKarras(sigmas[sigmas.length - 1], sigmas[0], steps);
    timesteps = Array.from(sigmas, (s) => f32(sigmaToT(s, tables.log_sigmas)));
  }
  return { timesteps, sigmas: Float32Array.from([...Array.from(sigmas), 0]) };
}

/**
 * convert_model_output of the multistep solvers (DPM-Solver++, UniPC with predict_x0): the data prediction x0 from
 * the model output at a step's sigma.
 */
export function dataPrediction(model_output: tf.Tensor, sample: tf.Tensor, sigma: number, prediction: NoiseSchedule['predictionType']): tf.Tensor {
  const { alpha_t, sigma_t } = sigmaToAlphaSigmaT(sigma);
  return tf.tidy(() => {
    if (prediction === 'v_prediction') {
      return tf.sub(tf.mul(tf.scalar(alpha_t), sample), tf.mul(tf.scalar(sigma_t), model_output));
    }
    return tf.div(tf.sub(sample, tf.mul(tf.scalar(sigma_t), model_output)), tf.scalar(alpha_t));
  });
}

/** add_noise of the sigma-parameterised solvers: alpha_t * x0 + sigma_t * noise at a step's sigma. */
export function addNoiseAtSigma(x0: tf.Tensor, noise: tf.Tensor, sigma: number): tf.Tensor {
  const { alpha_t, sigma_t } = sigmaToAlphaSigmaT(sigma);
  return tf.tidy(() => tf.add(tf.mul(tf.scalar(alpha_t), x0), tf.mul(tf.scalar(sigma_t), noise)));
}
