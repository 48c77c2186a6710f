import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, writeSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { crc32 } from '../converters/crc32.js';
import { openCheckpoint } from '../converters/open.js';
import { PyDict, StorageRef, unpickle } from '../converters/pickle.js';
import { readNpy } from '../src/io/npy.js';
import { FIXTURES } from './helpers.js';

const DIR = join(FIXTURES, 'readers');
const MARKER_DIR = '/tmp';
const MARKER_PREFIX = 't2v-reader-marker-';
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as Record<string, {
  file: string; npy?: string; tensors: Record<string, { dtype: string; shape: number[] }>;
}>;
const malicious = JSON.parse(readFileSync(join(DIR, 'malicious.json'), 'utf8')) as Record<string, string>;
const scratch = mkdtempSync(join(tmpdir(), 't2v-readers-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Opens and reads every tensor; returns the names, or rethrows what the reader threw. */
async function readAll(path: string, maxTensorElements = 1 << 20): Promise<string[]> {
  const ckpt = await openCheckpoint(path, { maxTensorElements });
  try {
    for (const e of ckpt.entries.values()) {
      const data = await e.read();
      assert.equal(data.length, e.shape.reduce((a, b) => a * b, 1));
    }
    return [...ckpt.entries.keys()];
  } finally {
    await ckpt.close();
  }
}

/** A reader may refuse bad input only with a plain Error that names the file: never a TypeError, RangeError... */
function assertCleanError(err: unknown, path: string, context: string): void {
  assert.ok(err instanceof Error, `${context}: threw a non-Error ${String(err)}`);
  assert.equal(err.constructor, Error, `${context}: threw ${err.constructor.name}: ${err.message}`);
  assert.ok(err.message.startsWith(`${path}:`), `${context}: message does not name the file: ${err.message}`);
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('checkpoint readers on files written by PyTorch', () => {
  for (const [name, c] of Object.entries(expected)) {
    test(`${c.file}: names, dtypes, shapes and values match what PyTorch saved`, async () => {
      const ckpt = await openCheckpoint(join(DIR, c.file));
      try {
        assert.deepEqual([...ckpt.entries.keys()], Object.keys(c.tensors), 'tensor names in file order');
        for (const [key, meta] of Object.entries(c.tensors)) {
          const e = ckpt.entries.get(key)!;
          assert.equal(e.dtype, meta.dtype, key);
          assert.deepEqual(e.shape, meta.shape, key);
          const ref = readNpy(join(DIR, c.npy ?? name, `${key}.npy`));
          const ours = await e.read();
          assert.ok(ours instanceof Float32Array);
          // Bit-exact (deepStrictEqual tells -0 from 0): every conversion to float32 is exact or round-to-nearest.
          assert.deepEqual(Array.from(ours), Array.from(ref.data as Float32Array), key);
        }
      } finally {
        await ckpt.close();
      }
    });
  }

  test('the {"state_dict": ...} wrapper: only the state_dict tensors, none of the keys beside it', async () => {
    const names = await readAll(join(DIR, 'wrapped.pth'));
    assert.ok(names.length > 0 && names.every((n) => n.startsWith('first_stage_model.')), names.join(', '));
  });

  test('views of one storage read independently and concurrently', async () => {
    const ckpt = await openCheckpoint(join(DIR, 'views.pth'));
    const [big, row, rows] = await Promise.all(['big', 'row_2', 'rows_3_7'].map((k) => ckpt.entries.get(k)!.read()));
    assert.deepEqual(Array.from(row), Array.from(big.subarray(8, 12)));
    assert.deepEqual(Array.from(rows), Array.from(big.subarray(12, 28)));
    await ckpt.close();
    await ckpt.close();
    await assert.rejects(ckpt.entries.get('big')!.read(), /read after the checkpoint was closed/);
  });

  test('a tensor above maxTensorElements is refused up front', async () => {
    const path = join(DIR, 'views.pth');
    await assert.rejects(openCheckpoint(path, { maxTensorElements: 60 }), (err) => {
      assertCleanError(err, path, 'limit');
      return /'overlapping'.*exceeds 60 elements/.test((err as Error).message);
    });
  });

  test('a bare pickle (not torch.save output) is refused as a foreign file', async () => {
    const { pickles } = JSON.parse(readFileSync(join(DIR, 'plain_pickles.json'), 'utf8')) as { pickles: Record<string, string> };
    const path = join(scratch, 'bare.pkl');
    writeFileSync(path, Buffer.from(pickles.protocol2, 'hex'));
    await assert.rejects(openCheckpoint(path), /bare\.pkl: not a PyTorch zip checkpoint/);
  });

  test('safetensors: absurd header length, bad JSON, offsets outside the file, sizes that do not match', async () => {
    let count = 0;
    const st = (header: unknown, data = 16, len?: bigint): string => {
      const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
      const n = Buffer.alloc(8);
      n.writeBigUInt64LE(len ?? BigInt(h.length));
      const path = join(scratch, `bad${count++}.safetensors`);
      writeFileSync(path, Buffer.concat([n, h, Buffer.alloc(data)]));
      return path;
    };
    const ok = { a: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } };
    assert.equal((await readAll(st(ok))).length, 1);
    const cases: [string, RegExp][] = [
      [st(ok, 16, 2n ** 63n), /not a PyTorch zip checkpoint .* nor a safetensors file/],
      [st(ok, 16, 1000n), /safetensors header length 1000 exceeds the file/],
      [st('{"a": {"dtype": "F32", ', 16), /header is not valid JSON/],
      [st('{"a": 1}', 16), /tensor 'a': header entry is not an object/],
      [st({ a: { ...ok.a, data_offsets: [0, 32] } }), /'a': data_offsets \[0, 32\] lie outside the 16 data bytes/],
      [st({ a: { ...ok.a, data_offsets: [8, 4] } }), /'a': data_offsets \[8, 4\] lie outside/],
      [st({ a: { ...ok.a, shape: [3, 2] } }), /'a': 16 data bytes do not hold 6 F32 elements/],
      [st({ a: { ...ok.a, shape: [2, -2] } }), /'a': malformed shape/],
      [st({ a: { ...ok.a, dtype: 'C64' } }), /'a': unsupported dtype "C64"/],
      [st({ a: { ...ok.a, shape: [2 ** 20, 2 ** 20] } }), /exceeds 1048576 elements/],
      [st({ __metadata__: { x: 'y' } }), /holds no tensors/],
    ];
    for (const [path, re] of cases) {
      await assert.rejects(readAll(path), (err) => {
        assertCleanError(err, path, re.source);
        assert.match((err as Error).message, re);
        return true;
      });
    }
  });

  test('missing files, folders, empty and foreign files: one clear error', async () => {
    await assert.rejects(openCheckpoint(join(scratch, 'nope.pth')), /nope\.pth: cannot open checkpoint: no such file/);
    await assert.rejects(openCheckpoint(DIR), /readers: cannot open checkpoint: is a directory, not a checkpoint file/);
    await assert.rejects(openCheckpoint('/dev/null'), /dev\/null: cannot open checkpoint: not a regular file/);
    const empty = join(scratch, 'empty.pth');
    writeFileSync(empty, '');
    await assert.rejects(openCheckpoint(empty), /empty\.pth: not a PyTorch zip checkpoint/);
    const npy = join(DIR, 'views', 'big.npy');
    await assert.rejects(openCheckpoint(npy), /big\.npy: not a PyTorch zip checkpoint/);
  });
});

/** Python values as the fixture script writes them to JSON. */
function plain(v: unknown): unknown {
  if (v instanceof PyDict) return Object.fromEntries([...v.map].map(([k, x]) => [String(k), plain(x)]));
  if (v instanceof Uint8Array) return { bytes: Array.from(v) };
  if (typeof v === 'bigint') return { big: v.toString() };
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

describe('restricted unpickler on plain data', () => {
  const { pickles, expected: want } = JSON.parse(readFileSync(join(DIR, 'plain_pickles.json'), 'utf8')) as {
    pickles: Record<string, string>; expected: unknown;
  };
  for (const [protocol, hex] of Object.entries(pickles)) {
    if (protocol.startsWith('torch:')) continue;
    test(`${protocol}: every value as Python pickled it`, () => {
      const value = unpickle(Buffer.from(hex, 'hex'), { source: protocol });
      // deepStrictEqual: -0 stays -0, 2^-1074 stays exact, big integers stay exact.
      assert.deepEqual(plain(value), want);
    });
  }

  test('3000 seeded mutations of pickles: a value or a clean Error, never anything else', { timeout: 60_000 }, () => {
    const rand = rng(7);
    const load = (pid: unknown): StorageRef => {
      if (!Array.isArray(pid) || typeof pid[2] !== 'string') throw new Error('p: bad pid');
      return new StorageRef('float32', pid[2], 'cpu', 1000);
    };
    let values = 0;
    for (const [name, hex] of Object.entries(pickles)) {
      const bytes = Buffer.from(hex, 'hex');
      for (let trial = 0; trial < 500; trial++) {
        const m = Buffer.from(bytes);
        for (let i = 0, n = 1 + Math.floor(rand() * 3); i < n; i++) {
          const at = Math.floor(rand() * m.length);
          m[at] = rand() < 0.5 ? Math.floor(rand() * 256) : m[at] ^ (1 << Math.floor(rand() * 8));
        }
        const cut = rand() < 0.2 ? Math.floor(rand() * m.length) : m.length;
        try {
          unpickle(m.subarray(0, cut), { source: 'p', persistentLoad: load });
          values++;
        } catch (err) {
          assert.ok(err instanceof Error && err.constructor === Error, `${name} trial ${trial}: ${String(err)}`);
          assert.match(err.message, /^p: /);
        }
      }
    }
    assert.ok(values > 100 && values < 3000, String(values));
  });

  test('malformed pickles: a persistent id without a loader, truncation, a leftover stack, an unknown opcode', () => {
    assert.throws(() => unpickle(Buffer.from('80025d51', 'hex'), { source: 'p' }), /^Error: p: persistent id/);
    assert.throws(() => unpickle(Buffer.from('80025d', 'hex'), { source: 'p' }), /^Error: p: truncated pickle/);
    assert.throws(() => unpickle(Buffer.from('8002', 'hex'), { source: 'p' }), /^Error: p: truncated pickle/);
    assert.throws(() => unpickle(Buffer.from('80025d5d2e', 'hex'), { source: 'p' }), /does not end with one value/);
    assert.throws(() => unpickle(Buffer.from('80022e', 'hex'), { source: 'p' }), /does not end with one value/);
    assert.throws(() => unpickle(Buffer.from('8002ff', 'hex'), { source: 'p' }), /unsupported pickle opcode 0xff/);
  });
});

/** Pickle bytes for `{name: _rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())}`. */
function tensorPickle(tensors: { name: string; key: string; numel: number; offset: number; shape: number[] }[]): Buffer {
  const parts: Buffer[] = [Buffer.from([0x80, 0x02, 0x7d, 0x28])];
  const str = (s: string): Buffer => Buffer.concat([Buffer.from([0x58]), u32(s.length), Buffer.from(s)]);
  const long = (n: number): Buffer => {
    const b = Buffer.alloc(10);
    b[0] = 0x8a;
    b[1] = 8;
    b.writeBigInt64LE(BigInt(n), 2);
    return b;
  };
  const tuple = (xs: number[]): Buffer => Buffer.concat([Buffer.from([0x28]), ...xs.map(long), Buffer.from([0x74])]);
  for (const t of tensors) {
    const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
    parts.push(str(t.name), Buffer.from('ctorch._utils\n_rebuild_tensor_v2\n('), Buffer.from('('), str('storage'),
      Buffer.from('ctorch\nFloatStorage\n'), str(t.key), str('cpu'), long(t.numel), Buffer.from('tQ'),
      long(t.offset), tuple(t.shape), tuple(stride), Buffer.from([0x89]), Buffer.from('ccollections\nOrderedDict\n)R'),
      Buffer.from('tR'));
  }
  parts.push(Buffer.from('u.'));
  return Buffer.concat(parts);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/**
 * A torch-style zip whose first storage is larger than 4 GiB, so the second entry's offset needs ZIP64. The big
 * storage is a hole in a sparse file: only the bytes the test reads are written.
 */
function writeSparseZip64(path: string, bigNumel: number, tail: Float32Array, small: Float32Array): void {
  const fd = openSync(path, 'w');
  const central: Buffer[] = [];
  let pos = 0;
  // crc: the entry's CRC-32 (the reader checks it for entries it reads whole; the 4 GiB storage only views cover is
  // never read whole, so its field stays 0)
  const entry = (name: string, size: number, crc: number, write: (dataStart: number) => void): void => {
    const nb = Buffer.from(name);
    const local = Buffer.alloc(30 + nb.length + 20);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(45, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(0xffffffff, 18);
    local.writeUInt32LE(0xffffffff, 22);
    local.writeUInt16LE(nb.length, 26);
    local.writeUInt16LE(20, 28);
    nb.copy(local, 30);
    local.writeUInt16LE(1, 30 + nb.length);
    local.writeUInt16LE(16, 32 + nb.length);
    local.writeBigUInt64LE(BigInt(size), 34 + nb.length);
    local.writeBigUInt64LE(BigInt(size), 42 + nb.length);
    writeSync(fd, local, 0, local.length, pos);
    write(pos + local.length);
    const c = Buffer.alloc(46 + nb.length + 28);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(45, 4);
    c.writeUInt16LE(45, 6);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(0xffffffff, 20);
    c.writeUInt32LE(0xffffffff, 24);
    c.writeUInt16LE(nb.length, 28);
    c.writeUInt16LE(28, 30);
    c.writeUInt32LE(0xffffffff, 42);
    nb.copy(c, 46);
    c.writeUInt16LE(1, 46 + nb.length);
    c.writeUInt16LE(24, 48 + nb.length);
    c.writeBigUInt64LE(BigInt(size), 50 + nb.length);
    c.writeBigUInt64LE(BigInt(size), 58 + nb.length);
    c.writeBigUInt64LE(BigInt(pos), 66 + nb.length);
    central.push(c);
    pos += local.length + size;
  };
  const pkl = tensorPickle([
    { name: 'tail', key: '0', numel: bigNumel, offset: bigNumel - tail.length, shape: [tail.length] },
    { name: 'small', key: '1', numel: small.length, offset: 0, shape: [2, small.length / 2] },
  ]);
  entry('archive/data.pkl', pkl.length, crc32(pkl), (at) => writeSync(fd, pkl, 0, pkl.length, at));
  entry('archive/data/0', bigNumel * 4, 0, (at) => writeSync(fd, Buffer.from(tail.buffer), 0, tail.byteLength, at + (bigNumel - tail.length) * 4));
  entry('archive/data/1', small.byteLength, crc32(new Uint8Array(small.buffer)), (at) => writeSync(fd, Buffer.from(small.buffer), 0, small.byteLength, at));
  const cd = Buffer.concat(central);
  const cdAt = pos;
  writeSync(fd, cd, 0, cd.length, pos);
  pos += cd.length;
  const end = Buffer.alloc(56 + 20 + 22);
  end.writeUInt32LE(0x06064b50, 0);
  end.writeBigUInt64LE(44n, 4);
  end.writeBigUInt64LE(3n, 24);
  end.writeBigUInt64LE(3n, 32);
  end.writeBigUInt64LE(BigInt(cd.length), 40);
  end.writeBigUInt64LE(BigInt(cdAt), 48);
  end.writeUInt32LE(0x07064b50, 56);
  end.writeBigUInt64LE(BigInt(pos), 64);
  end.writeUInt32LE(1, 72);
  end.writeUInt32LE(0x06054b50, 76);
  end.writeUInt16LE(0xffff, 84);
  end.writeUInt16LE(0xffff, 86);
  end.writeUInt32LE(0xffffffff, 88);
  end.writeUInt32LE(0xffffffff, 92);
  writeSync(fd, end, 0, end.length, pos);
  closeSync(fd);
}

describe('ZIP64 beyond 4 GiB', () => {
  test('a sparse 4.3 GB checkpoint: tensors past the 4 GiB mark read from the right offsets', async () => {
    const path = join(scratch, 'huge.pth');
    const bigNumel = 2 ** 30 + 1000; // 4 GiB + 4000 bytes
    const tail = Float32Array.from([1.5, -2.25, 3.125, 7]);
    const small = Float32Array.from([0.5, 1, 2, 4, 8, 16]);
    writeSparseZip64(path, bigNumel, tail, small);
    const rss = process.memoryUsage().rss;
    const ckpt = await openCheckpoint(path);
    assert.deepEqual([...ckpt.entries.keys()], ['tail', 'small']);
    assert.deepEqual(Array.from(await ckpt.entries.get('tail')!.read()), Array.from(tail));
    assert.deepEqual(ckpt.entries.get('small')!.shape, [2, 3]);
    assert.deepEqual(Array.from(await ckpt.entries.get('small')!.read()), Array.from(small));
    await ckpt.close();
    // Reading the two tensors touched a few bytes, not the 4 GiB storage.
    assert.ok(process.memoryUsage().rss - rss < 256 * 2 ** 20);
    rmSync(path);
  });
});

describe('malicious pickles', () => {
  const markers = (): string[] => readdirSync(MARKER_DIR).filter((n) => n.startsWith(MARKER_PREFIX));
  for (const m of markers()) rmSync(join(MARKER_DIR, m), { force: true });

  for (const [file, global] of Object.entries(malicious)) {
    test(`${file} is refused, naming ${global}, and nothing runs`, async () => {
      const path = join(DIR, file);
      await assert.rejects(readAll(path), (err) => {
        assertCleanError(err, path, file);
        const msg = (err as Error).message;
        if (global === 'extension') assert.match(msg, /refusing pickle extension-registry opcode/);
        else assert.ok(msg.includes(`'${global}'`) && /refusing/.test(msg), msg);
        return true;
      });
      assert.deepEqual(markers(), [], 'a payload created its marker file');
    });
  }

  test('the family covers what the brief lists', () => {
    const globals = new Set(Object.values(malicious));
    for (const g of ['torch.nn.modules.linear.Linear', 'os.system', 'posix.system', '__builtin__.eval', 'builtins.eval', '__builtin__.exec', 'commands.Popen',
      'torch.FloatStorage', '__main__.Payload', 'extension']) {
      assert.ok(globals.has(g), g);
    }
  });
});

describe('truncated and mutated files', { timeout: 240_000 }, () => {
  const sources = ['views.pth', 'wrapped.pth', 'lightning.ckpt', 'zip64.pth', 'proto4.pth', 'legacy.pth', 'hand.safetensors'];

  test('every truncation is a clean error', async () => {
    let cases = 0;
    for (const src of sources) {
      const bytes = readFileSync(join(DIR, src));
      const path = join(scratch, `cut-${src}`);
      const step = Math.max(1, Math.floor(bytes.length / 400));
      for (let cut = 0; cut < bytes.length; cut += step) {
        writeFileSync(path, bytes.subarray(0, cut));
        await assert.rejects(readAll(path), (err) => {
          assertCleanError(err, path, `${src} cut at ${cut}`);
          return true;
        });
        cases++;
      }
    }
    assert.ok(cases > 2500, String(cases));
  });

  test('seeded random mutations either read or fail cleanly', async () => {
    const rand = rng(20261124);
    let ok = 0;
    let refused = 0;
    for (const src of sources) {
      const bytes = readFileSync(join(DIR, src));
      const path = join(scratch, `mut-${src}`);
      for (let trial = 0; trial < 120; trial++) {
        const m = Buffer.from(bytes);
        const flips = 1 + Math.floor(rand() * 4);
        for (let i = 0; i < flips; i++) {
          // Half the mutations land in the first and last 600 bytes: headers, the pickle, the central directory.
          const r = rand();
          const at = r < 0.25 ? Math.floor(rand() * Math.min(600, m.length))
            : r < 0.5 ? m.length - 1 - Math.floor(rand() * Math.min(600, m.length))
              : Math.floor(rand() * m.length);
          m[at] = rand() < 0.5 ? Math.floor(rand() * 256) : m[at] ^ (1 << Math.floor(rand() * 8));
        }
        writeFileSync(path, m);
        try {
          await readAll(path);
          ok++;
        } catch (err) {
          assertCleanError(err, path, `${src} trial ${trial}`);
          refused++;
        }
      }
    }
    console.log(`mutations: ${ok} read, ${refused} refused`);
    assert.equal(ok + refused, sources.length * 120);
    assert.ok(refused > 100, `only ${refused} mutations were refused`);
  });
});
