import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { crc32 } from '../converters/crc32.js';
import { openCheckpoint } from '../converters/open.js';
import { readZipDirectory, type ZipEntry } from '../converters/torch-zip.js';
import { FIXTURES, ROOT } from './helpers.js';

// Issue 17, defect 2: a byte flipped inside a checkpoint's tensor data is caught by the zip entry's CRC-32 (checked
// on the bytes the reader reads anyway), in one line naming the entry.

const scratch = mkdtempSync(join(tmpdir(), 't2v-crc-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

async function zipEntries(path: string): Promise<Map<string, ZipEntry>> {
  const fh = await open(path, 'r');
  try {
    return await readZipDirectory(fh, path, (await fh.stat()).size);
  } finally {
    await fh.close();
  }
}

/** Where an entry's data starts: after its local header (30 bytes, the name, the extra field). */
function dataStart(bytes: Buffer, e: ZipEntry): number {
  return e.localHeaderOffset + 30 + bytes.readUInt16LE(e.localHeaderOffset + 26) + bytes.readUInt16LE(e.localHeaderOffset + 28);
}

async function readAll(path: string): Promise<void> {
  const ckpt = await openCheckpoint(path);
  try {
    for (const e of ckpt.entries.values()) await e.read();
  } finally {
    await ckpt.close();
  }
}

test('crc32 equals zlib\'s and the standard check value', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
  const data = new Uint8Array(1000).map((_, i) => (i * 31) & 0xff);
  assert.equal(crc32(data.subarray(500), crc32(data.subarray(0, 500))), crc32(data));
});

test('the intact fixtures read; every stored entry\'s CRC-32 matches the zip directory', async () => {
  for (const f of [join(FIXTURES, 'release', 'VQGAN_autoencoder.pth'), join(FIXTURES, 'readers', 'views.pth')]) {
    await readAll(f);
    const bytes = readFileSync(f);
    for (const e of (await zipEntries(f)).values()) {
      const s = dataStart(bytes, e);
      assert.equal(crc32(bytes.subarray(s, s + e.compressedSize)), e.crc32, e.name);
    }
  }
});

test('30 byte flips inside tensor data: each is refused, naming the damaged entry', async () => {
  const src = join(FIXTURES, 'release', 'VQGAN_autoencoder.pth');
  const bytes = readFileSync(src);
  const data = [...(await zipEntries(src)).values()].filter((e) => /\/data\/\d+$/.test(e.name) && e.size > 0);
  assert.ok(data.length > 30);
  const mutated = join(scratch, 'flip.pth');
  for (let i = 0; i < 30; i++) {
    const e = data[(i * 7919) % data.length];
    const at = dataStart(bytes, e) + ((i * 104729) % e.size);
    const copy = Buffer.from(bytes);
    copy[at] ^= 1 << (i % 8);
    writeFileSync(mutated, copy);
    await assert.rejects(readAll(mutated), (err: Error) => {
      assert.equal(err.constructor, Error);
      assert.match(err.message, new RegExp(`^${mutated}: corrupt zip: CRC-32 of '${e.name}' is [0-9a-f]{8}, the zip directory says [0-9a-f]{8} \\(the file is damaged; download it again\\)$`));
      return true;
    });
  }
});

test('a flip in data.pkl fails at open; one in a storage shared by views fails on the first view read', async () => {
  for (const [file, pick] of [['release/VQGAN_autoencoder.pth', /data\.pkl$/], ['readers/views.pth', /\/data\/\d+$/]] as const) {
    const src = join(FIXTURES, file);
    const bytes = Buffer.from(readFileSync(src));
    const e = [...(await zipEntries(src)).values()].find((x) => pick.test(x.name))!;
    bytes[dataStart(bytes, e) + Math.floor(e.size / 2)] ^= 0x40;
    const mutated = join(scratch, `m-${file.replace('/', '-')}`);
    writeFileSync(mutated, bytes);
    await assert.rejects(readAll(mutated), new RegExp(`CRC-32 of '${e.name.replace(/\./g, '\\.')}' is`));
  }
});

test('t2v convert of a checkpoint with one flipped byte: exit 1, one line naming the entry, no output', () => {
  const src = join(scratch, 'release');
  const out = join(scratch, 'out');
  rmSync(src, { recursive: true, force: true });
  mkdirSync(src);
  for (const f of ['configuration.json', 'text2video_pytorch_model.pth']) {
    symlinkSync(join(FIXTURES, 'release', f), join(src, f));
  }
  symlinkSync(join(FIXTURES, 'e2e', 'tiny', 'open_clip_pytorch_model.bin'), join(src, 'open_clip_pytorch_model.bin'));
  const vae = join(src, 'VQGAN_autoencoder.pth');
  copyFileSync(join(FIXTURES, 'release', 'VQGAN_autoencoder.pth'), vae);
  const bytes = readFileSync(vae);
  bytes[bytes.length - 40_000] ^= 0x08; // inside the last storages, before the central directory
  writeFileSync(vae, bytes);
  const tok = join(scratch, 'bpe_simple_vocab_16e6.txt.gz');
  writeFileSync(tok, gzipSync('"bpe_simple_vocab_16e6.txt#version: 0.2\ni n\nt h\n'));
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'bin', 't2v-dev.ts'), 'convert', src, out, '--tokenizer', tok],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, T2V_BACKEND: 'cpu' } });
  assert.equal(r.status, 1, r.stdout + r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^t2v: .*VQGAN_autoencoder\.pth: corrupt zip: CRC-32 of '[^']+\/data\/\d+' is [0-9a-f]{8}, the zip directory says/);
  assert.equal(existsSync(out), false);
  assert.deepEqual(readdirSync(scratch).filter((f) => f.startsWith('.out')), []);
});
