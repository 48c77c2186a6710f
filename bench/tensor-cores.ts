import * as tf from '@tensorflow/tfjs';
import { setTensorCores, subgroupMatrixConfigs, uniformCache } from '../src/backends/dawn.js';
import { matMulF16, pickConfig, routeMatMulsToTensorCores } from '../src/backends/webgpu/matmul-f16.js';
import { matMulF16Staged } from '../src/backends/webgpu/matmul-f16-staged.js';
import { registerWebGPUKernels } from '../src/backends/webgpu/register.js';
import { UNetSD } from '../src/layers/unet/unet.js';
import { gpuRandom } from './random-gpu.js';
import { encodeMs, relMaxError, timeIt } from './timing.js';
import { RELEASED_UNET, UNET_TFLOP, profileKernels, randomizeWeights, unetInputs } from './unet.js';

/** GPU programs one call of `fn` dispatches (Reshape and other metadata-only kernels dispatch none). */
export function countDispatches(fn: () => tf.Tensor): number {
  const b = tf.backend() as unknown as { runWebGPUProgram: (...a: unknown[]) => unknown };
  const orig = b.runWebGPUProgram;
  let n = 0;
  b.runWebGPUProgram = (...a: unknown[]) => { n++; return orig.apply(b, a); };
  try {
    fn().dispose();
  } finally {
    b.runWebGPUProgram = orig;
  }
  return n;
}

/** Experimental tensor-core matmul (subgroup matrices, f16 in, f32 accumulate): ops, then inside the UNet. */
export async function benchTensorCores(log: (s: string) => void, args: string[]): Promise<unknown> {
  const res: Record<string, unknown> = { configs: subgroupMatrixConfigs };
  log(`subgroup matrix configs: ${JSON.stringify(subgroupMatrixConfigs)}`);
  const cfg = pickConfig(subgroupMatrixConfigs);
  if (!cfg) {
    log('no f16 -> f32 subgroup matrix configuration: nothing to measure');
    return res;
  }
  log(`using ${JSON.stringify(cfg)}`);
  const rows: unknown[] = [];
  for (const [m, k, n] of [[4096, 4096, 4096], [16384, 320, 320], [16384, 320, 2560], [16384, 1280, 320], [1024, 1280, 1280]]) {
    const a = gpuRandom([m, k], 1, 1) as tf.Tensor2D;
    const b = gpuRandom([k, n], 1 / Math.sqrt(k), 2) as tf.Tensor2D;
    const gflop = 2 * m * n * k / 1e9;
    try {
      const bias = gpuRandom([n], 0.1, 3) as tf.Tensor1D;
      const stockMs = await timeIt(() => tf.fused.matMul({ a, b, bias }));
      const tcMs = await timeIt(() => matMulF16(a, b, cfg));
      const stagedMs = await timeIt(() => matMulF16Staged(a, b, cfg, bias));
      const ref = tf.matMul(a, b);
      const out = matMulF16(a, b, cfg);
      const err = relMaxError(await out.data(), await ref.data());
      const refB = tf.fused.matMul({ a, b, bias });
      const outB = matMulF16Staged(a, b, cfg, bias);
      const errStaged = relMaxError(await outB.data(), await refB.data());
      tf.dispose([ref, out, refB, outB, bias]);
      rows.push({ m, k, n, stockMs, tcMs, stagedMs, err, errStaged });
      log(`matMul ${m}x${k}x${n} (+bias for stock and staged): stock ${stockMs.toFixed(3)} ms (${(gflop / stockMs).toFixed(1)} TFLOP/s), tensor cores direct ${tcMs.toFixed(3)} ms (${(gflop / tcMs).toFixed(1)} TFLOP/s, rel err ${err.toExponential(2)}), staged ${stagedMs.toFixed(3)} ms (${(gflop / stagedMs).toFixed(1)} TFLOP/s, rel err ${errStaged.toExponential(2)})`);
    } catch (e) {
      log(`matMul ${m}x${k}x${n}: failed: ${(e as Error).message}`);
    }
    tf.dispose([a, b]);
  }
  res.matmuls = rows;

  // convolutions as implicit GEMMs through the routed kernels, against tfjs's own conv (same tensors)
  const convRows: unknown[] = [];
  for (const [xs, fs, pad] of [
    [[16, 32, 32, 320], [3, 3, 320, 320], 'same'],
    [[16, 16, 16, 640], [3, 3, 640, 640], 'same'],
    [[1, 16, 1024, 320], [3, 1, 320, 320], [[0, 0], [1, 1], [0, 0], [0, 0]]],
  ] as [number[], number[], 'same' | [[number, number], [number, number], [number, number], [number, number]]][]) {
    const x = gpuRandom(xs, 1, 4) as tf.Tensor4D;
    const f = gpuRandom(fs, 1 / Math.sqrt(fs[0] * fs[1] * fs[2]), 5) as tf.Tensor4D;
    const bias = gpuRandom([fs[3]], 0.1, 6) as tf.Tensor1D;
    const run = () => tf.fused.conv2d({ x, filter: f, strides: 1, pad, bias });
    const gflop = 2 * xs[0] * xs[1] * xs[2] * fs[0] * fs[1] * fs[2] * fs[3] / 1e9;
    try {
      const stockMs = await timeIt(run);
      const ref = run();
      const undo = routeMatMulsToTensorCores(cfg, 'staged');
      let tcMs = 0;
      let err = 0;
      try {
        tcMs = await timeIt(run);
        const out = run();
        err = relMaxError(await out.data(), await ref.data());
        out.dispose();
      } finally {
        undo();
      }
      ref.dispose();
      convRows.push({ x: xs, filter: fs, stockMs, tcMs, err });
      log(`conv ${JSON.stringify(xs)} * ${JSON.stringify(fs)}: stock ${stockMs.toFixed(3)} ms (${(gflop / stockMs).toFixed(1)} TFLOP/s), tensor cores ${tcMs.toFixed(3)} ms (${(gflop / tcMs).toFixed(1)} TFLOP/s), rel err ${err.toExponential(2)}`);
    } catch (e) {
      log(`conv ${JSON.stringify(xs)}: failed: ${(e as Error).message}`);
    }
    tf.dispose([x, f, bias]);
  }
  res.convs = convRows;
  if (args[1] === 'ops-only') return res;

  registerWebGPUKernels();
  const net = new UNetSD(RELEASED_UNET);
  randomizeWeights(net, gpuRandom);
  const inp = unetInputs(16, 32, gpuRandom);
  const call = () => net.forward(inp.x, inp.t, inp.ctx);
  const y32 = call();
  const ref = await y32.data();
  y32.dispose();
  const fp32Ms = await timeIt(call, 5, 1);
  const fp32Encode = await encodeMs(call);
  const fp32Dispatches = countDispatches(call);
  res.unet = { fp32Ms, fp32Encode, fp32Dispatches };
  log(`UNet call fp32 fused: median ${fp32Ms.toFixed(1)} ms; the call returns after ${fp32Encode.toFixed(1)} ms; ${fp32Dispatches} dispatches`);
  for (const [kernel, minKN] of [['staged', 0], ['staged', 320 * 321]] as const) {
    const restore = routeMatMulsToTensorCores(cfg, kernel, { minKN });
    try {
      const y16 = call();
      const err = relMaxError(await y16.data(), ref);
      y16.dispose();
      const tcMs = await timeIt(call, 5, 1);
      (res.unet as Record<string, unknown>)[`${kernel}_minKN${minKN}`] = { tcMs, err };
      log(`UNet call, fused kernels: fp32 ${fp32Ms.toFixed(1)} ms; with ${kernel === 'staged' ? 'matmuls and convolutions' : 'matmuls'} on tensor cores (${kernel}${minKN ? ', 320x320 matmuls left to tfjs' : ''}) ${tcMs.toFixed(1)} ms (${(UNET_TFLOP / tcMs * 1000).toFixed(2)} TFLOP/s), rel err vs fp32 ${err.toExponential(2)}`);
      if (minKN === 0) {
        (res.unet as Record<string, unknown>).profile = await profileKernels(call, log);
        const enc = await encodeMs(call);
        const n = countDispatches(call);
        Object.assign(res.unet as Record<string, unknown>, { encodeMs: enc, dispatches: n });
        log(`  CPU side: the call returns after ${enc.toFixed(1)} ms (${n} dispatches encoded), median of 5`);
        const sweep: Record<number, number> = {};
        for (const batch of [8, 15, 32, 64]) {
          tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', batch);
          sweep[batch] = await timeIt(call, 5, 1);
          log(`  submit every ${batch} dispatches: median ${sweep[batch].toFixed(1)} ms`);
        }
        tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', 15);
        (res.unet as Record<string, unknown>).submitBatchMs = sweep;
        // tfjs's own per-dispatch uniform buffers against the cache (src/backends/dawn.ts), same process
        const uc: Record<string, unknown> = {};
        for (const on of [false, true, false, true]) {
          uniformCache.enabled = on;
          const ms = await timeIt(call, 5, 1);
          const e = await encodeMs(call);
          uc[`${on ? 'on' : 'off'}_${Object.keys(uc).length}`] = { ms, encodeMs: e };
          log(`  uniform cache ${on ? 'on ' : 'off'}: median ${ms.toFixed(1)} ms, the call returns after ${e.toFixed(1)} ms`);
        }
        uniformCache.enabled = true;
        (res.unet as Record<string, unknown>).uniformCache = uc;
      }
    } finally {
      restore();
    }
  }
  tf.dispose([inp.x, inp.t, inp.ctx]);
  net.disposeWeights();
  if (args.includes('pipeline')) {
    // the same generation (same random weights, same seed) in fp32 and on tensor cores; final latents compared
    const pipe = await import('./pipeline.js');
    log('whole generation, fp32 fused kernels:');
    res.pipeline_fp32 = await pipe.benchPipeline(log, ['50']);
    const l32 = pipe.lastLatents;
    const undo = routeMatMulsToTensorCores(cfg);
    try {
      log('whole generation with the matmuls and convolutions on tensor cores:');
      res.pipeline = await pipe.benchPipeline(log, ['50']);
    } finally {
      undo();
    }
    const l16 = pipe.lastLatents;
    if (l32 && l16 && l32 !== l16) {
      res.pipeline_tc_vs_fp32 = relMaxError(l16, l32);
      log(`final latents after 50 steps, tensor cores vs fp32: rel err ${(res.pipeline_tc_vs_fp32 as number).toExponential(2)}`);
    }
    // the same on tensor cores with guidance as one UNet call on a batch of two (half the dispatches per step)
    const undo2 = routeMatMulsToTensorCores(cfg);
    try {
      log('whole generation on tensor cores, guidance batched (one UNet call of batch 2 per step):');
      res.pipeline_batched = await pipe.benchPipeline(log, ['50', '', 'batch']);
    } finally {
      undo2();
    }
    const lb = pipe.lastLatents;
    if (lb && l16 && lb !== l16) {
      res.pipeline_batched_vs_tc = relMaxError(lb, l16);
      log(`final latents after 50 steps, batched vs two calls (both tensor cores): rel err ${(res.pipeline_batched_vs_tc as number).toExponential(2)}`);
    }
  }
  // what the library does by default: selectBackend('webgpu') as TextToVideo.load and the CLI call it
  const { selectBackend } = await import('../src/backend.js');
  const choice = await selectBackend('webgpu');
  res.selectBackend = choice.details;
  log(`selectBackend('webgpu'): tensor cores ${choice.details['tensor cores']}`);
  setTensorCores(false);
  return res;
}
