import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where `npm run build:web` writes the page (dist/web beside dist/src). */
export const WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', ...(import.meta.url.includes('/dist/') ? ['web'] : ['dist', 'web']));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.map': 'application/json', '.bin': 'application/octet-stream', '.gz': 'application/gzip',
  '.txt': 'text/plain; charset=utf-8', '.png': 'image/png', '.wasm': 'application/wasm',
};

export interface ServeWebOptions {
  /** The built page (default WEB_DIR). */
  root?: string;
  /** A converted model folder served at /model/ (the page's default model URL). */
  model?: string;
  /** Default 127.0.0.1: the page is for this machine unless asked otherwise. */
  host?: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Told of every request (method, path, status). */
  onRequest?: (req: IncomingMessage, status: number) => void;
}

export interface WebServer {
  url: string;
  server: Server;
  close(): Promise<void>;
}

export class ServeWebError extends Error {}

/** The file under `base` for a URL path, or null when it leaves `base` or does not exist. */
function fileFor(base: string, urlPath: string): string | null {
  let p: string;
  try {
    p = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  const full = normalize(join(base, p));
  if (full !== base && !full.startsWith(base + sep)) return null;
  if (!existsSync(full)) return null;
  const st = statSync(full);
  if (st.isDirectory()) return existsSync(join(full, 'index.html')) ? join(full, 'index.html') : null;
  return st.isFile() ? full : null;
}

/** A static server for the page (and a model at /model/): GET and HEAD only, nothing outside the two folders. */
export async function serveWeb(opts: ServeWebOptions = {}): Promise<WebServer> {
  const root = resolve(opts.root ?? WEB_DIR);
  if (!existsSync(join(root, 'index.html'))) {
    throw new ServeWebError(`the page is not built (no ${join(root, 'index.html')}): run \`npm run build:web\` first`);
  }
  const model = opts.model !== undefined ? resolve(opts.model) : null;
  if (model !== null && !existsSync(join(model, 't2v.json'))) {
    throw new ServeWebError(`${model} is not a converted t2v model (no t2v.json); make one with \`t2v convert\``);
  }
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const send = (status: number, text: string) => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(text);
      opts.onRequest?.(req, status);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed');
    const file = model !== null && (path === '/model' || path.startsWith('/model/'))
      ? fileFor(model, path.slice('/model'.length) || '/') : fileFor(root, path);
    if (file === null) return send(404, 'not found');
    const size = statSync(file).size;
    res.writeHead(200, {
      'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': String(size), 'cache-control': 'no-cache',
    });
    opts.onRequest?.(req, 200);
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((res, rej) => {
    server.once('error', (err: NodeJS.ErrnoException) => rej(new ServeWebError(
      err.code === 'EADDRINUSE' ? `port ${opts.port ?? 8080} is in use: pick another with --port` : `cannot listen on ${host}: ${err.message}`)));
    server.listen(opts.port ?? 8080, host, () => res());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port ?? 8080;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/`,
    server,
    close: () => new Promise<void>((res) => { server.closeAllConnections(); server.close(() => res()); }),
  };
}
