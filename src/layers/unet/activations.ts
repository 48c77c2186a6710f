import * as tf from '@tensorflow/tfjs';

/** torch.nn.SiLU: x * sigmoid(x). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}
