/**
 * Downloads the files of a diffusers-layout model (damo-vilab/text-to-video-ms-1.7b, cerspense/zeroscope_v2_576w)
 * from the Hugging Face hub with @huggingface/hub: only what the conversion reads, resumable, checked.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HubApiError, downloadFile, listFiles } from '@huggingface/hub';
import type { NetworkKind } from '../layers/network.js';
import { CONFIG_FILES, OPTIONAL_FILES, chooseWeights, shardFiles } from '../io/diffusers-files.js';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** A problem the user can act on: the CLI prints the message as one line. */
export class HubError extends Error {}

export interface HubOptions {
  revision?: string;
  /** Hub address; default HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Access token; default HF_TOKEN (or HUGGING_FACE_HUB_TOKEN). */
  token?: string;
  fetch?: typeof fetch;
}

export interface DownloadOptions extends HubOptions {
  /** Prefer `<name>.<variant>.<ext>` weights (`fp16`), falling back to the plain files. */
  variant?: string;
  /** Called as bytes arrive: done and total over every file of the plan. */
  onProgress?: (p: { done: number; total: number; file: string }) => void;
  /** Called once the plan is known. */
  onPlan?: (files: PlannedFile[]) => void;
}

export interface PlannedFile {
  path: string;
  size: number;
  /** sha256 of LFS files, from the hub's file list. */
  sha256?: string;
}

export interface DownloadSummary {
  repo: string;
  revision: string;
  files: PlannedFile[];
  /** Bytes fetched in this run (complete files already present are skipped). */
  fetched: number;
  skipped: number;
}

interface Resolved { endpoint: string; token?: string; revision: string; fetch?: typeof fetch }

function resolveOptions(o: HubOptions): Resolved {
  const endpoint = (o.endpoint ?? process.env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
  const token = o.token ?? process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
  if (token !== undefined && token !== '' && !token.startsWith('hf_')) {
    throw new HubError('the access token (HF_TOKEN) must start with hf_; make one at https://huggingface.co/settings/tokens');
  }
  return { endpoint, token: token || undefined, revision: o.revision ?? 'main', fetch: o.fetch };
}

/** Turns network failures and hub answers into one clear line. */
function explain(err: unknown, repo: string, r: Resolved, what: string): Error {
  if (err instanceof HubError) return err;
  if (err instanceof HubApiError) {
    const s = err.statusCode;
    if (s === 401 || s === 403) {
      return new HubError(`${repo}: access denied (${s}) ${what}; ${r.token ? 'the token (HF_TOKEN) has no access to it' : 'set HF_TOKEN to an access token that can read it'}`);
    }
    if (s === 404) return new HubError(`${repo}: not found on ${r.endpoint} (revision ${r.revision}) ${what}; check the model id and --revision`);
    return new HubError(`${repo}: the hub answered ${s} ${what}: ${err.message.split('. URL:')[0]}`);
  }
  const cause = (err as { cause?: { code?: string; errors?: { code?: string }[] } } | null)?.cause;
  const code = cause?.code ?? cause?.errors?.[0]?.code ?? (err as { code?: string } | null)?.code;
  if (err instanceof TypeError || code !== undefined) {
    return new HubError(`cannot reach ${r.endpoint}${code ? ` (${code})` : ''} ${what}: t2v download needs internet access `
      + '(or HF_ENDPOINT pointing at a reachable mirror); to convert a folder you already have, use t2v convert');
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** Every file of the repository at the revision, with sizes and LFS hashes. */
export async function listRepoFiles(repo: string, o: HubOptions = {}): Promise<PlannedFile[]> {
  const r = resolveOptions(o);
  const out: PlannedFile[] = [];
  try {
    for await (const f of listFiles({ repo, recursive: true, revision: r.revision, hubUrl: r.endpoint, accessToken: r.token, fetch: r.fetch })) {
      if (f.type === 'file') out.push({ path: f.path, size: f.lfs?.size ?? f.size, sha256: f.lfs?.oid });
    }
  } catch (err) {
    throw explain(err, repo, r, 'listing its files');
  }
  return out;
}

/**
 * The files the conversion needs: model_index.json, the scheduler, network configs, tokenizer, and one set of
 * weights per network (the asked variant where present). For sharded weights the index is listed; its shards are
 * added once the index is read (see `downloadModel`).
 */
export function planFiles(all: readonly PlannedFile[], variant = ''): PlannedFile[] {
  const byPath = new Map(all.map((f) => [f.path, f]));
  const plan: PlannedFile[] = [];
  const missing: string[] = [];
  for (const p of CONFIG_FILES) {
    const f = byPath.get(p);
    if (f) plan.push(f);
    else if (p !== 'model_index.json') missing.push(p);
  }
  for (const p of OPTIONAL_FILES) { const f = byPath.get(p); if (f) plan.push(f); }
  for (const kind of ['text_encoder', 'unet', 'vae'] as NetworkKind[]) {
    const c = chooseWeights(kind, (rel) => byPath.has(rel), variant);
    if (!c) missing.push(`${kind}/ weights`);
    else plan.push(byPath.get(c.file)!);
  }
  if (missing.length > 0) {
    throw new HubError(`not a diffusers text-to-video model: missing ${missing.join(', ')} (expected the layout of damo-vilab/text-to-video-ms-1.7b)`);
  }
  return plan;
}

async function sha256File(path: string, hash = createHash('sha256')): Promise<ReturnType<typeof createHash>> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash;
}

/**
 * Fetches one file to `dest`: a complete file is kept; a `.part` left by an interrupted run is continued with a
 * range request; the result is checked against the listed size and sha256 before it is renamed into place.
 */
async function fetchFile(repo: string, f: PlannedFile, dest: string, r: Resolved, onBytes: (n: number) => void): Promise<number> {
  if (existsSync(dest) && statSync(dest).size === f.size) { onBytes(f.size); return 0; }
  await mkdir(dirname(dest), { recursive: true });
  const part = `${dest}.part`;
  let have = existsSync(part) ? statSync(part).size : 0;
  if (have > f.size) { await rm(part); have = 0; }
  const hash = f.sha256 ? (have > 0 ? await sha256File(part) : createHash('sha256')) : null;
  onBytes(have);
  let blob: Blob | null;
  try {
    // Plain HTTP range requests (not the Xet chunk protocol): one stream per file, resumable at any byte.
    blob = await downloadFile({ repo, path: f.path, revision: r.revision, hubUrl: r.endpoint, accessToken: r.token, fetch: r.fetch, xet: false });
  } catch (err) {
    throw explain(err, repo, r, `fetching ${f.path}`);
  }
  if (!blob) throw new HubError(`${repo}: ${f.path} is listed but cannot be fetched (404)`);
  let fetched = 0;
  if (have < f.size) {
    const out = createWriteStream(part, { flags: have > 0 ? 'a' : 'w' });
    try {
      const stream = (have > 0 ? blob.slice(have) : blob).stream() as unknown as AsyncIterable<Uint8Array>;
      for await (const chunk of stream) {
        if (!out.write(chunk)) await new Promise<void>((res) => out.once('drain', () => res()));
        hash?.update(chunk);
        fetched += chunk.length;
        onBytes(chunk.length);
      }
    } catch (err) {
      throw explain(err, repo, r, `fetching ${f.path} (run the command again to resume)`);
    } finally {
      await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
    }
  }
  const size = statSync(part).size;
  if (size !== f.size || (hash && hash.digest('hex') !== f.sha256)) {
    await rm(part, { force: true });
    throw new HubError(`${repo}: ${f.path} arrived ${size !== f.size ? `with ${size} bytes, expected ${f.size}` : 'with a wrong sha256'}; it was removed, run the command again`);
  }
  await rename(part, dest);
  return fetched;
}

/** Downloads what the conversion needs into `dir` (the diffusers layout), resuming what an earlier run left. */
export async function downloadModel(repo: string, dir: string, o: DownloadOptions = {}): Promise<DownloadSummary> {
  if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) throw new HubError(`${repo}: not a hub model id (expected owner/name, e.g. damo-vilab/text-to-video-ms-1.7b)`);
  const r = resolveOptions(o);
  const all = await listRepoFiles(repo, o);
  const plan = planFiles(all, o.variant ?? '');
  const byPath = new Map(all.map((f) => [f.path, f]));
  const total = () => plan.reduce((a, f) => a + f.size, 0);
  let done = 0;
  let fetched = 0;
  let skipped = 0;
  const get = async (f: PlannedFile) => {
    const n = await fetchFile(repo, f, join(dir, f.path), r, (b) => { done += b; o.onProgress?.({ done, total: total(), file: f.path }); });
    fetched += n;
    if (n === 0) skipped++;
  };
  // Sharded weights: the index first, then the shards it names.
  for (const f of plan.filter((p) => p.path.endsWith('.index.json'))) {
    await get(f);
    const shards = shardFiles(f.path, JSON.parse(await readFile(join(dir, f.path), 'utf8')));
    for (const s of shards) {
      const entry = byPath.get(s);
      if (!entry) throw new HubError(`${repo}: ${f.path} names ${s}, which the repository does not have`);
      plan.push(entry);
    }
  }
  o.onPlan?.(plan);
  for (const f of plan) if (!f.path.endsWith('.index.json')) await get(f);
  return { repo, revision: r.revision, files: plan, fetched, skipped };
}
