import * as tf from '@tensorflow/tfjs';
import { Conv2d } from '../common/conv.js';
import { Module } from '../module.js';
import type { VAEConfig } from './config.js';
import { Decoder } from './decoder.js';
import { Encoder } from './encoder.js';

/**
 * ModelScope's AutoencoderKL (the "VQGAN_autoencoder"), channels-last: the encoder, 1x1 quant_conv to the
 * diagonal Gaussian's moments, 1x1 post_quant_conv and the decoder. Keys as in the released state_dict with
 * `first_stage_model.` stripped (`decoder.up.3.block.0.conv1.weight`, `quant_conv.weight`).
 */
export class AutoencoderKL extends Module {
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quant_conv: Conv2d;
  readonly post_quant_conv: Conv2d;

  constructor(readonly config: VAEConfig) {
    super();
    this.encoder = this.child('encoder', new Encoder(config));
    this.decoder = this.child('decoder', new Decoder(config));
    this.quant_conv = this.child('quant_conv', new Conv2d(2 * config.zChannels, 2 * config.embedDim, 1));
    this.post_quant_conv = this.child('post_quant_conv', new Conv2d(config.embedDim, config.zChannels, 1));
  }

  /** Latents [n, h, w, embed_dim] -> images [n, f*h, f*w, out_ch], f = 2^(levels - 1) (8 for the released model). */
  decode(z: tf.Tensor4D): tf.Tensor4D {
    this.checkChannels(z, this.config.embedDim, 'decode');
    return tf.tidy(() => this.decoder.forward(this.post_quant_conv.forward(z)));
  }

  /**
   * `decode` over the batch in chunks of `chunkSize` images, concatenated: only one chunk's activations are alive
   * at a time. `onChunk(done, total)` is called after each chunk.
   */
  decodeChunked(z: tf.Tensor4D, chunkSize: number, onChunk?: (done: number, total: number) => void): tf.Tensor4D {
    if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new Error(`decodeChunked: chunk size must be a positive integer, got ${chunkSize}`);
    const n = z.shape[0];
    if (n <= chunkSize) {
      const out = this.decode(z);
      onChunk?.(n, n);
      return out;
    }
    const parts: tf.Tensor4D[] = [];
    try {
      for (let start = 0; start < n; start += chunkSize) {
        const size = Math.min(chunkSize, n - start);
        parts.push(tf.tidy(() => this.decode(tf.slice(z, [start, 0, 0, 0], [size, -1, -1, -1]))));
        onChunk?.(start + size, n);
      }
      return tf.concat(parts, 0);
    } finally {
      tf.dispose(parts);
    }
  }

  /**
   * Images [n, H, W, in_channels] -> the posterior's moments [n, H/f, W/f, 2 * embed_dim] (mean, then logvar).
   * Sizes that are not multiples of f work as upstream (each Downsample gives floor(size / 2)).
   */
  encodeMoments(x: tf.Tensor4D): tf.Tensor4D {
    this.checkChannels(x, this.config.inChannels, 'encode');
    return tf.tidy(() => this.quant_conv.forward(this.encoder.forward(x)));
  }

  /** Images [n, H, W, in_channels] -> the posterior's mean [n, H/f, W/f, embed_dim] (upstream `encode(x).mode()`). */
  encode(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => {
      const m = this.encodeMoments(x);
      return tf.slice(m, [0, 0, 0, 0], [-1, -1, -1, this.config.embedDim]);
    });
  }

  forward(z: tf.Tensor4D): tf.Tensor4D {
    return this.decode(z);
  }

  private checkChannels(t: tf.Tensor, want: number, what: string): void {
    if (t.rank !== 4 || t.shape[3] !== want) {
      throw new Error(`AutoencoderKL.${what}: expected [n, h, w, ${want}] (channels last), got [${t.shape}]`);
    }
  }
}
