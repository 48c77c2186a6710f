/**
 * What every checkpoint reader (PyTorch zip+pickle, safetensors) gives: the tensors' names, dtypes and shapes
 * up front, and each tensor's data read from disk only when asked, one at a time.
 */
export type SourceDType = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'uint8' | 'bool';

export interface TensorEntry {
  name: string;
  dtype: SourceDType;
  /** PyTorch shape. */
  shape: number[];
  /** Reads this tensor (contiguous, row-major, PyTorch layout) as float32. */
  read(): Promise<Float32Array>;
}

export interface Checkpoint {
  path: string;
  /** In file order. Wrappers such as `{"state_dict": ...}` are already unwrapped. */
  entries: Map<string, TensorEntry>;
  close(): Promise<void>;
}
