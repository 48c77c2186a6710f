import * as tf from '@tensorflow/tfjs';
import { Module } from '../module.js';
import { AttnBlock } from './attn-block.js';
import type { VAEConfig } from './config.js';
import { ResnetBlock } from './resnet-block.js';

/** Upstream `mid` (a bare nn.Module in the Encoder and the Decoder): block_1, attn_1, block_2. */
export class Mid extends Module {
  readonly block_1: ResnetBlock;
  readonly attn_1: AttnBlock;
  readonly block_2: ResnetBlock;

  constructor(channels: number, c: VAEConfig) {
    super();
    this.block_1 = this.child('block_1', new ResnetBlock(channels, channels, c));
    this.attn_1 = this.child('attn_1', new AttnBlock(channels, c));
    this.block_2 = this.child('block_2', new ResnetBlock(channels, channels, c));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => this.block_2.forward(this.attn_1.forward(this.block_1.forward(x))));
  }
}
