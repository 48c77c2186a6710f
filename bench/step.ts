import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { dawnFlags, tensorCoresOn } from '../src/backends/dawn.js';
import { setTensorCoreAttention } from '../src/backends/webgpu/attention-tc.js';
import { bindGroupCache } from '../src/backends/webgpu/bind-groups.js';
import { groupNormApply } from '../src/backends/webgpu/group-norm.js';
import { splitK } from '../src/backends/webgpu/matmul-f16-staged.js';
import { stridedConvs } from '../src/backends/webgpu/matmul-f16.js';
import { registerWebGPUKernels, unregisterWebGPUKernels, type WebGPUKernel } from '../src/backends/webgpu/register.js';
import { contextProjection } from '../src/layers/unet/unet.js';
import { randomReleasedPipeline } from './pipeline.js';
import { gpuRandom } from './random-gpu.js';
import { countDispatches } from './tensor-cores.js';
import { encodeMs, gpuBytes, median, relMaxError, sumByName, sync, timeIt, timedKernels } from './timing.js';
import { UNET_TFLOP } from './unet.js';

const GEMMS = new Set(['_FusedMatMul', 'BatchMatMul', 'FusedConv2D', 'Conv2D']);

/** FLOPs of one matmul or stride-1 convolution kernel from its input shapes (0 for anything else). */
function gemmFlops(name: string, shapes: number[][], out: number[]): number {
  const [a, b] = shapes;
  if (name.endsWith('Conv2D')) {
    // from the output's pixels: a stride-2 convolution does a quarter of its input's
    const [n, h, w] = out;
    const [kh, kw, c, o] = b;
    return 2 * n * h * w * kh * kw * c * o;
  }
  const m = a.slice(0, -1).reduce((x, y) => x * y, 1);
  return 2 * m * a[a.length - 1] * b[b.length - 1];
}

/**
 * One guided DDIM step as the pipeline runs it, and whole generations, under the Dawn flags of this process
 * (T2V_DAWN_FLAGS; bench/run17.sh runs it once per set of flags): the UNet on x once under [cond, uncond]
 * (`sharesInput`, the pipeline's call), on x repeated (a plain batch of 2) and at batch 1, each the median of
 * alternating rounds; the CPU side of a call; GPU time per kernel and per GEMM shape (timestamp queries); then
 * 50-step 16x256x256 generations.
 */
export async function benchStep(log: (s: string) => void, outDir: string, args: string[]): Promise<unknown> {
  // args: [steps] [generations] [variants: a regular expression on their labels]
  const steps = Number(args[0] ?? 50);
  const gens = Number(args[1] ?? 2);
  log(`Dawn flags: ${dawnFlags().join(' ')}; tensor cores ${tensorCoresOn() ? 'on' : 'off'}`);
  registerWebGPUKernels();
  const { text, unet, vae, t2v } = randomReleasedPipeline();
  await sync();
  const res: Record<string, unknown> = { flags: dawnFlags() };

  const x1 = gpuRandom([1, 16, 32, 32, 4], Math.sqrt(3), 101) as tf.Tensor5D;
  const x2 = tf.concat([x1, x1]) as tf.Tensor5D;
  const c2 = gpuRandom([2, 77, 1024], Math.sqrt(3), 102) as tf.Tensor3D;
  const c1 = tf.slice(c2, 0, 1) as tf.Tensor3D;
  const t1 = tf.tensor1d([500]);
  const t2 = tf.tensor1d([500, 500]);
  const calls: Record<string, () => tf.Tensor> = {
    'x once under 2 contexts': () => unet.forward(x1, t1, c2),
    'batch 2': () => unet.forward(x2, t2, c2),
    'batch 1': () => unet.forward(x1, t1, c1),
  };
  const ya = calls['x once under 2 contexts']();
  const yb = calls['batch 2']();
  const err = relMaxError(await ya.data(), await yb.data());
  tf.dispose([ya, yb]);
  log(`UNet output, x once vs batch 2: rel err ${err.toExponential(2)}`);
  res.shared_vs_batch2 = err;

  const times: Record<string, number[]> = {};
  for (let round = 0; round < 3; round++) {
    for (const [name, fn] of Object.entries(calls)) (times[name] ??= []).push(await timeIt(fn, 5, round === 0 ? 2 : 1));
  }
  // batch 1 alone, more rounds: the host's noise moves single rounds by up to 50 ms (runs 29-32)
  const b1Rounds: number[] = [];
  for (let round = 0; round < 7; round++) b1Rounds.push(await timeIt(calls['batch 1'], 7, round === 0 ? 1 : 0));
  log(`UNet call, batch 1, 7 more rounds of 7: ${b1Rounds.map((t) => t.toFixed(1)).join(' / ')} ms, median ${median(b1Rounds).toFixed(1)}`);
  res.batch1_rounds = b1Rounds;
  const encode = await encodeMs(calls['x once under 2 contexts']);
  const dispatches = countDispatches(calls['x once under 2 contexts']);
  await sync();
  const calls_ms: Record<string, number> = {};
  for (const [name, ts] of Object.entries(times)) {
    calls_ms[name] = median(ts);
    const tflop = UNET_TFLOP * (name === 'batch 1' ? 1 : 2);
    log(`UNet call, ${name.padEnd(24)}: ${ts.map((t) => t.toFixed(1)).join(' / ')} ms (rounds), ${(tflop / median(ts) * 1e3).toFixed(1)} TFLOP/s`);
  }
  log(`  x once under 2 contexts: ${dispatches} dispatches, encoded in ${encode.toFixed(1)} ms (JavaScript side, median of 5); `
    + `bind groups so far ${bindGroupCache.hits} reused, ${bindGroupCache.misses} made; GPU buffers ${(gpuBytes().allocated / 2 ** 30).toFixed(2)} GiB`);
  res.calls_ms = calls_ms;
  res.encode_ms = encode;
  res.dispatches = dispatches;

  // GPU time by kernel and by GEMM shape (timestamp queries serialize the kernels)
  const profile = async (call = calls['x once under 2 contexts']) => {
    const kernels = await timedKernels(call);
    const byName = sumByName(kernels);
    const total = kernels.reduce((a, k) => a + k.ms, 0);
    const byShape = new Map<string, { name: string; ms: number; n: number; flops: number }>();
    for (const k of kernels) {
      if (!GEMMS.has(k.name)) continue;
      // the output shape tells a stride-2 convolution from the 3x3 one on the same input
      const key = `${k.name} ${k.inputShapes.slice(0, 2).map((s) => `[${s.join(',')}]`).join('x')} -> [${k.outputShapes[0].join(',')}]`;
      const e = byShape.get(key) ?? { name: k.name, ms: 0, n: 0, flops: 0 };
      e.ms += k.ms;
      e.n++;
      e.flops += gemmFlops(k.name, k.inputShapes, k.outputShapes[0]);
      byShape.set(key, e);
    }
    return { total, byName, byShape, kernels: kernels.length };
  };
  const gemmTotal = (byShape: Map<string, { ms: number }>) => [...byShape.values()].reduce((a, e) => a + e.ms, 0);
  // the GEMM shapes whose GPU time moved by more than 0.05 ms, largest change first
  const logShapeChanges = (base: Map<string, { ms: number }>, now: Map<string, { ms: number }>) => {
    const delta = ([k, v]: [string, { ms: number }]) => v.ms - (base.get(k)?.ms ?? 0);
    for (const [k, v] of [...now.entries()].filter((kv) => Math.abs(delta(kv)) > 0.05)
      .sort((a, b) => Math.abs(delta(b)) - Math.abs(delta(a))).slice(0, 12)) {
      log(`    ${k}: ${(base.get(k)?.ms ?? 0).toFixed(2)} -> ${v.ms.toFixed(2)} ms`);
    }
  };
  const slowest = (byShape: Map<string, { ms: number; n: number; flops: number }>, count: number) => {
    const sorted = [...byShape.entries()].sort((a, b) => b[1].ms - a[1].ms);
    for (const [key, e] of sorted.slice(0, count)) {
      log(`  ${e.ms.toFixed(2).padStart(7)} ms  x${String(e.n).padEnd(3)} ${(e.flops / e.ms / 1e9).toFixed(1).padStart(6)} TFLOP/s  ${key}`);
    }
    return sorted;
  };
  const { total, byName, byShape } = await profile();
  log(`GPU time ${total.toFixed(1)} ms: ${Object.entries(byName).sort((a, b) => b[1] - a[1]).slice(0, 9).map(([n, ms]) => `${n} ${ms.toFixed(1)}`).join(', ')}`);
  const gemmMs = gemmTotal(byShape);
  const gemmFlop = [...byShape.values()].reduce((a, e) => a + e.flops, 0);
  log(`GEMMs: ${gemmMs.toFixed(1)} ms for ${(gemmFlop / 1e12).toFixed(2)} TFLOP (${(gemmFlop / gemmMs / 1e9).toFixed(1)} TFLOP/s); by shape, slowest first:`);
  const shapes = slowest(byShape, 30);
  res.gpu = { total, byName, gemm_ms: gemmMs, gemm_tflop: gemmFlop / 1e12, shapes: Object.fromEntries(shapes) };
  const b1 = await profile(calls['batch 1']);
  const oneEncode = await encodeMs(calls['batch 1']);
  log(`batch 1: GPU time ${b1.total.toFixed(1)} ms (${Object.entries(b1.byName).sort((a, b) => b[1] - a[1]).slice(0, 9).map(([n, ms]) => `${n} ${ms.toFixed(1)}`).join(', ')}), `
    + `${b1.kernels} kernels timed, encoded in ${oneEncode.toFixed(1)} ms (JavaScript side, median of 5); GEMMs by shape:`);
  const oneShapes = slowest(b1.byShape, 20);
  res.batch1 = { gpu_ms: b1.total, by_name: b1.byName, encode_ms: oneEncode, shapes: Object.fromEntries(oneShapes) };
  // where the JavaScript side of a call goes: a V8 CPU profile of three batch-1 calls (chrome://inspect reads it)
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 50 });
  await session.post('Profiler.start');
  for (let i = 0; i < 3; i++) {
    const y = calls['batch 1']();
    await sync();
    y.dispose();
  }
  const { profile: cpu } = await session.post('Profiler.stop');
  session.disconnect();
  writeFileSync(join(outDir, 'batch1.cpuprofile'), JSON.stringify(cpu));

  // the steps since run 22 on and off: residual adds inside the GEMMs, tfjs's submit batching
  const residualKernels: WebGPUKernel[] = ['matmul-add', 'conv2d-add'];
  const submitEvery = (n: number) => (on: boolean) => tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', on ? n : 15);
  const variants: Record<string, (on: boolean) => void> = {
    'Downsample convolutions on tfjs\'s kernel (before 4012bb9)': (on) => { stridedConvs.enabled = !on; },
    'cross-attention keys and values a matmul per layer (before run 29)': (on) => { contextProjection.enabled = !on; },
    'GroupNorm apply over 1024 values a workgroup (before run 28)': (on) => { groupNormApply.wide = !on; },
    'K never split (before run 32)': (on) => { splitK.enabled = !on; },
    'K split over 64x64 tiles too': (on) => { splitK.smallTiles = on; },
    'pooled buffers reused last-freed first, as tfjs (before run 34)': (on) => { bindGroupCache.oldestFirst = !on; },
    'residual adds apart (before run 23)': (on) => (on ? unregisterWebGPUKernels : registerWebGPUKernels)(residualKernels),
    'submit every 64 dispatches (tfjs: 15)': submitEvery(64),
  };
  const tc = tensorCoresOn();
  if (tc) variants['attention on tensor cores'] = (on) => setTensorCoreAttention(on ? tc : null);
  const attnMs = (by: Record<string, number>) => (by.T2VFusedAttention ?? 0) + (by.T2VFusedPackedAttention ?? 0)
    + (by.T2VFusedContextAttention ?? 0);
  const yDefault = calls['x once under 2 contexts']();
  const refOut = await yDefault.data();
  yDefault.dispose();
  const tiling: Record<string, unknown> = {};
  const only = args[2] ? new RegExp(args[2]) : null; // which variants to run (all by default)
  for (const [label, apply] of Object.entries(variants)) {
    if (only && !only.test(label)) continue;
    apply(true);
    const y = calls['x once under 2 contexts']();
    const e = relMaxError(await y.data(), refOut);
    y.dispose();
    await timeIt(calls['x once under 2 contexts'], 1, 1);
    const p = await profile();
    await timeIt(calls['batch 1'], 1, 1); // a profile of new pipelines right after their first call reads high
    const p1 = await profile(calls['batch 1']);
    const wall: number[] = [];
    const wall1: number[] = [];
    for (let r = 0; r < 2; r++) {
      apply(false);
      const base = await timeIt(calls['x once under 2 contexts'], 5, 1);
      const base1 = await timeIt(calls['batch 1'], 5, 1);
      apply(true);
      wall.push(await timeIt(calls['x once under 2 contexts'], 5, 1), base);
      wall1.push(await timeIt(calls['batch 1'], 5, 1), base1);
    }
    apply(false);
    log(`"${label}": GPU time ${p.total.toFixed(1)} ms (default ${total.toFixed(1)}), GEMMs ${gemmTotal(p.byShape).toFixed(1)}, attention ${attnMs(p.byName).toFixed(1)} (default ${attnMs(byName).toFixed(1)}); wall ${wall[0].toFixed(1)} / ${wall[2].toFixed(1)} ms vs default ${wall[1].toFixed(1)} / ${wall[3].toFixed(1)} (alternating); batch 1 ${wall1[0].toFixed(1)} / ${wall1[2].toFixed(1)} vs ${wall1[1].toFixed(1)} / ${wall1[3].toFixed(1)} ms; output vs default ${e.toExponential(2)}`);
    logShapeChanges(byShape, p.byShape);
    log(`  batch 1: GPU time ${p1.total.toFixed(1)} ms (default ${b1.total.toFixed(1)}), GEMMs ${gemmTotal(p1.byShape).toFixed(1)} (default ${gemmTotal(b1.byShape).toFixed(1)})`);
    logShapeChanges(b1.byShape, p1.byShape);
    tiling[label] = { gpu_ms: p.total, gpu1_ms: p1.total, wall, wall1, err: e };
  }
  res.variants = tiling;
  tf.dispose([x1, x2, c1, c2, t1, t2]);

  // whole generations as a user runs them (guidance batched, steps pipelined)
  const gen: unknown[] = [];
  let first: Float32Array | null = null;
  for (const [label, n] of [['warm-up, 2 steps', 2], ...Array.from({ length: gens }, () => [`${steps} steps`, steps] as const)] as const) {
    const t0 = performance.now();
    const out = await t2v.generate({ prompt: 'a panda eating bamboo', steps: n, guidance: 9, frames: 16, height: 256, width: 256, seed: 1 });
    const wall = performance.now() - t0;
    const tm = out.timings;
    let same = '';
    if (n === steps) {
      if (first) same = `; latents vs the first: rel err ${relMaxError(out.latents, first).toExponential(2)}`;
      else {
        first = out.latents;
        writeFileSync(join(outDir, 'latents.f32'), out.latents); // to compare runs under other flags
      }
      gen.push({ ...tm, wall });
    }
    log(`generation ${label}: text ${tm.text.toFixed(0)} ms, denoise ${tm.denoise.toFixed(0)} ms, decode ${tm.decode.toFixed(0)} ms, total ${tm.total.toFixed(0)} ms (wall ${wall.toFixed(0)} ms)${same}`);
  }
  res.generations = gen;
  res.gpu_bytes = gpuBytes().allocated;
  log(`GPU buffers after the generations: ${((res.gpu_bytes as number) / 2 ** 30).toFixed(2)} GiB allocated`);
  for (const m of [text, unet, vae]) m.disposeWeights();
  return res;
}
