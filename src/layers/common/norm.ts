import * as tf from '@tensorflow/tfjs';
import { FusedGroupNorm, FusedLayerNorm, fusedKernelFor, runFused } from '../../backends/kernels.js';
import { Module, type Param } from '../module.js';

/**
 * torch.nn.GroupNorm on channels-last input [N, ..., C]: statistics per sample and group over every other
 * dimension (for a 5-D video [b, f, h, w, c] that is frames and pixels together, as PyTorch does on [b, c, f, h, w]).
 */
export class GroupNorm extends Module {
  readonly weight: Param;
  readonly bias: Param;

  constructor(readonly numGroups: number, readonly numChannels: number, readonly eps = 1e-5) {
    super();
    if (numChannels % numGroups !== 0) throw new Error(`GroupNorm: ${numChannels} channels not divisible by ${numGroups} groups`);
    this.weight = this.param('weight', [numChannels]);
    this.bias = this.param('bias', [numChannels]);
  }

  /** `silu` applies SiLU after the affine step (upstream's GroupNorm, SiLU pairs), fused where a backend can. */
  forward(x: tf.Tensor, silu = false): tf.Tensor {
    const attrs = { groups: this.numGroups, eps: this.eps, silu };
    if (fusedKernelFor(FusedGroupNorm, [x], attrs)) {
      return runFused(FusedGroupNorm, { x, gamma: this.weight.tensor, beta: this.bias.tensor }, attrs);
    }
    return tf.tidy(() => {
      const shape = x.shape;
      const n = shape[0];
      const g = this.numGroups;
      const xg = x.reshape([n, -1, g, this.numChannels / g]) as tf.Tensor4D;
      const mean = groupMean(xg);
      const centred = tf.sub(xg, mean) as tf.Tensor4D;
      const variance = groupMean(tf.square(centred) as tf.Tensor4D);
      const y = tf.mul(centred, tf.rsqrt(tf.add(variance, this.eps))).reshape(shape);
      const out = tf.add(tf.mul(y, this.weight.tensor), this.bias.tensor);
      return silu ? tf.mul(out, tf.sigmoid(out)) : out;
    });
  }
}

/**
 * Mean of [n, P, g, c] over P and c, kept as [n, 1, g, 1]. Large P is summed in two stages of about sqrt(P) values:
 * one float32 pass over the 262,144 values of a 256x256 VAE group (wasm accumulates in float32) drifted by 3e-5,
 * 20x PyTorch's own float32 error; equal chunks keep the mean of means exact.
 */
function groupMean(t: tf.Tensor4D): tf.Tensor {
  const [n, p, g, c] = t.shape;
  let m = p >= 4096 ? Math.floor(Math.sqrt(p)) : 1;
  while (m > 1 && p % m !== 0) m--;
  if (m < 16) return tf.mean(t, [1, 3], true);
  return tf.mean(tf.mean(t.reshape([n, p / m, m, g, c]), [2, 4]), 1).reshape([n, 1, g, 1]);
}

/** torch.nn.LayerNorm over the last dimension. */
export class LayerNorm extends Module {
  readonly weight: Param;
  readonly bias: Param;

  constructor(readonly dim: number, readonly eps = 1e-5) {
    super();
    this.weight = this.param('weight', [dim]);
    this.bias = this.param('bias', [dim]);
  }

  forward(x: tf.Tensor): tf.Tensor {
    const attrs = { eps: this.eps };
    if (fusedKernelFor(FusedLayerNorm, [x], attrs)) {
      return runFused(FusedLayerNorm, { x, gamma: this.weight.tensor, beta: this.bias.tensor }, attrs);
    }
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      const y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(y, this.weight.tensor), this.bias.tensor);
    });
  }
}
