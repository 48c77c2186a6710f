import type { CommandModule } from 'yargs';
import { enqueue, readPromptFile } from '../queue/client.js';
import { jobFromArgs, jobOptions, redisOption, type JobArgs } from './queue-options.js';

interface Args extends JobArgs {
  prompt?: string;
  file?: string;
  redis: string;
  wait: boolean;
  attempts?: number;
}

/** `t2v enqueue`: adds jobs to the `t2v` queue, one prompt or a file of them; --wait follows them to the end. */
export const command: CommandModule<object, Args> = {
  command: 'enqueue [prompt]',
  describe: 'add text-to-video jobs to the t2v queue (workers run them)',
  builder: (y) => jobOptions(redisOption(y))
    .positional('prompt', { type: 'string', describe: 'the text prompt' })
    .option('file', { type: 'string', describe: 'a text file of prompts, one job a line (# comments and blank lines skipped)' })
    .option('wait', { type: 'boolean', default: false, describe: 'wait until every job has finished; print each result' })
    .option('attempts', { type: 'number', describe: 'tries on transient failures (default 3)' }),
  handler: async (a) => {
    if ((a.prompt === undefined) === (a.file === undefined)) throw new Error('give a prompt or --file, one of the two');
    const prompts = a.file !== undefined ? readPromptFile(a.file) : [a.prompt as string];
    const jobs = prompts.map((p) => jobFromArgs(p, a));
    const total = jobs.length;
    const { ids, results } = await enqueue(jobs, {
      redis: a.redis, wait: a.wait, attempts: a.attempts,
      onDone: (id, r) => console.log(r instanceof Error ? `job ${id} failed: ${r.message}` : `job ${id} completed: ${r.path}`),
    });
    if (!a.wait) {
      console.log(ids.join('\n'));
      return;
    }
    const failed = [...(results?.values() ?? [])].filter((r) => r instanceof Error).length;
    if (failed > 0) throw new Error(`${failed} of ${total} job${total > 1 ? 's' : ''} failed`);
  },
};
