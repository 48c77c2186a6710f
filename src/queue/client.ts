import { readFileSync } from 'node:fs';
import { Job, Queue, QueueEvents, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { cancelKey, connectRedis, QUEUE_NAME } from './connection.js';
import { JobDataError, validateJobData, type T2VJobData } from './job-data.js';
import type { JobResult } from './results.js';
import type { JobProgress } from './worker.js';

export interface SubmitOptions {
  /** Tries before a job fails on transient errors (default 3); bad data and model errors never retry. */
  attempts?: number;
  /** First retry delay, ms, doubled each time (default 5000). */
  backoffMs?: number;
  /** BullMQ priority: 1 is highest; omitted: first in, first out. */
  priority?: number;
}

export type JobState = 'waiting' | 'active' | 'completed' | 'failed' | 'delayed' | 'prioritized' | 'waiting-children' | 'unknown';

export interface JobStatus {
  id: string;
  state: JobState;
  progress: JobProgress | null;
  data: T2VJobData;
  result: JobResult | null;
  failedReason: string | null;
  attemptsMade: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
}

export type CancelOutcome = 'removed' | 'requested' | 'finished' | 'missing';

const CANCEL_TTL_S = 7 * 24 * 3600;

function progressOf(p: unknown): JobProgress | null {
  if (typeof p === 'object' && p !== null && typeof (p as JobProgress).step === 'number') return p as JobProgress;
  return null;
}

async function statusOf(fetched: Job<T2VJobData, JobResult>, queue: Queue<T2VJobData, JobResult>): Promise<JobStatus> {
  const state = (await fetched.getState()) as JobState;
  // the job's fields were read before its state: one that finished in between is read again, so that its result or
  // failure reason (written with the state change) comes with the state
  const job = state === 'completed' || state === 'failed' ? (await Job.fromId<T2VJobData, JobResult>(queue, fetched.id as string)) ?? fetched : fetched;
  return {
    id: job.id as string, state, progress: progressOf(job.progress), data: job.data,
    result: job.returnvalue ?? null, failedReason: job.failedReason || null, attemptsMade: job.attemptsMade,
    createdAt: job.timestamp, startedAt: job.processedOn ?? null, finishedAt: job.finishedOn ?? null,
  };
}

/** Prompts from a text file, one job a line; blank lines and lines starting with # are skipped. */
export function readPromptFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`--file ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  const prompts = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (prompts.length === 0) throw new Error(`--file ${path} holds no prompts (one a line)`);
  return prompts;
}

/** The `t2v` queue seen from a client (enqueue, the HTTP server): submit, look up, cancel and wait for jobs. */
export class T2VQueue {
  private events: QueueEvents | null = null;

  private constructor(readonly redis: Redis, readonly queue: Queue<T2VJobData, JobResult>) {}

  static async open(url: string): Promise<T2VQueue> {
    const redis = await connectRedis(url);
    return new T2VQueue(redis, new Queue<T2VJobData, JobResult>(QUEUE_NAME, { connection: redis }));
  }

  /** Validates every job first (none is added when one is bad), then adds them in one round trip; returns their ids. */
  async add(jobs: readonly unknown[], o: SubmitOptions = {}): Promise<string[]> {
    const data = jobs.map((j, i) => {
      try {
        return validateJobData(j);
      } catch (err) {
        throw new JobDataError(jobs.length > 1 ? `job ${i + 1}: ${(err as Error).message}` : (err as Error).message);
      }
    });
    const attempts = o.attempts ?? 3;
    if (!Number.isInteger(attempts) || attempts < 1) throw new JobDataError(`attempts must be an integer >= 1, got ${o.attempts}`);
    if (o.priority !== undefined && !(Number.isInteger(o.priority) && o.priority >= 1)) throw new JobDataError(`priority must be an integer >= 1, got ${o.priority}`);
    const opts: JobsOptions = {
      attempts, backoff: { type: 'exponential', delay: o.backoffMs ?? 5000 },
      removeOnComplete: { age: 7 * 24 * 3600, count: 10000 }, removeOnFail: { age: 7 * 24 * 3600, count: 10000 },
      ...(o.priority !== undefined ? { priority: o.priority } : {}),
    };
    const added = await this.queue.addBulk(data.map((d) => ({ name: 'generate', data: d, opts })));
    return added.map((j) => j.id as string);
  }

  async status(id: string): Promise<JobStatus | null> {
    const job = await Job.fromId<T2VJobData, JobResult>(this.queue, id);
    return job ? statusOf(job, this.queue) : null;
  }

  /** The newest jobs of every state (at most `limit`), and how many there are in each. */
  async list(limit = 50): Promise<{ counts: Record<string, number>; jobs: JobStatus[] }> {
    const states = ['active', 'waiting', 'prioritized', 'delayed', 'completed', 'failed'] as const;
    const counts = await this.queue.getJobCounts(...states);
    const jobs = (await this.queue.getJobs([...states], 0, limit - 1, false)).filter((j): j is Job<T2VJobData, JobResult> => Boolean(j));
    const all = await Promise.all(jobs.map((j) => statusOf(j, this.queue)));
    all.sort((a, b) => b.createdAt - a.createdAt || Number(b.id) - Number(a.id));
    return { counts, jobs: all.slice(0, limit) };
  }

  /**
   * A job not yet started is removed; a running one is asked to stop (its worker checks between steps and fails it
   * as "cancelled"); a finished one is left as it is.
   */
  async cancel(id: string): Promise<CancelOutcome> {
    const job = await Job.fromId(this.queue, id);
    if (!job) return 'missing';
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') return 'finished';
    await this.redis.set(cancelKey(id), '1', 'EX', CANCEL_TTL_S);
    if (state !== 'active') {
      try {
        await job.remove();
        await this.redis.del(cancelKey(id));
        return 'removed';
      } catch {
        // picked up meanwhile (it is locked): the worker sees the request
      }
    }
    return 'requested';
  }

  /** Queue events (progress, completed, failed), opened on first use and shared. */
  async queueEvents(): Promise<QueueEvents> {
    if (!this.events) {
      this.events = new QueueEvents(QUEUE_NAME, { connection: this.redis.duplicate() });
      this.events.on('error', () => { /* ioredis reconnects */ });
      await this.events.waitUntilReady();
    }
    return this.events;
  }

  /**
   * Resolves when every job has finished: its result, or an Error with the reason it failed (or that it was removed).
   */
  async wait(ids: readonly string[], o: { onProgress?: (id: string, p: JobProgress) => void; onDone?: (id: string, r: JobResult | Error) => void } = {}): Promise<Map<string, JobResult | Error>> {
    const events = await this.queueEvents();
    const left = new Set(ids);
    const out = new Map<string, JobResult | Error>();
    return new Promise((resolve, reject) => {
      const finish = (id: string, r: JobResult | Error) => {
        if (!left.delete(id)) return;
        out.set(id, r);
        o.onDone?.(id, r);
        if (left.size === 0) {
          cleanup();
          resolve(out);
        }
      };
      const onCompleted = ({ jobId, returnvalue }: { jobId: string; returnvalue: unknown }) => {
        finish(jobId, (typeof returnvalue === 'string' ? JSON.parse(returnvalue) : returnvalue) as JobResult);
      };
      const onFailed = ({ jobId, failedReason }: { jobId: string; failedReason: string }) => finish(jobId, new Error(failedReason));
      const onRemoved = ({ jobId }: { jobId: string }) => finish(jobId, new Error('removed (cancelled before it started)'));
      const onProgress = ({ jobId, data }: { jobId: string; data: unknown }) => {
        const p = progressOf(data);
        if (p && left.has(jobId)) o.onProgress?.(jobId, p);
      };
      const cleanup = () => {
        events.off('completed', onCompleted);
        events.off('failed', onFailed);
        events.off('removed', onRemoved);
        events.off('progress', onProgress);
      };
      events.on('completed', onCompleted);
      events.on('failed', onFailed);
      events.on('removed', onRemoved);
      events.on('progress', onProgress);
      // listening first, then the states now, so a job that finishes in between is not missed
      void (async () => {
        for (const id of ids) {
          const s = await this.status(id);
          if (!s) finish(id, new Error(`job ${id} does not exist`));
          else if (s.state === 'completed' && s.result) finish(id, s.result);
          else if (s.state === 'failed') finish(id, new Error(s.failedReason ?? 'failed'));
        }
      })().catch((err) => {
        cleanup();
        reject(err);
      });
      if (left.size === 0) {
        cleanup();
        resolve(out);
      }
    });
  }

  async close(): Promise<void> {
    await this.events?.close();
    await this.queue.close();
    this.redis.disconnect();
  }
}

/**
 * Adds jobs to the `t2v` queue (`t2v enqueue` from code): one job or many, validated first. With `wait`, resolves
 * when all have finished, with each one's result or failure.
 */
export async function enqueue(jobs: T2VJobData | readonly T2VJobData[], o: SubmitOptions & { redis: string; wait?: boolean;
  onProgress?: (id: string, p: JobProgress) => void; onDone?: (id: string, r: JobResult | Error) => void }): Promise<{ ids: string[]; results?: Map<string, JobResult | Error> }> {
  const q = await T2VQueue.open(o.redis);
  try {
    if (o.wait) await q.queueEvents(); // listening before the jobs exist
    const ids = await q.add(Array.isArray(jobs) ? jobs : [jobs], o);
    if (!o.wait) return { ids };
    return { ids, results: await q.wait(ids, o) };
  } finally {
    await q.close();
  }
}
