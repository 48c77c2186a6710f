import type { NpyArray } from '../io/npy.js';
import type { Frames } from './images.js';
import type { WriteOptions } from './video-writer.js';

// Browser builds: there are no paths to write to; a page takes result.frames, toGif() or toPng() instead.
export async function writeVideo(path: string, _v: Frames, _opts: WriteOptions): Promise<string[]> {
  throw new Error(`cannot save ${path}: writing files needs Node; in a browser use result.toGif(), toPng() or frames`);
}

export function writeNpy(path: string, _arr: NpyArray): void {
  throw new Error(`cannot save ${path}: writing files needs Node; in a browser use result.latents`);
}
