import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { DEFAULT_MODEL, cacheRoot, cachedModelDir, isHubId } from '../src/hub/model-cache.js';
import { runCli } from './cli-run.js';
import { ROOT } from './helpers.js';
import { FILES, REPO, closedEndpoint, startHub, type TestHub } from './hub-server.js';

// `t2v generate "<prompt>"` without --model: the released model's id, served here by the stand-in hub (the tiny
// diffusers test model under that name), downloaded and converted into the cache on first use.
let hub: TestHub;
let work: string;
const saved = { HF_ENDPOINT: process.env.HF_ENDPOINT, T2V_CACHE: process.env.T2V_CACHE };

before(async () => {
  hub = await startHub(new Map([[DEFAULT_MODEL, FILES], [REPO, FILES]]));
  work = mkdtempSync(join(tmpdir(), 't2v-first-run-'));
});

after(async () => {
  await hub.close();
  rmSync(work, { recursive: true, force: true });
  for (const [k, v] of Object.entries(saved)) { if (v === undefined) delete process.env[k]; else process.env[k] = v; }
});

const small = ['--frames', '2', '--height', '32', '--width', '32', '--steps', '2', '--backend', 'cpu', '--no-progress'];

test('cache folder: T2V_CACHE, else t2v/ in HF_HOME, else in $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface', () => {
  assert.equal(cacheRoot({ T2V_CACHE: '/c', HF_HOME: '/h', XDG_CACHE_HOME: '/x' }), '/c');
  assert.equal(cacheRoot({ HF_HOME: '/h', XDG_CACHE_HOME: '/x' }), join('/h', 't2v'));
  assert.equal(cacheRoot({ XDG_CACHE_HOME: '/x' }), join('/x', 'huggingface', 't2v'));
  assert.equal(cacheRoot({}), join(homedir(), '.cache', 'huggingface', 't2v'));
  assert.equal(cachedModelDir(DEFAULT_MODEL, { T2V_CACHE: '/c' }), join('/c', 'damo-vilab--text-to-video-ms-1.7b'));
  assert.ok(isHubId('damo-vilab/text-to-video-ms-1.7b'));
  assert.ok(!isHubId('./weights/x'));
  assert.ok(!isHubId('/abs/path'));
  assert.ok(!isHubId('weights'));
  mkdirSync(join(work, 'owner', 'name'), { recursive: true });
  assert.ok(!isHubId(join(work, 'owner', 'name')));
});

test('generate without --model: first run downloads and converts the released model into the cache, the second uses it', async () => {
  const cache = join(work, 'cache');
  process.env.T2V_CACHE = cache;
  process.env.HF_ENDPOINT = hub.endpoint;
  hub.requests = [];
  const first = await runCli(['generate', 'a panda', ...small, '--out', join(work, 'a.gif')]);
  assert.equal(first.code, 0, first.stderr);
  const dir = join(cache, 'damo-vilab--text-to-video-ms-1.7b');
  assert.match(first.stderr, new RegExp(`model ${DEFAULT_MODEL}: first use, downloading it \\(fp16 .*into ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.match(first.stdout, /wrote .*a\.gif: 2 frames 32x32/);
  assert.ok(hub.requests.some((q) => q.path.startsWith(`/${DEFAULT_MODEL}/resolve/main/`)), 'fetched from HF_ENDPOINT');
  const info = JSON.parse(readFileSync(join(dir, 't2v.json'), 'utf8'));
  assert.equal(info.source.hub, DEFAULT_MODEL);
  assert.equal(info.source.files.vae, 'vae/diffusion_pytorch_model.fp16.safetensors', 'the fp16 variant');
  assert.deepEqual(readdirSync(cache), ['damo-vilab--text-to-video-ms-1.7b'], 'the downloaded files are removed once converted');

  hub.requests = [];
  const second = await runCli(['generate', 'a panda', ...small, '--out', join(work, 'b.gif')]);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(hub.requests.length, 0, 'the cache answers: no request to the hub');
  assert.match(second.stderr, new RegExp(`^model ${DEFAULT_MODEL}: .*damo-vilab--text-to-video-ms-1\\.7b$`, 'm'));
  assert.ok(existsSync(join(work, 'b.gif')));
});

test('generate --model owner/name: any hub id, cached under its name; bad arguments are refused before any download', async () => {
  const cache = join(work, 'cache-id');
  process.env.T2V_CACHE = cache;
  process.env.HF_ENDPOINT = hub.endpoint;
  hub.requests = [];
  const bad = await runCli(['generate', 'p', '--model', REPO, '--height', '30', '--out', join(work, 'c.gif')]);
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, 't2v: height must be a positive multiple of 8, got 30');
  assert.equal(hub.requests.length, 0);
  const r = await runCli(['generate', 'p', '--model', REPO, ...small, '--out', join(work, 'c.gif')]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(cache, 'test-org--tiny-t2v', 't2v.json')));
});

test('generate without --model, offline and nothing cached: one line saying what to do, exit 1, nothing written', async () => {
  const cache = join(work, 'cache-offline');
  process.env.T2V_CACHE = cache;
  process.env.HF_ENDPOINT = await closedEndpoint();
  const r = await runCli(['generate', 'a panda', ...small, '--out', join(work, 'd.gif')]);
  assert.equal(r.code, 1);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('t2v:'));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0], /^t2v: cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\) to download damo-vilab\/text-to-video-ms-1\.7b \(needed once, then kept in .*cache-offline.*\): connect to the internet .*HF_ENDPOINT.*--model with a converted folder/);
  assert.ok(!existsSync(join(work, 'd.gif')));
  assert.ok(!existsSync(join(cache, 'damo-vilab--text-to-video-ms-1.7b')), 'no half-made model folder');
});

test('generate --model owner/name that is neither a folder nor on the hub: one line that says both', async () => {
  process.env.T2V_CACHE = join(work, 'cache-typo');
  process.env.HF_ENDPOINT = hub.endpoint;
  const r = await runCli(['generate', 'p', '--model', 'weights/no-such-model', ...small, '--out', join(work, 'e.gif')]);
  assert.equal(r.code, 1);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('t2v:'));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0], /^t2v: weights\/no-such-model is no folder here; as a hub id: weights\/no-such-model: not found on http:\/\/127\.0\.0\.1:\d+ \(revision main\); check the model id/);
  assert.ok(!existsSync(join(work, 'e.gif')));
});

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

test('generate without --model on a terminal: the download shows its progress bar, then the conversion its bars',
  { skip: !hasScript && 'needs script(1) for a pseudo-terminal' }, async () => {
    const cache = join(work, 'cache-tty');
    const cmd = [process.execPath, '--import', 'tsx', join(ROOT, 'bin', 't2v-dev.ts'), 'generate', 'a panda',
      '--frames', '2', '--height', '32', '--width', '32', '--steps', '2', '--backend', 'cpu', '--out', join(work, 'tty.gif')]
      .map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    // script(1) runs the command on a pseudo-terminal, so stderr is a TTY as in a shell
    // asynchronously: the stand-in hub answers from this process
    const child = spawn('script', ['-qec', cmd, '/dev/null'], {
      cwd: ROOT, env: { ...process.env, T2V_CACHE: cache, HF_ENDPOINT: hub.endpoint, COLUMNS: '120' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString('utf8'); });
    const status = await new Promise<number | null>((res) => child.on('close', (code) => res(code)));
    const r = { status, stdout };
    assert.equal(r.status, 0, r.stdout);
    assert.match(r.stdout, /download \[[█░]+\] 100% \| \d+\/\d+ MB/, 'the download bar reached 100%');
    assert.match(r.stdout, /convert {2}UNet/);
    assert.match(r.stdout, /wrote .*tty\.gif/);
  });
