/**
 * The full ViT-H-14 text tower (24 blocks, 1024 wide, 16 heads, 49408 tokens) with random weights, upstream
 * against ours: one forward of a batch of two (a prompt and ""), max error and times.
 *
 *   T2V_REF=/tmp/ref node --import tsx bench/full-config-clip.ts [--work DIR] [--backends cpu,wasm] [--runs 2] [--keep]
 *
 * Runs bench/full-config-clip.py (upstream PyTorch) into DIR unless DIR already holds its output, converts
 * the checkpoint with convertNetworkFile (float32), loads it with loadNetwork, and compares on each backend.
 * Tokens are compared too: ours from CLIPTokenizer against open_clip.tokenize.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { convertNetworkFile } from '../converters/modelscope.js';
import { readNpy } from '../src/io/npy.js';
import { loadNetwork } from '../src/io/model-folder.js';
import type { OpenCLIPTextEncoder } from '../src/layers/clip/text-encoder.js';
import { CLIPTokenizer } from '../src/pipeline/tokenizer.js';
import { relMaxError } from '../test/helpers.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const VOCAB = join(ROOT, '..', 'shared', 'clip-tokenizer', 'bpe_simple_vocab_16e6.txt.gz');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}


async function main(): Promise<void> {
  const work = arg('--work', '/tmp/t2v-clip-full');
  const backends = arg('--backends', 'cpu,wasm').split(',');
  const runs = Number(arg('--runs', '2'));
  const ckpt = join(work, 'open_clip_pytorch_model.bin');
  if (!existsSync(join(work, 'timing.json'))) {
    if (!process.env.T2V_REF) throw new Error('set T2V_REF to the upstream sources (see tools/reference/README.md)');
    console.log('upstream: building, saving and running the PyTorch text tower ...');
    execFileSync('/usr/bin/python3', [join(ROOT, 'bench', 'full-config-clip.py'), work, ...(existsSync(VOCAB) ? [VOCAB] : [])],
      { stdio: 'inherit', env: process.env });
  }
  const upstream = JSON.parse(readFileSync(join(work, 'timing.json'), 'utf8')) as { forward_s: number; threads: number; prompts: string[] };
  const refTokens = readNpy(join(work, 'tokens.npy'));
  const ref = readNpy(join(work, 'penultimate.npy'));

  await tf.setBackend('cpu');
  const converted = join(work, 'converted');
  rmSync(converted, { recursive: true, force: true });
  let t0 = performance.now();
  const summary = await convertNetworkFile('text_encoder', ckpt, converted, { dtype: 'float32' });
  const convertS = (performance.now() - t0) / 1000;
  console.log(`convert: ${convertS.toFixed(1)} s, ${summary.params} parameters`);

  if (existsSync(VOCAB)) {
    const tok = await CLIPTokenizer.load(VOCAB);
    const same = Array.from(tok.tokenize(upstream.prompts)).every((v, i) => v === Number((refTokens.data as Int32Array)[i]));
    console.log(`tokens: ${same ? 'identical to open_clip.tokenize' : 'DIFFER from open_clip.tokenize'}`);
  }

  console.log(`upstream forward (torch ${upstream.threads} threads): ${upstream.forward_s.toFixed(2)} s`);
  for (const backend of backends) {
    if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} did not initialize`);
    t0 = performance.now();
    const enc = await loadNetwork<OpenCLIPTextEncoder>(converted, 'text_encoder');
    const loadS = (performance.now() - t0) / 1000;
    const ids = tf.tensor2d(refTokens.data as Int32Array, refTokens.shape as [number, number], 'int32');
    const times: number[] = [];
    let err = NaN;
    for (let run = 0; run < runs; run++) {
      t0 = performance.now();
      const y = enc.forward(ids);
      const data = await y.data();
      times.push((performance.now() - t0) / 1000);
      err = relMaxError(data as Float32Array, ref.data as Float32Array);
      y.dispose();
    }
    ids.dispose();
    enc.disposeWeights();
    console.log(`${backend}: load ${loadS.toFixed(1)} s, forward ${times.map((t) => t.toFixed(2)).join(' s, ')} s (run 1..${runs}), relative max error ${err.toExponential(2)}`);
  }
  if (!process.argv.includes('--keep')) rmSync(work, { recursive: true, force: true });
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
