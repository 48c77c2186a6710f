import * as tf from '@tensorflow/tfjs';
import type { HostWeight, Module } from '../layers/module.js';
import type { NetworkKind } from '../layers/network.js';
import { NETWORK_KINDS, NETWORK_NAMES, networkSpec } from '../layers/registry.js';
import type { ManifestEntry, ManifestGroup, WeightsFile } from './weights-manifest.js';
import { checkInsidePath, checkModelInfo, checkNetworkConfig } from './validate.js';
import { configFromJson } from './network-config.js';
import { openSource, type ModelSource } from './source.js';
import { toFloat16 } from './float16.js';
import { registerWebGPUKernels } from '../backends/webgpu/register.js';
import { unpackHalfWeight } from '../backends/webgpu/unpack-half.js';

export const MODEL_FORMAT = 't2v-model';
export const MODEL_VERSION = 1;

/** `t2v.json`, at the top of a converted model folder. */
export interface ModelInfo {
  format: typeof MODEL_FORMAT;
  version: number;
  dtype: 'float16' | 'float32';
  source: Record<string, unknown>;
  scale_factor: number;
  defaults: { height: number; width: number; frames: number; steps: number; guidance: number; fps: number };
  scheduler: {
    num_timesteps: number;
    beta_schedule: string;
    beta_start: number;
    beta_end: number;
    mean_type: string;
    var_type?: string;
  };
  /** Per network: parameter count, tensors and bytes stored. */
  networks: Partial<Record<NetworkKind, { params: number; tensors: number; bytes: number }>>;
  /** Relative to the folder: `tokenizer/bpe_simple_vocab_16e6.txt.gz` or `tokenizer` (vocab.json + merges.txt). */
  tokenizer?: string;
}

export interface ModelFolder {
  dir: string;
  info: ModelInfo;
  /** The networks present (a folder with `config.json` and `model.json`). */
  networks: NetworkKind[];
  /** Full path (or URL) of the tokenizer, when the folder has one: what `CLIPTokenizer.load` takes in Node. */
  tokenizer: string | null;
  /** The same, relative to the folder (`source.readBytes` takes it). */
  tokenizerPath: string | null;
  /** Where the folder is read from (disk or URL: src/io/source.ts). */
  source: ModelSource;
}

class ModelFolderError extends Error {}

function notAModel(dir: string, why: string): never {
  throw new ModelFolderError(`${dir} is not a converted t2v model (${why}); make one with \`t2v convert\``);
}

async function readJson(source: ModelSource, path: string): Promise<Record<string, unknown>> {
  const text = await source.readText(path);
  if (text === null) notAModel(source.location, `no ${path}`);
  return parseJson(text, source.location, path);
}

function parseJson(text: string, dir: string, path: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    notAModel(dir, `${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Reads `t2v.json` and tells what the folder (a path in Node, or a URL / ModelSource) holds. */
export async function readModelFolder(location: string | ModelSource): Promise<ModelFolder> {
  const source = openSource(location);
  const dir = source.location;
  const problem = await source.problem();
  if (problem !== null) notAModel(dir, problem);
  const info = await readJson(source, 't2v.json');
  if (info.format !== MODEL_FORMAT) notAModel(dir, `t2v.json format is ${JSON.stringify(info.format)}`);
  if (typeof info.version !== 'number' || info.version > MODEL_VERSION) {
    throw new ModelFolderError(`${dir}: model folder version ${String(info.version)} is newer than this t2v reads (${MODEL_VERSION}); convert it again`);
  }
  checkModelInfo(source.describe('t2v.json'), info);
  const networks: NetworkKind[] = [];
  for (const k of NETWORK_KINDS) {
    if (await hasNetwork(source, `${k}/`)) networks.push(k);
  }
  const tok = typeof info.tokenizer === 'string' ? checkInsidePath(info.tokenizer, source.describe('t2v.json')) : null;
  const tokenizerPath = tok !== null && await hasTokenizer(source, tok) ? tok : null;
  return {
    dir, info: info as unknown as ModelInfo, networks, source, tokenizerPath,
    tokenizer: tokenizerPath === null ? null : source.describe(tokenizerPath),
  };
}

/** `config.json` and `model.json` under `prefix` ('' or 'unet/'); what is read is kept by the source's cache. */
async function hasNetwork(source: ModelSource, prefix: string): Promise<boolean> {
  return (await source.readText(`${prefix}model.json`)) !== null && (await source.readText(`${prefix}config.json`)) !== null;
}

/** A merge-list file, or a folder with vocab.json + merges.txt (or the merge list). */
async function hasTokenizer(source: ModelSource, path: string): Promise<boolean> {
  if (/\.(gz|txt)$/.test(path)) return exists(source, path);
  return (await exists(source, `${path}/vocab.json`) && await exists(source, `${path}/merges.txt`))
    || exists(source, `${path}/bpe_simple_vocab_16e6.txt.gz`);
}

async function exists(source: ModelSource, path: string): Promise<boolean> {
  try {
    await source.readBytes(path, -1);
    return true;
  } catch {
    return false;
  }
}

function entryBytes(e: ManifestEntry): number {
  const n = e.shape.reduce((a, b) => a * b, 1);
  return e.quantization?.dtype === 'float16' ? 2 * n : 4 * n;
}

/** Reads `<net>/config.json` of a converted model (the network's Config object), checked by type and range. */
export async function readNetworkConfig(netDir: string | ModelSource, kind: NetworkKind, prefix = ''): Promise<unknown> {
  const source = openSource(netDir);
  const file = source.describe(`${prefix}config.json`);
  const text = await source.readText(`${prefix}config.json`);
  if (text === null) notAModel(source.location, `no ${prefix}config.json`);
  let config: unknown;
  try {
    config = JSON.parse(text) as unknown;
  } catch (err) {
    throw new ModelFolderError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  checkNetworkConfig(file, kind, config);
  return configFromJson(kind, config as Record<string, unknown>);
}

/** The sha256 of each of a group's files, or undefined; a malformed list is an error. */
function groupHashes(group: ManifestGroup, file: string): (string | undefined)[] {
  const h = group.sha256;
  if (h === undefined) return group.paths.map(() => undefined);
  if (!Array.isArray(h) || h.length !== group.paths.length || !h.every((x) => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x))) {
    throw new ModelFolderError(`${file}: a weights group's sha256 list is malformed`);
  }
  return h;
}

/** The manifest's groups, checked: paths inside the network's folder, sha256 lists well formed. `file`: model.json, for messages. */
export function manifestGroups(weights: WeightsFile, file: string): ManifestGroup[] {
  if (!Array.isArray(weights.weightsManifest)) throw new ModelFolderError(`${file}: no weightsManifest`);
  for (const g of weights.weightsManifest) {
    if (typeof g !== 'object' || g === null || !Array.isArray(g.paths) || !Array.isArray(g.weights)) {
      throw new ModelFolderError(`${file}: a weights group has no paths or weights list`);
    }
    for (const p of g.paths) checkInsidePath(p, file);
    groupHashes(g, file);
  }
  return weights.weightsManifest;
}

/** The hex sha256 of a shard (WebCrypto: the same in Node and in a page). */
async function sha256Hex(buf: ArrayBuffer): Promise<string> {
  const d = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', buf));
  return Array.from(d, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** What loadNetwork reports while it reads shards: bytes of this network so far, of its total. */
export interface ShardProgress {
  network: NetworkKind;
  file: string;
  loadedBytes: number;
  totalBytes: number;
  /** The bytes came from a cache (Cache Storage), not the network or disk. */
  cached: boolean;
}

export interface LoadNetworkOptions {
  /** Keep the weights in host memory and upload them per use (Module.streamWeights). */
  stream?: boolean;
  onProgress?: (p: ShardProgress) => void;
  /**
   * webgpu: keep weights of at least HALF_MIN_VALUES values as float16 on the device (Param.half), unpacked per use;
   * smaller ones (biases, norms) stay float32. A float16 folder's values are kept exactly; a float32 folder's are
   * rounded to float16 as the converter would.
   */
  half?: boolean;
  /** Check every shard against the sha256 its manifest carries (an error for a folder converted without them). */
  verify?: boolean;
}

/** Weights smaller than this stay float32 when `half` is on: a per-use unpack costs a dispatch, they save little. */
export const HALF_MIN_VALUES = 65536;

/** Bytes of every shard group in a network's manifest. */
export function manifestBytes(weights: WeightsFile): number {
  return weights.weightsManifest.reduce((a, g) => a + g.weights.reduce((b, e) => b + entryBytes(e), 0), 0);
}

/**
 * Builds one network from `<dir>/config.json` (dir is the network's folder, or the model folder with `kind`
 * below it; a path in Node, a URL, or a ModelSource) and loads its weights group by group: one shard read, decoded
 * to tensors, and dropped at a time. On webgpu each tensor is uploaded at once, so no host copy of a shard outlives
 * its group.
 */
export async function loadNetwork<M extends Module = Module>(dir: string | ModelSource, kind: NetworkKind,
  opts: LoadNetworkOptions = {}): Promise<M> {
  const source = openSource(dir);
  const prefix = await hasNetwork(source, `${kind}/`) ? `${kind}/` : '';
  const netDir = source.describe(prefix.replace(/\/$/, ''));
  const name = NETWORK_NAMES[kind];
  if (prefix === '' && !await hasNetwork(source, '')) {
    const problem = await source.problem();
    notAModel(source.location, problem ?? `no ${kind}/config.json and ${kind}/model.json`);
  }
  const config = await readNetworkConfig(source, kind, prefix);
  const manifestFile = source.describe(`${prefix}model.json`);
  const weights = (await readJson(source, `${prefix}model.json`)) as unknown as WeightsFile;
  if (!Array.isArray(weights.weightsManifest)) notAModel(netDir, 'model.json has no weightsManifest');
  const groups = manifestGroups(weights, manifestFile);
  const module = networkSpec(kind).build(config) as M;
  const declared = module.paramSpecs();
  const loaded = new Map<string, tf.Tensor>();
  const host = new Map<string, HostWeight>();
  const totalBytes = manifestBytes(weights);
  let done = 0;
  const halves = new Map<string, tf.Tensor>();
  if (opts.half) {
    if (tf.getBackend() !== 'webgpu') throw new Error(`float16-resident weights need the webgpu backend (active: ${tf.getBackend()})`);
    if (opts.stream) throw new Error('float16-resident and streamed weights exclude each other');
    registerWebGPUKernels();
  }
  try {
    for (const group of groups) {
      const hashes = groupHashes(group, manifestFile);
      if (opts.verify && hashes.includes(undefined)) {
        throw new Error(`${manifestFile}: the manifest has no sha256 of its shards (converted before checksums); convert the model again to verify it`);
      }
      for (const e of group.weights) {
        if (!declared.has(e.name)) throw new Error(`${netDir}: the ${name} has no weight ${e.name} (config.json and model.json disagree)`);
        const q = e.quantization?.dtype;
        if (e.dtype !== 'float32' || (q !== undefined && q !== 'float16')) {
          throw new Error(`${netDir}: weight ${e.name} is stored as ${q ?? e.dtype}; only float32 and float16 are read`);
        }
      }
      const expected = group.weights.reduce((a, e) => a + entryBytes(e), 0);
      const parts: ArrayBuffer[] = [];
      for (const [i, p] of group.paths.entries()) {
        const before = done;
        const buf = await source.readBytes(prefix + p, group.paths.length === 1 ? expected : -1, (n, cached) => {
          opts.onProgress?.({ network: kind, file: prefix + p, loadedBytes: before + n, totalBytes, cached });
        });
        const want = hashes[i];
        if (opts.verify && want !== undefined) {
          const got = await sha256Hex(buf);
          if (got !== want) throw new Error(`${source.describe(prefix + p)}: sha256 ${got} differs from the manifest's ${want}: the file is damaged; convert the model again`);
        }
        done += buf.byteLength;
        parts.push(buf);
      }
      const data = parts.length === 1 ? parts[0] : concat(parts);
      if (opts.stream) {
        hostWeights(data, group.weights, host);
        continue;
      }
      if (opts.half) {
        halfWeights(data, group.weights, loaded, halves);
        continue;
      }
      const tensors = tf.io.decodeWeights(data, group.weights as tf.io.WeightsManifestEntry[]);
      for (const [k, t] of Object.entries(tensors)) {
        upload(t);
        loaded.set(k, t);
      }
    }
    // wasm copies a new tensor's values into its heap at once, so one scratch array serves every float16 decode there
    if (opts.stream) module.streamWeights((key) => host.get(key), { reuseScratch: tf.getBackend() === 'wasm' });
    else module.loadWeights((key) => loaded.get(key), (key) => halves.get(key), opts.half ? unpackHalfWeight : null);
  } catch (err) {
    for (const t of [...loaded.values(), ...halves.values()]) t.dispose();
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(msg.startsWith(netDir) || msg.startsWith(source.location) ? msg : `${netDir}: ${msg}`);
  }
  return module;
}

/**
 * tfjs's webgpu backend keeps a new tensor's values in host memory until a kernel first reads it; uploading now lets
 * the shard's bytes go with their group instead of staying until the first generation.
 */
function upload(t: tf.Tensor): void {
  const b = tf.backend() as unknown as { uploadToGPU?: (dataId: object) => void };
  if (tf.getBackend() === 'webgpu' && typeof b.uploadToGPU === 'function') b.uploadToGPU(t.dataId);
}

/** A group's weights as device tensors: large ones float16 (packed pairs, `halves`), the rest float32 (`f32`). */
function halfWeights(data: ArrayBuffer, entries: readonly ManifestEntry[], f32: Map<string, tf.Tensor>, halves: Map<string, tf.Tensor>): void {
  let off = 0;
  for (const e of entries) {
    const bytes = entryBytes(e);
    const n = bytes / (e.quantization?.dtype === 'float16' ? 2 : 4);
    const own = data.slice(off, off + bytes); // aligned, and freed with this entry once uploaded
    off += bytes;
    if (n >= HALF_MIN_VALUES && n % 2 === 0) {
      const bits = e.quantization?.dtype === 'float16' ? new Uint16Array(own) : toFloat16(new Float32Array(own));
      const t = tf.tensor1d(new Float32Array(bits.buffer, bits.byteOffset, n / 2), 'float32');
      upload(t);
      halves.set(e.name, t);
    } else {
      const t = tf.io.decodeWeights(own, [{ ...e, name: e.name } as tf.io.WeightsManifestEntry])[e.name];
      upload(t);
      f32.set(e.name, t);
    }
  }
}

/** A group's weights as host arrays (views on the group's buffer where aligned): float32, or float16 bits. */
function hostWeights(data: ArrayBuffer, entries: readonly ManifestEntry[], into: Map<string, HostWeight>): void {
  let off = 0;
  for (const e of entries) {
    const bytes = entryBytes(e);
    const half = e.quantization?.dtype === 'float16';
    const aligned = off % (half ? 2 : 4) === 0;
    const buf = aligned ? data : data.slice(off, off + bytes);
    const at = aligned ? off : 0;
    const n = bytes / (half ? 2 : 4);
    into.set(e.name, half ? new Uint16Array(buf, at, n) : new Float32Array(buf, at, n));
    off += bytes;
  }
}

function concat(parts: ArrayBuffer[]): ArrayBuffer {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let off = 0;
  for (const p of parts) { out.set(new Uint8Array(p), off); off += p.byteLength; }
  return out.buffer;
}

