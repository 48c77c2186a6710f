import type { Command } from 'commander';
import { BACKEND_REQUESTS, selectBackend } from '../backend.js';

/** The `--backend` option every computing command carries. */
export function backendOption(cmd: Command): Command {
  return cmd.option('--backend <name>', `tfjs backend: ${BACKEND_REQUESTS.join('|')} (default: $T2V_BACKEND or auto)`);
}

export function register(program: Command): void {
  backendOption(program.command('info').description('show the tfjs backend that would be used, and why others are skipped'))
    .action(async (opts: { backend?: string }) => {
      const choice = await selectBackend(opts.backend);
      const lines = [`backend: ${choice.name}`];
      for (const [k, v] of Object.entries(choice.details)) lines.push(`  ${k}: ${v}`);
      for (const s of choice.skipped) lines.push(`skipped ${s.name}: ${s.reason}`);
      console.log(lines.join('\n'));
    });
}
