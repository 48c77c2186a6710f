import * as tf from '@tensorflow/tfjs';
import type { NoiseSchedule, SamplingRun, Scheduler, SchedulerOptions, StepOutput } from './scheduler.js';
import { addNoiseAtSigma, dataPrediction, expF32, f32, lambdaOf, multistepSchedule, sigmaToAlphaSigmaT, trainingTables, type TrainingTables } from './sigmas.js';
import { StepOrder } from './step-order.js';

/**
 * diffusers' DPMSolverMultistepScheduler as `from_config` builds it from the model's schedule: algorithm_type
 * dpmsolver++, solver_order 2, solver_type midpoint, lower_order_final, euler_at_final false, final_sigmas_type zero
 * (so the last step is first order), use_karras_sigmas from `karrasSigmas`.
 */
export function dpmSolverMultistep(schedule: NoiseSchedule, opts: SchedulerOptions = {}): Scheduler {
  const tables = trainingTables(schedule);
  const karras = opts.karrasSigmas ?? false;
  return {
    name: 'dpm-solver++',
    schedule,
    start: (steps: number) => new DPMSolverRun(schedule, tables, steps, karras),
  };
}

const solver_order = 2;

class DPMSolverRun implements SamplingRun {
  readonly timesteps: number[];
  readonly initNoiseSigma = 1;
  private readonly sigmas: Float32Array;
  private readonly order: StepOrder;
  /** The converted model outputs (x0 predictions) of the last solver_order steps, oldest first. */
  private model_outputs: (tf.Tensor | null)[] = new Array(solver_order).fill(null);
  private lower_order_nums = 0;

  constructor(private readonly schedule: NoiseSchedule, tables: TrainingTables, steps: number, karras: boolean) {
    ({ timesteps: this.timesteps, sigmas: this.sigmas } = multistepSchedule('dpm-solver++', schedule, tables, steps, karras));
    this.order = new StepOrder('dpm-solver++', this.timesteps.length);
  }

  scaleModelInput(x: tf.Tensor, i: number): tf.Tensor {
    this.order.check(i);
    return tf.clone(x);
  }

  /** dpm_solver_first_order_update (DDIM in the data-prediction form). */
  private firstOrderUpdate(model_output: tf.Tensor, sample: tf.Tensor, step_index: number): tf.Tensor {
    const s_t = sigmaToAlphaSigmaT(this.sigmas[step_index + 1]);
    const s_s = sigmaToAlphaSigmaT(this.sigmas[step_index]);
    const lambda_t = lambdaOf(this.sigmas[step_index + 1]);
    const lambda_s = lambdaOf(this.sigmas[step_index]);
    const h = f32(lambda_t - lambda_s);
    const c_sample = f32(s_t.sigma_t / s_s.sigma_t);
    const c_D0 = f32(s_t.alpha_t * f32(expF32(-h) - 1.0));
    return tf.tidy(() => tf.sub(tf.mul(tf.scalar(c_sample), sample), tf.mul(tf.scalar(c_D0), model_output)));
  }

  /** multistep_dpm_solver_second_order_update, midpoint. */
  private secondOrderUpdate(sample: tf.Tensor, step_index: number): tf.Tensor {
    const [m1, m0] = this.model_outputs as tf.Tensor[];
    const s_t = sigmaToAlphaSigmaT(this.sigmas[step_index + 1]);
    const s_s0 = sigmaToAlphaSigmaT(this.sigmas[step_index]);
    const lambda_t = lambdaOf(this.sigmas[step_index + 1]);
    const lambda_s0 = lambdaOf(this.sigmas[step_index]);
    const lambda_s1 = lambdaOf(this.sigmas[step_index - 1]);
    const h = f32(lambda_t - lambda_s0);
    const h_0 = f32(lambda_s0 - lambda_s1);
    const r0 = f32(h_0 / h);
    const c_sample = f32(s_t.sigma_t / s_s0.sigma_t);
    const c_D0 = f32(s_t.alpha_t * f32(expF32(-h) - 1.0));
    const c_D1 = f32(0.5 * c_D0);
    return tf.tidy(() => {
      const D0 = m0;
      const D1 = tf.mul(tf.scalar(f32(1.0 / r0)), tf.sub(m0, m1));
      return tf.sub(tf.sub(tf.mul(tf.scalar(c_sample), sample), tf.mul(tf.scalar(c_D0), D0)), tf.mul(tf.scalar(c_D1), D1));
    });
  }

  step(modelOutput: tf.Tensor, i: number, sample: tf.Tensor): StepOutput {
    this.order.next(i);
    const n = this.timesteps.length;
    // final_sigmas_type "zero": the last step is always first order.
    const lower_order_final = i === n - 1;
    const x0 = dataPrediction(modelOutput, sample, this.sigmas[i], this.schedule.predictionType);
    this.model_outputs[0]?.dispose();
    for (let k = 0; k < solver_order - 1; k++) this.model_outputs[k] = this.model_outputs[k + 1];
    this.model_outputs[solver_order - 1] = x0;
    const prev = this.lower_order_nums < 1 || lower_order_final
      ? this.firstOrderUpdate(x0, sample, i)
      : this.secondOrderUpdate(sample, i);
    if (this.lower_order_nums < solver_order) this.lower_order_nums += 1;
    return { prev, x0: tf.clone(x0) };
  }

  addNoise(x0: tf.Tensor, noise: tf.Tensor, i: number): tf.Tensor {
    this.order.check(i);
    return addNoiseAtSigma(x0, noise, this.sigmas[i]);
  }

  dispose(): void {
    for (const t of this.model_outputs) t?.dispose();
    this.model_outputs = new Array(solver_order).fill(null);
  }
}
