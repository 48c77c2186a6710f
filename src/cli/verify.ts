import type { CommandModule } from 'yargs';
import { verifyModel } from '../io/verify.js';

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** `t2v verify DIR`: every shard's sha256 against its manifest, and the folder's JSON files by type and range. */
export const command: CommandModule<object, { dir: string }> = {
  command: 'verify <dir>',
  describe: 'check a converted model folder: configs by type and range, every weight shard by size and sha256',
  builder: (y) => y.positional('dir', { type: 'string', demandOption: true, describe: 'the converted model folder' }),
  handler: async (argv) => {
    const r = await verifyModel(argv.dir);
    if (r.problems.length > 0) {
      const more = r.problems.length > 1 ? ` (and ${r.problems.length - 1} more problem${r.problems.length > 2 ? 's' : ''})` : '';
      throw new Error(`${r.problems[0]}${more}`);
    }
    console.log(`${argv.dir}: ${r.shards.length} shards, ${mb(r.bytes)}, every sha256 matches its manifest`);
  },
};
