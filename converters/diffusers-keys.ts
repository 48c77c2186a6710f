/**
 * The diffusers layout's weight names mapped onto ours (the upstream ModelScope UNetSD, LDM AutoencoderKL and
 * OpenCLIP text tower names), one table per network, written from the structure of diffusers'
 * UNet3DConditionModel and AutoencoderKL and of transformers' CLIPTextModel.
 *
 * A rule maps a diffusers key to our key and says how the tensor changes on the way:
 *   'same'       unchanged
 *   'conv1d'     a Linear weight [out, in] that is a Conv1d k=1 upstream: [out, in, 1]
 *   'conv2d'     a Linear weight [out, in] that is a 1x1 Conv2d upstream: [out, in, 1, 1]
 *   'qkv:<i>'    one of q/k/v (i = 0, 1, 2), concatenated along dim 0 into OpenCLIP's in_proj_weight / in_proj_bias
 *   'skip'       not a weight of ours (transformers' position_ids buffer)
 */
export type KeyTransform = 'same' | 'conv1d' | 'conv2d' | 'qkv:0' | 'qkv:1' | 'qkv:2' | 'skip';

export interface MappedKey {
  key: string;
  transform: KeyTransform;
}

/** What the UNet table needs from `unet/config.json`. */
export interface DiffusersUNetLayout {
  layers_per_block: number;
  up_block_types: string[];
}

/** What the VAE table needs from `vae/config.json`. */
export interface DiffusersVAELayout {
  up_block_types: string[];
}

type Rule = [RegExp, (m: RegExpExecArray) => string];

function apply(rules: readonly Rule[], key: string): string | null {
  for (const [re, to] of rules) {
    const m = re.exec(key);
    if (m) return to(m) + key.slice(m[0].length);
  }
  return null;
}

// ResnetBlock3D (diffusers) -> ResBlock (ModelScope): the local names of the sub-layers.
const UNET_RESNET: Record<string, string> = {
  norm1: 'in_layers.0', conv1: 'in_layers.2', time_emb_proj: 'emb_layers.1',
  norm2: 'out_layers.0', conv2: 'out_layers.3', conv_shortcut: 'skip_connection',
};

/**
 * UNet3DConditionModel -> UNetSD. Block indices follow UNetSD's construction: input_blocks[0] is conv_in plus the
 * first temporal transformer; each down level then has `layers_per_block` blocks [ResBlock, SpatialTransformer,
 * TemporalTransformer] and, except the last level, a Downsample block; middle_block is [ResBlock,
 * SpatialTransformer, TemporalTransformer, ResBlock]; each up level has `layers_per_block + 1` blocks, the last one
 * carrying the Upsample after its transformers. The temporal convolutions live inside ResBlock (`temopral_conv`).
 */
export function mapUNetKey(key: string, c: DiffusersUNetLayout): MappedKey {
  const L = c.layers_per_block;
  const down = (b: string, l: string): number => 1 + Number(b) * (L + 1) + Number(l);
  const up = (b: string, l: string): number => Number(b) * (L + 1) + Number(l);
  const upsampleSlot = (b: string): number => (c.up_block_types[Number(b)]?.startsWith('CrossAttn') ? 3 : 1);
  const resnet = (prefix: string, local: string): string => {
    const name = UNET_RESNET[local];
    if (!name) throw new Error(`unknown UNet resnet weight ${key}`);
    return `${prefix}.${name}`;
  };
  const rules: Rule[] = [
    [/^time_embedding\.linear_1/, () => 'time_embed.0'],
    [/^time_embedding\.linear_2/, () => 'time_embed.2'],
    [/^conv_in/, () => 'input_blocks.0.0'],
    [/^transformer_in/, () => 'input_blocks.0.1'],
    [/^conv_norm_out/, () => 'out.0'],
    [/^conv_out/, () => 'out.2'],
    [/^down_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)/, (m) => resnet(`input_blocks.${down(m[1], m[2])}.0`, m[3])],
    [/^down_blocks\.(\d+)\.temp_convs\.(\d+)/, (m) => `input_blocks.${down(m[1], m[2])}.0.temopral_conv`],
    [/^down_blocks\.(\d+)\.attentions\.(\d+)/, (m) => `input_blocks.${down(m[1], m[2])}.1`],
    [/^down_blocks\.(\d+)\.temp_attentions\.(\d+)/, (m) => `input_blocks.${down(m[1], m[2])}.2`],
    [/^down_blocks\.(\d+)\.downsamplers\.0\.conv/, (m) => `input_blocks.${down(m[1], String(L))}.op`],
    [/^mid_block\.resnets\.([01])\.(\w+)/, (m) => resnet(`middle_block.${m[1] === '0' ? 0 : 3}`, m[2])],
    [/^mid_block\.temp_convs\.([01])/, (m) => `middle_block.${m[1] === '0' ? 0 : 3}.temopral_conv`],
    [/^mid_block\.attentions\.0/, () => 'middle_block.1'],
    [/^mid_block\.temp_attentions\.0/, () => 'middle_block.2'],
    [/^up_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)/, (m) => resnet(`output_blocks.${up(m[1], m[2])}.0`, m[3])],
    [/^up_blocks\.(\d+)\.temp_convs\.(\d+)/, (m) => `output_blocks.${up(m[1], m[2])}.0.temopral_conv`],
    [/^up_blocks\.(\d+)\.attentions\.(\d+)/, (m) => `output_blocks.${up(m[1], m[2])}.1`],
    [/^up_blocks\.(\d+)\.temp_attentions\.(\d+)/, (m) => `output_blocks.${up(m[1], m[2])}.2`],
    [/^up_blocks\.(\d+)\.upsamplers\.0\.conv/, (m) => `output_blocks.${up(m[1], String(L))}.${upsampleSlot(m[1])}.conv`],
  ];
  const ours = apply(rules, key);
  if (ours === null) throw new Error(`unknown UNet3DConditionModel weight ${key}`);
  // The temporal transformers' proj_in/proj_out are Linear in diffusers and Conv1d k=1 upstream.
  const temporal = /^(transformer_in|(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.temp_attentions\.\d+)\.proj_(in|out)\.weight$/;
  return { key: ours, transform: temporal.test(key) ? 'conv1d' : 'same' };
}

/**
 * AutoencoderKL (diffusers) -> AutoencoderKL (LDM). Decoder levels run in the opposite order: diffusers'
 * up_blocks[0] is the lowest resolution, LDM's up[0] the highest. The mid-block attention is Linear in diffusers
 * (to_q/to_k/to_v/to_out.0, or query/key/value/proj_attn in files saved before diffusers 0.15) and 1x1 convs in LDM.
 */
export function mapVAEKey(key: string, c: DiffusersVAELayout): MappedKey {
  const n = c.up_block_types.length;
  const res = (local: string): string => (local === 'conv_shortcut' ? 'nin_shortcut' : local);
  const rules: Rule[] = [
    [/^(encoder|decoder)\.conv_norm_out/, (m) => `${m[1]}.norm_out`],
    [/^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)/, (m) => `encoder.down.${m[1]}.block.${m[2]}.${res(m[3])}`],
    [/^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv/, (m) => `encoder.down.${m[1]}.downsample.conv`],
    [/^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)/, (m) => `decoder.up.${n - 1 - Number(m[1])}.block.${m[2]}.${res(m[3])}`],
    [/^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv/, (m) => `decoder.up.${n - 1 - Number(m[1])}.upsample.conv`],
    [/^(encoder|decoder)\.mid_block\.resnets\.([01])\.(\w+)/, (m) => `${m[1]}.mid.block_${Number(m[2]) + 1}.${res(m[3])}`],
    [/^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|query|to_k|key|to_v|value|to_out\.0|proj_attn)/,
      (m) => `${m[1]}.mid.attn_1.${VAE_ATTN[m[2]]}`],
    [/^(encoder|decoder)\.(conv_in|conv_out)/, (m) => `${m[1]}.${m[2]}`],
    [/^(quant_conv|post_quant_conv)/, (m) => m[1]],
  ];
  const ours = apply(rules, key);
  if (ours === null) throw new Error(`unknown AutoencoderKL weight ${key}`);
  const linearAttn = /\.mid_block\.attentions\.0\.(to_q|query|to_k|key|to_v|value|to_out\.0|proj_attn)\.weight$/;
  return { key: ours, transform: linearAttn.test(key) ? 'conv2d' : 'same' };
}

const VAE_ATTN: Record<string, string> = {
  group_norm: 'norm', to_q: 'q', query: 'q', to_k: 'k', key: 'k', to_v: 'v', value: 'v',
  'to_out.0': 'proj_out', proj_attn: 'proj_out',
};

/**
 * CLIPTextModel (transformers) -> OpenCLIP's text tower. The separate q/k/v projections become one
 * in_proj_weight / in_proj_bias; `text_model.` (present in files saved by older transformers) is dropped.
 */
export function mapTextKey(key: string): MappedKey {
  const k = key.startsWith('text_model.') ? key.slice('text_model.'.length) : key;
  if (k === 'embeddings.position_ids') return { key: k, transform: 'skip' };
  const qkv = /^encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$/.exec(k);
  if (qkv) {
    return { key: `transformer.resblocks.${qkv[1]}.attn.in_proj_${qkv[3]}`, transform: `qkv:${'qkv'.indexOf(qkv[2])}` as KeyTransform };
  }
  const rules: Rule[] = [
    [/^embeddings\.token_embedding\.weight$/, () => 'token_embedding.weight'],
    [/^embeddings\.position_embedding\.weight$/, () => 'positional_embedding'],
    [/^final_layer_norm/, () => 'ln_final'],
    [/^encoder\.layers\.(\d+)\.self_attn\.out_proj/, (m) => `transformer.resblocks.${m[1]}.attn.out_proj`],
    [/^encoder\.layers\.(\d+)\.layer_norm1/, (m) => `transformer.resblocks.${m[1]}.ln_1`],
    [/^encoder\.layers\.(\d+)\.layer_norm2/, (m) => `transformer.resblocks.${m[1]}.ln_2`],
    [/^encoder\.layers\.(\d+)\.mlp\.fc1/, (m) => `transformer.resblocks.${m[1]}.mlp.c_fc`],
    [/^encoder\.layers\.(\d+)\.mlp\.fc2/, (m) => `transformer.resblocks.${m[1]}.mlp.c_proj`],
  ];
  const ours = apply(rules, k);
  if (ours === null) throw new Error(`unknown CLIPTextModel weight ${key}`);
  return { key: ours, transform: 'same' };
}
