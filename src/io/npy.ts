import { readFileSync, writeFileSync, renameSync, rmSync } from 'node:fs';

/** A NumPy array as read from or written to a `.npy` file (C order; float32, float64, int32, int64, uint8). */
export interface NpyArray {
  dtype: 'float32' | 'float64' | 'int32' | 'int64' | 'uint8';
  shape: number[];
  data: Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
}

const DESCR: Record<string, NpyArray['dtype']> = {
  '<f4': 'float32', '<f8': 'float64', '<i4': 'int32', '<i8': 'int64', '|u1': 'uint8', '<u1': 'uint8',
};

export function parseNpy(buf: Uint8Array, name = 'array'): NpyArray {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (buf.length < 10 || magic.some((b, i) => buf[i] !== b)) throw new Error(`${name}: not a .npy file`);
  const major = buf[6];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(buf.subarray(start, start + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*True/.test(header);
  const shapeStr = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeStr === undefined) throw new Error(`${name}: malformed .npy header`);
  const dtype = DESCR[descr];
  if (!dtype) throw new Error(`${name}: unsupported dtype ${descr}`);
  if (fortran) throw new Error(`${name}: Fortran-order arrays are not supported`);
  const shape = shapeStr.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  // Copy into a fresh buffer (aligned, owned); Node's Buffer.slice returns a view, not a copy.
  const bytes = new Uint8Array(buf.byteLength - offset);
  bytes.set(buf.subarray(offset));
  const Ctor = { float32: Float32Array, float64: Float64Array, int32: Int32Array, int64: BigInt64Array, uint8: Uint8Array }[dtype];
  if (bytes.byteLength < count * Ctor.BYTES_PER_ELEMENT) throw new Error(`${name}: truncated .npy data`);
  const data = new Ctor(bytes.buffer, 0, count);
  return { dtype, shape, data };
}

export function readNpy(path: string): NpyArray {
  return parseNpy(readFileSync(path), path);
}

export function encodeNpy(arr: NpyArray): Uint8Array {
  const descr = { float32: '<f4', float64: '<f8', int32: '<i4', int64: '<i8', uint8: '|u1' }[arr.dtype];
  const shape = arr.shape.length === 1 ? `(${arr.shape[0]},)` : `(${arr.shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = new Uint8Array(10 + header.length);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(head.buffer).setUint16(8, header.length, true);
  head.set(new TextEncoder().encode(header), 10);
  const body = new Uint8Array(arr.data.buffer, arr.data.byteOffset, arr.data.byteLength);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/** Writes to a temporary name and renames, so no half-written file is left behind. */
export function writeNpy(path: string, arr: NpyArray): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, encodeNpy(arr));
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
