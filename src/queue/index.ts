// The job queue (import from 't2v/queue'): BullMQ workers on Redis, enqueue, the HTTP API and its page. Kept apart
// from the main entry so that `import 't2v'` loads no Redis client.
export { enqueue, readPromptFile, T2VQueue, type CancelOutcome, type JobState, type JobStatus, type SubmitOptions } from './client.js';
export { QUEUE_NAME, checkRedisUrl, connectRedis } from './connection.js';
export { JOB_LIMITS, JobDataError, VIDEO_FORMATS, seedFromJobId, validateJobData, type T2VJobData, type VideoFormat } from './job-data.js';
export { readResult, resultJsonPath, resultVideoPath, writeResult, type JobResult } from './results.js';
export { startServer, type ServeOptions, type T2VServer } from './server.js';
export { resolveModelDir, startWorker, type JobProgress, type T2VWorker, type WorkerEvent, type WorkerOptions } from './worker.js';
