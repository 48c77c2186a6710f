import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { convertNetworkFile } from '../converters/modelscope.js';
import { loadNetwork, readNetworkConfig } from '../src/io/model-folder.js';
import { configFromJson, configToJson } from '../src/io/network-config.js';
import { NETWORK_SCHEMAS } from '../src/io/validate.js';
import type { TextEncoderConfig } from '../src/layers/clip/config.js';
import type { OpenCLIPTextEncoder } from '../src/layers/clip/text-encoder.js';
import type { AutoencoderKL } from '../src/layers/vae/autoencoder.js';
import type { VAEConfig } from '../src/layers/vae/config.js';
import { FIXTURES } from './helpers.js';

// config.json as `t2v convert` wrote it before the Config objects were camelCase (the files keep these keys).
const OLD_TEXT_ENCODER_JSON = '{\n "context_length": 77,\n "vocab_size": 49408,\n "width": 128,\n "heads": 2,\n "layers": 3,\n'
  + ' "mlp_width": 512,\n "layer_norm_eps": 0.00001\n}';
const OLD_VAE_JSON = '{\n "ch": 32,\n "ch_mult": [\n  1,\n  1\n ],\n "num_res_blocks": 2,\n "attn_levels": [\n  0,\n  1\n ],\n'
  + ' "in_channels": 3,\n "out_ch": 3,\n "z_channels": 4,\n "embed_dim": 3,\n "resamp_with_conv": true,\n "give_pre_end": false,\n'
  + ' "tanh_out": false,\n "norm_num_groups": 32,\n "norm_eps": 0.000001\n}';

const TEXT_ENCODER: TextEncoderConfig = {
  contextLength: 77, vocabSize: 49408, width: 128, heads: 2, layers: 3, mlpWidth: 512, layerNormEps: 1e-5,
};
const VAE: VAEConfig = {
  ch: 32, chMult: [1, 1], numResBlocks: 2, attnLevels: [0, 1], inChannels: 3, outCh: 3, zChannels: 4, embedDim: 3,
  resampWithConv: true, givePreEnd: false, tanhOut: false, normNumGroups: 32, normEps: 1e-6,
};

let work: string;
before(async () => {
  await tf.setBackend('cpu');
  work = mkdtempSync(join(tmpdir(), 't2v-network-config-'));
  await convertNetworkFile('text_encoder', join(FIXTURES, 'clip', 'w128', 'open_clip_pytorch_model.bin'), work, { dtype: 'float32' });
  await convertNetworkFile('vae', join(FIXTURES, 'vae', 'attn', 'VQGAN_autoencoder.pth'), work,
    { dtype: 'float32', prefix: 'first_stage_model.' });
});
after(() => rmSync(work, { recursive: true, force: true }));

test('the converter writes config.json with the keys it always had, byte for byte', () => {
  assert.equal(readFileSync(join(work, 'text_encoder', 'config.json'), 'utf8'), OLD_TEXT_ENCODER_JSON);
  assert.equal(readFileSync(join(work, 'vae', 'config.json'), 'utf8'), OLD_VAE_JSON);
});

test('a folder converted before camelCase configs loads into camelCase Config objects', async () => {
  const old = join(work, 'old');
  for (const [net, text] of [['text_encoder', OLD_TEXT_ENCODER_JSON], ['vae', OLD_VAE_JSON]] as const) {
    mkdirSync(join(old, net), { recursive: true });
    writeFileSync(join(old, net, 'config.json'), text);
    for (const f of readdirSync(join(work, net))) if (f !== 'config.json') copyFileSync(join(work, net, f), join(old, net, f));
  }
  assert.deepEqual(await readNetworkConfig(join(old, 'text_encoder'), 'text_encoder'), TEXT_ENCODER);
  assert.deepEqual(await readNetworkConfig(join(old, 'vae'), 'vae'), VAE);
  const base = tf.memory().numTensors;
  const enc = await loadNetwork<OpenCLIPTextEncoder>(join(old, 'text_encoder'), 'text_encoder');
  const vae = await loadNetwork<AutoencoderKL>(join(old, 'vae'), 'vae');
  assert.deepEqual(enc.config, TEXT_ENCODER);
  assert.deepEqual(vae.config, VAE);
  const ids = tf.zeros([1, 77], 'int32') as tf.Tensor2D;
  const context = enc.forward(ids);
  assert.deepEqual(context.shape, [1, 77, 128]);
  const z = tf.zeros([1, 2, 2, 3]) as tf.Tensor4D;
  const image = vae.decode(z);
  assert.deepEqual(image.shape, [1, 4, 4, 3]);
  tf.dispose([ids, context, z, image]);
  enc.disposeWeights();
  vae.disposeWeights();
  assert.equal(tf.memory().numTensors, base);
});

test('configToJson and configFromJson are inverses, and give the keys the load-time check expects', () => {
  for (const [kind, config] of [['text_encoder', TEXT_ENCODER], ['vae', VAE]] as const) {
    const json = configToJson(kind, config);
    assert.deepEqual(Object.keys(json), Object.keys(NETWORK_SCHEMAS[kind]), kind);
    assert.deepEqual(configFromJson(kind, json), config, kind);
  }
  const unet = { inDim: 4, dim: 32 };
  assert.deepEqual(configToJson('unet', unet), unet);
  assert.deepEqual(configFromJson('unet', unet), unet);
});
