// Runs the CLI from the TypeScript sources (no build needed): `node --import tsx bin/t2v-dev.ts ...`.
import { main } from '../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
