/**
 * PyTorch zip checkpoints (what `torch.save` writes since 1.6): a zip of STORED entries, `<archive>/data.pkl`
 * (the pickled state_dict, read by our restricted unpickler) and one `<archive>/data/<key>` entry per storage.
 * Only the zip's central directory and the pickle are read up front; each tensor's bytes are read with
 * positional fd reads when asked for. ZIP64 is supported (the released UNet file is 5.6 GB).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { inflateRawSync } from 'node:zlib';
import type { Checkpoint, SourceDType, TensorEntry } from './checkpoint.js';
import { crc32 } from './crc32.js';
import { DTYPE_BYTES, PyDict, PyGlobal, STORAGE_DTYPES, StorageRef, TensorRef, unpickle } from './pickle.js';

export interface ReaderOptions {
  /** Largest tensor (in elements) a reader will materialize; larger ones are refused as corrupt. */
  maxTensorElements?: number;
}

/** 1 GiB as float32; the largest released tensor (the token embedding) has 50.6 M elements. */
export const DEFAULT_MAX_TENSOR_ELEMENTS = 2 ** 28;
const MAX_CENTRAL_DIRECTORY = 256 * 2 ** 20;
const MAX_PICKLE = 512 * 2 ** 20;
const CHUNK = 2 ** 30;
/** A storage that no single tensor read covers gets a read of its own for its CRC-32 up to this size. */
const VIEW_CRC_BYTES = 256 * 2 ** 20;

export function fileError(file: string, msg: string): Error {
  return new Error(`${file}: ${msg}`);
}

/** Reads exactly `length` bytes at `position` into a fresh (aligned) buffer, or throws naming the file. */
export async function readExact(fh: FileHandle, file: string, position: number, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = Math.min(CHUNK, length - done);
    const { bytesRead } = await fh.read(out, done, n, position + done);
    if (bytesRead === 0) throw fileError(file, `truncated: wanted ${length} bytes at offset ${position}, file ends first`);
    done += bytesRead;
  }
  return out;
}

// ---- dtype decoding --------------------------------------------------------------------------------------

let halfTable: Float32Array | undefined;
function halfToFloat(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = s * m * 2 ** -24;
    else if (e === 31) t[h] = m ? NaN : s * Infinity;
    else t[h] = s * (1 + m / 1024) * 2 ** (e - 15);
  }
  halfTable = t;
  return t;
}

/** Little-endian bytes of `dtype` (a fresh, aligned buffer) to float32. */
export function decodeToFloat32(bytes: Uint8Array, dtype: SourceDType): Float32Array {
  const buf = bytes.buffer;
  const off = bytes.byteOffset;
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  switch (dtype) {
    case 'float32':
      return new Float32Array(buf, off, n);
    case 'float16': {
      const src = new Uint16Array(buf, off, n);
      const table = halfToFloat();
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = table[src[i]];
      return out;
    }
    case 'bfloat16': {
      const src = new Uint16Array(buf, off, n);
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
      return out;
    }
    case 'float64':
      return Float32Array.from(new Float64Array(buf, off, n));
    case 'int64': {
      const src = new BigInt64Array(buf, off, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = Number(src[i]);
      return out;
    }
    case 'int32':
      return Float32Array.from(new Int32Array(buf, off, n));
    case 'uint8':
    case 'bool':
      return Float32Array.from(bytes);
  }
}

/** Checks a strided view against its storage and the size limit; returns [numel, first, last element]. */
export function checkView(
  shape: readonly number[], stride: readonly number[], offset: number, storageNumel: number, maxElements: number,
  fail: (msg: string) => never,
): [number, number, number] {
  let numel = 1;
  let last = offset;
  for (let d = 0; d < shape.length; d++) {
    numel *= shape[d];
    if (numel > maxElements) fail(`tensor of shape [${shape.join(', ')}] exceeds ${maxElements} elements`);
  }
  if (numel === 0) return [0, offset, offset];
  for (let d = 0; d < shape.length; d++) last += (shape[d] - 1) * stride[d];
  if (!Number.isSafeInteger(last) || last >= storageNumel) {
    fail(`tensor view (offset ${offset}, shape [${shape.join(', ')}], stride [${stride.join(', ')}]) `
      + `reaches past its storage of ${storageNumel} elements`);
  }
  return [numel, offset, last];
}

/** Materializes a strided view of `src` (whose element 0 is the view's first element) in row-major order. */
export function gatherView(src: Float32Array, shape: readonly number[], stride: readonly number[], numel: number): Float32Array {
  const nd = shape.length;
  let contiguous = true;
  for (let d = nd - 1, expect = 1; d >= 0; d--) {
    if (shape[d] !== 1 && stride[d] !== expect) contiguous = false;
    expect *= shape[d];
  }
  if (contiguous) return src.length === numel ? src : src.slice(0, numel);
  const out = new Float32Array(numel);
  if (numel === 0) return out;
  const inner = shape[nd - 1];
  const istride = stride[nd - 1];
  const idx = new Array<number>(nd).fill(0);
  let base = 0;
  let o = 0;
  for (;;) {
    for (let j = 0, p = base; j < inner; j++, p += istride) out[o++] = src[p];
    let d = nd - 2;
    for (; d >= 0; d--) {
      idx[d]++;
      base += stride[d];
      if (idx[d] < shape[d]) break;
      base -= stride[d] * shape[d];
      idx[d] = 0;
    }
    if (d < 0) return out;
  }
}

// ---- zip directory ---------------------------------------------------------------------------------------

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
  /** CRC-32 of the uncompressed data, from the central directory. */
  crc32: number;
}

function u64(view: DataView, at: number, fail: (msg: string) => never): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`zip field at ${at} is out of range`);
  return Number(v);
}

/** Reads the central directory (ZIP64 aware). Every offset and length is checked against the file size. */
export async function readZipDirectory(fh: FileHandle, file: string, fileSize: number): Promise<Map<string, ZipEntry>> {
  const fail = (msg: string): never => {
    throw fileError(file, `corrupt zip: ${msg}`);
  };
  const tailLen = Math.min(fileSize, 22 + 65535);
  const tailStart = fileSize - tailLen;
  const tail = await readExact(fh, file, tailStart, tailLen);
  const tv = new DataView(tail.buffer);
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === 0x06054b50 && i + 22 + tv.getUint16(i + 20, true) <= tailLen) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) fail('no end-of-central-directory record (the file is truncated or not a zip)');
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  const eocdAbs = tailStart + eocd;
  if (eocd >= 20 && tv.getUint32(eocd - 20, true) === 0x07064b50) {
    const z64At = u64(tv, eocd - 12, fail);
    if (z64At + 56 > eocdAbs) fail('ZIP64 end record offset out of range');
    const z = new DataView((await readExact(fh, file, z64At, 56)).buffer);
    if (z.getUint32(0, true) !== 0x06064b50) fail('bad ZIP64 end record signature');
    count = u64(z, 32, fail);
    cdSize = u64(z, 40, fail);
    cdOffset = u64(z, 48, fail);
  } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    fail('ZIP64 fields without a ZIP64 locator');
  }
  if (cdSize > MAX_CENTRAL_DIRECTORY) fail(`central directory of ${cdSize} bytes is implausibly large`);
  if (cdOffset + cdSize > eocdAbs) fail('central directory lies outside the file');
  if (count > cdSize / 46) fail(`${count} entries cannot fit a central directory of ${cdSize} bytes`);
  const cd = await readExact(fh, file, cdOffset, cdSize);
  const v = new DataView(cd.buffer);
  const utf8 = new TextDecoder('utf-8');
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cdSize || v.getUint32(p, true) !== 0x02014b50) fail(`bad central directory entry ${i}`);
    const flags = v.getUint16(p + 8, true);
    const method = v.getUint16(p + 10, true);
    const crc = v.getUint32(p + 16, true);
    let compressedSize = v.getUint32(p + 20, true);
    let size = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    let localHeaderOffset = v.getUint32(p + 42, true);
    const end = p + 46 + nameLen + extraLen + commentLen;
    if (end > cdSize) fail(`central directory entry ${i} runs past the directory`);
    const name = utf8.decode(cd.subarray(p + 46, p + 46 + nameLen));
    if (flags & 1) fail(`entry '${name}' is encrypted`);
    // ZIP64 extra field: the 64-bit values, in this order, for each 32-bit field that is saturated.
    for (let e = p + 46 + nameLen; e + 4 <= p + 46 + nameLen + extraLen;) {
      const id = v.getUint16(e, true);
      const len = v.getUint16(e + 2, true);
      if (e + 4 + len > p + 46 + nameLen + extraLen) fail(`bad extra field in entry '${name}'`);
      if (id === 0x0001) {
        let q = e + 4;
        const next = (): number => {
          if (q + 8 > e + 4 + len) fail(`short ZIP64 extra field in entry '${name}'`);
          const x = u64(v, q, fail);
          q += 8;
          return x;
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = next();
      }
      e += 4 + len;
    }
    if (localHeaderOffset + 30 + compressedSize > cdOffset) fail(`entry '${name}' lies outside the file's data`);
    if (entries.has(name)) fail(`duplicate entry '${name}'`);
    entries.set(name, { name, method, compressedSize, size, localHeaderOffset, crc32: crc });
    p = end;
  }
  return entries;
}

/** Where an entry's bytes start (after its local header), checked against the directory's view of it. */
async function dataStart(fh: FileHandle, file: string, e: ZipEntry, limit: number): Promise<number> {
  const h = new DataView((await readExact(fh, file, e.localHeaderOffset, 30)).buffer);
  if (h.getUint32(0, true) !== 0x04034b50) throw fileError(file, `corrupt zip: bad local header for '${e.name}'`);
  const start = e.localHeaderOffset + 30 + h.getUint16(26, true) + h.getUint16(28, true);
  if (start + e.compressedSize > limit) throw fileError(file, `corrupt zip: data of '${e.name}' lies outside the file's data`);
  return start;
}

/** Throws when `crc` is not the directory's CRC-32 of the entry. */
export function checkCrc(file: string, e: ZipEntry, crc: number): void {
  if (crc !== e.crc32) {
    const hex = (x: number) => x.toString(16).padStart(8, '0');
    throw fileError(file, `corrupt zip: CRC-32 of '${e.name}' is ${hex(crc)}, the zip directory says ${hex(e.crc32)} (the file is damaged; download it again)`);
  }
}

/** CRC-32 of an entry's stored bytes, read in chunks (for a storage that no single tensor read covers). */
async function entryCrc(fh: FileHandle, file: string, start: number, size: number): Promise<number> {
  let crc = 0;
  const step = 16 * 2 ** 20;
  for (let off = 0; off < size; off += step) crc = crc32(await readExact(fh, file, start + off, Math.min(step, size - off)), crc);
  return crc;
}

async function readEntry(fh: FileHandle, file: string, e: ZipEntry, limit: number, maxBytes: number): Promise<Uint8Array> {
  if (e.size > maxBytes || e.compressedSize > maxBytes) throw fileError(file, `'${e.name}' is implausibly large (${e.size} bytes)`);
  const raw = await readExact(fh, file, await dataStart(fh, file, e, limit), e.compressedSize);
  if (e.method === 0) {
    if (e.size !== e.compressedSize) throw fileError(file, `corrupt zip: sizes of stored entry '${e.name}' disagree`);
    checkCrc(file, e, crc32(raw));
    return raw;
  }
  if (e.method !== 8) throw fileError(file, `'${e.name}' uses unsupported zip compression method ${e.method}`);
  let out: Buffer;
  try {
    out = inflateRawSync(raw, { maxOutputLength: Math.max(1, e.size) });
  } catch (err) {
    throw fileError(file, `corrupt zip: cannot inflate '${e.name}' (${(err as Error).message})`);
  }
  if (out.length !== e.size) throw fileError(file, `corrupt zip: '${e.name}' inflates to ${out.length} bytes, not ${e.size}`);
  const bytes = new Uint8Array(out.buffer, out.byteOffset, out.length);
  checkCrc(file, e, crc32(bytes));
  return bytes;
}

// ---- state_dict --------------------------------------------------------------------------------------------

/**
 * The tensors of an unpickled checkpoint, by name, in file order. A `{"state_dict": {...}}` wrapper is unwrapped
 * (other keys beside it are ignored); nested dicts inside the state_dict are flattened with dots; values that are
 * not tensors (ints, strings, lists) are skipped.
 */
export function flattenStateDict(root: unknown, fail: (msg: string) => never): Map<string, TensorRef> {
  if (!(root instanceof PyDict)) fail('the checkpoint is not a dict of tensors');
  let dict = root as PyDict;
  const wrapped = dict.map.get('state_dict');
  if (wrapped instanceof PyDict) dict = wrapped;
  const out = new Map<string, TensorRef>();
  const seen = new Set<PyDict>();
  const walk = (d: PyDict, prefix: string, depth: number): void => {
    if (seen.has(d) || depth > 16) return;
    seen.add(d);
    for (const [k, v] of d.map) {
      if (typeof k !== 'string' && typeof k !== 'number') continue;
      const name = prefix + String(k);
      if (v instanceof TensorRef) {
        if (out.has(name)) fail(`tensor name '${name}' occurs twice`);
        out.set(name, v);
      } else if (v instanceof PyDict) {
        walk(v, `${name}.`, depth + 1);
      }
    }
  };
  walk(dict, '', 0);
  return out;
}

// ---- the reader --------------------------------------------------------------------------------------------

export async function openTorchZip(path: string, opts: ReaderOptions = {}): Promise<Checkpoint> {
  const maxElements = opts.maxTensorElements ?? DEFAULT_MAX_TENSOR_ELEMENTS;
  const fh = await open(path, 'r');
  try {
    return await readTorchZip(fh, path, maxElements);
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw asFileError(path, err);
  }
}

/** Our errors already name the file; anything else (a bug or an odd input we did not foresee) gets wrapped. */
export function asFileError(path: string, err: unknown): Error {
  if (err instanceof Error && err.constructor === Error && err.message.startsWith(`${path}:`)) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new Error(`${path}: cannot read checkpoint (${msg})`);
}

async function readTorchZip(fh: FileHandle, path: string, maxElements: number): Promise<Checkpoint> {
  const fail = (msg: string): never => {
    throw fileError(path, msg);
  };
  const fileSize = (await fh.stat()).size;
  const entries = await readZipDirectory(fh, path, fileSize);
  const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1) {
    if ([...entries.keys()].some((n) => n.endsWith('/constants.pkl') || n.endsWith('/code/'))) {
      fail('a TorchScript archive, not a state_dict checkpoint (save with torch.save(model.state_dict(), ...))');
    }
    fail(pkls.length === 0 ? 'no <archive>/data.pkl: not a PyTorch checkpoint' : 'more than one data.pkl in the archive');
  }
  const prefix = pkls[0].slice(0, -'data.pkl'.length);
  const cdLimit = fileSize; // entries were already checked to end before the central directory
  const order = entries.get(`${prefix}byteorder`);
  if (order) {
    const b = new TextDecoder().decode(await readEntry(fh, path, order, cdLimit, 16));
    if (b !== 'little') fail(`storages are ${b}-endian; only little-endian checkpoints are supported`);
  }
  const pkl = await readEntry(fh, path, entries.get(pkls[0])!, cdLimit, MAX_PICKLE);

  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: unknown, pfail: (msg: string) => never): StorageRef => {
    const [ref, isNew] = storageFromPid(pid, 5, storages, pfail);
    if (isNew) {
      const e = entries.get(`${prefix}data/${ref.key}`);
      if (!e) pfail(`storage '${ref.key}' has no entry ${prefix}data/${ref.key}`);
      if (e!.method !== 0) pfail(`storage entry '${e!.name}' is compressed (torch.save writes stored entries)`);
      if (e!.size < ref.numel * DTYPE_BYTES[ref.dtype]) {
        pfail(`storage '${ref.key}' holds ${e!.size} bytes, fewer than ${ref.numel} ${ref.dtype} elements`);
      }
    }
    return ref;
  };
  const root = unpickle(pkl, { source: path, persistentLoad });
  const starts = new Map<string, Promise<number>>();
  const locate = (storage: StorageRef): Promise<number> => {
    let start = starts.get(storage.key);
    if (!start) {
      start = dataStart(fh, path, entries.get(`${prefix}data/${storage.key}`)!, cdLimit);
      starts.set(storage.key, start);
    }
    return start;
  };
  // Each storage's CRC-32 is checked once: on the bytes of a tensor read that covers its whole entry (torch.save's
  // usual case, so no extra pass); a storage only views cover is read once for its CRC when it is at most
  // VIEW_CRC_BYTES (larger ones stay lazy: a view of a few bytes must not read gigabytes).
  const checked = new Map<string, Promise<void>>();
  const verify = (storage: StorageRef, byteOffset: number, bytes: Uint8Array): Promise<void> => {
    const e = entries.get(`${prefix}data/${storage.key}`)!;
    const whole = byteOffset === 0 && bytes.byteLength === e.size;
    let done = checked.get(storage.key);
    if (!done && (whole || e.size <= VIEW_CRC_BYTES)) {
      done = whole
        ? Promise.resolve().then(() => checkCrc(path, e, crc32(bytes)))
        : locate(storage).then((start) => entryCrc(fh, path, start, e.size)).then((crc) => checkCrc(path, e, crc));
      checked.set(storage.key, done);
    }
    return done ?? Promise.resolve();
  };
  return lazyCheckpoint(fh, path, flattenStateDict(root, fail), maxElements, locate, verify);
}

/**
 * A persistent id `('storage', type, key, location, numel)` (the legacy format adds a sixth, view_metadata) as one
 * StorageRef per key. Returns whether the key is new, so the caller checks it against the file.
 */
export function storageFromPid(
  pid: unknown, arity: number, storages: Map<string, StorageRef>, pfail: (msg: string) => never,
): [StorageRef, boolean] {
  if (!Array.isArray(pid) || pid.length !== arity || pid[0] !== 'storage') pfail('unknown persistent id (expected a storage)');
  const [, type, key, location, numel, view] = pid as unknown[];
  if (!(type instanceof PyGlobal) || type.module !== 'torch' || !(type.name in STORAGE_DTYPES)) {
    pfail(`unsupported storage type ${type instanceof PyGlobal ? `'${type.qualified}'` : ''}`);
  }
  if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(key)) pfail('malformed storage key');
  if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) pfail('malformed storage size');
  if (arity === 6 && view !== null) pfail('storage views of the pre-1.0 format are not supported');
  const dtype = STORAGE_DTYPES[(type as PyGlobal).name];
  const k = key as string;
  const known = storages.get(k);
  if (known) {
    if (known.dtype !== dtype) pfail(`storage '${k}' is used as both ${known.dtype} and ${dtype}`);
    return [known, false];
  }
  const ref = new StorageRef(dtype, k, typeof location === 'string' ? location : '', numel as number);
  storages.set(k, ref);
  return [ref, true];
}

/** The Checkpoint over `tensors`; `locate` gives the file offset of a storage's first byte. */
export function lazyCheckpoint(
  fh: FileHandle, path: string, tensors: Map<string, TensorRef>, maxElements: number,
  locate: (storage: StorageRef) => Promise<number>,
  verify?: (storage: StorageRef, byteOffset: number, bytes: Uint8Array) => Promise<void>,
): Checkpoint {
  const fail = (msg: string): never => {
    throw fileError(path, msg);
  };
  if (tensors.size === 0) fail('holds no tensors');
  let closed = false;
  const out = new Map<string, TensorEntry>();
  for (const [name, t] of tensors) {
    const [numel, first, last] = checkView(t.shape, t.stride, t.offset, t.storage.numel, maxElements,
      (msg) => fail(`'${name}': ${msg}`));
    const dtype = t.storage.dtype;
    out.set(name, {
      name,
      dtype,
      shape: t.shape.slice(),
      read: async () => {
        if (closed) throw fileError(path, `'${name}' read after the checkpoint was closed`);
        try {
          if (numel === 0) return new Float32Array(0);
          const size = DTYPE_BYTES[dtype];
          const bytes = await readExact(fh, path, (await locate(t.storage)) + first * size, (last - first + 1) * size);
          await verify?.(t.storage, first * size, bytes);
          return gatherView(decodeToFloat32(bytes, dtype), t.shape, t.stride, numel);
        } catch (err) {
          throw asFileError(path, err);
        }
      },
    });
  }
  return {
    path,
    entries: out,
    close: async () => {
      if (closed) return;
      closed = true;
      await fh.close();
    },
  };
}
