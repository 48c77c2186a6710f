import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { CLIPTokenizer, byteAlphabet, cleanText, htmlUnescape } from '../src/pipeline/tokenizer.js';
import { CLIP_VOCAB, FIXTURES, hasClipVocab } from './helpers.js';

interface Case { text: string; clean: string; ids: number[] }
const fixture = JSON.parse(readFileSync(join(FIXTURES, 'tokenizer', 'open_clip_ids.json'), 'utf8')) as { cases: Case[] };
before(async () => { await tf.setBackend('cpu'); });

const skip = hasClipVocab ? false : `the CLIP vocabulary is absent (${CLIP_VOCAB})`;

function mismatches(tok: CLIPTokenizer): string[] {
  const bad: string[] = [];
  for (const c of fixture.cases) {
    const ids = tok.encode(c.text);
    if (ids.join(',') !== c.ids.join(',')) bad.push(`${JSON.stringify(c.text)}: ours ${ids.filter(Boolean)} ref ${c.ids.filter(Boolean)}`);
  }
  return bad;
}

test('fixture covers the cases the issue asks for', () => {
  const texts = fixture.cases.map((c) => c.text);
  assert.ok(texts.length >= 200);
  assert.ok(texts.includes(''));
  assert.ok(fixture.cases.some((c) => c.ids[76] === 49407), 'a prompt longer than 77 tokens');
  assert.ok(texts.some((t) => /\p{Script=Han}/u.test(t)) && texts.some((t) => /\p{Extended_Pictographic}/u.test(t)));
  assert.ok(texts.some((t) => /&[a-z]+;/.test(t)));
});

test('text cleaning equals open_clip (ftfy, html.unescape twice, whitespace, lower) on every fixture prompt', () => {
  const bad = fixture.cases.filter((c) => cleanText(c.text) !== c.clean)
    .map((c) => `${JSON.stringify(c.text)} -> ${JSON.stringify(cleanText(c.text))}, ref ${JSON.stringify(c.clean)}`);
  assert.deepEqual(bad, []);
});

test('ids equal open_clip.tokenize on every fixture prompt (bpe_simple_vocab_16e6.txt.gz)', { skip }, async () => {
  const tok = await CLIPTokenizer.load(CLIP_VOCAB);
  assert.equal(tok.sotToken, 49406);
  assert.equal(tok.eotToken, 49407);
  assert.equal(tok.vocabSize, 49408);
  assert.deepEqual(mismatches(tok), []);
});

test('Hugging Face layout (vocab.json + merges.txt) gives the same ids', { skip }, async () => {
  // Write the folder as the released tokenizer/ folder spells it, from OpenCLIP's merge list.
  const lines = gunzipSync(readFileSync(CLIP_VOCAB)).toString('utf8').split('\n').slice(1, 49152 - 256 - 2 + 1);
  const bytes = byteAlphabet();
  const vocab: Record<string, number> = {};
  const list = [...bytes, ...bytes.map((b) => `${b}</w>`), ...lines.map((l) => l.split(' ').join('')), '<|startoftext|>', '<|endoftext|>'];
  list.forEach((t, i) => { vocab[t] = i; });
  const dir = mkdtempSync(join(tmpdir(), 't2v-tok-'));
  try {
    writeFileSync(join(dir, 'vocab.json'), JSON.stringify(vocab));
    writeFileSync(join(dir, 'merges.txt'), `#version: 0.2\n${lines.join('\n')}\n`);
    const tok = await CLIPTokenizer.load(dir);
    assert.equal(tok.sotToken, 49406);
    assert.equal(tok.eotToken, 49407);
    assert.equal(tok.vocabSize, 49408);
    assert.deepEqual(mismatches(tok), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tokenize / tokenizeTensor / decode', { skip }, async () => {
  const tok = await CLIPTokenizer.load(CLIP_VOCAB);
  const flat = tok.tokenize(['a red car', '']);
  assert.equal(flat.length, 2 * 77);
  assert.deepEqual(Array.from(flat.subarray(77, 80)), [49406, 49407, 0]);
  const t = tok.tokenizeTensor(['a red car', '']);
  assert.deepEqual(t.shape, [2, 77]);
  assert.equal(t.dtype, 'int32');
  assert.deepEqual(Array.from(t.dataSync()), Array.from(flat));
  t.dispose();
  assert.equal(tok.decode(tok.encodeText('A Red car, driving!')), 'a red car , driving ! ');
});

test('html.unescape follows Python on edge cases', () => {
  assert.equal(htmlUnescape('&amp;amp; &notit; &ampx &#x41 &#150; &#1; &#xD800; &bogus;'), '&amp; ¬it; &x A \u2013  \ufffd &bogus;');
});

test('a missing or foreign vocabulary fails with a clear message', async () => {
  await assert.rejects(CLIPTokenizer.load('/nonexistent/bpe.txt.gz'), /CLIP tokenizer not found at \/nonexistent/);
  const dir = mkdtempSync(join(tmpdir(), 't2v-tok-'));
  try {
    await assert.rejects(CLIPTokenizer.load(dir), /neither vocab.json \+ merges.txt nor bpe_simple_vocab/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(tf.memory().numTensors, 0);
});
