/**
 * safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}
 * (plus an ignored `__metadata__`), then the raw little-endian data. Each tensor is read with one fd read.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Checkpoint, SourceDType, TensorEntry } from './checkpoint.js';
import { DTYPE_BYTES } from './pickle.js';
import {
  DEFAULT_MAX_TENSOR_ELEMENTS, asFileError, decodeToFloat32, fileError, readExact, type ReaderOptions,
} from './torch-zip.js';

const DTYPES: Record<string, SourceDType> = {
  F32: 'float32', F16: 'float16', BF16: 'bfloat16', F64: 'float64', I64: 'int64', I32: 'int32', U8: 'uint8', BOOL: 'bool',
};
const MAX_HEADER = 100 * 2 ** 20;

export async function openSafetensors(path: string, opts: ReaderOptions = {}): Promise<Checkpoint> {
  const fh = await open(path, 'r');
  try {
    return await readSafetensors(fh, path, opts.maxTensorElements ?? DEFAULT_MAX_TENSOR_ELEMENTS);
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw asFileError(path, err);
  }
}

async function readSafetensors(fh: FileHandle, path: string, maxElements: number): Promise<Checkpoint> {
  const fail = (msg: string): never => {
    throw fileError(path, msg);
  };
  const fileSize = (await fh.stat()).size;
  if (fileSize < 8) fail('truncated safetensors file (no header length)');
  const headerLen = new DataView((await readExact(fh, path, 0, 8)).buffer).getBigUint64(0, true);
  if (headerLen > BigInt(Math.min(MAX_HEADER, fileSize - 8))) fail(`safetensors header length ${headerLen} exceeds the file or ${MAX_HEADER} bytes`);
  const dataStart = 8 + Number(headerLen);
  const dataLen = fileSize - dataStart;
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await readExact(fh, path, 8, Number(headerLen))));
  } catch (err) {
    if (err instanceof Error && err.message.startsWith(`${path}:`)) throw err;
    fail(`safetensors header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('safetensors header is not a JSON object');
  const found: { name: string; dtype: SourceDType; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const bad = (msg: string): never => fail(`tensor '${name}': ${msg}`);
    if (typeof info !== 'object' || info === null) bad('header entry is not an object');
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in DTYPES)) bad(`unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape) || shape.length > 32 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) bad('malformed shape');
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) bad('malformed data_offsets');
    const [begin, end] = offsets as number[];
    if (begin > end || end > dataLen) bad(`data_offsets [${begin}, ${end}] lie outside the ${dataLen} data bytes`);
    const dt = DTYPES[dtype as string];
    let numel = 1;
    for (const d of shape as number[]) {
      numel *= d;
      if (numel > maxElements) bad(`shape [${(shape as number[]).join(', ')}] exceeds ${maxElements} elements`);
    }
    if (end - begin !== numel * DTYPE_BYTES[dt]) bad(`${end - begin} data bytes do not hold ${numel} ${dtype} elements`);
    found.push({ name, dtype: dt, shape: (shape as number[]).slice(), begin, end });
  }
  if (found.length === 0) fail('holds no tensors');
  found.sort((a, b) => a.begin - b.begin);
  let closed = false;
  const entries = new Map<string, TensorEntry>();
  for (const t of found) {
    entries.set(t.name, {
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      read: async () => {
        if (closed) throw fileError(path, `'${t.name}' read after the checkpoint was closed`);
        try {
          return decodeToFloat32(await readExact(fh, path, dataStart + t.begin, t.end - t.begin), t.dtype);
        } catch (err) {
          throw asFileError(path, err);
        }
      },
    });
  }
  return {
    path,
    entries,
    close: async () => {
      if (closed) return;
      closed = true;
      await fh.close();
    },
  };
}
