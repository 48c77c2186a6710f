// Run by test/pool-sim.test.ts in a process of its own (the simulated GPU replaces navigator.gpu before webgpu starts):
// the GPU bytes in use after TextToVideo.load of the converted tiny fixture model with float16-resident weights, and
// after the benchmark's random tiny pipeline, each beside tf.memory()'s bytes of live tensors. Prints one JSON line.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { installSimulatedGPU } from '../bench/harness/simulated-gpu.js';
import { convertModelScope } from '../converters/modelscope.js';
import { CLIP_VOCAB, FIXTURES } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 't2v-sim-weights-'));
try {
  await tf.setBackend('cpu');
  await convertModelScope(join(FIXTURES, 'e2e', 'tiny'), join(work, 'model'), { dtype: 'float32', tokenizer: CLIP_VOCAB });
  installSimulatedGPU(true);
  const { openBackend, disposeModels, randomPipeline } = { ...(await import('../bench/harness/webgpu.js')), ...(await import('../bench/harness/models.js')) };
  await openBackend('webgpu', {}, []);
  const { TextToVideo, gpuMemory, releasePooledBuffers } = await import('../src/index.js');
  const t2v = await TextToVideo.load(join(work, 'model'), { backend: 'webgpu' });
  const loaded = { half: t2v.halfWeights, inUse: gpuMemory()!.inUse, tensorBytes: tf.memory().numBytes };
  t2v.dispose();
  releasePooledBuffers();
  const base = tf.memory().numBytes;
  const baseInUse = gpuMemory()!.inUse;
  const m = randomPipeline(true, true);
  const bench = { inUse: gpuMemory()!.inUse - baseInUse, tensorBytes: tf.memory().numBytes - base };
  disposeModels(m);
  console.log(JSON.stringify({ loaded, bench }));
} finally {
  rmSync(work, { recursive: true, force: true });
}
