import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';
import { ROOT } from './helpers.js';

// The browser build: `import { TextToVideo } from 't2v'` bundled for the browser through package.json (exports
// "browser" condition, "browser" map of .browser.ts twins) holds no Node built-in, no Dawn binding and no ffmpeg.

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { browser: Record<string, string> };

function twins(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...twins(p));
    else if (e.name.endsWith('.browser.ts')) out.push(relative(ROOT, p));
  }
  return out.sort();
}

let work: string | null = null;
after(() => { if (work) rmSync(work, { recursive: true, force: true }); });

test('browser twins: each .browser.ts is in package.json\'s browser map and exports the names its Node module exports', async () => {
  const found = twins(join(ROOT, 'src'));
  assert.ok(found.length >= 5, `twins found: ${found.join(', ')}`);
  const mapped = Object.entries(pkg.browser).map(([from, to]) => [from.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts'), to.replace(/^\.\/dist\//, '').replace(/\.js$/, '.ts')]);
  assert.deepEqual(mapped.map(([, to]) => to).sort(), found);
  for (const [node, browser] of mapped) {
    assert.equal(browser, node.replace(/\.ts$/, '.browser.ts'));
    const a = Object.keys(await import(join(ROOT, node))).sort();
    const b = Object.keys(await import(join(ROOT, browser))).sort();
    assert.deepEqual(b, a, `${browser} exports what ${node} exports`);
  }
});

const built = existsSync(join(ROOT, 'dist', 'src', 'browser.js'));
test('browser bundle: import { TextToVideo } from \'t2v\' builds for the browser with no Node built-ins, Dawn or ffmpeg', {
  skip: !built && 'needs the compiled package (npm run build; npm test runs it first)',
}, async () => {
  work = mkdtempSync(join(tmpdir(), 't2v-bundle-'));
  mkdirSync(join(work, 'node_modules'));
  symlinkSync(ROOT, join(work, 'node_modules', 't2v'), 'dir');
  writeFileSync(join(work, 'entry.js'), "import { TextToVideo } from 't2v';\nexport const load = (url) => TextToVideo.load(url, { backend: 'webgpu' });\n");
  const r = await esbuild.build({
    entryPoints: [join(work, 'entry.js')], bundle: true, format: 'esm', platform: 'browser', minify: true, write: false,
    metafile: true, logLevel: 'silent', preserveSymlinks: false, outfile: join(work, 'out.js'),
  });
  const inputs = Object.keys(r.metafile.inputs);
  const bad = inputs.filter((p) => /^node:|(^|\/)node_modules\/(webgpu|ffmpeg-static|@ffmpeg-installer|@tensorflow\/tfjs-node)|dist\/src\/(io\/fs-source|pipeline\/tokenizer-files|media\/(result-files|host-bytes|video-writer|ffmpeg)|backends\/dawn-binding)\.js$|converters\/(modelscope|diffusers|open)\.js$/.test(p));
  assert.deepEqual(bad, [], 'Node-only modules in the browser bundle');
  assert.ok(inputs.some((p) => p.endsWith('dist/src/io/fs-source.browser.js')), 'the twin took the Node module\'s place');
  assert.ok(inputs.some((p) => p.endsWith('dist/src/browser.js')), 'the "browser" export condition was used');
  const js = r.outputFiles[0].contents;
  console.log(`browser bundle of 't2v': ${(js.length / 2 ** 20).toFixed(2)} MB minified, ${(gzipSync(js).length / 2 ** 20).toFixed(2)} MB gzipped`);
});
