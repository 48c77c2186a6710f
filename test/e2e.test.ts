import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { convertModelScope } from '../converters/modelscope.js';
import { readNpy } from '../src/io/npy.js';
import { TextToVideo } from '../src/pipeline/text2video.js';
import { runCli } from './cli-run.js';
import { CLIP_VOCAB, FIXTURES, hasClipVocab, PARITY_TOL, relMaxError } from './helpers.js';
import { ffprobePath, probe } from './ffprobe.js';

// End to end against upstream: test/fixtures/e2e/tiny is a random ModelScope model in the released layout, and
// cases/<name> hold what upstream's flow (FrozenOpenCLIPEmbedder, GaussianDiffusion.ddim_sample_loop, AutoencoderKL
// .decode, the pipeline's uint8 conversion) made from the given noise (tools/reference/make_e2e_fixtures.py).

interface Case {
  name: string; prompt: string; negative: string | null; height: number; width: number; frames: number; steps: number; guidance: number;
}
const CASES = join(FIXTURES, 'e2e', 'cases');
const readCase = (name: string): Case => JSON.parse(readFileSync(join(CASES, name, 'case.json'), 'utf8')) as Case;

let work: string;
let model: string;
let t2v: TextToVideo;

before(async () => {
  await tf.setBackend('cpu');
  if (!hasClipVocab) return;
  work = mkdtempSync(join(tmpdir(), 't2v-e2e-'));
  model = join(work, 'model');
  await convertModelScope(join(FIXTURES, 'e2e', 'tiny'), model, { dtype: 'float32', tokenizer: CLIP_VOCAB });
  t2v = await TextToVideo.load(model);
});

after(() => {
  t2v?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

function maxLevelDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const skip = !hasClipVocab && 'needs the CLIP vocabulary beside the checkout';

test('e2e: API (batched guidance, the cpu default) matches upstream on two cases (latents within 1e-4, frames within one level); no tensor leaks', { skip }, async () => {
  const baseline = tf.memory().numTensors;
  for (const name of ['wide', 'long']) {
    const c = readCase(name);
    const r = await t2v.generate({
      prompt: c.prompt, negativePrompt: c.negative ?? undefined, steps: c.steps, guidance: c.guidance, frames: c.frames,
      height: c.height, width: c.width, noise: readNpy(join(CASES, name, 'noise.npy')),
    });
    const ref = readNpy(join(CASES, name, 'latents.npy'));
    assert.deepEqual(r.latentsShape, ref.shape);
    const err = relMaxError(r.latents, ref.data as Float32Array);
    assert.ok(err <= PARITY_TOL, `${name}: latents relMaxError ${err}`);
    const frames = readNpy(join(CASES, name, 'frames.npy'));
    assert.deepEqual([r.numFrames, r.height, r.width, 3], frames.shape);
    const diff = maxLevelDiff(r.frames, frames.data as Uint8Array);
    assert.ok(diff <= 1, `${name}: frames differ by ${diff} levels`);
    assert.equal(r.timesteps.length, c.steps === 3 ? 4 : c.steps);
  }
  assert.equal(tf.memory().numTensors, baseline, 'numTensors back at baseline after two generations');
});

test('e2e: text features match upstream FrozenOpenCLIPEmbedder (prompt over 77 tokens, negative prompt)', { skip }, () => {
  const c = readCase('long');
  for (const [text, file] of [[c.prompt, 'context.npy'], [c.negative ?? '', 'context_uncond.npy']] as const) {
    const ctx = t2v.encodeText(text);
    const err = relMaxError(ctx.dataSync(), readNpy(join(CASES, 'long', file)).data as Float32Array);
    ctx.dispose();
    assert.ok(err <= PARITY_TOL, `${file}: relMaxError ${err}`);
  }
});

test('e2e: one UNet call on a batch of two, or on x once under both contexts, equals two calls (what --batch-guidance relies on)', { skip }, () => {
  const unet = t2v.components.unet;
  const c = readCase('wide');
  tf.tidy(() => {
    const x = tf.randomNormal([1, c.frames, c.height / 8, c.width / 8, 4], 0, 1, 'float32', 3) as tf.Tensor5D;
    const ctxA = tf.randomNormal([1, 77, 1024], 0, 1, 'float32', 4) as tf.Tensor3D;
    const ctxB = tf.randomNormal([1, 77, 1024], 0, 1, 'float32', 5) as tf.Tensor3D;
    const t = tf.tensor1d([667], 'float32');
    const a = unet.forward(x, t, ctxA);
    const b = unet.forward(x, t, ctxB);
    const both = unet.forward(tf.concat([x, x]), tf.tensor1d([667, 667], 'float32'), tf.concat([ctxA, ctxB]));
    assert.equal(relMaxError(both.dataSync(), tf.concat([a, b]).dataSync()), 0);
    // x once under both contexts (sharesInput: the blocks before the first cross-attention run once)
    const shared = unet.forward(x, t, tf.concat([ctxA, ctxB]));
    assert.equal(relMaxError(shared.dataSync(), both.dataSync()), 0);
  });
});

/** Reads back an 8-bit RGB PNG as written by encodePng (filter 0 on every row). */
function readPng(file: string): { rgb: Uint8Array; width: number; height: number } {
  const buf = readFileSync(file);
  let off = 8;
  let width = 0;
  let height = 0;
  const idat: Buffer[] = [];
  while (off < buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    if (type === 'IHDR') { width = buf.readUInt32BE(off + 8); height = buf.readUInt32BE(off + 12); }
    if (type === 'IDAT') idat.push(buf.subarray(off + 8, off + 8 + len));
    off += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) rgb.set(raw.subarray(y * (width * 3 + 1) + 1, (y + 1) * (width * 3 + 1)), y * width * 3);
  return { rgb, width, height };
}

test('e2e: CLI generate (two UNet calls per step) with --noise and --save-latents matches upstream; mp4 checked with ffprobe; contact sheet holds the frames', { skip }, async () => {
  const c = readCase('long');
  const out = join(work, 'long.mp4');
  const latents = join(work, 'latents.npy');
  const sheet = join(work, 'sheet.png');
  const r = await runCli(['generate', c.prompt, '--model', model, '--negative', c.negative ?? '', '--steps', String(c.steps),
    '--guidance', String(c.guidance), '--frames', String(c.frames), '--height', String(c.height), '--width', String(c.width),
    '--noise', join(CASES, 'long', 'noise.npy'), '--save-latents', latents, '--out', out, '--fps', '8',
    '--contact-sheet', sheet, '--decode-chunk', '3', '--backend', 'cpu', '--no-batch-guidance']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote .*long\.mp4: 4 frames 32x32 at 8 fps/);
  assert.match(r.stdout, /text .* s \| denoise .* s \(5 steps, .* s\/step\) \| decode .* s \| total/);

  const ours = readNpy(latents);
  const ref = readNpy(join(CASES, 'long', 'latents.npy'));
  assert.equal(ours.dtype, 'float32');
  assert.deepEqual(ours.shape, ref.shape);
  const err = relMaxError(ours.data as Float32Array, ref.data as Float32Array);
  assert.ok(err <= PARITY_TOL, `latents relMaxError ${err}`);

  // the contact sheet (2 columns, 2-pixel gaps) carries every frame exactly
  const frames = readNpy(join(CASES, 'long', 'frames.npy')).data as Uint8Array;
  const s = readPng(sheet);
  assert.equal(s.width, 2 * c.width + 2);
  const n = c.height * c.width * 3;
  for (let f = 0; f < c.frames; f++) {
    const x0 = (f % 2) * (c.width + 2);
    const y0 = Math.floor(f / 2) * (c.height + 2);
    const frame = new Uint8Array(n);
    for (let y = 0; y < c.height; y++) frame.set(s.rgb.subarray(((y0 + y) * s.width + x0) * 3, ((y0 + y) * s.width + x0 + c.width) * 3), y * c.width * 3);
    const diff = maxLevelDiff(frame, frames.subarray(f * n, (f + 1) * n));
    assert.ok(diff <= 1, `frame ${f} differs by ${diff} levels`);
  }

  assert.ok(existsSync(out));
  if (ffprobePath() !== null) {
    const p = probe(out);
    assert.equal(p.codec_name, 'h264');
    assert.equal(p.pix_fmt, 'yuv420p');
    assert.equal(p.nb_read_frames, String(c.frames));
    assert.equal(p.r_frame_rate, '8/1');
    assert.equal(p.width, String(c.width));
    assert.equal(p.height, String(c.height));
  }
});

test('e2e: the wasm backend matches upstream too (API, non-square case)', { skip }, async () => {
  await import('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  const wasm = await TextToVideo.load(model);
  try {
    const c = readCase('wide');
    const r = await wasm.generate({
      prompt: c.prompt, steps: c.steps, guidance: c.guidance, frames: c.frames, height: c.height, width: c.width,
      noise: readNpy(join(CASES, 'wide', 'noise.npy')), decodeChunk: 2,
    });
    const err = relMaxError(r.latents, readNpy(join(CASES, 'wide', 'latents.npy')).data as Float32Array);
    assert.ok(err <= PARITY_TOL, `latents relMaxError ${err}`);
    const diff = maxLevelDiff(r.frames, readNpy(join(CASES, 'wide', 'frames.npy')).data as Uint8Array);
    assert.ok(diff <= 1, `frames differ by ${diff} levels`);
  } finally {
    wasm.dispose();
    await tf.setBackend('cpu');
  }
});
