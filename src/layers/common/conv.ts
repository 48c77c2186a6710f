import * as tf from '@tensorflow/tfjs';
import { Module, type Param } from '../module.js';

type Padding = number | [number, number, number, number]; // symmetric, or [top, bottom, left, right]

function explicitPadding(p: Padding): [[number, number], [number, number], [number, number], [number, number]] {
  const [t, b, l, r] = typeof p === 'number' ? [p, p, p, p] : p;
  return [[0, 0], [t, b], [l, r], [0, 0]];
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
      let y: tf.Tensor4D;
      if (k === 1 && this.stride === 1 && this.padding === 0) {
        const [n, h, w, c] = x.shape;
        const a = x.reshape([n * h * w, c]) as tf.Tensor2D;
        const b = this.weight.tensor.reshape([c, this.outChannels]) as tf.Tensor2D;
        // webgpu adds the bias inside the matmul kernel, as for the other convolutions; elsewhere the plain ops
        if (this.bias && tf.getBackend() === 'webgpu') {
          return tf.fused.matMul({ a, b, bias: this.bias.tensor }).reshape([n, h, w, this.outChannels]) as tf.Tensor4D;
        }
        y = tf.matMul(a, b).reshape([n, h, w, this.outChannels]);
      } else {
        const pad = same ? 'same' : explicitPadding(this.padding);
        // webgpu adds the bias inside the convolution kernel (one dispatch less per layer); elsewhere the plain ops
        if (this.bias && tf.getBackend() === 'webgpu') {
          return tf.fused.conv2d({ x, filter: this.weight.tensor as tf.Tensor4D, strides: this.stride, pad, bias: this.bias.tensor });
        }
        y = tf.conv2d(x, this.weight.tensor as tf.Tensor4D, this.stride, pad);
      }
      return this.bias ? tf.add(y, this.bias.tensor) : y;
    });
  }
}
