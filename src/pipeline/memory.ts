import * as tf from '@tensorflow/tfjs';
import type { UNetConfig } from '../layers/unet/config.js';
import type { VAEConfig } from '../layers/vae/config.js';
import { hostMemoryBytes, largestHostArray } from './host-memory.js';

/**
 * An up-front estimate of what one generation needs beside the weights, from the network configs and the requested
 * size, so a size that cannot fit is refused in a second with the numbers, instead of growing memory for minutes.
 * It counts float32 activations the way the networks make them: the UNet's skip tensors plus its largest working
 * set (a ResBlock's four full-size tensors, or an attention's score matrix), and the VAE decoder's largest level for
 * one decode chunk. It is a lower bound of the real peak (tfjs keeps some temporaries longer).
 */
export interface MemoryEstimate {
  /** Peak bytes of the UNet call (all levels' skips plus the largest working set). */
  unet: number;
  /** Peak bytes of one VAE decode call of `decodeChunk` frames. */
  vae: number;
  /** The largest single tensor, in bytes (attention scores, usually). */
  largestTensor: number;
  /** The largest tensor that is not an attention score matrix (fused attention kernels never make those). */
  largestActivation: number;
  /** max(unet, vae) plus the latents. */
  peak: number;
}

export interface MemorySettings {
  frames: number;
  height: number;
  width: number;
  /** UNet batch: 2 with batched guidance, else 1. */
  batch: number;
  decodeChunk: number;
}

const F32 = 4;

export function estimateMemory(unet: UNetConfig, vae: VAEConfig, s: MemorySettings): MemoryEstimate {
  const b = s.batch;
  const f = s.frames;
  const lh = s.height / 8;
  const lw = s.width / 8;
  let largest = 0;
  let largestActivation = 0;
  const tensor = (elements: number, scores = false): number => {
    const bytes = elements * F32;
    largest = Math.max(largest, bytes);
    if (!scores) largestActivation = Math.max(largestActivation, bytes);
    return bytes;
  };
  let skips = 0;
  let working = 0;
  const attn = new Set(unet.attnScales.map((x) => Math.round(1 / x)));
  for (const [l, mult] of unet.dimMult.entries()) {
    const hw = Math.ceil(lh / 2 ** l) * Math.ceil(lw / 2 ** l);
    const ch = unet.dim * mult;
    const act = tensor(b * f * hw * ch);
    skips += (unet.numResBlocks + 1) * act;
    working = Math.max(working, 4 * act + tensor(b * f * hw * 2 * ch)); // a decoder ResBlock on [x, skip]
    const heads = Math.max(1, Math.round(ch / unet.headDim));
    if (attn.has(2 ** l)) working = Math.max(working, 3 * act + 2 * tensor(b * f * heads * hw * hw, true));
    if (unet.temporalAttention) working = Math.max(working, 3 * act + 2 * tensor(b * hw * heads * f * f, true));
  }
  const unetPeak = skips + working;
  const n = Math.min(s.decodeChunk, f);
  let vaePeak = 0;
  const levels = vae.chMult.length;
  for (let i = 0; i < levels; i++) {
    const scale = 2 ** i; // level i of the decoder runs at (h, w) / 2^i
    const hw = Math.ceil(s.height / scale) * Math.ceil(s.width / scale);
    const ch = vae.ch * vae.chMult[i];
    let level = 4 * tensor(n * hw * ch);
    if (vae.attnLevels.includes(i)) level = Math.max(level, 3 * tensor(n * hw * ch) + 2 * tensor(n * hw * hw, true));
    vaePeak = Math.max(vaePeak, level);
  }
  const lowest = lh * lw;
  vaePeak = Math.max(vaePeak, 3 * tensor(n * lowest * vae.ch * vae.chMult[levels - 1]) + 2 * tensor(n * lowest * lowest, true)); // mid.attn_1
  const latents = 3 * f * lh * lw * unet.inDim * F32;
  return { unet: unetPeak, vae: vaePeak, largestTensor: largest, largestActivation, peak: Math.max(unetPeak, vaePeak) + latents };
}

/** What the active backend can hold: a total and a largest single buffer, each with where the number comes from. */
export interface BackendLimits {
  total: number;
  totalWhy: string;
  buffer: number;
  bufferWhy: string;
  /** Attention runs in fused kernels that make no score matrix (webgpu), so only activations meet `buffer`. */
  fusedAttention?: boolean;
}

export const WASM_HEAP_BYTES = 4 * 2 ** 30;

export function backendLimits(backend = tf.getBackend(), weightBytes = 0): BackendLimits {
  const host = largestHostArray();
  const jsArray = { buffer: host.bytes, bufferWhy: host.why };
  if (backend === 'wasm') {
    return { total: WASM_HEAP_BYTES - weightBytes, totalWhy: `the wasm heap's 4 GB${weightBytes > 0 ? ' less the resident weights' : ''}`,
      buffer: WASM_HEAP_BYTES, bufferWhy: 'the wasm heap' };
  }
  if (backend === 'webgpu') {
    const limits = (tf.backend() as unknown as { device?: { limits?: { maxBufferSize?: number; maxStorageBufferBindingSize?: number } } })
      .device?.limits;
    const buf = Math.min(limits?.maxBufferSize ?? Infinity, limits?.maxStorageBufferBindingSize ?? Infinity);
    return { total: Infinity, totalWhy: 'the GPU', buffer: buf, bufferWhy: "the WebGPU adapter's maxStorageBufferBindingSize / maxBufferSize",
      fusedAttention: true };
  }
  if (backend === 'cpu') return { total: hostMemoryBytes(), totalWhy: 'host memory', ...jsArray };
  return { total: hostMemoryBytes(), totalWhy: 'host memory', buffer: Infinity, bufferWhy: '' };
}

const gb = (bytes: number) => `${(bytes / 2 ** 30).toFixed(bytes < 2 ** 30 ? 2 : 1)} GB`;

/** Throws one line, with the estimate, when a generation at `s` cannot fit the active backend. */
export function checkMemory(unet: UNetConfig, vae: VAEConfig, s: MemorySettings, limits = backendLimits()): MemoryEstimate {
  const e = estimateMemory(unet, vae, s);
  const what = `${s.frames} frames at ${s.width}x${s.height}`;
  const advice = 'use fewer frames or a smaller size (or --decode-chunk 1, --no-batch-guidance)';
  if (e.peak > limits.total) {
    throw new Error(`${what} needs about ${gb(e.peak)} for activations (UNet ${gb(e.unet)}, VAE decode ${gb(e.vae)}), more than `
      + `${limits.totalWhy} (${gb(limits.total)}): ${advice}`);
  }
  const largest = limits.fusedAttention ? e.largestActivation : e.largestTensor;
  if (largest > limits.buffer) {
    throw new Error(`${what} needs a ${gb(largest)} tensor, larger than ${limits.bufferWhy} `
      + `(${gb(limits.buffer)}): ${advice}`);
  }
  return e;
}
