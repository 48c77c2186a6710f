import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VideoResult } from '../src/pipeline/result.js';

const video = (frames: number, h: number, w: number) => new VideoResult(
  Uint8Array.from({ length: frames * h * w * 3 }, (_, i) => (i * 37) % 256), frames, h, w,
  new Float32Array(4 * frames * (h / 8) * (w / 8)), [1, 4, frames, h / 8, w / 8], 8, 42, [981, 1], { text: 1, denoise: 2, decode: 3, total: 6 });

test('toHtml: an <img> of the animated GIF as a data URL, enlarged to 256 px without smoothing; displayBundle and Jupyter.display give it as text/html', () => {
  const v = video(3, 32, 40);
  const html = v.toHtml();
  const m = /^<img src="data:image\/gif;base64,([A-Za-z0-9+/=]+)" width="256" alt="3 frames 40x32, seed 42" title="[^"]+" style="image-rendering: pixelated">$/.exec(html);
  assert.ok(m, html.slice(0, 200));
  const gif = Buffer.from(m[1], 'base64');
  assert.deepEqual(gif, v.toGif(), 'the same bytes as toGif()');
  assert.equal(gif.subarray(0, 6).toString('latin1'), 'GIF89a');
  assert.equal(gif.readUInt16LE(6), 40);
  assert.equal(gif.readUInt16LE(8), 32);
  assert.match(v.toHtml({ width: 100 }), /width="100"/);
  assert.match(video(1, 512, 512).toHtml(), /width="512"/);
  const bundle = v.displayBundle();
  assert.equal(bundle['text/html'], html);
  assert.equal(bundle['text/plain'], 'VideoResult: 3 frames 40x32 at 8 fps');
  const jupyter = (v as unknown as Record<symbol, () => unknown>)[Symbol.for('Jupyter.display')]();
  assert.deepEqual(jupyter, bundle);
});
