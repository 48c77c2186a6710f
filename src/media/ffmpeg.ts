import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { onInterrupt } from './interrupt.js';

export interface FfmpegLocation {
  path: string;
  /** Where it came from: FFMPEG_PATH, ffmpeg-static, @ffmpeg-installer/ffmpeg or PATH. */
  source: string;
}

const require = createRequire(import.meta.url);

function executable(path: string | null | undefined): path is string {
  if (!path) return false;
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function fromPackage(pkg: string, pick: (m: unknown) => unknown): string | null {
  try {
    const p = pick(require(pkg));
    return typeof p === 'string' ? p : null;
  } catch {
    return null;
  }
}

/** Searches PATH for an executable (with PATHEXT suffixes on Windows). */
export function onPath(name: string): string | null {
  const exts = process.platform === 'win32' ? (process.env.PATHEXT ?? '.EXE').split(';') : [''];
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const p = join(dir, name + ext);
      if (executable(p)) return p;
    }
  }
  return null;
}

export const NO_FFMPEG = 'no ffmpeg found: set FFMPEG_PATH to an ffmpeg executable, `npm install ffmpeg-static` or '
  + '`@ffmpeg-installer/ffmpeg`, or put ffmpeg on PATH (PNG and GIF output need no ffmpeg)';

/**
 * ffmpeg from FFMPEG_PATH, else the `ffmpeg-static` package, else `@ffmpeg-installer/ffmpeg`, else PATH.
 * A FFMPEG_PATH that is set but not executable is an error, not a fall-through.
 */
export function findFfmpeg(env: NodeJS.ProcessEnv = process.env): FfmpegLocation {
  const fromEnv = env.FFMPEG_PATH;
  if (fromEnv) {
    if (!executable(fromEnv)) throw new Error(`FFMPEG_PATH=${fromEnv} is not an executable file`);
    return { path: fromEnv, source: 'FFMPEG_PATH' };
  }
  const candidates: [string, () => string | null][] = [
    ['ffmpeg-static', () => fromPackage('ffmpeg-static', (m) => m)],
    ['@ffmpeg-installer/ffmpeg', () => fromPackage('@ffmpeg-installer/ffmpeg', (m) => (m as { path?: unknown }).path)],
    ['PATH', () => onPath('ffmpeg')],
  ];
  for (const [source, find] of candidates) {
    const p = find();
    if (executable(p)) return { path: p, source };
  }
  throw new Error(NO_FFMPEG);
}

export type VideoCodec = 'h264' | 'vp9';

/** ffmpeg arguments that read rawvideo rgb24 from stdin and write `out` (the muxer is named, not guessed). */
export function ffmpegArgs(codec: VideoCodec, width: number, height: number, fps: number, out: string): string[] {
  const input = ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24',
    '-s', `${width}x${height}`, '-r', String(fps), '-i', 'pipe:0'];
  // yuv420p needs even sizes; the pipeline's sizes are multiples of 8, the pad is for frames from elsewhere.
  const even = ['-vf', 'pad=ceil(iw/2)*2:ceil(ih/2)*2'];
  if (codec === 'h264') {
    return [...input, ...even, '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-crf', '17', '-preset', 'medium',
      '-movflags', '+faststart', '-f', 'mp4', out];
  }
  return [...input, ...even, '-c:v', 'libvpx-vp9', '-pix_fmt', 'yuv420p', '-crf', '30', '-b:v', '0',
    '-f', 'webm', out];
}

/**
 * Pipes frames (rgb24, frame after frame) into ffmpeg; rejects with ffmpeg's last error line. SIGINT or SIGTERM
 * meanwhile kills ffmpeg (it would otherwise finish a truncated file after we are gone).
 */
export function runFfmpeg(ffmpeg: string, args: string[], frames: Iterable<Uint8Array>): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn(ffmpeg, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let interrupted = false;
    const off = onInterrupt(() => {
      interrupted = true;
      proc.kill('SIGKILL');
    });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    proc.on('error', (err) => {
      off();
      reject(new Error(`cannot run ffmpeg (${ffmpeg}): ${err.message}`));
    });
    proc.on('close', (code) => {
      off();
      if (interrupted) reject(new Error('interrupted while ffmpeg was encoding'));
      else if (code === 0) resolve();
      else {
        const last = stderr.trim().split('\n').filter(Boolean).pop() ?? `exit code ${code}`;
        reject(new Error(`ffmpeg failed: ${last}`));
      }
    });
    proc.stdin.on('error', () => { /* ffmpeg exited early; 'close' reports why */ });
    (async () => {
      for (const f of frames) {
        if (!proc.stdin.write(f)) await new Promise<void>((r) => proc.stdin.once('drain', () => r()));
      }
      proc.stdin.end();
    })().catch(reject);
  });
}
