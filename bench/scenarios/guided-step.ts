import { VIDEO_SHAPE, type Scenario } from '../harness/scenario.js';
import { measureCalls } from './unet-calls.js';

export const guidedStep: Scenario = {
  name: 'guided-step', about: 'the UNet call of one guided step as the pipeline makes it: x once under [cond, uncond]',
  kind: 'table', shape: VIDEO_SHAPE, rows: ['guided-step'],
  run: async (ctx, shape) => ({ raw: await measureCalls(ctx, shape, ['guided-step']) }),
};
