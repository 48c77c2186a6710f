import type { Scenario } from '../harness/scenario.js';
import { measureCalls } from './unet-calls.js';

/** zeroscope_v2's shapes (576w and XL's 1024x576, 24 frames; the released UNet): the UNet calls only. */
const zeroscope = (name: string, height: number, width: number, tiny: { height: number; width: number }): Scenario => ({
  name, about: `UNet calls at zeroscope's 24 frames ${width}x${height} (batch 1, guided step)`, kind: 'table',
  shape: { full: { frames: 24, height, width }, tiny: { frames: 3, ...tiny } }, rows: ['unet-call', 'guided-step'],
  run: async (ctx, shape) => ({ raw: await measureCalls(ctx, shape, ['unet-call', 'guided-step']) }),
});

export const zeroscope576 = zeroscope('zeroscope-576', 320, 576, { height: 64, width: 112 });
export const zeroscope1024 = zeroscope('zeroscope-1024', 576, 1024, { height: 80, width: 144 });
