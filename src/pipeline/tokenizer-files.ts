import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** What a tokenizer path on disk holds: the Hugging Face pair, or OpenCLIP's merge list (gzipped or not). */
export type TokenizerFiles = { vocab: string; merges: string } | { bytes: Uint8Array };

/**
 * `path`: OpenCLIP's `bpe_simple_vocab_16e6.txt.gz` (or `.txt`), or a folder holding `vocab.json` + `merges.txt`,
 * or a folder holding `bpe_simple_vocab_16e6.txt.gz`. Node only (browser builds get tokenizer-files.browser.ts).
 */
export async function readTokenizerFiles(path: string): Promise<TokenizerFiles> {
  if (!existsSync(path)) throw new Error(`CLIP tokenizer not found at ${path}: pass bpe_simple_vocab_16e6.txt.gz or a folder with vocab.json and merges.txt`);
  if (statSync(path).isDirectory()) {
    const vocab = join(path, 'vocab.json');
    const merges = join(path, 'merges.txt');
    if (existsSync(vocab) && existsSync(merges)) return { vocab: await readFile(vocab, 'utf8'), merges: await readFile(merges, 'utf8') };
    const gz = join(path, 'bpe_simple_vocab_16e6.txt.gz');
    if (existsSync(gz)) return readTokenizerFiles(gz);
    throw new Error(`CLIP tokenizer folder ${path} has neither vocab.json + merges.txt nor bpe_simple_vocab_16e6.txt.gz`);
  }
  return { bytes: new Uint8Array(await readFile(path)) };
}
