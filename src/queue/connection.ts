import { Redis } from 'ioredis';

/** The BullMQ queue every t2v worker, enqueue and server shares. */
export const QUEUE_NAME = 't2v';

/** Key of a job's cancel request; the worker reads it before the job and between steps. */
export const cancelKey = (jobId: string) => `t2v:cancel:${jobId}`;

/** redis://[user:pass@]host[:port][/db] or rediss://; anything else is refused with the form it wants. */
export function checkRedisUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--redis ${url}: not a URL (expected redis://host:port, e.g. redis://127.0.0.1:6379)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new Error(`--redis ${url}: expected a redis:// or rediss:// URL`);
  }
  return url;
}

/**
 * A Redis connection as BullMQ wants it (no per-request retry limit, so a worker rides out a Redis restart). The
 * first connection attempt fails within `connectTimeout`; one clear line names the URL.
 */
export async function connectRedis(url: string, opts: { connectTimeout?: number } = {}): Promise<Redis> {
  checkRedisUrl(url);
  const redis = new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true, connectTimeout: opts.connectTimeout ?? 5000 });
  redis.on('error', () => { /* reported by the commands that fail; ioredis reconnects */ });
  try {
    await redis.connect();
  } catch (err) {
    redis.disconnect();
    throw new Error(`cannot reach Redis at ${url}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return redis;
}
