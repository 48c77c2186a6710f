import type * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { FLAT_WORKGROUP_WGSL, flatDispatch, program } from './program.js';

/** float32 [.., 2j] -> f16 pairs packed into float32 [.., j] (bit patterns, for `// t2v:f16` bindings). */
export function packF16(backend: WebGPUBackend, x: tf.TensorInfo): tf.TensorInfo {
  const size = x.shape.reduce((a, b) => a * b, 1);
  const pairs = size / 2;
  const code = () => `
${FLAT_WORKGROUP_WGSL}
fn main() {
  let i = flatWorkgroup() * 256u + localId.x;
  if (i >= ${pairs}u) { return; }
  result[i] = bitcast<f32>(pack2x16float(vec2<f32>(X[2u * i], X[2u * i + 1u])));
}`;
  return backend.runWebGPUProgram(program({
    key: `t2vPackF16_${pairs}`, inputs: ['X'], outputShape: [pairs], workgroupSize: 256,
    dispatch: flatDispatch(Math.ceil(pairs / 256)), components: [1], outputComponent: 1, code,
  }), [x], 'float32');
}

/**
 * Switch (T2V_F16_WEIGHTS=0 starts it off) and count of the f16 copies below: the tensor-core GEMM reads its B operand
 * (a weight, in the UNet always) as f16 made once, instead of converting float32 tiles in every workgroup of every call.
 */
export const f16Weights = {
  enabled: !['0', 'off', 'false'].includes((process.env.T2V_F16_WEIGHTS ?? '').toLowerCase()),
  made: 0,
};

const copies = new WeakMap<object, tf.TensorInfo>();
const hooked = new WeakSet<object>();

/**
 * `b` as f16 pairs packed in float32 (packF16), made on first use and kept until `b` itself is disposed (tensors do
 * not change, so the copy stays valid). The values are those the kernel's own conversion gives.
 */
export function f16Copy(backend: WebGPUBackend, b: tf.TensorInfo): tf.TensorInfo {
  if (!hooked.has(backend)) {
    hooked.add(backend);
    const dispose = backend.disposeData.bind(backend);
    backend.disposeData = (dataId: object, force?: boolean) => {
      const gone = dispose(dataId, force);
      const copy = copies.get(dataId);
      if (gone && copy) {
        copies.delete(dataId);
        dispose(copy.dataId, true);
      }
      return gone;
    };
  }
  let copy = copies.get(b.dataId);
  if (copy === undefined) {
    copy = packF16(backend, b);
    copies.set(b.dataId, copy);
    f16Weights.made++;
  }
  return copy;
}
