import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { SubgroupMatrixConfig } from '../dawn.js';
import { program } from './program.js';

const TM = 64;
const TN = 64;
const TK = 32;
const THREADS = 128; // 4 subgroups of 32 in a 2x2 grid, each owning a 32x32 block of the 64x64 tile

/** The f16 x f16 -> f32 configuration whose sizes tile a 32x32 block, or null. */
export function pickConfig(configs: SubgroupMatrixConfig[]): SubgroupMatrixConfig | null {
  return configs.find((c) => c.componentType === 'f16' && c.resultComponentType === 'f32'
    && 32 % c.M === 0 && 32 % c.N === 0 && TK % c.K === 0) ?? null;
}

export function matMulF16Supported(m: number, n: number, k: number): boolean {
  return m % TM === 0 && n % TN === 0 && k % TK === 0;
}

/**
 * Experimental: C[m, n] = A[m, k] B[k, n] on tensor cores through subgroup matrices (f16 inputs, f32 accumulation),
 * float32 tensors in and out. Tiles of 64x64x32 are converted to f16 in workgroup memory, then each subgroup
 * multiplies its 32x32 block with the device's matrix size. Needs useWebGPUWithTensorCores() and sizes that are
 * multiples of the tile (no edge handling yet). Expect about 1e-3 relative error from the f16 inputs.
 */
export function matMulF16(a: tf.Tensor2D, b: tf.Tensor2D, cfg: SubgroupMatrixConfig): tf.Tensor2D {
  const info = matMulF16Info(tf.backend() as WebGPUBackend, a, b, cfg, [a.shape[0], b.shape[1]]);
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D;
}

/** The same on TensorInfos of [.., m, k] and [.., k, n] with a batch of 1 (what a kernel function gets). */
export function matMulF16Info(backend: WebGPUBackend, a: tf.TensorInfo, b: tf.TensorInfo, cfg: SubgroupMatrixConfig,
  outShape: number[]): tf.TensorInfo {
  const m = a.shape[a.shape.length - 2];
  const k = a.shape[a.shape.length - 1];
  const n = b.shape[b.shape.length - 1];
  if (!matMulF16Supported(m, n, k)) throw new Error(`matMulF16: [${m},${k}]x[${k},${n}] is not a multiple of the ${TM}x${TN}x${TK} tile`);
  const { M: SM, N: SN, K: SK } = cfg;
  const rm = 32 / SM;
  const rn = 32 / SN;
  const left = `subgroup_matrix_left<f16, ${SK}, ${SM}>`;
  const right = `subgroup_matrix_right<f16, ${SN}, ${SK}>`;
  const res = `subgroup_matrix_result<f32, ${SN}, ${SM}>`;
  const accDecl: string[] = [];
  const mma: string[] = [];
  const store: string[] = [];
  for (let i = 0; i < rm; i++) {
    mma.push(`let a${i} = subgroupMatrixLoad<${left}>(&As, (sgRow + ${i * SM}u) * TK + kk, false, TK);`);
  }
  for (let j = 0; j < rn; j++) {
    mma.push(`let b${j} = subgroupMatrixLoad<${right}>(&Bs, kk * TN + sgCol + ${j * SN}u, false, TN);`);
  }
  for (let i = 0; i < rm; i++) {
    for (let j = 0; j < rn; j++) {
      accDecl.push(`var acc${i}_${j} = ${res}();`);
      mma.push(`acc${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, acc${i}_${j});`);
      store.push(`subgroupMatrixStore(&result, (row0 + sgRow + ${i * SM}u) * N + col0 + sgCol + ${j * SN}u, acc${i}_${j}, false, N);`);
    }
  }
  const code = `
enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
const M = ${m}u;
const N = ${n}u;
const K = ${k}u;
const TM = ${TM}u;
const TN = ${TN}u;
const TK = ${TK}u;
var<workgroup> As : array<f16, ${TM * TK}>;
var<workgroup> Bs : array<f16, ${TK * TN}>;
fn main() {
  let tid = localIndex;
  let sg = tid / 32u;
  let row0 = workgroupId.y * TM;
  let col0 = workgroupId.x * TN;
  let sgRow = (sg / 2u) * 32u;
  let sgCol = (sg % 2u) * 32u;
  ${accDecl.join('\n  ')}
  for (var k0 = 0u; k0 < K; k0 += TK) {
    for (var e = tid; e < TM * TK; e += ${THREADS}u) {
      As[e] = f16(A[(row0 + e / TK) * K + k0 + e % TK]);
    }
    for (var e = tid; e < TK * TN; e += ${THREADS}u) {
      Bs[e] = f16(B[(k0 + e / TN) * N + col0 + e % TN]);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < TK; kk += ${SK}u) {
      ${mma.join('\n      ')}
    }
    workgroupBarrier();
  }
  ${store.join('\n  ')}
}`;
  const prog = program({
    key: `t2vMatMulF16_${m}_${n}_${k}_${SM}_${SN}_${SK}`,
    inputs: ['A', 'B'],
    outputShape: outShape,
    workgroupSize: THREADS,
    dispatch: [n / TN, m / TM, 1],
    components: [1, 1],
    outputComponent: 1,
    code,
  });
  return backend.runWebGPUProgram(prog, [a, b], 'float32');
}

/**
 * Experimental: route the webgpu backend's MatMul kernels (BatchMatMul, _FusedMatMul with a bias and no
 * activation) through matMulF16 wherever the shapes fit (batch 1, no transposes, tile multiples); the rest keep
 * tfjs's kernels. Returns a function that restores the originals.
 */
export function routeMatMulsToTensorCores(cfg: SubgroupMatrixConfig): () => void {
  const saved: tf.KernelConfig[] = [];
  for (const name of ['BatchMatMul', '_FusedMatMul']) {
    const orig = tf.getKernel(name, 'webgpu');
    if (!orig) continue;
    saved.push(orig);
    tf.unregisterKernel(name, 'webgpu');
    tf.registerKernel({
      kernelName: name, backendName: 'webgpu',
      kernelFunc: (args) => {
        const { inputs, attrs, backend } = args;
        const a = inputs.a!;
        const b = inputs.b!;
        const at = attrs as { transposeA?: boolean; transposeB?: boolean; activation?: string };
        const batchA = a.shape.slice(0, -2).reduce((x, y) => x * y, 1);
        const batchB = b.shape.slice(0, -2).reduce((x, y) => x * y, 1);
        const m = a.shape[a.shape.length - 2];
        const k = a.shape[a.shape.length - 1];
        const n = b.shape[b.shape.length - 1];
        const fits = !at.transposeA && !at.transposeB && batchA === 1 && batchB === 1
          && (at.activation === undefined || at.activation === 'linear') && inputs.preluActivationWeights == null
          && matMulF16Supported(m, n, k);
        if (!fits) return orig.kernelFunc(args);
        const wb = backend as WebGPUBackend;
        const outShape = a.shape.length > 2 ? [...a.shape.slice(0, -1), n] : [m, n];
        const out = matMulF16Info(wb, a, b, cfg, outShape);
        if (!inputs.bias) return out;
        const add = tf.getKernel('Add', 'webgpu')!;
        const y = add.kernelFunc({ inputs: { a: out, b: inputs.bias }, backend, attrs: {} }) as tf.TensorInfo;
        wb.disposeData(out.dataId);
        return y;
      },
    });
  }
  return () => {
    for (const k of saved) {
      tf.unregisterKernel(k.kernelName, 'webgpu');
      tf.registerKernel(k);
    }
  };
}
