import * as tf from '@tensorflow/tfjs';
import type { NoiseSchedule, SamplingRun, Scheduler, SchedulerOptions, StepOutput } from './scheduler.js';
import { eulerSchedule, f32, spacing, type TrainingTables, trainingTables } from './sigmas.js';
import { StepOrder } from './step-order.js';

/**
 * diffusers' EulerDiscreteScheduler (deterministic: s_churn 0): the model sees x / sqrt(sigma^2 + 1), the initial
 * noise is scaled by init_noise_sigma, use_karras_sigmas from `karrasSigmas`. With Karras sigmas the timesteps are
 * fractional (float32), as diffusers passes them to the model.
 */
export function eulerDiscrete(schedule: NoiseSchedule, opts: SchedulerOptions = {}): Scheduler {
  const tables = trainingTables(schedule);
  const karras = opts.karrasSigmas ?? false;
  return { name: 'euler', schedule, start: (steps: number) => new EulerRun(schedule, tables, steps, karras) };
}

/** (sigma ** 2 + 1) ** 0.5 in float32. */
const inputScale = (sigma: number): number => f32(Math.sqrt(f32(f32(sigma * sigma) + 1)));

class EulerRun implements SamplingRun {
  readonly timesteps: number[];
  readonly initNoiseSigma: number;
  private readonly sigmas: Float32Array;
  private readonly order: StepOrder;

  constructor(private readonly schedule: NoiseSchedule, tables: TrainingTables, steps: number, karras: boolean) {
    ({ timesteps: this.timesteps, sigmas: this.sigmas } = eulerSchedule(schedule, tables, steps, karras));
    this.order = new StepOrder('euler', this.timesteps.length);
    const max_sigma = this.sigmas.reduce((a, b) => Math.max(a, b), 0);
    this.initNoiseSigma = spacing(schedule) === 'leading' ? inputScale(max_sigma) : max_sigma;
  }

  scaleModelInput(x: tf.Tensor, i: number): tf.Tensor {
    this.order.check(i);
    const s = inputScale(this.sigmas[i]);
    return tf.tidy(() => tf.div(x, tf.scalar(s)));
  }

  step(modelOutput: tf.Tensor, i: number, sample: tf.Tensor): StepOutput {
    this.order.check(i);
    const sigma = this.sigmas[i];
    const sigma_hat = sigma; // sigma * (gamma + 1) with gamma 0 (s_churn 0)
    const dt = f32(this.sigmas[i + 1] - sigma_hat);
    return tf.tidy(() => {
      let pred_original_sample: tf.Tensor;
      if (this.schedule.predictionType === 'v_prediction') {
        const s2p1 = f32(f32(sigma * sigma) + 1);
        pred_original_sample = tf.add(
          tf.mul(modelOutput, tf.scalar(f32(-sigma / f32(Math.sqrt(s2p1))))), tf.div(sample, tf.scalar(s2p1)));
      } else {
        pred_original_sample = tf.sub(sample, tf.mul(tf.scalar(sigma_hat), modelOutput));
      }
      const derivative = tf.div(tf.sub(sample, pred_original_sample), tf.scalar(sigma_hat));
      const prev = tf.add(sample, tf.mul(derivative, tf.scalar(dt)));
      return { prev, x0: pred_original_sample };
    });
  }

  addNoise(x0: tf.Tensor, noise: tf.Tensor, i: number): tf.Tensor {
    this.order.check(i);
    const sigma = this.sigmas[i];
    return tf.tidy(() => tf.add(x0, tf.mul(noise, tf.scalar(sigma))));
  }

  dispose(): void {}
}
