import { createHash } from 'node:crypto';
import { open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toFloat16 } from '../src/io/float16.js';
import type { ManifestEntry, ManifestGroup, StorageDType, WeightsFile } from '../src/io/weights-manifest.js';

/** Upper bound of one weights group (one shard file); a single larger tensor gets a group of its own. */
export const DEFAULT_GROUP_BYTES = 64 * 1024 * 1024;

/**
 * Writes weights in tfjs's weights-manifest format: tensors are appended one at a time to the current group and
 * each group is written to `group<i>-shard1of1.bin` as soon as it is full, so at most one group is in memory.
 */
export class WeightsWriter {
  private readonly groups: ManifestGroup[] = [];
  private pending: { entries: ManifestEntry[]; chunks: Uint8Array[]; bytes: number } = { entries: [], chunks: [], bytes: 0 };
  private names = new Set<string>();
  bytesWritten = 0;
  tensors = 0;

  constructor(readonly dir: string, readonly dtype: StorageDType, readonly groupBytes = DEFAULT_GROUP_BYTES) {}

  /** Adds one float32 tensor already in tfjs layout. */
  async add(name: string, shape: readonly number[], data: Float32Array): Promise<void> {
    if (this.names.has(name)) throw new Error(`weight ${name} written twice`);
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== data.length) throw new Error(`weight ${name}: ${data.length} values for shape [${shape}]`);
    this.names.add(name);
    const stored = this.dtype === 'float16' ? toFloat16(data) : data;
    const bytes = new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength);
    if (this.pending.bytes > 0 && this.pending.bytes + bytes.byteLength > this.groupBytes) await this.flush();
    const entry: ManifestEntry = { name, shape: [...shape], dtype: 'float32' };
    if (this.dtype === 'float16') entry.quantization = { dtype: 'float16', original_dtype: 'float32' };
    this.pending.entries.push(entry);
    this.pending.chunks.push(bytes);
    this.pending.bytes += bytes.byteLength;
    this.tensors++;
  }

  private async flush(): Promise<void> {
    if (this.pending.entries.length === 0) return;
    const file = `group${this.groups.length + 1}-shard1of1.bin`;
    const fh = await open(join(this.dir, file), 'w');
    const hash = createHash('sha256');
    try {
      for (const c of this.pending.chunks) {
        hash.update(c);
        await fh.write(c);
      }
    } finally {
      await fh.close();
    }
    this.groups.push({ paths: [file], weights: this.pending.entries, sha256: [hash.digest('hex')] });
    this.bytesWritten += this.pending.bytes;
    this.pending = { entries: [], chunks: [], bytes: 0 };
  }

  /** Writes the last group and `model.json`; returns the manifest. */
  async finish(): Promise<ManifestGroup[]> {
    await this.flush();
    const doc: WeightsFile = { format: 't2v-weights', generatedBy: 't2v convert', weightsManifest: this.groups };
    await writeFile(join(this.dir, 'model.json'), JSON.stringify(doc, null, 1));
    return this.groups;
  }
}
