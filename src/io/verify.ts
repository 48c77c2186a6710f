import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { NetworkKind } from '../layers/network.js';
import type { WeightsFile } from './weights-manifest.js';
import { manifestGroups, readModelFolder, readNetworkConfig } from './model-folder.js';

export interface VerifiedShard {
  network: NetworkKind;
  /** Relative to the model folder. */
  file: string;
  bytes: number;
  /** null when it matches the manifest's sha256; otherwise what is wrong. */
  problem: string | null;
}

export interface VerifyReport {
  dir: string;
  shards: VerifiedShard[];
  bytes: number;
  /** Every problem found, one line each (empty when the folder is intact). */
  problems: string[];
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * 2 ** 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Checks a converted model folder without building any network: t2v.json and each config.json by type and range,
 * then every shard named by each model.json: inside the folder, present, of the size its weights need, and with the
 * sha256 the converter wrote. Files are hashed as streams (memory stays small). Never throws for a damaged shard:
 * the report lists every problem; it throws only when the folder is not a model folder at all.
 */
export async function verifyModel(dir: string): Promise<VerifyReport> {
  const folder = await readModelFolder(dir);
  const report: VerifyReport = { dir, shards: [], bytes: 0, problems: [] };
  if (folder.networks.length === 0) report.problems.push(`${dir}: no network folders (text_encoder/, unet/, vae/ with config.json and model.json)`);
  if (folder.info.tokenizer !== undefined && folder.tokenizer === null) report.problems.push(`${join(dir, folder.info.tokenizer)}: missing (the tokenizer t2v.json names)`);
  for (const kind of folder.networks) {
    const netDir = join(dir, kind);
    let groups;
    try {
      await readNetworkConfig(netDir, kind);
      let weights: WeightsFile;
      try {
        weights = JSON.parse(await readFile(join(netDir, 'model.json'), 'utf8')) as WeightsFile;
      } catch (err) {
        throw new Error(`${join(netDir, 'model.json')}: not valid JSON (${(err as Error).message})`);
      }
      groups = manifestGroups(weights, join(netDir, 'model.json'));
    } catch (err) {
      report.problems.push((err as Error).message);
      continue;
    }
    for (const g of groups) {
      const need = g.weights.reduce((a, e) => a + (Array.isArray(e.shape) ? e.shape.reduce((x, y) => x * y, 1) : NaN)
        * (e.quantization?.dtype === 'float16' ? 2 : 4), 0);
      for (const [i, p] of g.paths.entries()) {
        const path = join(netDir, p);
        const shard: VerifiedShard = { network: kind, file: relative(dir, path), bytes: 0, problem: null };
        report.shards.push(shard);
        if (!existsSync(path) || !statSync(path).isFile()) shard.problem = 'missing';
        else {
          shard.bytes = statSync(path).size;
          report.bytes += shard.bytes;
          const want = g.sha256?.[i];
          if (g.paths.length === 1 && shard.bytes !== need) shard.problem = `${shard.bytes} bytes, its weights need ${need}`;
          else if (want === undefined) shard.problem = 'no sha256 in model.json (converted before checksums; convert again to verify it)';
          else {
            const got = await sha256File(path);
            if (got !== want) shard.problem = `sha256 ${got.slice(0, 12)}... differs from the manifest's ${want.slice(0, 12)}... (damaged)`;
          }
        }
        if (shard.problem) report.problems.push(`${path}: ${shard.problem}`);
      }
    }
  }
  return report;
}
