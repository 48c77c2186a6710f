import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { convertDiffusers } from '../converters/diffusers.js';
import { FIXTURES } from './helpers.js';

/** The diffusers test model (random weights, its own tokenizer: no ../shared needed). */
export const TEST_MODEL_SOURCE = join(FIXTURES, 'diffusers', 'hub');

/**
 * Converts the test model into `out` and makes its defaults small (4 frames of 32x32) so that code written for the
 * released model (`generate({ prompt, steps: 50 })`) runs in seconds on a CPU. The caller has chosen a tfjs backend
 * for the conversion or not; conversion runs on whichever is current (cpu when none).
 */
export async function makeTestModel(out: string, defaults: Record<string, number> = { frames: 4, height: 32, width: 32 }): Promise<string> {
  await convertDiffusers(TEST_MODEL_SOURCE, out, { dtype: 'float32' });
  const file = join(out, 't2v.json');
  const info = JSON.parse(readFileSync(file, 'utf8')) as { defaults: Record<string, number> };
  info.defaults = { ...info.defaults, ...defaults };
  writeFileSync(file, JSON.stringify(info, null, 1));
  return out;
}
