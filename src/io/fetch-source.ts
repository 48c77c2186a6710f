import type { ModelSource } from './source.js';

/** The Cache Storage bucket model files are kept in (FetchSourceOptions.cache). */
export const MODEL_CACHE = 't2v-models';

export interface FetchSourceOptions {
  /**
   * Keep every file fetched in the Cache Storage API under this name (default MODEL_CACHE), so loading the same URL
   * again downloads nothing; false: no cache. Ignored where there is no `caches` (Node).
   */
  cache?: string | false;
  /** Cancels the downloads. */
  signal?: AbortSignal;
  /** Replaces the global fetch (tests). */
  fetch?: typeof fetch;
}

export class DownloadError extends Error {}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].trim();
}

/** The folder URL with a trailing slash, resolved against the page in a browser. */
function folderUrl(location: string): string {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  const u = base !== undefined ? new URL(location, base) : new URL(location);
  if (!u.pathname.endsWith('/')) u.pathname += '/';
  return u.href;
}

/**
 * A converted model folder served over http(s) as static files (what `t2v convert` writes). Files are read through
 * the Cache Storage API where the runtime has one: a hit is read from the cache, a miss is downloaded (with
 * progress), checked against its expected size and put in the cache.
 */
export function fetchSource(location: string, opts: FetchSourceOptions = {}): ModelSource {
  const base = folderUrl(location);
  const doFetch = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const storage = (globalThis as { caches?: CacheStorage }).caches;
  const cacheName = opts.cache === false ? null : opts.cache ?? MODEL_CACHE;
  let opened: Promise<Cache | null> | null = null;
  const cache = (): Promise<Cache | null> => {
    if (cacheName === null || storage === undefined) return Promise.resolve(null);
    // a page not served from a secure origin has `caches` but may refuse to open it: go without
    opened ??= storage.open(cacheName).catch(() => null);
    return opened;
  };
  const url = (p: string) => new URL(p, base).href;
  const texts = new Map<string, Promise<string | null>>();

  async function get(p: string): Promise<{ res: Response; cached: boolean } | null> {
    const u = url(p);
    const c = await cache();
    const hit = c ? await c.match(u) : undefined;
    if (hit) return { res: hit, cached: true };
    let res: Response;
    try {
      res = await doFetch(u, { signal: opts.signal, cache: 'no-store' });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      throw new DownloadError(`cannot fetch ${u}: ${firstLine(err)} (is the server up, and does it allow this page's origin?)`);
    }
    if (res.status === 404 || res.status === 410) return null;
    if (!res.ok) throw new DownloadError(`${u}: HTTP ${res.status} ${res.statusText}`.trim());
    return { res, cached: false };
  }

  async function keep(p: string, body: ArrayBuffer | string, type: string): Promise<void> {
    const c = await cache();
    if (!c) return;
    try {
      await c.put(url(p), new Response(body, { headers: { 'content-type': type, 'content-length': String(typeof body === 'string' ? new TextEncoder().encode(body).length : body.byteLength) } }));
    } catch {
      // quota exceeded or the like: the model still loads, it is only not kept
    }
  }

  return {
    location,
    describe: (p) => (p === '' ? base : url(p)),
    async problem() { return null; },
    readText(p) {
      // the loader reads each manifest more than once: one request per small file and source
      let t = texts.get(p);
      if (t === undefined) {
        t = (async () => {
          const r = await get(p);
          if (r === null) return null;
          const text = await r.res.text();
          if (!r.cached) await keep(p, text, r.res.headers.get('content-type') ?? 'text/plain');
          return text;
        })();
        t.catch(() => texts.delete(p));
        texts.set(p, t);
      }
      return t;
    },
    async readBytes(p, expected, onBytes) {
      const r = await get(p);
      if (r === null) throw new DownloadError(`${url(p)}: not found (HTTP 404); the model folder is incomplete`);
      const buf = await readBody(r.res, url(p), expected, (n) => onBytes?.(n, r.cached));
      if (r.cached && expected >= 0 && buf.byteLength !== expected) {
        await (await cache())?.delete(url(p));
        throw new DownloadError(`${url(p)}: the cached copy has ${buf.byteLength} bytes, expected ${expected}; it was removed, load again`);
      }
      if (!r.cached) await keep(p, buf, 'application/octet-stream');
      return buf;
    },
  };
}

/** Reads a response body into one ArrayBuffer of the expected size, reporting progress; a short body is an error. */
async function readBody(res: Response, u: string, expected: number, onBytes: (n: number) => void): Promise<ArrayBuffer> {
  const header = Number(res.headers.get('content-length') ?? NaN);
  const size = expected >= 0 ? expected : Number.isFinite(header) ? header : -1;
  if (res.body === null || size < 0) {
    const b = await res.arrayBuffer();
    onBytes(b.byteLength);
    return b;
  }
  const out = new Uint8Array(size);
  const reader = res.body.getReader();
  let got = 0;
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (err) {
        throw new DownloadError(`the download of ${u} was cut off at ${got} of ${size} bytes (${firstLine(err)}); load again (files already downloaded are kept)`);
      }
      if (chunk.done) break;
      const v = chunk.value;
      if (got + v.length > size) throw new DownloadError(`${u}: more than the ${size} bytes expected; the model folder does not match its manifest`);
      out.set(v, got);
      got += v.length;
      onBytes(got);
    }
  } finally {
    reader.releaseLock();
  }
  if (got !== size) throw new DownloadError(`the download of ${u} was cut off at ${got} of ${size} bytes; load again (files already downloaded are kept)`);
  return out.buffer;
}
