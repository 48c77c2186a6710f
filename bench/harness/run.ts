import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { SCENARIOS } from '../scenarios/index.js';
import { disposeModels, randomPipeline, type Models } from './models.js';
import { BenchUsageError, parseBenchArgs, USAGE } from './options.js';
import type { RunContext, Scenario } from './scenario.js';
import { ResultTable, ROW_KEYS, shapeKey, type RowKey, type Shape } from './table.js';
import { gpuBytes } from './timing.js';
import { VARIANTS } from './variants.js';
import { writeAtomic } from './write-atomic.js';
import { applyVariant, halfWeightsByDefault, openBackend, releasePooledBuffers, resetGPUMemoryPeak, type Device } from './webgpu.js';

const gib = (b: number | null) => (b === null ? 'n/a' : `${(b / 2 ** 30).toFixed(2)} GiB`);
const oneLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).split('\n')[0].trim();

/**
 * `bench OUT [options]`: the selected scenarios, t2v first (each variant in turn, at each shape), then the PyTorch side
 * at the same shapes, into OUT/table.md (issue 16's table: medians with ranges) and OUT/results.json (every figure),
 * OUT/bench.log. A failing scenario logs one line and leaves its cells "failed [n]"; the others run. Returns the exit
 * code: 0 when everything ran, 1 when something failed, 2 for a bad command line.
 */
export async function runBench(argv: string[], origin: string): Promise<number> {
  let opts;
  try {
    opts = parseBenchArgs(argv, origin, SCENARIOS.map((s) => s.name));
  } catch (e) {
    if (!(e instanceof BenchUsageError)) throw e;
    console.error(`bench: ${e.message} (bench --help lists the options)`);
    return 2;
  }
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  if (opts.list) {
    for (const s of SCENARIOS) console.log(`${s.name.padEnd(16)} ${s.about}`);
    return 0;
  }
  const started = performance.now();
  mkdirSync(opts.out, { recursive: true });
  const logFile = join(opts.out, 'bench.log');
  writeFileSync(logFile, '');
  const log = (s: string) => { console.log(s); appendFileSync(logFile, s + '\n'); };
  const table = new ResultTable(opts.steps, opts.guidance);
  const raw: Record<string, unknown> = { date: new Date().toISOString(), argv, options: opts, scenarios: {} };
  const results = raw.scenarios as Record<string, unknown>;
  const sections: string[] = [];
  const failures: string[] = [];
  const selected = SCENARIOS.filter((s) => opts.scenarios.includes(s.name));
  const tableScen = selected.filter((s) => s.kind === 'table');
  const shapeOf = (s: Scenario): Shape => (opts.tiny ? s.shape!.tiny : s.shape!.full);
  const shapes: Shape[] = [];
  for (const s of tableScen) if (!shapes.some((x) => shapeKey(x) === shapeKey(shapeOf(s)))) shapes.push(shapeOf(s));
  let device: Device | null = null;
  // the default column says so where the device has no tensor cores (it runs fp32 then)
  const column = (label: string) => (opts.backend !== 'webgpu' ? `t2v (${opts.backend})`
    : device?.base?.tensorCores === false && label === VARIANTS[0].label ? 't2v (webgpu, fp32: no tensor cores here)' : label);
  const about: string[] = [];
  const header = () => [`# t2v benchmark, ${raw.date as string}`, '', `Command: \`bench ${argv.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')}\``, '',
    ...about.map((l) => `${l}  `), '',
    `Random weights, ${opts.tiny ? 'tiny configuration (--tiny)' : 'released configuration'}. UNet calls: median (range) of ${opts.runs} `
    + `after 2 warm-ups; videos: of ${opts.videoRuns} after a 2-step warm-up. GPU memory: t2v's peak bytes in live buffers `
    + '(pool: the peak of live + pooled free buffers; each scenario starts from an empty pool), PyTorch\'s '
    + 'torch.cuda.max_memory_allocated (pool: max_memory_reserved, its caching allocator); both include the weights.', ''].join('\n');

  const flush = () => {
    writeAtomic(join(opts.out, 'results.json'), JSON.stringify(raw, null, 1));
    const md = [header(), table.render(), ...sections, failures.length ? `Failed: ${failures.join('; ')}\n` : ''];
    writeAtomic(join(opts.out, 'table.md'), md.join('\n'));
  };
  const fail = (what: string, e: unknown) => {
    const msg = `${what}: ${oneLine(e)}`;
    failures.push(msg);
    log(`${what} failed: ${oneLine(e)}`);
    appendFileSync(logFile, `${(e as Error)?.stack ?? e}\n`);
    return msg;
  };

  // t2v
  let models: Models | null = null;
  const t2vWanted = selected.some((s) => s.kind !== 'torch');
  if (t2vWanted) {
    try {
      device = await openBackend(opts.backend, {}, [...new Set(selected.flatMap((s) => s.dawnFlags ?? []))]);
      raw.device = device.details;
      log(`t2v on ${opts.backend}: ${Object.entries(device.details).map(([k, v]) => `${k} ${v}`).join('; ')}`);
    } catch (e) {
      const msg = fail(`backend ${opts.backend}`, e);
      for (const v of opts.variants) for (const s of tableScen) table.fail(shapeOf(s), [...s.rows!, 'memory'], column(v.label), msg);
    }
  }
  // declared once the device is known (the labels depend on it), so that cells never reached read "not run"
  for (const v of opts.variants) for (const s of tableScen) table.expect(shapeOf(s), [...s.rows!, 'memory'], column(v.label));
  const ctxFor = (col: string): RunContext => ({
    opts, table, log, column: col,
    models: () => {
      if (!models) {
        const t0 = performance.now();
        const half = opts.weights === 'f16' || (opts.weights === 'auto' && halfWeightsByDefault());
        models = randomPipeline(opts.tiny, half);
        log(`random ${opts.tiny ? 'tiny' : 'released'} text tower, UNet and VAE (${half ? 'float16' : 'float32'} weights) in ${(performance.now() - t0).toFixed(0)} ms`);
      }
      return models;
    },
  });
  if (device) {
    about.push(`t2v: ${opts.backend}; ${Object.entries(device.details).filter(([k]) => k !== 'features').map(([k, v]) => `${k} ${v}`).join('; ')}`);
    for (const v of opts.variants) {
      const col = column(v.label);
      try {
        applyVariant(v.options, v.instruments);
      } catch (e) {
        const msg = fail(`variant ${v.name}`, e);
        for (const s of tableScen) table.fail(shapeOf(s), [...s.rows!, 'memory'], col, msg);
        continue;
      }
      for (const shape of shapes) {
        let peakInUse = 0;
        let peakPool: number | null = 0;
        for (const s of tableScen.filter((x) => shapeKey(shapeOf(x)) === shapeKey(shape))) {
          log(`== ${s.name} ${shapeKey(shape)}, ${col}`);
          const key = `${s.name} ${shapeKey(shape)} ${v.name}`;
          // each scenario starts from an empty pool, so its figures are its own (the weights are live: they count)
          releasePooledBuffers();
          resetGPUMemoryPeak();
          try {
            applyVariant(v.options, v.instruments);
            const r = await s.run(ctxFor(col), shape, s.rows!);
            results[key] = r.raw;
          } catch (e) {
            const msg = fail(`${s.name} (${v.name})`, e);
            table.fail(shape, s.rows!, col, msg);
          }
          if (opts.backend === 'webgpu') {
            const m = gpuBytes();
            const raw = results[key];
            results[key] = { ...(raw && typeof raw === 'object' ? raw : { result: raw }), gpu_memory: m };
            peakInUse = Math.max(peakInUse, m.peakInUse ?? m.allocated);
            peakPool = m.peakAllocated === null || peakPool === null ? null : Math.max(peakPool, m.peakAllocated);
            log(`  GPU memory: peak in use ${gib(m.peakInUse)}, pool (allocated) peak ${gib(m.peakAllocated)}, now ${gib(m.allocated)}`);
          }
          flush();
        }
        // the column's peaks over its scenarios (tfjs's own pool keeps no peak: what it holds at the end, its pool)
        table.set(shape, 'memory', col, opts.backend !== 'webgpu' ? { text: `n/a (${opts.backend})` }
          : { bytes: peakInUse, poolBytes: peakPool ?? undefined });
      }
    }
    for (const s of selected.filter((x) => x.kind === 'once')) {
      log(`== ${s.name}`);
      try {
        applyVariant({});
        const r = await s.run(ctxFor(column(opts.variants[0].label)), shapes[0] ?? { frames: 0, height: 0, width: 0 }, []);
        results[s.name] = r.raw;
        if (r.markdown) sections.push(r.markdown);
      } catch (e) {
        results[s.name] = { error: fail(s.name, e) };
      }
      flush();
    }
    if (models) disposeModels(models);
    log(`t2v done in ${((performance.now() - started) / 1000).toFixed(0)} s; tensors left ${tf.memory().numTensors}`);
  }

  // PyTorch, at the shapes the t2v scenarios had (or the video shape with every row)
  const torch = selected.find((s) => s.kind === 'torch');
  if (torch) {
    const groups: [Shape, RowKey[]][] = shapes.length
      ? shapes.map((sh) => [sh, [...new Set(tableScen.filter((s) => shapeKey(shapeOf(s)) === shapeKey(sh)).flatMap((s) => s.rows!))]])
      : [[opts.tiny ? { frames: 2, height: 32, width: 32 } : { frames: 16, height: 256, width: 256 }, ROW_KEYS.filter((r) => r !== 'unet-call-b2')]];
    for (const [shape, rows] of groups) {
      log(`== torch ${shapeKey(shape)}`);
      const left = opts.budgetS - (performance.now() - started) / 1000 - 15;
      const ctx = ctxFor('');
      ctx.opts = { ...opts, torchTimeoutS: Math.max(30, Math.min(opts.torchTimeoutS, left)) };
      try {
        const r = await torch.run(ctx, shape, rows);
        results[`torch ${shapeKey(shape)}`] = r.raw;
        const t = r.raw as { torch?: string; diffusers?: string; device?: string; attention?: string; text_encoder?: string; python?: string };
        about.push(`PyTorch (${shapeKey(shape)}): torch ${t.torch}, diffusers ${t.diffusers}, python ${t.python}, ${t.device}; attention ${t.attention}${t.text_encoder ? `; text tower ${t.text_encoder}` : ''}`);
      } catch (e) {
        results[`torch ${shapeKey(shape)}`] = { error: fail('torch', e) };
      }
      flush();
    }
  }
  flush();
  log('');
  log(table.render());
  log(`table: ${join(opts.out, 'table.md')}; every figure: ${join(opts.out, 'results.json')} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
  return failures.length ? 1 : 0;
}
