import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { readNpy } from '../src/io/npy.js';
import { convertNetworkFile } from '../converters/modelscope.js';
import { openCheckpoint } from '../converters/open.js';
import { loadNetwork } from '../src/io/model-folder.js';
import { AutoencoderKL } from '../src/layers/vae/autoencoder.js';
import { inferVAEConfig, vaeSpec, type VAEConfig } from '../src/layers/vae/config.js';
import { FIXTURES, PARITY_TOL, npyTensor, relMaxError } from './helpers.js';

const CASES = ['attn', 'released', 'noconv'];
const dir = (name: string) => join(FIXTURES, 'vae', name);

const PREFIX = 'first_stage_model.';
const CKPT = 'VQGAN_autoencoder.pth';

/** The VAE's keys and PyTorch shapes in the fixture checkpoint, in file order, prefix stripped. */
async function checkpointShapes(name: string): Promise<Map<string, number[]>> {
  const ckpt = await openCheckpoint(join(dir(name), CKPT));
  try {
    return new Map([...ckpt.entries].filter(([k]) => k.startsWith(PREFIX)).map(([k, e]) => [k.slice(PREFIX.length), e.shape]));
  } finally {
    await ckpt.close();
  }
}

const converted = new Map<string, string>();
after(() => { for (const d of converted.values()) rmSync(d, { recursive: true, force: true }); });

/** Converts the fixture checkpoint as `t2v convert` does (float32, once per fixture) and loads it. */
async function loadVAE(name: string): Promise<AutoencoderKL> {
  let out = converted.get(name);
  if (!out) {
    out = mkdtempSync(join(tmpdir(), `t2v-vae-${name}-`));
    await convertNetworkFile('vae', join(dir(name), CKPT), out, { dtype: 'float32', prefix: PREFIX });
    converted.set(name, out);
  }
  return loadNetwork<AutoencoderKL>(out, 'vae');
}

/** A fixture .npy in NCHW as an NHWC tensor. */
const nhwc = (path: string) => tf.tidy(() => npyTensor(path).transpose([0, 2, 3, 1]) as tf.Tensor4D);
const nchwData = (t: tf.Tensor4D) => tf.tidy(() => t.transpose([0, 3, 1, 2])).dataSync();

function parity(vae: AutoencoderKL, name: string): { decode: number; encode: number } {
  const z = nhwc(join(dir(name), 'decode_z.npy'));
  const x = nhwc(join(dir(name), 'encode_x.npy'));
  const refDec = readNpy(join(dir(name), 'decode_out.npy'));
  const refMean = readNpy(join(dir(name), 'encode_mean.npy'));
  const dec = vae.decode(z);
  const mean = vae.encode(x);
  const f = 2 ** (vae.config.chMult.length - 1);
  assert.deepEqual(dec.shape, [z.shape[0], f * z.shape[1], f * z.shape[2], vae.config.outCh]);
  assert.deepEqual(mean.shape, [refMean.shape[0], refMean.shape[2], refMean.shape[3], refMean.shape[1]]);
  const out = {
    decode: relMaxError(nchwData(dec), refDec.data as Float32Array),
    encode: relMaxError(nchwData(mean), refMean.data as Float32Array),
  };
  tf.dispose([z, x, dec, mean]);
  return out;
}

test('vae config is inferred from shapes; keys and shapes are the upstream state_dict', async () => {
  for (const name of CASES) {
    const meta = JSON.parse(readFileSync(join(dir(name), 'meta.json'), 'utf8'));
    const dd = meta.ddconfig;
    const shapes = await checkpointShapes(name);
    const c = inferVAEConfig(shapes);
    const levelRes = (i: number) => dd.resolution / 2 ** i;
    const want: VAEConfig = {
      ch: dd.ch, chMult: dd.ch_mult, numResBlocks: dd.num_res_blocks,
      attnLevels: dd.ch_mult.map((_: number, i: number) => i).filter((i: number) => dd.attn_resolutions.includes(levelRes(i))),
      inChannels: dd.in_channels, outCh: dd.out_ch, zChannels: dd.z_channels, embedDim: meta.embed_dim,
      resampWithConv: dd.resamp_with_conv ?? true, givePreEnd: false, tanhOut: false,
      normNumGroups: 32, normEps: 1e-6,
    };
    assert.deepEqual(c, want, name);
    const vae = vaeSpec.build(c);
    const specs = [...vae.paramSpecs()].map(([k, p]) => [k, [...p.torchShape]]);
    assert.deepEqual(specs, [...shapes], `${name}: keys, order and shapes`);
    assert.equal(vae.countParams(), meta.params);
  }
  assert.throws(() => inferVAEConfig(new Map([['conv_in.weight', [320, 4, 3, 3]]])), /not an AutoencoderKL checkpoint: no tensor encoder\.conv_in\.weight/);
});

test('vae at the released configuration: inferred config, keys, order, shapes and 83.7 M parameters as upstream', () => {
  const rel = JSON.parse(readFileSync(join(FIXTURES, 'vae', 'released-config-keys.json'), 'utf8'));
  const shapes = new Map<string, number[]>(rel.keys);
  const c = inferVAEConfig(shapes);
  assert.deepEqual(
    [c.ch, c.chMult, c.numResBlocks, c.attnLevels, c.zChannels, c.embedDim, c.inChannels, c.outCh],
    [128, [1, 2, 4, 4], 2, [], 4, 4, 3, 3],
  );
  const vae = vaeSpec.build(c);
  assert.deepEqual([...vae.paramSpecs()].map(([k, p]) => [k, [...p.torchShape]]), rel.keys);
  assert.equal(vae.countParams(), rel.params);
  assert.equal(rel.params, 83653863);
});

for (const backend of ['cpu', 'wasm']) {
  test(`vae decode and encode match upstream on ${backend}`, async (t) => {
    assert.ok(await tf.setBackend(backend));
    for (const name of CASES) {
      const vae = await loadVAE(name);
      const err = parity(vae, name);
      vae.disposeWeights();
      t.diagnostic(`${name}: decode ${err.decode.toExponential(2)}, encode ${err.encode.toExponential(2)}`);
      assert.ok(err.decode <= PARITY_TOL, `${name} decode: ${err.decode}`);
      assert.ok(err.encode <= PARITY_TOL, `${name} encode: ${err.encode}`);
    }
  });
}

test('vae decoder switches tanhOut and givePreEnd match upstream (upstream tanh_out, give_pre_end)', async () => {
  await tf.setBackend('cpu');
  const vae = await loadVAE('noconv');
  const loaded = vae.paramSpecs();
  const z = nhwc(join(dir('noconv'), 'decode_z.npy'));
  for (const [flag, file] of [['tanhOut', 'decode_out_tanh.npy'], ['givePreEnd', 'decode_out_pre_end.npy']] as const) {
    const variant = vaeSpec.build({ ...vae.config, [flag]: true });
    variant.loadWeights((k) => loaded.get(k)?.value ?? undefined); // shares the loaded tensors
    const ref = readNpy(join(dir('noconv'), file));
    const out = variant.decode(z);
    assert.deepEqual(out.shape, [ref.shape[0], ref.shape[2], ref.shape[3], ref.shape[1]], flag);
    const err = relMaxError(nchwData(out), ref.data as Float32Array);
    assert.ok(err <= PARITY_TOL, `${flag}: ${err}`);
    out.dispose();
  }
  z.dispose();
  vae.disposeWeights();
});

test('vae decodeChunked equals decode; no tensors leak from decode, decodeChunked or encode', async () => {
  await tf.setBackend('cpu');
  const vae = await loadVAE('released');
  const z = nhwc(join(dir('released'), 'decode_z.npy')); // 3 latents
  const x = nhwc(join(dir('released'), 'encode_x.npy'));
  const base = tf.memory().numTensors;
  const whole = vae.decode(z);
  const progress: number[] = [];
  for (const chunk of [1, 2, 3, 8]) {
    const parts = vae.decodeChunked(z, chunk, (done) => progress.push(done));
    assert.deepEqual(parts.shape, whole.shape);
    assert.ok(relMaxError(parts.dataSync(), whole.dataSync()) <= 1e-6, `chunk ${chunk}`);
    parts.dispose();
  }
  assert.deepEqual(progress, [1, 2, 3, 2, 3, 3, 3]);
  const mean = vae.encode(x);
  tf.dispose([whole, mean]);
  assert.equal(tf.memory().numTensors, base);
  assert.throws(() => vae.decodeChunked(z, 0), /chunk size must be a positive integer/);
  assert.throws(() => vae.decode(x), /expected \[n, h, w, 4\] \(channels last\), got \[2,24,32,3\]/);
  assert.equal(tf.memory().numTensors, base);
  tf.dispose([z, x]);
  vae.disposeWeights();
});
