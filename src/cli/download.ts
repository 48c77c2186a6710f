import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { CommandModule } from 'yargs';
import cliProgress from 'cli-progress';
import { convertDiffusers, isDiffusersFolder } from '../../converters/diffusers.js';
import { ConvertError } from '../../converters/modelscope.js';
import { STORAGE_DTYPES, type StorageDType } from '../../converters/tfjs-writer.js';
import { selectBackend } from '../backend.js';
import { conversionBars } from './convert.js';
import { HubError, downloadModel, type DownloadSummary } from '../hub.js';
import { diffusersWeights } from '../../converters/diffusers.js';

interface Options {
  revision?: string;
  variant?: string;
  to?: string;
  cache?: string;
  dtype: string;
  force?: boolean;
  deleteSource?: boolean;
  progress?: boolean;
  backend?: string;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** True when `dir` holds a whole diffusers folder from an earlier download (configs, tokenizer, weights). */
function completeCache(dir: string, variant?: string): boolean {
  if (!isDiffusersFolder(dir)) return false;
  if (!['tokenizer/vocab.json', 'tokenizer/merges.txt', 'scheduler/scheduler_config.json'].every((f) => existsSync(join(dir, f)))) return false;
  try {
    diffusersWeights(dir, variant ?? '');
    return true;
  } catch {
    return false;
  }
}

/** True when `out` holds a finished conversion of this hub id and revision. */
function alreadyConverted(out: string, repo: string, revision: string): boolean {
  try {
    const info = JSON.parse(readFileSync(join(out, 't2v.json'), 'utf8')) as { source?: { hub?: string; revision?: string } };
    return info.source?.hub === repo && info.source?.revision === revision;
  } catch {
    return false;
  }
}

/** weights/<owner>--<name> by default. */
export function defaultOutDir(repo: string): string {
  return join('weights', repo.replace('/', '--'));
}

function byteBar(enabled: boolean): { update(done: number, total: number, file: string): void; stop(): void } {
  if (!enabled) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar({
    format: 'download [{bar}] {percentage}% | {done}/{all} MB | {speed} MB/s | eta {eta_formatted} | {file}',
    hideCursor: true, etaBuffer: 200,
  }, cliProgress.Presets.shades_classic);
  const t0 = performance.now();
  let started = false;
  return {
    update(done, total, file) {
      const payload = { done: (done / 1e6).toFixed(0), all: (total / 1e6).toFixed(0), file, speed: (done / 1e3 / Math.max(1, performance.now() - t0)).toFixed(1) };
      if (!started) { bar.start(total, done, payload); started = true; }
      bar.setTotal(total);
      bar.update(done, payload);
    },
    stop() { if (started) bar.stop(); },
  };
}

export const command: CommandModule<object, Options & { 'hub-id': string }> = {
  command: 'download <hub-id>',
  describe: 'download a diffusers-layout model from the Hugging Face hub (damo-vilab/text-to-video-ms-1.7b, '
    + 'cerspense/zeroscope_v2_576w, ...) and convert it into a TF.js model folder',
  builder: (y) => y
    .positional('hub-id', { type: 'string', demandOption: true, describe: 'model id on the hub, owner/name' })
    .options({
      revision: { type: 'string', requiresArg: true, default: 'main', describe: 'branch, tag or commit' },
      variant: { type: 'string', requiresArg: true, describe: 'weight variant to prefer, e.g. fp16 (half the download; plain files where it is missing)' },
      to: { type: 'string', requiresArg: true, describe: 'the converted model folder (default weights/<owner>--<name>)' },
      cache: { type: 'string', requiresArg: true, describe: 'where the downloaded files go (default <to>.download); kept for resuming and re-converting' },
      dtype: { type: 'string', requiresArg: true, default: 'float16', describe: `converted weight storage: ${STORAGE_DTYPES.join('|')}` },
      force: { type: 'boolean', describe: 'replace the converted folder if it exists and is not empty' },
      'delete-source': { type: 'boolean', describe: 'remove the downloaded files once the conversion succeeded' },
      progress: { type: 'boolean', default: true, describe: 'progress bar (--no-progress: none)' },
      backend: { type: 'string', requiresArg: true, describe: 'tfjs backend for the conversion (default cpu)' },
    }),
  handler: async (opts) => {
    const repo = opts['hub-id'];
    if (!(STORAGE_DTYPES as readonly string[]).includes(opts.dtype)) {
      throw new ConvertError(`unknown --dtype ${opts.dtype}; valid: ${STORAGE_DTYPES.join(', ')}`);
    }
    const out = opts.to ?? defaultOutDir(repo);
    const cache = opts.cache ?? `${out.replace(/\/+$/, '')}.download`;
    const done = alreadyConverted(out, repo, opts.revision ?? 'main');
    if (done && !opts.force) {
      console.log(`${repo}@${opts.revision ?? 'main'} is already converted in ${out} (--force converts it again)`);
      return;
    }
    const tty = opts.progress !== false && process.stderr.isTTY === true;
    const bar = byteBar(tty);
    let got: DownloadSummary | null = null;
    try {
      got = await downloadModel(repo, cache, {
        revision: opts.revision, variant: opts.variant,
        onProgress: (p) => bar.update(p.done, p.total, p.file),
      });
    } catch (err) {
      // Offline with a complete earlier download: convert what is there rather than stop.
      if (!(err instanceof HubError && err.message.startsWith('cannot reach') && completeCache(cache, opts.variant))) throw err;
      console.error(`t2v: note: ${err.message.split(':')[0]}; converting the files already in ${cache}`);
    } finally {
      bar.stop();
    }
    if (got) {
      const total = got.files.reduce((a, f) => a + f.size, 0);
      console.log(`downloaded ${repo}@${got.revision}: ${got.files.length} files, ${mb(total)} (${mb(got.fetched)} fetched now, ${got.skipped} already complete) in ${cache}`);
    }
    if (!isDiffusersFolder(cache)) throw new ConvertError(`${cache}: the downloaded files are not a diffusers folder`);
    await selectBackend(opts.backend ?? process.env.T2V_BACKEND ?? 'cpu');
    const bars = conversionBars(tty, 'convert  {name} [{bar}] {percentage}% | {value}/{total} M params');
    let s: Awaited<ReturnType<typeof convertDiffusers>>;
    try {
      s = await convertDiffusers(cache, out, {
        dtype: opts.dtype as StorageDType, variant: opts.variant, force: opts.force, onProgress: bars.onProgress,
        source: { hub: repo, revision: got?.revision ?? opts.revision ?? 'main', endpoint: process.env.HF_ENDPOINT ?? 'https://huggingface.co' },
      });
    } finally {
      bars.stop();
    }
    console.log(`converted to ${s.out} (${s.dtype}, ${mb(s.bytes)}, ${s.seconds.toFixed(1)} s)`);
    for (const n of s.notes) console.error(`t2v: note: ${n}; results may differ slightly from diffusers`);
    if (opts.deleteSource && existsSync(cache)) await rm(cache, { recursive: true, force: true });
  },
};
