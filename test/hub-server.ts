import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { AddressInfo } from 'node:net';
import { FIXTURES } from './helpers.js';

// A local stand-in for the hub: the two endpoints @huggingface/hub calls (the tree listing and resolve, with
// Range requests), serving the diffusers fixture folder plus files a download must leave alone.
const HUB = join(FIXTURES, 'diffusers', 'hub');
export const REPO = 'test-org/tiny-t2v';
export const TOKEN = 'hf_testtoken';
const EXTRA: Record<string, Buffer> = { 'README.md': Buffer.from('# tiny\n'), 'samples/video.mp4': Buffer.alloc(5000, 7) };

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}
export const FILES = new Map<string, Buffer>([...walk(HUB).map((p) => [relative(HUB, p), readFileSync(p)] as [string, Buffer]), ...Object.entries(EXTRA)]);
// A second repository whose UNet weights are sharded: an index naming two shard files.
export const SHARDED = 'test-org/sharded-t2v';
export const SHARDED_FILES = new Map<string, Buffer>([...FILES].filter(([p]) => !p.startsWith('unet/diffusion_pytorch_model')));
SHARDED_FILES.set('unet/diffusion_pytorch_model.safetensors.index.json', Buffer.from(JSON.stringify({
  weight_map: { a: 'diffusion_pytorch_model-00001-of-00002.safetensors', b: 'diffusion_pytorch_model-00002-of-00002.safetensors' },
})));
SHARDED_FILES.set('unet/diffusion_pytorch_model-00001-of-00002.safetensors', Buffer.alloc(3000, 1));
SHARDED_FILES.set('unet/diffusion_pytorch_model-00002-of-00002.safetensors', Buffer.alloc(2000, 2));

export interface Req { path: string; range?: string; auth?: string }

export interface TestHub {
  endpoint: string;
  /** Every request since the last reset (tests assign []). */
  requests: Req[];
  /** Answer 401 to requests without `Bearer TOKEN`. */
  requireToken: boolean;
  close(): Promise<void>;
}

/** Starts the stand-in hub on a free local port; `repos` maps ids to their files (default: REPO and SHARDED). */
export async function startHub(repos: Map<string, Map<string, Buffer>> = new Map([[REPO, FILES], [SHARDED, SHARDED_FILES]])): Promise<TestHub> {
  const hub: TestHub = { endpoint: '', requests: [], requireToken: false, close: async () => {} };
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const r: Req = { path: decodeURIComponent(url.pathname), range: req.headers.range, auth: req.headers.authorization };
    hub.requests.push(r);
    if (hub.requireToken && r.auth !== `Bearer ${TOKEN}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'Invalid credentials' }));
      return;
    }
    const repo = [...repos.keys()].find((id) => r.path.startsWith(`/api/models/${id}/`) || r.path.startsWith(`/${id}/`));
    const files = repo ? repos.get(repo)! : new Map<string, Buffer>();
    const tree = `/api/models/${repo}/tree/main`;
    if (repo && (r.path === tree || r.path === `${tree}/`)) {
      const items = [...files].map(([path, data]) => {
        const lfs = /\.(safetensors|bin)$/.test(path) ? { oid: createHash('sha256').update(data).digest('hex'), size: data.length, pointerSize: 134 } : undefined;
        return { type: 'file', path, size: data.length, oid: createHash('sha1').update(data).digest('hex'), ...(lfs ? { lfs } : {}) };
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(items));
      return;
    }
    const prefix = `/${repo}/resolve/main/`;
    const data = repo && r.path.startsWith(prefix) ? files.get(r.path.slice(prefix.length)) : undefined;
    if (!data) {
      res.writeHead(404, { 'content-type': 'application/json', 'x-error-code': r.path.startsWith(prefix) ? 'EntryNotFound' : 'RepoNotFound' })
        .end(JSON.stringify({ error: 'Repository not found' }));
      return;
    }
    const etag = `"${createHash('sha1').update(data).digest('hex')}"`;
    const m = /^bytes=(\d+)-(\d*)$/.exec(r.range ?? '');
    if (m) {
      const start = Number(m[1]);
      const end = m[2] === '' ? data.length - 1 : Math.min(Number(m[2]), data.length - 1);
      res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${data.length}`, 'content-length': end - start + 1, etag, 'content-type': 'application/octet-stream' });
      res.end(data.subarray(start, end + 1));
      return;
    }
    res.writeHead(200, { 'content-length': data.length, etag, 'content-type': 'application/octet-stream' }).end(data);
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  hub.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  hub.close = () => new Promise<void>((res) => server.close(() => res()));
  return hub;
}

/** An address nothing listens on: the offline case. */
export async function closedEndpoint(): Promise<string> {
  const closed = createServer();
  await new Promise<void>((res) => closed.listen(0, '127.0.0.1', res));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((res) => closed.close(() => res()));
  return `http://127.0.0.1:${port}`;
}
