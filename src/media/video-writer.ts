import { existsSync, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { ffmpegArgs, findFfmpeg, runFfmpeg } from './ffmpeg.js';
import { onInterrupt } from './interrupt.js';
import { encodeGif, encodePng, frameView, type Frames } from './images.js';

export type OutputKind = 'mp4' | 'webm' | 'gif' | 'png' | 'pngs';

/** What `path` asks for: a directory (ending in a separator, or existing) gets one PNG per frame. */
export function outputKind(path: string): OutputKind {
  if (/[\\/]$/.test(path) || (existsSync(path) && statSync(path).isDirectory())) return 'pngs';
  const ext = extname(path).toLowerCase();
  if (ext === '.mp4' || ext === '.webm' || ext === '.gif' || ext === '.png') return ext.slice(1) as OutputKind;
  throw new Error(`cannot tell the output format of ${path}: use .mp4, .webm, .gif, .png, or a directory ending in /`);
}

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
}

/**
 * Writes through a temporary file in the same directory, renamed when complete; nothing is left on failure, nor
 * when SIGINT or SIGTERM arrives meanwhile.
 */
export async function atomicWrite(path: string, write: (tmp: string) => Promise<void> | void): Promise<void> {
  const dir = dirname(path);
  if (!existsSync(dir)) throw new Error(`cannot write ${path}: directory ${dir} does not exist`);
  const tmp = tempName(path);
  const off = onInterrupt(() => rmSync(tmp, { force: true }));
  try {
    await write(tmp);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  } finally {
    off();
  }
}

/**
 * The largest frames each format takes: H.264 at its highest level (6.2: 139264 macroblocks a frame, a side at most
 * sqrt(8 * 139264) macroblocks), VP9's 16-bit frame sizes, GIF's 16-bit screen sizes, PNG's 31-bit ones.
 */
export const FORMAT_LIMITS: Record<OutputKind, { side: number; pixels: number; name: string }> = {
  mp4: { side: 16880, pixels: 139264 * 256, name: 'H.264 (.mp4)' },
  webm: { side: 65536, pixels: Infinity, name: 'VP9 (.webm)' },
  gif: { side: 65535, pixels: Infinity, name: 'GIF' },
  png: { side: 2 ** 31 - 1, pixels: Infinity, name: 'PNG' },
  pngs: { side: 2 ** 31 - 1, pixels: Infinity, name: 'PNG' },
};

/** Throws when frames of width x height cannot be written to `path`'s format. */
export function checkFormatLimits(path: string, width: number, height: number): void {
  const l = FORMAT_LIMITS[outputKind(path)];
  if (width > l.side || height > l.side || width * height > l.pixels) {
    throw new Error(`${path}: ${l.name} takes frames of at most ${l.side} pixels a side${Number.isFinite(l.pixels) ? ` and ${l.pixels} pixels` : ''}, `
      + `not ${width}x${height}`);
  }
}

/** `frame_0001.png` ... in frame order (at least four digits, more when there are more frames). */
export function frameFileName(i: number, count: number): string {
  return `frame_${String(i + 1).padStart(Math.max(4, String(count).length), '0')}.png`;
}

export interface WriteOptions {
  fps: number;
  /** For .png: which frame (default 0). */
  frame?: number;
}

/** Saves frames by the path's form: .mp4 (H.264 yuv420p), .webm (VP9), .gif, .png (one frame), or a directory. */
export async function writeVideo(path: string, v: Frames, opts: WriteOptions): Promise<string[]> {
  const kind = outputKind(path);
  if (!(opts.fps > 0)) throw new Error(`fps must be positive, got ${opts.fps}`);
  checkFormatLimits(path, v.width, v.height);
  switch (kind) {
    case 'pngs': {
      mkdirSync(path, { recursive: true });
      const written: string[] = [];
      for (let i = 0; i < v.frames; i++) {
        const file = join(path, frameFileName(i, v.frames));
        await atomicWrite(file, (tmp) => writeFileSync(tmp, encodePng(frameView(v, i), v.width, v.height)));
        written.push(file);
      }
      return written;
    }
    case 'png':
      await atomicWrite(path, (tmp) => writeFileSync(tmp, encodePng(frameView(v, opts.frame ?? 0), v.width, v.height)));
      return [path];
    case 'gif':
      await atomicWrite(path, (tmp) => writeFileSync(tmp, encodeGif(v, opts.fps)));
      return [path];
    case 'mp4':
    case 'webm': {
      const ffmpeg = findFfmpeg();
      const frames = Array.from({ length: v.frames }, (_, i) => frameView(v, i));
      await atomicWrite(path, (tmp) => runFfmpeg(ffmpeg.path,
        ffmpegArgs(kind === 'mp4' ? 'h264' : 'vp9', v.width, v.height, opts.fps, tmp), frames));
      return [path];
    }
  }
}

/** Fails early (before minutes of sampling) when the output cannot be written or needs an ffmpeg that is missing. */
export function checkWritable(path: string): OutputKind {
  const kind = outputKind(path);
  const target = kind === 'pngs' ? path.replace(/[\\/]+$/, '') || '.' : path;
  const dir = kind === 'pngs' && existsSync(target) ? target : dirname(target);
  if (kind !== 'pngs' && !existsSync(dir)) throw new Error(`cannot write ${path}: directory ${dir} does not exist`);
  if (existsSync(dir)) {
    const probe = join(dir, `.t2v-write-test.${process.pid}`);
    try {
      writeFileSync(probe, '');
      rmSync(probe);
    } catch {
      throw new Error(`cannot write ${path}: directory ${dir} is not writable`);
    }
  }
  if (kind === 'mp4' || kind === 'webm') findFfmpeg();
  return kind;
}
