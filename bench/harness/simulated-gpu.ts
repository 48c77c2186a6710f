/**
 * A stand-in `navigator.gpu` whose device holds no memory and runs nothing: buffers are objects with a size, shaders
 * and pipelines are empty, dispatches and submits do nothing, read-backs give zeros. Everything above the device
 * (tfjs's WebGPU backend, our T2VWebGPUBackend and its pool, the kernels' programs, the dispatch caches, the submit
 * cadence that decides when a freed buffer goes back to the pool) runs as on a GPU, so the pool's figures
 * (gpuMemory) are those a GPU run gets, at any model size, on a machine without one. Speed figures mean nothing.
 * Install it before anything opens WebGPU (openDawn takes an existing navigator.gpu as Dawn's).
 */

const MiB = 2 ** 20;

class SimBuffer {
  mapState: 'unmapped' | 'mapped';
  private range: ArrayBuffer | null = null;
  constructor(readonly size: number, readonly usage: number, mapped: boolean) {
    this.mapState = mapped ? 'mapped' : 'unmapped';
  }
  getMappedRange(): ArrayBuffer {
    return (this.range ??= new ArrayBuffer(this.size));
  }
  async mapAsync(): Promise<void> {
    this.mapState = 'mapped';
  }
  unmap(): void {
    this.mapState = 'unmapped';
    this.range = null;
  }
  destroy(): void {
    this.range = null;
  }
}

class SimTexture {
  createView(): object {
    return {};
  }
  destroy(): void {}
}

const pass = { setPipeline() {}, setBindGroup() {}, dispatchWorkgroups() {}, dispatchWorkgroupsIndirect() {}, end() {} };
const pipeline = { getBindGroupLayout: () => ({}) };

function simDevice(features: Set<string>, limits: Record<string, number>): object {
  return {
    features, limits, label: 'simulated',
    lost: new Promise(() => {}),
    queue: { submit() {}, writeBuffer() {}, onSubmittedWorkDone: async () => {}, copyExternalImageToTexture() {} },
    createBuffer: (d: { size: number; usage: number; mappedAtCreation?: boolean }) => new SimBuffer(d.size, d.usage, d.mappedAtCreation === true),
    createTexture: () => new SimTexture(),
    createShaderModule: () => ({ getCompilationInfo: async () => ({ messages: [] }) }),
    createComputePipeline: () => pipeline,
    createComputePipelineAsync: async () => pipeline,
    createBindGroup: () => ({}),
    createBindGroupLayout: () => ({}),
    createPipelineLayout: () => ({}),
    createQuerySet: () => ({ destroy() {} }),
    createCommandEncoder: () => ({
      beginComputePass: () => pass, copyBufferToBuffer() {}, copyBufferToTexture() {}, copyTextureToBuffer() {},
      resolveQuerySet() {}, finish: () => ({}),
    }),
    pushErrorScope() {},
    popErrorScope: async () => null,
    addEventListener() {},
    destroy() {},
  };
}

/**
 * Puts the stand-in in place as `navigator.gpu` (and the WebGPU globals tfjs uses). Its adapter says "simulated" and
 * has the limits of the H200's Dawn adapter that matter here (2 GiB per binding), f16 and, with `tensorCores`, one
 * f16 16x16x16 subgroup-matrix configuration, so WebGPUOps takes the tensor-core route as on the H200.
 */
export function installSimulatedGPU(tensorCores = true): void {
  const g = globalThis as Record<string, unknown>;
  if ((g.navigator as { gpu?: unknown } | undefined)?.gpu) throw new Error('a navigator.gpu is already in place');
  Object.assign(g, {
    GPUBuffer: SimBuffer, GPUTexture: SimTexture,
    GPUBufferUsage: { MAP_READ: 1, MAP_WRITE: 2, COPY_SRC: 4, COPY_DST: 8, INDEX: 16, VERTEX: 32, UNIFORM: 64, STORAGE: 128, INDIRECT: 256, QUERY_RESOLVE: 512 },
    GPUMapMode: { READ: 1, WRITE: 2 },
    GPUTextureUsage: { COPY_SRC: 1, COPY_DST: 2, TEXTURE_BINDING: 4, STORAGE_BINDING: 8, RENDER_ATTACHMENT: 16 },
  });
  const features = new Set(['shader-f16', 'subgroups', ...(tensorCores ? ['chromium-experimental-subgroup-matrix'] : [])]);
  const limits: Record<string, number> = {
    maxComputeWorkgroupStorageSize: 32768, maxComputeWorkgroupsPerDimension: 65535, maxStorageBufferBindingSize: 2048 * MiB,
    maxBufferSize: 2 ** 40, maxComputeWorkgroupSizeX: 1024, maxComputeInvocationsPerWorkgroup: 1024,
    maxStorageBuffersPerShaderStage: 10, maxUniformBufferBindingSize: 65536, minStorageBufferOffsetAlignment: 256,
  };
  const adapter = {
    features, limits, isFallbackAdapter: false,
    info: {
      vendor: 'simulated', architecture: 'none', device: '', description: 'simulated device (no memory, nothing runs)',
      // NVIDIA's subgroups, so that the lane-group kernels run as on the H200
      subgroupMinSize: 32, subgroupMaxSize: 32,
      subgroupMatrixConfigs: tensorCores ? [{ componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 }] : [],
    },
    requestDevice: async (d: { requiredFeatures?: string[]; requiredLimits?: Record<string, number> }) =>
      simDevice(new Set(d.requiredFeatures ?? []), { ...limits, ...d.requiredLimits }),
  };
  const gpu = { requestAdapter: async () => adapter, getPreferredCanvasFormat: () => 'bgra8unorm' };
  if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(g, 'navigator', { value: { gpu }, configurable: true, writable: true });
}
