// The browser entry of t2v (package.json `exports` "browser" condition): the same pipeline on the page's own WebGPU,
// the model read from a URL (Cache Storage keeps it). Nothing here reaches Node built-ins, Dawn or ffmpeg: the few
// modules that would have `.browser.ts` twins that bundlers put in their place (package.json "browser" map).
//
//   import { TextToVideo } from 't2v';
//   const t2v = await TextToVideo.load('https://example.org/models/t2v/', { backend: 'webgpu', onProgress });
//   const video = await t2v.generate({ prompt: 'a panda eating bamboo', seed: 42, onStep });
//   new Blob([video.toGif()], { type: 'image/gif' });

export { TextToVideo, WASM_RESIDENT_BYTES } from './pipeline/text2video.js';
export type {
  GenerateOptions, LoadOptions, LoadProgress, StepPreview, TextToVideoComponents, TokenizerLike, TextEncoderLike, UNetLike, VaeLike,
} from './pipeline/text2video.js';
export { VideoResult, type StageTimings } from './pipeline/result.js';
export { UPSTREAM_DEFAULTS, DEFAULT_DECODE_CHUNK, validateSettings, type GenerationDefaults } from './pipeline/options.js';
export { DDIMScheduler, DEFAULT_SCHEDULE, ddimTimesteps, type ScheduleConfig } from './pipeline/diffusion.js';
export { NoiseGenerator, seededNoise, randomSeed } from './pipeline/noise.js';
export { encodePng, encodeGif, contactSheet, dataUrl, frameView, type Frames } from './media/images.js';
export { CLIPTokenizer, type TokenizerOptions } from './pipeline/tokenizer.js';
export { readModelFolder, loadNetwork, type ModelFolder, type ModelInfo, type ShardProgress } from './io/model-folder.js';
export { openSource, type ModelSource } from './io/source.js';
export { fetchSource, DownloadError, MODEL_CACHE, type FetchSourceOptions } from './io/fetch-source.js';
export { selectBackend, resolveBackendRequest, opsForActiveBackend, BACKENDS, BackendError, type BackendChoice, type BackendName, type BackendOptions } from './backends/select.js';
export { resolveWebGPUOptions, DEFAULT_WEBGPU_OPTIONS, type WebGPUOptions } from './backends/webgpu/options.js';
export { checkWebGPU, describeGpuError, watchGpuErrors, type WebGPUCheck } from './browser/gpu-check.js';
export { filesSource } from './io/files-source.js';
