import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { installDawn, useWebGPU, webgpuFacts } from '../src/backends/dawn.js';
import { matMulF16Staged, matMulF16StagedSupported } from '../src/backends/webgpu/matmul-f16-staged.js';
import { pickConfig } from '../src/backends/webgpu/tensor-core-route.js';
import { program } from '../src/backends/webgpu/program.js';
import { relMaxError } from './helpers.js';
import { webgpuSkip } from './webgpu-gate.js';

// The f16 path of the webgpu backend (own Dawn device, WGSL directives hoisted, f16 storage bindings) and, where
// the adapter has subgroup matrices (tensor cores), the f16 matmul. Needs an adapter with shader-f16; software
// adapters only with T2V_WEBGPU_SOFTWARE=1 (T2V_REQUIRE_WEBGPU=1, CI on lavapipe: no adapter is a failure).
const adapter = await installDawn();
const skip = await webgpuSkip(adapter, ['shader-f16']);
if (!skip) await useWebGPU();

test('f16 storage bindings and hoisted enable directives work through the tfjs program interface', { skip }, async () => {
  const x = tf.tensor1d([1.5, -2.25, 1000, 0.1]);
  // pack pairs of f32 into f16 bit patterns, then read them back through a binding retyped to array<f16>
  const pack = program({ key: 'testPackF16', inputs: ['X'], outputShape: [2], workgroupSize: 32, dispatch: [1, 1, 1],
    components: [1], outputComponent: 1, code: `
fn main() {
  let i = localId.x;
  if (i < 2u) { result[i] = bitcast<f32>(pack2x16float(vec2<f32>(X[2u * i], X[2u * i + 1u]))); }
}` });
  const read = program({ key: 'testReadF16', inputs: ['XH'], outputShape: [4], workgroupSize: 32, dispatch: [1, 1, 1],
    components: [1], outputComponent: 1, code: `
enable f16;
// t2v:f16 XH
fn main() {
  let i = localId.x;
  if (i < 4u) { result[i] = f32(XH[i] * 2.0h); }
}` });
  const b = tf.backend() as WebGPUBackend;
  const packed = b.runWebGPUProgram(pack, [x], 'float32');
  const out = tf.engine().makeTensorFromTensorInfo(b.runWebGPUProgram(read, [packed], 'float32'));
  b.disposeData(packed.dataId);
  const got = await out.data();
  tf.dispose([x, out]);
  // f16 rounding: 0.1 -> 0.0999755859375
  assert.deepEqual([...got], [3, -4.5, 2000, 0.199951171875]);
});

test('tensor-core matmul (subgroup matrices) matches tf.matMul within f16 input rounding', {
  skip: skip || (pickConfig([...webgpuFacts().subgroupMatrixConfigs]) ? false : 'the adapter has no f16 subgroup matrices (tensor cores)'),
}, async () => {
  const cfg = pickConfig([...webgpuFacts().subgroupMatrixConfigs])!;
  const [m, k, n] = [256, 96, 192];
  assert.ok(matMulF16StagedSupported(m, n, k));
  const a = tf.randomNormal([m, k], 0, 1, 'float32', 1) as tf.Tensor2D;
  const w = tf.randomNormal([k, n], 0, 1 / Math.sqrt(k), 'float32', 2) as tf.Tensor2D;
  const ref = tf.matMul(a, w);
  const out = matMulF16Staged(a, w, cfg);
  const err = relMaxError(await out.data(), await ref.data());
  tf.dispose([a, w, ref, out]);
  assert.ok(err < 2e-3, `rel err ${err}`);
});
