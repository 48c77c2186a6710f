import type { NetworkSpec } from '../network.js';
import { UNetSD } from './unet.js';

/** UNetSD's configuration: `configuration.json`'s `model.model_cfg` `unet_*` keys, checked against the tensors. */
export interface UNetConfig {
  /** unet_in_dim: latent channels in. */
  inDim: number;
  /** unet_dim: base width; the sinusoidal time embedding has this many features. */
  dim: number;
  /** Width of the time-embedding MLP (4 * dim upstream). */
  embedDim: number;
  /** unet_context_dim: text-feature width seen by the encoder and middle cross-attention. */
  contextDim: number;
  /** The decoder's cross-attention context width (upstream hard-codes 1024 there). */
  decoderContextDim: number;
  /** unet_out_dim: channels out. */
  outDim: number;
  /** unet_dim_mult: width multiplier per level. */
  dimMult: number[];
  /** unet_num_heads: heads of the first temporal transformer (input_blocks.0.1). */
  numHeads: number;
  /** unet_head_dim: width of every attention head; the other transformers have width / headDim heads. */
  headDim: number;
  /** unet_res_blocks: ResBlocks per encoder level (one more per decoder level). */
  numResBlocks: number;
  /** unet_attn_scales: the resolutions (1, 1/2, 1/4, ...) whose blocks carry transformers. */
  attnScales: number[];
  /** temporal_attention: TemporalTransformers after the first conv and each SpatialTransformer. */
  temporalAttention: boolean;
  /** GroupNorm groups (32 everywhere upstream). */
  normGroups: number;
}

const NOT_UNET = 'is not a ModelScope UNetSD checkpoint (text2video_pytorch_model.pth)';

/**
 * The configuration from the checkpoint's PyTorch shapes and, when given, `model.model_cfg`. Shapes decide the
 * structure; the JSON supplies the head split (not visible in shapes) and must agree with the shapes elsewhere.
 */
export function inferUNetConfig(shapes: ReadonlyMap<string, readonly number[]>, json?: Record<string, unknown>): UNetConfig {
  const shape = (key: string): readonly number[] => {
    const s = shapes.get(key);
    if (!s) throw new Error(`checkpoint ${NOT_UNET}: missing ${key}`);
    return s;
  };
  const has = (key: string) => shapes.has(key);

  const [dim, inDim] = shape('input_blocks.0.0.weight');
  const embedDim = shape('time_embed.0.weight')[0];
  const outDim = shape('out.2.weight')[0];
  const temporalAttention = has('input_blocks.0.1.norm.weight');

  // Encoder structure: input blocks 1.. are ResBlock(+transformers) blocks, with a Downsample ending every level
  // but the last.
  const levels: { width: number; attn: boolean }[][] = [[]];
  for (let i = 1; has(`input_blocks.${i}.op.weight`) || has(`input_blocks.${i}.0.in_layers.0.weight`); i++) {
    if (has(`input_blocks.${i}.op.weight`)) { levels.push([]); continue; }
    levels[levels.length - 1].push({
      width: shape(`input_blocks.${i}.0.out_layers.3.weight`)[0],
      attn: has(`input_blocks.${i}.1.norm.weight`),
    });
  }
  const numResBlocks = levels[0].length;
  if (numResBlocks === 0 || levels.some((l) => l.length !== numResBlocks)) {
    throw new Error(`checkpoint ${NOT_UNET}: input blocks do not form levels of equal depth`);
  }
  const dimMult = levels.map((l) => l[0].width / dim);
  const attnScales = levels.flatMap((l, i) => (l[0].attn ? [2 ** -i] : []));
  const contextDim = shape('middle_block.1.transformer_blocks.0.attn2.to_k.weight')[1];
  let decoderContextDim = contextDim;
  for (let i = 0; has(`output_blocks.${i}.0.in_layers.0.weight`); i++) {
    const k = `output_blocks.${i}.1.transformer_blocks.0.attn2.to_k.weight`;
    if (has(k)) { decoderContextDim = shape(k)[1]; break; }
  }
  const normGroups = 32;

  const cfg: Record<string, unknown> = { ...json };
  // The released configuration.json spells it as a string; upstream reads `cfg['temporal_attention'] == 'True'`.
  if (typeof cfg.temporal_attention === 'string') cfg.temporal_attention = cfg.temporal_attention === 'True';
  const agree = (key: string, inferred: unknown): void => {
    const v = cfg[key];
    if (v === undefined) return;
    if (JSON.stringify(v) !== JSON.stringify(inferred)) {
      throw new Error(`configuration.json model_cfg ${key} = ${JSON.stringify(v)} but the checkpoint has ${JSON.stringify(inferred)}`);
    }
  };
  agree('unet_in_dim', inDim);
  agree('unet_dim', dim);
  agree('unet_out_dim', outDim);
  agree('unet_context_dim', contextDim);
  agree('unet_res_blocks', numResBlocks);
  agree('temporal_attention', temporalAttention);
  agree('unet_dim_mult', dimMult);
  if (Array.isArray(cfg.unet_attn_scales)) {
    // Upstream tests `scale in attn_scales`, so scales no level reaches do nothing.
    const reached = (cfg.unet_attn_scales as number[]).filter((s) => levels.some((_, i) => 2 ** -i === s));
    if ([...reached].sort().join() !== [...attnScales].sort().join()) {
      throw new Error(`configuration.json model_cfg unet_attn_scales = ${JSON.stringify(cfg.unet_attn_scales)} but the checkpoint has transformers at scales ${JSON.stringify(attnScales)}`);
    }
  }

  // Head split: not visible in shapes. UNetSD's defaults are head_dim 64 and num_heads dim // 32.
  const headDim = typeof cfg.unet_head_dim === 'number' ? cfg.unet_head_dim : 64;
  let numHeads = typeof cfg.unet_num_heads === 'number' ? cfg.unet_num_heads : Math.floor(dim / 32);
  if (temporalAttention) {
    const inner = shape('input_blocks.0.1.proj_in.weight')[0];
    if (typeof cfg.unet_num_heads !== 'number') numHeads = inner / headDim;
    if (numHeads * headDim !== inner) {
      throw new Error(`configuration.json model_cfg: unet_num_heads ${numHeads} x unet_head_dim ${headDim} != ${inner}, the first temporal transformer's width`);
    }
  }
  for (const m of dimMult) {
    if ((dim * m) % headDim !== 0) throw new Error(`UNetSD: level width ${dim * m} is not a multiple of unet_head_dim ${headDim}`);
    if ((dim * m) % normGroups !== 0) throw new Error(`UNetSD: level width ${dim * m} is not a multiple of ${normGroups} (GroupNorm)`);
  }
  return { inDim, dim, embedDim, contextDim, decoderContextDim, outDim, dimMult, numHeads, headDim, numResBlocks, attnScales, temporalAttention, normGroups };
}

export const unetSpec: NetworkSpec<UNetConfig, UNetSD> = {
  kind: 'unet',
  infer: inferUNetConfig,
  build: (config) => new UNetSD(config),
};
