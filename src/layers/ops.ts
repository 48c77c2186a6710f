import type * as tf from '@tensorflow/tfjs';

/** Explicit NHWC padding as tfjs takes it: [[0, 0], [top, bottom], [left, right], [0, 0]]. */
export type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];

/**
 * A GEMM's weight operand as a layer holds it (Param, or a view or concatenation of Params): `tensor` gives its
 * float32 values, and `half`, for a float16-resident weight, the same values as float16 pairs packed two to a float32
 * element ([n/2], row-major in `shape`), which ops that read float16 take directly instead of `tensor` (an unpacked
 * copy per use, freed by the caller's tf.tidy). Ops take a plain tensor wherever they take a Weight.
 */
export interface Weight {
  readonly kind: 'weight';
  /** tfjs layout ([in, out], HWIO). */
  readonly shape: readonly number[];
  readonly tensor: tf.Tensor;
  readonly half: tf.Tensor | null;
}

/** to_q, to_k and to_v of a self-attention ([in, inner] each), and the three side by side when the weights allow it. */
export interface QKVWeights {
  /** Output width of each (heads * head dim). */
  inner: number;
  q: tf.Tensor2D | Weight;
  k: tf.Tensor2D | Weight;
  v: tf.Tensor2D | Weight;
  /** [in, 3*inner], made once by the layer and kept with its weights; null when the weights are not resident. */
  packed(): tf.Tensor2D | Weight | null;
}

/** One cross-attention's to_k and to_v ([contextDim, inner] each). */
export interface KeyValueWeights {
  k: tf.Tensor2D | Weight;
  v: tf.Tensor2D | Weight;
}

/**
 * The keys and values that several cross-attentions read from one context (the UNet's sixteen attn2 layers):
 * made by `Ops.projectContext`, read by `Ops.contextAttention` with the layer's index. What it holds is the ops'
 * business (the context as given, or every layer's keys and values from one matmul).
 */
export interface ProjectedContext {
  readonly batch: number;
  readonly keys: number;
}

/**
 * The computations the networks are written in. A layer's forward is the upstream computation over these; how each
 * runs is the implementation's choice: `plainOps` (src/layers/plain-ops.ts) in tfjs ops, the reference that cpu,
 * wasm and tensorflow run, or WebGPUOps (src/backends/webgpu/ops.ts) with fused WGSL kernels and tensor cores.
 * A network runs with the ops given to `Module.useOps` (plainOps until then).
 */
export interface Ops {
  readonly name: string;
  /** x [m, k] w [k, n] (+ bias [n]) (+ residual [m, n]). */
  linear(x: tf.Tensor2D, w: tf.Tensor2D | Weight, bias?: tf.Tensor | null, residual?: tf.Tensor2D | null): tf.Tensor2D;
  /** NHWC conv2d of x with filter [kh, kw, in, out] (+ bias [out]) (+ residual, the output's shape). */
  conv2d(x: tf.Tensor4D, filter: tf.Tensor4D | Weight, strides: number, pad: 'same' | ExplicitPadding, bias?: tf.Tensor | null,
    residual?: tf.Tensor4D | null): tf.Tensor4D;
  /** GroupNorm on channels-last x [N, ..., C] (statistics per sample and group), then SiLU when `silu`. */
  groupNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, groups: number, eps: number, silu: boolean): tf.Tensor;
  /** LayerNorm over the last dimension. */
  layerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor;
  /** h [..., 2*inner] -> h[..., :inner] * gelu(h[..., inner:]) (upstream GEGLU after its projection). */
  geglu(h: tf.Tensor): tf.Tensor;
  /** tf.concat(xs, axis), axis counted from 0 (the UNet's skip connections, FeedForward's row chunks). */
  concat(xs: tf.Tensor[], axis: number): tf.Tensor;
  /** Rows start .. start + size of x [rows, width]. */
  rowSlice(x: tf.Tensor2D, start: number, size: number): tf.Tensor2D;
  /**
   * Multi-head scaled dot-product attention: q [B, Nq, heads*d], k and v [B, Nk, heads*d] -> [B, Nq, heads*d], scale
   * d^-0.5; `causal` masks keys after the query's position.
   */
  attention(q: tf.Tensor3D, k: tf.Tensor3D, v: tf.Tensor3D, heads: number, causal?: boolean): tf.Tensor3D;
  /**
   * Self-attention with its projections, before the output projection: x [B, N, C] -> [B, N, inner]; or x
   * [B, N, S, C] -> [B, N, S, inner], attention over N in each of the S columns (the frames of each pixel).
   */
  selfAttention<T extends tf.Tensor3D | tf.Tensor4D>(x: T, w: QKVWeights, heads: number): T;
  /**
   * The keys and values of `context` [b, keys, width] for each of `layers`; `packed` gives their to_k|to_v weights
   * side by side ([width, 2*inner per layer], layer i's k then v), made once by the caller, or null.
   */
  projectContext(context: tf.Tensor3D, layers: readonly KeyValueWeights[], packed: () => tf.Tensor2D | Weight | null): ProjectedContext;
  /** q [b, Nq, heads*d] attends to layer `layer`'s keys and values of batch item b in `context`. */
  contextAttention(q: tf.Tensor3D, context: ProjectedContext, layer: number, heads: number): tf.Tensor3D;
}
