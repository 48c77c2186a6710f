import { Command, CommanderError } from 'commander';
import { register as registerInfo } from './cli/info.js';
import { register as registerConvert } from './cli/convert.js';
import { register as registerGenerate } from './cli/generate.js';
import { register as registerDownload } from './cli/download.js';

/** Entry of the `t2v` executable. Returns the exit code; every failure is one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('t2v')
    .description('ModelScope text-to-video on TensorFlow.js')
    .exitOverride()
    .showHelpAfterError(false)
    // commander's own usage errors in the same one-line form as ours (subcommands inherit this)
    .configureOutput({ outputError: (text, write) => write(`t2v: ${text.replace(/^error: /, '').trim()}\n`) });
  registerInfo(program);
  registerConvert(program);
  registerGenerate(program);
  registerDownload(program);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    console.error(`t2v: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
