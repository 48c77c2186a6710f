import type { Module } from './module.js';
import type { NetworkKind, NetworkSpec } from './network.js';
import { textEncoderSpec } from './clip/config.js';
import { unetSpec } from './unet/config.js';
import { vaeSpec } from './vae/config.js';

export const NETWORK_KINDS: readonly NetworkKind[] = ['text_encoder', 'unet', 'vae'];

/** Human names, for messages. */
export const NETWORK_NAMES: Record<NetworkKind, string> = { text_encoder: 'text encoder', unet: 'UNet', vae: 'VAE' };

const SPECS: Partial<Record<NetworkKind, NetworkSpec<unknown, Module>>> = {
  text_encoder: textEncoderSpec as NetworkSpec<unknown, Module>,
  unet: unetSpec as NetworkSpec<unknown, Module>,
  vae: vaeSpec as NetworkSpec<unknown, Module>,
};

export function isNetworkKind(s: string): s is NetworkKind {
  return (NETWORK_KINDS as readonly string[]).includes(s);
}

/** The spec that infers, builds and names the weights of one network. */
export function networkSpec(kind: NetworkKind): NetworkSpec<unknown, Module> {
  const spec = SPECS[kind];
  if (!spec) throw new Error(`the ${NETWORK_NAMES[kind]} is not implemented in this build`);
  return spec;
}
