import * as tf from '@tensorflow/tfjs';
import { fromFloat16 } from '../io/float16.js';
import type { Ops, Weight } from './ops.js';
import { plainOps } from './plain-ops.js';
import { inTidy } from '../tfjs-internals.js';

/**
 * How a PyTorch tensor becomes a tfjs tensor. The converter transforms each weight by its role, so no
 * per-key table is needed; the loader checks that the stored shape is `tfShape(role, torchShape)`.
 *   linear          [out, in]          -> [in, out]
 *   conv2d          [O, I, kh, kw]     -> [kh, kw, I, O]   (HWIO)
 *   conv1d          [O, I, k]          -> [k, I, O]
 *   conv3d_temporal [O, I, kt, 1, 1]   -> [kt, 1, I, O]    (a 2-D kernel over (frames, pixels))
 *   plain           unchanged (biases, norm scales, embeddings)
 */
export type ParamRole = 'linear' | 'conv2d' | 'conv1d' | 'conv3d_temporal' | 'plain';

export function tfShape(role: ParamRole, torchShape: readonly number[]): number[] {
  const s = torchShape;
  switch (role) {
    case 'linear': return [s[1], s[0]];
    case 'conv2d': return [s[2], s[3], s[1], s[0]];
    case 'conv1d': return [s[2], s[1], s[0]];
    case 'conv3d_temporal': return [s[2], s[3] * s[4], s[1], s[0]];
    case 'plain': return [...s];
  }
}

/** The permutation that takes a tensor in PyTorch layout to tfjs layout (applied after any reshape). */
export function tfPermutation(role: ParamRole, rank: number): number[] {
  switch (role) {
    case 'linear': return [1, 0];
    case 'conv2d': return [2, 3, 1, 0];
    case 'conv1d': return [2, 1, 0];
    case 'conv3d_temporal': return [2, 3, 4, 1, 0];
    case 'plain': return Array.from({ length: rank }, (_, i) => i);
  }
}

/** A weight's values in host memory, tfjs layout: float32, or float16 bits (the converted folder's storage). */
export type HostWeight = Float32Array | Uint16Array;

/** Packed float16 pairs ([n/2] float32 bit patterns) -> a float32 tensor of `shape`, inside the caller's tf.tidy. */
export type UnpackHalf = (packed: tf.Tensor, shape: number[]) => tf.Tensor;

/**
 * A weight declared by a module: its PyTorch shape and role; the tensor arrives when weights are loaded. A streamed
 * weight (`host`) has no resident tensor: each use uploads it inside the caller's tf.tidy, which frees it again.
 */
export class Param implements Weight {
  readonly kind = 'weight';
  value: tf.Tensor | null = null;
  host: HostWeight | null = null;
  /**
   * A float16-resident weight: its half floats packed two to a float32 element ([n/2]) on the device; each use
   * unpacks a float32 copy inside the caller's tf.tidy (webgpu's UnpackHalf kernel).
   */
  half: tf.Tensor | null = null;
  /** How `half` becomes float32 for one use (given by the loader with the half weights). */
  unpack: UnpackHalf | null = null;
  /**
   * Streamed float16 weights decode into one shared scratch array: only where a new tensor copies its values at once
   * (wasm copies them into its heap; the cpu backend would keep the array itself). Set by streamWeights.
   */
  reuseScratch = false;
  constructor(readonly torchShape: readonly number[], readonly role: ParamRole) {}

  get tfShape(): number[] { return tfShape(this.role, this.torchShape); }
  get shape(): number[] { return this.tfShape; }

  /** This weight seen as `shape` (the same values in the same order: a 1x1 kernel as a matrix, say). */
  as(shape: readonly number[]): Weight {
    const p = this;
    return { kind: 'weight', shape, get tensor() { return p.tensor.reshape([...shape]); }, half: p.half };
  }

  get tensor(): tf.Tensor {
    if (this.value !== null) return this.value;
    if (this.half !== null) {
      if (!inTidy()) throw new Error('a float16-resident weight was used outside tf.tidy, where nothing would free it');
      if (this.unpack === null) throw new Error('a float16-resident weight has no unpack function');
      return this.unpack(this.half, this.tfShape);
    }
    if (this.host === null) throw new Error('weights are not loaded');
    if (!inTidy()) throw new Error('a streamed weight was used outside tf.tidy, where nothing would free it');
    if (!(this.host instanceof Uint16Array)) return tf.tensor(this.host, this.tfShape, 'float32');
    const n = this.host.length;
    const values = this.reuseScratch ? scratch(n) : new Float32Array(n);
    return tf.tensor(fromFloat16(this.host, values), this.tfShape, 'float32');
  }
}

/**
 * Weights side by side along their last axis (to_q|to_k|to_v, say), made by `concat` from tensors it is given:
 * the resident float32 values, or, when every part is float16-resident, their packed halves (each part's last axis
 * even, so the pairs never straddle two parts). Null when the parts are neither (streamed).
 */
export function concatWeights(parts: readonly Param[], concat: (name: 'float32' | 'half', from: tf.Tensor[],
  make: () => tf.Tensor) => tf.Tensor): tf.Tensor2D | Weight | null {
  if (parts.every((p) => p.value !== null)) {
    const from = parts.map((p) => p.value!);
    return concat('float32', from, () => tf.concat(from, -1)) as tf.Tensor2D;
  }
  const unpack = parts[0].unpack;
  if (!parts.every((p) => p.half !== null && p.tfShape.length === 2 && p.tfShape[1] % 2 === 0) || unpack === null) return null;
  const rows = parts[0].tfShape[0];
  if (parts.some((p) => p.tfShape[0] !== rows)) throw new Error('concatWeights: the parts have different row counts');
  const cols = parts.reduce((a, p) => a + p.tfShape[1], 0);
  const from = parts.map((p) => p.half!);
  // the packed pairs are copied as float32 bit patterns (a concat moves values without arithmetic)
  const half = concat('half', from, () => tf.concat(parts.map((p) => p.half!.reshape([rows, p.tfShape[1] / 2])), 1).reshape([rows * cols / 2]));
  const shape = [rows, cols];
  return { kind: 'weight', shape, get tensor() { return unpack(half, shape); }, half };
}

let scratchValues: Float32Array<ArrayBuffer> = new Float32Array(0);
function scratch(n: number): Float32Array<ArrayBuffer> {
  if (scratchValues.length < n) scratchValues = new Float32Array(n);
  return scratchValues.subarray(0, n);
}

/**
 * Base of every network piece: a tfjs Layer whose weights and sub-modules carry their upstream state_dict names,
 * so the full key of a weight is the attribute path (`input_blocks.1.0.in_layers.2.weight`), as in tinygrad.
 * Weights are declared with shapes only; nothing is allocated until `loadWeights`.
 */
export abstract class Module extends tf.layers.Layer {
  private readonly ownParams = new Map<string, Param>();
  private readonly subModules = new Map<string, Module>();
  /** The computations this module's forward runs on (src/layers/ops.ts); set for a whole network by useOps. */
  protected ops: Ops = plainOps;

  constructor() {
    super({ trainable: false });
  }

  /** Declare a weight under its upstream local name (`weight`, `bias`, `in_proj_weight`). */
  protected param(name: string, torchShape: readonly number[], role: ParamRole = 'plain'): Param {
    const p = new Param(torchShape, role);
    this.ownParams.set(name, p);
    return p;
  }

  /**
   * A tensor computed once from this module's weights and kept (to_q|to_k|to_v concatenated, say): rebuilt when
   * those weights are replaced, freed with them by `disposeWeights`.
   */
  protected derived(name: string, from: tf.Tensor[], make: () => tf.Tensor): tf.Tensor {
    const c = this.derivedTensors.get(name);
    if (c && c.from.length === from.length && c.from.every((t, i) => t === from[i] && !t.isDisposed)) return c.t;
    c?.t.dispose();
    const t = tf.keep(tf.tidy(make));
    this.derivedTensors.set(name, { from, t });
    return t;
  }

  private readonly derivedTensors = new Map<string, { from: tf.Tensor[]; t: tf.Tensor }>();

  /** This module and every module under it. */
  *modules(): Generator<Module> {
    yield this;
    for (const m of this.subModules.values()) yield* m.modules();
  }

  /** Register a sub-module under its upstream local name; dots are allowed (`in_layers.2`). */
  protected child<M extends Module>(name: string, m: M): M {
    this.subModules.set(name, m);
    return m;
  }

  /** Runs this module and every module under it on `ops` from now on (WebGPUOps on webgpu, say). */
  useOps(ops: Ops): this {
    for (const m of this.modules()) m.ops = ops;
    return this;
  }


  /** Every weight of this module and its children, in declaration order, with full upstream keys. */
  *namedParams(prefix = ''): Generator<[string, Param]> {
    for (const [n, p] of this.ownParams) yield [prefix + n, p];
    for (const [n, m] of this.subModules) yield* m.namedParams(`${prefix}${n}.`);
  }

  /** Keys and declared shapes, without loading anything (the converter uses this to validate a checkpoint). */
  paramSpecs(): Map<string, Param> {
    return new Map(this.namedParams());
  }

  override countParams(): number {
    let n = 0;
    for (const [, p] of this.namedParams()) n += p.torchShape.reduce((a, b) => a * b, 1);
    return n;
  }

  /**
   * Set every weight from `get(key)`, a tensor already in tfjs layout. Throws naming the first missing key or
   * wrong shape. Tensors are kept (not copied); `disposeWeights` frees them.
   */
  loadWeights(get: (key: string) => tf.Tensor | undefined, getHalf?: (key: string) => tf.Tensor | undefined,
    unpack: UnpackHalf | null = null): void {
    for (const [key, p] of this.namedParams()) {
      const h = getHalf?.(key);
      if (h !== undefined) {
        if (unpack === null) throw new Error(`weight ${key} is float16-resident but no unpack function was given`);
        const n = p.torchShape.reduce((a, b) => a * b, 1);
        if (2 * h.size !== n) throw new Error(`weight ${key} has ${2 * h.size} half values, expected ${n} ([${p.tfShape}])`);
        p.half = h;
        p.unpack = unpack;
        continue;
      }
      const t = get(key);
      if (t === undefined) throw new Error(`missing weight ${key}`);
      const want = p.tfShape;
      if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
        throw new Error(`weight ${key} has shape [${t.shape}], expected [${want}]`);
      }
      p.value = t;
    }
  }

  /**
   * Keep every weight in host memory, from `get(key)` in tfjs layout, and upload it on each use (Param.tensor): for a
   * backend whose memory cannot hold the model (wasm's heap stops at 4 GB; the released model is 7.3 GB in float32).
   * Every forward must then run inside tf.tidy, as all of ours do.
   */
  streamWeights(get: (key: string) => HostWeight | undefined, opts: { reuseScratch?: boolean } = {}): void {
    for (const [key, p] of this.namedParams()) {
      const h = get(key);
      if (h === undefined) throw new Error(`missing weight ${key}`);
      const n = p.torchShape.reduce((a, b) => a * b, 1);
      if (h.length !== n) throw new Error(`weight ${key} has ${h.length} values, expected ${n} ([${p.tfShape}])`);
      p.host = h;
      p.reuseScratch = opts.reuseScratch ?? false;
    }
  }

  /** True when the weights are streamed from host memory (streamWeights). */
  get streamed(): boolean {
    for (const [, p] of this.namedParams()) return p.host !== null;
    return false;
  }

  /** Frees every loaded weight (resident tensors or host copies); returns how many were freed. */
  override disposeWeights(): number {
    let n = 0;
    for (const [, p] of this.namedParams()) {
      if (p.value !== null || p.host !== null || p.half !== null) n++;
      p.value?.dispose();
      p.half?.dispose();
      p.value = null;
      p.host = null;
      p.half = null;
      p.unpack = null;
    }
    for (const m of this.modules()) {
      for (const c of m.derivedTensors.values()) c.t.dispose();
      m.derivedTensors.clear();
    }
    return n;
  }

  // tf.layers.Layer plumbing: modules are called through their typed `forward` methods; `call` serves the
  // single-tensor case so a module can also be used where tfjs expects a Layer.
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor | tf.Tensor[] {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    return (this as unknown as { forward(x: tf.Tensor): tf.Tensor }).forward(x);
  }

  override getClassName(): string {
    return this.constructor.name;
  }
}
