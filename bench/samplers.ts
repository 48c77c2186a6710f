import * as tf from '@tensorflow/tfjs';
import { registerWebGPUKernels } from '../src/backends/webgpu/register.js';
import type { SchedulerName } from '../src/pipeline/schedulers/scheduler.js';
import { randomReleasedPipeline } from './pipeline.js';
import { gpuBytes, median, sync } from './timing.js';

/**
 * Whole 16x256x256 generations (text, guided steps, VAE decode) on random weights with each scheduler at the step
 * count people run it: DDIM 50, DPM-Solver++ 25, UniPC 20 (and Euler 25). Args: [generations per scheduler].
 */
export async function benchSamplers(log: (s: string) => void, args: string[]): Promise<unknown> {
  const gens = Number(args[0] ?? 3);
  registerWebGPUKernels();
  const { t2v } = randomReleasedPipeline();
  await sync();
  const runs: [SchedulerName, number][] = [['ddim', 50], ['dpm-solver++', 25], ['unipc', 20], ['euler', 25]];
  const res: Record<string, unknown> = {};
  // one short warm-up generation compiles every shader
  (await t2v.generate({ prompt: 'warm-up', steps: 2, seed: 1 }));
  log('| scheduler | steps | UNet calls | wall (median) | range | denoise | decode |');
  log('|---|---|---|---|---|---|---|');
  for (const [scheduler, steps] of runs) {
    const walls: number[] = [];
    const denoise: number[] = [];
    const decode: number[] = [];
    let calls = 0;
    for (let g = 0; g < gens; g++) {
      const r = await t2v.generate({ prompt: 'a panda eating bamboo', steps, seed: 42 + g, scheduler });
      walls.push(r.timings.total);
      denoise.push(r.timings.denoise);
      decode.push(r.timings.decode);
      calls = r.timesteps.length;
    }
    const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    log(`| ${scheduler} | ${steps} | ${calls} x 1 (batch 2) | ${s(median(walls))} | ${s(Math.min(...walls))}-${s(Math.max(...walls))} | ${s(median(denoise))} | ${s(median(decode))} |`);
    res[`${scheduler}-${steps}`] = { walls, denoise, decode, calls };
  }
  res.gpu_gib = gpuBytes().allocated / 2 ** 30;
  log(`GPU buffers after all: ${(res.gpu_gib as number).toFixed(2)} GiB; tensors ${tf.memory().numTensors}`);
  return res;
}
