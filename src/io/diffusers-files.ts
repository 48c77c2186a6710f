/**
 * Which files of a diffusers-layout folder (damo-vilab/text-to-video-ms-1.7b, cerspense/zeroscope_v2_576w) the
 * conversion needs. Shared by the converter (a local folder) and `t2v download` (a hub file list).
 */
import type { NetworkKind } from '../layers/network.js';

/** The sub-folder of each network in the diffusers layout (the same names as ours). */
export const DIFFUSERS_FOLDERS: Record<NetworkKind, string> = { text_encoder: 'text_encoder', unet: 'unet', vae: 'vae' };

/** Weight file stems: diffusers models, then transformers' two spellings. */
const STEMS: Record<NetworkKind, { safetensors: string; bin: string }> = {
  unet: { safetensors: 'diffusion_pytorch_model', bin: 'diffusion_pytorch_model' },
  vae: { safetensors: 'diffusion_pytorch_model', bin: 'diffusion_pytorch_model' },
  text_encoder: { safetensors: 'model', bin: 'pytorch_model' },
};

/** The small files besides the weights; the tokenizer's last two are optional. */
export const CONFIG_FILES = ['model_index.json', 'scheduler/scheduler_config.json', 'unet/config.json', 'vae/config.json',
  'text_encoder/config.json', 'tokenizer/vocab.json', 'tokenizer/merges.txt'];
export const OPTIONAL_FILES = ['tokenizer/tokenizer_config.json', 'tokenizer/special_tokens_map.json'];

/** How one network's weights are stored: a single file, or a sharded index listing several. */
export interface WeightsChoice {
  /** Relative to the model folder. */
  file: string;
  /** True when `file` is a `*.index.json` whose weight_map names the shards. */
  sharded: boolean;
  /** The variant actually used ('' for the plain files). */
  variant: string;
}

/** `diffusion_pytorch_model.safetensors` with variant `fp16` -> `diffusion_pytorch_model.fp16.safetensors`. */
function withVariant(stem: string, ext: string, variant: string): string {
  return variant ? `${stem}.${variant}.${ext}` : `${stem}.${ext}`;
}

function indexName(stem: string, ext: string, variant: string): string {
  return variant ? `${stem}.${ext}.index.${variant}.json` : `${stem}.${ext}.index.json`;
}

/**
 * The weights to read for `kind`, as diffusers picks them: safetensors before .bin, the requested variant before
 * the plain files (and, with no variant asked, the plain files before any variant). `exists` answers for paths
 * relative to the model folder.
 */
export function chooseWeights(kind: NetworkKind, exists: (rel: string) => boolean, variant = ''): WeightsChoice | null {
  const folder = DIFFUSERS_FOLDERS[kind];
  const stems = STEMS[kind];
  const variants = variant ? [variant, ''] : ['', 'fp16'];
  for (const v of variants) {
    for (const ext of ['safetensors', 'bin'] as const) {
      const stem = stems[ext];
      const single = `${folder}/${withVariant(stem, ext, v)}`;
      if (exists(single)) return { file: single, sharded: false, variant: v };
      const index = `${folder}/${indexName(stem, ext, v)}`;
      if (exists(index)) return { file: index, sharded: true, variant: v };
    }
  }
  return null;
}

/** The shard file names of a sharded index (`{"weight_map": {key: file}}`), relative to the model folder. */
export function shardFiles(indexRel: string, index: unknown): string[] {
  const map = (index as { weight_map?: Record<string, string> } | null)?.weight_map;
  if (typeof map !== 'object' || map === null) throw new Error(`${indexRel}: no weight_map`);
  const folder = indexRel.slice(0, indexRel.lastIndexOf('/') + 1);
  return [...new Set(Object.values(map))].sort().map((f) => folder + f);
}
