import type { Models } from './models.js';
import type { ResultTable, RowKey, Shape } from './table.js';
import type { Variant } from './variants.js';
import type { ParityBackend } from './options.js';
import type { Backend } from './webgpu.js';

/** What `bench OUT [flags]` was asked for (harness/options.ts parses it). */
export interface BenchOptions {
  /** where relative paths given on the command line start (the caller's directory, also under .gpu/run.sh) */
  origin: string;
  out: string;
  scenarios: string[];
  /** timed UNet calls per figure, after warm-up */
  runs: number;
  /** timed whole videos per figure, after a 2-step warm-up */
  videoRuns: number;
  steps: number;
  guidance: number;
  variants: Variant[];
  backend: Backend;
  tiny: boolean;
  /** The large weights float16-resident on the device (as TextToVideo.load keeps them where tensor cores run), or float32. */
  weights: 'f16' | 'f32' | 'auto';
  python: string;
  diffusers?: string;
  torchScript?: string;
  torchModes: string[];
  torchTimeoutS: number;
  /** extra arguments for bench/diffusers_unet.py (--torch-args="--device cpu --dtype fp32 --torch1") */
  torchArgs: string[];
  fixtures?: string;
  vocab?: string;
  /** generations per scheduler (samplers) */
  gens: number;
  /** the profile scenario's shapes (default: the video shape) */
  profileShapes?: { frames: number; height: number; width: number }[];
  /** the parity scenario's backends (options.ts PARITY_BACKENDS) */
  parityBackends?: ParityBackend[];
}

export interface RunContext {
  opts: BenchOptions;
  table: ResultTable;
  log: (s: string) => void;
  /** The random released (or --tiny) text tower, UNet, VAE and pipeline, made on first use and shared. */
  models: () => Models;
  /** The t2v column of the variant in force. */
  column: string;
}

/**
 * A named piece of work. `table` scenarios fill cells of the table at their shape, once per t2v variant; `once`
 * scenarios run under the default variant and keep their own results (and may add a markdown section); `torch`
 * runs the PyTorch side.
 */
export interface Scenario {
  name: string;
  about: string;
  kind: 'table' | 'once' | 'torch';
  /** table scenarios: the video shape (full size, and --tiny's) and the rows they fill */
  shape?: { full: Shape; tiny: Shape };
  rows?: readonly RowKey[];
  /** Dawn flags the scenario needs on the device: added to the run's when it is selected (webgpu) */
  dawnFlags?: readonly string[];
  /** `rows`: a table scenario's own; for torch, every row the table scenarios fill at `shape` */
  run: (ctx: RunContext, shape: Shape, rows: readonly RowKey[]) => Promise<{ raw: unknown; markdown?: string }>;
}

export const VIDEO_SHAPE = { full: { frames: 16, height: 256, width: 256 }, tiny: { frames: 2, height: 32, width: 32 } };
