import { renameSync, writeFileSync } from 'node:fs';

/** Writes `text` to `file` through a temporary name, so a reader never sees half a file. */
export function writeAtomic(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}
