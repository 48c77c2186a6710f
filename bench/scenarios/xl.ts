import * as tf from '@tensorflow/tfjs';
import { gpuRandom } from '../harness/random-gpu.js';
import type { Models } from '../harness/models.js';
import type { Scenario } from '../harness/scenario.js';
import { gpuBytes, sync, timeIt } from '../harness/timing.js';

const GiB = 2 ** 30;

/**
 * zeroscope_v2_XL's upscale shape on random weights (its UNet and VAE have the released configuration): 24 frames at
 * 1024x576, latents [1, 24, 72, 128, 4]. One guided UNet call (x once under two contexts), one batch-1 call, the VAE
 * encode (video-to-video's input) and decode of 24 frames, each with the GPU buffers held after it (the pool never
 * shrinks, so that is the peak so far), then video-to-video at strength 0.7 as zeroscope's re-render runs.
 */
export const xl: Scenario = {
  name: 'xl', about: "zeroscope XL's 24x1024x576: UNet calls, VAE encode and decode, video-to-video, memory", kind: 'once',
  run: async (ctx) => ({ raw: await benchXL(ctx.log, ctx.models(), ctx.opts.tiny ? [3, 64, 112, 2] : [24, 576, 1024, 2]) }),
};

async function benchXL(log: (s: string) => void, models: Models, [frames, height, width, chunk]: number[]): Promise<unknown> {
  const { unet, vae, t2v, contextDim } = models;
  await sync();
  const res: Record<string, unknown> = { frames, height, width, chunk, weights_gib: gpuBytes().allocated / GiB };
  log(`XL shape ${frames}x${width}x${height}: weights ${(gpuBytes().allocated / GiB).toFixed(2)} GiB on the GPU`);
  const lh = height / 8;
  const lw = width / 8;
  const x1 = gpuRandom([1, frames, lh, lw, 4], Math.sqrt(3), 101) as tf.Tensor5D;
  const c2 = gpuRandom([2, 77, contextDim], Math.sqrt(3), 102) as tf.Tensor3D;
  const c1 = tf.slice(c2, 0, 1) as tf.Tensor3D;
  const t1 = tf.tensor1d([500]);
  const stage = async (name: string, fn: () => tf.Tensor, runs: number) => {
    try {
      const ms = await timeIt(fn, runs, 1);
      const g = gpuBytes().allocated / GiB;
      res[name] = { ms, gpu_gib: g };
      log(`${name}: ${ms.toFixed(1)} ms (median of ${runs}, after 1 warm-up); GPU buffers ${g.toFixed(2)} GiB`);
    } catch (e) {
      res[name] = { error: String(e) };
      log(`${name} failed: ${(e as Error).message}`);
    }
  };
  await stage('unet guided call (x once, 2 contexts)', () => unet.forward(x1, t1, c2), 3);
  await stage('unet batch-1 call', () => unet.forward(x1, t1, c1), 3);
  const img = gpuRandom([frames, height, width, 3], 1, 103) as tf.Tensor4D;
  await stage(`vae encode ${frames} frames (chunks of ${chunk})`, () => tf.tidy(() => {
    const parts: tf.Tensor[] = [];
    for (let s = 0; s < frames; s += chunk) parts.push(vae.encode(tf.slice(img, s, Math.min(chunk, frames - s)) as tf.Tensor4D));
    return tf.concat(parts);
  }), 2);
  img.dispose();
  const z = gpuRandom([frames, lh, lw, 4], 1.7, 7) as tf.Tensor4D;
  await stage(`vae decode ${frames} frames (chunks of ${chunk})`, () => vae.decodeChunked(z, chunk), 2);
  z.dispose();
  tf.dispose([x1, c2, c1, t1]);
  // zeroscope's re-render as people run it: video-to-video at strength 0.7 with DPM-Solver++ 25 (17 steps run)
  try {
    const data = new Uint8Array(frames * height * width * 3);
    for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
    const r = await t2v.generate({
      prompt: 'a panda eating bamboo', video: { data, frames, height, width }, strength: 0.7, scheduler: 'dpm-solver++',
      steps: 25, seed: 7, decodeChunk: chunk,
    });
    const g = gpuBytes().allocated / GiB;
    res.v2v = { timings: r.timings, steps_run: r.timesteps.length, gpu_gib: g };
    log(`video-to-video ${frames}x${width}x${height}, dpm-solver++ 25 at strength 0.7 (${r.timesteps.length} steps): total ${(r.timings.total / 1000).toFixed(2)} s `
      + `(text ${(r.timings.text / 1000).toFixed(2)}, encode + denoise ${(r.timings.denoise / 1000).toFixed(2)}, decode ${(r.timings.decode / 1000).toFixed(2)}); GPU buffers ${g.toFixed(2)} GiB`);
  } catch (e) {
    res.v2v = { error: String(e) };
    log(`video-to-video failed: ${(e as Error).message}`);
  }
  return res;
}
