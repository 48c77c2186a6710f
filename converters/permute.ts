/**
 * `data` (row-major, `shape`) with its axes reordered: output axis i is input axis perm[i]. Plain loops: the
 * converter moves ~1.4 B UNet values, and tfjs's cpu transpose costs microseconds per element.
 */
export function permute(data: Float32Array, shape: readonly number[], perm: readonly number[]): Float32Array {
  const n = shape.length;
  if (perm.length !== n) throw new Error(`permutation [${perm}] for shape [${shape}]`);
  const out = new Float32Array(data.length);
  if (data.length === 0) return out;
  if (n <= 1 || perm.every((p, i) => p === i)) { out.set(data); return out; }
  const inStrides = new Array<number>(n);
  for (let d = n - 1, s = 1; d >= 0; d--) { inStrides[d] = s; s *= shape[d]; }
  const outShape = perm.map((p) => shape[p]);
  const st = perm.map((p) => inStrides[p]);
  const L = outShape[n - 1];
  const sL = st[n - 1];
  const idx = new Array<number>(n - 1).fill(0);
  let base = 0;
  let o = 0;
  const outer = data.length / L;
  for (let b = 0; b < outer; b++) {
    for (let j = 0, i = base; j < L; j++, i += sL) out[o++] = data[i];
    for (let d = n - 2; d >= 0; d--) {
      idx[d]++;
      base += st[d];
      if (idx[d] < outShape[d]) break;
      base -= st[d] * outShape[d];
      idx[d] = 0;
    }
  }
  return out;
}
