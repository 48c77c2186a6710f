import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openDawn, type DawnAdapter } from '../src/backends/dawn.js';

/** `T2V_REQUIRE_WEBGPU=1` (CI sets it, with lavapipe): a WebGPU test file that cannot run fails instead of skipping. */
export const webgpuRequired = (): boolean => /^(1|true|on|yes)$/i.test(process.env.T2V_REQUIRE_WEBGPU ?? '');

/**
 * Why the WebGPU tests of a file cannot run here (the `skip` reason), or false when they can: there is an adapter
 * (software ones such as lavapipe only with T2V_WEBGPU_SOFTWARE=1) with the features the file needs. Under
 * T2V_REQUIRE_WEBGPU=1 a reason also registers one failing test that names it.
 */
export async function webgpuSkip(adapter: DawnAdapter | null, features: readonly string[] = []): Promise<string | false> {
  const reason = await whyNot(adapter, features);
  if (reason && webgpuRequired()) {
    test('a usable WebGPU adapter (T2V_REQUIRE_WEBGPU=1)', () => assert.fail(`T2V_REQUIRE_WEBGPU=1, but ${reason}`));
  }
  return reason;
}

async function whyNot(adapter: DawnAdapter | null, features: readonly string[]): Promise<string | false> {
  if (adapter === null) {
    const r = await openDawn(); // done once per process: the reason installDawn() did not pass on
    const why = r.ok ? 'no WebGPU adapter found' : r.reason;
    return /^no WebGPU adapter/.test(why) ? `${why} (no GPU with a Vulkan driver; lavapipe: bash .ci/lavapipe.sh)`
      : `no WebGPU adapter: ${why}`;
  }
  if (adapter.software && process.env.T2V_WEBGPU_SOFTWARE !== '1') {
    return `only a software WebGPU adapter (${adapter.description}); set T2V_WEBGPU_SOFTWARE=1 to use it`;
  }
  const lacking = features.filter((f) => !adapter.features.includes(f));
  return lacking.length > 0 ? `the WebGPU adapter (${adapter.description}) has no ${lacking.join(', ')}` : false;
}
