import type { CommandModule, Options } from 'yargs';
import { BACKEND_REQUESTS, selectBackend } from '../backends/select.js';

/** The `--backend` option every computing command carries. */
export const backendOption = {
  backend: {
    type: 'string', requiresArg: true,
    describe: `tfjs backend: ${BACKEND_REQUESTS.join('|')} (default: $T2V_BACKEND or auto)`,
  },
} as const satisfies Record<string, Options>;

export const command: CommandModule<object, { backend?: string }> = {
  command: 'info',
  describe: 'show the tfjs backend that would be used, and why others are skipped',
  builder: (y) => y.options(backendOption),
  handler: async (opts) => {
    const choice = await selectBackend(opts.backend);
    const lines = [`backend: ${choice.name}`];
    for (const [k, v] of Object.entries(choice.details)) lines.push(`  ${k}: ${v}`);
    for (const s of choice.skipped) lines.push(`skipped ${s.name}: ${s.reason}`);
    console.log(lines.join('\n'));
  },
};
