import type { Module } from './module.js';

export type NetworkKind = 'text_encoder' | 'unet' | 'vae';

/**
 * What the converter and the loader need to know about one network. Each network's `config.ts` exports one
 * (`textEncoderSpec`, `unetSpec`, `vaeSpec`); nothing else in the package hard-codes a network's keys or sizes.
 */
export interface NetworkSpec<C, M extends Module = Module> {
  kind: NetworkKind;
  /**
   * The configuration, from the checkpoint's tensor shapes (PyTorch shapes, keys already stripped of any file
   * prefix such as `first_stage_model.`) and, where the format has one, the JSON configuration (for the UNet:
   * `configuration.json`'s `model.model_cfg`). Throws a clear error when the shapes are not this network's.
   */
  infer(shapes: ReadonlyMap<string, readonly number[]>, json?: Record<string, unknown>): C;
  build(config: C): M;
  /** Source keys this network knowingly does not use (the text tower's last block, say); they are skipped. */
  isUnused?(key: string, config: C): boolean;
}
