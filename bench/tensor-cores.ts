import * as tf from '@tensorflow/tfjs';
import { subgroupMatrixConfigs } from '../src/backends/dawn.js';
import { matMulF16, pickConfig, routeMatMulsToTensorCores } from '../src/backends/webgpu/matmul-f16.js';
import { matMulF16Staged } from '../src/backends/webgpu/matmul-f16-staged.js';
import { registerWebGPUKernels } from '../src/backends/webgpu/register.js';
import { UNetSD } from '../src/layers/unet/unet.js';
import { gpuRandom } from './random-gpu.js';
import { relMaxError, timeIt } from './timing.js';
import { RELEASED_UNET, UNET_TFLOP, randomizeWeights, unetInputs } from './unet.js';

/** Experimental tensor-core matmul (subgroup matrices, f16 in, f32 accumulate): ops, then inside the UNet. */
export async function benchTensorCores(log: (s: string) => void, args: string[]): Promise<unknown> {
  const res: Record<string, unknown> = { configs: subgroupMatrixConfigs };
  log(`subgroup matrix configs: ${JSON.stringify(subgroupMatrixConfigs)}`);
  const cfg = pickConfig(subgroupMatrixConfigs);
  if (!cfg) {
    log('no f16 -> f32 subgroup matrix configuration: nothing to measure');
    return res;
  }
  log(`using ${JSON.stringify(cfg)}`);
  const rows: unknown[] = [];
  for (const [m, k, n] of [[4096, 4096, 4096], [16384, 320, 320], [16384, 320, 2560], [16384, 1280, 320], [1024, 1280, 1280]]) {
    const a = gpuRandom([m, k], 1, 1) as tf.Tensor2D;
    const b = gpuRandom([k, n], 1 / Math.sqrt(k), 2) as tf.Tensor2D;
    const gflop = 2 * m * n * k / 1e9;
    try {
      const bias = gpuRandom([n], 0.1, 3) as tf.Tensor1D;
      const stockMs = await timeIt(() => tf.fused.matMul({ a, b, bias }));
      const tcMs = await timeIt(() => matMulF16(a, b, cfg));
      const stagedMs = await timeIt(() => matMulF16Staged(a, b, cfg, bias));
      const ref = tf.matMul(a, b);
      const out = matMulF16(a, b, cfg);
      const err = relMaxError(await out.data(), await ref.data());
      const refB = tf.fused.matMul({ a, b, bias });
      const outB = matMulF16Staged(a, b, cfg, bias);
      const errStaged = relMaxError(await outB.data(), await refB.data());
      tf.dispose([ref, out, refB, outB, bias]);
      rows.push({ m, k, n, stockMs, tcMs, stagedMs, err, errStaged });
      log(`matMul ${m}x${k}x${n} (+bias for stock and staged): stock ${stockMs.toFixed(3)} ms (${(gflop / stockMs).toFixed(1)} TFLOP/s), tensor cores direct ${tcMs.toFixed(3)} ms (${(gflop / tcMs).toFixed(1)} TFLOP/s, rel err ${err.toExponential(2)}), staged ${stagedMs.toFixed(3)} ms (${(gflop / stagedMs).toFixed(1)} TFLOP/s, rel err ${errStaged.toExponential(2)})`);
    } catch (e) {
      log(`matMul ${m}x${k}x${n}: failed: ${(e as Error).message}`);
    }
    tf.dispose([a, b]);
  }
  res.matmuls = rows;
  if (args[1] === 'ops-only') return res;

  registerWebGPUKernels();
  const net = new UNetSD(RELEASED_UNET);
  randomizeWeights(net, gpuRandom);
  const inp = unetInputs(16, 32, gpuRandom);
  const call = () => net.forward(inp.x, inp.t, inp.ctx);
  const y32 = call();
  const ref = await y32.data();
  y32.dispose();
  const fp32Ms = await timeIt(call, 5, 1);
  res.unet = { fp32Ms };
  for (const kernel of ['staged', 'direct'] as const) {
    const restore = routeMatMulsToTensorCores(cfg, kernel);
    try {
      const y16 = call();
      const err = relMaxError(await y16.data(), ref);
      y16.dispose();
      const tcMs = await timeIt(call, 5, 1);
      (res.unet as Record<string, unknown>)[kernel] = { tcMs, err };
      log(`UNet call, fused kernels: fp32 ${fp32Ms.toFixed(1)} ms; with Linear/1x1 matmuls on tensor cores (${kernel}) ${tcMs.toFixed(1)} ms (${(UNET_TFLOP / tcMs * 1000).toFixed(2)} TFLOP/s), rel err vs fp32 ${err.toExponential(2)}`);
    } finally {
      restore();
    }
  }
  tf.dispose([inp.x, inp.t, inp.ctx]);
  net.disposeWeights();
  if (args.includes('pipeline')) {
    const { benchPipeline } = await import('./pipeline.js');
    const undo = routeMatMulsToTensorCores(cfg);
    try {
      log('whole generation with the matmuls on tensor cores:');
      res.pipeline = await benchPipeline(log, ['50']);
    } finally {
      undo();
    }
  }
  return res;
}
