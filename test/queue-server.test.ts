import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startServer, type T2VServer } from '../src/queue/server.js';
import { startWorker, type T2VWorker } from '../src/queue/worker.js';
import { hasClipVocab } from './helpers.js';
import { ffprobePath, probe } from './ffprobe.js';
import { convertTiny, hasRedis, startRedis, type RedisServer } from './queue-helpers.js';

// `t2v serve` over a real Redis with one in-process worker on the tiny model (wasm): the HTTP API, its validation
// and token, server-sent events, the video; then the page in Debian's headless Chromium (playwright-core).

const CHROMIUM = '/usr/bin/chromium';
const skip = (!hasRedis && 'needs redis-server (apt-get install redis-server)') || (!hasClipVocab && 'needs the CLIP vocabulary beside the checkout')
  || (!ffprobePath() && 'needs ffprobe');
const TOKEN = 'test-token-0123456789';
const SMALL = { frames: 2, height: 32, width: 32, steps: 2 };

let work: string;
let redis: RedisServer;
let worker: T2VWorker;
let server: T2VServer;

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 't2v-serve-'));
  const results = join(work, 'results');
  let model: string;
  [redis, model] = await Promise.all([startRedis(), convertTiny(join(work, 'model'))]);
  worker = await startWorker({ redis: redis.url, model, backend: 'wasm', results });
  server = await startServer({ redis: redis.url, port: 0, token: TOKEN, results });
});

after(async () => {
  await server?.close();
  await worker?.close();
  await redis?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

function http(method: string, path: string, o: { body?: string; headers?: Record<string, string>; auth?: boolean } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...(o.auth === false ? {} : { authorization: `Bearer ${TOKEN}` }), ...o.headers };
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}${path}`, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}
const json = (r: Reply) => JSON.parse(r.body.toString()) as Record<string, unknown>;
const post = (body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  http('POST', '/jobs', { body: typeof body === 'string' ? body : JSON.stringify(body), headers });

/** Server-sent events of one job until the server ends the stream. */
function events(id: string): Promise<{ event: string; data: Record<string, unknown> }[]> {
  return new Promise((resolve, reject) => {
    const req = request(`${server.url}/jobs/${id}/events?access_token=${TOKEN}`, (res) => {
      assert.equal(res.headers['content-type'], 'text/event-stream');
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve(text.split('\n\n').filter((b) => b.startsWith('event:')).map((b) => {
        const [e, d] = b.split('\n');
        return { event: e.slice('event: '.length), data: JSON.parse(d.slice('data: '.length)) as Record<string, unknown> };
      })));
    });
    req.on('error', reject);
    req.end();
  });
}

test('serve: input validated, token required, loopback only, unknown routes 404', { skip }, async () => {
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  const page = await http('GET', '/', { auth: false });
  assert.equal(page.status, 200);
  assert.match(page.body.toString(), /<title>t2v queue<\/title>/);
  assert.equal((await http('GET', '/jobs', { auth: false })).status, 401);
  assert.equal((await http('GET', '/jobs', { auth: false, headers: { authorization: 'Bearer wrong-token-123456' } })).status, 401);
  assert.equal((await http('GET', '/jobs?access_token=nope', { auth: false })).status, 401);
  assert.equal((await http('GET', '/jobs', { headers: { host: 'evil.example:8080' } })).status, 403);
  assert.equal((await post({ prompt: 'x' }, { 'content-type': 'text/plain' })).status, 415);
  const notJson = await post('{"prompt":', { 'content-type': 'application/json' });
  assert.equal(notJson.status, 400);
  assert.match(String(json(notJson).error), /not valid JSON/);
  const bad = await post({ prompt: 'x', steps: 0 });
  assert.equal(bad.status, 400);
  assert.match(String(json(bad).error), /steps must be an integer in 1\.\.1000/);
  assert.equal((await post({ prompt: 'x', extra: 1 })).status, 400);
  assert.equal((await post({ prompt: 'x'.repeat(70000) })).status, 413);
  assert.equal((await http('GET', '/jobs/12345')).status, 404);
  assert.equal((await http('GET', '/nope')).status, 404);
  assert.equal((await http('DELETE', '/jobs')).status, 405);
  assert.equal((await http('GET', '/jobs?limit=0')).status, 400);
});

test('serve: POST /jobs, GET /jobs/:id, progress over server-sent events, GET /jobs/:id/video (with ranges), the queue', { skip, timeout: 60000 }, async () => {
  const created = await post({ prompt: 'a red ball', ...SMALL, steps: 20, format: 'mp4', seed: 5 });
  assert.equal(created.status, 201);
  const id = String(json(created).id);
  const stream = await events(id);
  const progress = stream.filter((e) => e.event === 'progress').map((e) => e.data);
  const last = stream[stream.length - 1];
  assert.equal(last.event, 'state');
  assert.equal(last.data.state, 'completed');
  assert.deepEqual(progress.at(-1), { step: 20, steps: 20 });
  assert.ok(progress.length >= 10, `${progress.length} progress events`);
  assert.ok(progress.every((p, i) => i === 0 || (p.step as number) > (progress[i - 1].step as number)));

  const s = json(await http('GET', `/jobs/${id}`));
  assert.equal(s.state, 'completed');
  assert.deepEqual(s.progress, { step: 20, steps: 20 });
  assert.deepEqual((s.data as Record<string, unknown>).prompt, 'a red ball');
  assert.equal((s.result as Record<string, unknown>).seed, 5);

  const v = await http('GET', `/jobs/${id}/video`);
  assert.equal(v.status, 200);
  assert.equal(v.headers['content-type'], 'video/mp4');
  const file = join(work, 'got.mp4');
  writeFileSync(file, v.body);
  const p = probe(file);
  assert.deepEqual([p.codec_name, p.width, p.height, p.nb_read_frames], ['h264', '32', '32', '2']);
  const part = await http('GET', `/jobs/${id}/video`, { headers: { range: 'bytes=0-99' } });
  assert.equal(part.status, 206);
  assert.equal(part.headers['content-range'], `bytes 0-99/${v.body.length}`);
  assert.deepEqual(part.body, v.body.subarray(0, 100));
  assert.equal((await http('GET', `/jobs/${id}/video`, { headers: { range: `bytes=${v.body.length}-` } })).status, 416);

  const list = json(await http('GET', '/jobs'));
  assert.equal((list.counts as Record<string, number>).completed, 1);
  assert.equal(((list.jobs as Record<string, unknown>[])[0]).id, id);
  assert.equal((await http('POST', `/jobs/${id}/cancel`)).status, 200);
  assert.equal(json(await http('POST', `/jobs/${id}/cancel`)).outcome, 'finished');

  // a running job, cancelled through the API
  const long = String(json(await post({ prompt: 'long', ...SMALL, steps: 400 })).id);
  const until = Date.now() + 20000;
  while (!(json(await http('GET', `/jobs/${long}`)).progress) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  assert.equal(json(await http('POST', `/jobs/${long}/cancel`)).outcome, 'requested');
  const end = (await events(long)).at(-1);
  assert.equal(end?.data.state, 'failed');
  assert.equal(end?.data.failedReason, 'cancelled');
  assert.equal((await http('GET', `/jobs/${long}/video`)).status, 409);
});

test('serve: the page in headless Chromium submits a job, shows its progress and plays the result', { skip: skip || (!existsSync(CHROMIUM) && `needs ${CHROMIUM} (apt-get install chromium)`), timeout: 90000 }, async () => {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
    const outside: string[] = [];
    page.on('request', (r) => { if (!r.url().startsWith(server.url)) outside.push(r.url()); });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${server.url}/`);
    await page.fill('#token', TOKEN);
    await page.dispatchEvent('#token', 'change');
    await page.fill('#prompt', 'a panda eating bamboo on a rock');
    await page.fill('#steps', '12');
    await page.fill('#frames', '2');
    await page.fill('#width', '32');
    await page.fill('#height', '32');
    await page.selectOption('#format', 'webm');
    await page.click('#go');
    await page.waitForSelector('#message:has-text("queued job")');
    const id = (await page.textContent('#message'))?.replace('queued job ', '').trim() as string;
    // progress seen on the page while it runs, then a playable video
    await page.waitForFunction((jid) => Number(document.querySelector(`#job-${jid} progress`)?.getAttribute('value') ?? 0) > 0
      || document.querySelector(`#job-${jid}`)?.getAttribute('data-state') === 'completed', id, { timeout: 30000 });
    await page.waitForSelector(`#job-${id}[data-state="completed"] video`, { timeout: 60000 });
    const played = await page.waitForFunction((jid) => {
      const v = document.querySelector(`#job-${jid} video`) as HTMLVideoElement | null;
      return v && v.readyState >= 2 ? { w: v.videoWidth, h: v.videoHeight } : null;
    }, id, { timeout: 20000 });
    assert.deepEqual(await played.jsonValue(), { w: 32, h: 32 });
    assert.equal(await page.textContent(`#job-${id} .state`), 'completed');
    assert.match(await page.textContent('#counts') ?? '', /completed \d+/);
    await page.screenshot({ path: '/tmp/t2v-queue-page.png' });
    assert.deepEqual(errors, []);
    assert.deepEqual(outside, [], 'the page asks nothing of other hosts');
  } finally {
    await browser.close();
  }
});
