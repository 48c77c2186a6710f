import { existsSync } from 'node:fs';
import type { CommandModule } from 'yargs';
import cliProgress from 'cli-progress';
import { convertModelScope, ConvertError, type ConvertSummary, type ProgressEvent } from '../../converters/modelscope.js';
import { convertDiffusers, detectLayout } from '../../converters/diffusers.js';
import { NETWORK_NAMES } from '../layers/registry.js';
import { STORAGE_DTYPES, type StorageDType } from '../io/weights-manifest.js';
import { selectBackend } from '../backends/select.js';
import { backendOption } from './info.js';

interface Options {
  dtype: string;
  tokenizer?: string;
  force?: boolean;
  variant?: string;
  backend?: string;
  progress?: boolean;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const mparams = (n: number) => `${(n / 1e6).toFixed(n >= 1e8 ? 1 : 2)} M`;

/** A bar per network on a terminal; nothing otherwise (the summary says what was done). `format` names cli-progress's fields. */
export function conversionBars(enabled: boolean,
  format = '{name} [{bar}] {percentage}% | {value}/{total} M params | {duration_formatted}'): { onProgress?: (e: ProgressEvent) => void; stop(): void } {
  if (!enabled) return { stop() {} };
  const multi = new cliProgress.MultiBar({ format, hideCursor: true, clearOnComplete: false, stopOnComplete: false },
    cliProgress.Presets.shades_classic);
  let bar: cliProgress.SingleBar | null = null;
  const m = (n: number) => Math.round(n / 1e5) / 10;
  return {
    onProgress(e) {
      if (e.phase === 'start') bar = multi.create(m(e.total), 0, { name: NETWORK_NAMES[e.kind].padEnd(12) });
      else bar?.update(m(e.done));
    },
    stop() { multi.stop(); },
  };
}

export function formatSummary(s: ConvertSummary): string {
  const lines = s.networks.map((n) =>
    `  ${NETWORK_NAMES[n.kind].padEnd(12)} ${mparams(n.params).padStart(9)} params  ${String(n.tensors).padStart(5)} tensors  ${mb(n.bytes).padStart(10)}`);
  return [`converted to ${s.out} (${s.dtype})`, ...lines,
    `  ${'total'.padEnd(12)} ${mparams(s.networks.reduce((a, n) => a + n.params, 0)).padStart(9)} params  ${' '.repeat(13)}  ${mb(s.bytes).padStart(10)} written in ${s.seconds.toFixed(1)} s`].join('\n');
}

export const command: CommandModule<object, Options & { source: string; out: string }> = {
  command: 'convert <source> <out>',
  describe: 'convert a model folder into a TF.js model folder: the released ModelScope layout (configuration.json '
    + 'and three checkpoints) or the diffusers layout (model_index.json, unet/, vae/, text_encoder/, tokenizer/); detected',
  builder: (y) => y
    .positional('source', { type: 'string', demandOption: true, describe: 'the released ModelScope folder or a diffusers folder' })
    .positional('out', { type: 'string', demandOption: true, describe: 'the folder to write' })
    .options({
      dtype: { type: 'string', requiresArg: true, default: 'float16', describe: `weight storage: ${STORAGE_DTYPES.join('|')}` },
      tokenizer: { type: 'string', requiresArg: true, describe: 'OpenCLIP bpe_simple_vocab_16e6.txt.gz, or a folder with vocab.json + merges.txt (ModelScope layout)' },
      variant: { type: 'string', requiresArg: true, describe: 'diffusers layout: weight variant to prefer, e.g. fp16' },
      force: { type: 'boolean', describe: 'replace <out> if it exists and is not empty' },
      progress: { type: 'boolean', default: true, describe: 'progress bar (--no-progress: none)' },
      ...backendOption,
    }),
  handler: async (opts) => {
    const { source, out } = opts;
    if (!(STORAGE_DTYPES as readonly string[]).includes(opts.dtype)) {
      throw new ConvertError(`unknown --dtype ${opts.dtype}; valid: ${STORAGE_DTYPES.join(', ')}`);
    }
    // the layout transposes run as tfjs ops; the cpu backend is the default here because it starts instantly
    await selectBackend(opts.backend ?? process.env.T2V_BACKEND ?? 'cpu');
    const layout = detectLayout(source);
    if (layout === null) {
      if (!existsSync(source)) throw new ConvertError(`${source}: no such folder`);
      throw new ConvertError(`${source}: not a model folder (no configuration.json of the ModelScope release, no model_index.json of diffusers)`);
    }
    if (layout === 'modelscope' && opts.variant) throw new ConvertError('--variant applies to the diffusers layout only');
    if (layout === 'diffusers' && opts.tokenizer) throw new ConvertError('--tokenizer applies to the ModelScope layout only (diffusers folders carry tokenizer/)');
    const progress = conversionBars(opts.progress !== false && process.stderr.isTTY === true);
    let summary: ConvertSummary;
    let notes: string[] = [];
    try {
      const common = {
        dtype: opts.dtype as StorageDType, force: opts.force, onProgress: progress.onProgress,
        onStale: (removed: string[]) => console.error(`t2v: note: removed ${removed.join(', ')} (left by an interrupted conversion)`),
      };
      if (layout === 'diffusers') {
        const s = await convertDiffusers(source, out, { ...common, variant: opts.variant });
        summary = s;
        notes = s.notes;
      } else {
        summary = await convertModelScope(source, out, { ...common, tokenizer: opts.tokenizer });
      }
    } finally {
      progress.stop();
    }
    console.log(formatSummary(summary));
    for (const n of notes) console.error(`t2v: note: ${n}; results may differ slightly from diffusers`);
  },
};
