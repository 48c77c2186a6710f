/** Generation settings; each has upstream's default unless the model folder's t2v.json says otherwise. */
export interface GenerationDefaults {
  height: number;
  width: number;
  frames: number;
  steps: number;
  guidance: number;
  fps: number;
}

/** text_to_video_synthesis_model.py: 256x256, 16 frames, 50 DDIM steps, guidance 9; the pipeline writes 8 fps. */
export const UPSTREAM_DEFAULTS: GenerationDefaults = { height: 256, width: 256, frames: 16, steps: 50, guidance: 9, fps: 8 };

/**
 * Frames per VAE decode call. Two kept a 16x256x256 video's decode (5.19 GiB at peak, weights included) under its
 * UNet steps' peak (5.42 GiB) on webgpu; four made the decode the video's peak (5.93 GiB; bench/pool-sim.ts at 7cc861f).
 */
export const DEFAULT_DECODE_CHUNK = 2;

/** No output format takes a larger frame side (VP9's 16-bit sizes; GIF stops at 65535). */
export const MAX_SIDE = 65536;

/** Guidance scales beyond this drive the latents to Inf within a few steps. */
export const MAX_GUIDANCE = 1e4;

function isInt(v: number): boolean {
  return Number.isInteger(v);
}

/** Throws one clear line for a setting that cannot work. */
export function validateSettings(s: { height: number; width: number; frames: number; steps: number; guidance: number;
  decodeChunk?: number; fps?: number }, numTimesteps = 1000): void {
  for (const k of ['height', 'width'] as const) {
    const v = s[k];
    if (!isInt(v) || v < 8 || v % 8 !== 0) throw new Error(`${k} must be a positive multiple of 8, got ${v}`);
    if (v > MAX_SIDE) throw new Error(`${k} must be at most ${MAX_SIDE} (the largest frame side of any output format), got ${v}`);
  }
  if (!isInt(s.frames) || s.frames < 1) throw new Error(`frames must be an integer >= 1, got ${s.frames}`);
  if (!isInt(s.steps) || s.steps < 1 || s.steps > numTimesteps) {
    throw new Error(`steps must be an integer in 1..${numTimesteps}, got ${s.steps}`);
  }
  if (!Number.isFinite(s.guidance)) throw new Error(`guidance must be a number, got ${s.guidance}`);
  if (Math.abs(s.guidance) > MAX_GUIDANCE) {
    throw new Error(`guidance must be within -${MAX_GUIDANCE}..${MAX_GUIDANCE} (upstream uses 9; larger values overflow the latents), got ${s.guidance}`);
  }
  if (s.decodeChunk !== undefined && (!isInt(s.decodeChunk) || s.decodeChunk < 1)) {
    throw new Error(`decode chunk must be an integer >= 1, got ${s.decodeChunk}`);
  }
  if (s.fps !== undefined && !(Number.isFinite(s.fps) && s.fps > 0)) throw new Error(`fps must be a positive number, got ${s.fps}`);
}
