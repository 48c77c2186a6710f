import type { Argv } from 'yargs';
import { SCHEDULER_NAMES } from '../pipeline/schedulers/scheduler.js';
import { VIDEO_FORMATS, type T2VJobData } from '../queue/job-data.js';

export const DEFAULT_REDIS = 'redis://127.0.0.1:6379';

/** --redis, shared by worker, enqueue and serve. */
export function redisOption<T>(y: Argv<T>) {
  return y.option('redis', { type: 'string', default: process.env.T2V_REDIS ?? DEFAULT_REDIS, describe: 'Redis URL of the queue ($T2V_REDIS)' });
}

/** The job-data flags of `t2v enqueue`, named as `t2v generate` names them. */
export function jobOptions<T>(y: Argv<T>) {
  return y
    .option('negative', { type: 'string', describe: 'negative prompt' })
    .option('steps', { type: 'number', describe: 'sampling steps (default: the model\'s)' })
    .option('guidance', { type: 'number', describe: 'classifier-free guidance scale' })
    .option('frames', { type: 'number', describe: 'number of frames' })
    .option('height', { type: 'number', describe: 'multiple of 8' })
    .option('width', { type: 'number', describe: 'multiple of 8' })
    .option('seed', { type: 'number', describe: 'seed of the initial noise (default: from the job id)' })
    .option('scheduler', { type: 'string', choices: SCHEDULER_NAMES, describe: 'sampler' })
    .option('format', { type: 'string', choices: VIDEO_FORMATS, default: 'mp4', describe: 'video format of the result' });
}

export interface JobArgs {
  negative?: string; steps?: number; guidance?: number; frames?: number; height?: number; width?: number; seed?: number;
  scheduler?: string; format?: string;
}

/** Job data from the flags (validated later, with the queue's own messages); a flag that is not a number says so. */
export function jobFromArgs(prompt: string, a: JobArgs): T2VJobData {
  const d: Record<string, unknown> = { prompt };
  if (a.negative !== undefined) d.negativePrompt = a.negative;
  for (const k of ['steps', 'guidance', 'frames', 'height', 'width', 'seed'] as const) {
    const v = a[k];
    if (v === undefined) continue;
    if (Number.isNaN(v)) throw new Error(`--${k} must be a number`);
    d[k] = v;
  }
  if (a.scheduler !== undefined) d.scheduler = a.scheduler;
  if (a.format !== undefined) d.format = a.format;
  return d as unknown as T2VJobData;
}

/** Resolves on the first SIGINT or SIGTERM (a worker or server then shuts down cleanly). */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (s: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(s);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}
