import { isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { BenchOptions } from './scenario.js';
import { findVariants } from './variants.js';
import { BACKENDS, type Backend } from './webgpu.js';

/** The parity scenario's backends, in the order it runs them (webgpu-tc: webgpu with tensor cores). */
export const PARITY_BACKENDS = ['cpu', 'wasm', 'webgpu', 'webgpu-tc'] as const;
export type ParityBackend = (typeof PARITY_BACKENDS)[number];

export const DEFAULT_SCENARIOS = ['unet-call', 'guided-step', 'video', 'torch'];

export const USAGE = `usage: bench OUT [options]     (on the GPU host: bash .gpu/run.sh bench OUT ...)
  --scenarios a,b     default ${DEFAULT_SCENARIOS.join(',')}; --list names them all
  --runs N            timed UNet calls per figure (default 10); --video-runs N (default 3); --gens N (samplers, 3)
  --steps N           video steps (default 50); --guidance G (default 9)
  --variants a,b      t2v columns (harness/variants.ts; default: default)
  --backend B         webgpu (default), wasm or cpu; --tiny: small networks and shapes (a smoke run)
  --weights W         f16: the large weights float16 on the device; f32; auto (default): f16 where tensor cores run
  --python P          the PyTorch side's python (T2V_PYTHON, else python3); --diffusers DIR|TAR (T2V_DIFFUSERS)
  --torch-modes a,b   eager,graph,compile (default all); --torch-args="..." more for bench/diffusers_unet.py
  --torch-script F    bench/diffusers_unet.py elsewhere; --budget S: seconds the whole run may take (default 570)
  --fixtures DIR --vocab FILE   the parity scenario's tiny model (test/fixtures/e2e) and CLIP vocabulary
  --profile-shapes FxHxW,...    the profile scenario's video shapes (default 16x256x256; --tiny 2x32x32)
  --parity-backends a,b         the parity scenario's backends (default cpu,wasm,webgpu,webgpu-tc; webgpu,webgpu-tc
                                alone compare the tensor cores with fp32 and upstream's latents, without the slow cpu)`;

/** A bad command line: the message is one line. */
export class BenchUsageError extends Error {}

function count(name: string, v: string | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || (min >= 1 && !Number.isInteger(n))) throw new BenchUsageError(`--${name} ${v}: use a number >= ${min}`);
  return n;
}

const list = (v: string | undefined): string[] | undefined => v?.split(',').map((s) => s.trim()).filter(Boolean);

/** argv after the mode word `bench`; `origin` is where relative paths start. */
export function parseBenchArgs(argv: string[], origin: string, known: readonly string[]): BenchOptions & { budgetS: number; list: boolean; help: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv, allowPositionals: true, strict: true,
      options: {
        scenarios: { type: 'string' }, runs: { type: 'string' }, 'video-runs': { type: 'string' }, gens: { type: 'string' },
        steps: { type: 'string' }, guidance: { type: 'string' }, variants: { type: 'string' }, backend: { type: 'string' },
        tiny: { type: 'boolean' }, weights: { type: 'string' }, python: { type: 'string' }, diffusers: { type: 'string' }, 'torch-modes': { type: 'string' },
        'torch-args': { type: 'string' }, 'torch-script': { type: 'string' }, 'torch-timeout': { type: 'string' },
        budget: { type: 'string' }, 'profile-shapes': { type: 'string' }, 'parity-backends': { type: 'string' }, fixtures: { type: 'string' }, vocab: { type: 'string' }, list: { type: 'boolean' }, help: { type: 'boolean' },
      },
    });
  } catch (e) {
    throw new BenchUsageError((e as Error).message.split('\n')[0]);
  }
  const v = parsed.values;
  const out = parsed.positionals[0];
  if (!out && !v.list && !v.help) throw new BenchUsageError('name an output folder: bench OUT [options]');
  if (parsed.positionals.length > 1) throw new BenchUsageError(`unexpected argument ${parsed.positionals[1]}`);
  const scenarios = list(v.scenarios) ?? DEFAULT_SCENARIOS;
  for (const s of scenarios) if (!known.includes(s)) throw new BenchUsageError(`unknown scenario ${s}; valid: ${known.join(', ')}`);
  const backend = (v.backend ?? 'webgpu') as Backend;
  if (!BACKENDS.includes(backend)) throw new BenchUsageError(`unknown backend ${v.backend}; valid: ${BACKENDS.join(', ')}`);
  let variants;
  try {
    variants = findVariants(list(v.variants) ?? ['default']);
  } catch (e) {
    throw new BenchUsageError((e as Error).message);
  }
  const weights = (v.weights ?? 'auto') as BenchOptions['weights'];
  if (!['f16', 'f32', 'auto'].includes(weights)) throw new BenchUsageError(`--weights ${v.weights}: use f16, f32 or auto`);
  const torchModes = list(v['torch-modes']) ?? ['eager', 'graph', 'compile'];
  for (const m of torchModes) if (!['eager', 'graph', 'compile'].includes(m)) throw new BenchUsageError(`unknown torch mode ${m}; valid: eager, graph, compile`);
  const profileShapes = list(v['profile-shapes'])?.map((x) => {
    const m = /^(\d+)x(\d+)x(\d+)$/.exec(x);
    if (!m || Number(m[2]) % 8 !== 0 || Number(m[3]) % 8 !== 0) throw new BenchUsageError(`--profile-shapes ${x}: use FRAMESxHEIGHTxWIDTH, height and width multiples of 8`);
    return { frames: Number(m[1]), height: Number(m[2]), width: Number(m[3]) };
  });
  const parityBackends = (list(v['parity-backends']) ?? [...PARITY_BACKENDS]) as ParityBackend[];
  for (const b of parityBackends) if (!PARITY_BACKENDS.includes(b)) throw new BenchUsageError(`--parity-backends ${b}: use ${PARITY_BACKENDS.join(', ')}`);
  const path = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : resolve(origin, p));
  return {
    origin, out: path(out ?? '.')!, scenarios, backend, variants, torchModes, tiny: v.tiny ?? false, weights, list: v.list ?? false, help: v.help ?? false,
    runs: count('runs', v.runs, 10), videoRuns: count('video-runs', v['video-runs'], 3), gens: count('gens', v.gens, 3),
    steps: count('steps', v.steps, 50), guidance: count('guidance', v.guidance, 9, 0),
    python: v.python ?? process.env.T2V_PYTHON ?? 'python3', diffusers: path(v.diffusers), torchScript: path(v['torch-script']),
    torchArgs: v['torch-args']?.split(/\s+/).filter(Boolean) ?? [], torchTimeoutS: count('torch-timeout', v['torch-timeout'], 540),
    budgetS: count('budget', v.budget, 570), profileShapes, parityBackends, fixtures: path(v.fixtures), vocab: path(v.vocab),
  };
}
