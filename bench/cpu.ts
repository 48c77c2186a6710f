// CPU mode: one UNet call of a small configuration (the released structure at width 64) on tfjs's cpu and wasm
// backends, beside upstream PyTorch on the CPU when python3 and the reference sources are there.
//   node --import tsx bench/cpu.ts [OUT.json] [--ref DIR]   (DIR holds vs/unet_sd.py; T2V_PYTHON picks the python)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type { UNetConfig } from '../src/layers/unet/config.js';
import { UNetSD } from '../src/layers/unet/unet.js';
import { timeIt } from './harness/timing.js';
import { RELEASED_UNET, randomizeWeights, unetInputs } from './harness/models.js';

const FRAMES = 4;
const SIZE = 16;
const DIM = 64;
const args = process.argv.slice(2);
const out = args.find((a) => a.endsWith('.json'));
const refArg = args.indexOf('--ref');
const ref = refArg >= 0 ? args[refArg + 1] : process.env.T2V_REF ? join(process.env.T2V_REF, 'modelscope/models/multi_modal') : '';

const config: UNetConfig = { ...RELEASED_UNET, dim: DIM, embedDim: 4 * DIM };
const res: Record<string, unknown> = { config: { frames: FRAMES, size: SIZE, dim: DIM } };
for (const backend of ['cpu', 'wasm']) {
  await tf.setBackend(backend);
  const net = new UNetSD(config);
  randomizeWeights(net, (shape, scale, seed) => tf.randomUniform(shape, -scale, scale, 'float32', seed));
  const inp = unetInputs(FRAMES, SIZE, (shape, scale, seed) => tf.randomUniform(shape, -scale, scale, 'float32', seed));
  const ms = await timeIt(() => net.forward(inp.x, inp.t, inp.ctx), 3, 1);
  res[`${backend}_ms`] = ms;
  console.log(`UNet dim ${DIM}, ${FRAMES} frames ${SIZE}x${SIZE}, tfjs ${backend}: ${ms.toFixed(0)} ms`);
  tf.dispose([inp.x, inp.t, inp.ctx]);
  net.disposeWeights();
}
const script = join(import.meta.dirname, 'torch_unet.py');
if (ref && existsSync(join(ref, 'vs', 'unet_sd.py'))) {
  const tmp = join(mkdtempSync(join(tmpdir(), 't2v-bench-')), 'torch.json');
  execFileSync(process.env.T2V_PYTHON ?? 'python3', [script, '--ref', ref, '--out', tmp, '--device', 'cpu', '--runs', '3',
    '--frames', String(FRAMES), '--size', String(SIZE), '--dim', String(DIM)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const t = JSON.parse(readFileSync(tmp, 'utf8')) as { ms: { fp32: number }; torch: string };
  res.torch_cpu_ms = t.ms.fp32;
  res.torch = t.torch;
  console.log(`same UNet, PyTorch ${t.torch} CPU fp32: ${t.ms.fp32.toFixed(0)} ms`);
} else {
  console.log('PyTorch side skipped: pass --ref DIR with vs/unet_sd.py (and einops importable)');
}
if (out) writeFileSync(out, JSON.stringify(res, null, 1));
