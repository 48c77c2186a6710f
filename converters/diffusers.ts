/**
 * Converts the diffusers folder layout (model_index.json; unet/, vae/, text_encoder/, tokenizer/, scheduler/) into a
 * t2v model folder: the same format `convertModelScope` writes, weights under the upstream ModelScope / LDM /
 * OpenCLIP names (converters/diffusers-keys.ts), and t2v.json filled from what the folder's configs say.
 */
import { existsSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { NetworkKind } from '../src/layers/network.js';
import { MODEL_FORMAT, MODEL_VERSION, type ModelInfo } from '../src/io/model-folder.js';
import type { Checkpoint, TensorEntry } from './checkpoint.js';
import { CONFIG_FILES, OPTIONAL_FILES, chooseWeights, shardFiles, type WeightsChoice } from '../src/io/diffusers-files.js';
import { mapTextKey, mapUNetKey, mapVAEKey, type MappedKey } from './diffusers-keys.js';
import { ConvertError, checkNetwork, copyFresh, writeAtomically, writeNetwork, type NetworkSummary, type ProgressEvent } from './modelscope.js';
import { NETWORK_NAMES } from '../src/layers/registry.js';
import { openCheckpoint } from './open.js';
import type { StorageDType } from '../src/io/weights-manifest.js';

type Json = Record<string, unknown>;

export interface DiffusersConvertOptions {
  dtype?: StorageDType;
  /** Prefer `<name>.<variant>.<ext>` weight files (`fp16`); the plain files are used where a variant is missing. */
  variant?: string;
  /** Replace an existing non-empty output folder. */
  force?: boolean;
  groupBytes?: number;
  onProgress?: (e: ProgressEvent) => void;
  /** Told the temporary folders of an earlier, interrupted conversion into the same place, which were removed. */
  onStale?: (removed: string[]) => void;
  /** Extra facts for t2v.json's `source` (the hub id and revision, from `t2v download`). */
  source?: Json;
}

export interface DiffusersSummary {
  out: string;
  dtype: StorageDType;
  networks: NetworkSummary[];
  bytes: number;
  seconds: number;
  /** Settings of the folder that t2v's sampler does not follow yet (one line each; empty for the released models). */
  notes: string[];
}

/**
 * Where the folder's DDIMScheduler settings step differently from t2v's DDIM (the folder's steps_offset and
 * timestep_spacing, the last step towards alphas_cumprod[0], eps, no clipping).
 */
export function schedulerNotes(s: Json): string[] {
  const notes: string[] = [];
  const cls = typeof s._class_name === 'string' ? s._class_name : 'DDIMScheduler';
  if (cls !== 'DDIMScheduler') notes.push(`scheduler ${cls}: t2v samples with DDIM (eta 0)`);
  const differs = (key: string, value: unknown, want: unknown) => {
    if (value !== undefined && value !== want) notes.push(`scheduler ${key} ${JSON.stringify(value)} (t2v's DDIM runs as ${JSON.stringify(want)})`);
  };
  // steps_offset and timestep_spacing are followed (src/pipeline/schedulers: noiseScheduleFromInfo)
  differs('set_alpha_to_one', s.set_alpha_to_one ?? true, false);
  differs('clip_sample', s.clip_sample ?? true, false);
  differs('thresholding', s.thresholding, false);
  differs('rescale_betas_zero_snr', s.rescale_betas_zero_snr, false);
  return notes;
}

/** True for a folder in the diffusers layout (what `t2v convert` uses to pick this converter). */
export function isDiffusersFolder(dir: string): boolean {
  const has = (f: string) => existsSync(join(dir, f));
  return has('model_index.json') || (has('unet/config.json') && has('vae/config.json') && has('text_encoder/config.json'));
}

/** Which converter a source folder needs: the ModelScope release has configuration.json, diffusers model_index.json. */
export function detectLayout(dir: string): 'modelscope' | 'diffusers' | null {
  if (existsSync(join(dir, 'configuration.json'))) return 'modelscope';
  return isDiffusersFolder(dir) ? 'diffusers' : null;
}

async function readJson(dir: string, rel: string): Promise<Json> {
  const path = join(dir, rel);
  if (!existsSync(path)) throw new ConvertError(`${dir}: no ${rel} (expected the diffusers folder layout)`);
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Json;
  } catch (err) {
    throw new ConvertError(`${path}: ${(err as Error).message}`);
  }
}

export interface DiffusersConfigs {
  model_index: Json;
  scheduler: Json;
  unet: Json;
  vae: Json;
  text_encoder: Json;
}

export async function readDiffusersConfigs(dir: string): Promise<DiffusersConfigs> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ConvertError(`${dir}: no such folder`);
  const index = existsSync(join(dir, 'model_index.json')) ? await readJson(dir, 'model_index.json') : {};
  const cls = index._class_name;
  if (typeof cls === 'string' && !/TextToVideo|VideoToVideo/.test(cls)) {
    throw new ConvertError(`${dir}: model_index.json is a ${cls}, not a text-to-video pipeline (TextToVideoSDPipeline)`);
  }
  const unet = await readJson(dir, 'unet/config.json');
  if (unet._class_name !== undefined && unet._class_name !== 'UNet3DConditionModel') {
    throw new ConvertError(`${dir}/unet: a ${String(unet._class_name)}, not a UNet3DConditionModel`);
  }
  return {
    model_index: index,
    scheduler: existsSync(join(dir, 'scheduler/scheduler_config.json')) ? await readJson(dir, 'scheduler/scheduler_config.json') : {},
    unet,
    vae: await readJson(dir, 'vae/config.json'),
    text_encoder: await readJson(dir, 'text_encoder/config.json'),
  };
}

/** Opens a network's weights (one file or every shard of an index) as one checkpoint under diffusers' names. */
async function openWeights(dir: string, choice: WeightsChoice): Promise<Checkpoint> {
  const files = choice.sharded ? shardFiles(choice.file, await readJson(dir, choice.file)) : [choice.file];
  const opened: Checkpoint[] = [];
  try {
    for (const f of files) opened.push(await openCheckpoint(join(dir, f)));
  } catch (err) {
    for (const c of opened) await c.close();
    throw new ConvertError(err instanceof Error ? err.message : String(err));
  }
  const entries = new Map<string, TensorEntry>();
  for (const c of opened) for (const [k, e] of c.entries) entries.set(k, e);
  return { path: join(dir, choice.file), entries, close: async () => { for (const c of opened) await c.close(); } };
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

/**
 * The checkpoint under our names: each entry renamed by `map`, Linear weights given their conv shapes, and
 * q/k/v projections joined into one in_proj tensor (read lazily, like every entry).
 */
export function mapCheckpoint(src: Checkpoint, map: (key: string) => MappedKey): Checkpoint {
  const entries = new Map<string, TensorEntry>();
  const qkv = new Map<string, (TensorEntry | undefined)[]>();
  for (const [k, e] of src.entries) {
    let m: MappedKey;
    try {
      m = map(k);
    } catch (err) {
      throw new ConvertError(`${src.path}: ${(err as Error).message} (not this model family's layout)`);
    }
    if (m.transform === 'skip') continue;
    if (m.transform.startsWith('qkv:')) {
      const parts = qkv.get(m.key) ?? [undefined, undefined, undefined];
      parts[Number(m.transform.slice(4))] = e;
      qkv.set(m.key, parts);
      if (!entries.has(m.key)) entries.set(m.key, e); // placeholder keeps file order; replaced below
      continue;
    }
    if (entries.has(m.key)) throw new ConvertError(`${basename(src.path)}: ${k} maps to ${m.key}, which another weight already has`);
    const shape = m.transform === 'conv1d' ? [...e.shape, 1] : m.transform === 'conv2d' ? [...e.shape, 1, 1] : e.shape;
    entries.set(m.key, { name: m.key, dtype: e.dtype, shape, read: () => e.read() });
  }
  for (const [key, parts] of qkv) {
    const [q, k, v] = parts;
    if (!q || !k || !v) throw new ConvertError(`${basename(src.path)}: ${key}: the q, k and v projections are not all present`);
    const shape = [q.shape[0] + k.shape[0] + v.shape[0], ...q.shape.slice(1)];
    entries.set(key, { name: key, dtype: q.dtype, shape, read: async () => concat([await q.read(), await k.read(), await v.read()]) });
  }
  return { path: src.path, entries, close: () => src.close() };
}

/**
 * Writes one network from a checkpoint already under our names into `<outDir>/<kind>/`: configuration inferred
 * from the shapes (and `json`), key set checked against the module, tensors moved to tfjs layout one at a time.
 */
export async function convertNetworkCheckpoint(kind: NetworkKind, ckpt: Checkpoint, outDir: string,
  opts: { dtype?: StorageDType; json?: Json; groupBytes?: number; onProgress?: (e: ProgressEvent) => void } = {}): Promise<NetworkSummary> {
  const file = ckpt.path;
  const foreign = (why: string) => new ConvertError(`${file}: not a diffusers ${NETWORK_NAMES[kind]} of this model family: ${why}`);
  const shapes = new Map<string, readonly number[]>();
  for (const [k, e] of ckpt.entries) shapes.set(k, e.shape);
  if (kind === 'text_encoder') {
    try {
      withDroppedLastBlock(shapes, opts.json);
    } catch (err) {
      throw foreign((err as Error).message);
    }
  }
  const { config, module, entries, unused } = checkNetwork(kind, ckpt.entries, foreign, { json: opts.json, shapes });
  return writeNetwork({ kind, path: file, ckpt, config, module, entries, skipped: unused }, outDir, opts);
}

const RESBLOCK0 = 'transformer.resblocks.0.';

/**
 * transformers' CLIPTextModel in this layout holds OpenCLIP's blocks up to the penultimate one (the output the
 * pipeline uses) and drops the last. Our text spec infers `layers` (blocks that run) as blocks held minus one, as
 * OpenCLIP files hold them all, so the shapes given to it name the dropped block too (shaped as block 0); it has
 * no weights here and none are needed.
 */
function withDroppedLastBlock(shapes: Map<string, readonly number[]>, hf?: Json): void {
  let n = 0;
  while (shapes.has(`transformer.resblocks.${n}.attn.in_proj_weight`)) n++;
  if (n === 0) throw new Error('no encoder.layers.0 weights');
  if (typeof hf?.num_hidden_layers === 'number' && hf.num_hidden_layers !== n) {
    throw new Error(`text_encoder/config.json says num_hidden_layers ${hf.num_hidden_layers}, the weights hold ${n}`);
  }
  const width = shapes.get('token_embedding.weight')?.[1];
  if (typeof hf?.num_attention_heads === 'number' && width !== undefined && hf.num_attention_heads * 64 !== width) {
    throw new Error(`text_encoder/config.json: ${hf.num_attention_heads} heads of width ${width} (OpenCLIP's text towers use 64-wide heads)`);
  }
  if (typeof hf?.hidden_act === 'string' && hf.hidden_act !== 'gelu') {
    throw new Error(`text_encoder/config.json: hidden_act ${hf.hidden_act} (OpenCLIP ViT-H-14 uses exact gelu)`);
  }
  for (const [k, s] of [...shapes]) {
    if (k.startsWith(RESBLOCK0)) shapes.set(`transformer.resblocks.${n}.${k.slice(RESBLOCK0.length)}`, s);
  }
}

const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v : d);

/** ModelScope's `model_cfg` keys that the UNet spec reads, from UNet3DConditionModel's config.json. */
export function unetJsonFromDiffusers(c: Json): Json {
  const head = c.attention_head_dim;
  if (Array.isArray(head) && new Set(head).size > 1) {
    throw new ConvertError(`unet/config.json: attention_head_dim ${JSON.stringify(head)} differs per block; this model family uses one value`);
  }
  // diffusers' UNet3D reads `attention_head_dim` as the width of each head (its Transformer2DModel gets
  // channels / attention_head_dim heads), as ModelScope's unet_head_dim; transformer_in's 8 heads follow from shapes.
  const out: Json = { unet_head_dim: Array.isArray(head) ? head[0] : num(head, 64) };
  if (typeof c.layers_per_block === 'number') out.unet_res_blocks = c.layers_per_block;
  if (typeof c.cross_attention_dim === 'number') out.unet_context_dim = c.cross_attention_dim;
  return out;
}

/** The scheduler, defaults and VAE scale of t2v.json from the folder's configs. */
export function diffusersModelInfo(c: DiffusersConfigs): Pick<ModelInfo, 'scale_factor' | 'defaults' | 'scheduler'> {
  const s = c.scheduler;
  const schedule = typeof s.beta_schedule === 'string' ? s.beta_schedule : 'scaled_linear';
  if (Array.isArray(s.trained_betas) && s.trained_betas.length > 0) {
    throw new ConvertError('scheduler/scheduler_config.json: trained_betas is not supported');
  }
  const prediction = typeof s.prediction_type === 'string' ? s.prediction_type : 'epsilon';
  const meanType = ({ epsilon: 'eps', v_prediction: 'v', sample: 'x0' } as Record<string, string>)[prediction];
  if (!meanType) throw new ConvertError(`scheduler/scheduler_config.json: prediction_type ${prediction} is not supported`);
  // The unet's sample_size is the latent size: the default picture is 8x that (the VAE's factor), per side.
  const sample = c.unet.sample_size;
  const [lh, lw] = Array.isArray(sample) ? [num(sample[0], 32), num(sample[1], 32)] : [num(sample, 32), num(sample, 32)];
  const vaeFactor = 2 ** (Array.isArray(c.vae.block_out_channels) ? c.vae.block_out_channels.length - 1 : 3);
  return {
    scale_factor: num(c.vae.scaling_factor, 0.18215),
    defaults: { height: lh * vaeFactor, width: lw * vaeFactor, frames: 16, steps: 50, guidance: 9, fps: 8 },
    scheduler: {
      // 'scaled_linear' is ModelScope's 'linear_sd': linspace(sqrt(start), sqrt(end), n)^2
      num_timesteps: num(s.num_train_timesteps, 1000),
      beta_schedule: schedule === 'scaled_linear' ? 'linear_sd' : schedule,
      beta_start: num(s.beta_start, 0.00085),
      beta_end: num(s.beta_end, 0.012),
      mean_type: meanType,
      var_type: 'fixed_small',
      // DDIM's step rule as diffusers' DDIMScheduler reads its config (see docs/diffusers.md)
      class_name: typeof s._class_name === 'string' ? s._class_name : 'DDIMScheduler',
      steps_offset: num(s.steps_offset, 0),
      // only where the config states it: without it diffusers gives each scheduler its own default
      ...(typeof s.timestep_spacing === 'string' ? { timestep_spacing: s.timestep_spacing } : {}),
      set_alpha_to_one: s.set_alpha_to_one === undefined ? true : Boolean(s.set_alpha_to_one),
      clip_sample: s.clip_sample === undefined ? true : Boolean(s.clip_sample),
      clip_sample_range: num(s.clip_sample_range, 1),
      thresholding: Boolean(s.thresholding),
      rescale_betas_zero_snr: Boolean(s.rescale_betas_zero_snr),
    } as ModelInfo['scheduler'],
  };
}

/** The weights each network will be read from, or a clear error naming what is missing. */
export function diffusersWeights(dir: string, variant = ''): Record<NetworkKind, WeightsChoice> {
  const out = {} as Record<NetworkKind, WeightsChoice>;
  for (const kind of ['text_encoder', 'unet', 'vae'] as NetworkKind[]) {
    const c = chooseWeights(kind, (rel) => existsSync(join(dir, rel)), variant);
    if (!c) throw new ConvertError(`${dir}/${kind}: no weights (expected ${kind === 'text_encoder' ? 'model' : 'diffusion_pytorch_model'}[.fp16].safetensors or .bin)`);
    out[kind] = c;
  }
  return out;
}

/**
 * Settings that a model card states and the folder's files need not (a UNet config's sample_size is how the network
 * was configured, not what a fine-tune was trained at): applied when `t2v download` names the hub id, over what the
 * files say. Flags still override them.
 */
export const MODEL_CARD_DEFAULTS: Record<string, Partial<ModelInfo['defaults']>> = {
  'cerspense/zeroscope_v2_576w': { width: 576, height: 320, frames: 24 },
  'cerspense/zeroscope_v2_XL': { width: 1024, height: 576, frames: 24 },
};

/** Converts a diffusers-layout folder into a t2v model folder at `outDir` (written whole or not at all). */
export async function convertDiffusers(srcDir: string, outDir: string, opts: DiffusersConvertOptions = {}): Promise<DiffusersSummary> {
  const t0 = performance.now();
  const dtype = opts.dtype ?? 'float16';
  if (dtype !== 'float16' && dtype !== 'float32') throw new ConvertError(`unknown dtype ${String(dtype)}; valid: float16, float32`);
  const configs = await readDiffusersConfigs(srcDir);
  const weights = diffusersWeights(srcDir, opts.variant ?? '');
  for (const f of ['tokenizer/vocab.json', 'tokenizer/merges.txt']) {
    if (!existsSync(join(srcDir, f))) throw new ConvertError(`${srcDir}: no ${f} (the tokenizer of the diffusers layout)`);
  }
  const info = diffusersModelInfo(configs);
  const card = typeof opts.source?.hub === 'string' ? MODEL_CARD_DEFAULTS[opts.source.hub] : undefined;
  if (card) info.defaults = { ...info.defaults, ...card };
  const maps: Record<NetworkKind, (k: string) => MappedKey> = {
    text_encoder: mapTextKey,
    unet: (k) => mapUNetKey(k, { layers_per_block: num(configs.unet.layers_per_block, 2), up_block_types: strings(configs.unet.up_block_types) }),
    vae: (k) => mapVAEKey(k, { up_block_types: strings(configs.vae.up_block_types) }),
  };
  const jsons: Record<NetworkKind, Json | undefined> = {
    text_encoder: configs.text_encoder,
    unet: unetJsonFromDiffusers(configs.unet),
    vae: undefined,
  };
  const order: NetworkKind[] = ['text_encoder', 'unet', 'vae'];
  return writeAtomically(outDir, opts.force ?? false, async (tmp) => {
    const networks: NetworkSummary[] = [];
    for (const kind of order) {
      const opened = await openWeights(srcDir, weights[kind]);
      let ckpt: Checkpoint;
      try {
        ckpt = mapCheckpoint(opened, maps[kind]);
      } catch (err) {
        await opened.close();
        throw err;
      }
      try {
        networks.push(await convertNetworkCheckpoint(kind, ckpt, tmp, { dtype, json: jsons[kind], groupBytes: opts.groupBytes, onProgress: opts.onProgress }));
      } finally {
        await ckpt.close();
      }
    }
    await mkdir(join(tmp, 'tokenizer'), { recursive: true });
    for (const f of [...CONFIG_FILES, ...OPTIONAL_FILES].filter((p) => p.startsWith('tokenizer/'))) {
      if (existsSync(join(srcDir, f))) await copyFresh(join(srcDir, f), join(tmp, f));
    }
    const model: ModelInfo = {
      format: MODEL_FORMAT,
      version: MODEL_VERSION,
      dtype,
      source: {
        layout: 'diffusers',
        path: resolve(srcDir),
        pipeline: configs.model_index._class_name ?? null,
        files: Object.fromEntries(order.map((k) => [k, weights[k].file])),
        variant: opts.variant ?? '',
        ...opts.source,
      },
      ...info,
      networks: Object.fromEntries(networks.map((n) => [n.kind, { params: n.params, tensors: n.tensors, bytes: n.bytes }])),
      tokenizer: 'tokenizer',
    };
    await writeFile(join(tmp, 't2v.json'), JSON.stringify(model, null, 1));
    return {
      out: outDir, dtype, networks, bytes: networks.reduce((a, n) => a + n.bytes, 0), seconds: (performance.now() - t0) / 1000,
      notes: schedulerNotes(configs.scheduler),
    };
  }, opts.onStale);
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.map(String) : [];
}
