import { fetchSource, type FetchSourceOptions } from './fetch-source.js';
import { fsSource } from './fs-source.js';

/**
 * Where a converted model folder is read from: a folder on disk (Node) or an http(s) URL (fetch, with the Cache
 * Storage API in a browser). Paths are relative to the folder, `/`-separated (`unet/model.json`).
 */
export interface ModelSource {
  /** The folder path or URL, as given. */
  readonly location: string;
  /** The full path or URL of `path` inside the folder, for messages (`''`: the folder itself). */
  describe(path: string): string;
  /** Why this location cannot hold a model at all (no such folder), or null. */
  problem(): Promise<string | null>;
  /** A file's text, or null when there is no such file. */
  readText(path: string): Promise<string | null>;
  /**
   * A file's bytes in a fresh ArrayBuffer; `expected` bytes (an error otherwise) unless it is -1. `onBytes` is told
   * how many bytes have arrived so far (downloads), and whether they came from a cache.
   */
  readBytes(path: string, expected: number, onBytes?: (received: number, cached: boolean) => void): Promise<ArrayBuffer>;
}

export function isUrl(s: string): boolean {
  return /^(https?|blob|data):/i.test(s);
}

/** True in a web page or worker (no Node process). */
export function inBrowser(): boolean {
  const g = globalThis as { process?: { versions?: { node?: string } }; document?: unknown; importScripts?: unknown };
  return g.process?.versions?.node === undefined && (g.document !== undefined || g.importScripts !== undefined);
}

/** A path on disk in Node, a URL (absolute, or relative to the page in a browser) otherwise. */
export function openSource(location: string | ModelSource, opts: FetchSourceOptions = {}): ModelSource {
  if (typeof location !== 'string') return location;
  return isUrl(location) || inBrowser() ? fetchSource(location, opts) : fsSource(location);
}
