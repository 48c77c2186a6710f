import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join, resolve } from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import { T2VQueue, type JobStatus, type SubmitOptions } from './client.js';
import { JobDataError } from './job-data.js';
import { PAGE_HTML } from './page.js';

export interface ServeOptions {
  redis: string;
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1 (this machine only). */
  host?: string;
  /** When set, every /jobs request needs `Authorization: Bearer TOKEN` (or `?access_token=TOKEN`, for <video> and SSE). */
  token?: string;
  /** The folder the workers write into (shared with them), default ./results. */
  results?: string;
  submit?: SubmitOptions;
}

export interface T2VServer {
  readonly server: Server;
  readonly url: string;
  readonly queue: T2VQueue;
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;
const VIDEO_TYPES: Record<string, string> = { mp4: 'video/mp4', webm: 'video/webm', gif: 'image/gif' };
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'send the job as Content-Type: application/json');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY} bytes`);
    chunks.push(c as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
}

function sameToken(given: string, want: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Pages of other sites cannot reach a loopback server through a DNS name that points at it (DNS rebinding). */
function hostAllowed(req: IncomingMessage, boundToLoopback: boolean): boolean {
  if (!boundToLoopback) return true;
  const host = (req.headers.host ?? '').replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  return LOOPBACK.has(host);
}

const sse = (res: ServerResponse, event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
const finished = (s: JobStatus) => s.state === 'completed' || s.state === 'failed';

/**
 * The HTTP API over the `t2v` queue and its web page: POST /jobs, GET /jobs (the queue), GET /jobs/:id,
 * GET /jobs/:id/events (server-sent events), GET /jobs/:id/video, POST /jobs/:id/cancel, GET / (the page).
 */
export async function startServer(o: ServeOptions): Promise<T2VServer> {
  const host = o.host ?? '127.0.0.1';
  const port = o.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be an integer in 0..65535, got ${o.port}`);
  if (o.token !== undefined && o.token.length < 8) throw new Error('the token must be at least 8 characters');
  const results = resolve(o.results ?? 'results');
  const queue = await T2VQueue.open(o.redis);
  await queue.queueEvents(); // listening from the start: the first client's events are not missed
  const loopback = LOOPBACK.has(host);
  const streams = new Set<ServerResponse>();

  const events = async (id: string, res: ServerResponse) => {
    const s = await queue.status(id);
    if (!s) throw new HttpError(404, `no job ${id}`);
    const ev = await queue.queueEvents();
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    streams.add(res);
    const done = () => {
      clearInterval(beat);
      ev.off('progress', onProgress);
      ev.off('completed', onEnd);
      ev.off('failed', onEnd);
      ev.off('removed', onRemoved);
      streams.delete(res);
      res.end();
    };
    const onProgress = ({ jobId, data }: { jobId: string; data: unknown }) => { if (jobId === id) sse(res, 'progress', data); };
    const onEnd = ({ jobId }: { jobId: string }) => {
      if (jobId !== id) return;
      void queue.status(id).then((now) => {
        if (now) sse(res, 'state', now);
        done();
      }, done);
    };
    const onRemoved = ({ jobId }: { jobId: string }) => {
      if (jobId !== id) return;
      sse(res, 'removed', { id });
      done();
    };
    const beat = setInterval(() => res.write(': keep-alive\n\n'), 15000);
    res.on('close', done);
    ev.on('progress', onProgress);
    ev.on('completed', onEnd);
    ev.on('failed', onEnd);
    ev.on('removed', onRemoved);
    // the state after listening, so an end in between is seen
    const now = await queue.status(id);
    if (!now) {
      sse(res, 'removed', { id });
      done();
      return;
    }
    sse(res, 'state', now);
    if (finished(now)) done();
  };

  const video = async (id: string, req: IncomingMessage, res: ServerResponse) => {
    const s = await queue.status(id);
    if (!s) throw new HttpError(404, `no job ${id}`);
    if (s.state !== 'completed' || !s.result) throw new HttpError(409, `job ${id} is ${s.state}, it has no video yet`);
    const file = join(results, basename(s.result.path));
    if (!existsSync(file)) throw new HttpError(404, `the video of job ${id} is not in ${results} (serve's --results must be the workers' folder)`);
    const size = statSync(file).size;
    const type = VIDEO_TYPES[s.result.format] ?? 'application/octet-stream';
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    if (range && (range[1] !== '' || range[2] !== '')) {
      const start = range[1] === '' ? Math.max(0, size - Number(range[2])) : Number(range[1]);
      const end = range[1] === '' || range[2] === '' ? size - 1 : Math.min(Number(range[2]), size - 1);
      if (start > end || start >= size) {
        res.writeHead(416, { 'content-range': `bytes */${size}` });
        res.end();
        return;
      }
      res.writeHead(206, { 'content-type': type, 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}`, 'accept-ranges': 'bytes' });
      createReadStream(file, { start, end }).pipe(res);
      return;
    }
    res.writeHead(200, { 'content-type': type, 'content-length': size, 'accept-ranges': 'bytes', 'cache-control': 'no-store' });
    createReadStream(file).pipe(res);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (!hostAllowed(req, loopback)) throw new HttpError(403, 'this server answers only to localhost, 127.0.0.1 or [::1]');
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/' || path === '/index.html') {
      if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, `${method} / is not allowed`);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store',
        'content-security-policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; media-src 'self' blob:; img-src 'self' data:" });
      res.end(method === 'HEAD' ? undefined : PAGE_HTML);
      return;
    }
    if (path !== '/jobs' && !path.startsWith('/jobs/')) throw new HttpError(404, `no route ${path}`);
    if (o.token !== undefined) {
      const auth = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? url.searchParams.get('access_token') ?? '';
      if (!sameToken(auth, o.token)) {
        res.setHeader('www-authenticate', 'Bearer');
        throw new HttpError(401, 'a bearer token is required (Authorization: Bearer TOKEN)');
      }
    }
    if (path === '/jobs') {
      if (method === 'POST') {
        const body = await readJson(req);
        const [id] = await queue.add([body], o.submit); // bad data: JobDataError, answered 400
        send(res, 201, { id });
        return;
      }
      if (method !== 'GET') throw new HttpError(405, `${method} /jobs is not allowed`);
      const limit = Number(url.searchParams.get('limit') ?? 50);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new HttpError(400, 'limit must be an integer in 1..500');
      send(res, 200, await queue.list(limit));
      return;
    }
    const m = /^\/jobs\/([\w.-]{1,128})(\/events|\/video|\/cancel)?$/.exec(path);
    if (!m) throw new HttpError(404, `no route ${path}`);
    const [, id, sub] = m;
    if (sub === '/cancel') {
      if (method !== 'POST') throw new HttpError(405, `${method} ${path} is not allowed (POST)`);
      const outcome = await queue.cancel(id);
      if (outcome === 'missing') throw new HttpError(404, `no job ${id}`);
      send(res, 200, { id, outcome });
      return;
    }
    if (method !== 'GET') throw new HttpError(405, `${method} ${path} is not allowed`);
    if (sub === '/events') return events(id, res);
    if (sub === '/video') return video(id, req, res);
    const s = await queue.status(id);
    if (!s) throw new HttpError(404, `no job ${id}`);
    send(res, 200, s);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const status = err instanceof HttpError ? err.status : err instanceof JobDataError ? 400 : 500;
      send(res, status, { error: err instanceof Error ? err.message : String(err) });
    });
  });
  try {
    await new Promise<void>((ok, fail) => {
      server.once('error', fail);
      server.listen(port, host, () => ok());
    });
  } catch (err) {
    await queue.close();
    const e = err as NodeJS.ErrnoException;
    throw new Error(e.code === 'EADDRINUSE' ? `port ${port} on ${host} is in use` : `cannot listen on ${host}:${port}: ${e.message}`);
  }
  const addr = server.address() as AddressInfo;
  const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    server, queue, url: `http://${shown}:${addr.port}`,
    async close() {
      for (const r of streams) r.end();
      const closed = new Promise<void>((ok) => server.close(() => ok()));
      server.closeAllConnections();
      await closed;
      await queue.close();
    },
  };
}
