import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { convertModelScope } from '../converters/modelscope.js';
import { seededNoise } from '../src/pipeline/noise.js';
import { TextToVideo } from '../src/pipeline/text2video.js';
import { serveWeb, type WebServer } from '../src/web/serve.js';
import { buildWeb } from '../tools/build-web.js';
import { CLIP_VOCAB, FIXTURES, hasClipVocab, PARITY_TOL, relMaxError, ROOT } from './helpers.js';

// The page in headless Chromium on WebGPU (SwiftShader: subgroups, no shader-f16), against the Node cpu backend:
// dist/web built into a temp folder, the tiny e2e model converted (float16 storage), both served from 127.0.0.1.
// SwiftShader compiles each shader slowly, so the generation is the smallest there is: 32x32, 2 frames, 2 steps.

const CHROMIUM = process.env.T2V_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-webgpu-adapter=swiftshader',
  '--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const ARTIFACTS = join(ROOT, 'test-artifacts');
const SETTINGS = { prompt: 'a panda eating bamboo on a rock', negative: 'blurry', width: 32, height: 32, frames: 2, steps: 2, guidance: 9 };
const SHAPE = [1, 4, SETTINGS.frames, SETTINGS.height / 8, SETTINGS.width / 8];

const skip = !existsSync(CHROMIUM) ? `needs Chromium at ${CHROMIUM} (apt-get install -y chromium; .ci/run does)`
  : !hasClipVocab ? 'needs the CLIP vocabulary beside the checkout' : false;

let work: string;
let server: WebServer;
let browser: Browser;
let context: BrowserContext;
const requests = new Map<string, number>();
let reference: Float32Array;
let float32Bytes = 0;
let first: Page | null = null; // the first test's page, kept for the second (its shaders are compiled)
const noise = seededNoise(7, SHAPE);

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 't2v-browser-'));
  const model = join(work, 'model');
  await buildWeb({ outDir: join(work, 'web') });
  await convertModelScope(join(FIXTURES, 'e2e', 'tiny'), model, { dtype: 'float16', tokenizer: CLIP_VOCAB });
  await tf.setBackend('cpu');
  const t2v = await TextToVideo.load(model);
  const r = await t2v.generate({ ...SETTINGS, negativePrompt: SETTINGS.negative, noise });
  reference = r.latents;
  t2v.dispose();
  server = await serveWeb({
    root: join(work, 'web'), model, port: 0,
    onRequest: (req) => {
      const p = new URL(req.url ?? '/', 'http://x').pathname;
      requests.set(p, (requests.get(p) ?? 0) + 1);
    },
  });
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  context = await browser.newContext();
});

after(async () => {
  await browser?.close();
  await server?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

type PageApi = {
  state: { phase: string; error: string | null; firstFrameMs: number | null; totalMs: number | null; steps: number; loadMs: number | null };
  load(url?: string, half?: boolean): Promise<void>;
  generate(): Promise<void>;
  setNoise(v: number[] | null): void;
  latents(): number[] | null;
  latentsShape(): number[] | null;
  halfWeights(): boolean | null;
  tensorBytes(): number;
};

async function openPage(ctx: BrowserContext = context, query = ''): Promise<Page> {
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${server.url}${query}`);
  await page.waitForFunction(() => document.getElementById('gpu')!.textContent !== '' || !document.getElementById('error')!.hidden);
  return page;
}

const shardRequests = () => [...requests].filter(([p]) => p.endsWith('.bin')).reduce((a, [, n]) => a + n, 0);
const modelRequests = () => [...requests].filter(([p]) => p.startsWith('/model/')).reduce((a, [, n]) => a + n, 0);

/** Fills the form with SETTINGS and the noise, generates, and waits for the end. */
async function generateOn(page: Page): Promise<PageApi['state']> {
  for (const [id, v] of Object.entries({ prompt: SETTINGS.prompt, negative: SETTINGS.negative, width: SETTINGS.width, height: SETTINGS.height,
    frames: SETTINGS.frames, steps: SETTINGS.steps, guidance: SETTINGS.guidance })) await page.fill(`#${id}`, String(v));
  await page.evaluate((n) => (window as unknown as { t2vPage: PageApi }).t2vPage.setNoise(n), Array.from(noise));
  await page.click('#generate');
  await page.waitForFunction(() => ['done', 'error'].includes((window as unknown as { t2vPage: PageApi }).t2vPage.state.phase), null, { timeout: 540_000 });
  return page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.state);
}

test('browser: the page generates on WebGPU from given noise; latents equal the Node cpu backend\'s (1e-4); screenshot kept', { skip, timeout: 600_000 }, async () => {
  const page = await openPage();
  assert.match(await page.textContent('#gpu') ?? '', /WebGPU: .*swiftshader/i);
  await page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.load());
  const loaded = await page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.state);
  assert.equal(loaded.error, null);
  assert.equal(loaded.phase, 'ready');
  assert.equal(await page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.halfWeights()), false, 'float32 weights where the device has no shader-f16');
  float32Bytes = await page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.tensorBytes());
  assert.ok(shardRequests() >= 3, `every network's shards downloaded (${shardRequests()} requests)`);
  const s = await generateOn(page);
  assert.equal(s.error, null);
  assert.equal(s.steps, SETTINGS.steps);
  const latents = await page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.latents());
  assert.deepEqual(await page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.latentsShape()), SHAPE);
  const err = relMaxError(latents!, reference);
  console.log(`browser vs Node cpu: final latents relMaxError ${err.toExponential(2)}; load ${(loaded.loadMs! / 1000).toFixed(1)} s, `
    + `first step preview ${(s.firstFrameMs! / 1000).toFixed(1)} s, total ${(s.totalMs! / 1000).toFixed(1)} s`);
  assert.ok(err <= PARITY_TOL, `latents relMaxError ${err}`);
  assert.equal(await page.isVisible('#download-gif'), true);
  const video = await page.evaluate(() => {
    const v = document.getElementById('video') as HTMLVideoElement;
    return { src: v.src, hidden: v.hidden };
  });
  assert.ok(video.src.startsWith('blob:') || !(await page.isHidden('#gif')), 'the video (webm) or the GIF is shown');
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'browser-page.png'), fullPage: true });
  first = page;
});

test('browser: float16-resident weights (forced: SwiftShader has no shader-f16, the unpacking needs none) give the cpu backend\'s latents (1e-4)', { skip, timeout: 600_000 }, async () => {
  const page = first ?? await openPage();
  await page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.load(undefined, true));
  assert.equal(await page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.halfWeights()), true);
  assert.match(await page.textContent('#status') ?? '', /weights float16 on the GPU/);
  const halfBytes = await page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.tensorBytes());
  console.log(`weights on the GPU: ${(halfBytes / 2 ** 20).toFixed(1)} MB float16-resident, ${(float32Bytes / 2 ** 20).toFixed(1)} MB float32`);
  assert.ok(float32Bytes > 0 && halfBytes < 0.55 * float32Bytes, `float16-resident weights take ${halfBytes} bytes against ${float32Bytes}`);
  const s = await generateOn(page);
  assert.equal(s.error, null);
  const latents = await page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.latents());
  const err = relMaxError(latents!, reference);
  console.log(`browser, float16-resident weights, vs Node cpu: final latents relMaxError ${err.toExponential(2)}; total ${(s.totalMs! / 1000).toFixed(1)} s`);
  assert.ok(err <= PARITY_TOL, `latents relMaxError ${err}`);
  await page.close();
});

test('browser: a second visit loads the model from Cache Storage: no file of the model is fetched again', { skip, timeout: 300_000 }, async () => {
  const shards = shardRequests();
  const all = modelRequests();
  assert.ok(shards > 0, 'the first test downloaded the shards');
  const page = await openPage();
  await page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.load());
  const s = await page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.state);
  assert.equal(s.error, null);
  assert.equal(s.phase, 'ready');
  assert.match(await page.textContent('#status') ?? '', /model loaded/);
  assert.equal(shardRequests(), shards, 'no shard re-fetched');
  assert.equal(modelRequests(), all, 'no model file re-fetched');
  await page.close();
});

test('browser: clear messages for a URL that is not a t2v folder, a cut-off download, and no WebGPU', { skip, timeout: 300_000 }, async () => {
  const page = await openPage();
  await page.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.load('nothing-here/'));
  assert.match(await page.textContent('#error') ?? '', /nothing-here\/ is not a converted t2v model \(no t2v\.json\); make one with `t2v convert`/);
  await page.close();

  // a fresh context (empty cache) whose UNet shard arrives cut short
  const fresh = await browser.newContext();
  await fresh.route('**/model/unet/*.bin', async (route) => {
    const res = await route.fetch();
    const body = await res.body();
    await route.fulfill({ response: res, body: body.subarray(0, body.length >> 1) });
  });
  const cut = await openPage(fresh);
  await cut.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.load());
  assert.match(await cut.textContent('#error') ?? '', /the download of http:\/\/127\.0\.0\.1:\d+\/model\/unet\/group1-shard1of1\.bin was cut off at \d+ of \d+ bytes.*load again/);
  await fresh.close();

  // a size whose activations need a buffer larger than the device allows: refused before sampling (src/pipeline/memory.ts)
  const big = await openPage();
  await big.evaluate(() => (window as unknown as { t2vPage: PageApi }).t2vPage.load());
  for (const [id, v] of Object.entries({ width: 16384, height: 16384, frames: 2, steps: 1 })) await big.fill(`#${id}`, String(v));
  await big.click('#generate');
  await big.waitForFunction(() => ['done', 'error'].includes((window as unknown as { t2vPage: PageApi }).t2vPage.state.phase));
  assert.match(await big.textContent('#error') ?? '', /^2 frames at 16384x16384 needs a [\d.]+ GB tensor, larger than the WebGPU adapter's maxStorageBufferBindingSize \/ maxBufferSize \([\d.]+ GB\): use fewer frames or a smaller size/);
  await big.close();

  const noGpu = await browser.newContext();
  await noGpu.addInitScript({ content: "Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined });" });
  const p = await openPage(noGpu);
  assert.match(await p.textContent('#error') ?? '', /this browser has no WebGPU/);
  assert.equal(await p.isDisabled('#load'), true);
  await noGpu.close();
});
