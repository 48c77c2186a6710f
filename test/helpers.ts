import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { readNpy } from '../src/io/npy.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
/** The real CLIP vocabulary, beside the checkout; tests that need it skip when it is absent. */
export const CLIP_VOCAB = join(ROOT, '..', 'shared', 'clip-tokenizer', 'bpe_simple_vocab_16e6.txt.gz');
export const hasClipVocab = existsSync(CLIP_VOCAB);

/** Max |a - b| divided by max |ref|: the parity measure used throughout. */
export function relMaxError(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  if (ours.length !== ref.length) throw new Error(`length ${ours.length} != ${ref.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs(ours[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return diff / (scale || 1);
}

/** Reads a float .npy fixture as a tensor (shape as saved). */
export function npyTensor(path: string): tf.Tensor {
  const a = readNpy(path);
  if (a.dtype !== 'float32' && a.dtype !== 'float64') throw new Error(`${path}: expected float data`);
  return tf.tensor(Float32Array.from(a.data as Float32Array), a.shape, 'float32');
}

export const PARITY_TOL = 1e-4;
