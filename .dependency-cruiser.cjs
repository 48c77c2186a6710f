// Layering between src/ and converters/, checked by test/layering.test.ts (`npx depcruise src converters` prints it).
// converters/ builds on src/; src/ does not know converters/, except the entry points that offer conversion to
// users: the public API, the CLI, and the hub cache that converts what it downloads.
const ENTRIES = '^src/(index\\.ts$|cli/|hub/model-cache\\.ts$)';

module.exports = {
  forbidden: [
    {
      name: 'src-not-on-converters',
      comment: 'Only the entry points in src/ may import converters/; move what the library needs into src/.',
      severity: 'error',
      from: { path: '^src/', pathNot: ENTRIES },
      to: { path: '^converters/' },
    },
    {
      name: 'converters-not-on-entries',
      comment: 'converters/ builds on the library, never on the entry points that use it.',
      severity: 'error',
      from: { path: '^converters/' },
      to: { path: ENTRIES },
    },
    {
      name: 'library-not-on-entries',
      comment: 'The library under src/ does not import its entry points (which may reach converters/).',
      severity: 'error',
      from: { path: '^src/', pathNot: ENTRIES },
      to: { path: ENTRIES },
    },
    {
      name: 'no-cycle-through-converters',
      comment: 'No import cycle passes through converters/.',
      severity: 'error',
      from: { path: '^converters/' },
      to: { circular: true },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
  },
};
