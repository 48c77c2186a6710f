import type { ModelInfo } from '../../io/model-folder.js';
import { ddimScheduler } from './ddim.js';
import { dpmSolverMultistep } from './dpm-solver.js';
import { eulerDiscrete } from './euler.js';
import { uniPCMultistep } from './unipc.js';
import {
  MODELSCOPE_SCHEDULE, SCHEDULER_NAMES, type NoiseSchedule, type Scheduler, type SchedulerName, type SchedulerOptions,
} from './scheduler.js';

export type SchedulerFactory = (schedule: NoiseSchedule, opts: SchedulerOptions) => Scheduler;

/** The schedulers this build has, by name (one line per scheduler). */
export const SCHEDULERS: Partial<Record<SchedulerName, SchedulerFactory>> = {
  ddim: ddimScheduler,
  'dpm-solver++': dpmSolverMultistep,
  euler: eulerDiscrete,
  unipc: uniPCMultistep,
};

/**
 * A scheduler by name, built from the model's schedule. A schedule without timestepSpacing (the ms-1.7b release's
 * config names none) gives each scheduler its own default, as diffusers' `from_config` does.
 */
export function createScheduler(name: SchedulerName, schedule: NoiseSchedule, opts: SchedulerOptions = {}): Scheduler {
  const make = Object.prototype.hasOwnProperty.call(SCHEDULERS, name) ? SCHEDULERS[name] : undefined;
  if (!make) {
    const known = (SCHEDULER_NAMES as readonly string[]).includes(name);
    throw new Error(known
      ? `scheduler ${name} is not available in this build (available: ${Object.keys(SCHEDULERS).join(', ')})`
      : `unknown scheduler ${JSON.stringify(name)}: use one of ${SCHEDULER_NAMES.join(', ')}`);
  }
  return make(schedule, opts);
}

type InfoSchedule = ModelInfo['scheduler'] & { steps_offset?: unknown; timestep_spacing?: unknown };

const SPACINGS = ['leading', 'linspace', 'trailing'] as const;

/**
 * The NoiseSchedule of t2v.json's "scheduler". ModelScope folders (no steps_offset) get the release's values
 * (MODELSCOPE_SCHEDULE: steps_offset 1 and no spacing, as the release's diffusers config); diffusers folders carry
 * their scheduler_config.json's steps_offset, and timestep_spacing where it has one (converters/diffusers.ts).
 */
export function noiseScheduleFromInfo(info: InfoSchedule | undefined): NoiseSchedule {
  if (!info) return { ...MODELSCOPE_SCHEDULE };
  const betaSchedule = ({ linear_sd: 'scaled_linear', scaled_linear: 'scaled_linear', linear: 'linear' } as const)[info.beta_schedule as 'linear'];
  if (!betaSchedule) throw new Error(`scheduler beta_schedule ${JSON.stringify(info.beta_schedule)} is not supported (linear_sd or linear)`);
  const predictionType = ({ eps: 'epsilon', v: 'v_prediction' } as const)[info.mean_type as 'eps'];
  if (!predictionType) throw new Error(`scheduler mean_type ${JSON.stringify(info.mean_type)} is not supported (eps or v)`);
  const base = {
    numTrainTimesteps: info.num_timesteps, betaStart: info.beta_start, betaEnd: info.beta_end, betaSchedule, predictionType,
  };
  if (typeof info.steps_offset !== 'number') {
    return { ...base, stepsOffset: MODELSCOPE_SCHEDULE.stepsOffset };
  }
  if (info.timestep_spacing === undefined) return { ...base, stepsOffset: info.steps_offset };
  const spacing = info.timestep_spacing;
  if (!(SPACINGS as readonly unknown[]).includes(spacing)) {
    throw new Error(`scheduler timestep_spacing ${JSON.stringify(spacing)} is not supported (${SPACINGS.join(', ')})`);
  }
  return { ...base, stepsOffset: info.steps_offset, timestepSpacing: spacing as NoiseSchedule['timestepSpacing'] };
}

export { ddimScheduler } from './ddim.js';
export { dpmSolverMultistep } from './dpm-solver.js';
export { eulerDiscrete } from './euler.js';
export { uniPCMultistep } from './unipc.js';
export * from './scheduler.js';
