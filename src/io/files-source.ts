import type { ModelSource } from './source.js';

/**
 * A model folder the user picked or dropped in a page: File objects by their path inside the folder
 * (`unet/model.json`). `<input webkitdirectory>` gives paths that start with the folder's own name; filesSource
 * strips a first segment shared by every path.
 */
export function filesSource(name: string, files: Iterable<[string, Blob]>): ModelSource {
  let entries = [...files].map(([p, f]) => [p.replace(/^\/+/, ''), f] as [string, Blob]);
  const first = entries[0]?.[0].split('/')[0];
  if (first !== undefined && entries.every(([p]) => p.startsWith(`${first}/`)) && !entries.some(([p]) => p === 't2v.json')) {
    entries = entries.map(([p, f]) => [p.slice(first.length + 1), f]);
  }
  const byPath = new Map(entries);
  return {
    location: name,
    describe: (p) => (p === '' ? name : `${name}/${p}`),
    async problem() { return byPath.size === 0 ? 'the folder is empty' : null; },
    async readText(p) {
      const f = byPath.get(p);
      return f === undefined ? null : f.text();
    },
    async readBytes(p, expected, onBytes) {
      const f = byPath.get(p);
      if (f === undefined) throw new Error(`${name}/${p}: no such file in the folder`);
      if (expected >= 0 && f.size !== expected) throw new Error(`${name}/${p}: ${f.size} bytes, the manifest says ${expected}`);
      const buf = await f.arrayBuffer();
      onBytes?.(buf.byteLength, false);
      return buf;
    },
  };
}
