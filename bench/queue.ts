// Jobs per minute on the tiny test model through the `t2v` queue with 1, 2 and 3 worker processes, against the same
// jobs generated in a plain loop in one process; the difference per job is the queue's overhead.
//
//   node --import tsx bench/queue.ts [JOBS=30] [STEPS=2] [WORKERS=1,2,3]
//
// Needs redis-server on PATH (started here on a free loopback port) and ../shared's CLIP vocabulary.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { T2VQueue } from '../src/queue/client.js';
import { TextToVideo } from '../src/pipeline/text2video.js';
import { convertTiny, spawnWorker, startRedis } from '../test/queue-helpers.js';

const JOBS = Number(process.argv[2] ?? 30);
const JOB = { frames: 2, height: 32, width: 32, steps: Number(process.argv[3] ?? 2), format: 'mp4' as const };
const WORKERS = (process.argv[4] ?? '1,2,3').split(',').map(Number);
const prompts = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `${tag} prompt ${i}: a cat on a skateboard`);

const loadBefore = loadavg()[0];
const work = mkdtempSync(join(tmpdir(), 't2v-bench-queue-'));
const model = await convertTiny(join(work, 'model'));

// the baseline: one process, the model loaded once, generate + save in a loop
const direct = await (async () => {
  const t2v = await TextToVideo.load(model, { backend: 'wasm' });
  await (await t2v.generate({ prompt: 'warm up', ...JOB, seed: 1 })).save(join(work, 'warm.mp4'));
  let genMs = 0;
  let saveMs = 0;
  let i = 0;
  for (const p of prompts('direct', JOBS)) {
    const t0 = performance.now();
    const r = await t2v.generate({ prompt: p, ...JOB, seed: i });
    const t1 = performance.now();
    await r.save(join(work, `d${i++}.mp4`));
    genMs += t1 - t0;
    saveMs += performance.now() - t1;
  }
  t2v.dispose();
  return { genMs, saveMs, ms: genMs + saveMs };
})();

interface Row { workers: number; wallMs: number; procMs: number; genMs: number; saveMs: number }
const rows: Row[] = [];
for (const n of WORKERS) {
  const redis = await startRedis();
  const q = await T2VQueue.open(redis.url);
  const results = join(work, `results-${n}`);
  const workers = Array.from({ length: n }, () => spawnWorker(['--redis', redis.url, '--model', model, '--backend', 'wasm', '--results', results]));
  try {
    await Promise.all(workers.map((w) => w.waitFor(/^worker ready/)));
    await q.wait(await q.add(prompts(`warm-${n}`, 2 * n).map((prompt) => ({ prompt, ...JOB }))));
    await q.queueEvents();
    const t0 = performance.now();
    const ids = await q.add(prompts(`queue-${n}`, JOBS).map((prompt) => ({ prompt, ...JOB })));
    const out = await q.wait(ids);
    const wallMs = performance.now() - t0;
    let procMs = 0;
    let genMs = 0;
    let saveMs = 0;
    for (const id of ids) {
      const s = await q.status(id);
      if (!s?.result || s.startedAt === null || s.finishedAt === null) throw new Error(`job ${id}: ${String(out.get(id))}`);
      procMs += s.finishedAt - s.startedAt;
      genMs += s.result.timings.total;
      saveMs += s.result.saveMs;
    }
    rows.push({ workers: n, wallMs, procMs, genMs, saveMs });
  } finally {
    for (const w of workers) w.proc.kill('SIGTERM');
    await Promise.all(workers.map((w) => w.exited));
    await q.close();
    await redis.stop();
  }
}
rmSync(work, { recursive: true, force: true });

const f1 = (v: number) => v.toFixed(1);
console.log(`load average (1 min) ${loadBefore.toFixed(1)} before, ${loadavg()[0].toFixed(1)} after, on ${cpus().length} cores`);
console.log(`${JOBS} jobs each (tiny model, wasm, ${JOB.width}x${JOB.height}, ${JOB.frames} frames, ${JOB.steps} steps, mp4, a new prompt each)`);
console.log(`plain loop, one process: ${f1(direct.ms / JOBS)} ms/job (generate ${f1(direct.genMs / JOBS)}, save ${f1(direct.saveMs / JOBS)}), ${f1(60000 * JOBS / direct.ms)} jobs/min`);
console.log('| workers | wall s | jobs/min | wall ms/job | generate ms/job | save ms/job | queue overhead ms/job (in the job + between jobs) |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) {
  // wall * workers / jobs: one job's share of a worker's time; what is neither generating nor saving is the queue's
  const share = r.wallMs * r.workers / JOBS;
  const inJob = (r.procMs - r.genMs - r.saveMs) / JOBS;
  console.log(`| ${r.workers} | ${f1(r.wallMs / 1000)} | ${f1(60000 * JOBS / r.wallMs)} | ${f1(r.wallMs / JOBS)} | ${f1(r.genMs / JOBS)} | ${f1(r.saveMs / JOBS)} `
    + `| ${f1(share - (r.genMs + r.saveMs) / JOBS)} (${f1(inJob)} + ${f1(share - r.procMs / JOBS)}) |`);
}
console.log('in the job: BullMQ processedOn..finishedOn minus generate and save (progress and cancel round trips, result JSON);');
console.log('between jobs: wall * workers / jobs minus processedOn..finishedOn (completing one job, fetching the next)');
