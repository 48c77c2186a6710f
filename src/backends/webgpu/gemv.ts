import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { program } from './program.js';

/** Columns (4 per thread) and K slices of one workgroup. */
const COL4 = 16;
const SLICES = 16;

export function gemvSupported(m: number, n: number): boolean {
  return m === 1 && n % (4 * COL4) === 0;
}

/**
 * x [1, k] W [k, n] (+ bias [n]) (+ residual [1, n]) in float32: the time embedding's Linears (one row each), which
 * the tensor-core tiles cannot take and tfjs's matmul reads at ~0.1 TFLOP/s. A workgroup owns 64 columns and splits
 * K over 16 slices of threads (each reads whole 256-byte rows of W), summed in workgroup memory.
 */
export function gemvInfo(backend: WebGPUBackend, x: tf.TensorInfo, w: tf.TensorInfo, bias: tf.TensorInfo | null,
  residual: tf.TensorInfo | null, outShape: number[], half = false): tf.TensorInfo {
  const k = x.shape[x.shape.length - 1];
  const n = outShape[outShape.length - 1];
  const code = () => `${half ? 'enable f16;\n// t2v:f16 W' : ''}
const K = ${k}u;
const N4 = ${n / 4}u;
var<workgroup> part : array<vec4<f32>, ${COL4 * SLICES}>;
fn main() {
  let c = localId.x % ${COL4}u;
  let slice = localId.x / ${COL4}u;
  let col = workgroupId.x * ${COL4}u + c;
  var acc = vec4<f32>(0.0);
  for (var r = slice; r < K; r += ${SLICES}u) { acc = fma(vec4<f32>(X[r]), ${half ? 'vec4<f32>(W[r * N4 + col])' : 'W[r * N4 + col]'}, acc); }
  part[localId.x] = acc;
  workgroupBarrier();
  if (slice == 0u) {
    var y = part[c];
    for (var s = 1u; s < ${SLICES}u; s++) { y += part[s * ${COL4}u + c]; }
    ${bias ? 'y += Bias[col];' : ''}
    ${residual ? 'y += Residual[col];' : ''}
    result[col] = y;
  }
}`;
  return backend.runWebGPUProgram(program({
    key: `t2vGemv_${k}_${n}_${bias ? 'b' : ''}${residual ? 'r' : ''}${half ? 'h' : ''}`,
    inputs: ['X', 'W', ...(bias ? ['Bias'] : []), ...(residual ? ['Residual'] : [])],
    outputShape: outShape,
    workgroupSize: COL4 * SLICES,
    dispatch: [n / (4 * COL4), 1, 1],
    components: [1, 4, ...(bias ? [4] : []), ...(residual ? [4] : [])],
    outputComponent: 4,
    code,
  }), [x, w, ...(bias ? [bias] : []), ...(residual ? [residual] : [])], 'float32');
}
