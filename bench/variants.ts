import * as tf from '@tensorflow/tfjs';
import { setTensorCores, subgroupMatrixConfigs } from '../src/backends/dawn.js';
import { setTensorCoreAttention, tcAttentionStats } from '../src/backends/webgpu/attention-tc.js';
import { pickConfig } from '../src/backends/webgpu/matmul-f16.js';
import { registerWebGPUKernels, unregisterWebGPUKernels } from '../src/backends/webgpu/register.js';
import { UNetSD } from '../src/layers/unet/unet.js';
import { gpuRandom } from './random-gpu.js';
import { countDispatches } from './tensor-cores.js';
import { relMaxError, timeIt } from './timing.js';
import { RELEASED_UNET, UNET_TFLOP, profileKernels, randomizeWeights } from './unet.js';

type Variant = 'fp32' | 'tc' | 'tc+packed' | 'tc+packed+attn';
const VARIANTS: Variant[] = ['fp32', 'tc', 'tc+packed', 'tc+packed+attn'];

/**
 * The webgpu path's steps one at a time, in one process on the released UNet (random weights): fp32; tensor cores
 * for the GEMMs (run 13's default); + to_q|to_k|to_v as one matmul read in place by the packed attention kernel;
 * + attention itself on tensor cores. Per variant: the UNet call at batch 2 (one guided step) and 1, dispatches,
 * output error against fp32; then whole 50-step generations (guidance batched) for the GEMM-only and full variants.
 */
export async function benchVariants(log: (s: string) => void, args: string[]): Promise<unknown> {
  const steps = Number(args[0] ?? 50);
  const cfg = pickConfig(subgroupMatrixConfigs);
  if (!cfg) {
    log('no f16 -> f32 subgroup matrix configuration: nothing to measure');
    return {};
  }
  const apply = (v: Variant) => {
    setTensorCores(v !== 'fp32');
    setTensorCoreAttention(v === 'tc+packed+attn' ? cfg : null);
    if (v === 'tc') unregisterWebGPUKernels(['packed-attention']); else registerWebGPUKernels();
  };
  registerWebGPUKernels();
  const res: Record<string, unknown> = {};
  const net = new UNetSD(RELEASED_UNET);
  randomizeWeights(net, gpuRandom);
  const x2 = gpuRandom([2, 16, 32, 32, 4], Math.sqrt(3), 101) as tf.Tensor5D;
  const t2 = tf.tensor1d([500, 500]);
  const c2 = gpuRandom([2, 77, 1024], Math.sqrt(3), 102) as tf.Tensor3D;
  const [x1, t1, c1] = [tf.slice(x2, 0, 1), tf.slice(t2, 0, 1), tf.slice(c2, 0, 1)];
  const call2 = () => net.forward(x2, t2, c2);
  const call1 = () => net.forward(x1 as tf.Tensor5D, t1 as tf.Tensor1D, c1 as tf.Tensor3D);
  let ref: Float32Array | null = null;
  const rows: Record<string, unknown> = {};
  for (const v of VARIANTS) {
    apply(v);
    const calls = tcAttentionStats.calls;
    const y = call2();
    const out = (await y.data()) as Float32Array;
    y.dispose();
    const attnCalls = tcAttentionStats.calls - calls;
    if (!ref) ref = out.slice();
    const err = relMaxError(out, ref);
    const ms2 = await timeIt(call2, 5, 1);
    const ms1 = await timeIt(call1, 5, 1);
    const dispatches = countDispatches(call2);
    rows[v] = { ms_b2: ms2, ms_b1: ms1, err_vs_fp32: err, dispatches_b2: dispatches, tc_attention_dispatches: attnCalls };
    log(`UNet call ${v.padEnd(16)}: batch 2 ${ms2.toFixed(1)} ms (${(2 * UNET_TFLOP / ms2 * 1000).toFixed(1)} TFLOP/s), batch 1 ${ms1.toFixed(1)} ms (${(UNET_TFLOP / ms1 * 1000).toFixed(1)} TFLOP/s); ${dispatches} dispatches at batch 2 (${attnCalls} tensor-core attention); output vs fp32 rel err ${err.toExponential(2)}`);
  }
  // the GEMM-only and full variants once more, alternating (the machine drifts between minutes)
  const alt: Record<string, number> = {};
  for (const v of ['tc', 'tc+packed+attn', 'tc', 'tc+packed+attn'] as Variant[]) {
    apply(v);
    alt[`${v}_${Object.keys(alt).length}`] = await timeIt(call2, 5, 1);
  }
  log(`batch 2 again, alternating: ${Object.entries(alt).map(([k, ms]) => `${k} ${ms.toFixed(1)} ms`).join(', ')}`);
  res.unet = rows;
  res.alternating = alt;
  apply('tc+packed+attn');
  res.profile = await profileKernels(call2, log);
  tf.dispose([x2, t2, c2, x1, t1, c1]);
  net.disposeWeights();

  if (steps > 0) {
    const pipe = await import('./pipeline.js');
    let base: Float32Array | null = null;
    for (const v of ['tc', 'tc+packed+attn'] as Variant[]) {
      apply(v);
      log(`whole generation, ${v}, guidance batched:`);
      res[`pipeline_${v}`] = await pipe.benchPipeline(log, [String(steps), '', 'batch']);
      const l = pipe.lastLatents;
      if (!base) base = l;
      else if (l && base) {
        res.pipeline_latents_rel_err = relMaxError(l, base);
        log(`final latents, ${v} vs tc: rel err ${(res.pipeline_latents_rel_err as number).toExponential(2)}`);
      }
    }
  }
  setTensorCores(true);
  registerWebGPUKernels();
  return res;
}
