import type { CommandModule } from 'yargs';
import { BACKEND_REQUESTS } from '../backends/select.js';
import { startWorker, type WorkerEvent } from '../queue/worker.js';
import { redisOption, untilSignal } from './queue-options.js';

interface Args {
  redis: string;
  model: string;
  concurrency: number;
  backend?: string;
  results: string;
  'stream-weights'?: boolean;
  'lock-duration'?: number;
  'stalled-interval'?: number;
  verbose?: boolean;
}

const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

export function formatEvent(e: WorkerEvent): string | null {
  switch (e.kind) {
    case 'started': return `job ${e.id} started (attempt ${e.attempt})`;
    case 'step': return `job ${e.id} step ${e.step}/${e.steps}`;
    case 'reused': return `job ${e.id} completed: ${e.result.path} (written by an earlier run)`;
    case 'completed': return `job ${e.id} completed: ${e.result.path} (${sec(e.ms)})`;
    case 'failed': return `job ${e.id} failed: ${e.reason}${e.retry ? ' (will retry)' : ''}`;
  }
}

/** `t2v worker`: one BullMQ worker on the `t2v` queue; run one per GPU. */
export const command: CommandModule<object, Args> = {
  command: 'worker',
  describe: 'generate videos for jobs on the t2v queue (one worker per GPU)',
  builder: (y) => redisOption(y)
    .option('model', { type: 'string', demandOption: true, describe: 'converted model folder, or a hub id downloaded with t2v download' })
    .option('concurrency', { type: 'number', default: 1, describe: 'jobs at once in this process' })
    .option('backend', { type: 'string', choices: BACKEND_REQUESTS, describe: 'tfjs backend (default: $T2V_BACKEND or auto)' })
    .option('results', { type: 'string', default: 'results', describe: 'folder for the videos and their JSON, named by job id' })
    .option('stream-weights', { type: 'boolean', describe: 'keep weights in host memory, upload each on use' })
    .option('lock-duration', { type: 'number', describe: 'ms a job stays locked without a renewal before it counts as stalled (default 30000)' })
    .option('stalled-interval', { type: 'number', describe: 'ms between checks for stalled jobs (default 30000)' })
    .option('verbose', { type: 'boolean', default: false, describe: 'print every step' }),
  handler: async (a) => {
    const w = await startWorker({
      redis: a.redis, model: a.model, concurrency: a.concurrency, backend: a.backend ?? process.env.T2V_BACKEND ?? 'auto',
      results: a.results, streamWeights: a['stream-weights'], lockDuration: a['lock-duration'], stalledInterval: a['stalled-interval'],
      onEvent: (e) => {
        if (e.kind === 'step' && !a.verbose) return;
        const line = formatEvent(e);
        if (line) console.log(line);
      },
    });
    console.log(`worker ready: model ${a.model} on ${w.model.backend?.name ?? 'default'}, queue t2v at ${a.redis}, results in ${w.results}`);
    const signal = await untilSignal();
    console.log(`${signal}: finishing the running job, then stopping`);
    await w.close();
  },
};
