import * as tf from '@tensorflow/tfjs';
import { GroupNorm } from '../common/norm.js';
import type { VAEConfig } from './config.js';

/** Upstream `Normalize(in_channels)`: GroupNorm with the configured groups and eps, affine. */
export function Normalize(channels: number, c: VAEConfig): GroupNorm {
  return new GroupNorm(c.norm_num_groups, channels, c.norm_eps);
}

/** Upstream `nonlinearity`: swish, x * sigmoid(x). */
export function nonlinearity<T extends tf.Tensor>(x: T): T {
  return tf.mul(x, tf.sigmoid(x));
}
