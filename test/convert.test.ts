import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, truncateSync, copyFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { float16Bits, fromFloat16, toFloat16 } from '../src/io/float16.js';
import { permute } from '../converters/permute.js';
import { convertModelScope, convertNetworkFile, findTokenizer } from '../converters/modelscope.js';
import { openCheckpoint } from '../converters/open.js';
import { toTfLayout } from '../converters/layout.js';
import { WeightsWriter } from '../converters/tfjs-writer.js';
import type { WeightsFile } from '../src/io/weights-manifest.js';
import { loadNetwork, readModelFolder, type ModelInfo } from '../src/io/model-folder.js';
import type { Module } from '../src/layers/module.js';
import type { NetworkKind } from '../src/layers/network.js';
import { readNpy } from '../src/io/npy.js';
import { FIXTURES, ROOT } from './helpers.js';

const RELEASE = join(FIXTURES, 'release');
const CLIP_FILE = join(FIXTURES, 'e2e', 'tiny', 'open_clip_pytorch_model.bin');
const FILES: Record<NetworkKind, string> = {
  text_encoder: 'open_clip_pytorch_model.bin', unet: 'text2video_pytorch_model.pth', vae: 'VQGAN_autoencoder.pth',
};

let work: string;
let tokenizerGz: string;

/** A released-layout source folder in the scratch space: links to the fixtures, `mutate` may replace any of them. */
function sourceFolder(name: string, mutate?: (dir: string) => void): string {
  const dir = join(work, name);
  mkdirSync(dir);
  for (const f of ['configuration.json', FILES.unet, FILES.vae]) symlinkSync(join(RELEASE, f), join(dir, f));
  symlinkSync(CLIP_FILE, join(dir, FILES.text_encoder));
  mutate?.(dir);
  return dir;
}

/** Replace a linked file with a real copy that the test can change. */
function ownCopy(dir: string, file: string): string {
  const p = join(dir, file);
  const src = join(RELEASE, file);
  rmSync(p);
  copyFileSync(existsSync(src) ? src : CLIP_FILE, p);
  return p;
}

function t2v(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bin', 't2v-dev.ts'), ...args],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, T2V_BACKEND: 'cpu' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A failed conversion: exit 1, exactly one stderr line `t2v: ...` matching `pattern`, and nothing left behind. */
function assertRefused(args: string[], out: string, pattern: RegExp): void {
  const before = readdirSync(work).sort();
  const r = t2v(args);
  assert.equal(r.status, 1, `expected failure, got ${r.status}: ${r.stdout}${r.stderr}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected:\n${r.stderr}`);
  assert.match(lines[0], /^t2v: /);
  assert.match(lines[0], pattern);
  assert.equal(existsSync(out), false, 'no output folder');
  assert.deepEqual(readdirSync(work).sort(), before, 'no temporary folder left');
}

before(async () => {
  await tf.setBackend('cpu');
  work = mkdtempSync(join(tmpdir(), 't2v-convert-'));
  tokenizerGz = join(work, 'bpe_simple_vocab_16e6.txt.gz');
  writeFileSync(tokenizerGz, gzipSync('"bpe_simple_vocab_16e6.txt#version: 0.2\ni n\nt h\n'));
});

after(() => {
  rmSync(work, { recursive: true, force: true });
});

test('float16 storage rounds exactly as numpy does (nearest even, subnormals, overflow, inf)', () => {
  const values = readNpy(join(RELEASE, 'f16_values.npy')).data as Float32Array;
  const bits = readNpy(join(RELEASE, 'f16_bits.npy')).data as Int32Array;
  const ours = toFloat16(values);
  let wrong = 0;
  for (let i = 0; i < values.length; i++) if (ours[i] !== bits[i]) wrong++;
  assert.equal(wrong, 0, `${wrong} of ${values.length} differ`);
  assert.equal(float16Bits(NaN) & 0x7e00, 0x7e00);
  assert.equal(float16Bits(65520), 0x7c00);
  assert.equal(float16Bits(-0), 0x8000);
});

test('permute matches tf.transpose for every layout role', () => {
  const cases: [number[], number[]][] = [[[5, 7], [1, 0]], [[4, 3, 3, 2], [2, 3, 1, 0]], [[6, 5, 3], [2, 1, 0]],
    [[4, 3, 3, 1, 1], [2, 3, 4, 1, 0]], [[2, 3, 4], [0, 2, 1]], [[8], [0]]];
  for (const [shape, perm] of cases) {
    const n = shape.reduce((a, b) => a * b, 1);
    const d = Float32Array.from({ length: n }, (_, i) => Math.sin(i + 1));
    const want = tf.tidy(() => tf.transpose(tf.tensor(d, shape), perm).dataSync());
    assert.deepEqual(Array.from(permute(d, shape, perm)), Array.from(want), `[${shape}] by [${perm}]`);
  }
  // float16 decoding inverts encoding on every half value
  const all = Uint16Array.from({ length: 0x7c00 }, (_, i) => i);
  assert.deepEqual(toFloat16(fromFloat16(all)), all);
});

test('weights writer: whole tensors in bounded groups; tf.io.decodeWeights reads float16 and float32 back', async () => {
  const a = Float32Array.from({ length: 300 }, (_, i) => Math.sin(i) * 3);
  const b = Float32Array.from({ length: 200 }, (_, i) => i - 100.25);
  const c = Float32Array.from({ length: 1000 }, (_, i) => 1 / (i + 1));
  for (const dtype of ['float16', 'float32'] as const) {
    const dir = join(work, `writer-${dtype}`);
    mkdirSync(dir);
    const w = new WeightsWriter(dir, dtype, dtype === 'float16' ? 1000 : 2000);
    await w.add('a', [3, 100], a);
    await w.add('b', [200], b);
    await w.add('c', [10, 10, 10], c);
    await assert.rejects(w.add('a', [300], a), /written twice/);
    const groups = await w.finish();
    // float16: a=600 B, b=400 B -> {a, b}; c=2000 B alone. float32: a=1200 B; b=800 B -> {a, b}; c alone.
    assert.deepEqual(groups.map((g) => g.weights.map((e) => e.name)), [['a', 'b'], ['c']]);
    const doc = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as WeightsFile;
    assert.equal(doc.format, 't2v-weights');
    assert.deepEqual(doc.weightsManifest, groups);
    const per = dtype === 'float16' ? 2 : 4;
    assert.equal(w.bytesWritten, 1500 * per);
    for (const g of groups) {
      assert.deepEqual(g.paths.length, 1);
      const buf = readFileSync(join(dir, g.paths[0]));
      const expected = g.weights.reduce((s, e) => s + e.shape.reduce((x, y) => x * y, 1) * per, 0);
      assert.equal(buf.byteLength, expected);
      for (const e of g.weights) {
        if (dtype === 'float16') assert.deepEqual(e.quantization, { dtype: 'float16', original_dtype: 'float32' });
        else assert.equal(e.quantization, undefined);
      }
      const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
      const decoded = tf.io.decodeWeights(ab, g.weights as tf.io.WeightsManifestEntry[]);
      for (const e of g.weights) {
        const src = { a, b, c }[e.name as 'a' | 'b' | 'c'];
        const got = decoded[e.name];
        assert.deepEqual(got.shape, e.shape);
        const d = got.dataSync();
        for (let i = 0; i < src.length; i++) {
          // float16 keeps 11 significant bits: relative error at most 2^-11
          const tol = dtype === 'float16' ? Math.abs(src[i]) * 2 ** -11 : 0;
          assert.ok(Math.abs(d[i] - src[i]) <= tol, `${e.name}[${i}]: ${d[i]} vs ${src[i]}`);
        }
        got.dispose();
      }
    }
  }
});

/** Every weight of `m` against the source checkpoint, after layout (and float16 rounding when stored so). */
async function assertSameWeights(m: Module, ckptPath: string, prefix: string, dtype: 'float16' | 'float32'): Promise<number> {
  const ckpt = await openCheckpoint(ckptPath);
  let n = 0;
  try {
    for (const [key, p] of m.paramSpecs()) {
      const e = ckpt.entries.get(prefix + key);
      assert.ok(e, `source has ${prefix + key}`);
      let want = toTfLayout(await e.read(), p.torchShape, p.role);
      if (dtype === 'float16') want = fromFloat16(toFloat16(want));
      assert.deepEqual(p.tensor.shape, p.tfShape);
      const got = p.tensor.dataSync();
      for (let i = 0; i < want.length; i++) {
        if (got[i] !== want[i]) assert.fail(`${key}[${i}]: loaded ${got[i]}, source ${want[i]}`);
      }
      n++;
    }
  } finally {
    await ckpt.close();
  }
  return n;
}

test('convertNetworkFile: the VAE from its wrapped file, loaded back exactly (float32) and as float16', async () => {
  const base = tf.memory().numTensors;
  const src = join(RELEASE, FILES.vae);
  for (const dtype of ['float32', 'float16'] as const) {
    const out = join(work, `vae-${dtype}`);
    const s = await convertNetworkFile('vae', src, out, { dtype, prefix: 'first_stage_model.', groupBytes: 256 * 1024 });
    // the two unrelated keys beside first_stage_model.* are left out
    assert.equal(s.skipped, 2);
    const man = (JSON.parse(readFileSync(join(out, 'vae', 'model.json'), 'utf8')) as WeightsFile).weightsManifest;
    assert.ok(man.length > 1, 'several groups');
    assert.equal(man.reduce((a, g) => a + g.weights.length, 0), s.tensors);
    const config = JSON.parse(readFileSync(join(out, 'vae', 'config.json'), 'utf8')) as { ch: number; ch_mult: number[] };
    assert.equal(config.ch, 32);
    assert.deepEqual(config.ch_mult, [1, 2]);
    const m = await loadNetwork(out, 'vae');
    assert.equal(m.countParams(), s.params);
    assert.equal(await assertSameWeights(m, src, 'first_stage_model.', dtype), s.tensors);
    m.disposeWeights();
  }
  assert.equal(tf.memory().numTensors, base);
});

test('t2v convert: the released layout -> model folder (float16 default), every network loads back', async () => {
  const src = sourceFolder('src-ok');
  const out = join(work, 'model');
  const r = t2v(['convert', src, out, '--tokenizer', tokenizerGz]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /converted to .*model \(float16\)/);
  assert.match(r.stdout, /UNet\s+2\.23 M params\s+466 tensors/);
  assert.match(r.stdout, /VAE\s+0\.71 M params/);
  assert.match(r.stdout, /total .* MB written in \d+\.\d s/);
  assert.deepEqual(readdirSync(out).sort(), ['t2v.json', 'text_encoder', 'tokenizer', 'unet', 'vae']);
  const info = JSON.parse(readFileSync(join(out, 't2v.json'), 'utf8')) as ModelInfo;
  assert.equal(info.format, 't2v-model');
  assert.equal(info.version, 1);
  assert.equal(info.dtype, 'float16');
  assert.equal(info.scale_factor, 0.18215);
  assert.deepEqual(info.defaults, { height: 256, width: 256, frames: 12, steps: 50, guidance: 9, fps: 8 });
  assert.deepEqual(info.scheduler, { num_timesteps: 1000, beta_schedule: 'linear_sd', beta_start: 0.00085, beta_end: 0.012, mean_type: 'eps', var_type: 'fixed_small' });
  assert.equal(info.tokenizer, 'tokenizer/bpe_simple_vocab_16e6.txt.gz');
  assert.deepEqual(readFileSync(join(out, info.tokenizer)), readFileSync(tokenizerGz));
  const folder = await readModelFolder(out);
  assert.deepEqual(folder.networks, ['text_encoder', 'unet', 'vae']);
  assert.equal(folder.tokenizer, join(out, 'tokenizer', 'bpe_simple_vocab_16e6.txt.gz'));

  const unetCfg = JSON.parse(readFileSync(join(out, 'unet', 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(unetCfg.dimMult, [1, 2]);
  assert.deepEqual(unetCfg.attnScales, [0.5]);
  const textCfg = JSON.parse(readFileSync(join(out, 'text_encoder', 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(textCfg.width, 1024);
  for (const kind of ['text_encoder', 'unet', 'vae'] as const) {
    const doc = JSON.parse(readFileSync(join(out, kind, 'model.json'), 'utf8')) as WeightsFile;
    const names = doc.weightsManifest.flatMap((g) => g.weights.map((e) => e.name));
    assert.equal(names.length, info.networks[kind]!.tensors);
    assert.ok(doc.weightsManifest.every((g) => g.weights.every((e) => e.quantization?.dtype === 'float16')));
    if (kind === 'text_encoder') assert.ok(!names.some((n) => n.startsWith('visual.') || n === 'logit_scale'));
    if (kind === 'vae') assert.ok(!names.some((n) => n.startsWith('first_stage_model.')));
  }
  const base = tf.memory().numTensors;
  for (const kind of ['text_encoder', 'unet', 'vae'] as const) {
    const m = await loadNetwork(out, kind);
    assert.equal(m.countParams(), info.networks[kind]!.params);
    const srcFile = kind === 'text_encoder' ? CLIP_FILE : join(RELEASE, FILES[kind]);
    await assertSameWeights(m, srcFile, kind === 'vae' ? 'first_stage_model.' : '', 'float16');
    m.disposeWeights();
  }
  assert.equal(tf.memory().numTensors, base);

  // an existing non-empty output is refused before any work
  assertRefused(['convert', src, out, '--tokenizer', tokenizerGz], join(work, 'never'), /model exists and is not empty \(use --force/);
});

test('convertModelScope --dtype float32 --force: weights load back bit-exact; a Hugging Face tokenizer folder is copied', async () => {
  const src = sourceFolder('src-f32', (dir) => {
    mkdirSync(join(dir, 'tokenizer'));
    writeFileSync(join(dir, 'tokenizer', 'vocab.json'), '{"!": 0}');
    writeFileSync(join(dir, 'tokenizer', 'merges.txt'), '#version: 0.2\n');
  });
  const out = join(work, 'model-f32');
  mkdirSync(out);
  writeFileSync(join(out, 'old.txt'), 'replaced by --force');
  await assert.rejects(convertModelScope(src, out, { dtype: 'float32' }), /model-f32 exists and is not empty/);
  const s = await convertModelScope(src, out, { dtype: 'float32', groupBytes: 1 << 20, force: true });
  assert.equal(existsSync(join(out, 'old.txt')), false);
  assert.ok(!readdirSync(work).some((f) => f.includes('.partial-')));
  assert.equal(s.dtype, 'float32');
  assert.equal(s.bytes, 4 * s.networks.reduce((a, n) => a + n.params, 0));
  assert.deepEqual(readdirSync(join(out, 'tokenizer')).sort(), ['merges.txt', 'vocab.json']);
  const folder = await readModelFolder(out);
  assert.equal(folder.tokenizer, join(out, 'tokenizer'));
  for (const g of (JSON.parse(readFileSync(join(out, 'unet', 'model.json'), 'utf8')) as WeightsFile).weightsManifest) {
    assert.ok(statSync(join(out, 'unet', g.paths[0])).size <= 1 << 20 || g.weights.length === 1);
  }
  for (const kind of ['text_encoder', 'unet', 'vae'] as const) {
    const m = await loadNetwork(join(out, kind), kind);
    const srcFile = kind === 'text_encoder' ? CLIP_FILE : join(RELEASE, FILES[kind]);
    await assertSameWeights(m, srcFile, kind === 'vae' ? 'first_stage_model.' : '', 'float32');
    m.disposeWeights();
  }
});

test('bad input: one clear line, exit 1, no output folder', () => {
  const out = join(work, 'bad-out');
  const tok = ['--tokenizer', tokenizerGz];
  assertRefused(['convert', join(work, 'nowhere'), out, ...tok], out, /nowhere: no such folder/);
  assertRefused(['convert', sourceFolder('src-missing', (d) => rmSync(join(d, FILES.vae))), out, ...tok], out,
    /VQGAN_autoencoder\.pth: no such file \(the VAE checkpoint\)/);
  assertRefused(['convert', sourceFolder('src-trunc', (d) => {
    const p = ownCopy(d, FILES.unet);
    truncateSync(p, Math.floor(statSync(p).size / 2));
  }), out, ...tok], out, /text2video_pytorch_model\.pth: .*(truncated|corrupt)/);
  // damage found only when the VAE's tensors are read, after the other two networks are written: still nothing left
  assertRefused(['convert', sourceFolder('src-damaged', (d) => {
    const p = ownCopy(d, FILES.vae);
    const buf = readFileSync(p);
    const headers: number[] = [];
    for (let i = buf.indexOf('PK\x03\x04'); i >= 0; i = buf.indexOf('PK\x03\x04', i + 1)) headers.push(i);
    buf.write('XXXX', headers[headers.length >> 1], 'latin1');
    writeFileSync(p, buf);
  }), out, ...tok], out, /VQGAN_autoencoder\.pth: .*\(reading [a-z_.0-9]+\)$/);
  // the VAE's file where the UNet's should be, and the other way round
  assertRefused(['convert', sourceFolder('src-swapped', (d) => {
    rmSync(join(d, FILES.unet)); rmSync(join(d, FILES.vae));
    symlinkSync(join(RELEASE, FILES.vae), join(d, FILES.unet));
    symlinkSync(join(RELEASE, FILES.unet), join(d, FILES.vae));
  }), out, ...tok], out, /text2video_pytorch_model\.pth: not a ModelScope UNet checkpoint: /);
  assertRefused(['convert', sourceFolder('src-clip-as-vae', (d) => {
    rmSync(join(d, FILES.vae)); symlinkSync(CLIP_FILE, join(d, FILES.vae));
  }), out, ...tok], out, /VQGAN_autoencoder\.pth: not a ModelScope VAE checkpoint: no tensors under first_stage_model\./);
  // configuration.json says the UNet is twice as wide as its tensors
  assertRefused(['convert', sourceFolder('src-contradict', (d) => {
    const p = ownCopy(d, 'configuration.json');
    const cfg = JSON.parse(readFileSync(p, 'utf8')) as { model: { model_cfg: Record<string, unknown> } };
    cfg.model.model_cfg.unet_head_dim = 16;
    writeFileSync(p, JSON.stringify(cfg));
  }), out, ...tok], out, /text2video_pytorch_model\.pth: not a ModelScope UNet checkpoint: .*unet_head_dim/);
  assertRefused(['convert', sourceFolder('src-notok'), out], out, /no tokenizer in .*bpe_simple_vocab_16e6\.txt\.gz.*vocab\.json \+ merges\.txt/);
  assertRefused(['convert', sourceFolder('src-dtype'), out, ...tok, '--dtype', 'int8'], out, /unknown --dtype int8; valid: float16, float32/);
  mkdirSync(join(work, 'src-empty'));
  assertRefused(['convert', join(work, 'src-empty'), out], out, /src-empty: not a model folder \(no configuration\.json .*no model_index\.json/);
  assertRefused(['convert', sourceFolder('src-variant'), out, ...tok, '--variant', 'fp16'], out, /--variant applies to the diffusers layout only/);
  assertRefused(['convert', sourceFolder('src-garbage', (d) => {
    rmSync(join(d, FILES.unet)); writeFileSync(join(d, FILES.unet), 'this is not a checkpoint');
  }), out, ...tok], out, /text2video_pytorch_model\.pth: not a PyTorch/);
});

test('t2v convert detects the diffusers layout (model_index.json) and converts it with the preferred variant', () => {
  const out = join(work, 'from-diffusers');
  const r = t2v(['convert', join(FIXTURES, 'diffusers', 'hub'), out, '--variant', 'fp16', '--dtype', 'float32']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /converted to .*from-diffusers \(float32\)/);
  const info = JSON.parse(readFileSync(join(out, 't2v.json'), 'utf8')) as { source: { layout: string; variant: string } };
  assert.deepEqual([info.source.layout, info.source.variant], ['diffusers', 'fp16']);
  for (const k of ['text_encoder', 'unet', 'vae']) assert.ok(existsSync(join(out, k, 'model.json')), k);
  assert.ok(existsSync(join(out, 'tokenizer', 'vocab.json')));
  const refused = join(work, 'refused');
  assertRefused(['convert', join(FIXTURES, 'diffusers', 'hub'), refused, '--tokenizer', tokenizerGz], refused, /--tokenizer applies to the ModelScope layout only/);
});

test('a folder that is not a converted model is a clear error', async () => {
  await assert.rejects(readModelFolder(RELEASE), /is not a converted t2v model \(no t2v\.json\); make one with `t2v convert`/);
  await assert.rejects(loadNetwork(RELEASE, 'unet'), /is not a converted t2v model/);
  await assert.rejects(readModelFolder(join(work, 'nowhere')), /no such folder/);
});

test('--tokenizer DIR: a folder holding bpe_simple_vocab_16e6.txt.gz is that file; a folder with neither tokenizer is refused', async () => {
  const dir = join(work, 'tok-dir');
  mkdirSync(dir);
  copyFileSync(tokenizerGz, join(dir, 'bpe_simple_vocab_16e6.txt.gz'));
  assert.deepEqual(await findTokenizer(join(work, 'anywhere'), dir), { kind: 'gz', path: join(dir, 'bpe_simple_vocab_16e6.txt.gz') });
  const empty = join(work, 'tok-empty');
  mkdirSync(empty);
  await assert.rejects(findTokenizer(join(work, 'anywhere'), empty), /tok-empty has no vocab\.json and no bpe_simple_vocab_16e6\.txt\.gz/);
  const out = join(work, 'model-tokdir');
  const r = t2v(['convert', sourceFolder('src-tokdir'), out, '--tokenizer', dir]);
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(readFileSync(join(out, 't2v.json'), 'utf8')) as { tokenizer: string };
  assert.equal(info.tokenizer, 'tokenizer/bpe_simple_vocab_16e6.txt.gz');
  assert.deepEqual(readFileSync(join(out, info.tokenizer)), readFileSync(tokenizerGz));
  rmSync(empty, { recursive: true });
  rmSync(dir, { recursive: true });
});
