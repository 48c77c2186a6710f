import type { DawnBinding } from './dawn-binding.js';

export type { DawnBinding };

/** Browser builds: WebGPU is the page's own `navigator.gpu`; there is no Dawn to load. */
export async function loadDawnBinding(): Promise<DawnBinding> {
  throw new Error('this browser has no WebGPU (navigator.gpu); use a recent Chrome or Edge, or enable WebGPU in its flags');
}
