import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import type { Argv, CommandModule } from 'yargs';
import { command as info } from './info.js';
import { command as convert } from './convert.js';
import { command as generate } from './generate.js';
import { command as download } from './download.js';
import { command as verify } from './verify.js';
import { command as worker } from './worker.js';
import { command as enqueue } from './enqueue.js';
import { command as serve } from './serve.js';
import { command as serveWeb } from './serve-web.js';
import { usageMessage } from './usage-errors.js';

// yargs' CommonJS build: its ESM build wraps help text in the middle of words (cliui without wrap-ansi)
const yargs = createRequire(import.meta.url)('yargs') as (args?: readonly string[]) => Argv;

/** Every `t2v` command; adding one is one line here. */
export const COMMANDS: CommandModule<any, any>[] = [info, convert, generate, download, verify, worker, enqueue, serve, serveWeb];

/** yargs-parser settings: a repeated option keeps its last value (as commander did); `a.b` stays one name. */
export const PARSER = { 'duplicate-arguments-array': false, 'dot-notation': false } as const;

/** The version in the package.json above this file (src/ when run from sources, dist/src/ when built). */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) return (JSON.parse(readFileSync(p, 'utf8')) as { version: string }).version;
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}

/** Entry of the `t2v` executable. Returns the exit code; every failure is one line on stderr. */
export async function main(argv: string[]): Promise<number> {
  let cli = yargs()
    .scriptName('t2v')
    .locale('en')
    .usage('$0 <command> [options]\n\nModelScope text-to-video on TensorFlow.js')
    .parserConfiguration(PARSER)
    .strict()
    .demandCommand(1, 'no command given; run t2v --help')
    .version(packageVersion())
    .help()
    .alias('help', 'h')
    .wrap(Math.min(110, process.stdout.columns || 80))
    .exitProcess(false)
    .showHelpOnFail(false)
    // yargs' own parse and validation errors (a message, or a YError) are reworded; the commands' errors pass as they are
    .fail((msg: string | null, err: Error | undefined) => {
      if (err && err.name !== 'YError') throw err;
      throw new Error(usageMessage(msg ?? err?.message ?? 'usage error', argv, COMMANDS));
    });
  for (const c of COMMANDS) cli = cli.command(c);
  try {
    await cli.parseAsync(argv);
    return 0;
  } catch (err) {
    console.error(`t2v: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
