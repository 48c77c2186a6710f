import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import yargs from 'yargs';
import { command } from '../src/cli/serve-web.js';
import { serveWeb } from '../src/web/serve.js';

const work = mkdtempSync(join(tmpdir(), 't2v-serve-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** A raw GET (fetch would normalize `..` away). */
function get(url: string, path: string, method = 'GET'): Promise<{ status: number; body: string; type?: string }> {
  return new Promise((res, rej) => {
    const u = new URL(url);
    const req = request({ host: u.hostname, port: u.port, path, method }, (r) => {
      let body = '';
      r.on('data', (d: Buffer) => { body += d.toString(); });
      r.on('end', () => res({ status: r.statusCode ?? 0, body, type: r.headers['content-type'] }));
    });
    req.on('error', rej);
    req.end();
  });
}

test('serveWeb: the page and a model at /model/, 127.0.0.1 only, nothing outside the two folders', async () => {
  const root = join(work, 'web');
  const model = join(work, 'model');
  mkdirSync(join(model, 'unet'), { recursive: true });
  mkdirSync(root);
  writeFileSync(join(root, 'index.html'), '<!doctype html><p>page');
  writeFileSync(join(root, 'app.js'), 'export {}');
  writeFileSync(join(model, 't2v.json'), '{"format":"t2v-model"}');
  writeFileSync(join(model, 'unet', 'group1-shard1of1.bin'), new Uint8Array(8));
  writeFileSync(join(work, 'secret.txt'), 'no');
  const seen: string[] = [];
  const s = await serveWeb({ root, model, port: 0, onRequest: (r, status) => seen.push(`${r.url} ${status}`) });
  try {
    assert.match(s.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.deepEqual(await get(s.url, '/'), { status: 200, body: '<!doctype html><p>page', type: 'text/html; charset=utf-8' });
    assert.equal((await get(s.url, '/app.js')).type, 'text/javascript; charset=utf-8');
    assert.equal((await get(s.url, '/model/t2v.json')).body, '{"format":"t2v-model"}');
    assert.equal((await get(s.url, '/model/unet/group1-shard1of1.bin')).body.length, 8);
    assert.equal((await get(s.url, '/model/unet/group1-shard1of1.bin', 'HEAD')).status, 200);
    for (const p of ['/../secret.txt', '/model/../../secret.txt', '/%2e%2e/secret.txt', '/model/%2e%2e/%2e%2e/secret.txt', '/nothing']) {
      assert.equal((await get(s.url, p)).status, 404, p);
    }
    assert.equal((await get(s.url, '/', 'POST')).status, 405);
    assert.ok(seen.includes('/model/t2v.json 200'));
  } finally {
    await s.close();
  }
});

test('t2v serve-web: an unbuilt page or a folder that is not a model is one clear line', async () => {
  const run = (args: string[]) => new Promise<string>((res) => {
    void yargs().command(command).fail((msg, err) => res(err?.message ?? msg)).parseAsync(args).then(() => res('no error'), (e: Error) => res(e.message));
  });
  assert.match(await run(['serve-web', '--root', join(work, 'nowhere'), '--port', '0']), /the page is not built \(no .*index\.html\): run `npm run build:web` first/);
  mkdirSync(join(work, 'page'));
  writeFileSync(join(work, 'page', 'index.html'), '');
  assert.match(await run(['serve-web', '--root', join(work, 'page'), '--model', work, '--port', '0']), /is not a converted t2v model \(no t2v\.json\); make one with `t2v convert`/);
});
