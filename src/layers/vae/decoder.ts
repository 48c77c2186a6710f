import * as tf from '@tensorflow/tfjs';
import { Conv2d } from '../common/conv.js';
import type { GroupNorm } from '../common/norm.js';
import { Module } from '../module.js';
import { AttnBlock } from './attn-block.js';
import type { VAEConfig } from './config.js';
import { Mid } from './mid.js';
import { Normalize } from './normalize.js';
import { ResnetBlock } from './resnet-block.js';
import { Upsample } from './upsample.js';

/** One entry of upstream `Decoder.up`: num_res_blocks + 1 `block.j`, `attn.j`, and `upsample` (all but level 0). */
class Up extends Module {
  readonly block: ResnetBlock[] = [];
  readonly attn: AttnBlock[] = [];
  readonly upsample: Upsample | null;

  constructor(blockIn: number, blockOut: number, withAttn: boolean, first: boolean, c: VAEConfig) {
    super();
    for (let j = 0; j <= c.numResBlocks; j++) {
      this.block.push(this.child(`block.${j}`, new ResnetBlock(j === 0 ? blockIn : blockOut, blockOut, c)));
    }
    if (withAttn) {
      for (let j = 0; j <= c.numResBlocks; j++) this.attn.push(this.child(`attn.${j}`, new AttnBlock(blockOut, c)));
    }
    this.upsample = first ? null : this.child('upsample', new Upsample(blockOut, c.resampWithConv));
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = x;
      this.block.forEach((b, j) => {
        h = b.forward(h);
        if (this.attn.length > 0) h = this.attn[j].forward(h);
      });
      return this.upsample ? this.upsample.forward(h) : h;
    });
  }
}

/**
 * Upstream Decoder: z [n, h, w, z_channels] -> image [n, f*h, f*w, out_ch], f = 2^(levels - 1). `up` is indexed
 * by level as upstream stores it (up.0 at full resolution) and run from the last level down.
 */
export class Decoder extends Module {
  readonly conv_in: Conv2d;
  readonly mid: Mid;
  readonly up: Up[] = [];
  readonly norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  constructor(readonly config: VAEConfig) {
    super();
    const c = config;
    const levels = c.chMult.length;
    const blockIns: number[] = [];
    let blockIn = c.ch * c.chMult[levels - 1];
    for (let i = levels - 1; i >= 0; i--) {
      blockIns[i] = blockIn;
      blockIn = c.ch * c.chMult[i];
    }
    const top = c.ch * c.chMult[levels - 1];
    this.conv_in = this.child('conv_in', new Conv2d(c.zChannels, top, 3, 1, 1));
    this.mid = this.child('mid', new Mid(top, c));
    // Registered in index order (upstream prepends while building from the last level), so keys and order match.
    for (let i = 0; i < levels; i++) {
      const level = new Up(blockIns[i], c.ch * c.chMult[i], c.attnLevels.includes(i), i === 0, c);
      this.up.push(this.child(`up.${i}`, level));
    }
    this.norm_out = this.child('norm_out', Normalize(c.ch * c.chMult[0], c));
    this.conv_out = this.child('conv_out', new Conv2d(c.ch * c.chMult[0], c.outCh, 3, 1, 1));
  }

  forward(z: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      let h = this.mid.forward(this.conv_in.forward(z));
      for (let i = this.up.length - 1; i >= 0; i--) h = this.up[i].forward(h);
      if (this.config.givePreEnd) return h;
      h = this.conv_out.forward(this.norm_out.forward(h, true) as tf.Tensor4D);
      return this.config.tanhOut ? tf.tanh(h) : h;
    });
  }
}
