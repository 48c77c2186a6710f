import { SCHEDULER_NAMES, type SchedulerName } from '../pipeline/schedulers/scheduler.js';

export const VIDEO_FORMATS = ['mp4', 'webm', 'gif'] as const;
export type VideoFormat = typeof VIDEO_FORMATS[number];

/** What one job on the `t2v` queue asks for; everything but the prompt defaults to the model's settings. */
export interface T2VJobData {
  prompt: string;
  negativePrompt?: string;
  steps?: number;
  guidance?: number;
  frames?: number;
  height?: number;
  width?: number;
  seed?: number;
  scheduler?: SchedulerName;
  format?: VideoFormat;
}

/** Bad job data: the job fails at once, without retries. */
export class JobDataError extends Error {}

/** Upper bounds that keep one job from asking for hours of work or a heap no machine has. */
export const JOB_LIMITS = { promptChars: 2000, steps: 1000, frames: 256, size: 2048 } as const;

const KEYS = new Set(['prompt', 'negativePrompt', 'steps', 'guidance', 'frames', 'height', 'width', 'seed', 'scheduler', 'format']);

function int(o: Record<string, unknown>, k: string, min: number, max: number): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new JobDataError(`${k} must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function text(o: Record<string, unknown>, k: string, required: boolean): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) {
    if (required) throw new JobDataError(`${k} is required (a non-empty string)`);
    return undefined;
  }
  if (typeof v !== 'string') throw new JobDataError(`${k} must be a string, got ${typeof v}`);
  if (required && v.trim() === '') throw new JobDataError(`${k} must not be empty`);
  if (v.length > JOB_LIMITS.promptChars) throw new JobDataError(`${k} is ${v.length} characters, at most ${JOB_LIMITS.promptChars}`);
  return v;
}

function oneOf<T extends string>(o: Record<string, unknown>, k: string, names: readonly T[]): T | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !(names as readonly string[]).includes(v)) {
    throw new JobDataError(`${k} must be one of ${names.join(', ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

/**
 * Checks job data from any source (the HTTP API, a prompts file, another program on the queue) and returns it with
 * only the known keys. Sizes are checked against the 8-pixel latent grid here; the model's own multiple (its UNet's
 * levels) is checked when the worker generates.
 */
export function validateJobData(raw: unknown): T2VJobData {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new JobDataError('job data must be a JSON object');
  const o = raw as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !KEYS.has(k));
  if (unknown.length > 0) throw new JobDataError(`unknown job field${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')} (known: ${[...KEYS].join(', ')})`);
  const d: T2VJobData = { prompt: text(o, 'prompt', true) as string };
  const negativePrompt = text(o, 'negativePrompt', false);
  if (negativePrompt !== undefined) d.negativePrompt = negativePrompt;
  const steps = int(o, 'steps', 1, JOB_LIMITS.steps);
  if (steps !== undefined) d.steps = steps;
  if (o.guidance !== undefined && o.guidance !== null) {
    if (typeof o.guidance !== 'number' || !Number.isFinite(o.guidance) || Math.abs(o.guidance) > 100) {
      throw new JobDataError(`guidance must be a number in -100..100, got ${JSON.stringify(o.guidance)}`);
    }
    d.guidance = o.guidance;
  }
  const frames = int(o, 'frames', 1, JOB_LIMITS.frames);
  if (frames !== undefined) d.frames = frames;
  for (const k of ['height', 'width'] as const) {
    const v = int(o, k, 8, JOB_LIMITS.size);
    if (v === undefined) continue;
    if (v % 8 !== 0) throw new JobDataError(`${k} must be a multiple of 8, got ${v}`);
    d[k] = v;
  }
  const seed = int(o, 'seed', 0, Number.MAX_SAFE_INTEGER);
  if (seed !== undefined) d.seed = seed;
  const scheduler = oneOf(o, 'scheduler', SCHEDULER_NAMES);
  if (scheduler !== undefined) d.scheduler = scheduler;
  const format = oneOf(o, 'format', VIDEO_FORMATS);
  if (format !== undefined) d.format = format;
  return d;
}

/**
 * The seed of a job that names none: derived from its id (FNV-1a, 32 bits), so a job that is run again after its
 * worker died makes the same video.
 */
export function seedFromJobId(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
