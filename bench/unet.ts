import * as tf from '@tensorflow/tfjs';
import { registerWebGPUKernels, unregisterWebGPUKernels } from '../src/backends/webgpu/register.js';
import type { UNetConfig } from '../src/layers/unet/config.js';
import { UNetSD } from '../src/layers/unet/unet.js';
import type { Module } from '../src/layers/module.js';
import { gpuRandom } from './random-gpu.js';
import { gpuBytes, relMaxError, sync, timeIt, timedKernels, sumByName } from './timing.js';

/** The released ModelScope text-to-video UNet (configuration.json's unet_* keys). */
export const RELEASED_UNET: UNetConfig = {
  inDim: 4, dim: 320, embedDim: 1280, contextDim: 1024, decoderContextDim: 1024, outDim: 4, dimMult: [1, 2, 4, 4],
  numHeads: 8, headDim: 64, numResBlocks: 2, attnScales: [1, 0.5, 0.25], temporalAttention: true, normGroups: 32,
};
/** One call at b=1, 16 frames, 32x32 latents (256x256 video), 77 text tokens; counted from the upstream model. */
export const UNET_TFLOP = 4.89;

function fanIn(torchShape: readonly number[]): number {
  return torchShape.slice(1).reduce((a, b) => a * b, 1);
}

/**
 * Random weights with variance 1/fan_in (norm scales near 1, small biases), so activations stay in range through
 * the whole network. `rand(shape, scale, seed)` draws uniform [-scale, scale).
 */
export function randomizeWeights(m: Module, rand: (shape: number[], scale: number, seed: number) => tf.Tensor): void {
  let seed = 1;
  const made = new Map<string, tf.Tensor>();
  for (const [key, p] of m.namedParams()) {
    const s = p.tfShape;
    let t: tf.Tensor;
    if (p.torchShape.length > 1) t = rand(s, Math.sqrt(3 / fanIn(p.torchShape)), seed++);
    else if (key.endsWith('.weight')) t = tf.tidy(() => tf.add(rand(s, 0.1, seed++), 1));
    else t = rand(s, 0.05, seed++);
    made.set(key, t);
  }
  m.loadWeights((k) => made.get(k));
}

export function unetInputs(frames: number, size: number, rand: (shape: number[], scale: number, seed: number) => tf.Tensor) {
  return {
    x: rand([1, frames, size, size, 4], Math.sqrt(3), 101) as tf.Tensor5D,
    t: tf.tensor1d([500], 'float32'),
    ctx: rand([1, 77, 1024], Math.sqrt(3), 102) as tf.Tensor3D,
  };
}

/** Per-kernel GPU time of one call (timestamp queries through tf.profile), summed by kernel name. */
export async function profileKernels(fn: () => tf.Tensor, log: (s: string) => void): Promise<Record<string, number>> {
  const kernels = await timedKernels(fn);
  const byName = sumByName(kernels);
  const total = Object.values(byName).reduce((a, b) => a + b, 0);
  log(`  kernel time ${total.toFixed(1)} ms over ${kernels.length} kernels; by kernel:`);
  for (const [name, ms] of Object.entries(byName).sort((a, b) => b[1] - a[1]).slice(0, 14)) {
    log(`    ${name.padEnd(28)} ${ms.toFixed(2).padStart(9)} ms ${(100 * ms / total).toFixed(1).padStart(5)}%`);
  }
  return byName;
}

export async function benchUNet(log: (s: string) => void, args: string[]): Promise<unknown> {
  const runs = Number(args[0] ?? 5);
  const res: Record<string, unknown> = {};

  // 1. parity of the webgpu path (fused kernels) against the cpu backend, small configuration, same weights
  {
    // width >= 128: tfjs-webgpu 4.22 miscompiles 5-D binary ops with a 1-D operand of < 128 elements (vec5 indexing)
    const small: UNetConfig = { ...RELEASED_UNET, dim: 128, embedDim: 512, dimMult: [1, 2], numHeads: 2, headDim: 64,
      numResBlocks: 1, attnScales: [1, 0.5] };
    await tf.setBackend('cpu');
    const cpuRand = (shape: number[], scale: number, seed: number) => tf.randomUniform(shape, -scale, scale, 'float32', seed);
    const net = new UNetSD(small);
    randomizeWeights(net, cpuRand);
    const inp = unetInputs(4, 8, cpuRand);
    const ref = net.forward(inp.x, inp.t, inp.ctx);
    const refData = ref.dataSync().slice();
    const weights = new Map<string, { data: Float32Array; shape: number[] }>();
    for (const [k, p] of net.namedParams()) weights.set(k, { data: p.tensor.dataSync() as Float32Array, shape: p.tensor.shape });
    const inData = [inp.x, inp.t, inp.ctx].map((t) => ({ data: t.dataSync().slice() as Float32Array, shape: t.shape }));
    tf.dispose([ref, inp.x, inp.t, inp.ctx]);
    net.disposeWeights();
    await tf.setBackend('webgpu');
    net.loadWeights((k) => { const w = weights.get(k)!; return tf.tensor(w.data, w.shape); });
    const [x, t, ctx] = inData.map((d) => tf.tensor(d.data, d.shape));
    for (const fused of [false, true]) {
      if (fused) registerWebGPUKernels(); else unregisterWebGPUKernels();
      const y = net.forward(x as tf.Tensor5D, t as tf.Tensor1D, ctx as tf.Tensor3D);
      const err = relMaxError(await y.data(), refData);
      y.dispose();
      res[`parity_small_vs_cpu_${fused ? 'fused' : 'stock'}`] = err;
      log(`parity, small UNet (dim 128, 4 frames, 8x8) webgpu ${fused ? 'fused' : 'stock'} vs cpu: rel err ${err.toExponential(2)}`);
    }
    tf.dispose([x, t, ctx]);
    net.disposeWeights();
  }

  if (args[1] === 'parity-only') return res;

  // 2. the released configuration, one call, stock and fused kernels
  const net = new UNetSD(RELEASED_UNET);
  const t0 = performance.now();
  randomizeWeights(net, gpuRandom);
  await sync();
  const params = net.countParams();
  log(`released UNet: ${(params / 1e6).toFixed(1)} M parameters, random weights made on the GPU in ${(performance.now() - t0).toFixed(0)} ms; GPU bytes ${(gpuBytes().allocated / 2 ** 30).toFixed(2)} GiB`);
  res.params = params;
  const inp = unetInputs(16, 32, gpuRandom);
  const call = () => net.forward(inp.x, inp.t, inp.ctx);
  const outs: Record<string, Float32Array> = {};
  for (const mode of ['stock', 'fused'] as const) {
    if (mode === 'fused') registerWebGPUKernels(); else unregisterWebGPUKernels();
    const tc = performance.now();
    const y = call();
    outs[mode] = (await y.data()) as Float32Array;
    y.dispose();
    const firstMs = performance.now() - tc;
    const ms = await timeIt(call, runs, 1);
    const mem = gpuBytes();
    res[`ms_${mode}`] = ms;
    res[`first_call_ms_${mode}`] = firstMs;
    res[`gpu_bytes_${mode}`] = mem.allocated;
    log(`UNet call b=1 16x32x32 ${mode}: median ${ms.toFixed(1)} ms (${(UNET_TFLOP / ms * 1000).toFixed(2)} TFLOP/s), ` +
      `first call ${firstMs.toFixed(0)} ms; GPU buffers ${(mem.allocated / 2 ** 30).toFixed(2)} GiB allocated, ${(mem.inUse / 2 ** 30).toFixed(2)} GiB in use`);
    try {
      res[`profile_${mode}`] = await profileKernels(call, log);
    } catch (e) {
      log(`  (no kernel profile: ${(e as Error).message})`);
    }
  }
  // how often the backend submits its command buffer (tfjs default: every 15 dispatches) against CPU overhead
  const batches: Record<string, number> = {};
  let best = 15;
  for (const batch of [15, 64, 256, 1024]) {
    tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', batch);
    batches[batch] = await timeIt(call, runs, 1);
    if (batches[batch] < batches[best]) best = batch;
    log(`  fused, submit every ${batch} dispatches: median ${batches[batch].toFixed(1)} ms (${(UNET_TFLOP / batches[batch] * 1000).toFixed(2)} TFLOP/s)`);
  }
  tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', best);
  res.submit_batch_ms = batches;
  res.submit_batch_best = best;
  res.fused_vs_stock_rel_err = relMaxError(outs.fused, outs.stock);
  log(`fused vs stock output, released UNet: rel err ${(res.fused_vs_stock_rel_err as number).toExponential(2)}`);

  // 3. 100 calls back to back (50 DDIM steps with guidance), fused
  registerWebGPUKernels();
  {
    const tc = performance.now();
    for (let i = 0; i < 100; i++) {
      const y = call();
      if (i % 10 === 9) await sync();
      y.dispose();
    }
    await sync();
    res.ms_100_calls_fused = performance.now() - tc;
    log(`100 UNet calls (50 steps with guidance), fused, submit every ${best}: ${((res.ms_100_calls_fused as number) / 1000).toFixed(2)} s`);
  }
  res.gpu_bytes_peak = gpuBytes().allocated;
  tf.dispose([inp.x, inp.t, inp.ctx]);
  net.disposeWeights();
  return res;
}
