import * as tf from '@tensorflow/tfjs';
import type { TextToVideoComponents } from '../src/pipeline/text2video.js';

/**
 * Stand-in networks for testing the pipeline by itself (the same stand-in model as tools/reference/make_e2e_fixtures.py
 * `sampler_only`): the text "encoder" gives a scalar context (0.7 for a prompt, -0.3 for the empty text), the
 * "UNet" returns sin(x) * context + t / 1000, the "VAE" repeats each latent pixel 8x8 and maps channels 0..2 by tanh.
 */
export function standIns(): TextToVideoComponents & { calls: { text: number; unet: number; vae: number } } {
  const calls = { text: 0, unet: 0, vae: 0 };
  return {
    calls,
    tokenizer: { encode: (text: string) => [text === '' ? 0 : 1] },
    textEncoder: {
      forward: (ids: tf.Tensor2D) => tf.tidy(() => {
        calls.text++;
        return tf.sub(tf.cast(ids, 'float32'), 0.3).reshape([ids.shape[0], 1, 1]) as tf.Tensor3D;
      }),
    },
    unet: {
      forward: (x: tf.Tensor5D, t: tf.Tensor1D, ctx: tf.Tensor3D) => tf.tidy(() => {
        calls.unet++;
        const b = x.shape[0];
        return tf.add(tf.mul(tf.sin(x), ctx.reshape([b, 1, 1, 1, 1])), tf.div(t, 1000).reshape([b, 1, 1, 1, 1])) as tf.Tensor5D;
      }),
    },
    vae: {
      decode: (z: tf.Tensor4D) => tf.tidy(() => {
        calls.vae++;
        const [n, h, w] = z.shape;
        const up = tf.image.resizeNearestNeighbor(z, [h * 8, w * 8]);
        return tf.tanh(tf.slice(up, [0, 0, 0, 0], [n, -1, -1, 3])) as tf.Tensor4D;
      }),
    },
  };
}
