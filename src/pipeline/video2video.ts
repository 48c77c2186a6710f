import * as tf from '@tensorflow/tfjs';
import type { Frames } from '../media/images.js';

/** A VAE that can encode: images [n, H, W, 3] in [-1, 1] -> the posterior's mean [n, H/8, W/8, c]. */
export interface VaeEncoderLike {
  encode(x: tf.Tensor4D): tf.Tensor4D;
}

/** Checks a video-to-video strength: in (0, 1]. */
export function checkStrength(strength: number): void {
  if (!(typeof strength === 'number' && Number.isFinite(strength) && strength > 0 && strength <= 1)) {
    throw new Error(`strength must be a number in (0, 1], got ${strength}`);
  }
}

/**
 * The index of the first step video-to-video runs, as diffusers' get_timesteps: init = min(floor(steps * strength),
 * steps), start at steps - init (every scheduler here has diffusers' `order` 1).
 */
export function strengthStart(steps: number, strength: number): number {
  checkStrength(strength);
  const init = Math.min(Math.floor(steps * strength), steps);
  if (init < 1) throw new Error(`strength ${strength} at ${steps} steps runs no step (floor(steps * strength) is 0): raise the strength or the steps`);
  return steps - init;
}

/** The timesteps a generation runs: all of the run's, or from strengthStart for video-to-video. */
export function timestepsToRun(all: readonly number[], steps: number, strength?: number): number[] {
  return strength === undefined ? [...all] : all.slice(strengthStart(steps, strength));
}

/**
 * Frames -> latents channels-last [1, f, H/8, W/8, c]: pixels to [-1, 1] (x / 255 * 2 - 1, as diffusers'
 * VaeImageProcessor), the VAE encoder's posterior MEAN (deterministic; diffusers samples it by default), times the
 * scaling factor; `chunk` frames per encoder call.
 */
export async function encodeVideo(vae: VaeEncoderLike, v: Frames, scaleFactor: number, chunk: number): Promise<tf.Tensor5D> {
  const parts: tf.Tensor4D[] = [];
  try {
    const n = v.height * v.width * 3;
    for (let start = 0; start < v.frames; start += chunk) {
      const count = Math.min(chunk, v.frames - start);
      const pixels = v.data.subarray(start * n, (start + count) * n);
      parts.push(tf.tidy(() => {
        const x = tf.sub(tf.mul(tf.div(tf.tensor4d(Float32Array.from(pixels), [count, v.height, v.width, 3]), 255), 2), 1);
        return tf.mul(tf.scalar(Math.fround(scaleFactor)), vae.encode(x as tf.Tensor4D)) as tf.Tensor4D;
      }));
      await new Promise<void>((r) => setImmediate(r));
    }
    return tf.tidy(() => tf.expandDims(parts.length === 1 ? parts[0] : tf.concat(parts, 0), 0) as tf.Tensor5D);
  } finally {
    tf.dispose(parts);
  }
}
