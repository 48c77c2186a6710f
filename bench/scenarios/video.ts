import { VIDEO_SHAPE, type Scenario } from '../harness/scenario.js';
import { stat } from '../harness/stats.js';

/**
 * Whole generations through TextToVideo.generate as users run them (DDIM, guidance batched, steps pipelined):
 * a 2-step warm-up (compiles every shader), then ctx.opts.videoRuns timed videos, seeds 42, 43, ...
 */
export const video: Scenario = {
  name: 'video', about: 'whole videos: text, DDIM steps with guidance, VAE decode (TextToVideo.generate)', kind: 'table',
  shape: VIDEO_SHAPE, rows: ['video'],
  run: async (ctx, shape) => {
    const { t2v } = ctx.models();
    const { steps, guidance, videoRuns } = ctx.opts;
    const base = { prompt: 'a panda eating bamboo', guidance, frames: shape.frames, height: shape.height, width: shape.width };
    await t2v.generate({ ...base, steps: 2, seed: 1 });
    const runs = [];
    for (let i = 0; i < videoRuns; i++) {
      const r = await t2v.generate({ ...base, steps, seed: 42 + i });
      runs.push(r.timings);
      ctx.log(`  video ${i + 1}/${videoRuns}: ${(r.timings.total / 1000).toFixed(2)} s (text ${r.timings.text.toFixed(0)} ms, denoise ${r.timings.denoise.toFixed(0)} ms, decode ${r.timings.decode.toFixed(0)} ms)`);
    }
    const total = stat(runs.map((t) => t.total));
    ctx.table.set(shape, 'video', ctx.column, { stat: total, unit: 's' });
    return { raw: { total, text: stat(runs.map((t) => t.text)), denoise: stat(runs.map((t) => t.denoise)),
      decode: stat(runs.map((t) => t.decode)), steps, guidance } };
  },
};
