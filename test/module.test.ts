import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Module } from '../src/layers/module.js';
import { Linear } from '../src/layers/common/linear.js';
import { GroupNorm } from '../src/layers/common/norm.js';
import { toTfLayout } from '../converters/layout.js';

class Block extends Module {
  readonly proj = this.child('proj.0', new Linear(3, 2));
  readonly norm = this.child('norm', new GroupNorm(2, 4));
}

test('modules name their weights by upstream keys and load them in tfjs layout', async () => {
  await tf.setBackend('cpu');
  const b = new Block();
  assert.deepEqual([...b.paramSpecs().keys()], ['proj.0.weight', 'proj.0.bias', 'norm.weight', 'norm.bias']);
  assert.equal(b.countParams(), 6 + 2 + 4 + 4);
  const w = new Float32Array([1, 2, 3, 4, 5, 6]); // torch [out=2, in=3]
  const t = new Map<string, tf.Tensor>([
    ['proj.0.weight', tf.tensor(toTfLayout(w, [2, 3], 'linear'), [3, 2])],
    ['proj.0.bias', tf.tensor([0.5, -0.5])],
    ['norm.weight', tf.ones([4])],
    ['norm.bias', tf.zeros([4])],
  ]);
  b.loadWeights((k) => t.get(k));
  const y = b.proj.forward(tf.tensor([[1, 1, 1]]));
  assert.deepEqual(Array.from(y.dataSync()), [6.5, 14.5]);
  y.dispose();
  assert.throws(() => b.loadWeights(() => tf.zeros([1])), /proj\.0\.weight has shape/);
  assert.equal(b.disposeWeights(), 4);
});

test('GroupNorm normalizes each group over all non-batch dims', async () => {
  await tf.setBackend('cpu');
  const g = new GroupNorm(2, 4, 1e-5);
  g.loadWeights((k) => (k === 'weight' ? tf.ones([4]) : tf.zeros([4])));
  const x = tf.randomNormal([2, 3, 5, 4], 1, 2, 'float32', 1);
  const y = g.forward(x);
  const grp = y.reshape([2, 15, 2, 2]);
  const { mean, variance } = tf.moments(grp, [1, 3]);
  for (const v of mean.dataSync()) assert.ok(Math.abs(v) < 1e-5);
  for (const v of variance.dataSync()) assert.ok(Math.abs(v - 1) < 1e-3);
  tf.dispose([x, y, grp, mean, variance]);
  g.disposeWeights();
});

test('FeedForward chunks: equal, whole 128-row tiles where they fit (zeroscope XL level 0: 24 x 72 x 128 rows a batch)', async () => {
  const { chunkRows, FF_CHUNK_BYTES } = await import('../src/layers/unet/feed-forward.js');
  const perRow = 2 * 1280 * 4; // GEGLU's projection at level 0 (dim 320)
  assert.equal(chunkRows(221184, perRow, FF_CHUNK_BYTES), 44288); // 5 chunks, the last 44032: all whole tiles
  assert.equal(chunkRows(442368, perRow, FF_CHUNK_BYTES), 49152); // 9 chunks of 384 tiles
  assert.ok(44288 * perRow <= FF_CHUNK_BYTES && 49152 * perRow <= FF_CHUNK_BYTES);
  assert.ok(2 * 16 * 32 * 32 * perRow <= FF_CHUNK_BYTES, '16x256x256 stays whole');
  assert.equal(chunkRows(15, 2 * 32 * 4, 4 * 2 * 32 * 4), 4); // tiles would pass the limit: equal chunks
});

test('FeedForward splits its rows into chunks above chunkBytes with the same numbers', async () => {
  await tf.setBackend('cpu');
  const { FeedForward } = await import('../src/layers/unet/feed-forward.js');
  const ff = new FeedForward(8);
  const specs = ff.paramSpecs();
  let seed = 10;
  ff.loadWeights((k) => tf.randomNormal(specs.get(k)!.tfShape, 0, 0.3, 'float32', seed++));
  const x = tf.randomNormal([3, 5, 8], 0, 1, 'float32', 1);
  const r = tf.randomNormal([3, 5, 8], 0, 1, 'float32', 2);
  const before = tf.memory().numTensors;
  const whole = ff.forward(x, r);
  ff.chunkBytes = 4 * (2 * 32 * 4); // four rows of GEGLU's 2 x 32 float32 values: 15 rows in chunks of 4, 4, 4, 3
  const chunked = ff.forward(x, r);
  assert.deepEqual(chunked.shape, [3, 5, 8]);
  assert.deepEqual(Array.from(chunked.dataSync()), Array.from(whole.dataSync()));
  tf.dispose([whole, chunked]);
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, r]);
  ff.disposeWeights();
});
