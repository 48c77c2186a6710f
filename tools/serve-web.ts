// Runs the `serve-web` command module on its own (until the CLI's yargs migration wires it into `t2v`):
//   node --import tsx tools/serve-web.ts serve-web --model DIR
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { command } from '../src/cli/serve-web.js';

await yargs(hideBin(process.argv)).scriptName('t2v').command(command).demandCommand(1).strict()
  .fail((msg, err) => {
    console.error(`t2v: ${err?.message ?? msg}`);
    process.exit(1);
  })
  .parseAsync();
