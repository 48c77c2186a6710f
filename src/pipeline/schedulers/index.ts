import type { ModelInfo } from '../../io/model-folder.js';
import { ddimScheduler } from './ddim.js';
import {
  MODELSCOPE_SCHEDULE, SCHEDULER_NAMES, type NoiseSchedule, type Scheduler, type SchedulerName, type SchedulerOptions,
} from './scheduler.js';

/**
 * A model's schedule as its config states it. `timestepSpacingStated: false` marks a config without
 * timestep_spacing (the released ms-1.7b config, from diffusers 0.15, as the test fixture copies it): diffusers' `from_config` then
 * gives each scheduler its own default, 'leading' for DDIMScheduler and 'linspace' for DPMSolverMultistep, Euler and
 * UniPC (the key is listed in `_use_default_values` and not carried over), and createScheduler does the same.
 */
export type ModelNoiseSchedule = NoiseSchedule & { timestepSpacingStated?: boolean };

/** The spacing a scheduler gets from a config without timestep_spacing, as in diffusers. */
const DEFAULT_SPACING: Record<SchedulerName, NoiseSchedule['timestepSpacing']> = {
  ddim: 'leading', 'dpm-solver++': 'linspace', euler: 'linspace', unipc: 'linspace',
};

export type SchedulerFactory = (schedule: NoiseSchedule, opts: SchedulerOptions) => Scheduler;

/** The schedulers this build has, by name (one line per scheduler). */
export const SCHEDULERS: Partial<Record<SchedulerName, SchedulerFactory>> = {
  ddim: ddimScheduler,
};

/** A scheduler by name, built from the model's schedule. */
export function createScheduler(name: SchedulerName, schedule: ModelNoiseSchedule, opts: SchedulerOptions = {}): Scheduler {
  const make = Object.prototype.hasOwnProperty.call(SCHEDULERS, name) ? SCHEDULERS[name] : undefined;
  if (!make) {
    const known = (SCHEDULER_NAMES as readonly string[]).includes(name);
    throw new Error(known
      ? `scheduler ${name} is not available in this build (available: ${Object.keys(SCHEDULERS).join(', ')})`
      : `unknown scheduler ${JSON.stringify(name)}: use one of ${SCHEDULER_NAMES.join(', ')}`);
  }
  const { timestepSpacingStated, ...own } = schedule;
  return make(timestepSpacingStated === false ? { ...own, timestepSpacing: DEFAULT_SPACING[name] } : own, opts);
}

type InfoSchedule = ModelInfo['scheduler'] & { steps_offset?: unknown; timestep_spacing?: unknown };

const SPACINGS = ['leading', 'linspace', 'trailing'] as const;

/**
 * The NoiseSchedule of t2v.json's "scheduler". ModelScope folders (no steps_offset) get the release's values
 * (MODELSCOPE_SCHEDULE: 'leading', steps_offset 1, which is upstream's DDIM rule), with the spacing marked as not
 * stated, as in the release's diffusers config; diffusers folders carry their scheduler_config.json's steps_offset
 * and timestep_spacing where it has one (converters/diffusers.ts).
 */
export function noiseScheduleFromInfo(info: InfoSchedule | undefined): ModelNoiseSchedule {
  if (!info) return { ...MODELSCOPE_SCHEDULE, timestepSpacingStated: false };
  const betaSchedule = ({ linear_sd: 'scaled_linear', scaled_linear: 'scaled_linear', linear: 'linear' } as const)[info.beta_schedule as 'linear'];
  if (!betaSchedule) throw new Error(`scheduler beta_schedule ${JSON.stringify(info.beta_schedule)} is not supported (linear_sd or linear)`);
  const predictionType = ({ eps: 'epsilon', v: 'v_prediction' } as const)[info.mean_type as 'eps'];
  if (!predictionType) throw new Error(`scheduler mean_type ${JSON.stringify(info.mean_type)} is not supported (eps or v)`);
  const base = {
    numTrainTimesteps: info.num_timesteps, betaStart: info.beta_start, betaEnd: info.beta_end, betaSchedule, predictionType,
  };
  if (typeof info.steps_offset !== 'number') {
    return { ...base, stepsOffset: MODELSCOPE_SCHEDULE.stepsOffset, timestepSpacing: MODELSCOPE_SCHEDULE.timestepSpacing, timestepSpacingStated: false };
  }
  if (info.timestep_spacing === undefined) return { ...base, stepsOffset: info.steps_offset, timestepSpacing: 'leading', timestepSpacingStated: false };
  const spacing = info.timestep_spacing;
  if (!(SPACINGS as readonly unknown[]).includes(spacing)) {
    throw new Error(`scheduler timestep_spacing ${JSON.stringify(spacing)} is not supported (${SPACINGS.join(', ')})`);
  }
  return { ...base, stepsOffset: info.steps_offset, timestepSpacing: spacing as NoiseSchedule['timestepSpacing'] };
}

export { ddimScheduler } from './ddim.js';
export * from './scheduler.js';
