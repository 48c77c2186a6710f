import { VIDEO_SHAPE, type Scenario } from '../harness/scenario.js';
import { measureCalls } from './unet-calls.js';

export const unetCall: Scenario = {
  name: 'unet-call', about: 'one UNet call at batch 1 and at batch 2 (x repeated), 16x256x256', kind: 'table',
  shape: VIDEO_SHAPE, rows: ['unet-call', 'unet-call-b2'],
  run: async (ctx, shape) => ({ raw: await measureCalls(ctx, shape, ['unet-call', 'unet-call-b2']) }),
};
