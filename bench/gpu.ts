// Entry for the GPU host (bundled by ../shared/gpu/pack.sh): node main.mjs MODE OUTDIR [options]
//   ops   stock tfjs ops vs the fused WGSL kernels on UNet shapes, with parity
//   unet  one full-size UNet call (released configuration, random weights), stock and fused, memory, parity
import { mkdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { useWebGPU } from '../src/backends/dawn.js';
import { benchOps } from './gpu-ops.js';

const [mode = 'ops', outDir = '.'] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
const logFile = join(outDir, `${mode}.log`);
const log = (s: string) => { console.log(s); appendFileSync(logFile, s + '\n'); };

const adapter = await useWebGPU();
if (!adapter) {
  log('no WebGPU adapter: nothing to measure');
  process.exit(2);
}
log(`adapter: ${adapter.description} (${adapter.vendor}, ${adapter.architecture}); features: ${adapter.features.join(' ')}`);
log(`tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}`);

const results: Record<string, unknown> = { adapter, date: new Date().toISOString() };
if (mode === 'ops' || mode === 'all') results.ops = await benchOps(log);
if (mode === 'unet' || mode === 'all') {
  const { benchUNet } = await import('./unet.js');
  results.unet = await benchUNet(log, process.argv.slice(4));
}
writeFileSync(join(outDir, `${mode}.json`), JSON.stringify(results, null, 1));
process.exit(0);
