import * as tf from '@tensorflow/tfjs';
import { Module, type Param } from '../module.js';

type Padding = number | [number, number, number, number]; // symmetric, or [top, bottom, left, right]

function explicitPadding(p: Padding): ExplicitPadding {
  const [t, b, l, r] = typeof p === 'number' ? [p, p, p, p] : p;
  return [[0, 0], [t, b], [l, r], [0, 0]];
}

export type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];

/** conv2d, then + bias: on webgpu inside the convolution kernel (one dispatch less per layer), elsewhere plain ops. */
export function conv2dBias(x: tf.Tensor4D, filter: tf.Tensor4D, strides: number, pad: 'same' | ExplicitPadding,
  bias: tf.Tensor | null): tf.Tensor4D {
  if (bias && tf.getBackend() === 'webgpu') return tf.fused.conv2d({ x, filter, strides, pad, bias });
  const y = tf.conv2d(x, filter, strides, pad);
  return bias ? tf.add(y, bias) : y;
}

/**
 * torch.nn.Conv2d on NHWC input. `weight` [O, I, kh, kw] is stored HWIO. PyTorch pads explicitly and
 * symmetrically, which is not what tfjs 'same' does for stride 2, so padding is always explicit except for
 * the stride-1 "same" case, where both agree.
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

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const k = this.kernelSize;
      const same = this.stride === 1 && this.padding === (k - 1) / 2;
      if (k === 1 && this.stride === 1 && this.padding === 0) {
        const [n, h, w, c] = x.shape;
        const a = x.reshape([n * h * w, c]) as tf.Tensor2D;
        const b = this.weight.tensor.reshape([c, this.outChannels]) as tf.Tensor2D;
        // webgpu adds the bias inside the matmul kernel, as for the other convolutions; elsewhere the plain ops
        if (this.bias && tf.getBackend() === 'webgpu') {
          return tf.fused.matMul({ a, b, bias: this.bias.tensor }).reshape([n, h, w, this.outChannels]) as tf.Tensor4D;
        }
        const y = tf.matMul(a, b).reshape([n, h, w, this.outChannels]) as tf.Tensor4D;
        return this.bias ? tf.add(y, this.bias.tensor) : y;
      }
      const pad = same ? 'same' : explicitPadding(this.padding);
      return conv2dBias(x, this.weight.tensor as tf.Tensor4D, this.stride, pad, this.bias?.tensor ?? null);
    });
  }
}
