import { deflateSync } from 'node:zlib';

/** Byte helpers the image writers need, in Node (browser builds get host-bytes.browser.ts). */
export function zlibDeflate(raw: Uint8Array): Uint8Array {
  return deflateSync(raw);
}

export function toBuffer(parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts);
}

export function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}
