import type * as tf from '@tensorflow/tfjs';

/**
 * The model's training noise schedule and timestep rule, in diffusers' scheduler_config.json terms. Every scheduler is
 * built from it (diffusers' `from_config`): t2v.json's "scheduler" maps onto it (`noiseScheduleFromInfo`), so the
 * ModelScope release and a diffusers folder feed the same numbers to DDIM, DPM-Solver++, Euler and UniPC.
 */
export interface NoiseSchedule {
  numTrainTimesteps: number;
  betaStart: number;
  betaEnd: number;
  /** ModelScope's 'linear_sd' is diffusers' 'scaled_linear': linspace(sqrt(start), sqrt(end), n)^2. */
  betaSchedule: 'scaled_linear' | 'linear';
  predictionType: 'epsilon' | 'v_prediction';
  stepsOffset: number;
  /**
   * Absent where the model's config does not say (the ms-1.7b release's does not): each scheduler then takes its own
   * default, as diffusers' `from_config` does: DDIM 'leading', DPM-Solver++, Euler and UniPC 'linspace'.
   */
  timestepSpacing?: 'leading' | 'linspace' | 'trailing';
}

/** The ModelScope release as the diffusers folder damo-vilab/text-to-video-ms-1.7b states it. */
export const MODELSCOPE_SCHEDULE: NoiseSchedule = {
  numTrainTimesteps: 1000, betaStart: 0.00085, betaEnd: 0.012, betaSchedule: 'scaled_linear',
  predictionType: 'epsilon', stepsOffset: 1,
};

export const SCHEDULER_NAMES = ['ddim', 'dpm-solver++', 'euler', 'unipc'] as const;
export type SchedulerName = typeof SCHEDULER_NAMES[number];

export interface SchedulerOptions {
  /** DDIM's eta (default 0: deterministic). */
  eta?: number;
  /** DPM-Solver++ (and Euler, UniPC where diffusers has it): Karras et al.'s sigmas instead of the schedule's. */
  karrasSigmas?: boolean;
  /** Seed of the noise a stochastic step adds (DDIM with eta > 0). */
  seed?: number;
}

/** The result of one step: the previous (less noisy) latents and the step's estimate of the clean latents. */
export interface StepOutput {
  prev: tf.Tensor;
  x0: tf.Tensor;
}

/**
 * One generation's sampling state (timesteps, the multistep solvers' history), made by `Scheduler.start` and
 * disposed after the loop, so a scheduler object can serve many generations. Step indices are absolute indices into
 * `timesteps`; video-to-video starts at a later index and noises its latents to that index with `addNoise`.
 * Every method returns new tensors (the caller disposes them) and leaves its arguments alone.
 */
export interface SamplingRun {
  /** The timestep given to the model at each step, in sampling order. */
  readonly timesteps: number[];
  /** What the initial standard-normal noise is multiplied by (Euler: the largest sigma; others 1). */
  readonly initNoiseSigma: number;
  /** The model's input at step i (Euler divides by sqrt(sigma^2 + 1); others return a copy of x). */
  scaleModelInput(x: tf.Tensor, i: number): tf.Tensor;
  /** One step from the (guided) model output at step i and the current latents. */
  step(modelOutput: tf.Tensor, i: number, x: tf.Tensor): StepOutput;
  /** Clean latents noised to the noise level of step i (video-to-video's start). */
  addNoise(x0: tf.Tensor, noise: tf.Tensor, i: number): tf.Tensor;
  /** Frees the tensors the run keeps between steps. */
  dispose(): void;
}

export interface Scheduler {
  readonly name: SchedulerName;
  readonly schedule: NoiseSchedule;
  /** A fresh run of `steps` inference steps. */
  start(steps: number): SamplingRun;
}
