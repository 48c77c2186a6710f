import type * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { ContextAttentionAttrs, FusedAttentionAttrs } from './kernel-names.js';
import { deviceFactsOf } from './device-facts.js';
import { checkLanes, laneGroupSize, laneSum, perLane } from './lane-groups.js';
import { FLAT_WORKGROUP_WGSL, MAX_WORKGROUPS, flatDispatch, program, run } from './program.js';

/** Key rows staged in workgroup memory per step; one thread per query row. */
const KEY_TILE = 32;
const MAX_HEAD_DIM = 128;
/** Up to this many keys (the temporal attention's frames), the short-sequence kernel runs. */
const SHORT_KEYS = 32;

export function attentionSupported(q: tf.TensorInfo, k: tf.TensorInfo, heads: number): boolean {
  return q.dtype === 'float32' && k.dtype === 'float32' && shapesFit(q.shape[0], q.shape[1], k.shape[1], q.shape[2], heads);
}

/** What both kernels need: a head dim that is a multiple of 4 up to 128, and few enough (batch, head) pairs. */
function shapesFit(b: number, nq: number, nk: number, inner: number, heads: number): boolean {
  const d = inner / heads;
  return Number.isInteger(d) && d % 4 === 0 && d <= MAX_HEAD_DIM && nq > 0 && nk > 0
    && (nk <= SHORT_KEYS || b * heads <= MAX_WORKGROUPS);
}

/**
 * Flash-attention style: each workgroup owns `rows` query rows of one (batch, head); it streams K and V through
 * workgroup memory KEY_TILE rows at a time and keeps a running max and sum (online softmax), so no [nq, nk] score
 * matrix exists anywhere. q, k, v stay in their [B, N, heads*d] layout: no transposes around the kernel.
 */
export function fusedAttention(backend: WebGPUBackend, q: tf.TensorInfo, k: tf.TensorInfo, v: tf.TensorInfo,
  attrs: FusedAttentionAttrs): tf.TensorInfo {
  return attentionProgram(backend, [q, k, v], layout(false, q.shape[2]), q.shape[0], q.shape[1], k.shape[1], q.shape[2], attrs);
}

/** Keys and values of every batch item in one [rows, width] tensor at a column offset (FusedContextAttention). */
export function contextAttentionSupported(q: tf.TensorInfo, kv: tf.TensorInfo, attrs: ContextAttentionAttrs): boolean {
  const [b, nq, inner] = q.shape;
  const { keys, offset } = attrs;
  return q.shape.length === 3 && kv.shape.length === 2 && q.dtype === 'float32' && kv.dtype === 'float32'
    && Number.isInteger(keys) && keys > 0 && kv.shape[0] >= b * keys && kv.shape[1] % 4 === 0
    && Number.isInteger(offset) && offset % 4 === 0 && offset >= 0 && offset + 2 * inner <= kv.shape[1]
    && shapesFit(b, nq, keys, inner, attrs.heads);
}

export function fusedContextAttention(backend: WebGPUBackend, q: tf.TensorInfo, kv: tf.TensorInfo,
  attrs: ContextAttentionAttrs): tf.TensorInfo {
  const [b, nq, inner] = q.shape;
  const L = layout(false, inner, { width: kv.shape[1], offset: attrs.offset });
  return attentionProgram(backend, [q, kv], L, b, nq, attrs.keys, inner, { heads: attrs.heads, causal: false });
}

/**
 * Self-attention on q, k and v packed side by side in one tensor [B, N, 3*heads*d] (one to_q|to_k|to_v matmul), or
 * [B, N, S, 3*heads*d]: attention over N for each of the S columns (the temporal transformer's frames of each pixel,
 * left where they lie, so no transposes around it; short sequences only).
 */
export function packedAttentionSupported(qkv: tf.TensorInfo, heads: number): boolean {
  const rank = qkv.shape.length;
  const [b, n] = qkv.shape;
  const s = rank === 4 ? qkv.shape[2] : 1;
  const c = qkv.shape[rank - 1];
  return (rank === 3 || (rank === 4 && n <= SHORT_KEYS)) && c % 3 === 0 && qkv.dtype === 'float32'
    && shapesFit(b * s, n, n, c / 3, heads);
}

export function fusedPackedAttention(backend: WebGPUBackend, qkv: tf.TensorInfo, attrs: FusedAttentionAttrs): tf.TensorInfo {
  const rank = qkv.shape.length;
  const [b, n] = qkv.shape;
  const s = rank === 4 ? qkv.shape[2] : 1;
  const inner = qkv.shape[rank - 1] / 3;
  if (s > 1) return shortAttention(backend, [qkv], layout(true, inner), b * s, n, n, inner, attrs.heads, attrs.causal, s, attrs.lanes);
  return attentionProgram(backend, [qkv], layout(true, inner), b, n, n, inner, attrs);
}

/**
 * The WGSL names and strides (in vec4) of q, k and v: three tensors [B, N, inner], or one [B, N, 3*inner] whose
 * rows hold q, k and v side by side, or q [B, N, inner] and keys and values in rows `width` wide (k at `offset`).
 */
export interface AttentionLayout {
  inputs: string[]; Q: string; K: string; V: string; qs4: number; kvs4: number; koff: number; voff: number; tag: string;
  kind: 'plain' | 'packed' | 'context';
}
function layout(packed: boolean, inner: number, kv?: { width: number; offset: number }): AttentionLayout {
  const i4 = inner / 4;
  if (kv) {
    return { inputs: ['Q', 'KV'], Q: 'Q', K: 'KV', V: 'KV', qs4: i4, kvs4: kv.width / 4, koff: kv.offset / 4,
      voff: kv.offset / 4 + i4, tag: `c${kv.width}_${kv.offset}`, kind: 'context' };
  }
  return packed
    ? { inputs: ['QKV'], Q: 'QKV', K: 'QKV', V: 'QKV', qs4: 3 * i4, kvs4: 3 * i4, koff: i4, voff: 2 * i4, tag: 'p', kind: 'packed' }
    : { inputs: ['Q', 'K', 'V'], Q: 'Q', K: 'K', V: 'V', qs4: i4, kvs4: i4, koff: 0, voff: 0, tag: '', kind: 'plain' };
}

function attentionProgram(backend: WebGPUBackend, inputs: tf.TensorInfo[], L: AttentionLayout, b: number, nq: number,
  nk: number, inner: number, attrs: FusedAttentionAttrs): tf.TensorInfo {
  const { heads, causal } = attrs;
  const d = inner / heads;
  if (nk <= SHORT_KEYS) return shortAttention(backend, inputs, L, b, nq, nk, inner, heads, causal, 1, attrs.lanes);
  const rows = nq >= 64 ? 64 : 32;
  const d4 = d / 4;
  // scores go through exp2: fold log2(e) into the 1/sqrt(d) scale of q
  const scale = Math.LOG2E / Math.sqrt(d);
  const code = () => `
const ROWS = ${rows}u;
const TILE = ${KEY_TILE}u;
const D4 = ${d4}u;
const NQ = ${nq}u;
const NK = ${nk}u;
const HEADS = ${heads}u;
const INNER4 = ${inner / 4}u;
const QS4 = ${L.qs4}u;
const KVS4 = ${L.kvs4}u;
const CAUSAL = ${causal};
const SCALE = ${scale.toPrecision(9)};
const MASKED = -1.0e30;
var<workgroup> kt : array<vec4<f32>, ${KEY_TILE * d4}>;
var<workgroup> vt : array<vec4<f32>, ${KEY_TILE * d4}>;
var<workgroup> sharedKeyEnd : u32;

fn main() {
  let tid = localId.x;
  let bh = workgroupId.y;
  let b = bh / HEADS;
  let h = bh % HEADS;
  let row0 = workgroupId.x * ROWS;
  let qi = row0 + tid;
  let qBase = (b * NQ + min(qi, NQ - 1u)) * QS4 + h * D4;
  var qr : array<vec4<f32>, ${d4}>;
  var acc : array<vec4<f32>, ${d4}>;
  for (var c = 0u; c < D4; c++) {
    qr[c] = ${L.Q}[qBase + c] * SCALE;
    acc[c] = vec4<f32>(0.0);
  }
  var m = MASKED;
  var l = 0.0;
  let kvBase = b * NK * KVS4 + h * D4;
  // the loop bound must be provably uniform for the barriers inside it
  if (tid == 0u) { sharedKeyEnd = select(NK, min(NK, row0 + ROWS), CAUSAL); }
  let keyEnd = workgroupUniformLoad(&sharedKeyEnd);
  for (var k0 = 0u; k0 < keyEnd; k0 += TILE) {
    workgroupBarrier();
    for (var e = tid; e < TILE * D4; e += ROWS) {
      let kj = k0 + e / D4;
      let src = kvBase + min(kj, NK - 1u) * KVS4 + e % D4;
      kt[e] = ${L.K}[src + ${L.koff}u];
      vt[e] = ${L.V}[src + ${L.voff}u];
    }
    workgroupBarrier();
    var s : array<f32, ${KEY_TILE}>;
    var mt = m;
    for (var j = 0u; j < TILE; j++) {
      var dotv = vec4<f32>(0.0);
      for (var c = 0u; c < D4; c++) {
        dotv = fma(qr[c], kt[j * D4 + c], dotv);
      }
      var sj = dotv.x + dotv.y + dotv.z + dotv.w;
      let kj = k0 + j;
      if (kj >= NK || (CAUSAL && kj > qi)) { sj = MASKED; }
      s[j] = sj;
      mt = max(mt, sj);
    }
    let corr = exp2(m - mt);
    l = l * corr;
    for (var c = 0u; c < D4; c++) { acc[c] = acc[c] * corr; }
    for (var j = 0u; j < TILE; j++) {
      let p = exp2(s[j] - mt);
      l += p;
      for (var c = 0u; c < D4; c++) {
        acc[c] = fma(vec4<f32>(p), vt[j * D4 + c], acc[c]);
      }
    }
    m = mt;
  }
  if (qi < NQ) {
    let inv = 1.0 / l;
    let oBase = (b * NQ + qi) * INNER4 + h * D4;
    for (var c = 0u; c < D4; c++) { result[oBase + c] = acc[c] * inv; }
  }
}`;
  const prog = program({
    key: `t2vAttention_${nq}_${nk}_${heads}_${d}_${causal}_${rows}${L.tag}`,
    inputs: L.inputs,
    outputShape: [b, nq, inner],
    workgroupSize: rows,
    dispatch: [Math.ceil(nq / rows), b * heads, 1],
    components: L.inputs.map(() => 4),
    outputComponent: 4,
    code,
  });
  return run(backend, prog, inputs);
}

/**
 * The WGSL both short-sequence kernels start from: their constants, and (`bases`) for the query `item` its index qi,
 * head h, and the first vec4 of its q (qBase), its keys and values (kvBase) and its output (oBase), plus `lane`.
 * With `stride` S > 1 the sequences are the columns of [b / S, n, S, ...] (token j of sequence q at row
 * (q / S * n + j) * S + q % S).
 */
function shortSequenceWgsl(L: AttentionLayout, nq: number, nk: number, inner: number, heads: number, items: number,
  causal: boolean, stride: number): { consts: string; bases: (item: string, lane?: string) => string } {
  const d = inner / heads;
  const consts = `
const D4 = ${d / 4}u;
const NQ = ${nq}u;
const NK = ${nk}u;
const HEADS = ${heads}u;
const INNER4 = ${inner / 4}u;
const QS4 = ${L.qs4}u;
const KVS4 = ${L.kvs4}u;
const ITEMS = ${items}u;
const CAUSAL = ${causal};
const SCALE = ${(Math.LOG2E / Math.sqrt(d)).toPrecision(9)};
const S = ${stride}u;
${FLAT_WORKGROUP_WGSL}`;
  const bases = (item: string, lane?: string) => {
    const plus = lane ? ` + ${lane}` : '';
    return `let qi = ${item} % NQ;
  let bh = ${item} / NQ;
  let bb = bh / HEADS;
  let h = bh % HEADS;
  let row0 = (bb / S) * NQ * S + bb % S;
  let qBase = (row0 + qi * S) * QS4 + h * D4${plus};
  let kvBase = ((bb / S) * NK * S + bb % S) * KVS4 + h * D4${plus};
  let oBase = (row0 + qi * S) * INNER4 + h * D4${plus};`;
  };
  return { consts, bases };
}

/**
 * Short key sequences on a lane group of one subgroup per (batch, head, query) (lane-groups.ts): a score is the
 * lanes' partial dots summed through subgroupShuffleXor; all NK scores stay in registers, so the softmax is exact (one
 * maximum, no rescaling) and the loads of every key can be in flight at once.
 */
function laneAttention(backend: WebGPUBackend, inputs: tf.TensorInfo[], L: AttentionLayout, b: number, nq: number,
  nk: number, inner: number, heads: number, causal: boolean, stride: number, lanes: number): tf.TensorInfo {
  const d = inner / heads;
  const per = d / 4 / lanes; // vec4s a lane holds
  const threads = 64;
  const items = b * heads * nq;
  const { consts, bases } = shortSequenceWgsl(L, nq, nk, inner, heads, items, causal, stride);
  const code = () => `
enable subgroups;
const LANES = ${lanes}u;
${consts}
fn main() {
  let g = flatWorkgroup() * ${threads}u + localId.x;
  let lane = g % LANES;
  // a group past the last query computes the last one again and writes nothing (no early return: the shuffles need
  // every lane of the subgroup)
  let item = min(g / LANES, ITEMS - 1u);
  ${bases('item', 'lane')}
  ${perLane(per, (t) => `let q${t} = ${L.Q}[qBase + ${t * lanes}u] * SCALE;`)}
  var s : array<f32, ${nk}>;
  var m = -1.0e30;
  for (var j = 0u; j < NK; j++) {
    let kb = kvBase + j * S * KVS4 + ${L.koff}u;
    var dv = ${perLane(per, (t) => `dot(q${t}, ${L.K}[kb + ${t * lanes}u])`, ' + ')};
    ${laneSum('dv', lanes)}
    ${causal ? 'dv = select(-1.0e30, dv, j <= qi);' : ''}
    s[j] = dv;
    m = max(m, dv);
  }
  var l = 0.0;
  ${perLane(per, (t) => `var o${t} = vec4<f32>(0.0);`)}
  for (var j = 0u; j < NK; j++) {
    let p = exp2(s[j] - m);
    l += p;
    let vb = kvBase + j * S * KVS4 + ${L.voff}u;
    ${perLane(per, (t) => `o${t} = fma(vec4<f32>(p), ${L.V}[vb + ${t * lanes}u], o${t});`)}
  }
  let inv = 1.0 / l;
  if (g / LANES < ITEMS) {
    ${perLane(per, (t) => `result[oBase + ${t * lanes}u] = o${t} * inv;`)}
  }
}`;
  return run(backend, program({
    key: `t2vAttentionLanes_${b}_${nq}_${nk}_${heads}_${d}_${causal}${L.tag}_${stride}_${lanes}`,
    inputs: L.inputs,
    outputShape: stride > 1 ? [b / stride, nq, stride, inner] : [b, nq, inner],
    workgroupSize: threads,
    dispatch: flatDispatch(Math.ceil((items * lanes) / threads)),
    components: L.inputs.map(() => 4),
    outputComponent: 4,
    code,
  }), inputs);
}

/**
 * Short key sequences (temporal attention over 16 frames: [b*h*w, 16, heads*d]): laneAttention where the device has
 * subgroups (`asked` pins the lanes; 0: this form), else one thread per (batch, head, query), keys read straight from
 * memory (threads of one head read the same rows, so the loads are shared through the cache); no workgroup memory,
 * no barriers; the softmax is online, key by key. `stride`: shortSequenceWgsl.
 */
function shortAttention(backend: WebGPUBackend, inputs: tf.TensorInfo[], L: AttentionLayout, b: number, nq: number,
  nk: number, inner: number, heads: number, causal: boolean, stride = 1, asked?: number): tf.TensorInfo {
  const d = inner / heads;
  const d4 = d / 4;
  const lanes = asked ?? laneGroupSize(d4, deviceFactsOf(backend).subgroupMinSize);
  checkLanes(lanes, d4, 'short attention, a head');
  if (lanes > 0) return laneAttention(backend, inputs, L, b, nq, nk, inner, heads, causal, stride, lanes);
  const threads = 64;
  const items = b * heads * nq;
  const { consts, bases } = shortSequenceWgsl(L, nq, nk, inner, heads, items, causal, stride);
  const code = () => `${consts}
fn main() {
  let item = flatWorkgroup() * ${threads}u + localId.x;
  if (item >= ITEMS) { return; }
  ${bases('item')}
  var qr : array<vec4<f32>, ${d4}>;
  for (var c = 0u; c < D4; c++) { qr[c] = ${L.Q}[qBase + c] * SCALE; }
  var acc : array<vec4<f32>, ${d4}>;
  for (var c = 0u; c < D4; c++) { acc[c] = vec4<f32>(0.0); }
  var m = -1.0e30;
  var l = 0.0;
  var keyEnd = NK;
  if (CAUSAL) { keyEnd = qi + 1u; }
  for (var j = 0u; j < keyEnd; j++) {
    var dotv = vec4<f32>(0.0);
    for (var c = 0u; c < D4; c++) { dotv = fma(qr[c], ${L.K}[kvBase + j * S * KVS4 + ${L.koff}u + c], dotv); }
    let sj = dotv.x + dotv.y + dotv.z + dotv.w;
    let mn = max(m, sj);
    let corr = exp2(m - mn);
    let p = exp2(sj - mn);
    l = fma(l, corr, p);
    for (var c = 0u; c < D4; c++) { acc[c] = fma(vec4<f32>(p), ${L.V}[kvBase + j * S * KVS4 + ${L.voff}u + c], acc[c] * corr); }
    m = mn;
  }
  let inv = 1.0 / l;
  for (var c = 0u; c < D4; c++) { result[oBase + c] = acc[c] * inv; }
}`;
  return run(backend, program({
    key: `t2vAttentionShort_${b}_${nq}_${nk}_${heads}_${d}_${causal}${L.tag}_${stride}`,
    inputs: L.inputs,
    outputShape: stride > 1 ? [b / stride, nq, stride, inner] : [b, nq, inner],
    workgroupSize: threads,
    dispatch: flatDispatch(Math.ceil(items / threads)),
    components: L.inputs.map(() => 4),
    outputComponent: 4,
    code,
  }), inputs);
}
