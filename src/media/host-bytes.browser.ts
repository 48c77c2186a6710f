/**
 * Browser builds: no Buffer and no synchronous zlib. PNGs get stored (uncompressed) deflate blocks, still valid
 * zlib; "Buffer" results are plain Uint8Arrays.
 */
export function zlibDeflate(raw: Uint8Array): Uint8Array {
  const blocks = Math.max(1, Math.ceil(raw.length / 65535));
  const out = new Uint8Array(2 + raw.length + 5 * blocks + 4);
  out[0] = 0x78;
  out[1] = 0x01;
  let o = 2;
  for (let b = 0; b < blocks; b++) {
    const part = raw.subarray(b * 65535, Math.min(raw.length, (b + 1) * 65535));
    out[o] = b === blocks - 1 ? 1 : 0;
    out[o + 1] = part.length & 0xff;
    out[o + 2] = part.length >>> 8;
    out[o + 3] = ~part.length & 0xff;
    out[o + 4] = (~part.length >>> 8) & 0xff;
    out.set(part, o + 5);
    o += 5 + part.length;
  }
  let a = 1;
  let d = 0;
  for (let i = 0; i < raw.length; i++) {
    a = (a + raw[i]) % 65521;
    d = (d + a) % 65521;
  }
  new DataView(out.buffer).setUint32(o, ((d << 16) | a) >>> 0);
  return out;
}

export function toBuffer(parts: Uint8Array[]): Buffer {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out as Buffer;
}

export function base64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
