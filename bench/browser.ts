// The page in headless Chromium: bundle sizes, model load (network, then Cache Storage), time to the first step's
// preview frame and total generation time, cold (shaders compiled on first use) and warm (a second generation).
//   node --import tsx bench/browser.ts            # the tiny e2e model, 32x32, 2 frames, 2 steps, SwiftShader
//   MODEL=DIR SIZE=256 FRAMES=16 STEPS=25 GPU=1 node --import tsx bench/browser.ts   # a converted model, a real GPU
// Env: CHROMIUM (default /usr/bin/chromium), GPU=1 drops --use-webgpu-adapter=swiftshader.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';
import { convertModelScope } from '../converters/modelscope.js';
import { serveWeb } from '../src/web/serve.js';
import { browserTwins, buildWeb, ROOT } from '../tools/build-web.js';

const env = process.env;
const size = Number(env.SIZE ?? 32);
const frames = Number(env.FRAMES ?? 2);
const steps = Number(env.STEPS ?? 2);
const args = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--no-sandbox', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', ...(env.GPU === '1' ? [] : ['--use-webgpu-adapter=swiftshader'])];

const work = mkdtempSync(join(tmpdir(), 't2v-bench-browser-'));
const rows: Array<[string, string]> = [];
let version = '';
const mb = (n: number) => `${(n / 2 ** 20).toFixed(2)} MB`;
try {
  const web = await buildWeb({ outDir: join(work, 'web') });
  const app = readFileSync(join(web.outDir, 'app.js'));
  rows.push(['page bundle (dist/web/app.js, minified)', `${mb(app.length)} (${mb(gzipSync(app).length)} gzipped)`]);
  writeFileSync(join(work, 'entry.ts'), `export { TextToVideo } from ${JSON.stringify(join(ROOT, 'src', 'browser.ts'))};\n`);
  const lib = await esbuild.build({ entryPoints: [join(work, 'entry.ts')], bundle: true, format: 'esm', platform: 'browser', minify: true, legalComments: 'none', write: false, plugins: [browserTwins], logLevel: 'silent' });
  const libJs = lib.outputFiles[0].contents;
  rows.push(["library only (import { TextToVideo } from 't2v', minified)", `${mb(libJs.length)} (${mb(gzipSync(libJs).length)} gzipped)`]);

  let model = env.MODEL;
  if (!model) {
    model = join(work, 'model');
    await convertModelScope(join(ROOT, 'test', 'fixtures', 'e2e', 'tiny'), model, {
      dtype: 'float16', tokenizer: join(ROOT, '..', 'shared', 'clip-tokenizer', 'bpe_simple_vocab_16e6.txt.gz'),
    });
  }
  const server = await serveWeb({ root: web.outDir, model, port: 0 });
  const browser = await chromium.launch({ executablePath: env.CHROMIUM ?? '/usr/bin/chromium', args });
  version = browser.version();
  try {
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => document.getElementById('gpu')!.textContent !== '' || !document.getElementById('error')!.hidden);
    rows.push(['adapter', (await page.textContent('#gpu')) ?? '']);
    type Api = { state: Record<string, number | string | null>; load(): Promise<void>; generate(): Promise<void> };
    const api = 'window.t2vPage';
    const load = async (label: string) => {
      await page.evaluate(`${api}.load()`);
      const s = await page.evaluate(`${api}.state`) as Api['state'];
      if (s.error) throw new Error(String(s.error));
      rows.push([label, `${((s.loadMs as number) / 1000).toFixed(2)} s`]);
    };
    await load('model load, from the server (cold)');
    await load('model load, again (Cache Storage)');
    for (const [id, v] of Object.entries({ width: size, height: size, frames, steps, seed: 1 })) await page.fill(`#${id}`, String(v));
    for (const run of ['cold: shaders compiled on first use', 'warm: a second generation']) {
      await page.evaluate(`${api}.generate()`);
      const s = await page.evaluate(`${api}.state`) as Api['state'];
      if (s.error) throw new Error(String(s.error));
      rows.push([`${size}x${size}, ${frames} frames, ${steps} steps, ${run}: first step preview / total`,
        `${((s.firstFrameMs as number) / 1000).toFixed(2)} s / ${((s.totalMs as number) / 1000).toFixed(2)} s`]);
    }
  } finally {
    await browser.close();
    await server.close();
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(`Chromium ${version} headless (${args.join(' ')})\n`);
console.log('| what | figure |\n|---|---|');
for (const [k, v] of rows) console.log(`| ${k} | ${v} |`);
