import { existsSync, statSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelSource } from './source.js';

/** A model folder on disk (Node). Browser builds get fs-source.browser.ts instead. */
export function fsSource(dir: string): ModelSource {
  const full = (p: string) => (p === '' ? dir : join(dir, ...p.split('/')));
  return {
    location: dir,
    describe: full,
    async problem() {
      return existsSync(dir) && statSync(dir).isDirectory() ? null : 'no such folder';
    },
    async readText(p) {
      const f = full(p);
      if (!existsSync(f) || !statSync(f).isFile()) return null;
      return readFile(f, 'utf8');
    },
    async readBytes(p, expected, onBytes) {
      const buf = await readWhole(full(p), expected);
      onBytes?.(buf.byteLength, false);
      return buf;
    },
  };
}

/** Reads a whole file into a fresh ArrayBuffer (Node's small-file Buffers share a pool). */
async function readWhole(path: string, expected: number): Promise<ArrayBuffer> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    if (expected >= 0 && size !== expected) throw new Error(`${path}: ${size} bytes, the manifest says ${expected}`);
    const buf = new ArrayBuffer(size);
    const view = new Uint8Array(buf);
    let off = 0;
    while (off < size) {
      const { bytesRead } = await fh.read(view, off, size - off, off);
      if (bytesRead === 0) throw new Error(`${path}: unexpected end of file`);
      off += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}
