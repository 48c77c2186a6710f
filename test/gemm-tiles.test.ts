import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultTiles, tilesFit, type Tiles } from '../src/backends/webgpu/matmul-f16-staged.js';

// The tensor-core GEMM's tiling choice (no GPU needed): every pick fits its GEMM, and K is split only where whole-K
// tiles leave the GPU (132 SMs) short of three workgroups per SM.
const groups = (t: Tiles, m: number, n: number) => (m / (t.bm * t.sgRows)) * (n / (t.bn * t.sgCols)) * (t.splits ?? 1);
const H200 = 49152; // maxComputeWorkgroupStorageSize

test('GEMM tiles: few-row GEMMs of a batch-1 UNet call split K, large ones do not, every tiling fits', () => {
  const cases: [number, number, number, number | undefined, boolean][] = [
    [256, 1280, 11520, 1280, true], // level 3, 3x3 convolution
    [1024, 1280, 3840, 1280, true], // level 2, temporal convolution
    [4096, 640, 17280, 1920, true], // level 1, 3x3 convolution on 1920 channels
    [16384, 320, 2880, 320, false], // level 0
    [1024, 10240, 1280, undefined, false], // GEGLU's projection: enough tiles already
  ];
  for (const [m, n, k, c, split] of cases) {
    const t = defaultTiles(m, n, k, { bias: true, convC: c, maxBytes: H200 });
    assert.ok(tilesFit(t, m, n, k), `${m}x${n}x${k}: ${JSON.stringify(t)} does not fit`);
    assert.equal((t.splits ?? 1) > 1, split, `${m}x${n}x${k}: ${JSON.stringify(t)}`);
    if (t.splits) {
      assert.ok(k / (t.tk * t.splits) >= 8, 'each part keeps at least 8 K steps');
      assert.ok(groups(t, m, n) > groups(defaultTilesWholeK(m, n, k, c), m, n), 'more workgroups than without the split');
    }
  }
});

function defaultTilesWholeK(m: number, n: number, k: number, c?: number): Tiles {
  return defaultTiles(m, n, k, { bias: true, convC: c, maxBytes: H200, splitK: false });
}
