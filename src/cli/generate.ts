import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import cliProgress from 'cli-progress';
import type { CommandModule } from 'yargs';
import { selectBackend } from '../backends/select.js';
import { readModelFolder } from '../io/model-folder.js';
import { readNpy, type NpyArray } from '../io/npy.js';
import { createScheduler, noiseScheduleFromInfo, SCHEDULER_NAMES, type SchedulerName } from '../pipeline/schedulers/index.js';
import { readVideoInput } from '../media/video-input.js';
import { checkStrength, timestepsToRun } from '../pipeline/video2video.js';
import { DEFAULT_DECODE_CHUNK, UPSTREAM_DEFAULTS, validateSettings, type GenerationDefaults } from '../pipeline/options.js';
import { DEFAULT_MODEL, resolveModel } from '../hub/model-cache.js';
import { BATCH_IDENTICAL, TextToVideo } from '../pipeline/text2video.js';
import { checkFormatLimits, checkWritable } from '../media/video-writer.js';
import { checkModelFits } from '../pipeline/model-fits.js';
import { checkOutputPaths, saveOutputs } from '../media/outputs.js';
import type { VideoResult } from '../pipeline/result.js';
import { hubProgress } from './download.js';
import { backendOption } from './info.js';

interface Options {
  model?: string;
  negative?: string;
  steps?: string;
  guidance?: string;
  frames?: string;
  height?: string;
  width?: string;
  seed?: string;
  noise?: string;
  saveLatents?: string;
  out: string;
  fps?: string;
  backend?: string;
  contactSheet?: string;
  decodeChunk?: string;
  batchGuidance?: boolean;
  streamWeights?: boolean;
  progress?: boolean;
  scheduler?: string;
  karrasSigmas?: boolean;
  eta?: string;
  video?: string;
  strength?: string;
}

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[+-]?\d+$/.test(v.trim())) throw new Error(`--${name} must be an integer, got "${v}"`);
  return Number(v);
}

function num(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`--${name} must be a number, got "${v}"`);
  return n;
}

function checkDirWritable(path: string, what: string): void {
  const dir = dirname(resolve(path));
  if (!existsSync(dir)) throw new Error(`cannot write ${what} ${path}: directory ${dir} does not exist`);
}

const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function formatSummary(r: VideoResult, written: string[], backend: string): string {
  const steps = r.timesteps.length;
  const where = written.length === 1 ? written[0] : `${written.length} files in ${dirname(written[0])}`;
  return [
    `wrote ${where}: ${r.numFrames} frames ${r.width}x${r.height} at ${r.fps} fps${r.seed !== null ? `, seed ${r.seed}` : ''}`,
    `  backend ${backend} | text ${sec(r.timings.text)} | denoise ${sec(r.timings.denoise)} (${steps} steps, ${(r.timings.denoise / 1000 / steps).toFixed(2)} s/step)`
      + ` | decode ${sec(r.timings.decode)} | total ${sec(r.timings.total)}`,
  ].join('\n');
}

const str = (describe: string) => ({ type: 'string', requiresArg: true, describe }) as const;

export const command: CommandModule<object, Options & { prompt: string }> = {
  command: 'generate <prompt>',
  describe: 'generate a video from a text prompt with the released model (downloaded on first use) or a converted one (--model)',
  builder: (y) => y
    .positional('prompt', { type: 'string', demandOption: true, describe: 'the text prompt' })
    .options({
      model: str(`converted model folder, or a hub id owner/name (default ${DEFAULT_MODEL}), downloaded and converted into the cache on first use`),
      negative: str('negative prompt (replaces the empty unconditional text)'),
      steps: str(`DDIM steps, 1..1000 (default ${UPSTREAM_DEFAULTS.steps}, or the model's)`),
      guidance: str(`classifier-free guidance scale (default ${UPSTREAM_DEFAULTS.guidance})`),
      frames: str(`number of frames (default ${UPSTREAM_DEFAULTS.frames})`),
      height: str(`multiple of 8 (default ${UPSTREAM_DEFAULTS.height})`),
      width: str(`multiple of 8 (default ${UPSTREAM_DEFAULTS.width})`),
      seed: str('seed of the initial noise (default: random, printed)'),
      noise: str('initial noise (.npy), float32 [1, 4, frames, height/8, width/8]'),
      'save-latents': str('write the final latents (.npy, before 1/0.18215), float32 [1, 4, frames, h/8, w/8]'),
      out: { ...str('output: .mp4 (H.264), .webm (VP9), .gif, or a directory (one PNG per frame)'), default: 'video.mp4' },
      fps: str(`frames per second of the video (default ${UPSTREAM_DEFAULTS.fps})`),
      'contact-sheet': str('also write all frames in one PNG'),
      'decode-chunk': str(`frames per VAE decode call (default ${DEFAULT_DECODE_CHUNK})`),
      'batch-guidance': { type: 'boolean', describe: 'conditional and unconditional UNet passes as one batch of two (default on cpu, wasm and webgpu); --no-batch-guidance: two UNet calls per step, as upstream' },
      'stream-weights': { type: 'boolean', describe: 'keep weights in host memory, upload each on use (default on wasm for models over 1.5 GB); --no-stream-weights: all resident in the backend' },
      progress: { type: 'boolean', default: true, describe: 'progress bar (--no-progress: none)' },
      scheduler: str(`sampler: ${SCHEDULER_NAMES.join('|')} (default ddim)`),
      'karras-sigmas': { type: 'boolean', describe: 'Karras sigmas (dpm-solver++, euler, unipc)' },
      eta: str('DDIM eta >= 0 (default 0; above 0 each step adds seeded noise)'),
      video: str('video-to-video from .mp4/.webm/.gif or a folder of PNG frames (resized to --width/--height when given)'),
      strength: str('video-to-video strength in (0, 1] (default 0.6): the share of the steps that run'),
      ...backendOption,
    }),
  handler: async (opts) => {
    const { prompt } = opts;
    const scheduler = (opts.scheduler ?? 'ddim') as SchedulerName;
    if (!(SCHEDULER_NAMES as readonly string[]).includes(scheduler)) {
      throw new Error(`--scheduler must be one of ${SCHEDULER_NAMES.join(', ')}, got "${opts.scheduler}"`);
    }
    const eta = num('eta', opts.eta);
    if (eta !== undefined && eta < 0) throw new Error(`--eta must be >= 0, got ${opts.eta}`);
    if (eta !== undefined && eta !== 0 && scheduler !== 'ddim') throw new Error(`--eta is for --scheduler ddim, not ${scheduler}`);
    if (opts.karrasSigmas && scheduler === 'ddim') throw new Error('--karras-sigmas is for --scheduler dpm-solver++, euler or unipc, not ddim');
    const strength = num('strength', opts.strength);
    if (strength !== undefined && !opts.video) throw new Error('--strength needs --video');
    if (strength !== undefined) {
      try {
        checkStrength(strength);
      } catch {
        throw new Error(`--strength must be in (0, 1], got ${opts.strength}`);
      }
    }
    const size = { frames: int('frames', opts.frames), height: int('height', opts.height), width: int('width', opts.width) };
    if (opts.video && (size.height === undefined) !== (size.width === undefined)) {
      throw new Error('--video: give both --width and --height to resize the video, or neither to keep its size');
    }
    if (opts.video && size.frames !== undefined && (!Number.isInteger(size.frames) || size.frames < 1)) {
      throw new Error(`--frames must be an integer >= 1, got ${opts.frames}`);
    }
    for (const k of ['height', 'width'] as const) {
      const v = size[k];
      if (opts.video && v !== undefined && (v < 8 || v % 8 !== 0)) throw new Error(`--${k} must be a positive multiple of 8, got ${v}`);
    }
    // the video is read (and resized) before the model loads, so a bad input fails at once
    const video = opts.video ? await readVideoInput(opts.video, size) : undefined;
    if (video && (video.width % 8 !== 0 || video.height % 8 !== 0)) {
      throw new Error(`--video ${opts.video} is ${video.width}x${video.height}, not a multiple of 8: give --width and --height to resize it`);
    }
    const settings = (d: GenerationDefaults) => ({
      steps: int('steps', opts.steps) ?? d.steps,
      guidance: num('guidance', opts.guidance) ?? d.guidance,
      frames: video?.frames ?? size.frames ?? d.frames,
      height: video?.height ?? size.height ?? d.height,
      width: video?.width ?? size.width ?? d.width,
      fps: num('fps', opts.fps) ?? d.fps,
      decodeChunk: int('decode-chunk', opts.decodeChunk) ?? DEFAULT_DECODE_CHUNK,
    });
    const progress = hubProgress(opts.progress !== false && process.stderr.isTTY === true);
    let modelDir: string;
    try {
      modelDir = await resolveModel(opts.model, {
        // a first download is minutes: refuse bad arguments before it, not after
        beforeFetch: () => { validateSettings(settings(UPSTREAM_DEFAULTS), 1000); checkWritable(opts.out); },
        log: (line) => console.error(line),
        note: (line) => console.error(`t2v: note: ${line}`),
        ...progress,
      });
    } finally {
      progress.stop();
    }
    const folder = await readModelFolder(modelDir);
    const s = settings({ ...UPSTREAM_DEFAULTS, ...folder.info.defaults });
    validateSettings(s, folder.info.scheduler?.num_timesteps ?? 1000);
    const schedulerOpts = { ...(eta !== undefined ? { eta } : {}), ...(opts.karrasSigmas ? { karrasSigmas: true } : {}) };
    // the steps the progress bar counts: the run's timesteps (from the strength's start with --video)
    const plan = createScheduler(scheduler, noiseScheduleFromInfo(folder.info.scheduler), { ...schedulerOpts, seed: 0 }).start(s.steps);
    const total = timestepsToRun(plan.timesteps, s.steps, video ? strength ?? 0.6 : undefined).length;
    plan.dispose();
    const seed = int('seed', opts.seed);
    if (seed !== undefined && (seed < 0 || !Number.isSafeInteger(seed))) throw new Error(`--seed must be a non-negative integer, got ${opts.seed}`);
    if (seed !== undefined && opts.noise) throw new Error('give --seed or --noise, not both');
    let noise: NpyArray | undefined;
    if (opts.noise) {
      try {
        noise = readNpy(opts.noise);
      } catch (err) {
        throw new Error(`--noise ${opts.noise}: ${err instanceof Error ? err.message : String(err)}`);
      }
      const want = [1, 4, s.frames, s.height / 8, s.width / 8];
      if (noise.dtype !== 'float32') throw new Error(`--noise ${opts.noise}: dtype ${noise.dtype}, expected float32`);
      if (noise.shape.length !== 5 || noise.shape.some((v, i) => v !== want[i])) {
        throw new Error(`--noise ${opts.noise}: shape [${noise.shape}], expected [${want}] (1, 4, frames, height/8, width/8 for --frames ${s.frames} --height ${s.height} --width ${s.width})`);
      }
    }
    // fail before minutes of sampling, not after
    checkOutputPaths({ out: opts.out, latents: opts.saveLatents, contactSheet: opts.contactSheet },
      { out: '--out', latents: '--save-latents', contactSheet: '--contact-sheet' });
    checkWritable(opts.out);
    checkFormatLimits(opts.out, s.width, s.height);
    if (opts.saveLatents) checkDirWritable(opts.saveLatents, '--save-latents');
    if (opts.contactSheet) {
      if (!/\.png$/i.test(opts.contactSheet)) throw new Error(`--contact-sheet must name a .png file, got ${opts.contactSheet}`);
      checkDirWritable(opts.contactSheet, '--contact-sheet');
    }

    const backend = await selectBackend(opts.backend);
    await checkModelFits(modelDir, { ...s, batchGuidance: opts.batchGuidance ?? BATCH_IDENTICAL.has(backend.name) }, backend.name);
    const t2v = await TextToVideo.load(modelDir, { streamWeights: opts.streamWeights });
    const controller = new AbortController();
    const onSigint = () => controller.abort(new Error('interrupted'));
    process.once('SIGINT', onSigint);
    const bar = opts.progress !== false && process.stderr.isTTY
      ? new cliProgress.SingleBar({
        format: 'denoising [{bar}] {value}/{total} steps | t={timestep} | {duration_formatted} elapsed | ETA {eta_formatted}',
        hideCursor: true, etaBuffer: 5, stream: process.stderr,
      }, cliProgress.Presets.shades_classic)
      : null;
    let result: VideoResult;
    try {
      bar?.start(total, 0, { timestep: '-' });
      result = await t2v.generate({
        prompt, negativePrompt: opts.negative, ...s, seed, noise, signal: controller.signal,
        batchGuidance: opts.batchGuidance, scheduler, ...schedulerOpts, video, strength,
        onStep: (step, timestep) => { bar?.update(step, { timestep }); },
      });
    } finally {
      bar?.stop();
      process.removeListener('SIGINT', onSigint);
      t2v.dispose();
    }
    const written = await saveOutputs(result, { out: opts.out, latents: opts.saveLatents, contactSheet: opts.contactSheet });
    console.log(formatSummary(result, written, backend.name));
    if (opts.saveLatents) console.log(`  latents: ${opts.saveLatents}`);
    if (opts.contactSheet) console.log(`  contact sheet: ${opts.contactSheet}`);
  },
};
