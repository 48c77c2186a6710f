/**
 * A hub model as a converted folder: downloaded (src/hub/download.ts) and converted (converters/diffusers.ts) on first use,
 * found again afterwards. Used by `t2v download` and by `t2v generate` without `--model` or with a hub id.
 */
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { convertDiffusers, diffusersWeights, isDiffusersFolder, type DiffusersSummary } from '../../converters/diffusers.js';
import { ConvertError, type ProgressEvent } from '../../converters/modelscope.js';
import type { StorageDType } from '../io/weights-manifest.js';
import { selectBackend } from '../backends/select.js';
import { DEFAULT_ENDPOINT, HubError, downloadModel, type DownloadSummary } from './download.js';

/** The released model `t2v generate` uses when given no `--model`, and the weights it fetches (half the download). */
export const DEFAULT_MODEL = 'damo-vilab/text-to-video-ms-1.7b';
export const DEFAULT_VARIANT = 'fp16';

/**
 * Where hub models are kept once converted: `T2V_CACHE`, else `t2v/` in the Hugging Face cache folder
 * (`HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`).
 */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.T2V_CACHE) return env.T2V_CACHE;
  const hf = env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface');
  return join(hf, 't2v');
}

/** `<cacheRoot>/<owner>--<name>`. */
export function cachedModelDir(repo: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheRoot(env), repo.replace('/', '--'));
}

/** owner/name that is not a path on disk (a folder of that name wins). */
export function isHubId(model: string): boolean {
  return /^[\w-][\w.-]*\/[\w.-]+$/.test(model) && !model.startsWith('.') && !existsSync(model);
}

/** True when `out` holds a finished conversion of this hub id and revision. */
export function alreadyConverted(out: string, repo: string, revision: string): boolean {
  try {
    const info = JSON.parse(readFileSync(join(out, 't2v.json'), 'utf8')) as { source?: { hub?: string; revision?: string } };
    return info.source?.hub === repo && info.source?.revision === revision;
  } catch {
    return false;
  }
}

/** True when `dir` holds a whole diffusers folder from an earlier download (configs, tokenizer, weights). */
function completeDownload(dir: string, variant?: string): boolean {
  if (!isDiffusersFolder(dir)) return false;
  if (!['tokenizer/vocab.json', 'tokenizer/merges.txt', 'scheduler/scheduler_config.json'].every((f) => existsSync(join(dir, f)))) return false;
  try {
    diffusersWeights(dir, variant ?? '');
    return true;
  } catch {
    return false;
  }
}

export interface FetchModelOptions {
  /** The converted model folder. */
  to: string;
  /** Where the downloaded files go (default `<to>.download`). */
  cache?: string;
  revision?: string;
  variant?: string;
  dtype?: StorageDType;
  /** Convert again even when `to` holds this model already (and replace whatever `to` holds). */
  force?: boolean;
  /** Remove the downloaded files once the conversion succeeded. */
  deleteSource?: boolean;
  /** tfjs backend for the conversion (default: T2V_BACKEND, else cpu, which starts instantly). */
  backend?: string;
  onDownload?: (p: { done: number; total: number; file: string }) => void;
  onConvert?: (e: ProgressEvent) => void;
  /** Called at the end of the download and around the conversion: once the download stops, the bar is done. */
  onDownloadEnd?: () => void;
  /** Progress lines for people (what was fetched, where it went). */
  log?: (line: string) => void;
  /** Notes (a conversion from files already there while offline, numeric caveats). */
  note?: (line: string) => void;
}

export interface FetchModelResult {
  dir: string;
  /** Found converted already: nothing was fetched or converted. */
  cached: boolean;
  downloaded: DownloadSummary | null;
  converted: DiffusersSummary | null;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/**
 * Makes `opts.to` a converted folder of the hub model `repo`: nothing to do when it holds that model and revision;
 * else downloads what is missing (resuming; a complete earlier download is converted while offline) and converts.
 */
export async function fetchModel(repo: string, opts: FetchModelOptions): Promise<FetchModelResult> {
  const revision = opts.revision ?? 'main';
  const out = opts.to;
  const cache = opts.cache ?? `${out.replace(/\/+$/, '')}.download`;
  if (alreadyConverted(out, repo, revision) && !opts.force) return { dir: out, cached: true, downloaded: null, converted: null };
  let got: DownloadSummary | null = null;
  try {
    got = await downloadModel(repo, cache, { revision, variant: opts.variant, onProgress: opts.onDownload });
  } catch (err) {
    // Offline with a complete earlier download: convert what is there rather than stop.
    if (!(err instanceof HubError && err.message.startsWith('cannot reach') && completeDownload(cache, opts.variant))) throw err;
    opts.note?.(`${err.message.split(':')[0]}; converting the files already in ${cache}`);
  } finally {
    opts.onDownloadEnd?.();
  }
  if (got) {
    const total = got.files.reduce((a, f) => a + f.size, 0);
    opts.log?.(`downloaded ${repo}@${got.revision}: ${got.files.length} files, ${mb(total)} (${mb(got.fetched)} fetched now, ${got.skipped} already complete) in ${cache}`);
  }
  if (!isDiffusersFolder(cache)) throw new ConvertError(`${cache}: the downloaded files are not a diffusers folder`);
  await selectBackend(opts.backend ?? process.env.T2V_BACKEND ?? 'cpu');
  const s = await convertDiffusers(cache, out, {
    dtype: opts.dtype ?? 'float16', variant: opts.variant, force: opts.force, onProgress: opts.onConvert,
    source: { hub: repo, revision: got?.revision ?? revision, endpoint: process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT },
  });
  opts.log?.(`converted to ${s.out} (${s.dtype}, ${mb(s.bytes)}, ${s.seconds.toFixed(1)} s)`);
  for (const n of s.notes) opts.note?.(`${n}; results may differ slightly from diffusers`);
  if (opts.deleteSource && existsSync(cache)) await rm(cache, { recursive: true, force: true });
  return { dir: out, cached: false, downloaded: got, converted: s };
}

export interface ResolveModelOptions extends Pick<FetchModelOptions, 'backend' | 'onDownload' | 'onDownloadEnd' | 'onConvert' | 'note'> {
  /** The environment cacheRoot reads (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Said before a first download starts, and when the cache already holds the model. */
  log?: (line: string) => void;
  /** Called before anything is fetched, when something will be (to check the other arguments first). */
  beforeFetch?: () => void;
}

/**
 * The folder to load for `--model`: a folder as it is; a hub id (owner/name), or nothing (DEFAULT_MODEL), from the
 * cache, downloaded (the fp16 variant where there is one) and converted there on first use.
 */
export async function resolveModel(model: string | undefined, opts: ResolveModelOptions = {}): Promise<string> {
  if (model !== undefined && !isHubId(model)) return model;
  const repo = model ?? DEFAULT_MODEL;
  const env = opts.env ?? process.env;
  const dir = cachedModelDir(repo, env);
  if (alreadyConverted(dir, repo, 'main')) {
    opts.log?.(`model ${repo}: ${dir}`);
    return dir;
  }
  opts.beforeFetch?.();
  opts.log?.(`model ${repo}: first use, downloading it (${DEFAULT_VARIANT} weights where there are) and converting it into ${dir} (T2V_CACHE moves the cache)`);
  try {
    await fetchModel(repo, {
      ...opts, to: dir, variant: DEFAULT_VARIANT, force: true, deleteSource: true, log: undefined,
    });
  } catch (err) {
    if (!(err instanceof HubError)) throw err;
    // owner/name may also be a mistyped folder: say both
    const folder = model !== undefined ? `${model} is no folder here; as a hub id: ` : '';
    if (/: not found on /.test(err.message)) throw new HubError(`${folder}${err.message.replace(/ listing its files;/, ';')}`);
    const offline = /^cannot reach \S+(?: \([A-Z_]+\))?/.exec(err.message);
    if (!offline) throw err;
    throw new HubError(`${folder}${offline[0]} to download ${repo} (needed once, then kept in ${dir}): connect to the internet `
      + `(or set HF_ENDPOINT to a reachable mirror), or pass --model with a converted folder (t2v convert, t2v download)`);
  }
  return dir;
}
