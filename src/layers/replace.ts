import * as tf from '@tensorflow/tfjs';

/**
 * `make()` in a tidy of its own, then `prev` freed unless it is `keep` (the caller's input; null: free it too): a chain
 * of stages holds one stage's activations at a time instead of all of them until its end (the released UNet at
 * zeroscope XL's size has 566 MB a tensor at level 0).
 */
export function replace<T extends tf.Tensor>(prev: tf.Tensor, keep: tf.Tensor | null, make: () => T): T {
  const next = tf.tidy(make);
  if (prev !== keep && prev !== next) prev.dispose();
  return next;
}
