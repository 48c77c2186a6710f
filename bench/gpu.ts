// Entry for the GPU host (bundled by ../shared/gpu/pack.sh): node main.mjs MODE OUTDIR [options]
//   ops   stock tfjs ops vs the fused WGSL kernels on UNet shapes, with parity
//   unet  one full-size UNet call (released configuration, random weights), stock and fused, memory, parity
//   tc    experimental tensor-core matmul (subgroup matrices, f16): ops and inside the UNet
//   variants [steps]  the UNet call and generations with each webgpu step on and off (bench/variants.ts)
//   tiles [batch] [steps]  tilings of the tensor-core kernel chosen by GPU time inside the UNet call, then the call
//         and whole generations with the default and the fastest tilings (bench/tiles.ts)
//   step [steps] [generations]  one guided step (UNet on x once under 2 contexts, batch 2, batch 1), GPU time by
//         kernel and GEMM shape, whole generations; as users run it (tensor cores on; flags from T2V_DAWN_FLAGS)
//   pipeline  a whole 16x256x256 generation (text, 50 DDIM steps with guidance, VAE decode), fused kernels
//   parity FIXTURES VOCAB [steps]      whole generations on cpu, wasm, webgpu fp32 and tensor cores (bench/parity.ts)
//   xl [frames] [height] [width] [chunk]  zeroscope XL's 24x1024x576: guided UNet call, VAE encode and decode, memory
//   samplers [gens]  16x256x256 videos with DDIM 50, DPM-Solver++ 25, UniPC 20, Euler 25 (bench/samplers.ts)
//   parity-ref FIXTURES VOCAB [steps]  its wasm reference for the small model, in a second process (no GPU)
import { mkdirSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { activateWebGPU, useWebGPU, useWebGPUWithTensorCores } from '../src/backends/dawn.js';
import { benchOps } from './gpu-ops.js';

const [mode = 'ops', outDir = '.'] = process.argv.slice(2);
mkdirSync(outDir, { recursive: true });
const logFile = join(outDir, `${mode}.log`);
const log = (s: string) => { console.log(s); appendFileSync(logFile, s + '\n'); };

if (mode === 'parity-ref') {
  const res = await (await import('./parity.js')).benchParityRef(log, outDir, process.argv.slice(4));
  writeFileSync(join(outDir, `${mode}.json`), JSON.stringify(res, null, 1));
  process.exit(0);
}
const adapter = mode === 'step' || mode === 'xl' || mode === 'samplers' ? await activateWebGPU().then((s) => s.adapter, () => null)
  : mode === 'tc' || mode === 'tiles' || mode === 'variants' ? await useWebGPUWithTensorCores() : await useWebGPU();
if (!adapter) {
  log('no WebGPU adapter: nothing to measure');
  process.exit(2);
}
log(`adapter: ${adapter.description} (${adapter.vendor}, ${adapter.architecture}); features: ${adapter.features.join(' ')}`);
log(`tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}`);

const results: Record<string, unknown> = { adapter, date: new Date().toISOString() };
const stages: Record<string, () => Promise<unknown>> = {
  ops: () => benchOps(log),
  unet: async () => (await import('./unet.js')).benchUNet(log, process.argv.slice(4)),
  pipeline: async () => (await import('./pipeline.js')).benchPipeline(log, process.argv.slice(4)),
  tc: async () => (await import('./tensor-cores.js')).benchTensorCores(log, process.argv.slice(4)),
  variants: async () => (await import('./variants.js')).benchVariants(log, process.argv.slice(4)),
  tiles: async () => (await import('./tiles.js')).benchTiles(log, process.argv.slice(4)),
  step: async () => (await import('./step.js')).benchStep(log, outDir, process.argv.slice(4)),
  parity: async () => (await import('./parity.js')).benchParity(log, outDir, process.argv.slice(4)),
  xl: async () => (await import('./xl.js')).benchXL(log, process.argv.slice(4)),
  samplers: async () => (await import('./samplers.js')).benchSamplers(log, process.argv.slice(4)),
};
for (const [name, run] of Object.entries(stages)) {
  if (mode !== name && !(mode === 'all' && !['tc', 'tiles', 'variants', 'parity', 'step', 'xl', 'samplers'].includes(name))) continue;
  try {
    results[name] = await run();
  } catch (e) {
    log(`${name} failed: ${(e as Error).stack ?? e}`);
    results[name] = { error: String(e) };
  }
}
writeFileSync(join(outDir, `${mode}.json`), JSON.stringify(results, null, 1));
process.exit(0);
