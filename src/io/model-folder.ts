import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { open, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { HostWeight, Module } from '../layers/module.js';
import type { NetworkKind } from '../layers/network.js';
import { NETWORK_KINDS, NETWORK_NAMES, networkSpec } from '../../converters/networks.js';
import type { ManifestEntry, ManifestGroup, WeightsFile } from '../../converters/tfjs-writer.js';
import { checkModelInfo, checkNetworkConfig, insideFolder } from './validate.js';

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
  /** Absolute path to give `CLIPTokenizer.load`, when the folder has a tokenizer. */
  tokenizer: string | null;
}

class ModelFolderError extends Error {}

function notAModel(dir: string, why: string): never {
  throw new ModelFolderError(`${dir} is not a converted t2v model (${why}); make one with \`t2v convert\``);
}

async function readJson(path: string, dir: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    notAModel(dir, `no ${path.slice(dir.length + 1)}`);
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    notAModel(dir, `${path.slice(dir.length + 1)} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Reads `t2v.json` and tells what the folder holds. */
export async function readModelFolder(dir: string): Promise<ModelFolder> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) notAModel(dir, 'no such folder');
  const info = await readJson(join(dir, 't2v.json'), dir);
  if (info.format !== MODEL_FORMAT) notAModel(dir, `t2v.json format is ${JSON.stringify(info.format)}`);
  if (typeof info.version !== 'number' || info.version > MODEL_VERSION) {
    throw new ModelFolderError(`${dir}: model folder version ${String(info.version)} is newer than this t2v reads (${MODEL_VERSION}); convert it again`);
  }
  checkModelInfo(join(dir, 't2v.json'), info);
  const networks = NETWORK_KINDS.filter((k) => existsSync(join(dir, k, 'config.json')) && existsSync(join(dir, k, 'model.json')));
  const tok = typeof info.tokenizer === 'string' ? insideFolder(dir, info.tokenizer, join(dir, 't2v.json')) : null;
  return { dir, info: info as unknown as ModelInfo, networks, tokenizer: tok !== null && existsSync(tok) ? tok : null };
}

/** Reads a whole file into a fresh ArrayBuffer (Node's small-file Buffers share a pool); checks its sha256 when given. */
async function readShard(path: string, expected: number, sha256?: string): Promise<ArrayBuffer> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (expected >= 0 && size !== expected) throw new Error(`${path}: ${size} bytes, the manifest says ${expected}`);
    const buf = new ArrayBuffer(size);
    const view = new Uint8Array(buf);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(view, off, size - off, off);
      if (bytesRead === 0) throw new Error(`${path}: unexpected end of file`);
      off += bytesRead;
    }
    if (sha256 !== undefined) {
      const got = createHash('sha256').update(view).digest('hex');
      if (got !== sha256) throw new Error(`${path}: sha256 ${got} differs from the manifest's ${sha256}: the file is damaged; convert the model again`);
    }
    return buf;
  } finally {
    await fh.close();
  }
}

function entryBytes(e: ManifestEntry): number {
  const n = e.shape.reduce((a, b) => a * b, 1);
  return e.quantization?.dtype === 'float16' ? 2 * n : 4 * n;
}

/** Reads `<net>/config.json` of a converted model (the network's Config object), checked by type and range. */
export async function readNetworkConfig(netDir: string, kind: NetworkKind): Promise<unknown> {
  const file = join(netDir, 'config.json');
  let config: unknown;
  try {
    config = JSON.parse(await readFile(file, 'utf8')) as unknown;
  } catch (err) {
    throw new ModelFolderError(`${file}: ${err instanceof SyntaxError ? `not valid JSON (${err.message})` : (err as Error).message}`);
  }
  checkNetworkConfig(file, kind, config);
  return config;
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

/** The manifest's groups, checked: paths inside `netDir`, sha256 lists well formed. */
export function manifestGroups(weights: WeightsFile, netDir: string): ManifestGroup[] {
  const file = join(netDir, 'model.json');
  if (!Array.isArray(weights.weightsManifest)) notAModel(netDir, 'model.json has no weightsManifest');
  for (const g of weights.weightsManifest) {
    if (typeof g !== 'object' || g === null || !Array.isArray(g.paths) || !Array.isArray(g.weights)) {
      throw new ModelFolderError(`${file}: a weights group has no paths or weights list`);
    }
    for (const p of g.paths) insideFolder(netDir, p, file);
    groupHashes(g, file);
  }
  return weights.weightsManifest;
}

/**
 * Builds one network from `<dir>/config.json` (dir is the network's folder, or the model folder with `kind`
 * below it) and loads its weights group by group: one shard file read, decoded to tensors, and dropped at a time.
 */
export async function loadNetwork<M extends Module = Module>(dir: string, kind: NetworkKind,
  opts: { stream?: boolean; verify?: boolean } = {}): Promise<M> {
  const netDir = existsSync(join(dir, kind, 'model.json')) ? join(dir, kind) : dir;
  const name = NETWORK_NAMES[kind];
  if (!existsSync(join(netDir, 'model.json')) || !existsSync(join(netDir, 'config.json'))) {
    notAModel(dir, `no ${kind}/config.json and ${kind}/model.json`);
  }
  const config = await readNetworkConfig(netDir, kind);
  const weights = (await readJson(join(netDir, 'model.json'), netDir)) as unknown as WeightsFile;
  const groups = manifestGroups(weights, netDir);
  const module = networkSpec(kind).build(config) as M;
  const declared = module.paramSpecs();
  const loaded = new Map<string, tf.Tensor>();
  const host = new Map<string, HostWeight>();
  try {
    for (const group of groups) {
      const hashes = groupHashes(group, join(netDir, 'model.json'));
      if (opts.verify && hashes.includes(undefined)) {
        throw new Error(`${join(netDir, 'model.json')}: the manifest has no sha256 of its shards (converted before checksums); convert the model again to verify it`);
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
        parts.push(await readShard(join(netDir, p), group.paths.length === 1 ? expected : -1, opts.verify ? hashes[i] : undefined));
      }
      const data = parts.length === 1 ? parts[0] : concat(parts);
      if (opts.stream) {
        hostWeights(data, group.weights, host);
        continue;
      }
      const tensors = tf.io.decodeWeights(data, group.weights as tf.io.WeightsManifestEntry[]);
      for (const [k, t] of Object.entries(tensors)) loaded.set(k, t);
    }
    if (opts.stream) module.streamWeights((key) => host.get(key));
    else module.loadWeights((key) => loaded.get(key));
  } catch (err) {
    for (const t of loaded.values()) t.dispose();
    const msg = err instanceof Error ? err.message : String(err);
    throw new Error(msg.startsWith(netDir) ? msg : `${netDir}: ${msg}`);
  }
  return module;
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

/** The files in a converted model's tokenizer folder. */
export async function tokenizerFiles(dir: string): Promise<string[]> {
  const t = join(dir, 'tokenizer');
  return existsSync(t) ? (await readdir(t)).sort() : [];
}
