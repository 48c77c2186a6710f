import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { FLAT_WORKGROUP_WGSL, flatDispatch, program, run } from './program.js';

const THREADS = 256;
/** Inputs one concatenation pass binds (WebGPU's default of 8 storage buffers a stage, the output being one). */
const MOST_INPUTS = 7;

/** What each input contributes to a row of the output: the input seen as [outer, width], `axis` and after flattened. */
function widths(xs: readonly tf.TensorInfo[], axis: number): number[] {
  return xs.map((x) => x.shape.slice(axis).reduce((a, s) => a * s, 1));
}

/**
 * Whether float32 tensors concatenate along `axis` on the vec4 kernel: every input's part of an output row (its
 * shape from `axis` on, flattened) a multiple of 4 values, the shapes equal elsewhere.
 */
export function concatSupported(xs: readonly tf.TensorInfo[], axis: number): boolean {
  if (xs.length < 2 || xs.some((x) => x.dtype !== 'float32' || x.shape.length !== xs[0].shape.length)) return false;
  const rank = xs[0].shape.length;
  if (axis < 0 || axis >= rank) return false;
  const same = xs.every((x) => x.shape.every((s, d) => d === axis || s === xs[0].shape[d]));
  const w = widths(xs, axis);
  const outer = w[0] > 0 ? tf.util.sizeFromShape(xs[0].shape) / w[0] : 0;
  return same && w.every((x) => x > 0 && x % 4 === 0) && outer * w.reduce((a, x) => a + x, 0) < 2 ** 31;
}

/**
 * xs concatenated along `axis` (concatSupported) in vec4 copies, at most seven inputs a pass (more are folded in
 * groups): tfjs's own Concat copies one value per invocation through its index arithmetic (H200 run 54: the UNet's
 * skip concatenations and FeedForward's chunks took 54.3 ms of a 24x1024x576 guided step).
 */
export function fusedConcat(backend: WebGPUBackend, xs: readonly tf.TensorInfo[], axis: number): tf.TensorInfo {
  if (xs.length > MOST_INPUTS) {
    const first = fusedConcat(backend, xs.slice(0, MOST_INPUTS), axis);
    const out = fusedConcat(backend, [first, ...xs.slice(MOST_INPUTS)], axis);
    backend.disposeData(first.dataId);
    return out;
  }
  const w4 = widths(xs, axis).map((w) => w / 4);
  const row4 = w4.reduce((a, w) => a + w, 0);
  const outer = tf.util.sizeFromShape(xs[0].shape) / (w4[0] * 4);
  const vecs = outer * row4;
  // ends[i]: where input i's vec4s end within an output row
  const ends: number[] = [];
  for (const w of w4) ends.push((ends.at(-1) ?? 0) + w);
  const names = xs.map((_, i) => `X${i}`);
  const code = () => {
    const pick = names.map((x, i) => {
      const from = i === 0 ? 0 : ends[i - 1];
      const read = `result[i] = ${x}[o * ${w4[i]}u + j${from ? ` - ${from}u` : ''}];`;
      return i === names.length - 1 ? `{ ${read} }` : `if (j < ${ends[i]}u) { ${read} }`;
    }).join(' else ');
    return `
${FLAT_WORKGROUP_WGSL}
fn main() {
  let i = flatWorkgroup() * ${THREADS}u + localId.x;
  if (i >= ${vecs}u) { return; }
  let o = i / ${row4}u;
  let j = i % ${row4}u;
  ${pick}
}`;
  };
  const outShape = [...xs[0].shape];
  outShape[axis] = xs.reduce((a, x) => a + x.shape[axis], 0);
  return run(backend, program({
    key: `t2vConcat_${vecs}_${w4.join('x')}`,
    inputs: names,
    outputShape: outShape,
    workgroupSize: THREADS,
    dispatch: flatDispatch(Math.ceil(vecs / THREADS)),
    components: names.map(() => 4),
    outputComponent: 4,
    code,
  }), [...xs]);
}

/** Whether rows start .. start + size of a float32 [rows, width] tensor copy as vec4s. */
export function rowSliceSupported(x: tf.TensorInfo, start: number, size: number): boolean {
  return x.dtype === 'float32' && x.shape.length === 2 && x.shape[1] % 4 === 0 && start >= 0 && size > 0
    && start + size <= x.shape[0] && x.shape[0] * x.shape[1] < 2 ** 31;
}

/** Rows start .. start + size of x [rows, width] (rowSliceSupported): one contiguous range, copied as vec4s. */
export function fusedRowSlice(backend: WebGPUBackend, x: tf.TensorInfo, start: number, size: number): tf.TensorInfo {
  const w4 = x.shape[1] / 4;
  const vecs = size * w4;
  return run(backend, program({
    key: `t2vRowSlice_${start * w4}_${vecs}`,
    inputs: ['X'],
    outputShape: [size, x.shape[1]],
    workgroupSize: THREADS,
    dispatch: flatDispatch(Math.ceil(vecs / THREADS)),
    components: [4],
    outputComponent: 4,
    code: () => `
${FLAT_WORKGROUP_WGSL}
fn main() {
  let i = flatWorkgroup() * ${THREADS}u + localId.x;
  if (i < ${vecs}u) { result[i] = X[i + ${start * w4}u]; }
}`,
  }), [x]);
}
