import * as tf from '@tensorflow/tfjs';

/**
 * Upstream `sinusoidal_embedding(timesteps, dim)`: half = dim // 2 frequencies 10000^(-i / half),
 * output [cos(t * freq), sin(t * freq)] (cosines first), zero-padded by one column when dim is odd.
 */
export function sinusoidalEmbedding(t: tf.Tensor1D, dim: number): tf.Tensor2D {
  return tf.tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = tf.pow(tf.scalar(10000), tf.neg(tf.div(tf.range(0, half, 1, 'float32'), half)));
    const args = tf.mul(t.cast('float32').reshape([-1, 1]), freqs.reshape([1, half]));
    let x = tf.concat([tf.cos(args), tf.sin(args)], 1);
    if (dim % 2 !== 0) x = tf.pad(x, [[0, 0], [0, 1]]);
    return x as tf.Tensor2D;
  });
}
