import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { T2VQueue } from '../src/queue/client.js';
import { readResult, type JobResult } from '../src/queue/results.js';
import { hasClipVocab } from './helpers.js';
import { ffprobePath, probe } from './ffprobe.js';
import { convertTiny, hasRedis, spawnWorker, startRedis, type RedisServer, type WorkerProcess } from './queue-helpers.js';

// Three `t2v worker` processes on a real Redis share 30 jobs of the tiny test model (wasm, 32x32, 2 frames, 2 steps,
// mp4/webm/gif); one is killed with SIGKILL in the middle of a long job, which another worker then runs again.
// Locks are short here (10 s, stalled check every 1 s) so that recovery takes seconds, not the default minute.

const skip = (!hasRedis && 'needs redis-server (apt-get install redis-server)') || (!hasClipVocab && 'needs the CLIP vocabulary beside the checkout')
  || (!ffprobePath() && 'needs ffprobe');

let work: string;
let model: string;
let results: string;
let redis: RedisServer;
let q: T2VQueue;
let workers: WorkerProcess[] = [];
const SMALL = { frames: 2, height: 32, width: 32, steps: 2 };
const FORMATS = ['mp4', 'webm', 'gif'] as const;
const CODEC = { mp4: 'h264', webm: 'vp9', gif: 'gif' };

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 't2v-queue-'));
  results = join(work, 'results');
  [redis, model] = await Promise.all([startRedis(), convertTiny(join(work, 'model'))]);
  q = await T2VQueue.open(redis.url);
  workers = [0, 1, 2].map(() => spawnWorker(['--redis', redis.url, '--model', model, '--backend', 'wasm', '--results', results,
    '--lock-duration', '10000', '--stalled-interval', '1000', '--verbose']));
  await Promise.all(workers.map((w) => w.waitFor(/^worker ready/)));
});

after(async () => {
  for (const w of workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
  await q?.close();
  await redis?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function count(lines: string[], re: RegExp): Map<string, number> {
  const m = new Map<string, number>();
  for (const l of lines) {
    const id = re.exec(l)?.[1];
    if (id !== undefined) m.set(id, (m.get(id) ?? 0) + 1);
  }
  return m;
}

test('queue: 30 jobs over 3 worker processes, one killed with SIGKILL mid-job: each completes exactly once, every output a valid video', { skip, timeout: 240000 }, async () => {
  const events = await q.queueEvents();
  const completions = new Map<string, number>();
  events.on('completed', ({ jobId }) => completions.set(jobId, (completions.get(jobId) ?? 0) + 1));
  const stalled = new Set<string>();
  events.on('stalled', ({ jobId }) => stalled.add(jobId));

  const tStart = performance.now();
  // the long one first, so that a worker is on it when the others arrive
  const [longId] = await q.add([{ prompt: 'a long job', ...SMALL, steps: 60, format: 'mp4', seed: 7 }], { backoffMs: 500 });
  const shortJobs = Array.from({ length: 29 }, (_, i) => ({ prompt: `prompt number ${i}`, ...SMALL, format: FORMATS[i % 3], ...(i % 2 ? { seed: i } : {}) }));
  const ids = [longId, ...await q.add(shortJobs, { backoffMs: 500 })];
  const formatOf = new Map(ids.map((id, i) => [id, i === 0 ? 'mp4' : FORMATS[(i - 1) % 3]]));
  const done = q.wait(ids);

  // kill the worker that runs the long job once it is a few steps in
  const victim = await Promise.any(workers.map((w) => w.waitFor(new RegExp(`^job ${longId} step 5/`)).then(() => w)));
  const tKill = performance.now();
  victim.proc.kill('SIGKILL');
  assert.equal((await victim.exited).signal, 'SIGKILL');
  assert.ok(!victim.lines.some((l) => l.startsWith(`job ${longId} completed`)), 'the long job was not finished when its worker was killed');

  const outcome = await done;
  if (process.env.T2V_QUEUE_DEBUG) console.log(`# killed at ${(tKill / 1000).toFixed(1)} s, all done ${((performance.now() - tKill) / 1000).toFixed(1)} s later; started at ${(tStart / 1000).toFixed(1)} s`);
  const failures = [...outcome].filter(([, r]) => r instanceof Error);
  assert.deepEqual(failures, [], 'no job failed');
  assert.equal(outcome.size, 30);

  // exactly once: one completed event per job, one "completed" line per job over all workers (the killed one included)
  await new Promise((r) => setTimeout(r, 300)); // the last events' delivery
  assert.deepEqual([...completions.keys()].sort(), [...ids].sort());
  assert.ok([...completions.values()].every((n) => n === 1), `completion counts ${JSON.stringify([...completions])}`);
  // A worker finishes each job once, unless BullMQ took the job for stalled and gave it to another (the victim's long
  // job; on a loaded machine also a job whose worker was slow to renew its lock): then the result file is still
  // written once (above and below) and BullMQ completes the job once.
  const allLines = workers.flatMap((w) => w.lines);
  const completedLines = count(allLines, /^job (\S+) completed/);
  assert.deepEqual([...completedLines.keys()].sort(), [...ids].sort());
  const twice = [...completedLines].filter(([, n]) => n !== 1).map(([id]) => id);
  assert.deepEqual(twice.filter((id) => !stalled.has(id)), [], `finished more than once without a stall: ${twice}`);
  if (twice.length > 0) {
    console.log(`# jobs run again after a false stall (machine load): ${twice.join(', ')}`);
    if (process.env.T2V_QUEUE_DEBUG) for (const [i, w] of workers.entries()) console.log(`# worker ${i}${w === victim ? ' (victim)' : ''}: ${w.lines.filter((l) => twice.some((id) => l.startsWith(`job ${id} `)) || l.startsWith(`job ${longId} `)).join(' | ')}`);
  }
  // the long job ran again: started by the victim, then by a survivor after the stall was noticed
  assert.ok(stalled.has(longId), 'BullMQ saw the long job stall');
  const starts = workers.map((w) => w.lines.filter((l) => l.startsWith(`job ${longId} started`)).length);
  assert.equal(starts[workers.indexOf(victim)], 1);
  assert.ok(starts.reduce((a, b) => a + b, 0) >= 2, `long job started ${starts}`);
  const survivors = workers.filter((w) => w !== victim);
  assert.ok(survivors.some((w) => w.lines.some((l) => l.startsWith(`job ${longId} completed`))));

  // on disk: a video and a JSON per job, nothing else (no temporary file left)
  const files = readdirSync(results).sort();
  const want = ids.flatMap((id) => [`${id}.json`, `${id}.${formatOf.get(id)}`]).sort();
  assert.deepEqual(files, want);
  for (const id of ids) {
    const r = readResult(results, id) as JobResult;
    assert.ok(r, `result of ${id}`);
    assert.deepEqual(outcome.get(id), r);
    const fmt = formatOf.get(id) as typeof FORMATS[number];
    const p = probe(r.path);
    assert.equal(p.codec_name, CODEC[fmt], `${id}.${fmt}`);
    assert.equal(p.width, '32');
    assert.equal(p.height, '32');
    assert.equal(p.nb_read_frames, '2', `${id}.${fmt} frames`);
    assert.deepEqual([r.frames, r.width, r.height], [2, 32, 32]);
  }
  assert.equal((readResult(results, longId) as JobResult).seed, 7);
  workers = survivors;
});

test('queue: bad job data and model errors fail at once, without retries', { skip, timeout: 60000 }, async () => {
  const bad = await q.queue.add('generate', { prompt: 42 } as never, { attempts: 3, backoff: { type: 'fixed', delay: 100 } });
  const model = await q.queue.add('generate', { prompt: 'x', ...SMALL, height: 40 }, { attempts: 3, backoff: { type: 'fixed', delay: 100 } });
  const out = await q.wait([bad.id as string, model.id as string]);
  const e1 = out.get(bad.id as string);
  const e2 = out.get(model.id as string);
  assert.ok(e1 instanceof Error && /^bad job data: prompt must be a string/.test(e1.message), String(e1));
  assert.ok(e2 instanceof Error && /height must be a multiple of 16/.test(e2.message), String(e2));
  for (const id of [bad.id, model.id] as string[]) {
    const s = await q.status(id);
    assert.equal(s?.state, 'failed');
    assert.equal(s?.attemptsMade, 1, `job ${id} tried once`);
    assert.equal(readResult(results, id), null);
  }
});

test('queue: cancel stops a running job between steps (failed "cancelled", nothing written); a waiting job is removed', { skip, timeout: 60000 }, async () => {
  const [id] = await q.add([{ prompt: 'to be cancelled', ...SMALL, steps: 500 }]);
  const w = await Promise.any(workers.map((x) => x.waitFor(new RegExp(`^job ${id} step 3/`)).then(() => x)));
  const t0 = performance.now();
  assert.equal(await q.cancel(id), 'requested');
  const r = (await q.wait([id])).get(id);
  assert.ok(r instanceof Error && r.message === 'cancelled', String(r));
  assert.ok(performance.now() - t0 < 10000, 'cancelled within seconds');
  const steps = w.lines.filter((l) => l.startsWith(`job ${id} step`)).length;
  assert.ok(steps < 400, `stopped after ${steps} of 500 steps`);
  assert.equal((await q.status(id))?.attemptsMade, 1);
  assert.equal(await q.redis.exists(`t2v:cancel:${id}`), 0, 'the cancel request is gone once served');
  assert.deepEqual(readdirSync(results).filter((f) => f.startsWith(`${id}.`) || f.startsWith(`.${id}.`)), []);

  const later = (await q.queue.add('generate', { prompt: 'never runs', ...SMALL }, { delay: 60000 })).id as string;
  assert.equal((await q.status(later))?.state, 'delayed');
  assert.equal(await q.cancel(later), 'removed');
  assert.equal(await q.status(later), null);
  assert.equal(await q.redis.exists(`t2v:cancel:${later}`), 0);
  assert.equal(await q.cancel('999999'), 'missing');
});

test('queue: a failure to write the result is retried with backoff, and the retry completes', { skip, timeout: 60000 }, async () => {
  // the results folder replaced by a file: writing fails (a full or missing disk), then it comes back
  const saved = `${results}.saved`;
  renameSync(results, saved);
  writeFileSync(results, 'not a folder');
  const [id] = await q.add([{ prompt: 'write fails once', ...SMALL, format: 'gif' }], { attempts: 3, backoffMs: 1500 });
  const done = q.wait([id]);
  await Promise.any(workers.map((w) => w.waitFor(new RegExp(`^job ${id} failed: .*\\(will retry\\)$`))));
  const failedAt = performance.now();
  rmSync(results);
  renameSync(saved, results);
  const r = (await done).get(id);
  assert.ok(!(r instanceof Error), String(r));
  assert.ok(performance.now() - failedAt >= 1000, 'retried after the backoff');
  assert.ok(existsSync((r as JobResult).path));
  assert.equal(probe((r as JobResult).path).codec_name, 'gif');
  assert.equal((await q.status(id))?.state, 'completed');
  mkdirSync(results, { recursive: true });
});

test('queue: workers stop cleanly on SIGTERM (exit code 0)', { skip, timeout: 60000 }, async () => {
  for (const w of workers) w.proc.kill('SIGTERM');
  const exits = await Promise.all(workers.map((w) => w.exited));
  assert.deepEqual(exits.map((e) => e.code), workers.map(() => 0), workers.map((w) => w.lines.slice(-3).join(' | ')).join('\n'));
});
