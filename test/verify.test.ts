import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import { convertModelScope } from '../converters/modelscope.js';
import type { WeightsFile } from '../src/io/weights-manifest.js';
import { command as verifyCommand } from '../src/cli/verify.js';
import { loadNetwork, readModelFolder } from '../src/io/model-folder.js';
import { verifyModel } from '../src/io/verify.js';
import { TextToVideo } from '../src/pipeline/text2video.js';
import { runCli } from './cli-run.js';
import { CLIP_VOCAB, FIXTURES, hasClipVocab } from './helpers.js';

// Issue 17, defects 1 (checksums, validated configs, garbage weights), 5 (manifest paths) and 7 (folder modes), on
// the tiny random model of test/fixtures/e2e/tiny converted once.

let work: string;
let model: string;
let n = 0;

before(async () => {
  await tf.setBackend('cpu');
  work = mkdtempSync(join(tmpdir(), 't2v-verify-'));
  model = join(work, 'model');
  await convertModelScope(join(FIXTURES, 'e2e', 'tiny'), model, { tokenizer: hasClipVocab ? CLIP_VOCAB : undefined, dtype: 'float16' });
});

after(() => rmSync(work, { recursive: true, force: true }));

/** A copy of the converted model that a test may damage. */
function copy(): string {
  const dir = join(work, `copy${n++}`);
  cpSync(model, dir, { recursive: true });
  return dir;
}

function manifest(dir: string, net = 'unet'): WeightsFile {
  return JSON.parse(readFileSync(join(dir, net, 'model.json'), 'utf8')) as WeightsFile;
}

async function runVerify(dir: string): Promise<{ error: string | null; out: string[] }> {
  const out: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => { out.push(a.join(' ')); };
  let error: string | null = null;
  try {
    await yargs().command(verifyCommand).fail((msg, err) => { throw err ?? new Error(msg); }).strict().parseAsync(['verify', dir]);
  } catch (err) {
    error = (err as Error).message;
  } finally {
    console.log = log;
  }
  return { error, out };
}

test('converted shards carry a sha256 each; verifyModel and `t2v verify` pass an intact folder', async () => {
  for (const net of ['text_encoder', 'unet', 'vae']) {
    for (const g of manifest(model, net).weightsManifest) {
      assert.equal(g.sha256?.length, g.paths.length);
      assert.match(g.sha256![0], /^[0-9a-f]{64}$/);
    }
  }
  const r = await verifyModel(model);
  assert.deepEqual(r.problems, []);
  const shards = ['text_encoder', 'unet', 'vae'].reduce((a, net) => a + manifest(model, net).weightsManifest.length, 0);
  assert.ok(shards >= 3);
  assert.equal(r.shards.length, shards);
  const v = await runVerify(model);
  assert.equal(v.error, null);
  assert.match(v.out.join('\n'), new RegExp(`: ${shards} shards, 129\\.\\d MB, every sha256 matches its manifest$`));
});

test('one flipped byte in a shard: verify names the shard, load with verify: true refuses it, load without does not', async () => {
  const dir = copy();
  const shard = join(dir, 'unet', 'group1-shard1of1.bin');
  const bytes = readFileSync(shard);
  bytes[1000] ^= 0x10;
  writeFileSync(shard, bytes);
  const r = await verifyModel(dir);
  assert.equal(r.problems.length, 1);
  assert.match(r.problems[0], /unet\/group1-shard1of1\.bin: sha256 [0-9a-f]{12}\.\.\. differs from the manifest's [0-9a-f]{12}\.\.\. \(damaged\)/);
  const v = await runVerify(dir);
  assert.match(v.error ?? '', /unet\/group1-shard1of1\.bin: sha256 .* \(damaged\)$/);
  await assert.rejects(loadNetwork(dir, 'unet', { verify: true }), /group1-shard1of1\.bin: sha256 [0-9a-f]+ differs from the manifest's [0-9a-f]+: the file is damaged; convert the model again/);
  const base = tf.memory().numTensors;
  (await loadNetwork(dir, 'unet')).disposeWeights();
  assert.equal(tf.memory().numTensors, base);
  // a missing shard and one of the wrong size are listed too, all problems at once
  rmSync(join(dir, 'vae', 'group1-shard1of1.bin'));
  writeFileSync(join(dir, 'text_encoder', 'group1-shard1of1.bin'), 'short');
  const r2 = await verifyModel(dir);
  assert.equal(r2.problems.length, 3);
  assert.match(r2.problems.join('\n'), /text_encoder\/group1-shard1of1\.bin: 5 bytes, its weights need \d+/);
  assert.match(r2.problems.join('\n'), /vae\/group1-shard1of1\.bin: missing/);
  assert.match((await runVerify(dir)).error ?? '', /\(and 2 more problems\)$/);
});

test('a folder converted before checksums: verify says so; verify: true refuses to load it unverified', async () => {
  const dir = copy();
  const m = manifest(dir, 'vae');
  for (const g of m.weightsManifest) delete g.sha256;
  writeFileSync(join(dir, 'vae', 'model.json'), JSON.stringify(m));
  assert.match((await verifyModel(dir)).problems.join('\n'), /vae\/group1-shard1of1\.bin: no sha256 in model\.json/);
  await assert.rejects(loadNetwork(dir, 'vae', { verify: true }), /has no sha256 of its shards .*convert the model again/);
  (await loadNetwork(dir, 'vae')).disposeWeights();
});

test('t2v.json and config.json are checked by type and range on load, naming the file and the field', async () => {
  const cases: [string, (dir: string) => void, RegExp][] = [
    ['{} as the UNet config', (d) => writeFileSync(join(d, 'unet', 'config.json'), '{}'), /unet\/config\.json: field "inDim" is missing/],
    ['a string width', (d) => {
      const c = JSON.parse(readFileSync(join(d, 'unet', 'config.json'), 'utf8'));
      writeFileSync(join(d, 'unet', 'config.json'), JSON.stringify({ ...c, dimMult: [1, 'x'] }));
    }, /unet\/config\.json: field "dimMult" must be a list of 1\.\.16 values, each an integer in 1\.\.64, got \[1, "x"\]/],
    ['a corrupt config.json', (d) => writeFileSync(join(d, 'vae', 'config.json'), '{"ch": 3'), /vae\/config\.json: not valid JSON/],
    ['an absurd width', (d) => {
      const c = JSON.parse(readFileSync(join(d, 'text_encoder', 'config.json'), 'utf8'));
      writeFileSync(join(d, 'text_encoder', 'config.json'), JSON.stringify({ ...c, width: 1e12 }));
    }, /text_encoder\/config\.json: field "width" must be an integer in 1\.\.1048576, got 1000000000000/],
  ];
  for (const [what, mutate, pattern] of cases) {
    const dir = copy();
    mutate(dir);
    const kind = /unet/.test(pattern.source) ? 'unet' : /vae/.test(pattern.source) ? 'vae' : 'text_encoder';
    await assert.rejects(loadNetwork(dir, kind), pattern, what);
    assert.match((await verifyModel(dir)).problems.join('\n'), pattern, what);
    rmSync(dir, { recursive: true });
  }
  const info = JSON.parse(readFileSync(join(model, 't2v.json'), 'utf8'));
  const infoCases: [Record<string, unknown>, RegExp][] = [
    [{ scale_factor: 'x' }, /t2v\.json: field "scale_factor" must be a number in \(0, 1000\], got "x"/],
    [{ defaults: { ...info.defaults, guidance: 1e308 } }, /t2v\.json: field "defaults\.guidance" must be a number in \[-10000, 10000\], got 1e\+308/],
    [{ scheduler: { ...info.scheduler, beta_end: -1 } }, /t2v\.json: field "scheduler\.beta_end" must be a number in \(0, 1\]/],
    [{ dtype: 'int8' }, /t2v\.json: field "dtype" must be one of "float16", "float32", got "int8"/],
    [{ tokenizer: '../../etc/passwd' }, /t2v\.json: path "\.\.\/\.\.\/etc\/passwd" leaves the model folder/],
  ];
  const dir = copy();
  for (const [patch, pattern] of infoCases) {
    writeFileSync(join(dir, 't2v.json'), JSON.stringify({ ...info, ...patch }));
    await assert.rejects(readModelFolder(dir), pattern);
    await assert.rejects(TextToVideo.load(dir), pattern);
    await assert.rejects(verifyModel(dir), pattern);
  }
});

test('manifest paths outside the model folder (../, absolute) are refused before anything is read', async () => {
  for (const p of ['../../../etc/passwd', '/etc/passwd', '../unet/group1-shard1of1.bin', 'sub/../../vae/x.bin']) {
    const dir = copy();
    const m = manifest(dir);
    m.weightsManifest[0].paths = [p];
    writeFileSync(join(dir, 'unet', 'model.json'), JSON.stringify(m));
    await assert.rejects(loadNetwork(dir, 'unet'), /unet\/model\.json: path ".*" (is absolute|leaves the model folder); a model folder may only name files inside itself/, p);
    assert.match((await verifyModel(dir)).problems[0], /(is absolute|leaves the model folder)/);
    rmSync(dir, { recursive: true });
  }
});

test('a converted folder has the usual modes: 0755 folders, 0644 files (under umask 022), not 0700', () => {
  const mask = process.umask();
  const modes = new Set<string>();
  const walk = (p: string): void => {
    const s = statSync(p);
    modes.add(`${s.isDirectory() ? 'd' : 'f'}${(s.mode & 0o777).toString(8)}`);
    if (s.isDirectory()) for (const f of readdirSync(p)) walk(join(p, f));
  };
  walk(model);
  assert.deepEqual([...modes].sort(), [`d${(0o777 & ~mask).toString(8)}`, `f${(0o666 & ~mask).toString(8)}`].sort());
});

test('a shard of random bytes: generate fails with the NaN line naming t2v verify, exit 1, nothing written',
  { skip: hasClipVocab ? false : `the CLIP vocabulary is absent (${CLIP_VOCAB})` }, async () => {
    const dir = copy();
    const shard = join(dir, 'unet', 'group1-shard1of1.bin');
    const size = statSync(shard).size;
    const rnd = Buffer.alloc(size);
    let s = 12345;
    for (let i = 0; i < size; i++) { s = (s * 1103515245 + 12345) >>> 0; rnd[i] = s >>> 24; }
    writeFileSync(shard, rnd);
    const out = join(work, 'v.gif');
    const r = await runCli(['generate', 'a cat', '--model', dir, '--out', out, '--backend', 'cpu', '--steps', '2', '--frames', '2',
      '--height', '32', '--width', '32', '--seed', '1', '--no-progress']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal(r.stderr.split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^t2v: the latents became NaN\/Inf at step 1 of 2: the UNet's weights may be corrupt \(run `t2v verify .*copy\d+`\)/);
    assert.equal(existsSync(out), false);
    assert.deepEqual(readdirSync(work).filter((f) => f.includes('v.gif')), []);
    assert.match((await runVerify(dir)).error ?? '', /unet\/group1-shard1of1\.bin: sha256/);
  });
