// `t2v worker` (or another queue command) in its own process, as the queue tests spawn it: the yargs module alone,
// since src/cli/main.ts does not carry it yet.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { command as enqueue } from '../src/cli/enqueue.js';
import { command as serve } from '../src/cli/serve.js';
import { command as worker } from '../src/cli/worker.js';

await yargs(hideBin(process.argv)).scriptName('t2v').command(worker).command(enqueue).command(serve).strict().demandCommand(1)
  .fail((msg, err) => {
    console.error(`t2v: ${err?.message ?? msg}`);
    process.exit(1);
  })
  .parseAsync();
