import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import yargs from 'yargs';
import { command as enqueueCommand } from '../src/cli/enqueue.js';
import { jobFromArgs } from '../src/cli/queue-options.js';
import { readPromptFile } from '../src/queue/client.js';
import { checkRedisUrl } from '../src/queue/connection.js';
import { JobDataError, seedFromJobId, validateJobData } from '../src/queue/job-data.js';
import { checkJobId, readResult, writeResult } from '../src/queue/results.js';

const work = mkdtempSync(join(tmpdir(), 't2v-queue-data-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('job data: a full job passes with only the known keys; defaults stay unset', () => {
  const full = { prompt: 'a cat', negativePrompt: 'blur', steps: 25, guidance: 7.5, frames: 8, height: 128, width: 256, seed: 3, scheduler: 'euler', format: 'webm' };
  assert.deepEqual(validateJobData(full), full);
  assert.deepEqual(validateJobData({ prompt: 'x', steps: null }), { prompt: 'x' });
});

test('job data: each bad field is refused with a line that names it', () => {
  const bad: [unknown, RegExp][] = [
    [null, /must be a JSON object/], [[1], /must be a JSON object/], ['a cat', /must be a JSON object/],
    [{}, /prompt is required/], [{ prompt: '  ' }, /prompt must not be empty/], [{ prompt: 42 }, /prompt must be a string/],
    [{ prompt: 'x'.repeat(2001) }, /at most 2000/],
    [{ prompt: 'x', steps: 0 }, /steps must be an integer in 1\.\.1000, got 0/], [{ prompt: 'x', steps: 2.5 }, /steps must be an integer/],
    [{ prompt: 'x', steps: '20' }, /steps must be an integer/], [{ prompt: 'x', frames: 1000 }, /frames must be an integer in 1\.\.256/],
    [{ prompt: 'x', height: 100 }, /height must be a multiple of 8, got 100/], [{ prompt: 'x', width: 4096 }, /width must be an integer in 8\.\.2048/],
    [{ prompt: 'x', guidance: 'high' }, /guidance must be a number/], [{ prompt: 'x', guidance: 1e9 }, /guidance must be a number in -100\.\.100/],
    [{ prompt: 'x', seed: -1 }, /seed must be an integer in 0\.\./], [{ prompt: 'x', scheduler: 'plms' }, /scheduler must be one of ddim, dpm-solver\+\+, euler, unipc/],
    [{ prompt: 'x', format: 'avi' }, /format must be one of mp4, webm, gif/], [{ prompt: 'x', negativePrompt: 3 }, /negativePrompt must be a string/],
    [{ prompt: 'x', promt: 'y', fps: 8 }, /unknown job fields promt, fps/],
  ];
  for (const [data, re] of bad) assert.throws(() => validateJobData(data), (e: Error) => e instanceof JobDataError && re.test(e.message), JSON.stringify(data)?.slice(0, 60));
});

test('job data: the seed of a job without one is fixed by its id', () => {
  assert.equal(seedFromJobId('17'), seedFromJobId('17'));
  assert.notEqual(seedFromJobId('17'), seedFromJobId('18'));
  assert.ok(Number.isInteger(seedFromJobId('abc')) && seedFromJobId('abc') >= 0 && seedFromJobId('abc') < 2 ** 32);
});

test('results: ids that cannot name a file are refused', () => {
  for (const id of ['12', 'job-a_b.1']) assert.equal(checkJobId(id), id);
  for (const id of [undefined, '', '../x', 'a/b', '.hidden', 'x'.repeat(129)]) assert.throws(() => checkJobId(id), /cannot name a result file/);
});

const meta = { seed: 1, timings: { text: 1, denoise: 2, decode: 3, total: 6 }, frames: 2, width: 32, height: 32 };

test('results: written once: a second run finds the file complete and keeps the first video; nothing temporary is left', async () => {
  const dir = join(work, 'once');
  const first = await writeResult(dir, '5', 'gif', async (tmp) => writeFileSync(tmp, 'first'), meta);
  assert.equal(first.path, join(dir, '5.gif'));
  assert.deepEqual(readResult(dir, '5'), first);
  // two runs at once (a stalled job picked up while its first worker still writes): the first to publish stays
  const dir2 = join(work, 'race');
  const [a, b] = await Promise.all([
    writeResult(dir2, '6', 'mp4', async (tmp) => writeFileSync(tmp, 'run A'), { ...meta, seed: 10 }),
    writeResult(dir2, '6', 'mp4', async (tmp) => { await new Promise((r) => setTimeout(r, 20)); writeFileSync(tmp, 'run B'); }, { ...meta, seed: 10 }),
  ]);
  assert.deepEqual(a, b);
  assert.equal(readFileSync(join(dir2, '6.mp4'), 'utf8'), 'run A');
  assert.deepEqual(readdirSync(dir2).sort(), ['6.json', '6.mp4']);
  // a video without its JSON (a worker killed between the two) is reused, not written again
  rmSync(join(dir2, '6.json'));
  assert.equal(readResult(dir2, '6'), null);
  let called = false;
  await writeResult(dir2, '6', 'mp4', async () => { called = true; }, meta);
  assert.equal(called, false);
  assert.ok(readResult(dir2, '6'));
});

test('results: a failed write leaves nothing and throws', async () => {
  const dir = join(work, 'fail');
  await assert.rejects(writeResult(dir, '7', 'mp4', async (tmp) => { writeFileSync(tmp, 'half'); throw new Error('ffmpeg died'); }, meta), /ffmpeg died/);
  assert.deepEqual(readdirSync(dir), []);
});

test('enqueue: prompts file (blank lines and # comments skipped), flags to job data, one-line errors', async () => {
  const f = join(work, 'prompts.txt');
  writeFileSync(f, '# a comment\na cat\n\n  a dog on a skateboard  \r\n');
  assert.deepEqual(readPromptFile(f), ['a cat', 'a dog on a skateboard']);
  writeFileSync(f, '\n# nothing\n');
  assert.throws(() => readPromptFile(f), /holds no prompts/);
  assert.throws(() => readPromptFile(join(work, 'none.txt')), /--file .*none\.txt: no such file/);
  assert.deepEqual(jobFromArgs('p', { negative: 'n', steps: 4, format: 'gif' }), { prompt: 'p', negativePrompt: 'n', steps: 4, format: 'gif' });
  assert.throws(() => jobFromArgs('p', { steps: Number.NaN }), /--steps must be a number/);
  assert.throws(() => checkRedisUrl('localhost:6379'), /expected a redis:\/\/ or rediss:\/\/ URL/);
  assert.throws(() => checkRedisUrl('not a url'), /not a URL/);

  const run = async (args: string[]) => yargs().command(enqueueCommand).strict().exitProcess(false)
    .fail((msg, err) => { throw err ?? new Error(msg); }).parseAsync(args);
  await assert.rejects(run(['enqueue']), /give a prompt or --file, one of the two/);
  await assert.rejects(run(['enqueue', 'x', '--file', f]), /give a prompt or --file/);
  await assert.rejects(run(['enqueue', 'x', '--format', 'avi']), /Invalid values:[\s\S]*format/);
  // nothing listens on port 1: one line that names the URL
  await assert.rejects(run(['enqueue', 'x', '--redis', 'redis://127.0.0.1:1']), /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
});

test('worker: bad options end in one line before any model is loaded', async () => {
  const { startWorker } = await import('../src/queue/worker.js');
  const file = join(work, 'a-file');
  writeFileSync(file, '');
  const base = { redis: 'redis://127.0.0.1:1', model: work, results: join(work, 'r') };
  await assert.rejects(startWorker({ ...base, concurrency: 0 }), /--concurrency must be an integer >= 1, got 0/);
  await assert.rejects(startWorker({ ...base, lockDuration: -5 }), /--lock-duration must be a positive integer \(ms\), got -5/);
  await assert.rejects(startWorker({ ...base, results: file }), /--results .*a-file is not a directory/);
  await assert.rejects(startWorker({ ...base, model: join(work, 'no-model') }), /--model .*no-model: no such folder$/);
  await assert.rejects(startWorker({ ...base, model: 'someone/no-such-model' }), /run `t2v download someone\/no-such-model` first/);
  await assert.rejects(startWorker(base), /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
});
