import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { convertModelScope } from '../converters/modelscope.js';
import { DownloadError, fetchSource } from '../src/io/fetch-source.js';
import { filesSource } from '../src/io/files-source.js';
import { loadNetwork, readModelFolder } from '../src/io/model-folder.js';
import { seededNoise } from '../src/pipeline/noise.js';
import { TextToVideo, type LoadProgress } from '../src/pipeline/text2video.js';
import { serveWeb, type WebServer } from '../src/web/serve.js';
import { CLIP_VOCAB, FIXTURES, hasClipVocab } from './helpers.js';

// One loader, three sources: a folder on disk, the same folder over http (fetch; Node has no Cache Storage), and
// File objects as a page gets them from a folder picker. All three give the same model, to the bit.

let work: string;
let model: string;
let server: WebServer;
const skip = !hasClipVocab && 'needs the CLIP vocabulary beside the checkout';
const GEN = { prompt: 'a red ball', width: 32, height: 32, frames: 2, steps: 1, guidance: 9, noise: seededNoise(3, [1, 4, 2, 4, 4]) };

before(async () => {
  await tf.setBackend('cpu');
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 't2v-source-'));
  model = join(work, 'model');
  await convertModelScope(join(FIXTURES, 'e2e', 'tiny'), model, { dtype: 'float16', tokenizer: CLIP_VOCAB });
  writeFileSync(join(work, 'index.html'), '<!doctype html>');
  server = await serveWeb({ root: work, model, port: 0 });
});

after(async () => {
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

function files(dir: string): Array<[string, Blob]> {
  const out: Array<[string, Blob]> = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push([`model/${relative(dir, p).split('\\').join('/')}`, new Blob([readFileSync(p)])]);
    }
  };
  walk(dir);
  return out;
}

test('sources: a model loaded over http generates exactly what the folder on disk does; progress reaches the total', { skip }, async () => {
  const disk = await TextToVideo.load(model);
  const ref = await disk.generate(GEN);
  disk.dispose();
  const seen: LoadProgress[] = [];
  const baseline = tf.memory().numTensors;
  const t2v = await TextToVideo.load(`${server.url}model/`, { onProgress: (p) => seen.push(p) });
  const r = await t2v.generate(GEN);
  assert.deepEqual(r.latents, ref.latents);
  assert.deepEqual(r.frames, ref.frames);
  t2v.dispose();
  assert.equal(tf.memory().numTensors, baseline, 'the weights are freed again');
  const last = seen.at(-1)!;
  assert.equal(last.modelLoadedBytes, last.modelTotalBytes);
  assert.ok(seen.every((p, i) => i === 0 || p.modelLoadedBytes >= seen[i - 1].modelLoadedBytes), 'progress only grows');
  assert.deepEqual([...new Set(seen.map((p) => p.network))], ['text_encoder', 'unet', 'vae']);
});

test('sources: files picked in a page (paths under the folder\'s name) load the same weights as the folder on disk', { skip }, async () => {
  const picked = filesSource('model', files(model));
  const f = await readModelFolder(picked);
  assert.deepEqual(f.networks, ['text_encoder', 'unet', 'vae']);
  assert.equal(f.tokenizerPath, 'tokenizer/bpe_simple_vocab_16e6.txt.gz');
  for (const kind of ['unet', 'vae'] as const) {
    const a = await loadNetwork(model, kind);
    const b = await loadNetwork(picked, kind);
    const pa = new Map(a.namedParams());
    for (const [key, p] of b.namedParams()) assert.deepEqual(p.tensor.dataSync(), pa.get(key)!.tensor.dataSync(), key);
    a.disposeWeights();
    b.disposeWeights();
  }
});

test('sources: a URL that is not a model folder, and a folder URL given without its slash', { skip }, async () => {
  await assert.rejects(readModelFolder(`${server.url}nothing/`), new RegExp(`${server.url}nothing/ is not a converted t2v model \\(no t2v\\.json\\); make one with \`t2v convert\``));
  const f = await readModelFolder(`${server.url}model`);
  assert.deepEqual(f.networks, ['text_encoder', 'unet', 'vae']);
  assert.equal(f.tokenizer, `${server.url}model/tokenizer/bpe_simple_vocab_16e6.txt.gz`);
});

test('fetchSource: a body cut short, a server error and a refused connection are one clear line each', async () => {
  const cut: typeof fetch = async () => new Response(new ReadableStream({
    start(c) { c.enqueue(new Uint8Array(10)); c.close(); },
  }), { headers: { 'content-length': '100' } });
  await assert.rejects(fetchSource('http://127.0.0.1:9/m/', { fetch: cut }).readBytes('unet/group1-shard1of1.bin', 100),
    (e: Error) => e instanceof DownloadError && /^the download of http:\/\/127\.0\.0\.1:9\/m\/unet\/group1-shard1of1\.bin was cut off at 10 of 100 bytes; load again/.test(e.message));
  let pulls = 0;
  const broken: typeof fetch = async () => new Response(new ReadableStream({
    pull(c) { if (pulls++ === 0) c.enqueue(new Uint8Array(10)); else c.error(new TypeError('network error')); },
  }));
  await assert.rejects(fetchSource('http://127.0.0.1:9/m/', { fetch: broken }).readBytes('a.bin', 100), /cut off at 10 of 100 bytes \(network error\)/);
  const failing: typeof fetch = async () => new Response('no', { status: 500, statusText: 'Internal Server Error' });
  await assert.rejects(fetchSource('http://127.0.0.1:9/m/', { fetch: failing }).readText('t2v.json'), /http:\/\/127\.0\.0\.1:9\/m\/t2v\.json: HTTP 500 Internal Server Error$/);
  await assert.rejects(fetchSource('http://127.0.0.1:9/m/').readText('t2v.json'), /cannot fetch http:\/\/127\.0\.0\.1:9\/m\/t2v\.json: .*is the server up/);
  const long: typeof fetch = async () => new Response(new Uint8Array(20));
  await assert.rejects(fetchSource('http://x/m/', { fetch: long }).readBytes('a.bin', 10), /more than the 10 bytes expected/);
});
