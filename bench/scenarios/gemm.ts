import * as tf from '@tensorflow/tfjs';
import { gpuPackHalf, gpuRandom } from '../harness/random-gpu.js';
import type { Scenario } from '../harness/scenario.js';
import { median, relMaxError, sync } from '../harness/timing.js';
import { gemmShapesOf, routeTiles, stagedGemm, tilesBytes, tilesFit, type ConvGeom, type Tiles } from '../harness/webgpu.js';

/** A GEMM of the guided step (UNet at batch 2, 16 frames of 32x32 latents): a plain one, or a convolution's implicit GEMM. */
interface GemmCase { name: string; m: number; n: number; k: number; bias: boolean; conv?: ConvGeom }

const conv = (name: string, g: ConvGeom, n: number): GemmCase =>
  ({ name, m: g.n * g.h * g.w, n, k: g.kh * g.kw * g.c, bias: true, conv: g });
const c3 = (images: number, s: number, c: number): ConvGeom => ({ n: images, h: s, w: s, c, kh: 3, kw: 3, padTop: 1, padLeft: 1 });
// TemporalConv3d: a (3, 1) convolution over [videos, frames, pixels, c]
const ct = (videos: number, frames: number, pixels: number, c: number): ConvGeom =>
  ({ n: videos, h: frames, w: pixels, c, kh: 3, kw: 1, padTop: 1, padLeft: 0 });

const FULL: GemmCase[] = [
  conv('3x3 conv, level 0', c3(32, 32, 320), 320),
  conv('3x3 conv, level 1', c3(32, 16, 640), 640),
  conv('3x3 conv, level 2', c3(32, 8, 1280), 1280),
  conv('3x3 conv, level 3', c3(32, 4, 1280), 1280),
  conv('temporal conv, level 0', ct(2, 16, 1024, 320), 320),
  conv('temporal conv, level 2', ct(2, 16, 64, 1280), 1280),
  { name: 'FF proj (GEGLU), level 0', m: 32768, n: 2560, k: 320, bias: true },
  { name: 'FF out, level 0', m: 32768, n: 320, k: 1280, bias: true },
  { name: 'q|k|v, level 0', m: 32768, n: 960, k: 320, bias: false },
  { name: 'FF proj (GEGLU), level 2', m: 2048, n: 10240, k: 1280, bias: true },
  { name: '4096 cubed', m: 4096, n: 4096, k: 4096, bias: false },
];
// --tiny (a smoke run, emulated matrices on a software adapter): the same kinds of GEMM, small
const TINY: GemmCase[] = [
  conv('3x3 conv', c3(2, 8, 64), 64),
  conv('temporal conv', ct(1, 4, 32, 64), 64),
  { name: 'linear', m: 128, n: 128, k: 64, bias: true },
];

/** One way to run the staged kernel: operands f32 or packed halves, one or two workgroup-memory stages, a tiling. */
interface Way { label: string; halfA: boolean; halfB: boolean; doubleBuffer: boolean; tiles?: (c: GemmCase, route: Tiles) => Tiles }

const WAYS: Way[] = [
  { label: 'A f32, B f32 (before half weights)', halfA: false, halfB: false, doubleBuffer: false },
  { label: 'A f32, B f16 (default)', halfA: false, halfB: true, doubleBuffer: false },
  { label: 'A f16, B f16 (f16 activations)', halfA: true, halfB: true, doubleBuffer: false },
  { label: 'A f32, B f16, 2 stages, K step 32', halfA: false, halfB: true, doubleBuffer: true, tiles: (_c, r) => ({ ...r, tk: 32 }) },
  { label: 'A f16, B f16, 2 stages, K step 32', halfA: true, halfB: true, doubleBuffer: true, tiles: (_c, r) => ({ ...r, tk: 32 }) },
];
// tilings tried with B f16 (and A f16 where noted), each with one and two stages: [bm, sgRows, sgCols, bn, tk]
const TILINGS: [number, number, number, number, number][] = [
  [32, 4, 2, 64, 32], [32, 4, 2, 64, 64], [64, 2, 2, 64, 32], [64, 2, 2, 64, 64], [64, 4, 2, 64, 32], [64, 2, 4, 32, 32],
  [32, 4, 1, 64, 32], [32, 4, 1, 64, 64], [64, 2, 1, 64, 32], [64, 4, 1, 64, 32], [32, 2, 2, 64, 32], [32, 2, 2, 32, 32],
  [64, 1, 2, 64, 32], [32, 8, 2, 32, 32],
];

interface Row { gemm: string; way: string; ms: number | null; tflops: number | null; tiles: string; note?: string; relErr?: number }

export const gemm: Scenario = {
  name: 'gemm', kind: 'once',
  about: "the tensor-core GEMM kernel on the guided step's shapes: f32 vs f16 operands, one or two workgroup-memory stages, tilings",
  run: async (ctx) => {
    if (ctx.opts.backend !== 'webgpu') throw new Error('gemm times the tensor-core kernel: run it with --backend webgpu');
    const cases = ctx.opts.tiny ? TINY : FULL;
    const rows: Row[] = [];
    const emulate = ctx.opts.tiny;
    for (const c of cases) {
      const route = routeTiles(c.m, c.n, c.k, c.bias, c.conv?.c);
      const aShape = c.conv ? [c.conv.n, c.conv.h, c.conv.w, c.conv.c] : [c.m, c.k];
      const a32 = gpuRandom(aShape, 1, 1);
      const b32 = gpuRandom(c.conv ? [c.conv.kh, c.conv.kw, c.conv.c, c.n] : [c.k, c.n], 1 / Math.sqrt(c.k), 2);
      const a16 = gpuPackHalf(a32);
      const b16 = gpuPackHalf(b32);
      const bias = c.bias ? gpuRandom([c.n], 0.1, 3) : null;
      const ways: (Way & { tiles?: (c: GemmCase, r: Tiles) => Tiles })[] = [...WAYS];
      for (const [bm, sgRows, sgCols, bn, tk] of emulate ? [] : TILINGS) {
        for (const doubleBuffer of [false, true]) {
          ways.push({ label: `A f32, B f16, ${bm * sgRows}x${bn * sgCols} tile, ${sgRows}x${sgCols} subgroups of ${bm}x${bn}, K step ${tk}${doubleBuffer ? ', 2 stages' : ''}`,
            halfA: false, halfB: true, doubleBuffer, tiles: () => ({ bm, sgRows, sgCols, bn, tk }) });
        }
      }
      const emuTiles: Tiles = { bm: 16, sgRows: 2, sgCols: 2, bn: 16, tk: 16 };
      const gflop = 2 * c.m * c.n * c.k / 1e9;
      let reference: Float32Array | null = null; // the first way's output: every other way must compute the same
      for (const w of ways) {
        const tiles = emulate ? emuTiles : w.tiles ? w.tiles(c, route) : route;
        const tilesLabel = `${tiles.bm}x${tiles.sgRows}x${tiles.sgCols}x${tiles.bn}x${tiles.tk}${tiles.splits ? ` split ${tiles.splits}` : ''}`;
        const maxBytes = (tf.backend() as unknown as { device: GPUDevice }).device.limits.maxComputeWorkgroupStorageSize;
        const fits = tilesFit(tiles, c.m, c.n, c.k) && (!c.conv || c.conv.c % tiles.tk === 0)
          && (w.doubleBuffer ? 2 : 1) * tilesBytes(tiles, false) + (c.bias ? tilesBytes(tiles, true) - tilesBytes(tiles, false) : 0) <= maxBytes;
        if (!fits) {
          rows.push({ gemm: c.name, way: w.label, ms: null, tflops: null, tiles: tilesLabel, note: 'does not fit' });
          continue;
        }
        const once = () => stagedGemm(w.halfA ? a16 : a32, aShape, w.halfB ? b16 : b32, c.n, bias,
          c.conv ? [c.conv.n, c.conv.h, c.conv.w, c.n] : [c.m, c.n], { conv: c.conv, tiles, halfA: w.halfA, halfB: w.halfB,
            doubleBuffer: w.doubleBuffer, emulate, splitK: true });
        try {
          const first = once();
          if (!first) throw new Error('the device has no f16 subgroup matrices (tensor cores)');
          const values = (await first.data()) as Float32Array;
          first.dispose();
          reference ??= values;
          const relErr = relMaxError(values, reference);
          await sync();
          // back-to-back dispatches, so the GPU time (not the per-dispatch CPU cost) sets the figure
          const reps = emulate ? 1 : 8;
          const samples: number[] = [];
          for (let s = 0; s < (emulate ? 1 : 3); s++) {
            const t0 = performance.now();
            for (let r = 0; r < reps; r++) once()!.dispose();
            await sync();
            samples.push((performance.now() - t0) / reps);
          }
          const ms = median(samples);
          rows.push({ gemm: c.name, way: w.label, ms, tflops: gflop / ms, tiles: tilesLabel, relErr });
        } catch (e) {
          rows.push({ gemm: c.name, way: w.label, ms: null, tflops: null, tiles: tilesLabel, note: (e as Error).message.split('\n')[0] });
        }
      }
      tf.dispose([a32, b32, a16, b16, ...(bias ? [bias] : [])]);
      const mine = rows.filter((r) => r.gemm === c.name && r.ms !== null).sort((x, y) => x.ms! - y.ms!);
      const def = mine.find((r) => r.way.includes('(default)'));
      ctx.log(`gemm ${c.name} [${c.m}x${c.k}]x[${c.k}x${c.n}]: default ${def?.ms?.toFixed(3)} ms (${def?.tflops?.toFixed(1)} TFLOP/s, ${def?.tiles}); `
        + `best ${mine[0]?.ms?.toFixed(3)} ms (${mine[0]?.tflops?.toFixed(1)} TFLOP/s): ${mine[0]?.way}`);
    }
    return { raw: rows, markdown: gemmMarkdown(rows) };
  },
};

function gemmMarkdown(rows: Row[]): string {
  const out = ['## Tensor-core GEMM probe (`gemm`)', ''];
  for (const name of [...new Set(rows.map((r) => r.gemm))]) {
    const mine = rows.filter((r) => r.gemm === name);
    const def = mine.find((r) => r.way.includes('(default)'))?.ms ?? null;
    out.push(`### ${name}`, '', '| way | tiles | ms | TFLOP/s | vs default | rel err vs f32 A and B |', '|---|---|---|---|---|---|');
    const ordered = [...mine.filter((r) => r.ms !== null).sort((x, y) => x.ms! - y.ms!), ...mine.filter((r) => r.ms === null)];
    for (const r of ordered.slice(0, 12)) {
      out.push(`| ${r.way} | ${r.tiles} | ${r.ms?.toFixed(3) ?? r.note ?? '-'} | ${r.tflops?.toFixed(1) ?? '-'} | ${r.ms && def ? `${(def / r.ms).toFixed(2)}x` : '-'} | ${r.relErr?.toExponential(1) ?? '-'} |`);
    }
    out.push('');
  }
  return out.join('\n');
}

/** The candidate tilings of the step probe: [label, tiles] (split-K parts are added per shape). */
const STEP_BASES: [string, Tiles][] = [
  ['64x128 (2x2 of 32x64)', { bm: 32, sgRows: 2, sgCols: 2, bn: 64, tk: 32 }],
  ['64x64 (2x2 of 32x32)', { bm: 32, sgRows: 2, sgCols: 2, bn: 32, tk: 32 }],
  ['128x64 (4x1 of 32x64)', { bm: 32, sgRows: 4, sgCols: 1, bn: 64, tk: 32 }],
  ['128x128 (4x2 of 32x64)', { bm: 32, sgRows: 4, sgCols: 2, bn: 64, tk: 32 }],
  ['128x128 (4x2 of 32x64), K step 64', { bm: 32, sgRows: 4, sgCols: 2, bn: 64, tk: 64 }],
  ['128x64 (4x2 of 32x32)', { bm: 32, sgRows: 4, sgCols: 2, bn: 32, tk: 32 }],
];
const SPLITS = [1, 2, 3, 4, 6, 8];

interface StepRow { shape: string; count: number; m: number; n: number; k: number; conv: boolean; routeMs: number | null; route: string;
  candidates: { base: string; splits: number; ms: number }[] }

/**
 * The GEMMs of one guided step as the route runs them (shapes recorded by WebGPUOps' onGemm),
 * each timed with today's tiling and with the candidate tilings (with and without split-K): per shape the best,
 * and over the step the total of each policy (a fixed base tiling with its best split, or the best per shape).
 */
export const gemmStep: Scenario = {
  name: 'gemm-step', kind: 'once',
  about: "the guided step's own GEMMs, each timed with today's tiling and with candidate tilings (totals per policy)",
  run: async (ctx) => {
    if (ctx.opts.backend !== 'webgpu') throw new Error('gemm-step times the tensor-core kernel: run it with --backend webgpu');
    const { unet, contextDim } = ctx.models();
    const frames = ctx.opts.tiny ? 2 : 16;
    const s = ctx.opts.tiny ? 4 : 32;
    const x1 = gpuRandom([1, frames, s, s, 4], Math.sqrt(3), 101) as tf.Tensor5D;
    const c2 = gpuRandom([2, 77, contextDim], Math.sqrt(3), 102) as tf.Tensor3D;
    const t = tf.tensor1d([500]);
    const calls: [string, () => tf.Tensor][] = [
      ['guided step', () => unet.forward(x1, t, c2)],
    ];
    const emulate = ctx.opts.tiny;
    const maxBytes = (tf.backend() as unknown as { device: GPUDevice }).device.limits.maxComputeWorkgroupStorageSize;
    const out: Record<string, StepRow[]> = {};
    const md: string[] = ['## The step\'s GEMMs under candidate tilings (`gemm-step`)', ''];
    for (const [callName, call] of calls) {
      const shapes = await gemmShapesOf(call, emulate);
      const rows: StepRow[] = [];
      for (const { shape, count } of shapes) {
        const c: GemmCase = { name: '', m: shape.m, n: shape.n, k: shape.k, bias: shape.bias, conv: shape.conv };
        const aShape = c.conv ? [c.conv.n, c.conv.h, c.conv.w, c.conv.c] : [c.m, c.k];
        const a = gpuRandom(aShape, 1, 1);
        const b32 = gpuRandom(c.conv ? [c.conv.kh, c.conv.kw, c.conv.c, c.n] : [c.k, c.n], 1 / Math.sqrt(c.k), 2);
        const b16 = gpuPackHalf(b32);
        b32.dispose();
        const bias = c.bias ? gpuRandom([c.n], 0.1, 3) : null;
        const outShape = c.conv ? [c.conv.n, c.conv.oh ?? c.conv.h, c.conv.ow ?? c.conv.w, c.n] : [c.m, c.n];
        const time = async (tiles: Tiles | undefined): Promise<number | null> => {
          const t = emulate ? { bm: 16, sgRows: 2, sgCols: 2, bn: 16, tk: 16 } : tiles;
          if (t && (!tilesFit(t, c.m, c.n, c.k) || (c.conv && c.conv.c % t.tk !== 0)
            || tilesBytes(t, c.bias) > maxBytes)) return null;
          const once = () => stagedGemm(a, aShape, b16, c.n, bias, outShape, { conv: c.conv, tiles: t, halfB: true, emulate })!;
          once().dispose();
          await sync();
          const reps = emulate ? 1 : 6;
          const samples: number[] = [];
          for (let r = 0; r < (emulate ? 1 : 3); r++) {
            const t0 = performance.now();
            for (let i = 0; i < reps; i++) once().dispose();
            await sync();
            samples.push((performance.now() - t0) / reps);
          }
          return median(samples);
        };
        const route = routeTiles(c.m, c.n, c.k, c.bias, c.conv?.c);
        const row: StepRow = { shape: `${c.conv ? `conv ${c.conv.kh}x${c.conv.kw}${c.conv.stride === 2 ? '/2' : ''} ` : ''}${c.m}x${c.n}x${c.k}`,
          count, m: c.m, n: c.n, k: c.k, conv: !!c.conv, routeMs: await time(undefined),
          route: `${route.bm}x${route.sgRows}x${route.sgCols}x${route.bn}x${route.tk}${route.splits ? ` s${route.splits}` : ''}`, candidates: [] };
        for (const [base, t] of emulate ? STEP_BASES.slice(0, 1) : STEP_BASES) {
          for (const splits of emulate ? [1] : SPLITS) {
            const tiles = { ...t, ...(splits > 1 ? { splits } : {}) };
            const groups = (c.m / (t.bm * t.sgRows)) * (c.n / (t.bn * t.sgCols)) * splits;
            // split K only where the whole-K tiling leaves fewer than three workgroups per SM of an H200
            if (splits > 1 && (c.k / (t.tk * splits) < 4 || groups / splits >= 3 * 132)) continue;
            const ms = await time(tiles);
            if (ms !== null) row.candidates.push({ base, splits, ms });
          }
        }
        tf.dispose([a, b16, ...(bias ? [bias] : [])]);
        rows.push(row);
        const best = [...row.candidates].sort((p, q) => p.ms - q.ms)[0];
        ctx.log(`${callName} ${row.shape} x${count}: route ${row.routeMs?.toFixed(3)} ms (${row.route}); best ${best?.ms.toFixed(3)} ms (${best?.base}${best && best.splits > 1 ? ` split ${best.splits}` : ''})`);
      }
      out[callName] = rows;
      md.push(...stepMarkdown(callName, rows));
    }
    tf.dispose([x1, c2, t]);
    return { raw: out, markdown: md.join('\n') };
  },
};

function stepMarkdown(callName: string, rows: StepRow[]): string[] {
  const total = (pick: (r: StepRow) => number | null) => rows.reduce((a, r) => a + r.count * (pick(r) ?? r.routeMs ?? 0), 0);
  const bestOf = (r: StepRow, base?: string) => {
    const c = r.candidates.filter((x) => base === undefined || x.base === base);
    return c.length ? Math.min(...c.map((x) => x.ms)) : null;
  };
  const lines = [`### ${callName}: GPU ms of its GEMMs (each timed alone, back to back)`, '', '| policy | total ms |', '|---|---|',
    `| today's tiling (route) | ${total((r) => r.routeMs).toFixed(2)} |`,
    `| best candidate per shape | ${total((r) => Math.min(r.routeMs ?? Infinity, bestOf(r) ?? Infinity)).toFixed(2)} |`];
  for (const [base] of STEP_BASES) lines.push(`| ${base}, best split per shape | ${total((r) => bestOf(r, base)).toFixed(2)} |`);
  lines.push('', '| GEMM | calls | route ms (tiles) | best ms (tiles) | top 3 |', '|---|---|---|---|---|');
  for (const r of [...rows].sort((p, q) => q.count * (q.routeMs ?? 0) - p.count * (p.routeMs ?? 0))) {
    const top = [...r.candidates].sort((p, q) => p.ms - q.ms).slice(0, 3);
    const f = (x: { base: string; splits: number; ms: number }) => `${x.ms.toFixed(3)} ${x.base}${x.splits > 1 ? ` s${x.splits}` : ''}`;
    lines.push(`| ${r.shape} | ${r.count} | ${r.routeMs?.toFixed(3) ?? '-'} (${r.route}) | ${top[0] ? f(top[0]) : '-'} | ${top.slice(1).map(f).join('; ')} |`);
  }
  lines.push('');
  return lines;
}
