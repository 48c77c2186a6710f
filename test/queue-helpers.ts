import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { convertModelScope } from '../converters/modelscope.js';
import { onPath } from '../src/media/ffmpeg.js';
import { CLIP_VOCAB, FIXTURES, ROOT } from './helpers.js';

export const hasRedis = onPath('redis-server') !== null;

/** A free loopback TCP port (the OS picks one; it is closed again before use). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RedisServer {
  url: string;
  stop(): Promise<void>;
}

/** Debian's redis-server on a free loopback port, in memory only; stopped (and its process ended) by stop(). */
export async function startRedis(): Promise<RedisServer> {
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`redis-server did not start: ${log}`)), 10000);
    proc.stdout.on('data', (b: Buffer) => {
      log += b.toString();
      if (/Ready to accept connections/.test(log)) {
        clearTimeout(t);
        resolve();
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`redis-server exited (${code}): ${log}`));
    });
  });
  proc.stdout.resume();
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () => new Promise<void>((resolve) => {
      if (proc.exitCode !== null) return resolve();
      proc.once('exit', () => resolve());
      proc.kill('SIGKILL');
    }),
  };
}

/** test/fixtures/e2e/tiny converted into `dir` (as test/e2e.test.ts does), with the CLIP vocabulary as tokenizer. */
export async function convertTiny(dir: string): Promise<string> {
  await convertModelScope(join(FIXTURES, 'e2e', 'tiny'), dir, { dtype: 'float32', tokenizer: CLIP_VOCAB });
  return dir;
}

export interface WorkerProcess {
  proc: ChildProcess;
  lines: string[];
  /** Resolves with the first line (past or future) that matches. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `t2v worker ...` in its own process (node --import tsx), its stdout kept line by line. */
export function spawnWorker(args: string[]): WorkerProcess {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test', 'queue-worker-process.ts'), 'worker', ...args],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  let buf = '';
  const onData = (b: Buffer) => {
    buf += b.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      lines.push(line);
      for (const w of [...waiters]) {
        if (w.re.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  };
  proc.stdout?.on('data', onData);
  proc.stderr?.on('data', onData);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    proc, lines, exited,
    waitFor(re, timeoutMs = 120000) {
      const hit = lines.find((l) => re.test(l));
      if (hit !== undefined) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no line ${re} within ${timeoutMs} ms; output:\n${lines.join('\n')}`)), timeoutMs);
        waiters.push({ re, resolve: (l) => { clearTimeout(t); resolve(l); } });
        void exited.then(({ code, signal }) => { clearTimeout(t); reject(new Error(`worker exited (${code ?? signal}) before ${re}; output:\n${lines.join('\n')}`)); });
      });
    },
  };
}

