import * as tf from '@tensorflow/tfjs';
import { Module } from '../module.js';
import { Linear } from '../common/linear.js';

/** Upstream `GEGLU`: `proj` to twice the width, split into value and gate halves, value * gelu(gate). */
export class GEGLU extends Module {
  readonly proj: Linear;

  constructor(readonly dimIn: number, readonly dimOut: number) {
    super();
    this.proj = this.child('proj', new Linear(dimIn, dimOut * 2));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.ops.geglu(this.proj.forward(x)));
  }
}

/**
 * Largest GEGLU projection output computed at once (bytes of float32); FeedForward splits its rows above it. 512 MiB:
 * zeroscope XL's guided step peaks at 19.28 GiB instead of 21.47 with 1 GiB (bench/pool-sim.ts); 16x256x256's level 0
 * (335 MB) stays whole.
 */
export const FF_CHUNK_BYTES = 2 ** 29;
/** Chunks are whole multiples of this many rows where they can be: the tensor-core GEMMs then need no padded rows cut. */
const CHUNK_ROWS = 128;

/**
 * Rows per chunk for `rows` rows of `perRow` bytes each under `chunkBytes`: equal chunks, rounded up to whole tiles of
 * rows where that keeps them under the limit (H200 run 47: chunks of 104857 rows, padded to the GEMM's tiles and cut
 * back, took 211 ms of a guided step at 24x1024x576).
 */
export function chunkRows(rows: number, perRow: number, chunkBytes: number): number {
  const most = Math.max(1, Math.floor(chunkBytes / perRow));
  const even = Math.ceil(rows / Math.ceil(rows / most));
  const tiled = Math.ceil(even / CHUNK_ROWS) * CHUNK_ROWS;
  return tiled <= most ? tiled : even;
}

/**
 * Upstream `FeedForward` as BasicTransformerBlock builds it (glu=True, mult 4): `net.0` GEGLU, `net.1` dropout,
 * `net.2` Linear back to dim.
 */
export class FeedForward extends Module {
  readonly geglu: GEGLU;
  readonly out: Linear;
  /** Rows are split so that no GEGLU projection output is larger than this (bytes of float32). */
  chunkBytes = FF_CHUNK_BYTES;

  constructor(readonly dim: number, mult = 4) {
    super();
    const inner = Math.floor(dim * mult);
    this.geglu = this.child('net.0', new GEGLU(dim, inner));
    this.out = this.child('net.2', new Linear(inner, dim));
  }

  /**
   * x [.., dim] -> [.., dim], plus `residual` when given (added by the last Linear). Rows go through in chunks
   * when GEGLU's projection (2 x inner values a row) would pass `chunkBytes`: WebGPU binds at most 2 GiB per
   * buffer, which zeroscope XL's 24 frames at 1024x576 exceed at level 0 (4.5 GB at batch 2). Each row is
   * independent, so the numbers are the same.
   */
  forward(x: tf.Tensor, residual?: tf.Tensor): tf.Tensor {
    const rows = x.size / this.dim;
    const perRow = this.geglu.dimOut * 2 * 4;
    if (rows * perRow <= this.chunkBytes) return tf.tidy(() => this.out.forward(this.geglu.forward(x), residual));
    const chunk = chunkRows(rows, perRow, this.chunkBytes);
    return tf.tidy(() => {
      const x2 = x.reshape<tf.Tensor2D>([rows, this.dim]);
      const r2 = residual?.reshape<tf.Tensor2D>([rows, this.dim]);
      const parts: tf.Tensor[] = [];
      for (let start = 0; start < rows; start += chunk) {
        const n = Math.min(chunk, rows - start);
        // a tidy per chunk: only its output outlives it (the slices and the GEGLU activations go at once)
        parts.push(tf.tidy(() => {
          const rs = r2 ? this.ops.rowSlice(r2, start, n) : undefined;
          return this.out.forward(this.geglu.forward(this.ops.rowSlice(x2, start, n)), rs);
        }));
      }
      return this.ops.concat(parts, 0).reshape(x.shape);
    });
  }
}
