import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers.js';

const DEPCRUISE = join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

interface Violation { rule: { name: string }; from: string; to: string; cycle?: { name: string }[] }

/** Runs dependency-cruiser with the project's rules (.dependency-cruiser.cjs in `cwd`) over src/ and converters/. */
function cruise(cwd: string): { modules: number; violations: Violation[] } {
  const r = spawnSync(process.execPath, [DEPCRUISE, '--output-type', 'json', 'src', 'converters'], {
    cwd, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024,
  });
  assert.ok(r.stdout.startsWith('{'), `dependency-cruiser failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { modules: unknown[]; summary: { violations: Violation[] } };
  return { modules: out.modules.length, violations: out.summary.violations };
}

function describe(v: Violation): string {
  const via = v.cycle ? ` (cycle: ${v.cycle.map((c) => c.name).join(' -> ')})` : '';
  return `${v.rule.name}: ${v.from} -> ${v.to}${via}`;
}

test('src/ does not import converters/ (outside its entry points), and no import cycle passes through converters/', () => {
  const { modules, violations } = cruise(ROOT);
  assert.ok(modules > 100, `only ${modules} modules cruised`);
  assert.deepEqual(violations.map(describe), []);
});

test('the rules catch a library import of converters/, a converter importing an entry point, and a cycle', () => {
  const dir = mkdtempSync(join(tmpdir(), 't2v-layering-'));
  try {
    copyFileSync(join(ROOT, '.dependency-cruiser.cjs'), join(dir, '.dependency-cruiser.cjs'));
    const files: Record<string, string> = {
      'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', strict: true } }),
      'package.json': JSON.stringify({ type: 'module' }),
      'src/io/reader.ts': "import { write } from '../../converters/writer.js';\nexport const read = write;\n",
      'src/cli/main.ts': "export const main = 1;\n",
      'converters/writer.ts': "import { main } from '../src/cli/main.js';\nexport const write = main;\n",
      'converters/a.ts': "import { b } from './b.js';\nexport const a = b;\n",
      'converters/b.ts': "import type { a } from './a.js';\nexport const b = 1;\nexport type A = typeof a;\n",
    };
    for (const [rel, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, rel)), { recursive: true });
      writeFileSync(join(dir, rel), text);
    }
    const names = new Set(cruise(dir).violations.map((v) => v.rule.name));
    for (const rule of ['src-not-on-converters', 'converters-not-on-entries', 'no-cycle-through-converters']) {
      assert.ok(names.has(rule), `${rule} not reported (got ${[...names].join(', ')})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
