import { contactSheet, dataUrl, encodeGif, encodePng, frameView, type Frames } from '../media/images.js';
import { writeNpy, writeVideo } from '../media/result-files.js';

/** Milliseconds spent in each stage of one generation. */
export interface StageTimings {
  text: number;
  denoise: number;
  decode: number;
  total: number;
}

/** What `TextToVideo.generate` returns: the frames, the final latents, and helpers to save or show them. */
export class VideoResult {
  constructor(
    /** uint8 RGB, frame-major [numFrames, height, width, 3]. */
    readonly frames: Uint8Array,
    readonly numFrames: number,
    readonly height: number,
    readonly width: number,
    /** The DDIM result before the 1/scale_factor scaling, float32 in upstream layout [1, 4, frames, h/8, w/8]. */
    readonly latents: Float32Array,
    readonly latentsShape: number[],
    readonly fps: number,
    /** The seed the initial noise came from, or null when the noise was given. */
    readonly seed: number | null,
    /** The DDIM timesteps, in sampling order. */
    readonly timesteps: number[],
    readonly timings: StageTimings,
  ) {}

  /** The frames as the image and video writers take them. */
  get clip(): Frames {
    return { data: this.frames, frames: this.numFrames, height: this.height, width: this.width };
  }

  /** One frame, uint8 RGB [height, width, 3] (a view, not a copy). */
  frame(i: number): Uint8Array {
    return frameView(this.clip, i);
  }

  /** Writes by extension: .mp4, .webm, .gif, .png (one frame), or a directory (one PNG per frame). */
  async save(path: string, opts: { fps?: number; frame?: number } = {}): Promise<string[]> {
    return writeVideo(path, this.clip, { fps: opts.fps ?? this.fps, frame: opts.frame });
  }

  /** The final latents as a float32 .npy [1, 4, frames, h/8, w/8]. */
  saveLatents(path: string): void {
    writeNpy(path, { dtype: 'float32', shape: this.latentsShape, data: this.latents });
  }

  toGif(fps = this.fps): Buffer {
    return encodeGif(this.clip, fps);
  }

  toPng(frameIndex = 0): Buffer {
    return encodePng(this.frame(frameIndex), this.width, this.height);
  }

  /** All frames in one PNG, `columns` per row. */
  contactSheet(columns?: number): Buffer {
    const s = contactSheet(this.clip, columns);
    return encodePng(s.rgb, s.width, s.height);
  }

  toGifDataUrl(fps = this.fps): string {
    return dataUrl('image/gif', this.toGif(fps));
  }

  toPngDataUrl(frameIndex = 0): string {
    return dataUrl('image/png', this.toPng(frameIndex));
  }

  contactSheetDataUrl(columns?: number): string {
    return dataUrl('image/png', this.contactSheet(columns));
  }

  /**
   * The video as an `<img>` of the animated GIF in a data URL, for a notebook or any HTML page. `width`: display
   * width in CSS pixels (default the video's own, at least 256; enlarged without smoothing).
   */
  toHtml(opts: { width?: number; fps?: number } = {}): string {
    const width = Math.round(opts.width ?? Math.max(256, this.width));
    const alt = `${this.numFrames} frames ${this.width}x${this.height}${this.seed !== null ? `, seed ${this.seed}` : ''}`;
    return `<img src="${this.toGifDataUrl(opts.fps ?? this.fps)}" width="${width}" alt="${alt}" title="${alt}" style="image-rendering: pixelated">`;
  }

  /**
   * The MIME bundle a Jupyter kernel shows: `text/html` (toHtml) and `text/plain`. In tslab:
   * `tslab.display.html(video.toHtml())`; Deno's kernel calls `[Symbol.for('Jupyter.display')]` itself.
   */
  displayBundle(opts: { width?: number; fps?: number } = {}): { 'text/html': string; 'text/plain': string } {
    return { 'text/html': this.toHtml(opts), 'text/plain': `VideoResult: ${this.numFrames} frames ${this.width}x${this.height} at ${this.fps} fps` };
  }

  [Symbol.for('Jupyter.display')](): { 'text/html': string; 'text/plain': string } {
    return this.displayBundle();
  }
}
