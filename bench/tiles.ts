import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { subgroupMatrixConfigs } from '../src/backends/dawn.js';
import { defaultTiles, tilesBytes, tilesFit, type Tiles } from '../src/backends/webgpu/matmul-f16-staged.js';
import { observeGemms, pickConfig, routeMatMulsToTensorCores, setTileChooser, type GemmShape } from '../src/backends/webgpu/matmul-f16.js';
import { registerWebGPUKernels } from '../src/backends/webgpu/register.js';
import { UNetSD } from '../src/layers/unet/unet.js';
import { gpuRandom } from './random-gpu.js';
import { relMaxError, timeIt, timedKernels } from './timing.js';
import { RELEASED_UNET, UNET_TFLOP, randomizeWeights } from './unet.js';

const shapeKey = (s: { m: number; n: number; k: number; conv: boolean }) => `${s.m}x${s.n}x${s.k}${s.conv ? ' conv' : ''}`;
const tilesKey = (t: Tiles) => `${t.bm}x${t.sgRows}x${t.sgCols}x${t.bn}x${t.tk}${t.splits ? `/${t.splits}` : ''}`;

/** Tilings tried (besides the default): larger subgroup blocks, fewer or more subgroups, K steps of 64. */
const CANDIDATES: Tiles[] = [
  { bm: 32, sgRows: 4, sgCols: 2, bn: 32, tk: 64 },
  { bm: 32, sgRows: 4, sgCols: 2, bn: 64, tk: 64 },
  { bm: 32, sgRows: 4, sgCols: 1, bn: 64, tk: 32 },
  { bm: 64, sgRows: 2, sgCols: 2, bn: 32, tk: 32 },
  { bm: 64, sgRows: 2, sgCols: 2, bn: 64, tk: 32 },
  { bm: 64, sgRows: 2, sgCols: 1, bn: 64, tk: 32 },
  { bm: 32, sgRows: 2, sgCols: 4, bn: 32, tk: 32 },
  { bm: 64, sgRows: 1, sgCols: 4, bn: 64, tk: 64 },
  { bm: 32, sgRows: 8, sgCols: 1, bn: 64, tk: 32 },
  // split-K (partial products summed by a second pass): for the few-row GEMMs of batch 1's deep levels
  ...[2, 3, 4, 6].map((splits) => ({ bm: 32, sgRows: 4, sgCols: 2, bn: 64, tk: 64, splits })),
  ...[2, 4].map((splits) => ({ bm: 32, sgRows: 2, sgCols: 2, bn: 64, tk: 64, splits })),
  ...[2, 4].map((splits) => ({ bm: 32, sgRows: 2, sgCols: 2, bn: 32, tk: 32, splits })),
];
/** Split-K sums in another order: its outputs differ from the default's by float rounding, not by a bug. */
const SPLIT_TOLERANCE = 3e-3;

/** The GEMM a profiled MatMul/Conv2D kernel computed, from its input shapes (as the route sees it), or null. */
function gemmOf(name: string, shapes: number[][]): { m: number; n: number; k: number; conv: boolean } | null {
  if (name === 'BatchMatMul' || name === '_FusedMatMul') {
    const [a, b] = shapes;
    if (!a || !b || a.length < 2) return null;
    return { m: a.slice(0, -1).reduce((x, y) => x * y, 1), k: a[a.length - 1], n: b[b.length - 1], conv: false };
  }
  if (name === 'Conv2D' || name === 'FusedConv2D') {
    const [x, f] = shapes;
    if (!x || !f || x.length !== 4 || f.length !== 4) return null;
    return { m: x[0] * x[1] * x[2], k: f[0] * f[1] * f[2], n: f[3], conv: true };
  }
  return null;
}

/** GPU time of one call's GEMMs by shape (timestamp queries), and of all kernels. */
async function gemmTimes(fn: () => tf.Tensor): Promise<{ total: number; byShape: Map<string, number> }> {
  const byShape = new Map<string, number>();
  let total = 0;
  for (const k of await timedKernels(fn)) {
    total += k.ms;
    const g = gemmOf(k.name, k.inputShapes);
    if (g) byShape.set(shapeKey(g), (byShape.get(shapeKey(g)) ?? 0) + k.ms);
  }
  return { total, byShape };
}

/**
 * Tilings of the tensor-core GEMM kernel chosen by GPU time inside the UNet call (batch `args[0]`, default 2 as a
 * guided step): one profiled call with the default tilings, then one per candidate tiling applied to every GEMM it
 * fits; per shape the fastest wins (by 3% or more). Then the call and (args[1] = steps, 0 to skip) whole generations
 * with the default and the winners, alternating. Run 14 timed each shape alone instead, which misled (bench/RESULTS.md).
 */
export async function benchTiles(log: (s: string) => void, args: string[]): Promise<unknown> {
  const batch = Number(args[0] ?? 2);
  const steps = Number(args[1] ?? 50);
  const cfg = pickConfig(subgroupMatrixConfigs);
  if (!cfg) {
    log('no f16 -> f32 subgroup matrix configuration: nothing to measure');
    return {};
  }
  const maxBytes = (tf.backend() as WebGPUBackend).device.limits.maxComputeWorkgroupStorageSize;
  const defaultOf = (s: GemmShape) => defaultTiles(s.m, s.n, s.k, { bias: s.bias, convC: s.conv?.c, maxBytes });
  registerWebGPUKernels();
  const undoRoute = routeMatMulsToTensorCores(cfg);
  const res: Record<string, unknown> = {};
  const net = new UNetSD(RELEASED_UNET);
  randomizeWeights(net, gpuRandom);
  const x = gpuRandom([batch, 16, 32, 32, 4], Math.sqrt(3), 101) as tf.Tensor5D;
  const t = tf.fill([batch], 500, 'float32') as tf.Tensor1D;
  const ctx = gpuRandom([batch, 77, 1024], Math.sqrt(3), 102) as tf.Tensor3D;
  const call = () => net.forward(x, t, ctx);

  // the routed GEMMs (the profile also lists the ones tfjs keeps; only routed shapes can change)
  const routed = new Map<string, GemmShape>();
  observeGemms((s) => routed.set(shapeKey({ ...s, conv: s.conv !== undefined }), s));
  const y0 = call();
  const ref = (await y0.data()) as Float32Array;
  y0.dispose();
  observeGemms(null);
  // a profile right after the first call read high (run 16: 293.6 ms against 213-215 ms in runs 14-15): warm up
  await gemmTimes(call);
  const base = await gemmTimes(call);
  log(`UNet call (batch ${batch}), default tilings: GPU time ${base.total.toFixed(1)} ms, ${routed.size} routed GEMM shapes`);

  const best = new Map<string, { tiles: Tiles; ms: number }>();
  for (const [key] of routed) best.set(key, { tiles: defaultOf(routed.get(key)!), ms: base.byShape.get(key) ?? Infinity });
  const fits = (tl: Tiles, s: GemmShape) => tilesFit(tl, s.m, s.n, s.k, cfg) && (!s.conv || s.conv.c % tl.tk === 0)
    && tilesBytes(tl, s.bias, cfg.M) <= maxBytes;
  for (const tl of CANDIDATES) {
    setTileChooser((s) => (fits(tl, s) ? tl : null));
    const y = call();
    const err = relMaxError((await y.data()) as Float32Array, ref);
    y.dispose();
    await timeIt(call, 1, 1); // the first profile after new pipelines read 2-3x high (run 31)
    const p = await gemmTimes(call);
    let won = 0;
    for (const [key, s] of routed) {
      const ms = p.byShape.get(key);
      const cur = best.get(key)!;
      if (ms !== undefined && fits(tl, s) && err < (tl.splits ? SPLIT_TOLERANCE : 1e-4) && ms < 0.97 * cur.ms) {
        best.set(key, { tiles: tl, ms });
        won++;
      }
    }
    log(`  tiling ${tilesKey(tl)}: GPU time ${p.total.toFixed(1)} ms, output vs default ${err.toExponential(2)}, fastest so far on ${won} shapes`);
  }
  const chosen = new Map([...best].filter(([key, b]) => tilesKey(b.tiles) !== tilesKey(defaultOf(routed.get(key)!))));
  const choose = (s: GemmShape) => chosen.get(shapeKey({ ...s, conv: s.conv !== undefined }))?.tiles ?? null;
  for (const [key, b] of chosen) log(`  ${key.padEnd(22)} ${tilesKey(b.tiles)} ${b.ms.toFixed(2)} ms (default ${(base.byShape.get(key) ?? NaN).toFixed(2)} ms)`);
  res.chosen = Object.fromEntries([...chosen].map(([k, b]) => [k, b.tiles]));

  setTileChooser(null);
  const again = await gemmTimes(call);
  log(`  default tilings again: GPU time ${again.total.toFixed(1)} ms (first: ${base.total.toFixed(1)})`);
  setTileChooser(choose);
  const tuned = await gemmTimes(call);
  const yt = call();
  const errTuned = relMaxError((await yt.data()) as Float32Array, ref);
  yt.dispose();
  const wall: Record<string, number[]> = { default: [], tuned: [] };
  for (let round = 0; round < 2; round++) {
    for (const on of [false, true]) {
      setTileChooser(on ? choose : null);
      wall[on ? 'tuned' : 'default'].push(await timeIt(call, 7, 1));
    }
  }
  log(`UNet call (batch ${batch}): GPU time default ${base.total.toFixed(1)} / tuned ${tuned.total.toFixed(1)} ms; wall default ${wall.default.map((m) => m.toFixed(1)).join(' / ')}, tuned ${wall.tuned.map((m) => m.toFixed(1)).join(' / ')} ms (${(batch * UNET_TFLOP / Math.min(...wall.tuned) * 1000).toFixed(1)} TFLOP/s); tuned vs default output ${errTuned.toExponential(2)}`);
  res.unet = { gpu_default: base.total, gpu_tuned: tuned.total, wall, errTuned };
  setTileChooser(null);
  tf.dispose([x, t, ctx]);
  net.disposeWeights();
  undoRoute();

  if (steps > 0) {
    const pipe = await import('./pipeline.js');
    const undo = routeMatMulsToTensorCores(cfg);
    try {
      for (const on of [false, true, false]) {
        setTileChooser(on ? choose : null);
        log(`whole generation, guidance batched, ${on ? 'tuned' : 'default'} tilings:`);
        const r = await pipe.benchPipeline(log, [String(steps), '', 'batch']);
        ((res[on ? 'pipeline_tuned' : 'pipeline_default'] ??= []) as unknown[]).push(r);
      }
    } finally {
      setTileChooser(null);
      undo();
    }
  }
  return res;
}
