import type { NetworkSpec } from '../network.js';
import { AutoencoderKL } from './autoencoder.js';

/**
 * ModelScope's AutoencoderKL, configured as upstream's `ddconfig` plus `embed_dim` (upstream names in camelCase;
 * config.json keeps upstream's spelling, `ch_mult`, ...), with what the checkpoint cannot tell filled by upstream's
 * defaults. `attnLevels` replaces upstream's `attn_resolutions`: the shapes reveal which levels carry attention
 * blocks, not the training resolution they were named by.
 */
export interface VAEConfig {
  ch: number;
  chMult: number[];
  numResBlocks: number;
  /** Levels (upstream `i_level`, 0 = full resolution) whose blocks are followed by an AttnBlock. */
  attnLevels: number[];
  inChannels: number;
  outCh: number;
  zChannels: number;
  embedDim: number;
  /** Downsample/Upsample with a conv (true upstream) or with average pooling / no conv. */
  resampWithConv: boolean;
  /** The decoder returns the features before norm_out (upstream default false). */
  givePreEnd: boolean;
  /** The decoder ends with tanh (upstream default false). */
  tanhOut: boolean;
  /** Upstream `Normalize`: GroupNorm(32 groups, eps 1e-6, affine). */
  normNumGroups: number;
  normEps: number;
}

/** How many times the decoder upsamples (and the encoder downsamples): 2^(levels - 1). */
export function vaeScaleFactor(c: VAEConfig): number {
  return 2 ** (c.chMult.length - 1);
}

// Upstream's Normalize(): fixed in the code, not visible in a checkpoint.
const NORM_GROUPS = 32;
const NORM_EPS = 1e-6;

function need(shapes: ReadonlyMap<string, readonly number[]>, key: string): readonly number[] {
  const s = shapes.get(key);
  if (!s) throw new Error(`not an AutoencoderKL checkpoint: no tensor ${key}`);
  return s;
}

function countIndices(shapes: ReadonlyMap<string, readonly number[]>, prefix: string, suffix: string): number {
  let n = 0;
  while (shapes.has(`${prefix}${n}${suffix}`)) n++;
  return n;
}

/** The configuration from tensor shapes (PyTorch layout, `first_stage_model.` already stripped). */
export function inferVAEConfig(shapes: ReadonlyMap<string, readonly number[]>): VAEConfig {
  const convIn = need(shapes, 'encoder.conv_in.weight'); // [ch, in_channels, 3, 3]
  const ch = convIn[0];
  const levels = countIndices(shapes, 'encoder.down.', '.block.0.conv1.weight');
  if (levels === 0) throw new Error('not an AutoencoderKL checkpoint: no encoder.down.0.block.0');
  const chMult: number[] = [];
  for (let i = 0; i < levels; i++) {
    const out = need(shapes, `encoder.down.${i}.block.0.conv1.weight`)[0];
    if (out % ch !== 0) throw new Error(`AutoencoderKL: encoder.down.${i} has ${out} channels, not a multiple of ch=${ch}`);
    chMult.push(out / ch);
  }
  const numResBlocks = countIndices(shapes, 'encoder.down.0.block.', '.conv1.weight');
  const decBlocks = countIndices(shapes, 'decoder.up.0.block.', '.conv1.weight');
  if (decBlocks !== numResBlocks + 1) {
    throw new Error(`AutoencoderKL: decoder.up.0 has ${decBlocks} blocks, expected num_res_blocks + 1 = ${numResBlocks + 1}`);
  }
  const attnLevels: number[] = [];
  for (let i = 0; i < levels; i++) {
    const enc = shapes.has(`encoder.down.${i}.attn.0.q.weight`);
    const dec = shapes.has(`decoder.up.${i}.attn.0.q.weight`);
    if (enc !== dec) throw new Error(`AutoencoderKL: attention at level ${i} in only one of encoder and decoder`);
    if (enc) attnLevels.push(i);
  }
  const encOut = need(shapes, 'encoder.conv_out.weight')[0];
  const zChannels = need(shapes, 'decoder.conv_in.weight')[1];
  if (encOut !== 2 * zChannels) {
    throw new Error(`AutoencoderKL: encoder.conv_out has ${encOut} channels; only double_z (2 * z_channels = ${2 * zChannels}) is supported`);
  }
  const embedDim = need(shapes, 'post_quant_conv.weight')[1];
  if (![ch, ...chMult.map((m) => m * ch)].every((c) => c % NORM_GROUPS === 0)) {
    throw new Error(`AutoencoderKL: channel counts ${ch} x [${chMult}] are not divisible by the ${NORM_GROUPS} GroupNorm groups`);
  }
  return {
    ch,
    chMult,
    numResBlocks,
    attnLevels,
    inChannels: convIn[1],
    outCh: need(shapes, 'decoder.conv_out.weight')[0],
    zChannels,
    embedDim,
    resampWithConv: levels === 1 || shapes.has('encoder.down.0.downsample.conv.weight'),
    givePreEnd: false,
    tanhOut: false,
    normNumGroups: NORM_GROUPS,
    normEps: NORM_EPS,
  };
}

export const vaeSpec: NetworkSpec<VAEConfig, AutoencoderKL> = {
  kind: 'vae',
  infer: (shapes) => inferVAEConfig(shapes),
  build: (config) => new AutoencoderKL(config),
};
