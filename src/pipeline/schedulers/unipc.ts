import * as tf from '@tensorflow/tfjs';
import type { NoiseSchedule, SamplingRun, Scheduler, SchedulerOptions, StepOutput } from './scheduler.js';
import { addNoiseAtSigma, dataPrediction, expm1F32, f32, lambdaOf, multistepSchedule, sigmaToAlphaSigmaT, trainingTables, type TrainingTables } from './sigmas.js';
import { StepOrder } from './step-order.js';

/**
 * diffusers' UniPCMultistepScheduler: solver_type bh2, solver_order 2, predict_x0, lower_order_final, the corrector
 * on every step but the first of a run (disable_corrector empty), final_sigmas_type zero, use_karras_sigmas from
 * `karrasSigmas`.
 */
export function uniPCMultistep(schedule: NoiseSchedule, opts: SchedulerOptions = {}): Scheduler {
  const tables = trainingTables(schedule);
  const karras = opts.karrasSigmas ?? false;
  return { name: 'unipc', schedule, start: (steps: number) => new UniPCRun(schedule, tables, steps, karras) };
}

const solver_order = 2;

/**
 * torch.linalg.solve(R, b) for the order-2 corrector's R = [[1, 1], [rk, 1]] in float32, as torch calls LAPACK for
 * a contiguous R: it factors R^T (= [[1, rk], [1, 1]]: no row swap, multiplier 1, u22 = 1 - rk) and solves with
 * trans 'T' (U^T y = b, then L^T x = y).
 */
function solveCorrector(rk: number, b: number[]): [number, number] {
  const u22 = f32(1 - rk);
  const x2 = f32(f32(b[1] - f32(rk * b[0])) / u22);
  const x1 = f32(b[0] - x2);
  return [x1, x2];
}

/** The bh2 coefficients of one predictor or corrector: h_phi_1, B_h and b (a diffusers loop, order <= 2). */
function bh2(h: number, order: number): { hh: number; h_phi_1: number; B_h: number; b: number[] } {
  const hh = f32(-h); // predict_x0
  const h_phi_1 = expm1F32(hh);
  let h_phi_k = f32(f32(h_phi_1 / hh) - 1);
  let factorial_i = 1;
  const B_h = expm1F32(hh);
  const b: number[] = [];
  for (let i = 1; i <= order; i++) {
    b.push(f32(f32(h_phi_k * factorial_i) / B_h));
    factorial_i *= i + 1;
    h_phi_k = f32(f32(h_phi_k / hh) - f32(1 / factorial_i));
  }
  return { hh, h_phi_1, B_h, b };
}

class UniPCRun implements SamplingRun {
  readonly timesteps: number[];
  readonly initNoiseSigma = 1;
  private readonly sigmas: Float32Array;
  private readonly order: StepOrder;
  /** The converted model outputs (x0 predictions) of the last solver_order steps, oldest first. */
  private model_outputs: (tf.Tensor | null)[] = new Array(solver_order).fill(null);
  private lower_order_nums = 0;
  private last_sample: tf.Tensor | null = null;
  private this_order = 0;

  constructor(private readonly schedule: NoiseSchedule, tables: TrainingTables, steps: number, karras: boolean) {
    ({ timesteps: this.timesteps, sigmas: this.sigmas } = multistepSchedule('unipc', schedule, tables, steps, karras));
    this.order = new StepOrder('unipc', this.timesteps.length);
  }

  scaleModelInput(x: tf.Tensor, i: number): tf.Tensor {
    this.order.check(i);
    return tf.clone(x);
  }

  /** multistep_uni_p_bh_update: the predictor from sigmas[step_index] to sigmas[step_index + 1]. */
  private predictor(x: tf.Tensor, step_index: number, order: number): tf.Tensor {
    const m0 = this.model_outputs[solver_order - 1] as tf.Tensor;
    const t = sigmaToAlphaSigmaT(this.sigmas[step_index + 1]);
    const s0 = sigmaToAlphaSigmaT(this.sigmas[step_index]);
    const lambda_s0 = lambdaOf(this.sigmas[step_index]);
    const h = f32(lambdaOf(this.sigmas[step_index + 1]) - lambda_s0);
    const { h_phi_1, B_h } = bh2(h, order);
    const c_x = f32(t.sigma_t / s0.sigma_t);
    const c_m0 = f32(t.alpha_t * h_phi_1);
    const c_res = f32(t.alpha_t * B_h);
    return tf.tidy(() => {
      const x_t_ = tf.sub(tf.mul(tf.scalar(c_x), x), tf.mul(tf.scalar(c_m0), m0));
      if (order === 1) return x_t_;
      const mi = this.model_outputs[solver_order - 2] as tf.Tensor;
      const rk = f32(f32(lambdaOf(this.sigmas[step_index - 1]) - lambda_s0) / h);
      const D1 = tf.div(tf.sub(mi, m0), tf.scalar(rk));
      const pred_res = tf.mul(tf.scalar(0.5), D1); // rhos_p = [0.5] for order 2
      return tf.sub(x_t_, tf.mul(tf.scalar(c_res), pred_res));
    });
  }

  /**
   * multistep_uni_c_bh_update: corrects this step's sample (the last predictor's output) with the model output
   * just computed at it, before the history moves on.
   */
  private corrector(model_t: tf.Tensor, step_index: number, order: number): tf.Tensor {
    const m0 = this.model_outputs[solver_order - 1] as tf.Tensor;
    const x = this.last_sample as tf.Tensor;
    const t = sigmaToAlphaSigmaT(this.sigmas[step_index]);
    const s0 = sigmaToAlphaSigmaT(this.sigmas[step_index - 1]);
    const lambda_s0 = lambdaOf(this.sigmas[step_index - 1]);
    const h = f32(lambdaOf(this.sigmas[step_index]) - lambda_s0);
    const { h_phi_1, B_h, b } = bh2(h, order);
    let rhos_c: number[];
    let rk = 0;
    if (order === 1) {
      rhos_c = [0.5];
    } else {
      rk = f32(f32(lambdaOf(this.sigmas[step_index - 2]) - lambda_s0) / h);
      rhos_c = solveCorrector(rk, b);
    }
    const c_x = f32(t.sigma_t / s0.sigma_t);
    const c_m0 = f32(t.alpha_t * h_phi_1);
    const c_res = f32(t.alpha_t * B_h);
    return tf.tidy(() => {
      const x_t_ = tf.sub(tf.mul(tf.scalar(c_x), x), tf.mul(tf.scalar(c_m0), m0));
      const D1_t = tf.sub(model_t, m0);
      let res = tf.mul(tf.scalar(rhos_c[rhos_c.length - 1]), D1_t);
      if (order === 2) {
        const mi = this.model_outputs[solver_order - 2] as tf.Tensor;
        const D1 = tf.div(tf.sub(mi, m0), tf.scalar(rk));
        res = tf.add(tf.mul(tf.scalar(rhos_c[0]), D1), res);
      }
      return tf.sub(x_t_, tf.mul(tf.scalar(c_res), res));
    });
  }

  step(modelOutput: tf.Tensor, i: number, x: tf.Tensor): StepOutput {
    this.order.next(i);
    const model_output_convert = dataPrediction(modelOutput, x, this.sigmas[i], this.schedule.predictionType);
    // The corrected sample replaces x as the starting point of this step's predictor (and the next corrector).
    const use_corrector = i > 0 && this.last_sample !== null;
    const sample = use_corrector ? this.corrector(model_output_convert, i, this.this_order) : tf.clone(x);
    this.model_outputs[0]?.dispose();
    for (let k = 0; k < solver_order - 1; k++) this.model_outputs[k] = this.model_outputs[k + 1];
    this.model_outputs[solver_order - 1] = model_output_convert;
    const this_order = Math.min(solver_order, this.timesteps.length - i); // lower_order_final
    this.this_order = Math.min(this_order, this.lower_order_nums + 1);
    this.last_sample?.dispose();
    this.last_sample = sample;
    const prev = this.predictor(sample, i, this.this_order);
    if (this.lower_order_nums < solver_order) this.lower_order_nums += 1;
    return { prev, x0: tf.clone(model_output_convert) };
  }

  addNoise(x0: tf.Tensor, noise: tf.Tensor, i: number): tf.Tensor {
    this.order.check(i);
    return addNoiseAtSigma(x0, noise, this.sigmas[i]);
  }

  dispose(): void {
    for (const t of this.model_outputs) t?.dispose();
    this.model_outputs = new Array(solver_order).fill(null);
    this.last_sample?.dispose();
    this.last_sample = null;
  }
}
