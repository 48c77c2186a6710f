import * as tf from '@tensorflow/tfjs';
import { Module, type Param } from '../module.js';
import type { ExplicitPadding } from '../ops.js';

type Padding = number | [number, number, number, number]; // symmetric, or [top, bottom, left, right]

function explicitPadding(p: Padding): ExplicitPadding {
  const [t, b, l, r] = typeof p === 'number' ? [p, p, p, p] : p;
  return [[0, 0], [t, b], [l, r], [0, 0]];
}

/**
 * torch.nn.Conv2d on NHWC input. `weight` [O, I, kh, kw] is stored HWIO. PyTorch pads explicitly and
 * symmetrically, which is not what tfjs 'same' does for stride 2, so padding is always explicit except for
 * the stride-1 "same" case, where both agree. A 1x1 convolution is a Linear over the pixels.
 */
export class Conv2d extends Module {
  readonly weight: Param;
  readonly bias: Param | null;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly stride = 1,
    readonly padding: Padding = 0,
    bias = true,
  ) {
    super();
    this.weight = this.param('weight', [outChannels, inChannels, kernelSize, kernelSize], 'conv2d');
    this.bias = bias ? this.param('bias', [outChannels]) : null;
  }

  /** x [n, h, w, in] -> [n, h', w', out], plus `residual` (the output's shape) when given; `bias` replaces the layer's. */
  forward(x: tf.Tensor4D, residual?: tf.Tensor4D, bias: tf.Tensor | null = this.bias?.tensor ?? null): tf.Tensor4D {
    return tf.tidy(() => {
      const k = this.kernelSize;
      if (k === 1 && this.stride === 1 && this.padding === 0) {
        const [n, h, w, c] = x.shape;
        const a = x.reshape([n * h * w, c]) as tf.Tensor2D;
        const r = residual ? residual.reshape([n * h * w, this.outChannels]) as tf.Tensor2D : null;
        return this.ops.linear(a, this.weight.as([c, this.outChannels]), bias, r).reshape([n, h, w, this.outChannels]) as tf.Tensor4D;
      }
      const same = this.stride === 1 && this.padding === (k - 1) / 2;
      const pad = same ? 'same' : explicitPadding(this.padding);
      return this.ops.conv2d(x, this.weight, this.stride, pad, bias, residual ?? null);
    });
  }
}
