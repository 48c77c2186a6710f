import { existsSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { onInterrupt } from './interrupt.js';
import type { VideoResult } from '../pipeline/result.js';
import { atomicWrite, outputKind } from './video-writer.js';

/** What one generation writes (the CLI's --out, --save-latents and --contact-sheet). */
export interface OutputPaths {
  out: string;
  latents?: string;
  contactSheet?: string;
}

/** Two outputs on one path would overwrite each other: an error, before any sampling. */
export function checkOutputPaths(p: OutputPaths, names: Partial<Record<keyof OutputPaths, string>> = {}): void {
  const named: [keyof OutputPaths, string][] = [];
  for (const k of ['out', 'latents', 'contactSheet'] as const) {
    const v = p[k];
    if (v === undefined) continue;
    const other = named.find(([, w]) => resolve(w) === resolve(v));
    if (other) throw new Error(`${names[other[0]] ?? other[0]} and ${names[k] ?? k} are the same path (${v}); give each its own file`);
    named.push([k, v]);
  }
}

/**
 * Writes the video, then the latents (.npy) and the contact sheet (.png), each through a temporary name. When any of
 * them fails, or SIGINT/SIGTERM arrives meanwhile, the ones already written by this call are removed: a failed run
 * leaves nothing behind. Returns the video's files.
 */
export async function saveOutputs(result: VideoResult, p: OutputPaths): Promise<string[]> {
  checkOutputPaths(p);
  const done: string[] = [];
  const madeDir = outputKind(p.out) === 'pngs' && !existsSync(p.out) ? p.out : null;
  const undo = () => {
    for (const f of done.splice(0)) rmSync(f, { force: true });
    if (madeDir !== null) {
      try {
        rmdirSync(madeDir);
      } catch {
        // not empty: someone else's files are there too
      }
    }
  };
  const off = onInterrupt(undo);
  try {
    const video = await result.save(p.out);
    done.push(...video);
    if (p.latents) {
      result.saveLatents(p.latents);
      done.push(p.latents);
    }
    if (p.contactSheet) {
      const sheet = result.contactSheet();
      await atomicWrite(p.contactSheet, (tmp) => writeFileSync(tmp, sheet));
      done.push(p.contactSheet);
    }
    done.length = 0;
    return video;
  } catch (err) {
    undo();
    throw err;
  } finally {
    off();
  }
}
