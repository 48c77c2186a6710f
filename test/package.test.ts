import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers.js';

test('LICENSE is the Apache License 2.0 that package.json names', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { license: string };
  assert.equal(pkg.license, 'Apache-2.0');
  const text = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
  assert.match(text, /^\s*Apache License\s+Version 2\.0, January 2004\s+http:\/\/www\.apache\.org\/licenses\//);
  assert.match(text, /END OF TERMS AND CONDITIONS/);
});

test('npm pack: the CLI, the compiled library, its types and LICENSE; no dev entry point, no source maps', () => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
  for (const f of ['LICENSE', 'README.md', 'package.json', 'bin/t2v.js']) assert.ok(files.includes(f), f);
  assert.ok(!files.includes('bin/t2v-dev.ts'));
  assert.deepEqual(files.filter((f) => f.endsWith('.map')), []);
  assert.deepEqual(files.filter((f) => !f.startsWith('dist/') && !['LICENSE', 'README.md', 'package.json', 'bin/t2v.js'].includes(f)), []);
  const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: Record<string, unknown> };
  assert.notEqual(tsconfig.compilerOptions.sourceMap, true, 'maps would name src/*.ts, which the package does not ship');
  assert.notEqual(tsconfig.compilerOptions.declarationMap, true);
});
