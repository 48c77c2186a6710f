import type { ModelSource } from './source.js';

/** Browser builds: there is no file system; openSource sends every location to fetchSource. */
export function fsSource(dir: string): ModelSource {
  throw new Error(`${dir}: reading a folder from disk needs Node; in a browser give the model's URL`);
}
