import type { Scenario } from '../harness/scenario.js';
import { guidedStep } from './guided-step.js';
import { ops } from './ops.js';
import { parity } from './parity.js';
import { profile } from './profile.js';
import { samplers } from './samplers.js';
import { torch } from './torch.js';
import { unetCall } from './unet-call.js';
import { video } from './video.js';
import { xl } from './xl.js';
import { zeroscope1024, zeroscope576 } from './zeroscope.js';

/** Every scenario by name, in the order a run takes them (table scenarios by shape, then the others, then PyTorch). */
export const SCENARIOS: readonly Scenario[] = [unetCall, guidedStep, video, zeroscope576, zeroscope1024, samplers, xl, parity, ops, profile, torch];
