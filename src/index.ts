// The public API of t2v: load a converted model once, generate many times.
//
//   import { TextToVideo } from 't2v';
//   const t2v = await TextToVideo.load('weights/modelscope-t2v', { backend: 'auto' });
//   const video = await t2v.generate({ prompt: 'a panda eating bamboo', seed: 42 });
//   await video.save('panda.mp4');
//   t2v.dispose();

export { TextToVideo, NonFiniteError } from './pipeline/text2video.js';
export type {
  GenerateOptions, LoadOptions, StepPreview, TextToVideoComponents, TokenizerLike, TextEncoderLike, UNetLike, VaeLike,
} from './pipeline/text2video.js';
export { VideoResult, type StageTimings } from './pipeline/result.js';
export {
  UPSTREAM_DEFAULTS, DEFAULT_DECODE_CHUNK, MAX_GUIDANCE, MAX_SIDE, validateSettings, type GenerationDefaults,
} from './pipeline/options.js';

// Sampling and noise
export {
  DDIMScheduler, DEFAULT_SCHEDULE, ddimTimesteps, ddimCoefficients, ddimStep, diffusionTables, guide,
  type DdimCoefficients, type DiffusionTables, type ScheduleConfig,
} from './pipeline/diffusion.js';
export { NoiseGenerator, seededNoise, randomSeed } from './pipeline/noise.js';
export {
  createScheduler, noiseScheduleFromInfo, SCHEDULERS, ddimScheduler, MODELSCOPE_SCHEDULE, SCHEDULER_NAMES,
  type SchedulerFactory, type NoiseSchedule, type Scheduler, type SamplingRun, type SchedulerName, type SchedulerOptions,
  type StepOutput,
} from './pipeline/schedulers/index.js';
export { ddimScheduleTimesteps, scheduleTables } from './pipeline/schedulers/ddim.js';

// Video-to-video
export { readVideoInput, resizeFrames, type VideoInput, type VideoReadOptions } from './media/video-input.js';
export { encodeVideo, strengthStart, timestepsToRun, checkStrength, type VaeEncoderLike } from './pipeline/video2video.js';

// Images and video files
export { encodePng, encodeGif, contactSheet, dataUrl, frameView, type Frames } from './media/images.js';
export {
  writeVideo, outputKind, frameFileName, atomicWrite, checkFormatLimits, FORMAT_LIMITS, type OutputKind, type WriteOptions,
} from './media/video-writer.js';
export { saveOutputs, checkOutputPaths, type OutputPaths } from './media/outputs.js';
export {
  estimateMemory, checkMemory, backendLimits, type MemoryEstimate, type MemorySettings, type BackendLimits,
} from './pipeline/memory.js';
export { checkModelFits } from './pipeline/model-fits.js';
export { findFfmpeg, ffmpegArgs, runFfmpeg, type FfmpegLocation } from './media/ffmpeg.js';

// Text
export { CLIPTokenizer, type TokenizerOptions } from './pipeline/tokenizer.js';

// Networks (upstream-named modules) and their configurations
export { Module, Param, tfShape, type ParamRole } from './layers/module.js';
export type { NetworkKind, NetworkSpec } from './layers/network.js';
export { OpenCLIPTextEncoder } from './layers/clip/text-encoder.js';
export { inferTextEncoderConfig, textEncoderSpec, type TextEncoderConfig } from './layers/clip/config.js';
export { UNetSD } from './layers/unet/unet.js';
export { inferUNetConfig, unetSpec, type UNetConfig } from './layers/unet/config.js';
export { AutoencoderKL } from './layers/vae/autoencoder.js';
export { inferVAEConfig, vaeSpec, vaeScaleFactor, type VAEConfig } from './layers/vae/config.js';

// Model folders, conversion, checkpoints
export { readModelFolder, loadNetwork, type ModelFolder, type ModelInfo } from './io/model-folder.js';
export { verifyModel, type VerifyReport, type VerifiedShard } from './io/verify.js';
export { ConfigError } from './io/validate.js';
export { convertModelScope, convertNetworkFile, type ConvertOptions, type ConvertSummary } from '../converters/modelscope.js';
export { convertDiffusers, isDiffusersFolder, type DiffusersConvertOptions } from '../converters/diffusers.js';
export { openCheckpoint } from '../converters/open.js';
export { downloadModel, listRepoFiles, HubError, type DownloadOptions, type DownloadSummary } from './hub/download.js';
export {
  resolveModel, fetchModel, cacheRoot, cachedModelDir, isHubId, DEFAULT_MODEL, DEFAULT_VARIANT,
  type FetchModelOptions, type FetchModelResult, type ResolveModelOptions,
} from './hub/model-cache.js';
export type { Checkpoint, TensorEntry } from '../converters/checkpoint.js';

// Backends and arrays
export { selectBackend, resolveBackendRequest, opsForActiveBackend, BACKENDS, type BackendChoice, type BackendName, type BackendOptions } from './backends/select.js';
export { resolveWebGPUOptions, DEFAULT_WEBGPU_OPTIONS, WEBGPU_KERNELS, type WebGPUOptions, type WebGPUKernel } from './backends/webgpu/options.js';
export { gpuMemory, resetGPUMemoryPeak, releasePooledBuffers, type GPUMemory } from './backends/gpu-memory.js';
export type { Ops } from './layers/ops.js';
export { plainOps } from './layers/plain-ops.js';
export { readNpy, writeNpy, parseNpy, encodeNpy, type NpyArray } from './io/npy.js';
