// The benchmark's entry, bundled for the GPU host by bench/pack.sh (../shared/gpu/pack.sh bench/gpu.ts and the
// PyTorch side's files beside it):
//   bash .gpu/run.sh bench OUT [--scenarios a,b] [--runs N] ...    (here: node --import tsx bench/gpu.ts bench OUT ...)
//     the named scenarios (bench/scenarios/), t2v and PyTorch in one session, into OUT/table.md and OUT/results.json;
//     `bench --list` names the scenarios, harness/options.ts the flags
//   bash .gpu/run.sh parity-ref OUT FIXTURES VOCAB [steps]   the parity scenario's wasm reference, in its own process
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { runBench } from './harness/run.js';

const [mode, ...rest] = process.argv.slice(2);
// .gpu/run.sh changes into the bundle's folder first; relative paths mean the caller's folder (bash exports OLDPWD)
const origin = basename(process.argv[1] ?? '') === 'main.mjs' && process.env.OLDPWD ? process.env.OLDPWD : process.cwd();

if (mode === 'bench') {
  process.exit(await runBench(rest, origin));
} else if (mode === 'parity-ref') {
  const [outDir = '.', ...args] = rest;
  mkdirSync(outDir, { recursive: true });
  const log = (s: string) => { console.log(s); appendFileSync(join(outDir, 'parity-ref.log'), s + '\n'); };
  const res = await (await import('./scenarios/parity.js')).benchParityRef(log, outDir, args);
  writeFileSync(join(outDir, 'parity-ref.json'), JSON.stringify(res, null, 1));
  process.exit(0);
} else {
  console.error('usage: bench OUT [options] | bench --list | parity-ref OUT FIXTURES VOCAB [steps]   (bench/gpu.ts)');
  process.exit(2);
}
