import * as tf from '@tensorflow/tfjs';
import { selectBackend, type BackendChoice } from '../backend.js';
import { bufferLimitProblem } from '../backends/limits.js';
import type { FetchSourceOptions } from '../io/fetch-source.js';
import { loadNetwork, manifestBytes, readModelFolder, type ModelInfo, type ShardProgress } from '../io/model-folder.js';
import { inBrowser, openSource, type ModelSource } from '../io/source.js';
import type { NpyArray } from '../io/npy.js';
import { DDIMScheduler, DEFAULT_SCHEDULE, guide, type ScheduleConfig } from './ddim.js';
import { randomSeed, seededNoise } from './noise.js';
import { DEFAULT_DECODE_CHUNK, UPSTREAM_DEFAULTS, validateSettings, type GenerationDefaults } from './options.js';
import { VideoResult } from './result.js';
import { CLIPTokenizer } from './tokenizer.js';

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
  schedule?: ScheduleConfig;
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
  /** Initial noise, float32 [1, 4, frames, height/8, width/8] (upstream layout b c f h w). */
  noise?: Float32Array | NpyArray;
  /** Called after each DDIM step (1-based step, the timestep), once the step is done, while the next one runs. */
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
  /** tfjs backend: auto, tensorflow, webgpu, wasm, cpu (src/backend.ts); omitted: tfjs's current backend. */
  backend?: string;
  /**
   * Keep the weights in host memory and upload each one when a layer uses it, instead of resident tensors. Default:
   * on for wasm when the model's float32 weights exceed WASM_RESIDENT_BYTES (wasm's heap stops at 4 GB, and the
   * released model is 7.3 GB in float32); off elsewhere. Same numbers either way; costs a copy of each weight per use.
   */
  streamWeights?: boolean;
  /** webgpu: matmuls and convolutions on tensor cores where the GPU has them (default: T2V_TENSOR_CORES; src/backend.ts). */
  tensorCores?: boolean;
  /** Told as weight shards arrive: bytes of all three networks so far, of their total (the three manifests' sum). */
  onProgress?: (p: LoadProgress) => void;
  /** URL loading: the Cache Storage bucket shards are kept in (default `t2v-models`), or false for none. */
  cache?: FetchSourceOptions['cache'];
  /** URL loading: cancels the downloads. */
  signal?: AbortSignal;
  /**
   * webgpu: keep the large weights in float16 on the device (half the memory: the released model's 7.3 GB become
   * about 3.7 GB), unpacked to float32 for each use. Default: on in a browser whose device has shader-f16, off
   * elsewhere (in Node the measured fast paths keep float32 weights; docs/browser.md).
   */
  halfWeights?: boolean;
}

/** Whether to keep weights float16-resident (LoadOptions.halfWeights) on the active backend. */
export function shouldKeepHalf(asked?: boolean): boolean {
  if (asked !== undefined) return asked;
  if (tf.getBackend() !== 'webgpu' || !inBrowser()) return false;
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
const BATCH_IDENTICAL = new Set(['cpu', 'wasm', 'webgpu']);

/** Prompts whose text features are kept (about 0.3 MB each for 77 x 1024 float32). */
const TEXT_CACHE_SIZE = 8;

// a macrotask, so a page stays responsive between steps (setImmediate in Node)
const tick = typeof setImmediate === 'function' ? () => new Promise<void>((r) => setImmediate(r)) : () => new Promise<void>((r) => setTimeout(r, 0));

/**
 * ModelScope text-to-video, as upstream's TextToVideoSynthesis.forward: OpenCLIP text features of the prompt and of
 * the empty (or negative) prompt, DDIM (eta 0) with classifier-free guidance `u + g * (c - u)`, latents / 0.18215
 * decoded frame by frame by the VAE, then x * 0.5 + 0.5, clamp to [0, 1], (x * 255) truncated to uint8.
 */
export class TextToVideo {
  readonly scheduler: DDIMScheduler;
  readonly defaults: GenerationDefaults;
  readonly scaleFactor: number;
  readonly latentChannels: number;
  /** The backend `load` selected (null when built from components). */
  backend: BackendChoice | null = null;
  /** True when `load` kept the large weights float16 on the device (LoadOptions.halfWeights). */
  halfWeights = false;
  private disposed = false;
  private readonly textCache = new Map<string, { data: Float32Array; shape: [number, number, number] }>();

  constructor(readonly components: TextToVideoComponents, readonly info: ModelInfo | null = null) {
    this.scheduler = new DDIMScheduler(components.schedule ?? DEFAULT_SCHEDULE);
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
    const backend = opts.backend !== undefined ? await selectBackend(opts.backend, { tensorCores: opts.tensorCores }) : null;
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
    const half = !stream && shouldKeepHalf(opts.halfWeights);
    const load = async (kind: 'text_encoder' | 'unet' | 'vae') => {
      const m = await loadNetwork(source, kind, {
        stream, half,
        onProgress: opts.onProgress && ((p) => opts.onProgress!({ ...p, modelLoadedBytes: before + p.loadedBytes, modelTotalBytes })),
      });
      before += sizes.get(kind)!;
      loaded.push(m);
      return m;
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
        schedule: sched ? { numTimesteps: sched.num_timesteps, betaStart: sched.beta_start, betaEnd: sched.beta_end } : undefined,
      }, info);
      t2v.backend = backend;
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

  async generate(o: GenerateOptions): Promise<VideoResult> {
    if (this.disposed) throw new Error('this TextToVideo was disposed');
    if (typeof o.prompt !== 'string') throw new Error('prompt must be a string');
    const d = this.defaults;
    const s = {
      height: o.height ?? d.height, width: o.width ?? d.width, frames: o.frames ?? d.frames, steps: o.steps ?? d.steps,
      guidance: o.guidance ?? d.guidance, decodeChunk: o.decodeChunk ?? DEFAULT_DECODE_CHUNK, fps: o.fps ?? d.fps,
    };
    validateSettings(s, this.scheduler.config.numTimesteps);
    const multiple = 8 * this.latentMultiple();
    for (const k of ['height', 'width'] as const) {
      if (s[k] % multiple !== 0) {
        throw new Error(`${k} must be a multiple of ${multiple} for this model (its UNet halves the ${s[k] / 8}-pixel latents ${Math.log2(multiple / 8)} times), got ${s[k]}`);
      }
    }
    const vaeCfg = (this.components.vae as { config?: { ch?: number; ch_mult?: number[] } }).config;
    if (vaeCfg?.ch !== undefined && vaeCfg.ch_mult !== undefined) {
      // the decoder's widest full-resolution activation: the upsampling into the last level keeps the level above's width
      const channels = vaeCfg.ch * Math.max(vaeCfg.ch_mult[0], vaeCfg.ch_mult[1] ?? 0);
      const tooBig = bufferLimitProblem(4 * Math.min(s.decodeChunk, s.frames) * s.height * s.width * channels,
        `the VAE decode of ${Math.min(s.decodeChunk, s.frames)} frames at ${s.width}x${s.height}`, 'decode fewer frames at once (decodeChunk), or a smaller size');
      if (tooBig) throw new Error(tooBig);
    }
    const lh = s.height / 8;
    const lw = s.width / 8;
    const shape = [1, this.latentChannels, s.frames, lh, lw];
    const noise = this.initialNoise(o, shape);
    aborted(o.signal);

    const t0 = performance.now();
    const held: tf.Tensor[] = [];
    const reads: Promise<unknown>[] = []; // in flight; awaited before `held` is disposed, even after an error
    try {
      const cond = await this.textFeatures(o.prompt);
      held.push(cond);
      const uncond = await this.textFeatures(o.negativePrompt ?? '');
      held.push(uncond);
      const t1 = performance.now();

      // channels-last inside: [1, c, f, h, w] -> [1, f, h, w, c]
      let x = tf.tidy(() => tf.tensor5d(noise.data, shape as [number, number, number, number, number]).transpose([0, 2, 3, 4, 1])) as tf.Tensor5D;
      held.push(x);
      const timesteps = this.scheduler.timesteps(s.steps);
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
        await p.ready;
        if (o.onStep) await o.onStep(p.step, p.t, this.preview(p.x0 as tf.Tensor5D));
        for (const u of [p.x0, p.probe]) {
          held.splice(held.indexOf(u), 1);
          u.dispose();
        }
      };
      for (let i = 0; i < timesteps.length; i++) {
        aborted(o.signal);
        const t = timesteps[i];
        const out = this.guidedOutput(x, t, cond, uncond, context, s.guidance);
        const [prev, x0] = this.scheduler.step(x, out, t, s.steps);
        out.dispose();
        held.splice(held.indexOf(x), 1, prev);
        x.dispose();
        x = prev as tf.Tensor5D;
        // one element of the new latents, read to know when this step is done
        const probe = tf.tidy(() => tf.slice(prev, [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]));
        held.push(x0, probe);
        const next = { step: i + 1, t, x0, probe, ready: probe.data() };
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
      const video = await this.decodeFrames(x, s.decodeChunk, o.signal);
      const t3 = performance.now();
      return new VideoResult(video.data, s.frames, video.height, video.width, latents, shape, s.fps, noise.seed, timesteps,
        { text: t1 - t0, denoise: t2 - t1, decode: t3 - t2, total: t3 - t0 });
    } catch (err) {
      throw explainOutOfMemory(err, 'generating');
    } finally {
      await Promise.all(reads);
      for (const t of held) t.dispose();
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
