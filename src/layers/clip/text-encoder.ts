import * as tf from '@tensorflow/tfjs';
import { Module, type Param } from '../module.js';
import { LayerNorm } from '../common/norm.js';
import type { TextEncoderConfig } from './config.js';
import { Transformer } from './transformer.js';

/**
 * The text features ModelScope conditions on (FrozenOpenCLIPEmbedder.encode_with_transformer, layer
 * 'penultimate'): token + positional embedding, the residual blocks but the last with the causal mask, ln_final.
 * Weight keys are open_clip's (`token_embedding.weight`, `transformer.resblocks.0.attn.in_proj_weight`, ...).
 */
export class OpenCLIPTextEncoder extends Module {
  readonly token_embedding: Param;
  readonly positional_embedding: Param;
  readonly transformer: Transformer;
  readonly ln_final: LayerNorm;

  constructor(readonly config: TextEncoderConfig) {
    super();
    const c = config;
    this.token_embedding = this.param('token_embedding.weight', [c.vocabSize, c.width]);
    this.positional_embedding = this.param('positional_embedding', [c.contextLength, c.width]);
    this.transformer = this.child('transformer', new Transformer(c.width, c.layers, c.heads, c.mlpWidth, c.layerNormEps));
    this.ln_final = this.child('ln_final', new LayerNorm(c.width, c.layerNormEps));
  }

  /** ids [b, context_length] int32 -> [b, context_length, width]. */
  forward(ids: tf.Tensor2D): tf.Tensor3D {
    const [, n] = ids.shape;
    if (n !== this.config.contextLength) {
      throw new Error(`OpenCLIPTextEncoder: ${n} tokens per text, the model takes ${this.config.contextLength}`);
    }
    return tf.tidy(() => {
      const idx = ids.dtype === 'int32' ? ids : tf.cast(ids, 'int32');
      const x = tf.add(tf.gather(this.token_embedding.tensor, idx), this.positional_embedding.tensor) as tf.Tensor3D;
      return this.ln_final.forward(this.transformer.forward(x, true)) as tf.Tensor3D;
    });
  }
}
