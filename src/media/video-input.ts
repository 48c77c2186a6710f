import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { findFfmpeg } from './ffmpeg.js';
import type { Frames } from './images.js';
import { checkFrames, checkReadOptions, firstFrames, type VideoInput, type VideoReadOptions } from './video-input-common.js';

/** A video to start from: frames (uint8 RGB, frame-major) or a path (.mp4, .webm, .gif, or a folder of PNG frames). */
export type { VideoInput, VideoReadOptions } from './video-input-common.js';

/** @napi-rs/canvas, loaded when a PNG is read or a frame resized (not for frames given as they are). */
const canvas = () => import('@napi-rs/canvas');

const FILE_KINDS = new Set(['.mp4', '.webm', '.gif']);


/** RGBA (canvas) -> RGB. */
function dropAlpha(rgba: Uint8ClampedArray | Uint8Array, out: Uint8Array, at: number): void {
  for (let i = 0, j = at; i < rgba.length; i += 4, j += 3) {
    out[j] = rgba[i];
    out[j + 1] = rgba[i + 1];
    out[j + 2] = rgba[i + 2];
  }
}

/** The PNG files of a folder in name order (frame_0001.png, ...), decoded. */
async function readPngFolder(dir: string, limit?: number): Promise<Frames> {
  let names = readdirSync(dir).filter((n) => /\.png$/i.test(n)).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (names.length === 0) throw new Error(`video ${dir}: the folder has no .png frames`);
  if (limit !== undefined) names = names.slice(0, limit);
  let width = 0;
  let height = 0;
  let data = new Uint8Array(0);
  for (let i = 0; i < names.length; i++) {
    const path = join(dir, names[i]);
    let img;
    try {
      img = await (await canvas()).loadImage(readFileSync(path));
    } catch (err) {
      throw new Error(`video ${path}: not a readable PNG (${err instanceof Error ? err.message : String(err)})`);
    }
    if (i === 0) {
      width = img.width;
      height = img.height;
      data = new Uint8Array(names.length * width * height * 3);
    } else if (img.width !== width || img.height !== height) {
      throw new Error(`video ${path}: frame is ${img.width}x${img.height}, the first frame is ${width}x${height}`);
    }
    const c = (await canvas()).createCanvas(width, height);
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    dropAlpha(ctx.getImageData(0, 0, width, height).data, data, i * width * height * 3);
  }
  return { data, frames: names.length, height, width };
}

/** A video file's frames as rgb24 through ffmpeg (the one the writers find: src/media/ffmpeg.ts). */
function readVideoFile(path: string, limit?: number): Promise<Frames> {
  const ffmpeg = findFfmpeg().path;
  const args = ['-hide_banner', '-nostdin', '-i', path, '-map', '0:v:0', ...(limit !== undefined ? ['-frames:v', String(limit)] : []),
    '-vsync', '0', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'];
  // -vsync 0 (passthrough): each decoded frame once, none duplicated to a constant output rate (a GIF's delays)
  return new Promise((resolve, reject) => {
    const proc = spawn(ffmpeg, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => chunks.push(d));
    proc.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    proc.on('error', (err) => reject(new Error(`cannot run ffmpeg (${ffmpeg}): ${err.message}`)));
    proc.on('close', (code) => {
      if (code !== 0) {
        const last = stderr.trim().split('\n').filter(Boolean).pop() ?? `exit code ${code}`;
        reject(new Error(`video ${path}: ffmpeg cannot decode it: ${last}`));
        return;
      }
      // the output stream's size, as ffmpeg reports it after "Output #0"
      const out = stderr.slice(stderr.indexOf('Output #0'));
      const m = /Video: rawvideo[^\n]*?, (\d+)x(\d+)/.exec(out);
      const data = new Uint8Array(Buffer.concat(chunks));
      if (!m) {
        reject(new Error(`video ${path}: ffmpeg did not report the frame size`));
        return;
      }
      const width = Number(m[1]);
      const height = Number(m[2]);
      const frames = Math.floor(data.length / (width * height * 3));
      if (frames < 1) {
        reject(new Error(`video ${path}: no frames decoded`));
        return;
      }
      resolve({ data: data.subarray(0, frames * width * height * 3), frames, height, width });
    });
  });
}

/** Each frame resized to width x height (Skia's high-quality filter). */
export async function resizeFrames(v: Frames, width: number, height: number): Promise<Frames> {
  if (v.width === width && v.height === height) return v;
  const { createCanvas, ImageData } = await canvas();
  const out = new Uint8Array(v.frames * width * height * 3);
  const src = createCanvas(v.width, v.height);
  const sctx = src.getContext('2d');
  const dst = createCanvas(width, height);
  const dctx = dst.getContext('2d');
  dctx.imageSmoothingEnabled = true;
  dctx.imageSmoothingQuality = 'high';
  const n = v.width * v.height;
  const rgba = new Uint8ClampedArray(n * 4);
  for (let f = 0; f < v.frames; f++) {
    const rgb = v.data.subarray(f * n * 3, (f + 1) * n * 3);
    for (let i = 0, j = 0; i < n; i++, j += 3) {
      rgba[i * 4] = rgb[j];
      rgba[i * 4 + 1] = rgb[j + 1];
      rgba[i * 4 + 2] = rgb[j + 2];
      rgba[i * 4 + 3] = 255;
    }
    sctx.putImageData(new ImageData(rgba, v.width, v.height), 0, 0);
    dctx.clearRect(0, 0, width, height);
    dctx.drawImage(src, 0, 0, width, height);
    dropAlpha(dctx.getImageData(0, 0, width, height).data, out, f * width * height * 3);
  }
  return { data: out, frames: v.frames, height, width };
}

/**
 * The frames of a video input: read from a path (a folder of PNG frames in name order, or an .mp4/.webm/.gif decoded
 * by ffmpeg), the first `frames` kept, resized when width and height are given.
 */
export async function readVideoInput(input: VideoInput, o: VideoReadOptions = {}): Promise<Frames> {
  checkReadOptions(o);
  let v: Frames;
  if (typeof input === 'string') {
    if (!existsSync(input)) throw new Error(`video ${input}: no such file or folder`);
    if (statSync(input).isDirectory()) v = await readPngFolder(input, o.frames);
    else if (FILE_KINDS.has(extname(input).toLowerCase())) v = await readVideoFile(input, o.frames);
    else throw new Error(`video ${input}: give an .mp4, .webm or .gif file, or a folder of PNG frames`);
  } else {
    checkFrames(input, 'video');
    v = input;
  }
  v = firstFrames(v, o.frames);
  if (o.width !== undefined && o.height !== undefined) v = await resizeFrames(v, o.width, o.height);
  return v;
}
