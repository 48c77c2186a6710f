/** Opens a checkpoint file, choosing the reader by content: PyTorch zip, legacy PyTorch, or safetensors. */
import { open, stat } from 'node:fs/promises';
import type { Checkpoint } from './checkpoint.js';
import { openSafetensors } from './safetensors.js';
import { openTorchLegacy } from './torch-legacy.js';
import { openTorchZip, type ReaderOptions } from './torch-zip.js';

export type { ReaderOptions } from './torch-zip.js';

export async function openCheckpoint(path: string, opts: ReaderOptions = {}): Promise<Checkpoint> {
  let head: Uint8Array;
  try {
    // stat before open: opening a FIFO or device would block or never end.
    const st = await stat(path);
    if (!st.isFile()) throw new Error(st.isDirectory() ? 'is a directory, not a checkpoint file' : 'not a regular file');
    const fh = await open(path, 'r');
    try {
      head = new Uint8Array(16);
      const { bytesRead } = await fh.read(head, 0, 16, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new Error(`${path}: cannot open checkpoint: ${why}`);
  }
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && (head[2] === 3 || head[2] === 5) && (head[3] === 4 || head[3] === 6)) {
    return openTorchZip(path, opts);
  }
  // The legacy torch.save format starts with a pickled magic number (LONG1, 10 bytes; protocol 4+ frames it).
  const long1At = head[2] === 0x95 ? 11 : 2;
  if (head.length >= long1At + 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5
    && head[long1At] === 0x8a && head[long1At + 1] === 10) {
    return openTorchLegacy(path, opts);
  }
  if (head.length >= 9) {
    const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
    // A plausible header length and a '{': safetensors (the reader then says what is wrong, e.g. truncation).
    if (n >= 2n && n <= 100n * 2n ** 20n && head[8] === 0x7b /* { */) return openSafetensors(path, opts);
  }
  throw new Error(`${path}: not a PyTorch zip checkpoint (.pth/.bin from torch.save) nor a safetensors file`);
}
