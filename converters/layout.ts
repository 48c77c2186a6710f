import * as tf from '@tensorflow/tfjs';
import { tfPermutation, tfShape, type ParamRole } from '../src/layers/module.js';

/** Moves a weight from PyTorch layout to tfjs layout by its role (see ParamRole). Returns a new buffer. */
export function toTfLayout(data: Float32Array, torchShape: readonly number[], role: ParamRole): Float32Array {
  if (role === 'plain' || (role === 'linear' && torchShape.length === 1)) return data;
  return tf.tidy(() => {
    const t = tf.tensor(data, [...torchShape], 'float32');
    const out = tf.transpose(t, tfPermutation(role, torchShape.length));
    return out.reshape(tfShape(role, torchShape)).dataSync() as Float32Array;
  });
}
