import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { UNetConfig } from '../src/layers/unet/config.js';
import { configToJson } from '../src/io/network-config.js';
import type { VAEConfig } from '../src/layers/vae/config.js';
import { backendLimits, checkMemory, estimateMemory, WASM_HEAP_BYTES } from '../src/pipeline/memory.js';
import { checkFormatLimits } from '../src/media/video-writer.js';
import { TextToVideo } from '../src/pipeline/text2video.js';
import { runCli } from './cli-run.js';
import { standIns } from './stand-ins.js';

// Issue 17, defect 3: absurd sizes fail at once, with the estimate, instead of growing memory for minutes.

const UNET: UNetConfig = {
  inDim: 4, dim: 320, embedDim: 1280, contextDim: 1024, decoderContextDim: 1024, outDim: 4, dimMult: [1, 2, 4, 4],
  numHeads: 8, headDim: 64, numResBlocks: 2, attnScales: [1, 0.5, 0.25], temporalAttention: true, normGroups: 32,
};
const VAE: VAEConfig = {
  ch: 128, chMult: [1, 2, 4, 4], numResBlocks: 2, attnLevels: [], inChannels: 3, outCh: 3, zChannels: 4, embedDim: 4,
  resampWithConv: true, givePreEnd: false, tanhOut: false, normNumGroups: 32, normEps: 1e-6,
};
const wasm = { total: WASM_HEAP_BYTES, totalWhy: "the wasm heap's 4 GB", buffer: WASM_HEAP_BYTES, bufferWhy: 'the wasm heap' };

let work: string;
let model: string;

before(async () => {
  await tf.setBackend('cpu');
  work = mkdtempSync(join(tmpdir(), 't2v-memory-'));
  // enough of a model folder for the checks that run before loading: t2v.json and the two configs
  model = join(work, 'model');
  for (const [net, cfg] of [['unet', UNET], ['vae', VAE]] as const) {
    mkdirSync(join(model, net), { recursive: true });
    writeFileSync(join(model, net, 'config.json'), JSON.stringify(configToJson(net, cfg)));
    writeFileSync(join(model, net, 'model.json'), JSON.stringify({ format: 't2v-weights', weightsManifest: [] }));
  }
  writeFileSync(join(model, 't2v.json'), JSON.stringify({
    format: 't2v-model', version: 1, dtype: 'float16', source: {}, scale_factor: 0.18215,
    defaults: { height: 256, width: 256, frames: 16, steps: 50, guidance: 9, fps: 8 }, networks: {},
  }));
});

after(() => rmSync(work, { recursive: true, force: true }));

test('the released model at its 16 x 256x256 fits the wasm heap (as measured, streamed weights); larger sizes grow the estimate', () => {
  const base = { frames: 16, height: 256, width: 256, batch: 2, decodeChunk: 4 };
  const e = checkMemory(UNET, VAE, base, wasm);
  assert.ok(e.peak > 0.5 * 2 ** 30 && e.peak < 3 * 2 ** 30, `estimate ${e.peak}`);
  // level 0's spatial attention: 2 x 16 frames x 5 heads x 1024^2 scores in float32
  assert.equal(e.largestTensor, 2 * 16 * 5 * 1024 * 1024 * 4);
  assert.ok(estimateMemory(UNET, VAE, { ...base, frames: 32 }).peak > e.peak);
  assert.ok(estimateMemory(UNET, VAE, { ...base, batch: 1 }).peak < e.peak);
  assert.ok(estimateMemory(UNET, VAE, { ...base, decodeChunk: 1 }).vae < e.vae);
  assert.throws(() => checkMemory(UNET, VAE, { ...base, height: 512, width: 512 }, wasm),
    /^Error: 16 frames at 512x512 needs about \d+\.\d GB for activations \(UNet \d+\.\d GB, VAE decode \d+\.\d+ GB\), more than the wasm heap's 4 GB \(4\.0 GB\): use fewer frames or a smaller size/);
});

test('webgpu: a tensor above the adapter\'s buffer limit is refused; attention scores are not counted (fused kernels)', () => {
  const gpu = { total: Infinity, totalWhy: 'the GPU', buffer: 128 * 2 ** 20, bufferWhy: "the WebGPU adapter's maxStorageBufferBindingSize / maxBufferSize", fusedAttention: true };
  checkMemory(UNET, VAE, { frames: 16, height: 256, width: 256, batch: 2, decodeChunk: 4 }, gpu);
  assert.throws(() => checkMemory(UNET, VAE, { frames: 16, height: 1024, width: 1024, batch: 2, decodeChunk: 4 }, gpu),
    /16 frames at 1024x1024 needs a \d+\.\d+ GB tensor, larger than the WebGPU adapter's maxStorageBufferBindingSize \/ maxBufferSize \(0\.13 GB\)/);
});

test('backend limits: wasm 4 GB less resident weights, cpu host memory and the largest typed array', () => {
  const w = backendLimits('wasm', 2 ** 30);
  assert.equal(w.total, 3 * 2 ** 30);
  assert.match(w.totalWhy, /less the resident weights/);
  const c = backendLimits('cpu');
  assert.ok(c.total > 2 ** 28 && Number.isFinite(c.buffer));
});

test('output formats cap the frame size: H.264 level 6.2, GIF 65535', () => {
  checkFormatLimits('v.mp4', 16880, 2112);
  assert.throws(() => checkFormatLimits('v.mp4', 16888, 256), /v\.mp4: H\.264 \(\.mp4\) takes frames of at most 16880 pixels a side and 35651584 pixels, not 16888x256/);
  assert.throws(() => checkFormatLimits('v.mp4', 8192, 8192), /not 8192x8192/);
  checkFormatLimits('v.gif', 65528, 8);
  assert.throws(() => checkFormatLimits('v.gif', 65536, 8), /GIF takes frames of at most 65535 pixels a side/);
});

test('t2v generate --width 1000000000, or a size that cannot fit, fails at once with one line, before loading', async () => {
  const cases: [string[], RegExp][] = [
    [['--width', '1000000000'], /^t2v: width must be at most 65536 \(the largest frame side of any output format\), got 1000000000$/],
    [['--width', '65536', '--out', join(work, 'v.gif')], /^t2v: .*v\.gif: GIF takes frames of at most 65535 pixels a side, not 65536x256$/],
    [['--width', '4096', '--height', '4096'], /^t2v: 16 frames at 4096x4096 needs about \d+\.\d GB for activations .* more than host memory/],
  ];
  for (const [args, pattern] of cases) {
    const t0 = performance.now();
    const r = await runCli(['generate', 'p', '--model', model, '--backend', 'cpu', '--out', join(work, 'v.png'), ...args]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, pattern);
    assert.ok(performance.now() - t0 < 5000, 'at once');
  }
  assert.deepEqual(readdirSync(work), ['model']);
});

test('TextToVideo.generate checks too (library callers): refused before the text encoder or the UNet run', async () => {
  const parts = standIns();
  Object.assign(parts.unet, { config: UNET });
  Object.assign(parts.vae, { config: VAE });
  const t2v = new TextToVideo(parts);
  await assert.rejects(t2v.generate({ prompt: 'p', height: 4096, width: 4096, frames: 16, steps: 1 }), /16 frames at 4096x4096 needs about/);
  assert.deepEqual([parts.calls.text, parts.calls.unet], [0, 0]);
});
