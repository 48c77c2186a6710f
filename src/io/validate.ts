import type { NetworkKind } from '../layers/network.js';

/**
 * Type and range checks of what a model folder's JSON files hold (t2v.json, <net>/config.json), so a damaged or
 * hand-edited file fails on load with one line naming the file and the field, not deep inside a layer.
 */
export class ConfigError extends Error {}

type Check = (v: unknown) => string | null;

const describe = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : Array.isArray(v) ? `[${v.map(describe).join(', ')}]` : String(v));

/** Widths and counts up to this are plausible; anything above is a damaged file, not a bigger model. */
const MAX_SIZE = 2 ** 20;

export const int = (min: number, max = MAX_SIZE): Check => (v) =>
  (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? null : `an integer in ${min}..${max}`);
export const num = (min: number, max: number, open = false): Check => (v) =>
  (typeof v === 'number' && Number.isFinite(v) && (open ? v > min : v >= min) && v <= max
    ? null : `a number in ${open ? '(' : '['}${min}, ${max}]`);
export const bool: Check = (v) => (typeof v === 'boolean' ? null : 'true or false');
export const str: Check = (v) => (typeof v === 'string' && v.length > 0 ? null : 'a non-empty string');
export const list = (item: Check, minLen: number, maxLen = 16): Check => (v) => {
  const want = `a list of ${minLen}..${maxLen} values, each ${item(undefined) ?? ''}`;
  if (!Array.isArray(v) || v.length < minLen || v.length > maxLen) return want;
  return v.every((x) => item(x) === null) ? null : want;
};
export const oneOf = (...values: string[]): Check => (v) =>
  (typeof v === 'string' && values.includes(v) ? null : `one of ${values.map((s) => JSON.stringify(s)).join(', ')}`);

export type Schema = Record<string, Check | { optional: Check }>;

/** Checks `obj` against `schema`; throws `file: field "a.b" must be ..., got ...`. */
export function checkFields(file: string, obj: unknown, schema: Schema, prefix = ''): void {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new ConfigError(`${file}: ${prefix ? `field "${prefix.slice(0, -1)}"` : 'the file'} must be a JSON object, got ${describe(obj)}`);
  }
  const o = obj as Record<string, unknown>;
  for (const [key, c] of Object.entries(schema)) {
    const check = typeof c === 'function' ? c : c.optional;
    if (typeof c !== 'function' && o[key] === undefined) continue;
    if (!(key in o)) throw new ConfigError(`${file}: field "${prefix}${key}" is missing`);
    const want = check(o[key]);
    if (want !== null) throw new ConfigError(`${file}: field "${prefix}${key}" must be ${want}, got ${describe(o[key])}`);
  }
}

const posInt = int(1);

/** `<net>/config.json` as `t2v convert` writes it (the file's keys; src/io/network-config.ts maps them to the Config). */
export const NETWORK_SCHEMAS: Record<NetworkKind, Schema> = {
  text_encoder: {
    context_length: posInt, vocab_size: int(1, 2 ** 24), width: posInt, heads: posInt, layers: int(1, 1024),
    mlp_width: posInt, layer_norm_eps: num(0, 1, true),
  },
  unet: {
    inDim: posInt, dim: posInt, embedDim: posInt, contextDim: posInt, decoderContextDim: posInt, outDim: posInt,
    dimMult: list(int(1, 64), 1), numHeads: posInt, headDim: posInt, numResBlocks: int(1, 64),
    attnScales: list(num(0, 1, true), 0), temporalAttention: bool, normGroups: posInt,
  },
  vae: {
    ch: posInt, ch_mult: list(int(1, 64), 1), num_res_blocks: int(1, 64), attn_levels: list(int(0, 15), 0),
    in_channels: posInt, out_ch: posInt, z_channels: posInt, embed_dim: posInt, resamp_with_conv: bool,
    give_pre_end: bool, tanh_out: bool, norm_num_groups: posInt, norm_eps: num(0, 1, true),
  },
};

const DEFAULTS_SCHEMA: Schema = {
  height: int(8, 65535), width: int(8, 65535), frames: int(1, 65535), steps: int(1, 1e5), guidance: num(-1e4, 1e4),
  fps: num(0, 1e3, true),
};
const SCHEDULER_SCHEMA: Schema = {
  num_timesteps: int(1, 1e5), beta_schedule: str, beta_start: num(0, 1, true), beta_end: num(0, 1, true), mean_type: str,
};
const isObject: Check = (v) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? null : 'a JSON object');

/** t2v.json beyond its format and version (checked first, with their own messages). */
export function checkModelInfo(file: string, info: Record<string, unknown>): void {
  checkFields(file, info, {
    dtype: oneOf('float16', 'float32'), scale_factor: num(0, 1e3, true), defaults: isObject,
    scheduler: { optional: isObject }, networks: { optional: isObject }, tokenizer: { optional: str },
  });
  checkFields(file, info.defaults, DEFAULTS_SCHEMA, 'defaults.');
  if (info.scheduler !== undefined) checkFields(file, info.scheduler, SCHEDULER_SCHEMA, 'scheduler.');
}

/** Checks the network's config.json. */
export function checkNetworkConfig(file: string, kind: NetworkKind, config: unknown): void {
  checkFields(file, config, NETWORK_SCHEMAS[kind]);
}

/**
 * `rel` (a path from a manifest or t2v.json), checked to name a file inside the folder: absolute paths, URLs and
 * paths that leave the folder (`../../etc/passwd`) are refused. Plain string rules, so a page checks the same.
 */
export function checkInsidePath(rel: unknown, file: string): string {
  if (typeof rel !== 'string' || rel === '' || rel.includes('\0')) throw new ConfigError(`${file}: path ${describe(rel)} is not a file name`);
  if (/^[\\/]|^[A-Za-z][A-Za-z0-9+.-]*:/.test(rel)) {
    throw new ConfigError(`${file}: path ${JSON.stringify(rel)} is absolute; a model folder may only name files inside itself`);
  }
  const parts = rel.split(/[\\/]/);
  if (parts.includes('..') || parts.every((p) => p === '' || p === '.')) {
    throw new ConfigError(`${file}: path ${JSON.stringify(rel)} leaves the model folder; a model folder may only name files inside itself`);
  }
  return rel;
}
