// GPU memory of a few guided UNet steps (x once under [cond, uncond], as the pipeline calls it) with the buffer pool's
// size classes off and on, in one process, each run from an empty pool after a warm-up step: peak bytes in live
// buffers and peak bytes allocated (live + pooled free buffers).
//   node --import tsx bench/pool-memory.ts [frames] [latent side] [steps] [dim]
// Default: a small UNet (the WebGPU kernel tests' structure, dim 128, two levels) over 8 frames of 32x32 latents
// (256x256 video), 3 steps; on lavapipe: bash .ci/lavapipe.sh node --import tsx bench/pool-memory.ts. The released
// model's figures come from the benchmark on the GPU host (docs/gpu.md: --variants default,no-pool-size-classes).
import * as tf from '@tensorflow/tfjs';
import type { UNetConfig } from '../src/layers/unet/config.js';
import { UNetSD } from '../src/layers/unet/unet.js';
import { randomizeWeights } from './harness/models.js';
import { gpuRandom } from './harness/random-gpu.js';
import { sync } from './harness/timing.js';
import { applyVariant, gpuMemory, openBackend, releasePooledBuffers, resetGPUMemoryPeak, track } from './harness/webgpu.js';

const [frames = 8, side = 32, steps = 3, dim = 128] = process.argv.slice(2).map(Number);
const gib = (b: number | null) => (b === null ? 'n/a' : `${(b / 2 ** 30).toFixed(3)} GiB`);

await openBackend('webgpu');
const before = tf.memory().numTensors;
const cfg: UNetConfig = {
  inDim: 4, dim, embedDim: 4 * dim, contextDim: 64, decoderContextDim: 64, outDim: 4, dimMult: [1, 2], numHeads: 2,
  headDim: dim / 2, numResBlocks: 1, attnScales: [1, 0.5], temporalAttention: true, normGroups: 32,
};
const unet = new UNetSD(cfg);
randomizeWeights(unet, gpuRandom);
track(unet);
const ctx = gpuRandom([2, 77, cfg.contextDim], Math.sqrt(3), 102) as tf.Tensor3D;
const t = tf.tensor1d([500]);

/** `n` steps from fresh noise: eps of the guided call, then x - 0.1 * (u + 9 (c - u)) (a stand-in for DDIM's update). */
async function run(n: number): Promise<void> {
  let x = gpuRandom([1, frames, side, side, 4], Math.sqrt(3), 101) as tf.Tensor5D;
  for (let i = 0; i < n; i++) {
    const next = tf.tidy(() => {
      const [c, u] = tf.split(unet.forward(x, t, ctx), 2);
      return tf.sub(x, tf.mul(tf.add(u, tf.mul(tf.sub(c, u), 9)), 0.1)) as tf.Tensor5D;
    });
    x.dispose();
    x = next;
  }
  await x.data();
  x.dispose();
  await sync();
}

console.log(`UNet dim ${dim}, ${frames}x${side}x${side} latents, ${steps} guided steps; weights ${gib(gpuMemory()!.inUse)}`);
await run(1); // compiles the shaders
for (const sizeClasses of [false, true, false, true]) {
  applyVariant({ poolSizeClasses: sizeClasses });
  releasePooledBuffers();
  resetGPUMemoryPeak();
  const t0 = performance.now();
  await run(steps);
  const m = gpuMemory()!;
  console.log(`size classes ${sizeClasses ? 'on ' : 'off'}: peak in use ${gib(m.peakInUse)}, peak allocated ${gib(m.peakAllocated)}, `
    + `pooled after ${gib(m.pooled)} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}
tf.dispose([ctx, t]);
unet.disposeWeights();
console.log(`tensors left ${tf.memory().numTensors - before}`);
