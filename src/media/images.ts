import { base64, toBuffer, zlibDeflate } from './host-bytes.js';
import gifenc from 'gifenc';

/** Frames as the pipeline returns them: uint8 RGB, frame-major [frames, height, width, 3]. */
export interface Frames {
  data: Uint8Array;
  frames: number;
  height: number;
  width: number;
}

export function frameView(v: Frames, i: number): Uint8Array {
  if (!Number.isInteger(i) || i < 0 || i >= v.frames) throw new Error(`frame ${i} out of range 0..${v.frames - 1}`);
  const n = v.height * v.width * 3;
  return v.data.subarray(i * n, (i + 1) * n);
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const p of parts) for (let i = 0; i < p.length; i++) c = CRC_TABLE[(c ^ p[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, body.length);
  const typeBytes = new TextEncoder().encode(type);
  out.set(typeBytes, 4);
  out.set(body, 8);
  dv.setUint32(8 + body.length, crc32([typeBytes, body]));
  return out;
}

/** An 8-bit RGB PNG (no filter, zlib level 6 in Node, stored blocks in a browser); dependency-free. */
export function encodePng(rgb: Uint8Array, width: number, height: number): Buffer {
  if (rgb.length !== width * height * 3) throw new Error(`PNG data has ${rgb.length} bytes, expected ${width * height * 3}`);
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8); // bit depth 8, colour type RGB
  const raw = new Uint8Array(height * (width * 3 + 1));
  for (let y = 0; y < height; y++) raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (width * 3 + 1) + 1);
  const sig = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return toBuffer([sig, chunk('IHDR', ihdr), chunk('IDAT', zlibDeflate(raw)), chunk('IEND', new Uint8Array(0))]);
}

/** An animated GIF, looping, one palette of up to 256 colours per frame (gifenc's quantizer). */
export function encodeGif(v: Frames, fps: number): Buffer {
  const enc = gifenc.GIFEncoder();
  const px = v.width * v.height;
  const rgba = new Uint8Array(px * 4);
  const delay = Math.round(1000 / fps);
  for (let f = 0; f < v.frames; f++) {
    const rgb = frameView(v, f);
    for (let i = 0; i < px; i++) {
      rgba[i * 4] = rgb[i * 3];
      rgba[i * 4 + 1] = rgb[i * 3 + 1];
      rgba[i * 4 + 2] = rgb[i * 3 + 2];
      rgba[i * 4 + 3] = 255;
    }
    const palette = gifenc.quantize(rgba, 256);
    enc.writeFrame(gifenc.applyPalette(rgba, palette), v.width, v.height, { palette, delay, repeat: 0 });
  }
  enc.finish();
  return toBuffer([enc.bytes()]);
}

/** All frames in one image, `columns` per row (default: a near-square grid), with a `gap` of black pixels. */
export function contactSheet(v: Frames, columns?: number, gap = 2): { rgb: Uint8Array; width: number; height: number } {
  const cols = Math.max(1, Math.min(v.frames, columns ?? Math.ceil(Math.sqrt(v.frames))));
  const rows = Math.ceil(v.frames / cols);
  const width = cols * v.width + (cols - 1) * gap;
  const height = rows * v.height + (rows - 1) * gap;
  const rgb = new Uint8Array(width * height * 3);
  for (let f = 0; f < v.frames; f++) {
    const src = frameView(v, f);
    const x0 = (f % cols) * (v.width + gap);
    const y0 = Math.floor(f / cols) * (v.height + gap);
    for (let y = 0; y < v.height; y++) {
      rgb.set(src.subarray(y * v.width * 3, (y + 1) * v.width * 3), ((y0 + y) * width + x0) * 3);
    }
  }
  return { rgb, width, height };
}

export function dataUrl(mime: string, bytes: Uint8Array): string {
  return `data:${mime};base64,${base64(bytes)}`;
}
