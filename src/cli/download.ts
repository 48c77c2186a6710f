import { join } from 'node:path';
import type { CommandModule } from 'yargs';
import cliProgress from 'cli-progress';
import { ConvertError } from '../../converters/modelscope.js';
import { STORAGE_DTYPES, type StorageDType } from '../io/weights-manifest.js';
import { fetchModel, type FetchModelOptions } from '../hub/model-cache.js';
import { conversionBars } from './convert.js';

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

/** weights/<owner>--<name> by default. */
export function defaultOutDir(repo: string): string {
  return join('weights', repo.replace('/', '--'));
}

/** The download's byte progress bar on a terminal (nothing otherwise). */
export function byteBar(enabled: boolean): { update(done: number, total: number, file: string): void; stop(): void } {
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
    stop() { if (started) bar.stop(); started = false; },
  };
}

/** The download's byte bar, then a bar per network while it is converted: the callbacks fetchModel takes. */
export function hubProgress(enabled: boolean): Required<Pick<FetchModelOptions, 'onDownload' | 'onDownloadEnd' | 'onConvert'>> & { stop(): void } {
  const download = byteBar(enabled);
  let convert: ReturnType<typeof conversionBars> | null = null;
  return {
    onDownload: (p) => download.update(p.done, p.total, p.file),
    onDownloadEnd: () => { download.stop(); convert = conversionBars(enabled, 'convert  {name} [{bar}] {percentage}% | {value}/{total} M params'); },
    onConvert: (e) => convert?.onProgress?.(e),
    stop: () => { download.stop(); convert?.stop(); },
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
    const progress = hubProgress(opts.progress !== false && process.stderr.isTTY === true);
    try {
      const r = await fetchModel(repo, {
        to: out, cache: opts.cache, revision: opts.revision, variant: opts.variant, dtype: opts.dtype as StorageDType,
        force: opts.force, deleteSource: opts.deleteSource, backend: opts.backend, ...progress,
        log: (line) => console.log(line),
        note: (line) => console.error(`t2v: note: ${line}`),
      });
      if (r.cached) console.log(`${repo}@${opts.revision ?? 'main'} is already converted in ${out} (--force converts it again)`);
    } finally {
      progress.stop();
    }
  },
};
