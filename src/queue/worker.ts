import { existsSync, mkdirSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { createScheduler } from '../pipeline/schedulers/index.js';
import { TextToVideo, type GenerateOptions } from '../pipeline/text2video.js';
import { cancelKey, connectRedis, QUEUE_NAME } from './connection.js';
import { JobDataError, seedFromJobId, validateJobData, type T2VJobData } from './job-data.js';
import { checkJobId, readResult, writeResult, type JobResult } from './results.js';


export interface JobProgress {
  step: number;
  steps: number;
}

export type WorkerEvent =
  | { kind: 'started'; id: string; attempt: number }
  | { kind: 'step'; id: string; step: number; steps: number }
  | { kind: 'reused'; id: string; result: JobResult }
  | { kind: 'completed'; id: string; result: JobResult; ms: number }
  | { kind: 'failed'; id: string; reason: string; retry: boolean };

export interface WorkerOptions {
  redis: string;
  /** A converted model folder, or a hub id already downloaded into weights/<owner>--<name> (`t2v download`). */
  model: string;
  /** Jobs at once in this process (default 1: one worker per GPU, one job per worker). */
  concurrency?: number;
  backend?: string;
  streamWeights?: boolean;
  /** Where videos and their JSON go, named by job id (default ./results). */
  results?: string;
  /** BullMQ's lock on an active job, ms (default 30000); a worker that stops renewing it is taken as dead. */
  lockDuration?: number;
  /** How often stalled jobs are looked for, ms (default 30000). */
  stalledInterval?: number;
  /** Times a job may stall before it fails (default 1). */
  maxStalledCount?: number;
  onEvent?: (e: WorkerEvent) => void;
}

export interface T2VWorker {
  readonly worker: Worker<T2VJobData, JobResult>;
  readonly model: TextToVideo;
  readonly results: string;
  /** Waits for the active jobs, then disconnects and frees the model. */
  close(): Promise<void>;
}

/** A converted folder as given, or where `t2v download` put a hub id. */
export function resolveModelDir(model: string): string {
  if (existsSync(model)) return model;
  if (/^[\w.-]+\/[\w.-]+$/.test(model)) {
    const dir = resolve('weights', model.replace('/', '--'));
    if (existsSync(dir)) return dir;
    throw new Error(`--model ${model}: no such folder, and the hub id is not downloaded: run \`t2v download ${model}\` first (it converts into weights/${model.replace('/', '--')})`);
  }
  throw new Error(`--model ${model}: no such folder`);
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * A BullMQ worker on the `t2v` queue that loads the model once and generates one video per job. Bad job data, model
 * errors and cancellation fail a job at once (UnrecoverableError); failures to report progress or to write the
 * result are thrown as they are, so BullMQ retries them with the job's backoff. A job whose result is already on disk
 * (its first worker died after writing it) completes with that result without generating again.
 */
export async function startWorker(o: WorkerOptions): Promise<T2VWorker> {
  const concurrency = o.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new Error(`--concurrency must be an integer >= 1, got ${o.concurrency}`);
  for (const [k, v] of Object.entries({ 'lock-duration': o.lockDuration, 'stalled-interval': o.stalledInterval })) {
    if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new Error(`--${k} must be a positive integer (ms), got ${v}`);
  }
  if (o.maxStalledCount !== undefined && !(Number.isInteger(o.maxStalledCount) && o.maxStalledCount >= 0)) {
    throw new Error(`maxStalledCount must be an integer >= 0, got ${o.maxStalledCount}`);
  }
  const results = resolve(o.results ?? 'results');
  if (existsSync(results) && !statSync(results).isDirectory()) throw new Error(`--results ${results} is not a directory`);
  try {
    mkdirSync(results, { recursive: true });
  } catch (err) {
    throw new Error(`--results ${results}: cannot create it (${message(err)})`);
  }
  const dir = resolveModelDir(o.model);
  const redis = await connectRedis(o.redis);
  let model: TextToVideo;
  try {
    model = await TextToVideo.load(dir, { backend: o.backend ?? 'auto', streamWeights: o.streamWeights });
    // A first call of the text tower sets up the backend's kernels; on wasm and cpu that blocks the event loop (and
    // with it the renewal of the job's lock) for seconds, so it happens here and not inside the first job.
    model.encodeText('').dispose();
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  const emit = (e: WorkerEvent) => o.onEvent?.(e);
  // BullMQ takes an undefined option as given, not as its default
  const timing = Object.fromEntries(Object.entries({ lockDuration: o.lockDuration, stalledInterval: o.stalledInterval,
    maxStalledCount: o.maxStalledCount }).filter(([, v]) => v !== undefined));
  const worker: Worker<T2VJobData, JobResult> = new Worker<T2VJobData, JobResult>(QUEUE_NAME,
    (job, _token, signal) => runJob(job, { model, redis, results, signal, emit, cancel: (id) => worker.cancelJob(id, 'cancelled') }),
    { connection: redis, concurrency, autorun: false, ...timing });
  worker.on('error', () => { /* connection errors: ioredis reconnects, jobs are retried */ });
  worker.on('failed', (job, err) => {
    if (!job?.id) return;
    const retry = !(err instanceof UnrecoverableError) && job.attemptsMade < (job.opts.attempts ?? 1);
    emit({ kind: 'failed', id: job.id, reason: err.message, retry });
  });
  void worker.run();
  await worker.waitUntilReady();
  return {
    worker, model, results,
    async close() {
      await worker.close();
      model.dispose();
      redis.disconnect();
    },
  };
}

interface JobContext {
  model: TextToVideo;
  redis: Redis;
  results: string;
  signal?: AbortSignal;
  emit: (e: WorkerEvent) => void;
  cancel: (id: string) => void;
}

async function runJob(job: Job<T2VJobData, JobResult>, c: JobContext): Promise<JobResult> {
  const t0 = performance.now();
  let id: string;
  let data: T2VJobData;
  try {
    id = checkJobId(job.id);
    data = validateJobData(job.data);
  } catch (err) {
    throw new UnrecoverableError(`bad job data: ${message(err)}`);
  }
  c.emit({ kind: 'started', id, attempt: job.attemptsMade + 1 });
  // the request is deleted once seen: ids start again at 1 on a queue that was emptied
  const cancelled = async () => {
    await c.redis.del(cancelKey(id));
    return new UnrecoverableError('cancelled');
  };
  if (await c.redis.exists(cancelKey(id))) throw await cancelled();
  const earlier = readResult(c.results, id);
  if (earlier) {
    c.emit({ kind: 'reused', id, result: earlier });
    return earlier;
  }
  const format = data.format ?? 'mp4';
  const seed = data.seed ?? seedFromJobId(id);
  const plan = createScheduler(data.scheduler ?? 'ddim', c.model.schedule).start(data.steps ?? c.model.defaults.steps);
  const steps = plan.timesteps.length;
  plan.dispose();
  // Progress and the cancel check go to Redis in order but off the sampling loop: a step never waits for a round
  // trip. A failure there (Redis gone) ends the job at the next step as a transient error.
  let stepError: unknown = null;
  let reports: Promise<void> = Promise.resolve();
  const report = (step: number) => {
    reports = reports.then(async () => {
      if (stepError !== null) return;
      try {
        await job.updateProgress({ step, steps } satisfies JobProgress);
        c.emit({ kind: 'step', id, step, steps });
        if (await c.redis.exists(cancelKey(id))) c.cancel(id);
      } catch (err) {
        stepError = err;
      }
    });
  };
  const opts: GenerateOptions = {
    prompt: data.prompt, negativePrompt: data.negativePrompt, steps: data.steps, guidance: data.guidance, frames: data.frames,
    height: data.height, width: data.width, seed, scheduler: data.scheduler, signal: c.signal,
    onStep: (step) => {
      if (stepError !== null) throw stepError;
      report(step);
    },
  };
  let video;
  try {
    video = await c.model.generate(opts);
  } catch (err) {
    await reports;
    if (stepError !== null) throw stepError; // Redis went away: transient
    if (c.signal?.aborted) throw await cancelled();
    throw new UnrecoverableError(err instanceof JobDataError ? `bad job data: ${message(err)}` : message(err));
  }
  await reports;
  if (stepError !== null) throw stepError;
  const result = await writeResult(c.results, id, format, (tmp) => video.save(tmp), {
    seed, timings: video.timings, frames: video.numFrames, width: video.width, height: video.height,
  });
  c.emit({ kind: 'completed', id, result, ms: performance.now() - t0 });
  return result;
}
