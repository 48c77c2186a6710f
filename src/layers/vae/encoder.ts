import * as tf from '@tensorflow/tfjs';
import { Conv2d } from '../common/conv.js';
import type { GroupNorm } from '../common/norm.js';
import { Module } from '../module.js';
import { AttnBlock } from './attn-block.js';
import type { VAEConfig } from './config.js';
import { Downsample } from './downsample.js';
import { Mid } from './mid.js';
import { Normalize } from './normalize.js';
import { ResnetBlock } from './resnet-block.js';

/** One entry of upstream `Encoder.down`: `block.j`, `attn.j` (levels with attention), `downsample` (all but the last). */
class Down extends Module {
  readonly block: ResnetBlock[] = [];
  readonly attn: AttnBlock[] = [];
  readonly downsample: Downsample | null;

  constructor(blockIn: number, blockOut: number, withAttn: boolean, last: boolean, c: VAEConfig) {
    super();
    for (let j = 0; j < c.numResBlocks; j++) {
      this.block.push(this.child(`block.${j}`, new ResnetBlock(j === 0 ? blockIn : blockOut, blockOut, c)));
    }
    // Upstream registers a level's attention blocks after all its resnet blocks (separate ModuleLists).
    if (withAttn) {
      for (let j = 0; j < c.numResBlocks; j++) this.attn.push(this.child(`attn.${j}`, new AttnBlock(blockOut, c)));
    }
    this.downsample = last ? null : this.child('downsample', new Downsample(blockOut, c.resampWithConv));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = x;
      this.block.forEach((b, j) => {
        h = b.forward(h);
        if (this.attn.length > 0) h = this.attn[j].forward(h);
      });
      return this.downsample ? this.downsample.forward(h) : h;
    });
  }
}

/** Upstream Encoder: image [n, H, W, in_channels] -> moments [n, H/f, W/f, 2 * z_channels] (double_z). */
export class Encoder extends Module {
  readonly conv_in: Conv2d;
  readonly down: Down[] = [];
  readonly mid: Mid;
  readonly norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  constructor(c: VAEConfig) {
    super();
    const levels = c.chMult.length;
    this.conv_in = this.child('conv_in', new Conv2d(c.inChannels, c.ch, 3, 1, 1));
    const inChMult = [1, ...c.chMult];
    for (let i = 0; i < levels; i++) {
      const level = new Down(c.ch * inChMult[i], c.ch * c.chMult[i], c.attnLevels.includes(i), i === levels - 1, c);
      this.down.push(this.child(`down.${i}`, level));
    }
    const blockIn = c.ch * c.chMult[levels - 1];
    this.mid = this.child('mid', new Mid(blockIn, c));
    this.norm_out = this.child('norm_out', Normalize(blockIn, c));
    this.conv_out = this.child('conv_out', new Conv2d(blockIn, 2 * c.zChannels, 3, 1, 1));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.conv_in.forward(x);
      for (const level of this.down) h = level.forward(h);
      h = this.mid.forward(h);
      return this.conv_out.forward(this.norm_out.forward(h, true) as tf.Tensor4D);
    });
  }
}
