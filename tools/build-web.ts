// Builds the page in web/ into dist/web/ (npm run build:web): web/app.ts and the library's browser entry bundled by
// esbuild for the browser. A module with a `.browser.ts` twin (src/io/fs-source.browser.ts, ...) is replaced by it,
// as package.json's "browser" map does for bundlers that take t2v from npm. A Node built-in that slips into the
// browser graph fails the build (esbuild cannot resolve node:* for the browser).
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const WEB_OUT = join(ROOT, 'dist', 'web');

/** Relative `./x.js` imports resolve to `./x.browser.ts` where that twin exists. */
export const browserTwins: esbuild.Plugin = {
  name: 't2v-browser-twins',
  setup(build) {
    build.onResolve({ filter: /^\.\.?\/.*\.js$/ }, (args) => {
      const twin = resolve(args.resolveDir, args.path.replace(/\.js$/, '.browser.ts'));
      return existsSync(twin) ? { path: twin } : undefined;
    });
  },
};

export interface BuildWebOptions {
  outDir?: string;
  minify?: boolean;
}

export interface BuildWebResult {
  outDir: string;
  /** Bytes of each file written. */
  files: Record<string, number>;
}

/** Bundles web/app.ts and copies the static files; written to a temporary folder and renamed when complete. */
export async function buildWeb(opts: BuildWebOptions = {}): Promise<BuildWebResult> {
  const outDir = opts.outDir ?? WEB_OUT;
  const tmp = `${outDir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    await esbuild.build({
      entryPoints: [join(ROOT, 'web', 'app.ts')],
      outfile: join(tmp, 'app.js'),
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      minify: opts.minify ?? true,
      sourcemap: true,
      legalComments: 'none',
      logLevel: 'warning',
      plugins: [browserTwins],
    });
    for (const f of ['index.html', 'style.css']) copyFileSync(join(ROOT, 'web', f), join(tmp, f));
    rmSync(outDir, { recursive: true, force: true });
    mkdirSync(dirname(outDir), { recursive: true });
    renameSync(tmp, outDir);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  const files: Record<string, number> = {};
  for (const f of ['index.html', 'style.css', 'app.js', 'app.js.map']) files[f] = statSync(join(outDir, f)).size;
  return { outDir, files };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const r = await buildWeb();
    console.log(`t2v: page built in ${r.outDir} (app.js ${(r.files['app.js'] / 2 ** 20).toFixed(2)} MB)`);
  } catch (err) {
    console.error(`t2v: build:web failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    process.exitCode = 1;
  }
}
