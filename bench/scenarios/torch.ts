import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunContext, Scenario } from '../harness/scenario.js';
import type { Stat } from '../harness/stats.js';
import type { Cell, RowKey, Shape } from '../harness/table.js';

const MODE_LABEL: Record<string, (dtype: string) => string> = {
  eager: (d) => `diffusers ${d} (SDPA) eager`,
  graph: (d) => `diffusers ${d}, CUDA graph replay`,
  compile: () => 'torch.compile (reduce-overhead)',
};

/** The PyTorch columns a run has, in order. */
export function torchColumns(modes: string[], torchArgs: string[]): { mode: string; label: string }[] {
  const i = torchArgs.indexOf('--dtype');
  const dtype = i >= 0 ? torchArgs[i + 1] : 'fp16';
  return modes.map((m) => ({ mode: m, label: (MODE_LABEL[m] ?? ((d: string) => `diffusers ${d} ${m}`))(dtype) }));
}

/** bench/diffusers_unet.py: beside the bundle (bench/pack.sh puts it there) or in this checkout. */
function findScript(given?: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const cands = given ? [given] : [join(dirname(process.argv[1] ?? '.'), 'diffusers_unet.py'), join(here, '..', 'diffusers_unet.py'),
    join(here, 'diffusers_unet.py'), join(process.cwd(), 'bench', 'diffusers_unet.py')];
  const f = cands.find((c) => existsSync(c));
  if (!f) throw new Error(`bench/diffusers_unet.py not found (looked at ${cands.join(', ')}); pass --torch-script`);
  return f;
}

/** diffusers' source: --diffusers, T2V_DIFFUSERS, or the archive bench/pack.sh put beside the bundle. */
function findDiffusers(given?: string): string {
  const g = given ?? process.env.T2V_DIFFUSERS;
  if (g) {
    if (!existsSync(g)) throw new Error(`diffusers source ${g} does not exist`);
    return g;
  }
  const dir = dirname(process.argv[1] ?? '.');
  const tar = existsSync(dir) ? readdirSync(dir).find((f) => /^diffusers-src\.tar(\.xz|\.gz)?$/.test(f)) : undefined;
  if (tar) return join(dir, tar);
  throw new Error('diffusers source not found: pass --diffusers DIR (a folder holding the diffusers package, see ../shared/reference/README.md) or pack it with bench/pack.sh');
}

interface TorchMode {
  unet_call?: Stat; guided_step?: Stat; video?: { total: Stat };
  /** torch.cuda.max_memory_allocated, max_memory_reserved (the caching allocator's segments: our pool's counterpart) */
  peak_bytes?: number; reserved_bytes?: number;
  skipped?: string; error?: string; first_calls_s?: number;
}
interface TorchResult { modes: Record<string, TorchMode>; attention?: string; torch?: string; diffusers?: string; device?: string; text_encoder?: string }

/** Runs the PyTorch script for one shape and the given rows; its lines go to the log as they come. */
async function runTorch(ctx: RunContext, shape: Shape, rows: readonly RowKey[]): Promise<TorchResult> {
  const o = ctx.opts;
  const script = findScript(o.torchScript);
  const diffusers = findDiffusers(o.diffusers);
  const scen = [rows.includes('unet-call') && 'unet-call', (rows.includes('guided-step') || rows.includes('unet-call-b2')) && 'guided-step',
    rows.includes('video') && 'video'].filter(Boolean);
  const out = join(o.out, `torch-${shape.frames}x${shape.height}x${shape.width}.json`);
  rmSync(out, { force: true });
  const args = [script, '--diffusers', diffusers, '--out', out, '--frames', String(shape.frames), '--height', String(shape.height),
    '--width', String(shape.width), '--steps', String(o.steps), '--guidance', String(o.guidance), '--runs', String(o.runs),
    '--video-runs', String(o.videoRuns), '--scenarios', scen.join(','), '--modes', o.torchModes.join(','),
    ...(o.tiny ? ['--tiny'] : []), ...o.torchArgs];
  ctx.log(`  ${o.python} ${args.join(' ')}`);
  const stderr: string[] = [];
  const code = await new Promise<number | string>((resolve) => {
    const p = spawn(o.python, args, { env: { ...process.env, PYTHONUNBUFFERED: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const timer = setTimeout(() => p.kill('SIGTERM'), o.torchTimeoutS * 1000);
    let buf = '';
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) ctx.log(`  torch: ${l}`);
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr.push(...d.toString().split('\n').filter((l) => l.trim() && !/should be kept in float32|warn/i.test(l)));
      stderr.splice(0, Math.max(0, stderr.length - 20));
    });
    p.on('error', (e) => { clearTimeout(timer); resolve(`could not start ${o.python}: ${e.message}`); });
    p.on('close', (c, sig) => { clearTimeout(timer); resolve(sig ? `killed by ${sig} after ${o.torchTimeoutS} s (--torch-timeout)` : c ?? 1); });
  });
  if (code !== 0) ctx.log(`  torch exited: ${code}${stderr.length ? `; last lines: ${stderr.slice(-3).join(' / ')}` : ''}`);
  // what it finished is in the JSON (written after each mode)
  if (!existsSync(out)) throw new Error(`the PyTorch script wrote nothing (${code}): ${stderr.slice(-1)[0] ?? 'no output'}`);
  const res = JSON.parse(readFileSync(out, 'utf8')) as TorchResult;
  if (code !== 0) {
    for (const m of o.torchModes) res.modes[m] ??= { error: `not reached: the script ended (${code})` };
  }
  return res;
}

export const torch: Scenario = {
  name: 'torch', about: 'diffusers UNet3DConditionModel (bench/diffusers_unet.py): eager, CUDA graph replay, torch.compile',
  kind: 'torch',
  run: async (ctx, shape, rows) => {
    const cols = torchColumns(ctx.opts.torchModes, ctx.opts.torchArgs);
    for (const c of cols) ctx.table.expect(shape, [...rows, 'memory'], c.label);
    let res: TorchResult;
    try {
      res = await runTorch(ctx, shape, rows);
    } catch (e) {
      for (const c of cols) ctx.table.fail(shape, [...rows, 'memory'], c.label, `PyTorch side: ${(e as Error).message.split('\n')[0]}`);
      throw e;
    }
    for (const c of cols) {
      const m = res.modes[c.mode];
      const why = !m ? 'not reported' : m.skipped ? `${c.mode}: ${m.skipped}` : m.error ? `${c.mode}: ${m.error}` : null;
      const missing = (what: string): Cell => (m?.skipped ? { skipped: why! } : { error: why ?? `${c.mode}: no ${what} figure` });
      // diffusers' guided step is a plain batch of 2 ([x, x]): the same call as the batch-2 row
      if (rows.includes('unet-call-b2') && rows.includes('guided-step')) ctx.table.set(shape, 'unet-call-b2', c.label, m?.guided_step ? { text: '(= guided step)' } : missing('batch-2'));
      else if (rows.includes('unet-call-b2')) ctx.table.set(shape, 'unet-call-b2', c.label, m?.guided_step ? { stat: m.guided_step, unit: 'ms' } : missing('batch-2'));
      const put = (row: RowKey, s: Stat | undefined, unit: 'ms' | 's') => {
        if (!rows.includes(row)) return;
        ctx.table.set(shape, row, c.label, s ? { stat: s, unit } : missing(row));
      };
      put('unet-call', m?.unet_call, 'ms');
      put('guided-step', m?.guided_step, 'ms');
      put('video', m?.video?.total, 's');
      ctx.table.set(shape, 'memory', c.label, m?.peak_bytes !== undefined ? { bytes: m.peak_bytes, poolBytes: m.reserved_bytes }
        : why ? missing('memory') : { text: 'n/a (no CUDA)' });
    }
    // the columns say "SDPA" only where diffusers chose its SDPA processor (PyTorch 2)
    if (res.attention && !res.attention.includes('AttnProcessor2_0')) {
      for (const c of cols) ctx.table.renameColumn(c.label, c.label.replace('(SDPA)', `(${res.attention})`));
    }
    return { raw: res };
  },
};
