import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { onPath } from '../src/media/ffmpeg.js';

/** ffprobe from @ffprobe-installer/ffprobe (a devDependency), else PATH; null when neither. */
export function ffprobePath(): string | null {
  try {
    const p = (createRequire(import.meta.url)('@ffprobe-installer/ffprobe') as { path: string }).path;
    if (existsSync(p)) return p;
  } catch { /* not installed */ }
  return onPath('ffprobe');
}

/** The first video stream's codec, pixel format, size, frame rate and decoded frame count. */
export function probe(file: string): Record<string, string> {
  const ffprobe = ffprobePath();
  assert.ok(ffprobe, 'ffprobe not found');
  const r = spawnSync(ffprobe, ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries',
    'stream=codec_name,pix_fmt,width,height,r_frame_rate,nb_read_frames', '-of', 'default=noprint_wrappers=1', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return Object.fromEntries(r.stdout.trim().split('\n').map((l) => l.split('=') as [string, string]));
}

