import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { UNetConfig } from '../layers/unet/config.js';
import type { VAEConfig } from '../layers/vae/config.js';
import { readNetworkConfig } from '../io/model-folder.js';
import { backendLimits, checkMemory, type MemoryEstimate, type MemorySettings } from './memory.js';

/**
 * `checkMemory` for a converted model folder before its weights are loaded (the CLI calls it right after choosing
 * the backend, so an impossible size fails in a second, not after the load).
 */
export async function checkModelFits(dir: string, s: Omit<MemorySettings, 'batch'> & { batchGuidance: boolean },
  backend = tf.getBackend()): Promise<MemoryEstimate | null> {
  if (!existsSync(join(dir, 'unet', 'config.json')) || !existsSync(join(dir, 'vae', 'config.json'))) return null; // load says what is missing
  const unet = await readNetworkConfig(join(dir, 'unet'), 'unet') as UNetConfig;
  const vae = await readNetworkConfig(join(dir, 'vae'), 'vae') as VAEConfig;
  return checkMemory(unet, vae, { ...s, batch: s.batchGuidance ? 2 : 1 }, backendLimits(backend));
}
