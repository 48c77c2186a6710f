import * as tf from '@tensorflow/tfjs';
import { gpuPackHalf, gpuRandom } from '../harness/random-gpu.js';
import type { Scenario } from '../harness/scenario.js';
import { median, relMaxError, sync } from '../harness/timing.js';
import { routeTiles, stagedGemm, tilesBytes, tilesFit, type ConvGeom, type Tiles } from '../harness/webgpu.js';

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
