import * as tf from '@tensorflow/tfjs';
import { GroupNorm, LayerNorm } from '../../src/layers/common/norm.js';
import { gpuRandom } from '../harness/random-gpu.js';
import type { Scenario } from '../harness/scenario.js';
import { relMaxError, timeIt } from '../harness/timing.js';
import { opsWith, packedAttention, type AttentionTiles, type Ops, type WebGPUKernel } from '../harness/webgpu.js';

export interface OpRow { op: string; shape: string; gflop?: number; stockMs?: number; fusedMs?: number; relErr?: number; note?: string }

const tflops = (gflop: number, ms: number) => gflop / ms; // GFLOP per ms = TFLOP/s

export const ops: Scenario = {
  name: 'ops', about: "stock tfjs ops vs the fused WGSL kernels on the UNet's shapes, with their errors", kind: 'once',
  run: async (ctx) => {
    if (ctx.opts.backend !== 'webgpu') throw new Error('ops compares webgpu kernels: run it with --backend webgpu');
    return { raw: await benchOps(ctx.log) };
  },
};

/** Stock tfjs ops vs the fused kernels on the UNet's shapes, with the fused result's error against the stock one. */
async function benchOps(log: (s: string) => void): Promise<OpRow[]> {
  const rows: OpRow[] = [];
  const add = (r: OpRow) => {
    rows.push(r);
    const rate = r.gflop && (r.fusedMs ?? r.stockMs) ? ` ${tflops(r.gflop, (r.fusedMs ?? r.stockMs)!).toFixed(2)} TFLOP/s` : '';
    log(`${r.op} ${r.shape}: stock ${r.stockMs?.toFixed(3) ?? '-'} ms, fused ${r.fusedMs?.toFixed(3) ?? '-'} ms${rate}` +
      `${r.relErr !== undefined ? `, rel err ${r.relErr.toExponential(2)}` : ''}${r.note ? ` (${r.note})` : ''}`);
  };

  // tfjs's own kernels (tensor cores off, no fused kernel): tf ops below
  {
    const a = gpuRandom([4096, 4096], 1, 1);
    const b = gpuRandom([4096, 4096], 1, 2);
    add({ op: 'matMul', shape: '4096x4096x4096', gflop: 2 * 4096 ** 3 / 1e9, stockMs: await timeIt(() => tf.matMul(a, b)) });
    tf.dispose([a, b]);
  }
  {
    const x = gpuRandom([16, 32, 32, 320], 1, 3);
    const w = gpuRandom([3, 3, 320, 320], 0.05, 4);
    add({ op: 'conv2d 3x3', shape: '[16,32,32,320]x[3,3,320,320]', gflop: 2 * 16 * 32 * 32 * 9 * 320 * 320 / 1e9,
      stockMs: await timeIt(() => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same')) });
    tf.dispose([x, w]);
  }
  {
    const x = gpuRandom([16 * 1024, 320], 1, 5);
    const w = gpuRandom([320, 320], 0.05, 6);
    add({ op: 'linear', shape: '[16384,320]x[320,320]', gflop: 2 * 16384 * 320 * 320 / 1e9,
      stockMs: await timeIt(() => tf.matMul(x, w)) });
    tf.dispose([x, w]);
  }

  // the same op on WebGPU ops without fused kernels (tfjs's kernels) and with just `kernel`; tensor cores off in both
  const stock = opsWith({ kernels: [], tensorCores: false });
  const compare = async (op: string, shape: string, gflop: number | undefined, kernel: WebGPUKernel,
    fn: (ops: Ops) => tf.Tensor) => {
    const fused = opsWith({ kernels: [kernel], tensorCores: false });
    const stockMs = await timeIt(() => fn(stock));
    const ref = fn(stock);
    const refData = await ref.data();
    ref.dispose();
    const fusedMs = await timeIt(() => fn(fused));
    const out = fn(fused);
    const relErr = relMaxError(await out.data(), refData);
    out.dispose();
    add({ op, shape, gflop, stockMs, fusedMs, relErr });
  };

  // attention on the UNet's shapes (b=1, 16 frames, 32x32 latents; head_dim 64)
  const attn: [string, number, number, number, number][] = [
    ['spatial self-attn L0', 16, 1024, 1024, 5],
    ['spatial self-attn L1', 16, 256, 256, 10],
    ['spatial self-attn L2', 16, 64, 64, 20],
    ['cross-attn L0 (77 keys)', 16, 1024, 77, 5],
    ['cross-attn L2 (77 keys)', 16, 64, 77, 20],
    ['temporal attn L0', 1024, 16, 16, 5],
    ['temporal attn L1', 256, 16, 16, 10],
    ['text tower causal', 2, 77, 77, 16],
  ];
  for (const [name, b, nq, nk, heads] of attn) {
    const inner = heads * 64;
    const q = gpuRandom([b, nq, inner], 1, 7);
    const k = gpuRandom([b, nk, inner], 1, 8);
    const v = gpuRandom([b, nk, inner], 1, 9);
    const causal = name.includes('causal');
    await compare(name, `B=${b} nq=${nq} nk=${nk} h=${heads} d=64`, 4 * b * heads * nq * nk * 64 / 1e9, 'attention',
      (o) => o.attention(q as tf.Tensor3D, k as tf.Tensor3D, v as tf.Tensor3D, heads, causal));
    tf.dispose([q, k, v]);
  }

  // packed self-attention at the guided step's batch (2 x 16 frames): the fp32 kernel vs the tensor-core one
  for (const [name, b, n, heads] of [['packed self-attn L0', 32, 1024, 5], ['packed self-attn L1', 32, 256, 10],
    ['packed self-attn L2', 32, 64, 20]] as [string, number, number, number][]) {
    const qkv = gpuRandom([b, n, 3 * heads * 64], 1, 17) as tf.Tensor3D;
    const gflop = 4 * b * heads * n * n * 64 / 1e9;
    const stockMs = await timeIt(() => packedAttention(qkv, heads, false)!);
    const ref = packedAttention(qkv, heads, false)!;
    const refData = await ref.data();
    ref.dispose();
    const tc = packedAttention(qkv, heads, true);
    if (!tc) add({ op: name, shape: `B=${b} n=${n} h=${heads} d=64`, gflop, stockMs, note: 'no tensor cores' });
    else {
      const relErr = relMaxError(await tc.data(), refData);
      tc.dispose();
      add({ op: `${name} (fused fp32 / tensor cores)`, shape: `B=${b} n=${n} h=${heads} d=64`, gflop, stockMs,
        fusedMs: await timeIt(() => packedAttention(qkv, heads, true)!), relErr });
    }
    qkv.dispose();
  }

  // the tensor-core kernel's forms against the fp32 kernel, at inputs whose scores stay within a few units (scale 1)
  // and spread wide enough (scale 4) that the one-pass form moves its rows' maxima past the first block (rescales);
  // the parity scenario's small model ([4, 256], 2 heads) among the shapes
  const forms: [string, AttentionTiles][] = [['two passes', {}], ['one pass', { onePass: true }],
    ['one pass, margin 0', { onePass: true, rescaleMargin: 0 }], ['one pass, rescale every block', { onePass: true, rescaleAlways: true }],
    ['two passes, vec4 scores', { vectorScores: true }], ['one pass, vec4 scores', { onePass: true, vectorScores: true }],
    ['two passes, 64-key blocks', { keyBlock: 64 }]];
  for (const [b, n, heads] of [[32, 1024, 5], [4, 256, 2]] as [number, number, number][]) {
    for (const scale of [1, 4]) {
      const qkv = gpuRandom([b, n, 3 * heads * 64], scale, 18) as tf.Tensor3D;
      const ref = packedAttention(qkv, heads, false)!;
      const refData = await ref.data();
      ref.dispose();
      const shape = `B=${b} n=${n} h=${heads} d=64, inputs x${scale}`;
      for (const [form, tiles] of forms) {
        const out = packedAttention(qkv, heads, true, tiles);
        if (!out) { add({ op: `tensor-core attention, ${form}`, shape, note: 'no tensor cores' }); continue; }
        const relErr = relMaxError(await out.data(), refData);
        out.dispose();
        add({ op: `tensor-core attention, ${form}`, shape, gflop: 4 * b * heads * n * n * 64 / 1e9,
          fusedMs: await timeIt(() => packedAttention(qkv, heads, true, tiles)!), relErr });
      }
      qkv.dispose();
    }
  }

  for (const [shape, silu] of [[[16, 32, 32, 320], true], [[16, 16, 16, 640], true], [[16, 8, 8, 1280], true],
    [[16, 32, 32, 320], false], [[1, 16, 32, 32, 320], true]] as [number[], boolean][]) {
    const c = shape[shape.length - 1];
    const gn = new GroupNorm(32, c);
    gn.weight.value = gpuRandom([c], 1, 10).add(1);
    gn.bias.value = gpuRandom([c], 0.1, 11);
    const x = gpuRandom(shape, 2, 12).add(0.5);
    await compare(`GroupNorm${silu ? '+SiLU' : ''}`, `[${shape}] 32 groups`, undefined, 'groupnorm', (o) => gn.useOps(o).forward(x, silu));
    tf.dispose([x, gn.weight.value, gn.bias.value]);
  }

  for (const shape of [[16, 1024, 320], [1024, 16, 320], [2, 77, 1024]]) {
    const c = shape[shape.length - 1];
    const ln = new LayerNorm(c);
    ln.weight.value = gpuRandom([c], 1, 14).add(1);
    ln.bias.value = gpuRandom([c], 0.1, 15);
    const x = gpuRandom(shape, 2, 16).add(0.5);
    await compare('LayerNorm', `[${shape}]`, undefined, 'layernorm', (o) => ln.useOps(o).forward(x));
    tf.dispose([x, ln.weight.value, ln.bias.value]);
  }

  for (const shape of [[16, 1024, 2560], [16, 256, 5120]]) {
    const h = gpuRandom(shape, 3, 13);
    await compare('GEGLU', `[${shape}]`, undefined, 'geglu', (o) => o.geglu(h));
    h.dispose();
  }
  return rows;
}
