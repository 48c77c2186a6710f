import * as tf from '@tensorflow/tfjs';
import { setTensorCores, subgroupMatrixConfigs } from '../src/backends/dawn.js';
import { setTensorCoreAttention, tcAttentionStats, type TCAttentionFilter } from '../src/backends/webgpu/attention-tc.js';
import { pickConfig } from '../src/backends/webgpu/matmul-f16.js';
import { registerWebGPUKernels, unregisterWebGPUKernels } from '../src/backends/webgpu/register.js';
import { UNetSD } from '../src/layers/unet/unet.js';
import { gpuRandom } from './random-gpu.js';
import { countDispatches } from './tensor-cores.js';
import { relMaxError, timeIt, timedKernels } from './timing.js';
import { RELEASED_UNET, UNET_TFLOP, randomizeWeights } from './unet.js';

interface Variant { packed: boolean; attn: 'fp32' | 'tc' | TCAttentionFilter; gemm: boolean }
const ATTN = ['T2VFusedAttention', 'T2VFusedPackedAttention'];
const attnKey = (packed: boolean, b: number, nq: number, nk: number) => `${packed ? 'packed' : 'q,k,v'} b=${b} nq=${nq} nk=${nk}`;

/** GPU time of one call by kernel name, and of the attention kernels by shape (timestamp queries). */
async function profileByShape(fn: () => tf.Tensor): Promise<{ total: number; byName: Record<string, number>; attn: Record<string, number> }> {
  const byName: Record<string, number> = {};
  const attn: Record<string, number> = {};
  let total = 0;
  for (const { name, inputShapes, ms } of await timedKernels(fn)) {
    total += ms;
    byName[name] = (byName[name] ?? 0) + ms;
    if (ATTN.includes(name)) {
      const packed = name === ATTN[1];
      const [q, kk] = inputShapes;
      const key = attnKey(packed, q[0], q[1], packed ? q[1] : kk[1]);
      attn[key] = (attn[key] ?? 0) + ms;
    }
  }
  return { total, byName, attn };
}

/**
 * The webgpu path's attention steps on and off in one process on the released UNet (random weights), on top of the
 * tensor-core GEMMs (run 13's default): to_q|to_k|to_v as one matmul read in place by the packed attention kernel,
 * and attention on tensor cores. GPU time per attention shape for each, then the shapes where tensor cores win
 * (`auto`), whole-call wall times at batch 2 (one guided step) and 1, output error against fp32, and 50-step
 * generations (guidance batched) with the GEMM-only default and the best combination.
 */
export async function benchVariants(log: (s: string) => void, args: string[]): Promise<unknown> {
  const steps = Number(args[0] ?? 50);
  const cfg = pickConfig(subgroupMatrixConfigs);
  if (!cfg) {
    log('no f16 -> f32 subgroup matrix configuration: nothing to measure');
    return {};
  }
  const apply = (v: Variant) => {
    setTensorCores(v.gemm);
    setTensorCoreAttention(v.attn === 'fp32' ? null : cfg, typeof v.attn === 'function' ? v.attn : null);
    if (v.packed) registerWebGPUKernels(); else unregisterWebGPUKernels(['packed-attention']);
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

  apply({ packed: false, attn: 'fp32', gemm: false });
  const y32 = call2();
  const ref = (await y32.data()) as Float32Array;
  y32.dispose();

  const named: Record<string, Variant> = {
    tc: { packed: false, attn: 'fp32', gemm: true },
    'tc+attn': { packed: false, attn: 'tc', gemm: true },
    'tc+packed': { packed: true, attn: 'fp32', gemm: true },
    'tc+packed+attn': { packed: true, attn: 'tc', gemm: true },
  };
  const profiles: Record<string, Awaited<ReturnType<typeof profileByShape>>> = {};
  const rows: Record<string, unknown> = {};
  const measure = async (name: string, v: Variant) => {
    apply(v);
    const calls = tcAttentionStats.calls;
    const y = call2();
    const err = relMaxError((await y.data()) as Float32Array, ref);
    y.dispose();
    const attnCalls = tcAttentionStats.calls - calls;
    const ms2 = await timeIt(call2, 5, 1);
    const ms1 = await timeIt(call1, 5, 1);
    const dispatches = countDispatches(call2);
    const p = await profileByShape(call2);
    profiles[name] = p;
    rows[name] = { ms_b2: ms2, ms_b1: ms1, err_vs_fp32: err, dispatches_b2: dispatches, tc_attention_dispatches: attnCalls, kernel_ms: p.total, by_kernel: p.byName, attention_by_shape: p.attn };
    const top = Object.entries(p.byName).sort((a, b) => b[1] - a[1]).slice(0, 7).map(([k, ms]) => `${k} ${ms.toFixed(1)}`).join(', ');
    log(`UNet call ${name.padEnd(16)}: batch 2 ${ms2.toFixed(1)} ms (${(2 * UNET_TFLOP / ms2 * 1000).toFixed(1)} TFLOP/s), batch 1 ${ms1.toFixed(1)} ms; ${dispatches} dispatches (${attnCalls} tensor-core attention); vs fp32 rel err ${err.toExponential(2)}; kernel time ${p.total.toFixed(1)} ms: ${top}`);
  };
  for (const [name, v] of Object.entries(named)) await measure(name, v);

  // attention GPU time per shape: fp32 kernel against tensor cores, same layout
  const faster = new Set<string>();
  for (const [fp, tc] of [['tc', 'tc+attn'], ['tc+packed', 'tc+packed+attn']]) {
    for (const [key, ms] of Object.entries(profiles[fp].attn)) {
      const t = profiles[tc].attn[key];
      if (t === undefined) continue;
      if (t < 0.95 * ms) faster.add(key);
      log(`  attention ${key.padEnd(30)}: fp32 kernel ${ms.toFixed(2)} ms, tensor cores ${t.toFixed(2)} ms${t < 0.95 * ms ? '  <- tensor cores' : ''}`);
    }
  }
  const filter: TCAttentionFilter = (s) => faster.has(attnKey(s.packed, s.b, s.nq, s.nk));
  res.tc_attention_shapes = [...faster];
  await measure('tc+auto', { packed: false, attn: filter, gemm: true });
  await measure('tc+packed+auto', { packed: true, attn: filter, gemm: true });

  // wall time at batch 2, alternating (the machine drifts between minutes)
  const cands: [string, Variant][] = [['tc', named.tc], ['tc+auto', { packed: false, attn: filter, gemm: true }],
    ['tc+packed+auto', { packed: true, attn: filter, gemm: true }]];
  const wall: Record<string, number[]> = {};
  for (let round = 0; round < 2; round++) {
    for (const [name, v] of cands) {
      apply(v);
      (wall[name] ??= []).push(await timeIt(call2, 7, 1));
    }
  }
  log(`batch 2, alternating: ${Object.entries(wall).map(([k, ms]) => `${k} ${ms.map((m) => m.toFixed(1)).join(' / ')} ms`).join('; ')}`);
  res.unet = rows;
  res.wall_b2 = wall;
  const best = Math.min(...wall['tc+auto']) <= Math.min(...wall['tc+packed+auto']) ? 'tc+auto' : 'tc+packed+auto';
  res.best = best;
  tf.dispose([x2, t2, c2, x1, t1, c1]);
  net.disposeWeights();

  if (steps > 0) {
    const pipe = await import('./pipeline.js');
    let base: Float32Array | null = null;
    for (const [name, v] of [cands[0], cands.find(([n]) => n === best)!, cands[0]]) {
      apply(v);
      log(`whole generation, ${name}, guidance batched:`);
      const r = await pipe.benchPipeline(log, [String(steps), '', 'batch']);
      (res[`pipeline_${name}`] as unknown[] | undefined)?.push(r) ?? (res[`pipeline_${name}`] = [r]);
      const l = pipe.lastLatents;
      if (!base) base = l;
      else if (l && base && name === best) {
        res.pipeline_latents_rel_err = relMaxError(l, base);
        log(`final latents, ${name} vs tc: rel err ${(res.pipeline_latents_rel_err as number).toExponential(2)}`);
      }
    }
  }
  setTensorCores(true);
  registerWebGPUKernels();
  return res;
}
