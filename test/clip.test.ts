import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { convertNetworkFile } from '../converters/modelscope.js';
import { openCheckpoint } from '../converters/open.js';
import { readNpy } from '../src/io/npy.js';
import { loadNetwork } from '../src/io/model-folder.js';
import { configToJson } from '../src/io/network-config.js';
import { inferTextEncoderConfig, textEncoderSpec } from '../src/layers/clip/config.js';
import { gelu } from '../src/layers/clip/mlp.js';
import type { OpenCLIPTextEncoder } from '../src/layers/clip/text-encoder.js';
import { CLIPTokenizer } from '../src/pipeline/tokenizer.js';
import { CLIP_VOCAB, FIXTURES, PARITY_TOL, hasClipVocab, relMaxError } from './helpers.js';

// w1024: 1024 wide (what the UNet's cross-attention takes), 16 heads, 3 blocks in the file of which 2 run.
// w128: 128 wide, 2 heads, 4 blocks in the file of which 3 run. Both with the real 49408-token vocabulary.
const CASES = ['w1024', 'w128'];
const dir = (name: string) => join(FIXTURES, 'clip', name);
const CKPT = 'open_clip_pytorch_model.bin';

let out: string;
before(async () => {
  await tf.setBackend('cpu');
  out = mkdtempSync(join(tmpdir(), 't2v-clip-'));
  for (const name of CASES) {
    await convertNetworkFile('text_encoder', join(dir(name), CKPT), join(out, name), { dtype: 'float32' });
  }
});
after(() => rmSync(out, { recursive: true, force: true }));

const load = (name: string) => loadNetwork<OpenCLIPTextEncoder>(join(out, name), 'text_encoder');

function tokens(name: string): tf.Tensor2D {
  const a = readNpy(join(dir(name), 'tokens.npy'));
  return tf.tensor2d(a.data as Int32Array, a.shape as [number, number], 'int32');
}

test('text encoder config is inferred from shapes; unused keys are the image tower, projection, scale and last block', async () => {
  for (const name of CASES) {
    const ckpt = await openCheckpoint(join(dir(name), CKPT));
    try {
      const shapes = new Map([...ckpt.entries].map(([k, e]) => [k, e.shape]));
      const config = inferTextEncoderConfig(shapes);
      assert.deepEqual(configToJson('text_encoder', config), JSON.parse(readFileSync(join(dir(name), 'config.json'), 'utf8')), name);
      const enc = textEncoderSpec.build(config);
      const params = enc.paramSpecs();
      for (const [k, p] of params) assert.deepEqual([...p.torchShape], shapes.get(k), `${name}: ${k}`);
      const unused = [...shapes.keys()].filter((k) => !params.has(k));
      assert.ok(unused.length > 0);
      for (const k of unused) assert.ok(textEncoderSpec.isUnused!(k, config), `${name}: ${k} should be a known unused key`);
      assert.ok(unused.some((k) => k.startsWith(`transformer.resblocks.${config.layers}.`)), 'the last block is left out');
      assert.ok(params.has('transformer.resblocks.0.attn.in_proj_weight') && params.has('ln_final.weight'));
      assert.ok(!textEncoderSpec.isUnused!('transformer.resblocks.0.attn.in_proj_weight', config));
    } finally {
      await ckpt.close();
    }
  }
  assert.throws(() => inferTextEncoderConfig(new Map([['encoder.conv_in.weight', [128, 3, 3, 3]]])),
    /not an OpenCLIP text tower checkpoint: no tensor token_embedding\.weight/);
});

test('gelu is the exact (erf) GELU of torch.nn.GELU()', () => {
  const x = tf.tensor1d([-6, -3, -1, -0.5, 0, 0.5, 1, 3, 6]);
  // torch.nn.GELU()(x), float64
  const ref = [-5.9195259e-09, -0.0040496941, -0.15865525, -0.15426877, 0, 0.34573123, 0.84134475, 2.9959503, 5.9999999941];
  const y = gelu(x);
  const got = y.dataSync();
  for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(got[i] - ref[i]) < 2e-6, `gelu(${x.dataSync()[i]}) = ${got[i]}, want ${ref[i]}`);
  tf.dispose([x, y]);
});

for (const backend of ['cpu', 'wasm']) {
  test(`text encoder (penultimate + ln_final) matches upstream on ${backend}`, async (t) => {
    assert.ok(await tf.setBackend(backend));
    for (const name of CASES) {
      const enc = await load(name);
      const all = tokens(name);
      const ref = readNpy(join(dir(name), 'penultimate.npy'));
      // The plain-JS cpu backend is slow at width 1024: there it runs the first two texts (a prompt and "").
      const rows = backend === 'cpu' && name === 'w1024' ? 2 : all.shape[0];
      const ids = all.slice([0, 0], [rows, all.shape[1]]);
      const y = enc.forward(ids);
      assert.deepEqual(y.shape, [rows, ...ref.shape.slice(1)]);
      const err = relMaxError(y.dataSync(), (ref.data as Float32Array).subarray(0, y.size));
      tf.dispose([all, ids, y]);
      enc.disposeWeights();
      t.diagnostic(`${name} on ${backend}: relative max error ${err.toExponential(2)}`);
      assert.ok(err <= PARITY_TOL, `${name} on ${backend}: relative max error ${err}`);
    }
  });
}

test('the fixture token ids are what CLIPTokenizer gives for the fixture prompts', { skip: hasClipVocab ? false : `the CLIP vocabulary is absent (${CLIP_VOCAB})` }, async () => {
  const tok = await CLIPTokenizer.load(CLIP_VOCAB);
  for (const name of CASES) {
    const prompts = JSON.parse(readFileSync(join(dir(name), 'prompts.json'), 'utf8')) as string[];
    assert.deepEqual(Array.from(tok.tokenize(prompts)), Array.from(readNpy(join(dir(name), 'tokens.npy')).data as Int32Array), name);
  }
});

test('no tensors leak from a forward; wrong token counts fail clearly', async () => {
  await tf.setBackend('cpu');
  const enc = await load('w128');
  const ids = tokens('w128');
  const base = tf.memory().numTensors;
  const y = enc.forward(ids);
  y.dispose();
  assert.equal(tf.memory().numTensors, base);
  const short = tf.zeros([1, 10], 'int32') as tf.Tensor2D;
  assert.throws(() => enc.forward(short), /10 tokens per text, the model takes 77/);
  short.dispose();
  assert.equal(tf.memory().numTensors, base);
  ids.dispose();
  enc.disposeWeights();
});
