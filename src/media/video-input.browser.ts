import type { Frames } from './images.js';
import { checkFrames, checkReadOptions, firstFrames, type VideoInput, type VideoReadOptions } from './video-input-common.js';

export type { VideoInput, VideoReadOptions } from './video-input-common.js';

/** Each frame resized to width x height (an OffscreenCanvas, high-quality smoothing). */
export async function resizeFrames(v: Frames, width: number, height: number): Promise<Frames> {
  if (v.width === width && v.height === height) return v;
  const out = new Uint8Array(v.frames * width * height * 3);
  const src = new OffscreenCanvas(v.width, v.height);
  const sctx = src.getContext('2d')!;
  const dst = new OffscreenCanvas(width, height);
  const dctx = dst.getContext('2d')!;
  dctx.imageSmoothingEnabled = true;
  dctx.imageSmoothingQuality = 'high';
  const n = v.width * v.height;
  const rgba = new Uint8ClampedArray(n * 4);
  for (let f = 0; f < v.frames; f++) {
    for (let i = 0, j = f * n * 3; i < n; i++, j += 3) {
      rgba[i * 4] = v.data[j];
      rgba[i * 4 + 1] = v.data[j + 1];
      rgba[i * 4 + 2] = v.data[j + 2];
      rgba[i * 4 + 3] = 255;
    }
    sctx.putImageData(new ImageData(rgba, v.width, v.height), 0, 0);
    dctx.clearRect(0, 0, width, height);
    dctx.drawImage(src, 0, 0, width, height);
    const px = dctx.getImageData(0, 0, width, height).data;
    for (let i = 0, o = f * width * height * 3; i < width * height; i++, o += 3) {
      out[o] = px[i * 4];
      out[o + 1] = px[i * 4 + 1];
      out[o + 2] = px[i * 4 + 2];
    }
  }
  return { data: out, frames: v.frames, height, width };
}

/** A page's video-to-video input: decoded frames (a page decodes its own video, e.g. with WebCodecs); no paths. */
export async function readVideoInput(input: VideoInput, o: VideoReadOptions = {}): Promise<Frames> {
  checkReadOptions(o);
  if (typeof input === 'string') throw new Error(`video ${input}: in a page, give the frames ({ data, frames, height, width }), not a path`);
  checkFrames(input, 'video');
  const v = firstFrames(input, o.frames);
  return o.width !== undefined && o.height !== undefined ? await resizeFrames(v, o.width, o.height) : v;
}
