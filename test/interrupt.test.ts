import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { convertModelScope } from '../converters/modelscope.js';
import { runCli } from './cli-run.js';
import { CLIP_VOCAB, FIXTURES, ROOT, hasClipVocab } from './helpers.js';

// Issue 17, defect 4: an interrupt while ffmpeg encodes kills ffmpeg and leaves no temporary file; a run that fails
// after --save-latents was written removes it; --out and --save-latents on one path is an error; a killed convert's
// .partial-* folder is removed by the next convert into that folder.

const skip = hasClipVocab ? false : `the CLIP vocabulary is absent (${CLIP_VOCAB})`;
let work: string;
let model: string;

before(async () => {
  await tf.setBackend('cpu');
  work = mkdtempSync(join(tmpdir(), 't2v-interrupt-'));
  model = join(work, 'model');
  if (hasClipVocab) await convertModelScope(join(FIXTURES, 'e2e', 'tiny'), model, { tokenizer: CLIP_VOCAB });
});

after(() => rmSync(work, { recursive: true, force: true }));

/** An "ffmpeg" that writes its pid, creates its output (the last argument) and then hangs, as a slow encode would. */
function hangingFfmpeg(dir: string): { path: string; pidFile: string } {
  const pidFile = join(dir, 'ffmpeg.pid');
  const path = join(dir, 'ffmpeg-hangs.sh');
  writeFileSync(path, `#!/bin/sh\nfor a; do last="$a"; done\n: > "$last"\necho $$ > "${pidFile}.tmp" && mv "${pidFile}.tmp" "${pidFile}"\nexec sleep 120\n`);
  chmodSync(path, 0o755);
  return { path, pidFile };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const gen = ['--backend', 'cpu', '--steps', '1', '--frames', '2', '--height', '32', '--width', '32', '--seed', '1', '--no-progress'];

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  test(`${sig} while ffmpeg encodes: ffmpeg is killed, no temporary file, no video, no latents`, { skip, timeout: 120_000 }, async () => {
    const dir = join(work, sig);
    mkdirSync(dir);
    const ff = hangingFfmpeg(dir);
    const out = join(dir, 'v.mp4');
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bin', 't2v-dev.ts'), 'generate', 'a cat', '--model', model,
      '--out', out, '--save-latents', join(dir, 'l.npy'), ...gen], { cwd: ROOT, env: { ...process.env, FFMPEG_PATH: ff.path }, stdio: 'ignore' });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
    const t0 = Date.now();
    while (!existsSync(ff.pidFile)) {
      assert.ok(Date.now() - t0 < 100_000, 'ffmpeg never started');
      await new Promise((r) => setTimeout(r, 100));
    }
    const ffPid = Number(readFileSync(ff.pidFile, 'utf8'));
    assert.ok(alive(ffPid));
    assert.equal(readdirSync(dir).filter((f) => f.endsWith('.tmp')).length, 1, 'ffmpeg is writing the temporary file');
    child.kill(sig);
    const end = await exited;
    assert.equal(end.signal, sig, `t2v dies of ${sig} (code ${end.code})`);
    for (let i = 0; i < 50 && alive(ffPid); i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(alive(ffPid), false, 'ffmpeg was killed');
    assert.deepEqual(readdirSync(dir).sort(), ['ffmpeg-hangs.sh', 'ffmpeg.pid'], 'no video, latents or temporary file left');
  });
}

test('a run that fails after --save-latents was written removes the latents and the video', { skip }, async () => {
  const dir = join(work, 'fails');
  mkdirSync(dir);
  // the contact sheet is written last; a folder on its path makes the final rename fail after the checks passed
  mkdirSync(join(dir, 's.png'));
  writeFileSync(join(dir, 's.png', 'keep'), '');
  const r = await runCli(['generate', 'a cat', '--model', model, '--out', join(dir, 'v.gif'), '--save-latents', join(dir, 'l.npy'),
    '--contact-sheet', join(dir, 's.png'), ...gen]);
  assert.equal(r.code, 1, r.stdout);
  assert.equal(r.stderr.split('\n').length, 1);
  assert.match(r.stderr, /^t2v: .*s\.png/);
  assert.deepEqual(readdirSync(dir), ['s.png'], 'no latents, no video, no temporary file');
  // the same run without the obstacle writes all three
  rmSync(join(dir, 's.png'), { recursive: true });
  const r2 = await runCli(['generate', 'a cat', '--model', model, '--out', join(dir, 'v.gif'), '--save-latents', join(dir, 'l.npy'),
    '--contact-sheet', join(dir, 's.png'), ...gen]);
  assert.equal(r2.code, 0, r2.stderr);
  assert.deepEqual(readdirSync(dir).sort(), ['l.npy', 's.png', 'v.gif']);
});

test('--out, --save-latents and --contact-sheet must be three paths, refused before loading', { skip }, async () => {
  const dir = join(work, 'same');
  mkdirSync(dir);
  for (const [args, pattern] of [
    [['--out', join(dir, 'a.png'), '--save-latents', join(dir, 'a.png')], /^t2v: --out and --save-latents are the same path/],
    [['--out', join(dir, 'a.png'), '--contact-sheet', join(dir, '.', 'a.png')], /^t2v: --out and --contact-sheet are the same path/],
    [['--out', join(dir, 'v.gif'), '--save-latents', join(dir, 's.png'), '--contact-sheet', join(dir, 's.png')],
      /^t2v: --save-latents and --contact-sheet are the same path/],
  ] as [string[], RegExp][]) {
    const r = await runCli(['generate', 'p', '--model', model, ...args]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.split('\n').length, 1);
  }
  assert.deepEqual(readdirSync(dir), []);
});

test('a .<out>.partial-* left by a killed convert is removed by the next convert into that folder; a live one is kept', async () => {
  const dir = join(work, 'partials');
  mkdirSync(dir);
  const dead = join(dir, '.m.partial-4194999-0a1b2c3d');
  const oldStyle = join(dir, '.m.partial-Ab12Cd');
  const live = join(dir, `.m.partial-${process.ppid}-feedbeef`);
  const other = join(dir, '.n.partial-4194999-00000000');
  for (const d of [dead, oldStyle, live, other, `${dead}.old`]) {
    mkdirSync(d);
    writeFileSync(join(d, 't2v.json'), '{}');
  }
  const tok = join(work, 'bpe_simple_vocab_16e6.txt.gz');
  writeFileSync(tok, gzipSync('"bpe_simple_vocab_16e6.txt#version: 0.2\ni n\nt h\n'));
  const src = join(FIXTURES, 'release');
  const seen: string[] = [];
  // the release fixture has no text encoder: link one in
  const folder = join(work, 'release-src');
  mkdirSync(folder);
  for (const f of readdirSync(src)) symlinkSync(join(src, f), join(folder, f));
  symlinkSync(join(FIXTURES, 'e2e', 'tiny', 'open_clip_pytorch_model.bin'), join(folder, 'open_clip_pytorch_model.bin'));
  await convertModelScope(folder, join(dir, 'm'), { tokenizer: tok, onStale: (r) => seen.push(...r) });
  assert.deepEqual(seen.sort(), [dead, `${dead}.old`, oldStyle].sort());
  assert.deepEqual(readdirSync(dir).sort(), [live, other, join(dir, 'm')].map((p) => p.slice(dir.length + 1)).sort());
});
