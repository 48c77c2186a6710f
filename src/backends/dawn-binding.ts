/** Dawn's Node binding (npm `webgpu`): what openDawn installs as `navigator.gpu` in Node. */
export interface DawnBinding {
  create: (flags: string[]) => GPU;
  globals: object;
}

export async function loadDawnBinding(): Promise<DawnBinding> {
  return await import('webgpu') as unknown as DawnBinding;
}
