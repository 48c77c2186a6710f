import * as tf from '@tensorflow/tfjs';
import type { SchedulerName } from '../../src/pipeline/schedulers/scheduler.js';
import { VIDEO_SHAPE, type Scenario } from '../harness/scenario.js';
import { stat } from '../harness/stats.js';
import { gpuBytes } from '../harness/timing.js';

/**
 * Whole videos at the video shape with each scheduler at the step count people run it: DDIM 50, DPM-Solver++ 25,
 * UniPC 20, Euler 25 (--gens generations each, seeds 42, ...), after a 2-step warm-up.
 */
export const samplers: Scenario = {
  name: 'samplers', about: 'whole videos with DDIM 50, DPM-Solver++ 25, UniPC 20, Euler 25', kind: 'once',
  run: async (ctx) => {
    const shape = ctx.opts.tiny ? VIDEO_SHAPE.tiny : VIDEO_SHAPE.full;
    const { t2v } = ctx.models();
    const runs: [SchedulerName, number][] = ctx.opts.tiny ? [['ddim', 3], ['dpm-solver++', 3], ['unipc', 3], ['euler', 3]]
      : [['ddim', 50], ['dpm-solver++', 25], ['unipc', 20], ['euler', 25]];
    const base = { prompt: 'a panda eating bamboo', guidance: ctx.opts.guidance, ...shape };
    await t2v.generate({ ...base, steps: 2, seed: 1 });
    const raw: Record<string, unknown> = {};
    const md = ['| scheduler | steps | UNet calls | wall (median) | range | denoise | decode |', '|---|---|---|---|---|---|---|'];
    const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
    for (const [scheduler, steps] of runs) {
      const t = [];
      let calls = 0;
      for (let g = 0; g < ctx.opts.gens; g++) {
        const r = await t2v.generate({ ...base, steps, seed: 42 + g, scheduler });
        t.push(r.timings);
        calls = r.timesteps.length;
      }
      const wall = stat(t.map((x) => x.total));
      md.push(`| ${scheduler} | ${steps} | ${calls} (batch 2) | ${s(wall.median)} | ${s(wall.min)}-${s(wall.max)} | ${s(stat(t.map((x) => x.denoise)).median)} | ${s(stat(t.map((x) => x.decode)).median)} |`);
      ctx.log(`  ${md[md.length - 1]}`);
      raw[`${scheduler}-${steps}`] = { wall, denoise: stat(t.map((x) => x.denoise)), decode: stat(t.map((x) => x.decode)), calls };
    }
    raw.gpu_gib = gpuBytes().allocated / 2 ** 30;
    ctx.log(`  GPU buffers after all: ${(raw.gpu_gib as number).toFixed(2)} GiB; tensors ${tf.memory().numTensors}`);
    return { raw, markdown: `### Schedulers, ${shape.frames} frames ${shape.width}x${shape.height} (${ctx.opts.gens} each)\n\n${md.join('\n')}\n` };
  },
};
