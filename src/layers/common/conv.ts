import * as tf from '@tensorflow/tfjs';
import { FusedConv2DAdd, fusedKernelFor, runFused } from '../../backends/kernels.js';
import { Module, type Param } from '../module.js';
import { matMulBias } from './linear.js';

type Padding = number | [number, number, number, number]; // symmetric, or [top, bottom, left, right]

function explicitPadding(p: Padding): ExplicitPadding {
  const [t, b, l, r] = typeof p === 'number' ? [p, p, p, p] : p;
  return [[0, 0], [t, b], [l, r], [0, 0]];
}

export type ExplicitPadding = [[number, number], [number, number], [number, number], [number, number]];

/**
 * conv2d, then + bias, then + residual (the output's shape) when given. On webgpu the bias is added inside the
 * convolution kernel, and the residual too where the backend has FusedConv2DAdd (one dispatch instead of three);
 * elsewhere the plain ops, in that order.
 */
export function conv2dBias(x: tf.Tensor4D, filter: tf.Tensor4D, strides: number, pad: 'same' | ExplicitPadding,
  bias: tf.Tensor | null, residual: tf.Tensor4D | null = null): tf.Tensor4D {
  if (residual && fusedKernelFor(FusedConv2DAdd, [x, filter, residual], {})) {
    const attrs = { strides, pad, dataFormat: 'NHWC', dilations: 1, activation: 'linear' };
    return runFused(FusedConv2DAdd, bias ? { x, filter, bias, residual } : { x, filter, residual }, attrs);
  }
  let y: tf.Tensor4D;
  if (bias && tf.getBackend() === 'webgpu') y = tf.fused.conv2d({ x, filter, strides, pad, bias });
  else {
    y = tf.conv2d(x, filter, strides, pad);
    if (bias) y = tf.add(y, bias);
  }
  return residual ? tf.add(y, residual) : y;
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

  /** x [n, h, w, in] -> [n, h', w', out], plus `residual` (the output's shape) when given; `bias` replaces the layer's. */
  forward(x: tf.Tensor4D, residual?: tf.Tensor4D, bias: tf.Tensor | null = this.bias?.tensor ?? null): tf.Tensor4D {
    return tf.tidy(() => {
      const k = this.kernelSize;
      const same = this.stride === 1 && this.padding === (k - 1) / 2;
      if (k === 1 && this.stride === 1 && this.padding === 0) {
        const [n, h, w, c] = x.shape;
        const a = x.reshape([n * h * w, c]) as tf.Tensor2D;
        const b = this.weight.tensor.reshape([c, this.outChannels]) as tf.Tensor2D;
        const r = residual ? residual.reshape([n * h * w, this.outChannels]) as tf.Tensor2D : null;
        return matMulBias(a, b, bias, r).reshape([n, h, w, this.outChannels]) as tf.Tensor4D;
      }
      const pad = same ? 'same' : explicitPadding(this.padding);
      return conv2dBias(x, this.weight.tensor as tf.Tensor4D, this.stride, pad, bias, residual ?? null);
    });
  }
}
