/**
 * AutoencoderKL at the released configuration: our port on the random-weight checkpoint and inputs that
 * bench/full-config-vae.py wrote with the upstream code; prints parameters, times and max relative errors.
 * Run: node --import tsx bench/full-config-vae.ts [dir=/tmp/vae-full] [backend=wasm] [sizes=8,32]
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { convertNetworkFile } from '../converters/modelscope.js';
import { loadNetwork } from '../src/io/model-folder.js';
import { readNpy } from '../src/io/npy.js';
import type { AutoencoderKL } from '../src/layers/vae/autoencoder.js';
import { relMaxError } from '../test/helpers.js';

const [dir = '/tmp/vae-full', backend = 'wasm', sizeArg = '8,32'] = process.argv.slice(2);

/** Converts the checkpoint as `t2v convert` does (float32; once, into <dir>/converted) and loads it. */
async function load(dir: string): Promise<AutoencoderKL> {
  const out = join(dir, 'converted');
  if (!existsSync(join(out, 'vae', 'model.json'))) {
    const t0 = performance.now();
    await convertNetworkFile('vae', join(dir, 'VQGAN_autoencoder.pth'), out, { dtype: 'float32', prefix: 'first_stage_model.' });
    console.log(`converted in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  return loadNetwork<AutoencoderKL>(out, 'vae');
}

/** NCHW .npy -> NHWC tensor. */
function nhwc(path: string): tf.Tensor4D {
  const a = readNpy(path);
  return tf.tidy(() => tf.tensor(a.data as Float32Array, a.shape).transpose([0, 2, 3, 1]) as tf.Tensor4D);
}

/** Prints the max relative error against upstream's float32 result (and its float64 result where saved). */
function check(name: string, ours: tf.Tensor4D, refPath: string, seconds: number, ref64Path?: string): void {
  const ref = readNpy(refPath);
  const nchw = tf.tidy(() => ours.transpose([0, 3, 1, 2]));
  const data = nchw.dataSync();
  nchw.dispose();
  const same = nchw.shape.every((d, i) => d === ref.shape[i]);
  const err = same ? relMaxError(data, ref.data as Float32Array) : NaN;
  let line = `ours ${name} -> [${ref.shape}]: ${seconds.toFixed(2)} s, max rel error ${err.toExponential(2)}`;
  if (ref64Path && existsSync(ref64Path)) {
    line += ` (vs upstream in float64: ${relMaxError(data, readNpy(ref64Path).data as Float32Array).toExponential(2)})`;
  }
  console.log(line);
}

async function main(): Promise<void> {
  if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} did not initialize`);
  await tf.ready();
  let t0 = performance.now();
  const vae = await load(dir);
  console.log(`backend ${tf.getBackend()}, tfjs ${tf.version.tfjs}; params ${vae.countParams()} `
    + `(${(vae.countParams() / 1e6).toFixed(1)} M); config ${JSON.stringify(vae.config)}; load ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const base = tf.memory().numTensors;
  for (const s of sizeArg.split(',').map(Number)) {
    const zPath = join(dir, `decode_z_${s}.npy`);
    if (!existsSync(zPath)) { console.log(`no ${zPath}: skipped`); continue; }
    const z = nhwc(zPath);
    t0 = performance.now();
    const out = vae.decode(z);
    out.dataSync();
    check(`decode [2, 4, ${s}, ${s}]`, out, join(dir, `decode_out_${s}.npy`), (performance.now() - t0) / 1000,
      join(dir, `decode_out64_${s}.npy`));
    tf.dispose([z, out]);
  }
  const x = nhwc(join(dir, 'encode_x.npy'));
  t0 = performance.now();
  const mean = vae.encode(x);
  mean.dataSync();
  check('encode [2, 3, 64, 64]', mean, join(dir, 'encode_mean.npy'), (performance.now() - t0) / 1000);
  tf.dispose([x, mean]);
  console.log(`tensors after the forwards: ${tf.memory().numTensors} (before: ${base})`);
  vae.disposeWeights();
}

main().catch((err) => { console.error(err); process.exit(1); });
