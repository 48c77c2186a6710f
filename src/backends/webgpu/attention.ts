import type * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { FusedAttentionAttrs } from '../kernels.js';
import { FLAT_WORKGROUP_WGSL, MAX_WORKGROUPS, flatDispatch, program, run } from './program.js';

/** Key rows staged in workgroup memory per step; one thread per query row. */
const KEY_TILE = 32;
const MAX_HEAD_DIM = 128;
/** Up to this many keys (the temporal attention's frames), the short-sequence kernel runs. */
const SHORT_KEYS = 32;

export function attentionSupported(q: tf.TensorInfo, k: tf.TensorInfo, heads: number): boolean {
  const [b, nq, inner] = q.shape;
  const d = inner / heads;
  return q.dtype === 'float32' && k.dtype === 'float32' && Number.isInteger(d) && d % 4 === 0
    && d <= MAX_HEAD_DIM && nq > 0 && k.shape[1] > 0
    && (k.shape[1] <= SHORT_KEYS || b * heads <= MAX_WORKGROUPS);
}

/**
 * Flash-attention style: each workgroup owns `rows` query rows of one (batch, head); it streams K and V through
 * workgroup memory KEY_TILE rows at a time and keeps a running max and sum (online softmax), so no [nq, nk] score
 * matrix exists anywhere. q, k, v stay in their [B, N, heads*d] layout: no transposes around the kernel.
 */
export function fusedAttention(backend: WebGPUBackend, q: tf.TensorInfo, k: tf.TensorInfo, v: tf.TensorInfo,
  attrs: FusedAttentionAttrs): tf.TensorInfo {
  const [b, nq, inner] = q.shape;
  const nk = k.shape[1];
  const { heads, causal } = attrs;
  const d = inner / heads;
  if (nk <= SHORT_KEYS) return shortAttention(backend, q, k, v, heads, causal);
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
  let qBase = (b * NQ + min(qi, NQ - 1u)) * INNER4 + h * D4;
  var qr : array<vec4<f32>, ${d4}>;
  var acc : array<vec4<f32>, ${d4}>;
  for (var c = 0u; c < D4; c++) {
    qr[c] = Q[qBase + c] * SCALE;
    acc[c] = vec4<f32>(0.0);
  }
  var m = MASKED;
  var l = 0.0;
  let kvBase = b * NK * INNER4 + h * D4;
  // the loop bound must be provably uniform for the barriers inside it
  if (tid == 0u) { sharedKeyEnd = select(NK, min(NK, row0 + ROWS), CAUSAL); }
  let keyEnd = workgroupUniformLoad(&sharedKeyEnd);
  for (var k0 = 0u; k0 < keyEnd; k0 += TILE) {
    workgroupBarrier();
    for (var e = tid; e < TILE * D4; e += ROWS) {
      let kj = k0 + e / D4;
      let src = kvBase + min(kj, NK - 1u) * INNER4 + e % D4;
      kt[e] = K[src];
      vt[e] = V[src];
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
    for (var c = 0u; c < D4; c++) { result[qBase + c] = acc[c] * inv; }
  }
}`;
  const prog = program({
    key: `t2vAttention_${nq}_${nk}_${heads}_${d}_${causal}_${rows}`,
    inputs: ['Q', 'K', 'V'],
    outputShape: [b, nq, inner],
    workgroupSize: rows,
    dispatch: [Math.ceil(nq / rows), b * heads, 1],
    components: [4, 4, 4],
    outputComponent: 4,
    code,
  });
  return run(backend, prog, [q, k, v]);
}

/**
 * Short key sequences (temporal attention over 16 frames: [b*h*w, 16, heads*d]): one thread per (batch, head,
 * query), keys read straight from memory (threads of one head read the same rows, so the loads are shared through
 * the cache); no workgroup memory, no barriers; the softmax is online, key by key.
 */
function shortAttention(backend: WebGPUBackend, q: tf.TensorInfo, k: tf.TensorInfo, v: tf.TensorInfo, heads: number,
  causal: boolean): tf.TensorInfo {
  const [b, nq, inner] = q.shape;
  const nk = k.shape[1];
  const d = inner / heads;
  const d4 = d / 4;
  const threads = 64;
  const items = b * heads * nq;
  const code = () => `
const D4 = ${d4}u;
const NQ = ${nq}u;
const NK = ${nk}u;
const HEADS = ${heads}u;
const INNER4 = ${inner / 4}u;
const ITEMS = ${items}u;
const CAUSAL = ${causal};
const SCALE = ${(Math.LOG2E / Math.sqrt(d)).toPrecision(9)};
${FLAT_WORKGROUP_WGSL}
fn main() {
  let item = flatWorkgroup() * ${threads}u + localId.x;
  if (item >= ITEMS) { return; }
  let qi = item % NQ;
  let bh = item / NQ;
  let bb = bh / HEADS;
  let h = bh % HEADS;
  let qBase = (bb * NQ + qi) * INNER4 + h * D4;
  let kvBase = bb * NK * INNER4 + h * D4;
  var qr : array<vec4<f32>, ${d4}>;
  for (var c = 0u; c < D4; c++) { qr[c] = Q[qBase + c] * SCALE; }
  var acc : array<vec4<f32>, ${d4}>;
  for (var c = 0u; c < D4; c++) { acc[c] = vec4<f32>(0.0); }
  var m = -1.0e30;
  var l = 0.0;
  var keyEnd = NK;
  if (CAUSAL) { keyEnd = qi + 1u; }
  for (var j = 0u; j < keyEnd; j++) {
    var dotv = vec4<f32>(0.0);
    for (var c = 0u; c < D4; c++) { dotv = fma(qr[c], K[kvBase + j * INNER4 + c], dotv); }
    let sj = dotv.x + dotv.y + dotv.z + dotv.w;
    let mn = max(m, sj);
    let corr = exp2(m - mn);
    let p = exp2(sj - mn);
    l = fma(l, corr, p);
    for (var c = 0u; c < D4; c++) { acc[c] = fma(vec4<f32>(p), V[kvBase + j * INNER4 + c], acc[c] * corr); }
    m = mn;
  }
  let inv = 1.0 / l;
  for (var c = 0u; c < D4; c++) { result[qBase + c] = acc[c] * inv; }
}`;
  return run(backend, program({
    key: `t2vAttentionShort_${b}_${nq}_${nk}_${heads}_${d}_${causal}`,
    inputs: ['Q', 'K', 'V'],
    outputShape: [b, nq, inner],
    workgroupSize: threads,
    dispatch: flatDispatch(Math.ceil(items / threads)),
    components: [4, 4, 4],
    outputComponent: 4,
    code,
  }), [q, k, v]);
}
