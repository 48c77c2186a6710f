// The weights-manifest format of a converted network's `model.json`: written by converters/tfjs-writer.ts, read by
// src/io/model-folder.ts and src/io/verify.ts.

export type StorageDType = 'float16' | 'float32';
export const STORAGE_DTYPES: readonly StorageDType[] = ['float16', 'float32'];

/** One weight in the manifest (tfjs's WeightsManifestEntry, with the `original_dtype` its converter writes). */
export interface ManifestEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
  quantization?: { dtype: 'float16'; original_dtype: 'float32' };
}

export interface ManifestGroup {
  paths: string[];
  weights: ManifestEntry[];
  /** Hex sha256 of each file in `paths` (our addition to tfjs's format; tfjs ignores it). Absent in folders converted before checksums. */
  sha256?: string[];
}

/** What `<net>/model.json` holds: tfjs's weights manifest, under our own format name. */
export interface WeightsFile {
  format: 't2v-weights';
  generatedBy: string;
  weightsManifest: ManifestGroup[];
}
