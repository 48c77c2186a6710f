import type { TextEncoderConfig } from '../layers/clip/config.js';
import type { NetworkKind } from '../layers/network.js';
import type { VAEConfig } from '../layers/vae/config.js';

/**
 * The key of each Config field in `<net>/config.json`. The text encoder's and the VAE's files use upstream's
 * snake_case names (open_clip's CLIPTextCfg, the VAE's ddconfig), as every converted folder has since the first;
 * the UNet's file uses the Config's own names.
 */
const TEXT_ENCODER_KEYS: Record<keyof TextEncoderConfig, string> = {
  contextLength: 'context_length', vocabSize: 'vocab_size', width: 'width', heads: 'heads', layers: 'layers',
  mlpWidth: 'mlp_width', layerNormEps: 'layer_norm_eps',
};
const VAE_KEYS: Record<keyof VAEConfig, string> = {
  ch: 'ch', chMult: 'ch_mult', numResBlocks: 'num_res_blocks', attnLevels: 'attn_levels', inChannels: 'in_channels',
  outCh: 'out_ch', zChannels: 'z_channels', embedDim: 'embed_dim', resampWithConv: 'resamp_with_conv',
  givePreEnd: 'give_pre_end', tanhOut: 'tanh_out', normNumGroups: 'norm_num_groups', normEps: 'norm_eps',
};
const FILE_KEYS: Partial<Record<NetworkKind, Record<string, string>>> = { text_encoder: TEXT_ENCODER_KEYS, vae: VAE_KEYS };

/** A network's Config object as `<net>/config.json` holds it. */
export function configToJson(kind: NetworkKind, config: object): Record<string, unknown> {
  const keys = FILE_KEYS[kind];
  const c = config as Record<string, unknown>;
  if (!keys) return { ...c };
  return Object.fromEntries(Object.entries(keys).map(([field, key]) => [key, c[field]]));
}

/** `<net>/config.json`'s object (already checked by `checkNetworkConfig`) as the network's Config object. */
export function configFromJson(kind: NetworkKind, json: Record<string, unknown>): unknown {
  const keys = FILE_KEYS[kind];
  if (!keys) return { ...json };
  return Object.fromEntries(Object.entries(keys).map(([field, key]) => [field, json[key]]));
}
