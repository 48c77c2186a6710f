import * as tf from '@tensorflow/tfjs';
import type { Models } from '../harness/models.js';
import { gpuRandom } from '../harness/random-gpu.js';
import type { RunContext } from '../harness/scenario.js';
import { stat } from '../harness/stats.js';
import type { RowKey, Shape } from '../harness/table.js';
import { sync, timeRuns } from '../harness/timing.js';
import { dispatchReport } from '../harness/webgpu.js';

export type CallRow = 'unet-call' | 'unet-call-b2' | 'guided-step';

/**
 * The UNet calls of the table's rows on random latents of `shape` at t = 500 under random text features: batch 1,
 * batch 2 (x repeated) and the guided step as the pipeline calls it (x once under [cond, uncond]); `dispose` frees
 * their inputs.
 */
export function unetCalls(models: Models, shape: Shape): { calls: Record<CallRow, () => tf.Tensor>; dispose: () => void } {
  const { unet, contextDim } = models;
  const [lh, lw] = [shape.height / 8, shape.width / 8];
  const x1 = gpuRandom([1, shape.frames, lh, lw, 4], Math.sqrt(3), 101) as tf.Tensor5D;
  const x2 = tf.concat([x1, x1]) as tf.Tensor5D;
  const c2 = gpuRandom([2, 77, contextDim], Math.sqrt(3), 102) as tf.Tensor3D;
  const c1 = tf.slice(c2, 0, 1) as tf.Tensor3D;
  const t1 = tf.tensor1d([500]);
  const t2 = tf.tensor1d([500, 500]);
  return {
    calls: {
      'unet-call': () => unet.forward(x1, t1, c1),
      'unet-call-b2': () => unet.forward(x2, t2, c2),
      'guided-step': () => unet.forward(x1, t1, c2),
    },
    dispose: () => tf.dispose([x1, x2, c1, c2, t1, t2]),
  };
}

/** The calls of unetCalls at `rows`, each timed ctx.opts.runs times after 2 warm-ups, into the table. */
export async function measureCalls(ctx: RunContext, shape: Shape, rows: readonly RowKey[]): Promise<Record<string, unknown>> {
  const { calls, dispose } = unetCalls(ctx.models(), shape);
  const raw: Record<string, unknown> = {};
  try {
    await sync();
    for (const row of rows) {
      const fn = calls[row as CallRow] as (() => tf.Tensor) | undefined;
      if (!fn) continue;
      try {
        const s = stat(await timeRuns(fn, ctx.opts.runs, 2));
        ctx.table.set(shape, row, ctx.column, { stat: s, unit: 'ms' });
        raw[row] = s;
        ctx.log(`  ${row} ${shape.frames}x${shape.height}x${shape.width}: median ${s.median.toFixed(1)} ms (${s.min.toFixed(1)}-${s.max.toFixed(1)}, ${s.runs.length} runs)`);
        const report = await dispatchReport(fn);
        if (report) {
          raw[`${row}-dispatches`] = report;
          ctx.log(`  ${row}: ${report}`);
        }
      } catch (e) {
        const msg = (e as Error).message.split('\n')[0];
        ctx.table.set(shape, row, ctx.column, { error: `t2v ${row}: ${msg}` });
        raw[row] = { error: msg };
        ctx.log(`  ${row} failed: ${msg}`);
      }
    }
  } finally {
    dispose();
  }
  return raw;
}
