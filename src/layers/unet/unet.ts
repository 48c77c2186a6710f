import * as tf from '@tensorflow/tfjs';
import { Module, concatWeights } from '../module.js';
import { Conv2d } from '../common/conv.js';
import { GroupNorm } from '../common/norm.js';
import { Linear } from '../common/linear.js';
import { replace } from '../replace.js';
import type { ProjectedContext } from '../ops.js';
import { silu } from './activations.js';
import type { UNetConfig } from './config.js';
import { Downsample } from './downsample.js';
import { ResBlock } from './resblock.js';
import { SpatialTransformer } from './spatial-transformer.js';
import { TemporalTransformer } from './temporal-transformer.js';
import { sinusoidalEmbedding } from './time-embedding.js';
import { Upsample } from './upsample.js';

type Layer = Conv2d | ResBlock | SpatialTransformer | TemporalTransformer | Downsample | Upsample;

/**
 * What every layer of a block may need: SiLU of the time embedding (the first layer of every ResBlock's emb_layers,
 * computed once; one row per video, or one row for all), the text context, the batch size.
 */
interface Conditioning {
  embSilu: tf.Tensor2D;
  context: ProjectedContext;
  batch: number;
}

/**
 * ModelScope's `UNetSD` (the 3-D UNet of text-to-video) as the released configuration uses it. A video is
 * channels-last `[b, f, h, w, c]`; spatial layers see its frames as a batch `[b*f, h, w, c]`, temporal layers
 * its pixels `[b*h*w, f, c]`.
 *
 *   time_embed      Linear, SiLU, Linear over the sinusoidal embedding of t
 *   input_blocks    [conv, TemporalTransformer], then per level `numResBlocks` x [ResBlock (+ SpatialTransformer
 *                   + TemporalTransformer at attention scales)], and a Downsample between levels
 *   middle_block    ResBlock, SpatialTransformer, TemporalTransformer, ResBlock
 *   output_blocks   per level `numResBlocks + 1` x [ResBlock on [x, skip] (+ transformers) (+ Upsample)]
 *   out             GroupNorm, SiLU, conv
 */
export class UNetSD extends Module {
  readonly timeEmbed: [Linear, Linear];
  readonly inputBlocks: Layer[][] = [];
  readonly middleBlock: Layer[] = [];
  readonly outputBlocks: Layer[][] = [];
  readonly outNorm: GroupNorm;
  readonly outConv: Conv2d;
  /** The spatial transformers in order: their attn2 read the context (SpatialTransformer.contextIndex). */
  private readonly crossAttentions: SpatialTransformer[] = [];

  constructor(readonly config: UNetConfig) {
    super();
    const c = config;
    const g = c.normGroups;
    const E = c.embedDim;
    this.timeEmbed = [this.child('time_embed.0', new Linear(c.dim, E)), this.child('time_embed.2', new Linear(E, E))];

    const transformers = (prefix: string, width: number, contextDim: number): Layer[] => {
      const heads = width / c.headDim;
      const out: Layer[] = [this.child(`${prefix}.1`, new SpatialTransformer(width, heads, c.headDim, contextDim, g))];
      if (c.temporalAttention) out.push(this.child(`${prefix}.2`, new TemporalTransformer(width, heads, c.headDim, g)));
      return out;
    };

    // encoder
    const init: Layer[] = [this.child('input_blocks.0.0', new Conv2d(c.inDim, c.dim, 3, 1, 1))];
    if (c.temporalAttention) init.push(this.child('input_blocks.0.1', new TemporalTransformer(c.dim, c.numHeads, c.headDim, g)));
    this.inputBlocks.push(init);
    const skipDims = [c.dim];
    const levels = c.dimMult.length;
    let width = c.dim;
    for (let i = 0; i < levels; i++) {
      const out = c.dim * c.dimMult[i];
      const attn = c.attnScales.includes(2 ** -i);
      for (let j = 0; j < c.numResBlocks; j++) {
        const prefix = `input_blocks.${this.inputBlocks.length}`;
        const block: Layer[] = [this.child(`${prefix}.0`, new ResBlock(width, E, out, g))];
        if (attn) block.push(...transformers(prefix, out, c.contextDim));
        this.inputBlocks.push(block);
        skipDims.push(out);
        width = out;
      }
      if (i !== levels - 1) {
        this.inputBlocks.push([this.child(`input_blocks.${this.inputBlocks.length}`, new Downsample(width))]);
        skipDims.push(width);
      }
    }

    // middle
    this.middleBlock.push(this.child('middle_block.0', new ResBlock(width, E, width, g)));
    const heads = width / c.headDim;
    this.middleBlock.push(this.child('middle_block.1', new SpatialTransformer(width, heads, c.headDim, c.contextDim, g)));
    if (c.temporalAttention) this.middleBlock.push(this.child('middle_block.2', new TemporalTransformer(width, heads, c.headDim, g)));
    this.middleBlock.push(this.child(`middle_block.${this.middleBlock.length}`, new ResBlock(width, E, width, g)));

    // decoder
    for (let i = levels - 1; i >= 0; i--) {
      const out = c.dim * c.dimMult[i];
      const attn = c.attnScales.includes(2 ** -i);
      for (let j = 0; j <= c.numResBlocks; j++) {
        const prefix = `output_blocks.${this.outputBlocks.length}`;
        const skip = skipDims.pop() as number;
        const block: Layer[] = [this.child(`${prefix}.0`, new ResBlock(width + skip, E, out, g))];
        if (attn) block.push(...transformers(prefix, out, c.decoderContextDim));
        width = out;
        if (i !== 0 && j === c.numResBlocks) block.push(this.child(`${prefix}.${block.length}`, new Upsample(out)));
        this.outputBlocks.push(block);
      }
    }

    // head
    this.outNorm = this.child('out.0', new GroupNorm(g, width));
    this.outConv = this.child('out.2', new Conv2d(width, c.outDim, 3, 1, 1));

    for (const block of [...this.inputBlocks, this.middleBlock, ...this.outputBlocks]) {
      for (const l of block) {
        if (!(l instanceof SpatialTransformer)) continue;
        l.contextIndex = this.crossAttentions.length;
        this.crossAttentions.push(l);
      }
    }
  }

  /** forward takes one input under several contexts (x batch 1, context batch b), as guided sampling needs. */
  readonly sharesInput = true;

  /**
   * x [b, f, h, w, inDim] (noisy latents), t [b] (diffusion timesteps), context [b, n, contextDim] (text
   * features) -> [b, f, h, w, outDim]. h and w must be multiples of 2^(levels - 1).
   *
   * x and t may also have a batch of 1 under a context of batch b (classifier-free guidance: one latent, the prompt
   * and the empty text): the same as x and t repeated b times, but the blocks before the first cross-attention,
   * which cannot tell the copies apart, run once.
   */
  forward(x: tf.Tensor5D, t: tf.Tensor1D, context: tf.Tensor3D): tf.Tensor5D {
    const c = this.config;
    const [bx, f, h, w, ch] = x.shape;
    const b = context.shape[0];
    const factor = 2 ** (c.dimMult.length - 1);
    if (ch !== c.inDim) throw new Error(`UNetSD: input has ${ch} channels, expected ${c.inDim}`);
    if (h % factor !== 0 || w % factor !== 0) throw new Error(`UNetSD: latent size ${h}x${w} is not a multiple of ${factor}`);
    if (t.shape[0] !== bx) throw new Error(`UNetSD: ${t.shape[0]} timesteps for a batch of ${bx}`);
    if (bx !== b && bx !== 1) throw new Error(`UNetSD: context batch ${b} != input batch ${bx}`);
    for (const want of new Set([c.contextDim, c.decoderContextDim])) {
      if (context.shape[2] !== want) throw new Error(`UNetSD: context is ${context.shape[2]} wide, expected ${want}`);
    }

    return tf.tidy(() => {
      const e = this.timeEmbed[1].forward(silu(this.timeEmbed[0].forward(sinusoidalEmbedding(t, c.dim))));
      // ResBlocks repeat it over the frames of each video (upstream's repeat_interleave) where it differs
      const cond: Conditioning = { embSilu: silu(e) as tf.Tensor2D, context: this.projectContext(context), batch: bx };

      // Each block runs in its own tidy and activations are freed as soon as nothing needs them.
      let hcur = x.reshape([bx * f, h, w, ch]) as tf.Tensor4D;
      const skips: tf.Tensor4D[] = [];
      // From the first block that reads the context on, every copy of x has its own activations.
      const expand = () => {
        if (cond.batch === b) return;
        const repeat = <T extends tf.Tensor>(y: T): T => {
          const r = tf.tile(y, [b, ...y.shape.slice(1).map(() => 1)]) as T;
          y.dispose();
          return r;
        };
        if (skips.length === 0) {
          hcur = repeat(hcur);
        } else {
          skips.splice(0, skips.length, ...skips.map(repeat));
          hcur = skips[skips.length - 1]; // hcur was the last skip
        }
        cond.batch = b; // x had a batch of 1, so embSilu has one row: it holds for every copy
      };
      for (const block of this.inputBlocks) {
        if (block.some((l) => l instanceof SpatialTransformer)) expand();
        hcur = this.runBlock(block, hcur, cond, false);
        skips.push(hcur);
      }
      expand();
      hcur = this.runBlock(this.middleBlock, hcur, cond, false);
      for (const block of this.outputBlocks) {
        const skip = skips.pop() as tf.Tensor4D;
        const cat = this.ops.concat([hcur, skip], hcur.rank - 1) as tf.Tensor4D;
        hcur.dispose();
        skip.dispose();
        hcur = this.runBlock(block, cat, cond, true);
      }
      const y = this.outConv.forward(this.outNorm.forward(hcur, true) as tf.Tensor4D);
      return y.reshape([b, f, h, w, c.outDim]) as tf.Tensor5D;
    });
  }

  /**
   * The context's keys and values for every cross-attention, as the ops make them; `packed` is every attn2's to_k and
   * to_v side by side (made once, kept with the weights) for ops that project them all in one matmul.
   */
  private projectContext(context: tf.Tensor3D): ProjectedContext {
    const attns = this.crossAttentions.map((s) => s.block.attn2);
    const packed = () => {
      const weights = attns.flatMap((a) => [a.to_k.weight, a.to_v.weight]);
      return weights.length === 0 ? null : concatWeights(weights, (kind, from, make) => this.derived(`context_kv_${kind}`, from, make));
    };
    return this.ops.projectContext(context, attns.map((a) => a.keyValueWeights()), packed);
  }

  /**
   * The block's layers in turn, each in a tidy of its own; a layer's output is freed once the next one has run (and
   * `x` too where the block owns it), so a block never holds more than one layer's activations: zeroscope XL's guided
   * step peaked 2 GiB higher when the concatenated input and every layer's output lived to the block's end.
   */
  private runBlock(block: Layer[], x: tf.Tensor4D, cond: Conditioning, ownsInput: boolean): tf.Tensor4D {
    let y = x;
    for (const layer of block) {
      y = replace(y, ownsInput ? null : x, () => {
        if (layer instanceof ResBlock) return layer.forward(y, cond.embSilu, cond.batch);
        if (layer instanceof SpatialTransformer) return layer.forward(y, cond.context);
        if (layer instanceof TemporalTransformer) return layer.forward(y, cond.batch);
        return layer.forward(y);
      });
    }
    return y;
  }
}
