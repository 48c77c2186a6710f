import * as tf from '@tensorflow/tfjs';
import type { TextEncoderConfig } from '../../src/layers/clip/config.js';
import { OpenCLIPTextEncoder } from '../../src/layers/clip/text-encoder.js';
import type { Module } from '../../src/layers/module.js';
import type { UNetConfig } from '../../src/layers/unet/config.js';
import { UNetSD } from '../../src/layers/unet/unet.js';
import { AutoencoderKL } from '../../src/layers/vae/autoencoder.js';
import type { VAEConfig } from '../../src/layers/vae/config.js';
import { TextToVideo } from '../../src/pipeline/text2video.js';
import { gpuPackHalf, gpuRandom } from './random-gpu.js';
import { HALF_MIN_VALUES, releasePooledBuffers, track, unpackHalfWeight } from './webgpu.js';

/** The released ModelScope text-to-video UNet (configuration.json's unet_* keys). */
export const RELEASED_UNET: UNetConfig = {
  inDim: 4, dim: 320, embedDim: 1280, contextDim: 1024, decoderContextDim: 1024, outDim: 4, dimMult: [1, 2, 4, 4],
  numHeads: 8, headDim: 64, numResBlocks: 2, attnScales: [1, 0.5, 0.25], temporalAttention: true, normGroups: 32,
};
/** One call at b=1, 16 frames, 32x32 latents (256x256 video), 77 text tokens; counted from the upstream model. */
export const UNET_TFLOP = 4.89;
/** OpenCLIP ViT-H-14's text tower as the pipeline uses it: 24 blocks, the last one unused (penultimate output). */
export const RELEASED_TEXT: TextEncoderConfig = {
  contextLength: 77, vocabSize: 49408, width: 1024, heads: 16, layers: 23, mlpWidth: 4096, layerNormEps: 1e-5,
};
/** The released KL autoencoder (VQGAN_autoencoder.pth's ddconfig). */
export const RELEASED_VAE: VAEConfig = {
  ch: 128, chMult: [1, 2, 4, 4], numResBlocks: 2, attnLevels: [], inChannels: 3, outCh: 3, zChannels: 4,
  embedDim: 4, resampWithConv: true, givePreEnd: false, tanhOut: false, normNumGroups: 32, normEps: 1e-6,
};
// --tiny: the same structures, small enough for cpu and wasm here (the harness's smoke run)
const TINY_WIDTH = 64;
export const TINY_UNET: UNetConfig = { ...RELEASED_UNET, dim: 32, embedDim: 128, contextDim: TINY_WIDTH,
  decoderContextDim: TINY_WIDTH, dimMult: [1, 2], numHeads: 2, headDim: 16, numResBlocks: 1, attnScales: [1, 0.5] };
export const TINY_TEXT: TextEncoderConfig = { ...RELEASED_TEXT, width: TINY_WIDTH, heads: 2, layers: 1, mlpWidth: 128 };
export const TINY_VAE: VAEConfig = { ...RELEASED_VAE, ch: 32, chMult: [1, 1, 1, 1], numResBlocks: 1 };

function fanIn(torchShape: readonly number[]): number {
  return torchShape.slice(1).reduce((a, b) => a * b, 1);
}

export type Rand = (shape: number[], scale: number, seed: number) => tf.Tensor;

/**
 * Random weights with variance 1/fan_in (norm scales near 1, small biases), so activations stay in range through
 * the whole network. `rand(shape, scale, seed)` draws uniform [-scale, scale). `half` (webgpu): the weights the loader
 * would keep float16-resident (HALF_MIN_VALUES values or more) are packed to halves on the GPU, as it keeps them.
 */
export function randomizeWeights(m: Module, rand: Rand, half = false): void {
  let seed = 1;
  const made = new Map<string, tf.Tensor>();
  const halves = new Map<string, tf.Tensor>();
  for (const [key, p] of m.namedParams()) {
    const s = p.tfShape;
    let t: tf.Tensor;
    if (p.torchShape.length > 1) t = rand(s, Math.sqrt(3 / fanIn(p.torchShape)), seed++);
    else if (key.endsWith('.weight')) t = tf.tidy(() => tf.add(rand(s, 0.1, seed++), 1));
    else t = rand(s, 0.05, seed++);
    if (half && t.size >= HALF_MIN_VALUES && t.size % 2 === 0) {
      halves.set(key, gpuPackHalf(t));
      t.dispose();
    } else {
      made.set(key, t);
    }
    // the loader uploads each weight into a buffer of its own size; without this the next one could take a draw just
    // freed (best fit takes up to twice a request): 0.57 GB of the 16x256x256 peak (pool-sim)
    releasePooledBuffers();
  }
  m.loadWeights((k) => made.get(k), (k) => halves.get(k), half ? unpackHalfWeight : null);
}

export function unetInputs(frames: number, size: number, rand: Rand, contextDim = 1024) {
  return {
    x: rand([1, frames, size, size, 4], Math.sqrt(3), 101) as tf.Tensor5D,
    t: tf.tensor1d([500], 'float32'),
    ctx: rand([1, 77, contextDim], Math.sqrt(3), 102) as tf.Tensor3D,
  };
}

export interface Models { text: OpenCLIPTextEncoder; unet: UNetSD; vae: AutoencoderKL; t2v: TextToVideo; contextDim: number }

/**
 * The released text tower, UNet and VAE (or the tiny ones) with random weights made on the GPU, and a pipeline over
 * them whose tokenizer is a fixed token sequence (the vocabulary does not travel to the GPU host; tokenizing costs
 * microseconds).
 */
export function randomPipeline(tiny = false, half = false): Models {
  const text = new OpenCLIPTextEncoder(tiny ? TINY_TEXT : RELEASED_TEXT);
  const unet = new UNetSD(tiny ? TINY_UNET : RELEASED_UNET);
  const vae = new AutoencoderKL(tiny ? TINY_VAE : RELEASED_VAE);
  for (const m of [text, unet, vae]) randomizeWeights(m, gpuRandom, half);
  track(text, unet, vae); // they run on the variant in force (harness/webgpu.ts)
  const ids = [49406, 320, 1929, 49407, ...new Array(73).fill(0)];
  const t2v = new TextToVideo({ tokenizer: { encode: () => ids }, textEncoder: text, unet, vae });
  return { text, unet, vae, t2v, contextDim: (tiny ? TINY_UNET : RELEASED_UNET).contextDim };
}

export function disposeModels(m: Models): void {
  for (const n of [m.text, m.unet, m.vae]) n.disposeWeights();
}
