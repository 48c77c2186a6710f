import * as tf from '@tensorflow/tfjs';
import type { WebGPUBackend } from '@tensorflow/tfjs-backend-webgpu';
import { gpuMemory } from './webgpu.js';

/** Waits until the GPU has finished everything queued so far (a no-op on CPU backends). */
export async function sync(): Promise<void> {
  if (tf.getBackend() === 'webgpu') {
    // the backend keeps an open compute pass and encoder between ops: close and submit them before waiting
    const b = tf.backend() as unknown as { endComputePassEncoder(): void; commandEncoder: unknown; submitQueue(): void;
      device: WebGPUBackend['device'] };
    if (b.commandEncoder) {
      b.endComputePassEncoder();
      b.submitQueue();
    }
    await b.device.queue.onSubmittedWorkDone();
  }
}

/** One dispatch of a timed kernel: tfjs's program class name (ours are plain objects: "Object") and its GPU time. */
export interface ProgramTime { name: string; ms: number }

/**
 * One kernel of a profiled call. `ms` is what tfjs reports for it: on webgpu the sum of its dispatches' timestamp
 * intervals (every program it ran, a split-K GEMM's sum and a padded GEMM's Slice included), on cpu and wasm the
 * kernel's CPU time. `programs`: on webgpu each dispatch in order (none for a kernel that dispatches nothing, such as
 * Reshape); absent where the backend gives no breakdown.
 */
export interface TimedKernel { name: string; inputShapes: number[][]; outputShapes: number[][]; ms: number; programs?: ProgramTime[] }

/** tfjs-backend-webgpu's per-dispatch breakdown of a timed kernel: `Name: ms, Name: ms` (empty: no dispatch). */
export function parsePrograms(extraInfo: unknown): ProgramTime[] | undefined {
  if (typeof extraInfo !== 'string') return undefined;
  if (extraInfo.trim() === '') return [];
  const out: ProgramTime[] = [];
  for (const part of extraInfo.split(', ')) {
    const at = part.lastIndexOf(': ');
    const ms = Number(part.slice(at + 2));
    if (at < 0 || !Number.isFinite(ms)) return undefined;
    out.push({ name: part.slice(0, at), ms });
  }
  return out;
}

/**
 * The kernels one call of `fn` ran, with their GPU times (timestamp queries through tf.profile; untimed ones left out).
 * tf.profile also lists the scopes of custom-gradient ops (`fusedConv2d__op`, ...) around their kernels: left out too
 * (on webgpu they time nothing of their own, on cpu their kernels' time again).
 */
export async function timedKernels(fn: () => tf.Tensor): Promise<TimedKernel[]> {
  const perDispatch = tf.getBackend() === 'webgpu';
  const prof = await tf.profile(() => fn());
  tf.dispose(prof.result as tf.Tensor);
  const out: TimedKernel[] = [];
  for (const k of prof.kernels) {
    const ms = await (k.kernelTimeMs as unknown as Promise<number | { error: string }>);
    if (typeof ms !== 'number' || k.name.endsWith('__op')) continue;
    const programs = perDispatch ? parsePrograms(await (k.extraInfo as unknown as Promise<unknown>)) : undefined;
    out.push({ name: k.name, inputShapes: k.inputShapes as number[][], outputShapes: k.outputShapes as number[][], ms, ...(programs ? { programs } : {}) });
  }
  return out;
}

/** GPU milliseconds per kernel name. */
export function sumByName(kernels: { name: string; ms: number }[]): Record<string, number> {
  const byName: Record<string, number> = {};
  for (const k of kernels) byName[k.name] = (byName[k.name] ?? 0) + k.ms;
  return byName;
}

/** Median time until `fn` returns (its dispatches encoded and submitted, not finished), each run synchronized around. */
export async function encodeMs(fn: () => tf.Tensor, runs = 5): Promise<number> {
  const t: number[] = [];
  await sync();
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const y = fn();
    t.push(performance.now() - t0);
    await sync();
    y.dispose();
  }
  return median(t);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Wall times of `fn` in ms, each run synchronized, after `warmup` runs (the first compiles the shaders).
 * `fn` returns its output tensors, which are disposed after each run.
 */
export async function timeRuns(fn: () => tf.Tensor | tf.Tensor[], runs = 10, warmup = 2): Promise<number[]> {
  const once = async () => {
    const t0 = performance.now();
    const out = fn();
    await sync();
    const ms = performance.now() - t0;
    tf.dispose(out);
    return ms;
  };
  for (let i = 0; i < warmup; i++) await once();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await once());
  return times;
}

/** The median of timeRuns. */
export async function timeIt(fn: () => tf.Tensor | tf.Tensor[], runs = 10, warmup = 2): Promise<number> {
  return median(await timeRuns(fn, runs, warmup));
}

/**
 * Bytes of the webgpu backend's GPU buffers: in use now and at the peak since resetGPUMemoryPeak (or the backend's
 * start), allocated (in use + pooled free buffers) now and at its peak; zeros on other backends. The peaks are null
 * where tfjs's own pool runs (src/backends/gpu-memory.ts).
 */
export function gpuBytes(): { inUse: number; peakInUse: number | null; allocated: number; peakAllocated: number | null } {
  const m = tf.getBackend() === 'webgpu' ? gpuMemory() : null;
  return m ? { inUse: m.inUse, peakInUse: m.peakInUse, allocated: m.allocated, peakAllocated: m.peakAllocated }
    : { inUse: 0, peakInUse: 0, allocated: 0, peakAllocated: 0 };
}

// the parity measure, as the tests compute it
export { relMaxError } from '../../test/helpers.js';
