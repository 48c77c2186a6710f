import type * as tf from '@tensorflow/tfjs';
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

  /** `silu` applies SiLU after the affine step (upstream's GroupNorm, SiLU pairs). */
  forward(x: tf.Tensor, silu = false): tf.Tensor {
    return this.ops.groupNorm(x, this.weight.tensor, this.bias.tensor, this.numGroups, this.eps, silu);
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
    return this.ops.layerNorm(x, this.weight.tensor, this.bias.tensor, this.eps);
  }
}
