import * as tf from '@tensorflow/tfjs';
import { registerWebGPUKernels } from '../src/backends/webgpu/register.js';
import { OpenCLIPTextEncoder } from '../src/layers/clip/text-encoder.js';
import type { TextEncoderConfig } from '../src/layers/clip/config.js';
import { UNetSD } from '../src/layers/unet/unet.js';
import { AutoencoderKL } from '../src/layers/vae/autoencoder.js';
import type { VAEConfig } from '../src/layers/vae/config.js';
import { TextToVideo } from '../src/pipeline/text2video.js';
import { gpuRandom } from './random-gpu.js';
import { gpuBytes, sync, timeIt } from './timing.js';
import { RELEASED_UNET, randomizeWeights } from './unet.js';

/** OpenCLIP ViT-H-14's text tower as the pipeline uses it: 24 blocks, the last one unused (penultimate output). */
export const RELEASED_TEXT: TextEncoderConfig = {
  contextLength: 77, vocabSize: 49408, width: 1024, heads: 16, layers: 23, mlpWidth: 4096, layerNormEps: 1e-5,
};
/** The released KL autoencoder (VQGAN_autoencoder.pth's ddconfig). */
export const RELEASED_VAE: VAEConfig = {
  ch: 128, chMult: [1, 2, 4, 4], numResBlocks: 2, attnLevels: [], inChannels: 3, outCh: 3, zChannels: 4,
  embedDim: 4, resampWithConv: true, givePreEnd: false, tanhOut: false, normNumGroups: 32, normEps: 1e-6,
};

/** Final latents of the last full-length generation benchPipeline ran (to compare two runs). */
export let lastLatents: Float32Array | null = null;

/**
 * The released text tower, UNet and VAE with random weights made on the GPU, and a pipeline over them whose tokenizer
 * is a fixed token sequence (the vocabulary does not travel to the GPU host; tokenizing costs microseconds).
 */
export function randomReleasedPipeline(): { text: OpenCLIPTextEncoder; unet: UNetSD; vae: AutoencoderKL; t2v: TextToVideo } {
  const text = new OpenCLIPTextEncoder(RELEASED_TEXT);
  const unet = new UNetSD(RELEASED_UNET);
  const vae = new AutoencoderKL(RELEASED_VAE);
  for (const m of [text, unet, vae]) randomizeWeights(m, gpuRandom);
  const ids = [49406, 320, 1929, 49407, ...new Array(73).fill(0)];
  const t2v = new TextToVideo({ tokenizer: { encode: () => ids }, textEncoder: text, unet, vae });
  return { text, unet, vae, t2v };
}

/** The whole generation, 16x256x256, 50 DDIM steps with guidance 9, random weights, fused kernels; split by stage. */
export async function benchPipeline(log: (s: string) => void, args: string[]): Promise<unknown> {
  const steps = Number(args[0] ?? 50);
  if (args[1]) tf.env().set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', Number(args[1]));
  // 'batch': conditional and unconditional passes as one UNet call on a batch of two (GenerateOptions.batchGuidance)
  const batchGuidance = args.includes('batch') ? true : undefined;
  registerWebGPUKernels();
  const { text, unet, vae, t2v } = randomReleasedPipeline();
  await sync();
  const weightsBytes = gpuBytes().allocated;
  log(`pipeline weights on the GPU: ${(weightsBytes / 2 ** 30).toFixed(2)} GiB`);
  const res: Record<string, unknown> = { weights_bytes: weightsBytes };

  // VAE decode alone, 16 frames of 32x32 latents -> 256x256, in chunks of 4 as the pipeline does
  {
    const z = gpuRandom([16, 32, 32, 4], 1.7, 7) as tf.Tensor4D;
    const ms = await timeIt(() => vae.decodeChunked(z, 4), 3, 1);
    z.dispose();
    res.vae_decode_16x256_ms = ms;
    log(`VAE decode 16 frames 256x256 (chunks of 4): ${ms.toFixed(1)} ms`);
  }

  for (const [label, n] of [['warm-up (2 steps, compiles shaders)', 2], [`${steps} steps`, steps]] as const) {
    const t0 = performance.now();
    const out = await t2v.generate({ prompt: 'a panda eating bamboo', steps: n, guidance: 9, frames: 16, height: 256, width: 256, seed: 1, batchGuidance });
    const wall = performance.now() - t0;
    const tm = out.timings;
    log(`generation ${label}: text ${tm.text.toFixed(0)} ms, denoise ${tm.denoise.toFixed(0)} ms, decode ${tm.decode.toFixed(0)} ms, total ${tm.total.toFixed(0)} ms (wall ${wall.toFixed(0)} ms)`);
    if (n === steps) {
      res.generation = { steps, ...tm, wall };
      lastLatents = out.latents;
    }
    (out as unknown as { dispose?: () => void }).dispose?.();
  }
  res.gpu_bytes_peak = gpuBytes().allocated;
  log(`GPU buffers after the generation: ${((res.gpu_bytes_peak as number) / 2 ** 30).toFixed(2)} GiB allocated`);
  for (const m of [text, unet, vae]) m.disposeWeights();
  return res;
}
