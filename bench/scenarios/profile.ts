import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { summarize, type KernelSummary } from '../harness/kernel-categories.js';
import { VIDEO_SHAPE, type RunContext, type Scenario } from '../harness/scenario.js';
import { stat, type Stat } from '../harness/stats.js';
import { shapeKey, type Shape } from '../harness/table.js';
import { sync, timedKernels, timeRuns, type TimedKernel } from '../harness/timing.js';
import { applyVariant, dispatchReport, EXACT_TIMESTAMPS_FLAG, gpuTimestamps } from '../harness/webgpu.js';
import { unetCalls, type CallRow } from './unet-calls.js';
import { writeAtomic } from '../harness/write-atomic.js';

/** How the per-kernel times were taken. */
export type Timing = 'gpu' | 'quantized' | 'none' | 'cpu';

/** Dawn's default timestamp grid (its quantization masks the low 16 bits of nanoseconds). */
const DAWN_GRID_MS = 65536 / 1e6;

export interface CallProfile extends KernelSummary {
  timing: Timing;
  /** one synchronized call without profiling, after the warm-ups */
  wall: Stat;
  /** the unprofiled call's dispatches and caches (dispatchReport), webgpu only */
  dispatchReport: string | null;
  /** kernels of ours (T2V*) that ran no timed dispatch (should be 0 where timing is 'gpu') */
  untimedOwn: number;
}

const CALLS: readonly [CallRow, string][] = [
  ['unet-call', 'one UNet call, batch 1'],
  ['guided-step', 'guided step (x once under [cond, uncond])'],
];

export const profile: Scenario = {
  name: 'profile', kind: 'once', dawnFlags: [EXACT_TIMESTAMPS_FLAG],
  about: 'per-kernel GPU times of one UNet call (batch 1) and one guided step by category, each --variants; OUT/profile.md',
  run: async (ctx) => benchProfile(ctx),
};

/** Which timing `kernels` had: none without timestamp-query, quantized where every time sits on Dawn's grid. */
export function timingOf(kernels: readonly TimedKernel[]): Timing {
  const has = gpuTimestamps();
  if (has === null) return 'cpu';
  if (!has) return 'none';
  const times = kernels.flatMap((k) => k.programs ?? []).map((p) => p.ms);
  const onGrid = times.every((t) => Math.abs(t / DAWN_GRID_MS - Math.round(t / DAWN_GRID_MS)) < 1e-3);
  return times.length >= 8 && onGrid ? 'quantized' : 'gpu';
}

/** `fn` after 2 warm-ups: 3 synchronized calls (wall time), the dispatch report, then one call under tf.profile. */
export async function profileCall(fn: () => tf.Tensor, topN = 25): Promise<CallProfile> {
  await sync();
  const wall = stat(await timeRuns(fn, 3, 2));
  const report = await dispatchReport(fn);
  const kernels = await timedKernels(fn);
  const timing = timingOf(kernels);
  const untimedOwn = kernels.filter((k) => k.name.startsWith('T2V') && (k.programs?.length === 0 || (timing === 'gpu' && k.ms <= 0))).length;
  return { ...summarize(kernels, topN), timing, wall, dispatchReport: report, untimedOwn };
}

const TIMING_LINE: Record<Timing, string> = {
  gpu: 'GPU time of each dispatch (timestamp queries through tf.profile, each dispatch in a pass of its own).',
  quantized: "Timestamps on Dawn's 65.5 us grid (its timestamp_quantization is on): per-kernel times are coarse.",
  none: "No per-kernel times: the WebGPU device has no 'timestamp-query' (tfjs would report zeros); calls only.",
  cpu: 'No GPU timestamps on this backend: each kernel\'s CPU time (tfjs\'s timer) instead.',
};

const f1 = (v: number) => v.toFixed(v < 10 ? 2 : 1);
const tf1 = (v: number | null) => (v === null ? '' : v < 1 ? v.toPrecision(2) : v.toFixed(v < 10 ? 2 : 1));

/** One call's tables in markdown. */
export function renderCall(title: string, p: CallProfile): string {
  const out = [`#### ${title}`, '', TIMING_LINE[p.timing]];
  const timed = p.timing !== 'none';
  out.push(`${p.kernels} kernels${p.dispatches !== null ? `, ${p.dispatches} dispatches timed` : ''}`
    + `${timed ? `: ${f1(p.totalMs)} ms of kernel time` : ''}; the call unprofiled: ${f1(p.wall.median)} ms wall`
    + ` (median of ${p.wall.runs.length})${timed && p.wall.median > 0 ? `, kernels ${(100 * p.totalMs / p.wall.median).toFixed(0)}% of it` : ''}.`
    + `${p.dispatchReport ? ` Unprofiled: ${p.dispatchReport}.` : ''}${p.untimedOwn ? ` ${p.untimedOwn} T2V kernels ran no timed dispatch.` : ''}`, '');
  if (!timed) {
    out.push('| category | calls |', '|---|---|', ...p.categories.map((c) => `| ${c.category} | ${c.calls} |`), '');
    return out.join('\n');
  }
  out.push('| category | calls | ms | share | TFLOP/s |', '|---|---|---|---|---|');
  for (const c of p.categories) out.push(`| ${c.category} | ${c.calls} | ${f1(c.ms)} | ${(100 * c.share).toFixed(1)}% | ${tf1(c.tflops)} |`);
  out.push(`| total | ${p.categories.reduce((a, c) => a + c.calls, 0)} | ${f1(p.totalMs)} | 100% | |`, '');
  out.push(`Top ${p.top.length} kernels (calls of one kernel and shapes together):`, '',
    '| kernel | category | shapes (inputs -> output) | calls | ms each | ms | TFLOP/s |', '|---|---|---|---|---|---|---|');
  for (const k of p.top) out.push(`| ${k.name}${k.programs ? ` (${k.programs})` : ''} | ${k.category} | ${k.shapes} | ${k.calls} | ${k.msEach.toFixed(3)} | ${f1(k.ms)} | ${tf1(k.tflops)} |`);
  out.push('');
  return out.join('\n');
}

/** A one-line summary for the log: the total, then the five largest categories. */
export function summaryLine(p: CallProfile): string {
  if (p.timing === 'none') return TIMING_LINE.none;
  const big = [...p.categories].sort((a, b) => b.ms - a.ms).slice(0, 5)
    .map((c) => `${c.category} ${f1(c.ms)} ms (${(100 * c.share).toFixed(0)}%${c.tflops !== null ? `, ${tf1(c.tflops)} TFLOP/s` : ''})`);
  return `${f1(p.totalMs)} ms of kernels${p.dispatches !== null ? ` in ${p.dispatches} dispatches` : ''} vs ${f1(p.wall.median)} ms wall`
    + `${p.timing === 'quantized' ? ' (quantized timestamps)' : p.timing === 'cpu' ? ' (CPU times)' : ''}; ${big.join(', ')}`;
}

type VariantResult = { label: string; variant: string; shape: Shape; calls: Partial<Record<CallRow, CallProfile | { error: string }>>; error?: string };

/**
 * Each --profile-shapes shape (default the video shape, --tiny's small one) and each --variants entry in turn: the UNet
 * calls of CALLS, profiled, into OUT/profile.md (rewritten after each call) and the scenario's results; the default
 * variant is restored after.
 */
async function benchProfile(ctx: RunContext): Promise<{ raw: unknown }> {
  const shapes: Shape[] = ctx.opts.tiny ? [VIDEO_SHAPE.tiny] : ctx.opts.profileShapes ?? [VIDEO_SHAPE.full];
  const variants: Record<string, VariantResult> = {};
  const raw = { shapes, backend: ctx.opts.backend, variants };
  const file = join(ctx.opts.out, 'profile.md');
  const latents = (s: Shape) => `${shapeKey(s)} (latents 4x${s.frames}x${s.height / 8}x${s.width / 8})`;
  const write = () => {
    const md = [`# t2v per-kernel profile, ${shapes.map(latents).join('; ')}`, '',
      `Backend ${ctx.opts.backend}${ctx.opts.tiny ? ', tiny configuration (--tiny)' : ', released configuration'}, random weights; `
      + 'after 2 warm-up calls, one call under tf.profile. TFLOP/s: 2*m*n*k from the shapes (a convolution as its implicit '
      + 'GEMM; attention 4*rows*queries*keys*inner) over the kernel time.', ''];
    for (const v of Object.values(variants)) {
      md.push(`### ${latents(v.shape)}, ${v.variant}: ${v.label}`, '');
      if (v.error) md.push(`failed: ${v.error}`, '');
      for (const [row, title] of CALLS) {
        const c = v.calls[row];
        if (c && 'error' in c) md.push(`#### ${title}`, '', `failed: ${c.error}`, '');
        else if (c) md.push(renderCall(title, c));
      }
    }
    writeAtomic(file, md.join('\n'));
  };
  try {
    for (const [shape, v] of shapes.flatMap((sh) => ctx.opts.variants.map((va) => [sh, va] as const))) {
      // the run's column names (the default's says where it runs in fp32 or on another backend)
      const res: VariantResult = { label: v.name === 'default' ? ctx.column : v.label, variant: v.name, shape, calls: {} };
      variants[`${shapeKey(shape)} ${v.name}`] = res;
      try {
        applyVariant(v.options, v.instruments);
      } catch (e) {
        res.error = (e as Error).message.split('\n')[0];
        ctx.log(`  profile ${v.name} failed: ${res.error}`);
        write();
        continue;
      }
      const { calls, dispose } = unetCalls(ctx.models(), shape);
      try {
        for (const [row] of CALLS) {
          try {
            const p = await profileCall(calls[row]);
            res.calls[row] = p;
            ctx.log(`  profile ${row} ${shapeKey(shape)} (${v.name}): ${summaryLine(p)}`);
          } catch (e) {
            const error = (e as Error).message.split('\n')[0];
            res.calls[row] = { error };
            ctx.log(`  profile ${row} (${v.name}) failed: ${error}`);
          }
          write();
        }
      } finally {
        dispose();
      }
    }
  } finally {
    applyVariant({});
  }
  ctx.log(`  profile: ${file}`);
  return { raw };
}
