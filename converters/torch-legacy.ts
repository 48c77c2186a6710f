/**
 * The legacy `torch.save` format (before 1.6, or `_use_new_zipfile_serialization=False`): five pickles in a row
 * (magic number, protocol version 1001, sys_info, the object with storage persistent ids, the sorted storage keys),
 * then each storage as an int64 element count and its raw bytes. The same restricted unpickler reads the pickles;
 * the storages' offsets follow from their counts, and each tensor is read when asked for.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Checkpoint } from './checkpoint.js';
import { DTYPE_BYTES, PyDict, type StorageRef, unpickleAt } from './pickle.js';
import {
  DEFAULT_MAX_TENSOR_ELEMENTS, asFileError, fileError, flattenStateDict, lazyCheckpoint, readExact, storageFromPid,
  type ReaderOptions,
} from './torch-zip.js';

const MAGIC = 0x1950a86a20f9469cfc6cn;
const FIRST_READ = 4 * 2 ** 20;
const MAX_PICKLES = 512 * 2 ** 20;

export async function openTorchLegacy(path: string, opts: ReaderOptions = {}): Promise<Checkpoint> {
  const fh = await open(path, 'r');
  try {
    return await readLegacy(fh, path, opts.maxTensorElements ?? DEFAULT_MAX_TENSOR_ELEMENTS);
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw asFileError(path, err);
  }
}

async function readLegacy(fh: FileHandle, path: string, maxElements: number): Promise<Checkpoint> {
  const fileSize = (await fh.stat()).size;
  // The pickles come first and their total length is not recorded: read a prefix, and a longer one if they
  // run past it.
  for (let len = Math.min(fileSize, FIRST_READ); ; len = Math.min(fileSize, len * 4, MAX_PICKLES)) {
    const head = await readExact(fh, path, 0, len);
    try {
      return await parse(fh, path, head, fileSize, maxElements);
    } catch (err) {
      const truncated = err instanceof Error && /truncated pickle/.test(err.message);
      if (!truncated || len >= fileSize || len >= MAX_PICKLES) throw err;
    }
  }
}

async function parse(fh: FileHandle, path: string, head: Uint8Array, fileSize: number, maxElements: number): Promise<Checkpoint> {
  const fail = (msg: string): never => {
    throw fileError(path, msg);
  };
  const opts = { source: path };
  const magic = unpickleAt(head, 0, opts);
  if (magic.value !== MAGIC) fail('not a legacy PyTorch checkpoint (bad magic number)');
  const version = unpickleAt(head, magic.end, opts);
  if (version.value !== 1001) fail(`unsupported legacy PyTorch protocol version ${String(version.value)}`);
  const sysInfo = unpickleAt(head, version.end, opts);
  if (!(sysInfo.value instanceof PyDict) || sysInfo.value.map.get('little_endian') !== true) {
    fail('only little-endian legacy checkpoints are supported');
  }
  const storages = new Map<string, StorageRef>();
  const root = unpickleAt(head, sysInfo.end, {
    source: path,
    persistentLoad: (pid, pfail) => storageFromPid(pid, 6, storages, pfail)[0],
  });
  const keys = unpickleAt(head, root.end, opts);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) fail('malformed storage key list');
  // Each storage: int64 element count, then its bytes.
  const starts = new Map<string, number>();
  let pos = keys.end;
  for (const key of keys.value as string[]) {
    const s = storages.get(key);
    if (!s) fail(`storage '${key}' is listed but never used`);
    if (starts.has(key)) fail(`storage '${key}' is listed twice`);
    if (pos + 8 > fileSize) fail(`truncated: storage '${key}' starts past the end of the file`);
    const count = new DataView((await readExact(fh, path, pos, 8)).buffer).getBigInt64(0, true);
    if (count !== BigInt(s!.numel)) fail(`storage '${key}' holds ${count} elements, the pickle says ${s!.numel}`);
    starts.set(key, pos + 8);
    pos += 8 + s!.numel * DTYPE_BYTES[s!.dtype];
    if (pos > fileSize) fail(`truncated: storage '${key}' runs past the end of the file`);
  }
  for (const key of storages.keys()) if (!starts.has(key)) fail(`storage '${key}' has no data`);
  return lazyCheckpoint(fh, path, flattenStateDict(root.value, fail), maxElements, async (s) => starts.get(s.key)!);
}
