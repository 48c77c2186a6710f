// The benchmark over a simulated GPU (bench/harness/simulated-gpu.ts: a device without memory that runs nothing), for
// its GPU-memory figures at the released size on a machine without a GPU; its timings mean nothing.
//   node --import tsx bench/pool-sim.ts OUT [bench flags]     e.g. --scenarios video --variants default,no-pool-best-fit
// --no-tensor-cores: a device without subgroup matrices (the fp32 route).
import { installSimulatedGPU } from './harness/simulated-gpu.js';

const args = process.argv.slice(2);
installSimulatedGPU(!args.includes('--no-tensor-cores'));
const { runBench } = await import('./harness/run.js');
process.exit(await runBench(args.filter((a) => a !== '--no-tensor-cores'), process.cwd()));
