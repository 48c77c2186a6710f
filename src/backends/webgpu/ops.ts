import * as tf from '@tensorflow/tfjs';
import type { ExplicitPadding, KeyValueWeights, ProjectedContext, QKVWeights, Weight } from '../../layers/ops.js';
import { PlainOps, plainAttention, valuesOf } from '../../layers/plain-ops.js';
import type { DeviceFacts, SubgroupMatrixConfig } from './device-facts.js';
import { attentionSupported, contextAttentionSupported, packedAttentionSupported } from './attention.js';
import { tensorCoreAttentionSupported, type AttentionTiles } from './attention-tc.js';
import { concatSupported, rowSliceSupported } from './concat.js';
import { gegluSupported } from './geglu.js';
import { groupNormSupported } from './group-norm.js';
import {
  FusedAttention, FusedConcat, FusedContextAttention, FusedGEGLU, FusedRowSlice, FusedGroupNorm, FusedLayerNorm, FusedPackedAttention, TensorCoreAttention,
  TensorCoreConv, TensorCoreGemm,
} from './kernel-names.js';
import { layerNormSupported } from './layer-norm.js';
import type { WebGPUKernel, WebGPUOptions } from './options.js';
import { registerWebGPUKernels } from './register.js';
import { convTakesResidual, pickConfig, planConv, planGemm, type GemmRoute, type GemmShape, type RouteStats, type TileChooser } from './tensor-core-route.js';
import type { GemmProbe } from './matmul-f16-staged.js';

/** Every cross-attention's keys and values of one context from one matmul: layer i's k at offsets[i], its v after. */
class PackedContext implements ProjectedContext {
  constructor(readonly kv: tf.Tensor2D, readonly batch: number, readonly keys: number, readonly offsets: readonly number[]) {}
}

/** What the device offers that WebGPUOps may use (DeviceFacts; wgslBufferView false when absent). */
export type WebGPUDeviceFacts = Pick<DeviceFacts, 'subgroupMatrixConfigs'> & Partial<Pick<DeviceFacts, 'wgslBufferView'>>;

/** Benchmark hooks: a tiling per GEMM shape, and a look at every GEMM the tensor-core route runs. */
export interface WebGPUInstruments {
  tiles?: TileChooser | null;
  onGemm?: ((s: GemmShape) => void) | null;
  /** Tests: run the staged GEMM with emulated subgroup matrices (matMulF16StagedInfo's `emulate`). */
  emulateMatrices?: boolean;
  /** Benchmark timing probe of the staged GEMM (GemmRoute.probe; garbage results). */
  probeGemm?: GemmProbe;
  /** Benchmark experiment: the bytes of the staged GEMM's workgroup-memory stores (GemmRoute.storeBytes). */
  gemmStoreBytes?: 2 | 8 | 16;
  /** Benchmark experiment: the staged GEMM's A prefetch held as halves (GemmRoute.halfRegisters). */
  gemmHalfRegisters?: boolean;
  /** Benchmark experiments and diagnostics of the tensor-core attention kernel (attention-tc.ts). */
  attention?: Pick<AttentionTiles, 'keyBlock' | 'rescaleMargin' | 'rescaleAlways' | 'vectorScores'>;
  /** Benchmark experiments: the short-sequence attention's lanes per query (FusedAttentionAttrs.lanes; 0: a thread each). */
  shortAttentionLanes?: number;
  /** Benchmark experiments: false runs GroupNorm's per-group statistics pass (FusedGroupNormAttrs.rowStats). */
  groupNormRowStats?: boolean;
  /** Benchmark experiments: LayerNorm's lanes per row (0: a workgroup per row; layer-norm.ts). */
  layerNormLanes?: number;
}

function run<T extends tf.Tensor>(kernel: string, inputs: Record<string, tf.Tensor | null>, attrs: object): T {
  const given: tf.NamedTensorMap = {};
  for (const [k, t] of Object.entries(inputs)) if (t) given[k] = t;
  return tf.engine().runKernel(kernel, given, attrs as unknown as tf.NamedAttrMap) as T;
}

const isVector = (t: tf.Tensor | null, n: number) => t === null || (t.rank === 1 && t.shape[0] === n);
const halfOf = (w: tf.Tensor | Weight): tf.Tensor | null => (w instanceof tf.Tensor ? null : w.half);

/**
 * The networks' computations on webgpu: the fused WGSL kernels where they take the shapes (flash attention, GroupNorm
 * with SiLU, LayerNorm, GEGLU), self-attention from one to_q|to_k|to_v matmul, every cross-attention's keys and values
 * from one matmul per UNet call, and GEMMs and convolutions on tensor cores (f16 inputs, f32 accumulation, the
 * residual add in the accumulators) where the device has subgroup matrices. Everything else is PlainOps. Every
 * choice comes from the WebGPUOptions it is made with.
 */
export class WebGPUOps extends PlainOps {
  override readonly name = 'webgpu';
  /** The tensor-core configuration in use, or null (why: tensorCoresOff). */
  readonly tensorCores: SubgroupMatrixConfig | null;
  readonly tensorCoresOff: string | undefined;
  /** GEMMs and convolutions the tensor-core route took, and those it left to tfjs's kernels. */
  readonly tensorCoreStats: RouteStats = { routed: 0, fallback: 0 };
  private readonly route: GemmRoute | null;
  private readonly kernels: ReadonlySet<WebGPUKernel>;
  private readonly attentionTiles: WebGPUInstruments['attention'];

  constructor(readonly options: Readonly<WebGPUOptions>, device: WebGPUDeviceFacts, private readonly instruments: WebGPUInstruments = {}) {
    super();
    registerWebGPUKernels();
    this.kernels = new Set(options.kernels);
    // vec4 scores where WGSL has buffer views: H200 run 62, 24x1024x576's guided step 569.6 -> 446.2 ms of spatial attention
    this.attentionTiles = { vectorScores: device.wgslBufferView ?? false, ...instruments.attention };
    const cfg = options.tensorCores ? pickConfig(device.subgroupMatrixConfigs) : null;
    this.tensorCores = cfg;
    this.tensorCoresOff = cfg ? undefined : !options.tensorCores ? 'switched off'
      : 'the device has no f16 subgroup-matrix configuration (needs shader-f16 and chromium-experimental-subgroup-matrix)';
    this.route = cfg ? {
      cfg, splitK: options.splitK, tiles: instruments.tiles ?? null, onGemm: instruments.onGemm ?? null, stats: this.tensorCoreStats,
      emulate: instruments.emulateMatrices ?? false, probe: instruments.probeGemm,
      storeBytes: instruments.gemmStoreBytes, halfRegisters: instruments.gemmHalfRegisters,
    } : null;
  }

  /**
   * On the tensor-core route a float16-resident weight (Weight.half) is read as it is (the GEMM rounds B to f16 in
   * any case, so the numbers are the same as from its float32 values); elsewhere its values are unpacked for the use.
   */
  override linear(x: tf.Tensor2D, w: tf.Tensor2D | Weight, bias: tf.Tensor | null = null, residual: tf.Tensor2D | null = null): tf.Tensor2D {
    const [m, k] = x.shape;
    const n = w.shape[1];
    return tf.tidy((): tf.Tensor2D => {
      if (this.route && isVector(bias, n)) {
        const half = halfOf(w);
        // B is unpacked only where a GEMM runs without its halves
        const b = () => half ?? valuesOf(w);
        const attrs = { route: this.route, half: half !== null, n };
        const fused = residual ? planGemm(m, n, k, residual.size) : null;
        if (fused) return run<tf.Tensor2D>(TensorCoreGemm, { a: x, b: b(), bias, residual }, { ...attrs, plan: fused });
        const plan = planGemm(m, n, k, null);
        if (plan) {
          const y = run<tf.Tensor2D>(TensorCoreGemm, { a: x, b: b(), bias }, { ...attrs, plan });
          return residual ? tf.add<tf.Tensor2D>(y, residual) : y;
        }
      }
      if (this.route) this.route.stats.fallback++;
      const wt = valuesOf(w);
      const y: tf.Tensor2D = bias ? tf.fused.matMul({ a: x, b: wt, bias }) as tf.Tensor2D : tf.matMul(x, wt);
      return residual ? tf.add<tf.Tensor2D>(y, residual) : y;
    });
  }

  override conv2d(x: tf.Tensor4D, filter: tf.Tensor4D | Weight, strides: number, pad: 'same' | ExplicitPadding, bias: tf.Tensor | null = null,
    residual: tf.Tensor4D | null = null): tf.Tensor4D {
    return tf.tidy(() => {
      const geom = this.route && isVector(bias, filter.shape[3]) ? planConv(x.shape, filter.shape, strides, pad) : null;
      if (geom) {
        const half = halfOf(filter);
        const fused = residual && convTakesResidual(geom) ? residual : null;
        const y = run<tf.Tensor4D>(TensorCoreConv, { x, filter: half ?? valuesOf(filter), bias, residual: fused },
          { route: this.route, geom, half: half !== null, n: filter.shape[3] });
        return residual && !fused ? tf.add(y, residual) : y;
      }
      if (this.route) this.route.stats.fallback++;
      const f = valuesOf(filter);
      const y = bias ? tf.fused.conv2d({ x, filter: f, strides, pad, bias }) : tf.conv2d(x, f, strides, pad);
      return residual ? tf.add(y, residual) : y;
    });
  }

  override groupNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps: number, silu: boolean): tf.Tensor {
    if (this.kernels.has('groupnorm') && groupNormSupported(x, groups)) return run(FusedGroupNorm, { x, gamma, beta }, { groups, eps, silu, rowStats: this.instruments.groupNormRowStats });
    return super.groupNorm(x, gamma, beta, groups, eps, silu);
  }

  override layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
    if (this.kernels.has('layernorm') && layerNormSupported(x)) return run(FusedLayerNorm, { x, gamma, beta }, { eps, lanes: this.instruments.layerNormLanes });
    return super.layerNorm(x, gamma, beta, eps);
  }

  override geglu(h: tf.Tensor): tf.Tensor {
    if (this.kernels.has('geglu') && gegluSupported(h)) return run(FusedGEGLU, { h }, {});
    return super.geglu(h);
  }

  override concat(xs: tf.Tensor[], axis: number): tf.Tensor {
    if (this.kernels.has('concat') && concatSupported(xs, axis)) {
      return run(FusedConcat, Object.fromEntries(xs.map((x, i) => [`x${i}`, x])), { axis, count: xs.length });
    }
    return super.concat(xs, axis);
  }

  override rowSlice(x: tf.Tensor2D, start: number, size: number): tf.Tensor2D {
    if (this.kernels.has('row-slice') && rowSliceSupported(x, start, size)) return run(FusedRowSlice, { x }, { start, size });
    return super.rowSlice(x, start, size);
  }

  override attention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, heads: number, causal = false): tf.Tensor3D {
    if (this.kernels.has('attention') && attentionSupported(q, k, heads)) return run(FusedAttention, { q, k, v }, { heads, causal, lanes: this.instruments.shortAttentionLanes });
    return plainAttention(q, k, v, heads, causal, this.batchMatMul);
  }

  override selfAttention<T extends tf.Tensor3D | tf.Tensor4D>(x: T, w: QKVWeights, heads: number): T {
    const shape = [...x.shape.slice(0, -1), 3 * w.inner];
    const fits = this.kernels.has('packed-attention') && packedAttentionSupported({ shape, dtype: 'float32' } as tf.TensorInfo, heads);
    const packed = fits ? w.packed() : null;
    if (!packed) return super.selfAttention(x, w, heads);
    return tf.tidy(() => {
      const qkv = this.linear(x.reshape([-1, x.shape[x.rank - 1]]) as tf.Tensor2D, packed).reshape(shape);
      if (this.route && this.kernels.has('tensor-core-attention') && tensorCoreAttentionSupported(qkv, heads, this.route.cfg)) {
        return run<T>(TensorCoreAttention, { qkv }, { ...this.attentionTiles, heads, route: this.route,
          rowTiles: this.options.attentionRowTiles ?? undefined, onePass: this.options.attentionOnePass });
      }
      return run<T>(FusedPackedAttention, { qkv }, { heads, causal: false, lanes: this.instruments.shortAttentionLanes });
    });
  }

  override projectContext(context: tf.Tensor3D, layers: readonly KeyValueWeights[], packed: () => tf.Tensor2D | Weight | null): ProjectedContext {
    const w = this.kernels.has('context-attention') && layers.length > 0 ? packed() : null;
    if (!w) return super.projectContext(context, layers);
    const [b, keys, width] = context.shape;
    const offsets: number[] = [];
    let at = 0;
    for (const l of layers) {
      offsets.push(at);
      at += 2 * l.k.shape[1];
    }
    return new PackedContext(this.linear(context.reshape([b * keys, width]) as tf.Tensor2D, w), b, keys, offsets);
  }

  override contextAttention(q: tf.Tensor3D, context: ProjectedContext, layer: number, heads: number): tf.Tensor3D {
    if (!(context instanceof PackedContext)) return super.contextAttention(q, context, layer, heads);
    const attrs = { heads, keys: context.keys, offset: context.offsets[layer] };
    if (contextAttentionSupported(q, context.kv, attrs)) return run(FusedContextAttention, { q, kv: context.kv }, attrs);
    return tf.tidy(() => {
      const [b, , inner] = q.shape;
      const part = (at: number) => context.kv.slice([0, at], [b * context.keys, inner]).reshape([b, context.keys, inner]) as tf.Tensor3D;
      return this.attention(q, part(attrs.offset), part(attrs.offset + inner), heads);
    });
  }

  /** tf.matMul, or the tensor-core GEMM where both operands have batch 1, no transposes and the shapes fit. */
  private readonly batchMatMul = (a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor => {
    const one = (t: tf.Tensor) => t.shape.slice(0, -2).every((d) => d === 1);
    if (!this.route || transposeA || transposeB || !one(a) || !one(b)) return tf.matMul(a, b, transposeA, transposeB);
    const [m, k] = a.shape.slice(-2);
    const n = b.shape[b.rank - 1];
    return tf.tidy(() => this.linear(a.reshape([m, k]), b.reshape([k, n]) as tf.Tensor2D).reshape([...a.shape.slice(0, -1), n]));
  };
}
