import * as tf from '@tensorflow/tfjs';
import { opsForActiveBackend, selectBackend, type BackendChoice } from '../backends/select.js';
import type { WebGPUOptions } from '../backends/webgpu/options.js';
import { WebGPUOps } from '../backends/webgpu/ops.js';
import type { Ops } from '../layers/ops.js';
import { bufferLimitProblem } from '../backends/limits.js';
import type { FetchSourceOptions } from '../io/fetch-source.js';
import { loadNetwork, manifestBytes, readModelFolder, type ModelInfo, type ShardProgress } from '../io/model-folder.js';
import { inBrowser, openSource, type ModelSource } from '../io/source.js';
import type { NpyArray } from '../io/npy.js';
import { guide } from './diffusion.js';
import type { Frames } from '../media/images.js';
import { randomSeed, seededNoise } from './noise.js';
import { DEFAULT_DECODE_CHUNK, UPSTREAM_DEFAULTS, validateSettings, type GenerationDefaults } from './options.js';
import { VideoResult } from './result.js';
import { createScheduler, noiseScheduleFromInfo } from './schedulers/index.js';
import type { NoiseSchedule, Scheduler, SchedulerName } from './schedulers/scheduler.js';
import { CLIPTokenizer } from './tokenizer.js';
import { backendLimits, checkMemory } from './memory.js';
import type { UNetConfig } from '../layers/unet/config.js';
import type { VAEConfig } from '../layers/vae/config.js';
import type { VideoInput } from '../media/video-input-common.js';
import { checkStrength, encodeVideo, strengthStart } from './video2video.js';

/** What the pipeline needs of each network (the classes in src/layers satisfy these). */
export interface TokenizerLike {
  encode(text: string): number[];
}
export interface TextEncoderLike {
  forward(ids: tf.Tensor2D): tf.Tensor3D;
}
export interface UNetLike {
  forward(x: tf.Tensor5D, t: tf.Tensor1D, context: tf.Tensor3D): tf.Tensor5D;
  /** True when forward takes x and t of batch 1 under a context of batch b (as if repeated b times). */
  readonly sharesInput?: boolean;
}
export interface VaeLike {
  decode(z: tf.Tensor4D): tf.Tensor4D;
  /** Images [n, H, W, 3] in [-1, 1] -> the posterior's mean [n, H/8, W/8, c] (video-to-video only). */
  encode?(x: tf.Tensor4D): tf.Tensor4D;
}
interface Disposable {
  disposeWeights?(): number;
}

export interface TextToVideoComponents {
  tokenizer: TokenizerLike;
  textEncoder: TextEncoderLike & Disposable;
  unet: UNetLike & Disposable;
  vae: VaeLike & Disposable;
  /** Latents are divided by this before decoding (0.18215). */
  scaleFactor?: number;
  latentChannels?: number;
  defaults?: Partial<GenerationDefaults>;
  /** The model's noise schedule (default: the ModelScope release's). */
  schedule?: NoiseSchedule;
}

/** Given to `onStep` while a step's x0 estimate is alive; its methods must be called before the callback returns. */
export interface StepPreview {
  /** The current x0 estimate (latent space), float32 in upstream layout [1, 4, frames, h, w]. */
  latents(): Float32Array;
  /** Frame `i` of the x0 estimate, decoded: uint8 RGB [height, width, 3]. */
  frame(i?: number): Promise<{ rgb: Uint8Array; width: number; height: number }>;
}

export interface GenerateOptions {
  prompt: string;
  /** Replaces the empty unconditional text. */
  negativePrompt?: string;
  steps?: number;
  guidance?: number;
  frames?: number;
  height?: number;
  width?: number;
  /** Seed of the documented noise generator (src/pipeline/noise.ts); a random one when neither seed nor noise. */
  seed?: number;
  /**
   * Initial noise, float32 [1, 4, frames, height/8, width/8] (upstream layout b c f h w); with `video`, the noise
   * added to the video's latents.
   */
  noise?: Float32Array | NpyArray;
  /** 'ddim' (default), 'dpm-solver++', 'euler', 'unipc', or a Scheduler object built by the caller. */
  scheduler?: SchedulerName | Scheduler;
  /** Karras sigmas for the schedulers that have them (dpm-solver++, euler, unipc). */
  karrasSigmas?: boolean;
  /** DDIM's eta (default 0); above 0 each step adds noise from the seeded generator (seed + 1). */
  eta?: number;
  /**
   * Video-to-video: the video to start from (frames, or a path: .mp4/.webm/.gif or a folder of PNG frames). Its
   * frames are resized to width/height when given (else its size is used); `frames` keeps the first N (default all).
   */
  video?: VideoInput;
  /** Video-to-video: how much of the schedule to run, in (0, 1] (default 0.6, diffusers' default). */
  strength?: number;
  /** Called after each step (1-based step, the timestep), once the step is done, while the next one runs. */
  onStep?: (step: number, timestep: number, preview: StepPreview) => void | Promise<void>;
  signal?: AbortSignal;
  /** Frames per VAE call (default 4): bounds peak memory of the decode. */
  decodeChunk?: number;
  /**
   * Conditional and unconditional UNet passes as one batch of two instead of two calls, as upstream makes them.
   * Default: on for cpu, wasm and webgpu, where it is measured to give identical numbers (test/e2e.test.ts; webgpu
   * with tensor cores on the H100: identical final latents, 11.2 s instead of 15.3 s for 50 steps at 16x256x256,
   * bench/RESULTS.md run 13c) and runs about 25% faster on wasm; off elsewhere (not measured there, and it doubles
   * the UNet's activation memory).
   */
  batchGuidance?: boolean;
  /** Stored in the result for saving (default: the model's fps). */
  fps?: number;
}

export interface LoadOptions {
  /**
   * tfjs backend: auto, tensorflow, webgpu, wasm, cpu (src/backends/select.ts). Omitted: `auto` (or T2V_BACKEND), unless the
   * application already made a tfjs backend current (tf.setBackend, selectBackend), which is then kept.
   */
  backend?: string;
  /**
   * Keep the weights in host memory and upload each one when a layer uses it, instead of resident tensors. Default:
   * on for wasm when the model's float32 weights exceed WASM_RESIDENT_BYTES (wasm's heap stops at 4 GB, and the
   * released model is 7.3 GB in float32); off elsewhere. Same numbers either way; costs a copy of each weight per use.
   */
  streamWeights?: boolean;
  /** webgpu: matmuls and convolutions on tensor cores where the GPU has them (default: T2V_TENSOR_CORES); webgpu.tensorCores. */
  tensorCores?: boolean;
  /** webgpu: how it executes (src/backends/webgpu/options.ts: tensor cores, fused kernels, tiling, caches, Dawn toggles). */
  webgpu?: Partial<WebGPUOptions>;
  /** Check each weight shard against the sha256 in its manifest while loading (as `t2v verify`); default off. */
  verify?: boolean;
  /** Told as weight shards arrive: bytes of all three networks so far, of their total (the three manifests' sum). */
  onProgress?: (p: LoadProgress) => void;
  /** URL loading: the Cache Storage bucket shards are kept in (default `t2v-models`), or false for none. */
  cache?: FetchSourceOptions['cache'];
  /** URL loading: cancels the downloads. */
  signal?: AbortSignal;
  /**
   * webgpu: keep the large weights in float16 on the device (half the memory: the released model's 7.3 GB become
   * about 3.7 GB). The tensor-core GEMMs read them as they are (they round B to f16 anyway); other uses unpack a
   * float32 copy. Default: on where the ops run GEMMs on tensor cores, and in a browser whose device has shader-f16;
   * off elsewhere (docs/browser.md).
   */
  halfWeights?: boolean;
}

/** Whether to keep weights float16-resident (LoadOptions.halfWeights) on the active backend, running `ops`. */
export function shouldKeepHalf(asked?: boolean, ops?: Ops): boolean {
  if (asked !== undefined) return asked;
  if (tf.getBackend() !== 'webgpu') return false;
  if (ops instanceof WebGPUOps && ops.tensorCores !== null) return true;
  if (!inBrowser()) return false;
  const device = (tf.backend() as unknown as { device?: { features?: { has(f: string): boolean } } }).device;
  return device?.features?.has('shader-f16') === true;
}

/** What `LoadOptions.onProgress` is told. */
export interface LoadProgress extends ShardProgress {
  /** Over the whole model. */
  modelLoadedBytes: number;
  modelTotalBytes: number;
}

/** Above this many bytes of float32 weights, wasm streams them (the rest of its 4 GB heap is for activations). */
export const WASM_RESIDENT_BYTES = 1.5 * 2 ** 30;

/** Whether to stream a model's weights on the active backend (LoadOptions.streamWeights). */
export function shouldStream(info: ModelInfo, asked?: boolean): boolean {
  if (asked !== undefined) return asked;
  const params = Object.values(info.networks ?? {}).reduce((a, n) => a + (n?.params ?? 0), 0);
  return tf.getBackend() === 'wasm' && params * 4 > WASM_RESIDENT_BYTES;
}

/** wasm aborts when its heap (at most 4 GB) is full, with messages that say nothing to a user; this one says what to do. */
function explainOutOfMemory(err: unknown, what: string): unknown {
  const msg = err instanceof Error ? err.message : String(err);
  if (tf.getBackend() !== 'wasm' || !/Aborted\(|out of memory|memory access out of bounds|Cannot enlarge memory/i.test(msg)) return err;
  return new Error(`out of memory on the wasm backend while ${what} (its heap stops at 4 GB): stream the weights (the default `
    + 'above 1.5 GB), or use fewer frames, a smaller size, --decode-chunk 1, --no-batch-guidance, or a GPU backend');
}

function aborted(signal?: AbortSignal): void {
  if (signal?.aborted) {
    throw signal.reason instanceof Error ? signal.reason : new DOMException('generation aborted', 'AbortError');
  }
}

/** A converted folder's tokenizer: the merge list (gzipped or not), or a folder with vocab.json + merges.txt. */
async function loadTokenizer(source: ModelSource, path: string): Promise<CLIPTokenizer> {
  if (/\.(gz|txt)$/.test(path)) return CLIPTokenizer.fromMergesBytes(new Uint8Array(await source.readBytes(path, -1)), source.describe(path));
  const vocab = await source.readText(`${path}/vocab.json`);
  const merges = await source.readText(`${path}/merges.txt`);
  if (vocab !== null && merges !== null) return CLIPTokenizer.fromHuggingFace(vocab, merges);
  const gz = `${path}/bpe_simple_vocab_16e6.txt.gz`;
  return CLIPTokenizer.fromMergesBytes(new Uint8Array(await source.readBytes(gz, -1)), source.describe(gz));
}

/** Backends on which one UNet call on a batch of two was measured to equal two calls. */
export const BATCH_IDENTICAL: ReadonlySet<string> = new Set(['cpu', 'wasm', 'webgpu']);

/** Prompts whose text features are kept (about 0.3 MB each for 77 x 1024 float32). */
const TEXT_CACHE_SIZE = 8;

// a macrotask, so a page stays responsive between steps (setImmediate in Node)
const tick = typeof setImmediate === 'function' ? () => new Promise<void>((r) => setImmediate(r)) : () => new Promise<void>((r) => setTimeout(r, 0));

/** Throws `message` (with the count) when `data` holds NaN or Inf: garbage in, not a black video out. */
function assertFinite(data: Float32Array, message: string): void {
  let bad = 0;
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) bad++;
  if (bad > 0) throw new NonFiniteError(message.replace('NaN/Inf', `NaN/Inf (${bad} of ${data.length} values)`));
}

/** Values that became NaN or Inf during a generation. */
export class NonFiniteError extends Error {}

/**
 * ModelScope text-to-video, as upstream's TextToVideoSynthesis.forward: OpenCLIP text features of the prompt and of
 * the empty (or negative) prompt, DDIM (eta 0) with classifier-free guidance `u + g * (c - u)`, latents / 0.18215
 * decoded frame by frame by the VAE, then x * 0.5 + 0.5, clamp to [0, 1], (x * 255) truncated to uint8.
 */
export class TextToVideo {
  /** The model's noise schedule, which every scheduler is built from. */
  readonly schedule: NoiseSchedule;
  readonly defaults: GenerationDefaults;
  readonly scaleFactor: number;
  readonly latentChannels: number;
  /** The backend `load` selected (null when built from components). */
  backend: BackendChoice | null = null;
  /** What `load` runs the networks on (plainOps, or WebGPUOps with its options); null when built from components. */
  ops: Ops | null = null;
  /** The model folder `load` read (null when built from components); named in error messages. */
  dir: string | null = null;
  /** Bytes of weights resident in the backend (wasm's heap holds them beside the activations). */
  residentWeightBytes = 0;
  /** True when `load` kept the large weights float16 on the device (LoadOptions.halfWeights). */
  halfWeights = false;
  private disposed = false;
  private readonly textCache = new Map<string, { data: Float32Array; shape: [number, number, number] }>();

  constructor(readonly components: TextToVideoComponents, readonly info: ModelInfo | null = null) {
    this.schedule = components.schedule ?? noiseScheduleFromInfo(undefined);
    this.defaults = { ...UPSTREAM_DEFAULTS, ...components.defaults };
    this.scaleFactor = components.scaleFactor ?? 0.18215;
    this.latentChannels = components.latentChannels ?? 4;
  }

  /**
   * Loads a converted model folder (`t2v convert`): tokenizer, text encoder, UNet and VAE. `location` is a folder on
   * disk (Node), an http(s) URL of that folder served as static files (relative to the page in a browser), or a
   * ModelSource (src/io/source.ts).
   */
  static async load(location: string | ModelSource, opts: LoadOptions = {}): Promise<TextToVideo> {
    // Left to itself tfjs would start its plain-JS cpu backend (15x slower than wasm) and print its tfjs-node banner.
    const wanted = opts.backend ?? (tf.getBackend() ? undefined : 'auto');
    const execution = { tensorCores: opts.tensorCores, webgpu: opts.webgpu };
    const backend = wanted !== undefined ? await selectBackend(wanted, execution) : null;
    const ops = backend?.ops ?? opsForActiveBackend(execution);
    const source = openSource(location, { cache: opts.cache, signal: opts.signal });
    const dir = source.location;
    const folder = await readModelFolder(source);
    for (const k of ['text_encoder', 'unet', 'vae'] as const) {
      if (!folder.networks.includes(k)) throw new Error(`${dir} is not a complete t2v model: it has no ${k}/; convert the whole model with \`t2v convert\``);
    }
    if (!folder.tokenizer) throw new Error(`${dir} has no tokenizer (t2v.json "tokenizer"); convert the model again with \`t2v convert\``);
    const info = folder.info;
    const sched = info.scheduler;
    if (sched && (sched.beta_schedule !== 'linear_sd' || sched.mean_type !== 'eps')) {
      throw new Error(`${dir}: scheduler ${sched.beta_schedule}/${sched.mean_type} is not supported (linear_sd/eps only)`);
    }
    const tokenizer = await loadTokenizer(source, folder.tokenizerPath!);
    const loaded: Disposable[] = [];
    // the three manifests were read (and kept by a URL source's cache) by readModelFolder
    const sizes = new Map<string, number>();
    let largest = 0; // values of the largest weight: a float32 buffer of its own on the device
    for (const k of ['text_encoder', 'unet', 'vae'] as const) {
      const manifest = JSON.parse((await source.readText(`${k}/model.json`)) ?? '{"weightsManifest":[]}') as Parameters<typeof manifestBytes>[0];
      sizes.set(k, manifestBytes(manifest));
      for (const g of manifest.weightsManifest ?? []) for (const e of g.weights) largest = Math.max(largest, e.shape.reduce((a, b) => a * b, 1));
    }
    const tooBig = bufferLimitProblem(4 * largest, 'the largest weight of this model', 'use a GPU (or browser) that allows larger storage buffers');
    if (tooBig) throw new Error(tooBig);
    const modelTotalBytes = [...sizes.values()].reduce((a, b) => a + b, 0);
    let before = 0;
    const stream = shouldStream(info, opts.streamWeights);
    const half = !stream && shouldKeepHalf(opts.halfWeights, ops);
    const load = async (kind: 'text_encoder' | 'unet' | 'vae') => {
      const m = await loadNetwork(source, kind, {
        stream, half, verify: opts.verify,
        onProgress: opts.onProgress && ((p) => opts.onProgress!({ ...p, modelLoadedBytes: before + p.loadedBytes, modelTotalBytes })),
      });
      before += sizes.get(kind)!;
      loaded.push(m);
      return m.useOps(ops);
    };
    try {
      const textEncoder = await load('text_encoder');
      const unet = await load('unet');
      const vae = await load('vae');
      const t2v = new TextToVideo({
        tokenizer,
        textEncoder: textEncoder as unknown as TextEncoderLike & Disposable,
        unet: unet as unknown as UNetLike & Disposable,
        vae: vae as unknown as VaeLike & Disposable,
        scaleFactor: info.scale_factor,
        defaults: info.defaults,
        schedule: noiseScheduleFromInfo(sched),
      }, info);
      t2v.backend = backend;
      t2v.ops = ops;
      t2v.dir = dir;
      if (!stream) t2v.residentWeightBytes = (half ? 2 : 4) * Object.values(info.networks ?? {}).reduce((a, n) => a + (n?.params ?? 0), 0);
      t2v.halfWeights = half;
      return t2v;
    } catch (err) {
      for (const m of loaded) m.disposeWeights?.();
      throw explainOutOfMemory(err, 'loading the weights');
    }
  }

  /** Latent sizes must divide by this: 2^(levels - 1) for a UNet that downsamples between its levels. */
  latentMultiple(): number {
    const dimMult = (this.components.unet as { config?: { dimMult?: unknown } }).config?.dimMult;
    return Array.isArray(dimMult) && dimMult.length > 0 ? 2 ** (dimMult.length - 1) : 1;
  }

  /** Text features [1, ctx, width] of one prompt. */
  encodeText(text: string): tf.Tensor3D {
    const ids = this.components.tokenizer.encode(text);
    return tf.tidy(() => this.components.textEncoder.forward(tf.tensor2d(ids, [1, ids.length], 'int32')));
  }

  /**
   * `encodeText` through a small cache of recent prompts (kept as plain arrays, not tensors), so generating again
   * with the same prompt, or with the empty unconditional text, skips the text tower.
   */
  private async textFeatures(text: string): Promise<tf.Tensor3D> {
    const hit = this.textCache.get(text);
    if (hit) {
      this.textCache.delete(text);
      this.textCache.set(text, hit);
      return tf.tensor3d(hit.data, hit.shape);
    }
    const t = this.encodeText(text);
    const data = await t.data() as Float32Array;
    try {
      assertFinite(data, `the text features of ${text === '' ? 'the empty text' : 'the prompt'} are NaN/Inf: ${this.corruptHint('text encoder')}`);
    } catch (err) {
      t.dispose();
      throw err;
    }
    this.textCache.set(text, { data, shape: t.shape });
    if (this.textCache.size > TEXT_CACHE_SIZE) this.textCache.delete(this.textCache.keys().next().value as string);
    return t;
  }

  /** The initial noise from the options, checked, in upstream layout. */
  private initialNoise(o: GenerateOptions, shape: number[]): { data: Float32Array; seed: number | null } {
    if (o.noise !== undefined) {
      const n = o.noise;
      const data = n instanceof Float32Array ? n : n.data;
      const got = n instanceof Float32Array ? null : n.shape;
      if (!(n instanceof Float32Array) && n.dtype !== 'float32') {
        throw new Error(`noise must be float32, got ${n.dtype}`);
      }
      const count = shape.reduce((a, b) => a * b, 1);
      if ((got !== null && (got.length !== shape.length || got.some((d, i) => d !== shape[i]))) || data.length !== count) {
        throw new Error(`noise has shape [${got ?? [data.length]}], expected [${shape}] (1, channels, frames, height/8, width/8)`);
      }
      const bad = (data as Float32Array).findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) throw new Error(`noise holds NaN/Inf (value ${data[bad]} at index ${bad}); give finite float32 noise`);
      return { data: data as Float32Array, seed: null };
    }
    const seed = o.seed ?? randomSeed();
    return { data: seededNoise(seed, shape), seed };
  }

  /** The guided model output for latents x (channels-last) at timestep t. */
  private guidedOutput(x: tf.Tensor5D, t: number, cond: tf.Tensor3D, uncond: tf.Tensor3D, context: tf.Tensor3D | null,
    g: number): tf.Tensor {
    const unet = this.components.unet;
    return tf.tidy(() => {
      if (context) {
        // one UNet call on [cond, uncond]; the latents are repeated by the UNet where it takes one input (sharesInput)
        const out = unet.sharesInput === true
          ? unet.forward(x, tf.tensor1d([t], 'float32'), context)
          : unet.forward(tf.concat([x, x], 0), tf.tensor1d([t, t], 'float32'), context);
        const [c, u] = tf.split(out, 2, 0);
        return guide(c, u, g);
      }
      const tt = tf.tensor1d([t], 'float32');
      return guide(unet.forward(x, tt, cond), unet.forward(x, tt, uncond), g);
    });
  }

  /** Latents (channels-last [1, f, h, w, c]) -> uint8 RGB frames, `chunk` frames per VAE call. */
  private async decodeFrames(x: tf.Tensor5D, chunk: number, signal?: AbortSignal): Promise<{ data: Uint8Array; height: number; width: number }> {
    const [, f] = x.shape;
    const scale = Math.fround(1 / this.scaleFactor);
    let out: Uint8Array | null = null;
    let height = 0;
    let width = 0;
    for (let start = 0; start < f; start += chunk) {
      aborted(signal);
      const n = Math.min(chunk, f - start);
      const img = tf.tidy(() => {
        const z = tf.mul(tf.scalar(scale), tf.slice(x, [0, start, 0, 0, 0], [1, n, -1, -1, -1]).reshape([n, ...x.shape.slice(2)]) as tf.Tensor4D);
        const y = this.components.vae.decode(z as tf.Tensor4D);
        return tf.mul(tf.clipByValue(tf.add(tf.mul(y, 0.5), 0.5), 0, 1), 255);
      });
      const vals = await img.data();
      height = img.shape[1] as number;
      width = img.shape[2] as number;
      img.dispose();
      if (out === null) out = new Uint8Array(f * height * width * 3);
      const base = start * height * width * 3;
      for (let i = 0; i < vals.length; i++) out[base + i] = vals[i]; // ToUint8 truncates, as numpy's astype
      await tick();
    }
    return { data: out ?? new Uint8Array(0), height, width };
  }

  /** The scheduler a generation samples with: the one given, or one by name from the model's schedule. */
  private schedulerFor(o: GenerateOptions, seed: number): Scheduler {
    const name = o.scheduler ?? 'ddim';
    if (typeof name === 'object') {
      if (o.eta !== undefined || o.karrasSigmas !== undefined) {
        throw new Error('eta and karrasSigmas go with a scheduler name; a Scheduler object carries its own options');
      }
      return name;
    }
    if (o.eta !== undefined && o.eta !== 0 && name !== 'ddim') throw new Error(`eta is an option of ddim, not of ${name}`);
    if (o.karrasSigmas && name === 'ddim') throw new Error('karras sigmas are for dpm-solver++, euler and unipc, not ddim');
    return createScheduler(name, this.schedule, {
      ...(o.eta !== undefined ? { eta: o.eta } : {}), ...(o.karrasSigmas !== undefined ? { karrasSigmas: o.karrasSigmas } : {}), seed,
    });
  }

  /** Video-to-video's input frames, read and checked against the model's size multiple. */
  private async videoFrames(o: GenerateOptions, multiple: number): Promise<Frames> {
    if (!this.components.vae.encode) throw new Error('video-to-video needs the VAE encoder, which this model\'s VAE does not have');
    // loaded on first use: video decoding pulls in ffmpeg and @napi-rs/canvas, which plain text-to-video never needs
    const { readVideoInput } = await import('../media/video-input.js');
    const v = await readVideoInput(o.video as VideoInput, { frames: o.frames, width: o.width, height: o.height });
    if (v.width % multiple !== 0 || v.height % multiple !== 0) {
      throw new Error(`the video is ${v.width}x${v.height}: this model needs a width and height that are multiples of ${multiple}; `
        + 'give width and height (--width, --height) to resize it');
    }
    return v;
  }

  async generate(o: GenerateOptions): Promise<VideoResult> {
    if (this.disposed) throw new Error('this TextToVideo was disposed');
    if (typeof o.prompt !== 'string') throw new Error('prompt must be a string');
    const d = this.defaults;
    const multiple = 8 * this.latentMultiple();
    if (o.video === undefined && o.strength !== undefined) throw new Error('strength is for video-to-video: give a video too');
    const strength = o.strength ?? 0.6;
    if (o.video !== undefined) checkStrength(strength);
    const video = o.video !== undefined ? await this.videoFrames(o, multiple) : null;
    const s = {
      height: o.height ?? video?.height ?? d.height, width: o.width ?? video?.width ?? d.width,
      frames: o.frames ?? video?.frames ?? d.frames, steps: o.steps ?? d.steps,
      guidance: o.guidance ?? d.guidance, decodeChunk: o.decodeChunk ?? DEFAULT_DECODE_CHUNK, fps: o.fps ?? d.fps,
    };
    validateSettings(s, this.schedule.numTrainTimesteps);
    for (const k of ['height', 'width'] as const) {
      if (s[k] % multiple !== 0) {
        throw new Error(`${k} must be a multiple of ${multiple} for this model (its UNet halves the ${s[k] / 8}-pixel latents ${Math.log2(multiple / 8)} times), got ${s[k]}`);
      }
    }
    this.checkFits(s, o.batchGuidance);
    const first = video ? strengthStart(s.steps, strength) : 0;
    const lh = s.height / 8;
    const lw = s.width / 8;
    const shape = [1, this.latentChannels, s.frames, lh, lw];
    const noise = this.initialNoise(o, shape);
    // DDIM's eta noise: NoiseGenerator(seed + 1), so that it is not the initial noise again
    const scheduler = this.schedulerFor(o, ((noise.seed ?? o.seed ?? randomSeed()) + 1) % 2 ** 53);
    aborted(o.signal);

    const t0 = performance.now();
    const held: tf.Tensor[] = [];
    const reads: Promise<unknown>[] = []; // in flight; awaited before `held` is disposed, even after an error
    const run = scheduler.start(s.steps);
    try {
      const cond = await this.textFeatures(o.prompt);
      held.push(cond);
      const uncond = await this.textFeatures(o.negativePrompt ?? '');
      held.push(uncond);
      const t1 = performance.now();
      const timesteps = run.timesteps.slice(first);
      if (timesteps.length === 0) throw new Error(`no steps to run (${s.steps} steps from step ${first})`);

      // channels-last inside: [1, c, f, h, w] -> [1, f, h, w, c]
      const n = tf.tidy(() => tf.tensor5d(noise.data, shape as [number, number, number, number, number]).transpose([0, 2, 3, 4, 1])) as tf.Tensor5D;
      held.push(n);
      let x: tf.Tensor5D;
      if (video) {
        const init = await encodeVideo(this.components.vae as Required<VaeLike>, video, this.scaleFactor, s.decodeChunk);
        x = tf.tidy(() => run.addNoise(init, n, first)) as tf.Tensor5D;
        init.dispose();
      } else {
        x = run.initNoiseSigma === 1 ? n.clone() : tf.tidy(() => tf.mul(n, tf.scalar(Math.fround(run.initNoiseSigma)))) as tf.Tensor5D;
      }
      held.splice(held.indexOf(n), 1, x);
      n.dispose();

      const batch = o.batchGuidance ?? BATCH_IDENTICAL.has(tf.getBackend());
      const context = batch ? tf.concat([cond, uncond], 0) as tf.Tensor3D : null;
      if (context) held.push(context);
      // Step i's outcome is awaited only after step i + 1 is queued, so the GPU never waits for the CPU between
      // steps; at most two steps are in flight (bounded memory), and onStep comes one step late.
      let pending: { step: number; t: number; x0: tf.Tensor; probe: tf.Tensor; ready: Promise<unknown> } | null = null;
      const settle = async () => {
        if (!pending) return;
        const p = pending;
        pending = null;
        if (!Number.isFinite((await p.ready as Float32Array)[0])) throw new NonFiniteError(this.latentsBroke(p.step, timesteps.length));
        if (o.onStep) await o.onStep(p.step, p.t, this.preview(p.x0 as tf.Tensor5D));
        for (const u of [p.x0, p.probe]) {
          held.splice(held.indexOf(u), 1);
          u.dispose();
        }
      };
      for (let k = 0; k < timesteps.length; k++) {
        aborted(o.signal);
        const i = first + k;
        const t = timesteps[k];
        const input = run.scaleModelInput(x, i) as tf.Tensor5D;
        let out: tf.Tensor;
        try {
          out = this.guidedOutput(input, t, cond, uncond, context, s.guidance);
        } finally {
          input.dispose();
        }
        let step: { prev: tf.Tensor; x0: tf.Tensor };
        try {
          step = run.step(out, i, x);
        } finally {
          out.dispose();
        }
        const { prev, x0 } = step;
        held.splice(held.indexOf(x), 1, prev);
        x.dispose();
        x = prev as tf.Tensor5D;
        // one element of the new latents, read to know when this step is done
        const probe = tf.tidy(() => tf.slice(prev, [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]));
        held.push(x0, probe);
        const next = { step: k + 1, t, x0, probe, ready: probe.data() };
        reads.push(next.ready.catch(() => undefined));
        await settle();
        pending = next;
        await tick();
      }
      await settle();
      const t2 = performance.now();

      const upstreamLayout = tf.tidy(() => x.transpose([0, 4, 1, 2, 3]));
      held.push(upstreamLayout);
      const latents = await upstreamLayout.data() as Float32Array;
      assertFinite(latents, this.latentsBroke(timesteps.length, timesteps.length));
      const frames = await this.decodeFrames(x, s.decodeChunk, o.signal);
      const t3 = performance.now();
      return new VideoResult(frames.data, s.frames, frames.height, frames.width, latents, shape, s.fps, noise.seed, timesteps,
        { text: t1 - t0, denoise: t2 - t1, decode: t3 - t2, total: t3 - t0 });
    } catch (err) {
      throw explainOutOfMemory(err, 'generating');
    } finally {
      await Promise.all(reads);
      for (const t of held) t.dispose();
      run.dispose();
    }
  }

  private preview(x0: tf.Tensor5D): StepPreview {
    return {
      latents: () => {
        const t = tf.transpose(x0, [0, 4, 1, 2, 3]);
        try {
          return t.dataSync() as Float32Array;
        } finally {
          t.dispose();
        }
      },
      frame: async (i = 0) => {
        const frames = x0.shape[1];
        if (!Number.isInteger(i) || i < 0 || i >= frames) {
          throw new RangeError(`preview.frame(i): i must be an integer in 0..${frames - 1}, got ${String(i)}`);
        }
        const one = tf.slice(x0, [0, i, 0, 0, 0], [1, 1, -1, -1, -1]) as tf.Tensor5D;
        try {
          const v = await this.decodeFrames(one, 1);
          return { rgb: v.data, width: v.width, height: v.height };
        } finally {
          one.dispose();
        }
      },
    };
  }

  /** Refuses, with the estimate, a size whose activations cannot fit the backend (networks without configs: no check). */
  private checkFits(s: { frames: number; height: number; width: number; decodeChunk: number }, batchGuidance?: boolean): void {
    const unet = (this.components.unet as { config?: UNetConfig }).config;
    const vae = (this.components.vae as { config?: VAEConfig }).config;
    if (!unet?.dimMult || !vae?.chMult) return;
    const batch = (batchGuidance ?? BATCH_IDENTICAL.has(tf.getBackend())) ? 2 : 1;
    checkMemory(unet, vae, { ...s, batch }, backendLimits(tf.getBackend(), this.residentWeightBytes));
  }

  /** What to suspect when values become NaN/Inf. */
  private corruptHint(network: string): string {
    return `the ${network}'s weights may be corrupt (run \`t2v verify ${this.dir ?? 'MODEL_DIR'}\`); nothing was written`;
  }

  private latentsBroke(step: number, steps: number): string {
    return `the latents became NaN/Inf at step ${step} of ${steps}: the UNet's weights may be corrupt (run \`t2v verify `
      + `${this.dir ?? 'MODEL_DIR'}\`) or the guidance or noise is out of range; nothing was written`;
  }

  /** Frees every network's weights. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.textCache.clear();
    const c = this.components;
    c.textEncoder.disposeWeights?.();
    c.unet.disposeWeights?.();
    c.vae.disposeWeights?.();
  }
}
