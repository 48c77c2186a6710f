/**
 * UNetSD at the released configuration: our port on the random-weight checkpoint and inputs that
 * bench/full-config-unet.py wrote with the upstream code; converts as `t2v convert` does (float32, once), then
 * prints parameters, times and max relative errors.
 * Run: node --import tsx bench/full-config-unet.ts [dir=/tmp/unet-full] [backend=cpu] [cases=1x2x8x8]
 * (wasm cannot hold 5.6 GB of float32 weights: its heap stops at 4 GB.)
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { convertNetworkFile } from '../converters/modelscope.js';
import { loadNetwork } from '../src/io/model-folder.js';
import { readNpy } from '../src/io/npy.js';
import type { UNetSD } from '../src/layers/unet/unet.js';
import { relMaxError } from '../test/helpers.js';

const [dir = '/tmp/unet-full', backend = 'cpu', caseArg = '1x2x8x8'] = process.argv.slice(2);
const secs = (t0: number) => ((performance.now() - t0) / 1000).toFixed(2);

async function load(): Promise<UNetSD> {
  const out = join(dir, 'converted');
  if (!existsSync(join(out, 'unet', 'model.json'))) {
    const json = JSON.parse(readFileSync(join(dir, 'configuration.json'), 'utf8')).model.model_cfg;
    const t0 = performance.now();
    await convertNetworkFile('unet', join(dir, 'text2video_pytorch_model.pth'), out, { dtype: 'float32', json });
    console.log(`converted in ${secs(t0)} s`);
  }
  return loadNetwork<UNetSD>(out, 'unet');
}

const tensor = (path: string) => {
  const a = readNpy(path);
  return tf.tensor(a.data as Float32Array, a.shape, 'float32');
};

async function main(): Promise<void> {
  if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} did not initialize`);
  await tf.ready();
  let t0 = performance.now();
  const unet = await load();
  console.log(`backend ${tf.getBackend()}, tfjs ${tf.version.tfjs}; params ${unet.countParams()} `
    + `(${(unet.countParams() / 1e9).toFixed(3)} B); load ${secs(t0)} s; config ${JSON.stringify(unet.config)}`);
  const base = tf.memory().numTensors;
  for (const c of caseArg.split(',')) {
    const file = (k: string) => join(dir, `${c}.${k}.npy`);
    if (!existsSync(file('out'))) { console.log(`no ${file('out')}: skipped`); continue; }
    const x = tf.tidy(() => tensor(file('x')).transpose([0, 2, 3, 4, 1]) as tf.Tensor5D);
    const t = tensor(file('t')) as tf.Tensor1D;
    const context = tensor(file('context')) as tf.Tensor3D;
    const ref = readNpy(file('out'));
    t0 = performance.now();
    const y = unet.forward(x, t, context);
    y.dataSync();
    const time = secs(t0);
    const ncfhw = tf.tidy(() => y.transpose([0, 4, 1, 2, 3]));
    const err = relMaxError(ncfhw.dataSync(), ref.data as Float32Array);
    console.log(`ours forward ${c} (b x f x h x w) -> [${ncfhw.shape}]: ${time} s, max rel error ${err.toExponential(2)}`);
    tf.dispose([x, t, context, y, ncfhw]);
  }
  console.log(`tensors after the forwards: ${tf.memory().numTensors} (before: ${base})`);
  unet.disposeWeights();
}

main().catch((err) => { console.error(err); process.exit(1); });
