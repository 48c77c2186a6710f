import type { NetworkSpec } from '../network.js';
import { OpenCLIPTextEncoder } from './text-encoder.js';

/**
 * OpenCLIP's text tower as ModelScope runs it (FrozenOpenCLIPEmbedder, layer='penultimate'): upstream
 * CLIPTextCfg names in camelCase (config.json keeps upstream's spelling, `context_length`, ...). `layers` counts
 * the residual blocks that run, one fewer than the checkpoint holds.
 */
export interface TextEncoderConfig {
  contextLength: number;
  vocabSize: number;
  width: number;
  heads: number;
  layers: number;
  /** c_fc's output width (upstream width * mlp_ratio, 4). */
  mlpWidth: number;
  /** torch.nn.LayerNorm's default, fixed in upstream code. */
  layerNormEps: number;
}

/** Upstream's head width: ViT-H-14 has width 1024 and 16 heads; every OpenCLIP text config keeps heads = width / 64. */
const HEAD_WIDTH = 64;

function need(shapes: ReadonlyMap<string, readonly number[]>, key: string): readonly number[] {
  const s = shapes.get(key);
  if (!s) throw new Error(`not an OpenCLIP text tower checkpoint: no tensor ${key}`);
  return s;
}

/** The configuration from tensor shapes (PyTorch layout, keys as in open_clip's CLIP state_dict). */
export function inferTextEncoderConfig(shapes: ReadonlyMap<string, readonly number[]>): TextEncoderConfig {
  const [vocabSize, width] = need(shapes, 'token_embedding.weight');
  const pos = need(shapes, 'positional_embedding');
  if (pos.length !== 2 || pos[1] !== width) {
    throw new Error(`OpenCLIP text tower: positional_embedding is [${pos}], expected [context_length, ${width}]`);
  }
  let blocks = 0;
  while (shapes.has(`transformer.resblocks.${blocks}.attn.in_proj_weight`)) blocks++;
  if (blocks < 2) {
    throw new Error(`OpenCLIP text tower: ${blocks} residual block(s) in the checkpoint; the penultimate-layer output needs at least 2`);
  }
  const inProj = need(shapes, 'transformer.resblocks.0.attn.in_proj_weight');
  if (inProj[0] !== 3 * width || inProj[1] !== width) {
    throw new Error(`OpenCLIP text tower: in_proj_weight is [${inProj}], expected [${3 * width}, ${width}]`);
  }
  if (width % HEAD_WIDTH !== 0) throw new Error(`OpenCLIP text tower: width ${width} is not a multiple of the head width ${HEAD_WIDTH}`);
  const mlpWidth = need(shapes, 'transformer.resblocks.0.mlp.c_fc.weight')[0];
  return {
    contextLength: pos[0],
    vocabSize,
    width,
    heads: width / HEAD_WIDTH,
    layers: blocks - 1,
    mlpWidth,
    layerNormEps: 1e-5,
  };
}

const RESBLOCK = /^transformer\.resblocks\.(\d+)\./;

export const textEncoderSpec: NetworkSpec<TextEncoderConfig, OpenCLIPTextEncoder> = {
  kind: 'text_encoder',
  infer: (shapes) => inferTextEncoderConfig(shapes),
  build: (config) => new OpenCLIPTextEncoder(config),
  /** The image tower, the projection to the joint space, the logit scale, and the blocks after the penultimate. */
  isUnused: (key, config) => {
    if (key.startsWith('visual.') || key === 'text_projection' || key === 'logit_scale' || key === 'attn_mask') return true;
    const m = RESBLOCK.exec(key);
    return m !== null && Number(m[1]) >= config.layers;
  },
};
