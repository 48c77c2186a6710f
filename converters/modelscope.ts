import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import type { Module } from '../src/layers/module.js';
import type { NetworkKind } from '../src/layers/network.js';
import { MODEL_FORMAT, MODEL_VERSION, type ModelInfo } from '../src/io/model-folder.js';
import type { Checkpoint, TensorEntry } from './checkpoint.js';
import { toTfLayout } from './layout.js';
import { NETWORK_NAMES, networkSpec } from '../src/layers/registry.js';
import { openCheckpoint } from './open.js';
import { DEFAULT_GROUP_BYTES, WeightsWriter } from './tfjs-writer.js';
import type { StorageDType } from '../src/io/weights-manifest.js';
import { configToJson } from '../src/io/network-config.js';

/** A conversion problem with the input: the CLI prints the message as one line. */
export class ConvertError extends Error {}

export interface ProgressEvent {
  kind: NetworkKind;
  /** Parameters (elements) converted so far in this network, and in all. */
  done: number;
  total: number;
  phase: 'start' | 'tensor' | 'end';
}

export interface NetworkSummary {
  kind: NetworkKind;
  source: string;
  params: number;
  tensors: number;
  bytes: number;
  /** Source keys left out (the visual tower, keys the spec does not use, other prefixes). */
  skipped: number;
}

export interface NetworkFileOptions {
  dtype?: StorageDType;
  /** For the UNet: `configuration.json`'s `model.model_cfg`. */
  json?: Record<string, unknown>;
  /** Keep only keys under this prefix, stripped (`first_stage_model.` for the released VAE file). */
  prefix?: string;
  groupBytes?: number;
  onProgress?: (e: ProgressEvent) => void;
}

export interface ConvertOptions {
  dtype?: StorageDType;
  /** OpenCLIP's bpe_simple_vocab_16e6.txt.gz (or a folder holding it), or a folder with vocab.json + merges.txt. */
  tokenizer?: string;
  /** Replace an existing non-empty output folder. */
  force?: boolean;
  groupBytes?: number;
  onProgress?: (e: ProgressEvent) => void;
  /** Told the temporary folders of an earlier, interrupted conversion into the same place, which were removed. */
  onStale?: (removed: string[]) => void;
}

export interface ConvertSummary {
  out: string;
  dtype: StorageDType;
  networks: NetworkSummary[];
  bytes: number;
  seconds: number;
}

/** Released file names, used when configuration.json's `model.model_args` does not name them. */
export const RELEASED_FILES: Record<NetworkKind, string> = {
  text_encoder: 'open_clip_pytorch_model.bin',
  unet: 'text2video_pytorch_model.pth',
  vae: 'VQGAN_autoencoder.pth',
};
const MODEL_ARGS_KEYS: Record<NetworkKind, string> = { text_encoder: 'ckpt_clip', unet: 'ckpt_unet', vae: 'ckpt_autoencoder' };
const VAE_PREFIX = 'first_stage_model.';
const TEXT_SKIP_PREFIX = 'visual.';

const fmtShape = (s: readonly number[]) => `[${s.join(', ')}]`;

function selectKeys(ckpt: Checkpoint, prefix?: string, drop?: string): { entries: Map<string, TensorEntry>; skipped: number } {
  const entries = new Map<string, TensorEntry>();
  let skipped = 0;
  for (const [k, e] of ckpt.entries) {
    if (prefix !== undefined && !k.startsWith(prefix)) { skipped++; continue; }
    const key = prefix !== undefined ? k.slice(prefix.length) : k;
    if (drop !== undefined && key.startsWith(drop)) { skipped++; continue; }
    entries.set(key, e);
  }
  return { entries, skipped };
}

/** A checkpoint opened and checked against the network it should be; nothing read yet. Close it when done. */
export interface PreparedNetwork {
  kind: NetworkKind;
  path: string;
  ckpt: Checkpoint;
  config: unknown;
  module: Module;
  /** Used source keys (prefix stripped), in file order. */
  entries: Map<string, TensorEntry>;
  skipped: number;
}

function fileError(file: string, err: unknown): ConvertError {
  const msg = err instanceof Error ? err.message : String(err);
  return err instanceof ConvertError ? err : new ConvertError(msg.includes(file) ? msg : `${file}: ${msg}`);
}

/**
 * Infers a network's configuration from the tensors' shapes (and `json`), builds it (shapes only) and checks the key
 * sets and shapes against it; `shapes` replaces the entries' own when inference needs more than the file holds.
 * Returns the entries the module uses, in file order, and how many the network's spec calls unused.
 */
export function checkNetwork(kind: NetworkKind, all: ReadonlyMap<string, TensorEntry>, foreign: (why: string) => Error,
  opts: { json?: Json; shapes?: Map<string, readonly number[]> } = {}):
  { config: unknown; module: Module; entries: Map<string, TensorEntry>; unused: number } {
  const spec = networkSpec(kind);
  const shapes = opts.shapes ?? new Map([...all].map(([k, e]) => [k, e.shape] as const));
  let config: unknown;
  try {
    config = spec.infer(shapes, opts.json);
  } catch (err) {
    throw foreign(err instanceof Error ? err.message : String(err));
  }
  const module = spec.build(config);
  const params = module.paramSpecs();
  for (const [k, p] of params) {
    const e = all.get(k);
    if (!e) throw foreign(`missing key ${k}`);
    if (e.shape.length !== p.torchShape.length || e.shape.some((d, i) => d !== p.torchShape[i])) {
      throw foreign(`${k} has shape ${fmtShape(e.shape)}, the configuration gives ${fmtShape(p.torchShape)}`);
    }
  }
  const entries = new Map<string, TensorEntry>();
  let unused = 0;
  for (const [k, e] of all) {
    if (params.has(k)) entries.set(k, e);
    else if (spec.isUnused?.(k, config)) unused++;
    else throw foreign(`unexpected key ${k}`);
  }
  return { config, module, entries, unused };
}

/**
 * Opens one network's checkpoint, selects its keys, infers the configuration from shapes (and `json`), builds the
 * network (shapes only) and checks the key sets and shapes. Any mismatch is one line naming the file.
 */
export async function prepareNetwork(kind: NetworkKind, checkpointPath: string,
  opts: Pick<NetworkFileOptions, 'json' | 'prefix'> = {}): Promise<PreparedNetwork> {
  const file = basename(checkpointPath);
  const foreign = (why: string) => new ConvertError(`${file}: not a ModelScope ${NETWORK_NAMES[kind]} checkpoint: ${why}`);
  let ckpt: Checkpoint;
  try {
    ckpt = await openCheckpoint(checkpointPath);
  } catch (err) {
    throw fileError(file, err);
  }
  try {
    const prefix = opts.prefix;
    const { entries: all, skipped: skippedByName } = selectKeys(ckpt, prefix, kind === 'text_encoder' ? TEXT_SKIP_PREFIX : undefined);
    if (all.size === 0) throw foreign(prefix ? `no tensors under ${prefix}` : 'no tensors');
    const { config, module, entries, unused } = checkNetwork(kind, all, foreign, { json: opts.json });
    return { kind, path: checkpointPath, ckpt, config, module, entries, skipped: skippedByName + unused };
  } catch (err) {
    await ckpt.close();
    throw err;
  }
}

/**
 * Writes a prepared network into `<outDir>/<kind>/` (config.json, model.json, shards): each tensor read, moved to
 * tfjs layout and appended to the current shard, one at a time. Closes the checkpoint.
 */
export async function writeNetwork(net: PreparedNetwork, outDir: string,
  opts: Pick<NetworkFileOptions, 'dtype' | 'groupBytes' | 'onProgress'> = {}): Promise<NetworkSummary> {
  const { kind, module } = net;
  const file = basename(net.path);
  try {
    const netDir = join(outDir, kind);
    await mkdir(netDir, { recursive: true });
    await writeFile(join(netDir, 'config.json'), JSON.stringify(configToJson(kind, net.config as object), null, 1));
    const writer = new WeightsWriter(netDir, opts.dtype ?? 'float16', opts.groupBytes ?? DEFAULT_GROUP_BYTES);
    const params = module.paramSpecs();
    const total = module.countParams();
    let done = 0;
    opts.onProgress?.({ kind, done, total, phase: 'start' });
    // file order: the readers then walk each archive front to back
    for (const [k, e] of net.entries) {
      const p = params.get(k)!;
      let data: Float32Array;
      try {
        data = await e.read();
      } catch (err) {
        const msg = err instanceof Error ? err.message : String(err);
        throw new ConvertError(`${msg.includes(file) ? msg : `${file}: ${msg}`} (reading ${k})`);
      }
      await writer.add(k, p.tfShape, toTfLayout(data, p.torchShape, p.role));
      done += data.length;
      opts.onProgress?.({ kind, done, total, phase: 'tensor' });
    }
    await writer.finish();
    opts.onProgress?.({ kind, done, total, phase: 'end' });
    return { kind, source: net.path, params: total, tensors: writer.tensors, bytes: writer.bytesWritten, skipped: net.skipped };
  } finally {
    await net.ckpt.close();
  }
}

/** One network's checkpoint into `<outDir>/<kind>/`: prepareNetwork, then writeNetwork. */
export async function convertNetworkFile(kind: NetworkKind, checkpointPath: string, outDir: string,
  opts: NetworkFileOptions = {}): Promise<NetworkSummary> {
  return writeNetwork(await prepareNetwork(kind, checkpointPath, opts), outDir, opts);
}

type Json = Record<string, unknown>;

function asObject(v: unknown): Json | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}

/** configuration.json of the released folder, or a clear error. */
export async function readModelScopeConfig(srcDir: string): Promise<Json> {
  const path = join(srcDir, 'configuration.json');
  if (!existsSync(srcDir) || !statSync(srcDir).isDirectory()) throw new ConvertError(`${srcDir}: no such folder`);
  if (!existsSync(path)) throw new ConvertError(`${srcDir}: no configuration.json (expected the released ModelScope folder)`);
  try {
    const v = asObject(JSON.parse(await readFile(path, 'utf8')));
    if (!v) throw new Error('not a JSON object');
    return v;
  } catch (err) {
    throw new ConvertError(`${path}: ${(err as Error).message}`);
  }
}

/** Where each network's checkpoint is: `model.model_args.ckpt_*` when present, else the released names. */
export function checkpointFiles(srcDir: string, config: Json): Record<NetworkKind, string> {
  const args = asObject(asObject(config.model)?.model_args) ?? {};
  const out = {} as Record<NetworkKind, string>;
  for (const kind of Object.keys(RELEASED_FILES) as NetworkKind[]) {
    const v = args[MODEL_ARGS_KEYS[kind]];
    out[kind] = join(srcDir, typeof v === 'string' && v !== '' ? v : RELEASED_FILES[kind]);
  }
  return out;
}

/**
 * `model.model_cfg` as upstream's loader hands it to UNetSD: the released file spells temporal_attention as the
 * string "True", which upstream turns into a boolean (`== 'True'`) before building the network.
 */
export function unetModelCfg(config: Json): Json | undefined {
  const cfg = asObject(asObject(config.model)?.model_cfg);
  if (!cfg) return undefined;
  const t = cfg.temporal_attention;
  return typeof t === 'string' ? { ...cfg, temporal_attention: t === 'True' } : cfg;
}

const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) ? v : d);
const str = (v: unknown, d: string) => (typeof v === 'string' && v !== '' ? v : d);

/** t2v.json's defaults and scheduler, from configuration.json where it says, else upstream's values. */
export function modelInfoFromConfig(config: Json): Pick<ModelInfo, 'scale_factor' | 'defaults' | 'scheduler'> {
  const model = asObject(config.model) ?? {};
  const args = asObject(model.model_args) ?? {};
  const cfg = asObject(model.model_cfg) ?? {};
  return {
    scale_factor: 0.18215,
    defaults: { height: 256, width: 256, frames: num(args.max_frames, 16), steps: 50, guidance: 9, fps: 8 },
    scheduler: {
      num_timesteps: num(cfg.num_timesteps, 1000),
      beta_schedule: 'linear_sd',
      beta_start: 0.00085,
      beta_end: 0.012,
      mean_type: str(cfg.mean_type, 'eps'),
      var_type: str(cfg.var_type, 'fixed_small'),
    },
  };
}

const TOKENIZER_HELP = 'pass --tokenizer with OpenCLIP\'s bpe_simple_vocab_16e6.txt.gz (in the open_clip repository, '
  + 'src/open_clip/), a folder holding it, or a folder with vocab.json + merges.txt (tokenizer/ of the Hugging Face folder damo-vilab/text-to-video-ms-1.7b)';

/** The tokenizer to copy: `{kind: 'gz', path}` or `{kind: 'hf', path: folder}`. */
export async function findTokenizer(srcDir: string, given?: string): Promise<{ kind: 'gz' | 'hf'; path: string }> {
  const check = async (p: string, what: string): Promise<{ kind: 'gz' | 'hf'; path: string }> => {
    if (statSync(p).isDirectory()) {
      // a folder holding OpenCLIP's file (../shared/clip-tokenizer/, open_clip's src/open_clip/) counts as the file
      const gz = join(p, 'bpe_simple_vocab_16e6.txt.gz');
      if (!existsSync(join(p, 'vocab.json')) && existsSync(gz)) p = gz;
      else {
        for (const f of ['vocab.json', 'merges.txt']) {
          if (!existsSync(join(p, f))) throw new ConvertError(`${what} ${p} has no ${f} and no bpe_simple_vocab_16e6.txt.gz; ${TOKENIZER_HELP}`);
        }
        return { kind: 'hf', path: p };
      }
    }
    const head = (await readFile(p)).subarray(0, 2);
    if (head[0] !== 0x1f || head[1] !== 0x8b) throw new ConvertError(`${what} ${p} is not a gzip file; ${TOKENIZER_HELP}`);
    return { kind: 'gz', path: p };
  };
  if (given !== undefined) {
    if (!existsSync(given)) throw new ConvertError(`tokenizer ${given}: no such file or folder`);
    return check(given, 'tokenizer');
  }
  const top = existsSync(srcDir) ? await readdir(srcDir) : [];
  const gz = top.filter((f) => f.endsWith('.txt.gz')).sort((a, b) => Number(b.startsWith('bpe_simple')) - Number(a.startsWith('bpe_simple')));
  if (gz.length > 0) return check(join(srcDir, gz[0]), 'tokenizer');
  for (const d of [join(srcDir, 'tokenizer'), srcDir]) {
    if (existsSync(join(d, 'vocab.json')) && existsSync(join(d, 'merges.txt'))) return { kind: 'hf', path: d };
  }
  throw new ConvertError(`no tokenizer in ${srcDir}: ${TOKENIZER_HELP}`);
}

async function copyTokenizer(tok: { kind: 'gz' | 'hf'; path: string }, outDir: string): Promise<string> {
  const dir = join(outDir, 'tokenizer');
  await mkdir(dir, { recursive: true });
  if (tok.kind === 'gz') {
    await copyFresh(tok.path, join(dir, 'bpe_simple_vocab_16e6.txt.gz'));
    return 'tokenizer/bpe_simple_vocab_16e6.txt.gz';
  }
  for (const f of ['vocab.json', 'merges.txt', 'special_tokens_map.json', 'tokenizer_config.json']) {
    if (existsSync(join(tok.path, f))) await copyFresh(join(tok.path, f), join(dir, f));
  }
  return 'tokenizer';
}

/** Copies a small file as a new one (the usual 0666 & ~umask mode, not the source's: a read-only source stays writable here). */
export async function copyFresh(from: string, to: string): Promise<void> {
  await writeFile(to, await readFile(from));
}

const PARTIAL = '.partial-';

/**
 * Removes what a killed conversion into `target` left beside it (`.<name>.partial-<pid>-<random>[.old]`) when its
 * process is gone; returns the paths removed. A folder of a conversion still running is left alone.
 */
export async function removeStalePartials(target: string): Promise<string[]> {
  const dir = dirname(target);
  const prefix = `.${basename(target)}${PARTIAL}`;
  const removed: string[] = [];
  for (const f of existsSync(dir) ? await readdir(dir) : []) {
    if (!f.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(f.slice(prefix.length))?.[1]);
    if (pid === process.pid || (Number.isInteger(pid) && pid > 0 && alive(pid))) continue;
    await rm(join(dir, f), { recursive: true, force: true });
    removed.push(join(dir, f));
  }
  return removed;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Refuses an existing file, or a non-empty folder unless `force`. */
function checkOutput(out: string, force: boolean): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new ConvertError(`${out} exists and is not a folder`);
  if (readdirSync(out).length > 0 && !force) throw new ConvertError(`${out} exists and is not empty (use --force to replace it)`);
}

/**
 * A temporary folder beside `out` (`.<name>.partial-<pid>-<random>`, created with the usual mode, not mkdtemp's 0700),
 * renamed to `out` when `work` succeeds and removed when it fails or on SIGINT/SIGTERM. What an earlier, killed run
 * left there is removed first (`onStale` hears of it).
 */
export async function writeAtomically<T>(out: string, force: boolean, work: (tmp: string) => Promise<T>,
  onStale?: (removed: string[]) => void): Promise<T> {
  const target = resolve(out);
  checkOutput(out, force);
  await mkdir(dirname(target), { recursive: true });
  const stale = await removeStalePartials(target);
  if (stale.length > 0) onStale?.(stale);
  const tmp = join(dirname(target), `.${basename(target)}${PARTIAL}${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp);
  const onSignal = (sig: NodeJS.Signals) => {
    rmSync(tmp, { recursive: true, force: true });
    process.kill(process.pid, sig);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const result = await work(tmp);
    if (existsSync(target)) {
      const old = `${tmp}.old`;
      await rename(target, old);
      await rename(tmp, target);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, target);
    }
    return result;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Converts the released ModelScope folder into a t2v model folder at `outDir` (written whole or not at all). */
export async function convertModelScope(srcDir: string, outDir: string, opts: ConvertOptions = {}): Promise<ConvertSummary> {
  const t0 = performance.now();
  const dtype = opts.dtype ?? 'float16';
  if (dtype !== 'float16' && dtype !== 'float32') throw new ConvertError(`unknown dtype ${String(dtype)}; valid: float16, float32`);
  const config = await readModelScopeConfig(srcDir);
  const files = checkpointFiles(srcDir, config);
  for (const [kind, f] of Object.entries(files)) {
    if (!existsSync(f)) throw new ConvertError(`${f}: no such file (the ${NETWORK_NAMES[kind as NetworkKind]} checkpoint)`);
  }
  const tok = await findTokenizer(srcDir, opts.tokenizer);
  checkOutput(outDir, opts.force ?? false);
  const modelCfg = asObject(asObject(config.model)?.model_cfg);
  const unetCfg = unetModelCfg(config);
  const order: NetworkKind[] = ['text_encoder', 'unet', 'vae'];
  // every checkpoint is opened and checked before anything is converted: a bad file fails in seconds
  const prepared: PreparedNetwork[] = [];
  try {
    for (const kind of order) {
      prepared.push(await prepareNetwork(kind, files[kind], {
        json: kind === 'unet' ? unetCfg : undefined,
        prefix: kind === 'vae' ? VAE_PREFIX : undefined,
      }));
    }
  } catch (err) {
    for (const p of prepared) await p.ckpt.close();
    throw err;
  }
  return writeAtomically(outDir, opts.force ?? false, async (tmp) => {
    const networks: NetworkSummary[] = [];
    try {
      while (prepared.length > 0) {
        networks.push(await writeNetwork(prepared.shift()!, tmp, { dtype, groupBytes: opts.groupBytes, onProgress: opts.onProgress }));
      }
    } finally {
      for (const p of prepared) await p.ckpt.close();
    }
    const tokenizer = await copyTokenizer(tok, tmp);
    const info: ModelInfo = {
      format: MODEL_FORMAT,
      version: MODEL_VERSION,
      dtype,
      source: {
        layout: 'modelscope',
        path: resolve(srcDir),
        files: Object.fromEntries(order.map((k) => [k, basename(files[k])])),
        model_cfg: modelCfg ?? null,
      },
      ...modelInfoFromConfig(config),
      networks: Object.fromEntries(networks.map((n) => [n.kind, { params: n.params, tensors: n.tensors, bytes: n.bytes }])),
      tokenizer,
    };
    await writeFile(join(tmp, 't2v.json'), JSON.stringify(info, null, 1));
    return { out: outDir, dtype, networks, bytes: networks.reduce((a, n) => a + n.bytes, 0), seconds: (performance.now() - t0) / 1000 };
  }, opts.onStale);
}
