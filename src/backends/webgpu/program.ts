import type * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';

/** The most workgroups one dispatch dimension may have (WebGPU's default limit). */
export const MAX_WORKGROUPS = 65535;

/**
 * A WGSL program in tfjs-backend-webgpu's program interface. The backend prepends bindings (`result`, one array per
 * input, `uniforms`) and calls our `main()`; everything shape-specific is baked into the source, so `key` must name
 * every constant the source uses (the backend caches pipelines by key plus input ranks and dtypes only).
 */
export function program(opts: {
  key: string;
  inputs: string[];
  outputShape: number[];
  workgroupSize: number;
  dispatch: [number, number, number];
  /** vec4 components per input and for the output */
  components: number[];
  outputComponent: number;
  /** The WGSL, or a function that makes it: the backend asks only when `key` is not compiled yet, so building the
   * source lazily keeps the per-dispatch CPU cost down (hundreds of kernels a UNet call). */
  code: string | (() => string);
}): WebGPUProgram {
  return {
    shaderKey: opts.key,
    variableNames: opts.inputs,
    variableComponents: opts.components,
    outputComponent: opts.outputComponent,
    outputShape: opts.outputShape,
    workgroupSize: [opts.workgroupSize, 1, 1],
    dispatch: opts.dispatch,
    // a non-empty y makes the backend call `main()` without a flat index: our code reads workgroupId itself
    dispatchLayout: { x: [0], y: [1] },
    // the backend always binds its uniform buffer; a shader that never reads it gets an 'auto' layout without it
    getUserCode: () => (typeof opts.code === 'string' ? opts.code : opts.code()).replace('fn main() {', 'fn main() {\n  _ = uniforms.NAN;'),
  };
}

/** A flat dispatch of `n` workgroups folded into two dimensions; `flatWorkgroup()` in WGSL undoes it. */
export function flatDispatch(n: number): [number, number, number] {
  return n <= MAX_WORKGROUPS ? [n, 1, 1] : [MAX_WORKGROUPS, Math.ceil(n / MAX_WORKGROUPS), 1];
}
export const FLAT_WORKGROUP_WGSL = `
fn flatWorkgroup() -> u32 { return workgroupId.y * numWorkgroups.x + workgroupId.x; }`;

export function run(backend: WebGPUBackend, prog: WebGPUProgram, inputs: tf.TensorInfo[]): tf.TensorInfo {
  return backend.runWebGPUProgram(prog, inputs, 'float32');
}
