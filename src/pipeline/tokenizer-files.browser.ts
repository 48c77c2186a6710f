import type { TokenizerFiles } from './tokenizer-files.js';

export type { TokenizerFiles };

/** Browser builds: no file system; TextToVideo.load reads the tokenizer from the model's URL instead. */
export async function readTokenizerFiles(path: string): Promise<TokenizerFiles> {
  throw new Error(`CLIP tokenizer ${path}: reading from disk needs Node; in a browser use CLIPTokenizer.fromMergesBytes`);
}
