import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { convertNetworkFile } from '../converters/modelscope.js';
import { openCheckpoint } from '../converters/open.js';
import { loadNetwork } from '../src/io/model-folder.js';
import { inferUNetConfig, unetSpec, type UNetConfig } from '../src/layers/unet/config.js';
import type { UNetSD } from '../src/layers/unet/unet.js';
import { FIXTURES, PARITY_TOL, npyTensor, relMaxError } from './helpers.js';

const dir = (name: string) => join(FIXTURES, 'unet', name);
const CKPT = 'text2video_pytorch_model.pth';
const modelCfg = (name: string) =>
  JSON.parse(readFileSync(join(dir(name), 'configuration.json'), 'utf8')).model.model_cfg as Record<string, unknown>;

/** Fixture configurations and their cases (see tools/reference/make_unet_fixtures.py). */
const FIXTURE_CASES: Record<string, string[]> = { 'small-a': ['b2f3', 'b1f1'], 'small-b': ['b2f2', 'b1f1'] };

/** The released model's configuration.json model_cfg. */
const RELEASED_CFG = {
  unet_in_dim: 4, unet_dim: 320, unet_y_dim: 768, unet_context_dim: 1024, unet_out_dim: 4, unet_dim_mult: [1, 2, 4, 4],
  unet_num_heads: 8, unet_head_dim: 64, unet_res_blocks: 2, unet_attn_scales: [1, 0.5, 0.25], unet_dropout: 0.1,
  temporal_attention: 'True',
};
const RELEASED: UNetConfig = {
  inDim: 4, dim: 320, embedDim: 1280, contextDim: 1024, decoderContextDim: 1024, outDim: 4, dimMult: [1, 2, 4, 4],
  numHeads: 8, headDim: 64, numResBlocks: 2, attnScales: [1, 0.5, 0.25], temporalAttention: true, normGroups: 32,
};

async function checkpointShapes(name: string): Promise<Map<string, number[]>> {
  const ckpt = await openCheckpoint(join(dir(name), CKPT));
  try {
    return new Map([...ckpt.entries].map(([k, e]) => [k, e.shape]));
  } finally {
    await ckpt.close();
  }
}

// Each fixture checkpoint converted once, as `t2v convert` does (float32 storage), into a temporary folder.
let converted = '';
before(async () => {
  await tf.setBackend('cpu');
  converted = mkdtempSync(join(tmpdir(), 't2v-unet-'));
  for (const name of Object.keys(FIXTURE_CASES)) {
    await convertNetworkFile('unet', join(dir(name), CKPT), join(converted, name), { dtype: 'float32', json: modelCfg(name) });
  }
});
after(() => rmSync(converted, { recursive: true, force: true }));

const loadUNet = (name: string) => loadNetwork<UNetSD>(join(converted, name), 'unet');

/** Runs one fixture case: inputs from upstream layout [b, c, f, h, w] to channels-last, output back. */
function runCase(unet: UNetSD, name: string, c: string): number {
  const file = (k: string) => join(dir(name), `${c}.${k}.npy`);
  const x = tf.tidy(() => npyTensor(file('x')).transpose([0, 2, 3, 4, 1]) as tf.Tensor5D);
  const t = npyTensor(file('t')) as tf.Tensor1D;
  const context = npyTensor(file('context')) as tf.Tensor3D;
  const ref = npyTensor(file('out'));
  const y = unet.forward(x, t, context);
  assert.deepEqual(y.shape, [x.shape[0], x.shape[1], x.shape[2], x.shape[3], unet.config.outDim]);
  const ours = tf.tidy(() => y.transpose([0, 4, 1, 2, 3]));
  const err = relMaxError(ours.dataSync(), ref.dataSync());
  tf.dispose([x, t, context, ref, y, ours]);
  return err;
}

test('unet config from model_cfg and shapes; keys, order and shapes are the upstream state_dict', async () => {
  const want: Record<string, UNetConfig> = {
    'small-a': { inDim: 4, dim: 32, embedDim: 128, contextDim: 1024, decoderContextDim: 1024, outDim: 4, dimMult: [1, 2],
      numHeads: 2, headDim: 8, numResBlocks: 1, attnScales: [1], temporalAttention: true, normGroups: 32 },
    'small-b': { inDim: 4, dim: 32, embedDim: 128, contextDim: 1024, decoderContextDim: 1024, outDim: 6, dimMult: [1, 1, 1],
      numHeads: 4, headDim: 16, numResBlocks: 2, attnScales: [0.5, 0.25], temporalAttention: true, normGroups: 32 },
  };
  for (const name of Object.keys(FIXTURE_CASES)) {
    const shapes = await checkpointShapes(name);
    const c = inferUNetConfig(shapes, modelCfg(name));
    assert.deepEqual(c, want[name], name);
    assert.deepEqual(JSON.parse(readFileSync(join(converted, name, 'unet', 'config.json'), 'utf8')), c, `${name}: converted config.json`);
    const unet = unetSpec.build(c);
    assert.deepEqual([...unet.paramSpecs()].map(([k, p]) => [k, [...p.torchShape]]), [...shapes], `${name}: keys, order, shapes`);
    // Without the JSON only the head split is guessed (UNetSD's default head_dim 64 does not divide 32 here).
    assert.throws(() => inferUNetConfig(shapes), /not a multiple of unet_head_dim 64/);
    assert.throws(() => inferUNetConfig(shapes, { ...modelCfg(name), unet_res_blocks: 3 }),
      /model_cfg unet_res_blocks = 3 but the checkpoint has/);
  }
  assert.throws(() => inferUNetConfig(new Map([['conv_in.weight', [320, 4, 3, 3]]])),
    /not a ModelScope UNetSD checkpoint .*: missing input_blocks\.0\.0\.weight/);
});

test('unet released configuration: keys, order and shapes equal upstream UNetSD at the released config', () => {
  // Written by make_unet_fixtures.py --released from the upstream module built at that configuration.
  const ref = JSON.parse(readFileSync(join(FIXTURES, 'unet', 'released-shapes.json'), 'utf8')) as {
    model_cfg: Record<string, unknown>; params: number; state_dict: [string, number[]][];
  };
  assert.deepEqual(ref.model_cfg, RELEASED_CFG);
  const shapes = new Map(ref.state_dict);
  assert.deepEqual(inferUNetConfig(shapes, RELEASED_CFG), RELEASED);
  assert.deepEqual(inferUNetConfig(shapes), RELEASED); // head split from UNetSD's defaults
  const unet = unetSpec.build(RELEASED); // declares shapes only: nothing is allocated
  assert.deepEqual([...unet.paramSpecs()].map(([k, p]) => [k, [...p.torchShape]]), ref.state_dict);
  assert.equal(unet.countParams(), ref.params);
  assert.equal(ref.params, 1_411_233_860);
});

for (const backend of ['cpu', 'wasm']) {
  test(`unet forward matches upstream UNetSD on ${backend} (frames 1 and >1, b=2, non-square)`, async (ctx) => {
    assert.ok(await tf.setBackend(backend));
    for (const [name, cases] of Object.entries(FIXTURE_CASES)) {
      const unet = await loadUNet(name);
      for (const c of cases) {
        const err = runCase(unet, name, c);
        ctx.diagnostic(`${name} ${c}: max rel error ${err.toExponential(2)}`);
        assert.ok(err <= PARITY_TOL, `${name} ${c} on ${backend}: max rel error ${err}`);
      }
      unet.disposeWeights();
    }
  });
}

test('unet forward leaves no tensors behind; bad inputs fail with a clear message', async () => {
  await tf.setBackend('cpu');
  const unet = await loadUNet('small-a');
  const base = tf.memory().numTensors;
  runCase(unet, 'small-a', 'b1f1');
  assert.equal(tf.memory().numTensors, base);
  const t = tf.tensor1d([10]);
  const ctx = tf.zeros([1, 3, 1024]) as tf.Tensor3D;
  const odd = tf.zeros([1, 2, 5, 4, 4]) as tf.Tensor5D;
  assert.throws(() => unet.forward(odd, t, ctx), /latent size 5x4 is not a multiple of 2/);
  const wide = tf.zeros([1, 2, 4, 4, 3]) as tf.Tensor5D;
  assert.throws(() => unet.forward(wide, t, ctx), /input has 3 channels, expected 4/);
  const two = tf.zeros([2, 2, 4, 4, 4]) as tf.Tensor5D;
  const ctx3 = tf.zeros([3, 3, 1024]) as tf.Tensor3D;
  tf.tidy(() => {
    assert.throws(() => unet.forward(two, tf.tensor1d([1, 2]), ctx3), /context batch 3 != input batch 2/);
    const y = unet.forward(tf.zeros([1, 2, 4, 4, 4]) as tf.Tensor5D, t, ctx3); // one x under three contexts
    assert.deepEqual(y.shape, [3, 2, 4, 4, 4]);
  });
  tf.dispose([t, ctx, odd, wide, two, ctx3]);
  assert.equal(tf.memory().numTensors, base);
  unet.disposeWeights();
});
