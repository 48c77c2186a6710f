import type { Frames } from './images.js';

/** Video-to-video's input: frames, or (in Node) a path to a video file or a folder of PNG frames. */
export type VideoInput = Frames | string;

export interface VideoReadOptions {
  /** Keep only the first N frames (decoding stops there). */
  frames?: number;
  /** Resize every frame to this size (both or neither). */
  width?: number;
  height?: number;
}

export function checkReadOptions(o: VideoReadOptions): void {
  if ((o.width === undefined) !== (o.height === undefined)) throw new Error('video: give both width and height to resize, or neither');
  if (o.frames !== undefined && (!Number.isInteger(o.frames) || o.frames < 1)) throw new Error(`frames must be an integer >= 1, got ${o.frames}`);
}

export function checkFrames(v: Frames, what: string): void {
  for (const k of ['frames', 'height', 'width'] as const) {
    if (!Number.isInteger(v[k]) || v[k] < 1) throw new Error(`${what}: ${k} must be a positive integer, got ${v[k]}`);
  }
  if (!(v.data instanceof Uint8Array) || v.data.length !== v.frames * v.height * v.width * 3) {
    throw new Error(`${what}: data must be a Uint8Array of frames * height * width * 3 = ${v.frames * v.height * v.width * 3} bytes (RGB), got ${v.data?.length}`);
  }
}

/** The first `n` frames (all when n is undefined); fewer than n is an error. */
export function firstFrames(v: Frames, n?: number): Frames {
  if (n === undefined) return v;
  if (v.frames < n) throw new Error(`video has ${v.frames} frames, fewer than the ${n} asked for`);
  return v.frames > n ? { ...v, data: v.data.subarray(0, n * v.height * v.width * 3), frames: n } : v;
}
