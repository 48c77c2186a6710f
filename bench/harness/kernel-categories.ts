import type { TimedKernel } from './timing.js';
import { T2V_KERNELS as K } from './webgpu.js';

/**
 * The categories of a UNet call's kernels, decided from each kernel's name and input/output shapes (all tf.profile
 * gives). GEMM-like ones carry their floating-point work, 2*m*n*k (attention: 4*rows*queries*keys*inner).
 */
export const CATEGORY = {
  conv3x3: '3x3 convolutions',
  temporal: 'temporal (3,1) convolutions',
  stride2: 'stride-2 convolutions',
  conv: 'other convolutions',
  linearBias: '1x1 / linear with bias',
  linear: 'bias-free linear',
  gemv: 'gemv (one-row matmuls)',
  splitK: 'split-K sums',
  padding: 'padded GEMM rows cut (Slice)',
  spatial: 'self-attention, spatial (packed [B,N,3C])',
  temporalAttn: 'self-attention, temporal (packed [B,N,S,3C])',
  cross: 'cross-attention (context)',
  attention: 'other attention',
  groupNorm: 'GroupNorm',
  layerNorm: 'LayerNorm',
  geglu: 'GEGLU',
  unpack: 'float16 weights unpacked',
  free: 'no dispatch (Reshape, ...)',
} as const;
const ORDER: readonly string[] = Object.values(CATEGORY);

/** A kernel's time in one category (a kernel with several programs may have parts in several). */
export interface Part { category: string; ms: number; flop: number }

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const has = (s: readonly number[] | null | undefined): s is number[] => Array.isArray(s);

/** The inner dimension of a matmul with input a and output out (a's other dimension where a is transposed). */
function innerDim(a: readonly number[], out: readonly number[]): number {
  const m = out[out.length - 2] ?? 1;
  return a.length >= 2 && a[a.length - 2] !== m ? a[a.length - 2] : a[a.length - 1];
}

/** A bias among a GEMM's or convolution's extra inputs: a vector of the output's channels (a residual has its shape). */
function biased(k: TimedKernel, n: number): boolean {
  return k.inputShapes.slice(2).some((s) => has(s) && s.length === 1 && s[0] === n);
}

/**
 * Our tensor-core kernels run the GEMM first, then a split-K sum and/or the Slice of rows padded to the tiles (tfjs's
 * SliceProgram, SliceProgram2 once bundled: esbuild renames a class whose name is taken); tfjs's
 * own convolutions and matmuls count whole (their extra programs, an im2col or a zero fill, are theirs).
 */
function gemmParts(k: TimedKernel, category: string, flop: number): Part[] {
  const p = k.programs;
  if (!p || p.length <= 1 || (k.name !== K.TensorCoreGemm && k.name !== K.TensorCoreConv)) return [{ category, ms: k.ms, flop }];
  return p.map((q, i) => (i === 0 ? { category, ms: q.ms, flop }
    : { category: /^SliceProgram\d*$/.test(q.name) ? CATEGORY.padding : CATEGORY.splitK, ms: q.ms, flop: 0 }));
}

function convCategory(k: TimedKernel): Part[] {
  const [x, f] = k.inputShapes;
  const out = k.outputShapes[0];
  if (!has(x) || !has(f) || !has(out) || x.length !== 4 || (f.length !== 4 && f.length !== 1) || out.length !== 4) return gemmParts(k, CATEGORY.conv, 0);
  // a float16-resident filter comes as its packed halves ([kh*kw*in*out / 2]): 9 taps are 3x3, 3 the temporal (3, 1)
  const taps = f.length === 1 ? 2 * f[0] / (x[3] * out[3]) : f[0] * f[1];
  const [kh, kw, , n] = f.length === 4 ? f : [taps === 9 ? 3 : taps, taps === 9 ? 3 : 1, x[3], out[3]];
  const flop = 2 * size(out) * kh * kw * x[3];
  let c: string = CATEGORY.conv;
  if (out[1] < x[1] || out[2] < x[2]) c = CATEGORY.stride2;
  else if (kh === 3 && kw === 3) c = CATEGORY.conv3x3;
  else if (kh === 3 && kw === 1) c = CATEGORY.temporal;
  else if (kh === 1 && kw === 1) c = out[0] * out[1] * out[2] === 1 ? CATEGORY.gemv : biased(k, n) ? CATEGORY.linearBias : CATEGORY.linear;
  return gemmParts(k, c, flop);
}

function gemmCategory(k: TimedKernel): Part[] {
  const [a, b] = k.inputShapes;
  const out = k.outputShapes[0];
  if (!has(a) || !has(b) || !has(out)) return gemmParts(k, CATEGORY.linear, 0);
  const n = out[out.length - 1];
  const m = size(out) / n;
  const flop = 2 * size(out) * innerDim(a, out);
  // tfjs's BatchMatMul over a batch is attention on tfjs ops (q k^T, then with v); 2-D ones are bias-free Linears
  const batched = k.name === 'BatchMatMul' && size(out.slice(0, -2)) > 1 && size(b.slice(0, -2)) > 1;
  const c = batched ? CATEGORY.attention : m === 1 ? CATEGORY.gemv : biased(k, n) ? CATEGORY.linearBias : CATEGORY.linear;
  return gemmParts(k, c, flop);
}

function attentionCategory(k: TimedKernel): Part {
  const [q, kv] = k.inputShapes;
  const ms = k.ms;
  if (!has(q)) return { category: CATEGORY.attention, ms, flop: 0 };
  if (k.name === K.FusedPackedAttention || k.name === K.TensorCoreAttention) {
    const c = q[q.length - 1] / 3;
    const [b, n] = q;
    return q.length === 4 ? { category: CATEGORY.temporalAttn, ms, flop: 4 * b * q[2] * n * n * c }
      : { category: CATEGORY.spatial, ms, flop: 4 * b * n * n * c };
  }
  const [b, nq, inner] = q;
  if (k.name === K.FusedContextAttention && has(kv)) return { category: CATEGORY.cross, ms, flop: 4 * b * nq * (kv[0] / b) * inner };
  return { category: CATEGORY.attention, ms, flop: has(kv) && q.length === 3 ? 4 * b * nq * kv[1] * inner : 0 };
}

/** Where one kernel's time goes. Kernels of tfjs's own that fit no category are counted by name ("tfjs Add"). */
export function classify(k: TimedKernel): Part[] {
  switch (k.name) {
    case K.TensorCoreConv: case 'Conv2D': case 'FusedConv2D': case K.FusedConv2DAdd:
      return convCategory(k);
    case K.TensorCoreGemm: case '_FusedMatMul': case 'BatchMatMul': case K.FusedMatMulAdd:
      return gemmCategory(k);
    case K.FusedPackedAttention: case K.TensorCoreAttention: case K.FusedContextAttention: case K.FusedAttention:
      return [attentionCategory(k)];
    case K.FusedGroupNorm: return [{ category: CATEGORY.groupNorm, ms: k.ms, flop: 0 }];
    case K.FusedLayerNorm: return [{ category: CATEGORY.layerNorm, ms: k.ms, flop: 0 }];
    case K.FusedGEGLU: return [{ category: CATEGORY.geglu, ms: k.ms, flop: 0 }];
    case K.UnpackHalf: return [{ category: CATEGORY.unpack, ms: k.ms, flop: 0 }];
  }
  if (k.programs?.length === 0) return [{ category: CATEGORY.free, ms: k.ms, flop: 0 }];
  return [{ category: `tfjs ${k.name}`, ms: k.ms, flop: 0 }];
}

export interface CategoryRow {
  category: string;
  calls: number;
  ms: number;
  /** of the call's summed kernel time */
  share: number;
  /** effective rate from the shapes; null where no work is counted or no time measured */
  tflops: number | null;
}

export interface TopKernel {
  name: string;
  /** its programs (tfjs's class names; ours are "Object"), where there is more than one */
  programs?: string;
  category: string;
  shapes: string;
  calls: number;
  ms: number;
  msEach: number;
  tflops: number | null;
}

export interface KernelSummary {
  totalMs: number;
  kernels: number;
  /** dispatches timed (webgpu: each program of each kernel), or null where the backend gives no breakdown */
  dispatches: number | null;
  categories: CategoryRow[];
  top: TopKernel[];
}

const rate = (flop: number, ms: number) => (flop > 0 && ms > 0 ? flop / ms / 1e9 : null);
const shapeText = (k: TimedKernel) => `${k.inputShapes.map((s) => (has(s) ? `[${s.join(',')}]` : '-')).join(' ')} -> ${k.outputShapes.map((s) => `[${s.join(',')}]`).join(' ')}`;

/**
 * The categories of `kernels` (the order of CATEGORY, then tfjs's kernels by time), whose ms add up to the total, and
 * the `topN` heaviest kernels, those of one name and shapes taken together.
 */
export function summarize(kernels: readonly TimedKernel[], topN = 25): KernelSummary {
  const cats = new Map<string, { calls: number; ms: number; flop: number; timedFlopMs: number }>();
  const groups = new Map<string, { name: string; programs?: string; category: string; shapes: string; calls: number; ms: number; flop: number }>();
  let totalMs = 0;
  let dispatches: number | null = 0;
  for (const k of kernels) {
    const parts = classify(k);
    for (const p of parts) {
      const c = cats.get(p.category) ?? { calls: 0, ms: 0, flop: 0, timedFlopMs: 0 };
      c.calls++;
      c.ms += p.ms;
      c.flop += p.flop;
      if (p.flop > 0) c.timedFlopMs += p.ms;
      cats.set(p.category, c);
    }
    totalMs += k.ms;
    dispatches = dispatches === null || !k.programs ? null : dispatches + k.programs.length;
    const shapes = shapeText(k);
    const key = `${k.name} ${shapes}`;
    const programs = k.programs && k.programs.length > 1 ? k.programs.map((q) => q.name).join('+') : undefined;
    const g = groups.get(key) ?? { name: k.name, ...(programs ? { programs } : {}), category: parts[0].category, shapes, calls: 0, ms: 0, flop: 0 };
    g.calls++;
    g.ms += k.ms;
    g.flop += parts[0].flop;
    groups.set(key, g);
  }
  const rank = (c: string) => (ORDER.includes(c) ? ORDER.indexOf(c) : ORDER.length);
  const categories = [...cats].sort(([a, x], [b, y]) => rank(a) - rank(b) || y.ms - x.ms).map(([category, c]) => ({
    category, calls: c.calls, ms: c.ms, share: totalMs > 0 ? c.ms / totalMs : 0,
    // over the parts whose work is counted
    tflops: rate(c.flop, c.timedFlopMs),
  }));
  const top = [...groups.values()].sort((a, b) => b.ms - a.ms).slice(0, topN).map((g) => ({
    name: g.name, ...(g.programs ? { programs: g.programs } : {}), category: g.category, shapes: g.shapes, calls: g.calls, ms: g.ms, msEach: g.ms / g.calls,
    tflops: rate(g.flop, g.ms),
  }));
  return { totalMs, kernels: kernels.length, dispatches: kernels.length ? dispatches : null, categories, top };
}
