import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import type { SubgroupMatrixConfig } from '../dawn.js';
import { program } from './program.js';

const TK = 32;
const PAD = 8; // f16 elements of padding per workgroup-memory row, against bank conflicts of the matrix loads
const BLOCK_M = 32;
const BLOCK_N = 64;
const SG_ROWS = 4;

export function matMulF16StagedSupported(m: number, n: number, k: number): boolean {
  return m % (BLOCK_M * SG_ROWS) === 0 && n % BLOCK_N === 0 && k % TK === 0;
}

/**
 * A stride-1 convolution as an implicit GEMM: A[m, k] is read from the NHWC input x [n, h, w, c] at
 * m = (image, y, x) and k = (ky, kx, channel) with zero padding, so no im2col buffer exists; B is the HWIO filter
 * seen as [kh*kw*c, out]. The output keeps h x w (padTop/padLeft as given, the rest implied).
 */
export interface ConvGeom { n: number; h: number; w: number; c: number; kh: number; kw: number; padTop: number; padLeft: number }

export function convF16Supported(g: ConvGeom, out: number): boolean {
  return g.c % TK === 0 && matMulF16StagedSupported(g.n * g.h * g.w, out, g.kh * g.kw * g.c);
}

/**
 * Experimental tensor-core matmul that reads float32 A [m, k] and B [k, n] directly (no packing pass): tiles of
 * 128 x (64|128) x 32 are read as vec4 into registers one step ahead (so global loads overlap the matrix math),
 * converted to f16 in padded workgroup memory, and each subgroup accumulates a 32 x 64 (or 32 x 32) block in f32 matrices.
 * An optional bias [n] starts the accumulators (loaded from a replicated 16-row tile), so Linear needs no Add.
 */
export function matMulF16StagedInfo(backend: WebGPUBackend, a: tf.TensorInfo, b: tf.TensorInfo,
  bias: tf.TensorInfo | null, cfg: SubgroupMatrixConfig, outShape: number[], conv?: ConvGeom): tf.TensorInfo {
  const m = conv ? conv.n * conv.h * conv.w : a.shape[a.shape.length - 2];
  const k = conv ? conv.kh * conv.kw * conv.c : a.shape[a.shape.length - 1];
  const n = b.shape[b.shape.length - 1];
  if (!matMulF16StagedSupported(m, n, k)) throw new Error(`matMulF16Staged: [${m},${k}]x[${k},${n}] does not fit the tiles`);
  // two subgroup columns always; when N is not a multiple of 128 they take 32 columns each (more subgroups in
  // flight for the UNet's N = 320 layers)
  const sgCols = 2;
  const blockN = n % (2 * BLOCK_N) === 0 ? BLOCK_N : BLOCK_N / 2;
  const TM = BLOCK_M * SG_ROWS;
  const TN = blockN * sgCols;
  const threads = 32 * SG_ROWS * sgCols;
  const AS = TK + PAD;
  const BS = TN + PAD;
  const aVecs = (TM * TK / 4) / threads;
  const bVecs = (TK * TN / 4) / threads;
  const { M: SM, N: SN, K: SK } = cfg;
  const rm = BLOCK_M / SM;
  const rn = blockN / SN;
  const left = `subgroup_matrix_left<f16, ${SK}, ${SM}>`;
  const right = `subgroup_matrix_right<f16, ${SN}, ${SK}>`;
  const res = `subgroup_matrix_result<f32, ${SN}, ${SM}>`;
  // the source is built only when the backend compiles this key (program() takes a function)
  const code = () => {
    const lines = { acc: [] as string[], mma: [] as string[], store: [] as string[] };
    for (let i = 0; i < rm; i++) lines.mma.push(`let a${i} = subgroupMatrixLoad<${left}>(&As, (sgRow + ${i * SM}u) * AS + kk, false, AS);`);
    for (let j = 0; j < rn; j++) lines.mma.push(`let b${j} = subgroupMatrixLoad<${right}>(&Bs, kk * BS + sgCol + ${j * SN}u, false, BS);`);
    for (let i = 0; i < rm; i++) {
      for (let j = 0; j < rn; j++) {
        lines.acc.push(bias
          ? `var acc${i}_${j} = subgroupMatrixLoad<${res}>(&biasTile, sgCol + ${j * SN}u, false, TN);`
          : `var acc${i}_${j} = ${res}();`);
        lines.mma.push(`acc${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${j}, acc${i}_${j});`);
        lines.store.push(`subgroupMatrixStore(&result, (row0 + sgRow + ${i * SM}u) * N + col0 + sgCol + ${j * SN}u, acc${i}_${j}, false, N);`);
      }
    }
    const loadA = (v: number, k0: string) => conv
      ? `{ let e = tid + ${v * threads}u; let mm = row0 + e / ${TK / 4}u; let tap = ${k0} / ${conv.c}u;
        let xx = i32(mm % ${conv.w}u) + i32(tap % ${conv.kw}u) - ${conv.padLeft};
        let yy = i32((mm / ${conv.w}u) % ${conv.h}u) + i32(tap / ${conv.kw}u) - ${conv.padTop};
        var v = vec4<f32>(0.0);
        if (xx >= 0 && xx < ${conv.w} && yy >= 0 && yy < ${conv.h}) {
          v = A[((mm / ${conv.w * conv.h}u * ${conv.h}u + u32(yy)) * ${conv.w}u + u32(xx)) * ${conv.c / 4}u + (${k0} % ${conv.c}u) / 4u + e % ${TK / 4}u];
        }
        ra[${v}] = v; }`
      : `{ let e = tid + ${v * threads}u; ra[${v}] = A[(row0 + e / ${TK / 4}u) * K4 + ${k0} / 4u + e % ${TK / 4}u]; }`;
    const loadRegs = (k0: string) => [
      ...Array.from({ length: aVecs }, (_, v) => loadA(v, k0)),
      ...Array.from({ length: bVecs }, (_, v) => `{ let e = tid + ${v * threads}u; rb[${v}] = B[(${k0} + e / ${TN / 4}u) * N4 + col0 / 4u + e % ${TN / 4}u]; }`),
    ].join('\n    ');
    const storeRegs = [
      ...Array.from({ length: aVecs }, (_, v) => `{ let e = tid + ${v * threads}u; let o = (e / ${TK / 4}u) * AS + (e % ${TK / 4}u) * 4u; let x = ra[${v}]; As[o] = f16(x.x); As[o + 1u] = f16(x.y); As[o + 2u] = f16(x.z); As[o + 3u] = f16(x.w); }`),
      ...Array.from({ length: bVecs }, (_, v) => `{ let e = tid + ${v * threads}u; let o = (e / ${TN / 4}u) * BS + (e % ${TN / 4}u) * 4u; let x = rb[${v}]; Bs[o] = f16(x.x); Bs[o + 1u] = f16(x.y); Bs[o + 2u] = f16(x.z); Bs[o + 3u] = f16(x.w); }`),
    ].join('\n    ');
    return `
  enable f16;
  enable chromium_experimental_subgroup_matrix;
  diagnostic(off, chromium.subgroup_matrix_uniformity);
  const N = ${n}u;
  const K4 = ${k / 4}u;
  const N4 = ${n / 4}u;
  const TN = ${TN}u;
  const AS = ${AS}u;
  const BS = ${BS}u;
  var<workgroup> As : array<f16, ${TM * AS}>;
  var<workgroup> Bs : array<f16, ${TK * BS}>;
  ${bias ? `var<workgroup> biasTile : array<f32, ${SM * TN}>;` : ''}
  fn main() {
    let tid = localIndex;
    let sg = tid / 32u;
    let row0 = workgroupId.y * ${TM}u;
    let col0 = workgroupId.x * TN;
    let sgRow = (sg / ${sgCols}u) * ${BLOCK_M}u;
    let sgCol = (sg % ${sgCols}u) * ${blockN}u;
    ${bias ? `for (var e = tid; e < ${SM}u * TN; e += ${threads}u) { biasTile[e] = Bias[col0 + e % TN]; }
    workgroupBarrier();` : ''}
    ${lines.acc.join('\n  ')}
    var ra : array<vec4<f32>, ${aVecs}>;
    var rb : array<vec4<f32>, ${bVecs}>;
    ${loadRegs('0u')}
    for (var k0 = 0u; k0 < K4 * 4u; k0 += ${TK}u) {
      ${storeRegs}
      workgroupBarrier();
      if (k0 + ${TK}u < K4 * 4u) {
        let k1 = k0 + ${TK}u;
        ${loadRegs('k1')}
      }
      for (var kk = 0u; kk < ${TK}u; kk += ${SK}u) {
        ${lines.mma.join('\n      ')}
      }
      workgroupBarrier();
    }
    ${lines.store.join('\n  ')}
  }`;
  };
  const inputs = bias ? [a, b, bias] : [a, b];
  const prog = program({
    key: `t2vMatMulF16Staged_${m}_${n}_${k}_${SM}_${SN}_${SK}_${blockN}_${bias ? 'b' : ''}_${conv ? Object.values(conv).join('x') : ''}`,
    inputs: bias ? ['A', 'B', 'Bias'] : ['A', 'B'],
    outputShape: outShape,
    workgroupSize: threads,
    dispatch: [n / TN, m / TM, 1],
    components: bias ? [4, 4, 1] : [4, 4],
    outputComponent: 1,
    code,
  });
  return backend.runWebGPUProgram(prog, inputs, 'float32');
}

export function matMulF16Staged(a: tf.Tensor2D, b: tf.Tensor2D, cfg: SubgroupMatrixConfig, bias?: tf.Tensor1D): tf.Tensor2D {
  const info = matMulF16StagedInfo(tf.backend() as WebGPUBackend, a, b, bias ?? null, cfg, [a.shape[0], b.shape[1]]);
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor2D;
}
