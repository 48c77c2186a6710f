import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { subgroupMatrixConfigs } from '../src/backends/dawn.js';
import { defaultTiles, matMulF16StagedInfo, tilesBytes, tilesFit, type Tiles } from '../src/backends/webgpu/matmul-f16-staged.js';
import { observeGemms, pickConfig, routeMatMulsToTensorCores, setTileChooser, type GemmShape } from '../src/backends/webgpu/matmul-f16.js';
import { registerWebGPUKernels } from '../src/backends/webgpu/register.js';
import { UNetSD } from '../src/layers/unet/unet.js';
import { gpuRandom } from './random-gpu.js';
import { median, relMaxError, sync, timeIt } from './timing.js';
import { RELEASED_UNET, UNET_TFLOP, profileKernels, randomizeWeights } from './unet.js';

const shapeKey = (s: GemmShape) => `${s.m}x${s.n}x${s.k}${s.bias ? '+b' : ''}${s.conv ? ` conv ${s.conv.kh}x${s.conv.kw} [${s.conv.n},${s.conv.h},${s.conv.w},${s.conv.c}]` : ''}`;
const tilesKey = (t: Tiles) => `${t.bm}x${t.sgRows}x${t.sgCols}x${t.bn}x${t.tk}`;

/** The tilings tried on every GEMM shape: subgroup blocks 32/64 square-ish, 2-8 subgroups, K steps of 32 or 64. */
function candidates(): Tiles[] {
  const out: Tiles[] = [];
  for (const tk of [32, 64]) {
    for (const [bm, bn] of [[32, 32], [32, 64], [64, 32], [64, 64]]) {
      for (const [sgRows, sgCols] of [[4, 2], [2, 2], [2, 4], [4, 1], [8, 1], [1, 4]]) out.push({ bm, sgRows, sgCols, bn, tk });
    }
  }
  return out;
}

/** Median ms of one call when `reps` calls are queued back to back (the per-dispatch latency mostly hidden). */
async function timeQueued(fn: () => tf.Tensor, reps = 8, rounds = 3): Promise<number> {
  const once = async () => {
    const outs: tf.Tensor[] = [];
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) outs.push(fn());
    await sync();
    const ms = (performance.now() - t0) / reps;
    tf.dispose(outs);
    return ms;
  };
  await once();
  const t: number[] = [];
  for (let i = 0; i < rounds; i++) t.push(await once());
  return median(t);
}

/**
 * Tiling sweep of the staged tensor-core kernel on the GEMMs of one released-size UNet call (batch `args[0]`, default
 * 2 as the pipeline's batched guidance makes), each shape timed alone with every fitting tiling; then the UNet call
 * and (args[1] = steps, 0 to skip) whole generations with the default tilings and with each shape's fastest.
 */
export async function benchTiles(log: (s: string) => void, args: string[]): Promise<unknown> {
  const batch = Number(args[0] ?? 2);
  const steps = Number(args[1] ?? 50);
  const budgetS = Number(args[2] ?? 240);
  const cfg = pickConfig(subgroupMatrixConfigs);
  if (!cfg) {
    log('no f16 -> f32 subgroup matrix configuration: nothing to measure');
    return {};
  }
  const backend = tf.backend() as WebGPUBackend;
  const maxBytes = backend.device.limits.maxComputeWorkgroupStorageSize;
  log(`tiling sweep, UNet batch ${batch}; workgroup memory limit ${maxBytes} B`);
  registerWebGPUKernels();
  const undoRoute = routeMatMulsToTensorCores(cfg);
  const res: Record<string, unknown> = {};
  const net = new UNetSD(RELEASED_UNET);
  randomizeWeights(net, gpuRandom);
  const x = gpuRandom([batch, 16, 32, 32, 4], Math.sqrt(3), 101) as tf.Tensor5D;
  const t = tf.fill([batch], 500, 'float32') as tf.Tensor1D;
  const ctx = gpuRandom([batch, 77, 1024], Math.sqrt(3), 102) as tf.Tensor3D;
  const call = () => net.forward(x, t, ctx);

  {
    const x1 = tf.slice(x, 0, 1);
    const t1 = tf.slice(t, 0, 1);
    const c1 = tf.slice(ctx, 0, 1);
    const ms = await timeIt(() => net.forward(x1, t1, c1), 5, 1);
    tf.dispose([x1, t1, c1]);
    res.unet_b1_default_ms = ms;
    log(`UNet call (batch 1), default tilings: ${ms.toFixed(1)} ms (${(UNET_TFLOP / ms * 1000).toFixed(1)} TFLOP/s)`);
  }
  const shapes = new Map<string, { s: GemmShape; count: number }>();
  observeGemms((s) => {
    const e = shapes.get(shapeKey(s));
    if (e) e.count++; else shapes.set(shapeKey(s), { s, count: 1 });
  });
  call().dispose();
  observeGemms(null);
  const ref = call();
  const refData = await ref.data();
  ref.dispose();
  const baseMs = await timeIt(call, 5, 1);
  log(`UNet call (batch ${batch}), default tilings: ${baseMs.toFixed(1)} ms; ${[...shapes.values()].reduce((a, e) => a + e.count, 0)} tensor-core GEMMs of ${shapes.size} shapes`);
  res.unet_default_ms = baseMs;
  res.profile_default = await profileKernels(call, log);

  // each shape alone: default tiling first, then every candidate that fits
  const rows: Record<string, unknown>[] = [];
  const best = new Map<string, Tiles>();
  const started = performance.now();
  const measured: { key: string; count: number; defMs: number; tiles: Tiles; ms: number }[] = [];
  for (const { s, count } of shapes.values()) {
    const ins = s.conv
      ? [gpuRandom([s.conv.n, s.conv.h, s.conv.w, s.conv.c], 1, 11), gpuRandom([s.conv.kh, s.conv.kw, s.conv.c, s.n], 1 / Math.sqrt(s.k), 12)]
      : [gpuRandom([s.m, s.k], 1, 11), gpuRandom([s.k, s.n], 1 / Math.sqrt(s.k), 12)];
    const bias = s.bias ? gpuRandom([s.n], 0.1, 13) : null;
    const outShape = s.conv ? [s.conv.n, s.conv.h, s.conv.w, s.n] : [s.m, s.n];
    const run = (tl?: Tiles) => tf.engine().makeTensorFromTensorInfo(
      matMulF16StagedInfo(backend, ins[0], ins[1], bias, cfg, outShape, s.conv, tl));
    const defOut = run();
    const defData = await defOut.data();
    defOut.dispose();
    const defMs = await timeQueued(() => run());
    const tried: { tiles: string; ms: number; err: number }[] = [];
    let win = { tiles: defaultTiles(s.n), ms: defMs };
    for (const tl of candidates()) {
      if ((performance.now() - started) / 1000 > budgetS) break;
      if (!tilesFit(tl, s.m, s.n, s.k, cfg) || (s.conv && s.conv.c % tl.tk !== 0) || tilesBytes(tl, s.bias, cfg.M) > maxBytes) continue;
      if (tilesKey(tl) === tilesKey(defaultTiles(s.n))) continue;
      try {
        const o = run(tl);
        const err = relMaxError(await o.data(), defData);
        o.dispose();
        const ms = await timeQueued(() => run(tl));
        tried.push({ tiles: tilesKey(tl), ms, err });
        // a tiling whose output differs from the default's (beyond summation order) is broken, not fast
        if (err < 1e-4 && ms < win.ms) win = { tiles: tl, ms };
      } catch (e) {
        tried.push({ tiles: tilesKey(tl), ms: NaN, err: NaN });
        log(`  ${tilesKey(tl)} failed: ${(e as Error).message}`);
      }
    }
    tf.dispose([...ins, ...(bias ? [bias] : [])]);
    const key = shapeKey(s);
    if (win.ms < defMs * 0.97) best.set(key, win.tiles);
    const gflop = 2 * s.m * s.n * s.k / 1e9;
    measured.push({ key, count, defMs, tiles: win.tiles, ms: win.ms });
    rows.push({ shape: key, count, defaultMs: defMs, bestTiles: tilesKey(win.tiles), bestMs: win.ms, tried });
    const top = [...tried].filter((r) => r.err < 1e-4).sort((a, b) => a.ms - b.ms).slice(0, 3).map((r) => `${r.tiles} ${r.ms.toFixed(3)}`).join(', ');
    log(`${key.padEnd(44)} x${String(count).padStart(3)}: default ${defMs.toFixed(3)} ms (${(gflop / defMs).toFixed(1)} TFLOP/s), best ${tilesKey(win.tiles)} ${win.ms.toFixed(3)} ms (${(gflop / win.ms).toFixed(1)} TFLOP/s); top: ${top}`);
  }
  const sum = (f: (r: typeof measured[number]) => number) => measured.reduce((a, r) => a + r.count * f(r), 0);
  log(`GEMMs of one call, each timed alone: default ${sum((r) => r.defMs).toFixed(1)} ms, best tilings ${sum((r) => r.ms).toFixed(1)} ms`);
  res.shapes = rows;
  res.best = Object.fromEntries([...best].map(([k, v]) => [k, v]));

  // the UNet call with each shape's winner, alternating with the default
  setTileChooser((s) => best.get(shapeKey(s)) ?? null);
  const tuned = call();
  const errTuned = relMaxError(await tuned.data(), refData);
  tuned.dispose();
  const alt: Record<string, number> = {};
  for (const on of [false, true, false, true]) {
    setTileChooser(on ? (s) => best.get(shapeKey(s)) ?? null : null);
    alt[`${on ? 'tuned' : 'default'}_${Object.keys(alt).length}`] = await timeIt(call, 5, 1);
  }
  log(`UNet call (batch ${batch}): ${Object.entries(alt).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(', ')}; tuned vs default output rel err ${errTuned.toExponential(2)} (${(batch * UNET_TFLOP / Math.min(alt.tuned_1, alt.tuned_3) * 1000).toFixed(1)} TFLOP/s at best)`);
  setTileChooser((s) => best.get(shapeKey(s)) ?? null);
  res.profile_tuned = await profileKernels(call, log);
  res.unet = { alt, errTuned };
  setTileChooser(null);
  tf.dispose([x, t, ctx]);
  net.disposeWeights();
  undoRoute();

  if (steps > 0) {
    const pipe = await import('./pipeline.js');
    const undo = routeMatMulsToTensorCores(cfg);
    try {
      log('whole generation on tensor cores, guidance batched, default tilings:');
      res.pipeline_default = await pipe.benchPipeline(log, [String(steps), '', 'batch']);
      const l0 = pipe.lastLatents;
      setTileChooser((s) => best.get(shapeKey(s)) ?? null);
      log('the same with the tuned tilings:');
      res.pipeline_tuned = await pipe.benchPipeline(log, [String(steps), '', 'batch']);
      const l1 = pipe.lastLatents;
      if (l0 && l1 && l0 !== l1) {
        res.pipeline_tuned_vs_default = relMaxError(l1, l0);
        log(`final latents, tuned vs default tilings: rel err ${(res.pipeline_tuned_vs_default as number).toExponential(2)}`);
      }
    } finally {
      setTileChooser(null);
      undo();
    }
  }
  log(`best tilings: ${JSON.stringify(res.best)}`);
  return res;
}
