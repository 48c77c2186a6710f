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
      const xg = x.reshape([n, -1, g, this.numChannels / g]);
      const { mean, variance } = tf.moments(xg, [1, 3], true);
      const y = tf.mul(tf.sub(xg, mean), tf.rsqrt(tf.add(variance, this.eps))).reshape(shape);
      const out = tf.add(tf.mul(y, this.weight.tensor), this.bias.tensor);
      return silu ? tf.mul(out, tf.sigmoid(out)) : out;
    });
  }
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
