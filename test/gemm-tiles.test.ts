import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultTiles, tilesFit, type Tiles } from '../src/backends/webgpu/matmul-f16-staged.js';
import { DEFAULT_COMPUTE_UNITS, deviceFacts, deviceFactsOf } from '../src/backends/webgpu/device-facts.js';

// The tensor-core GEMM's tiling choice (no GPU needed): every pick fits its GEMM, and K is split only where whole-K
// tiles leave the GPU (`units` compute units) short of three workgroups per unit.
const groups = (t: Tiles, m: number, n: number) => (m / (t.bm * t.sgRows)) * (n / (t.bn * t.sgCols)) * (t.splits ?? 1);
const H200 = 49152; // maxComputeWorkgroupStorageSize
const H200_UNITS = 132;

test('GEMM tiles: few-row GEMMs of a batch-1 UNet call split K, large ones do not, every tiling fits', () => {
  const cases: [number, number, number, number | undefined, boolean][] = [
    [256, 1280, 11520, 1280, true], // level 3, 3x3 convolution
    [1024, 1280, 3840, 1280, true], // level 2, temporal convolution
    [4096, 640, 17280, 1920, true], // level 1, 3x3 convolution on 1920 channels
    [16384, 320, 2880, 320, false], // level 0
    [1024, 10240, 1280, undefined, false], // GEGLU's projection: enough tiles already
  ];
  for (const [m, n, k, c, split] of cases) {
    const t = defaultTiles(m, n, k, { bias: true, convC: c, maxBytes: H200, units: H200_UNITS });
    assert.ok(tilesFit(t, m, n, k), `${m}x${n}x${k}: ${JSON.stringify(t)} does not fit`);
    assert.equal((t.splits ?? 1) > 1, split, `${m}x${n}x${k}: ${JSON.stringify(t)}`);
    if (t.splits) {
      assert.ok(k / (t.tk * t.splits) >= 8, 'each part keeps at least 8 K steps');
      assert.ok(groups(t, m, n) > groups(defaultTilesWholeK(m, n, k, c), m, n), 'more workgroups than without the split');
    }
  }
});

function defaultTilesWholeK(m: number, n: number, k: number, c?: number): Tiles {
  return defaultTiles(m, n, k, { bias: true, convC: c, maxBytes: H200, units: H200_UNITS, splitK: false });
}

const label = (t: Tiles) => `${t.bm * t.sgRows}x${t.bn * t.sgCols}/tk${t.tk}${t.splits ? `/s${t.splits}` : ''}`;

// [m, n, k, conv channels]: the released UNet's GEMMs at batch 1 and 2 (3x3 and temporal convolutions, Linears), and
// the tiles for 132 units (H100/H200: the tilings before the unit count became an input, unchanged), 60 and 264
test('GEMM tiles: 132 compute units give the tilings measured on the H200; other counts size the waves for themselves', () => {
  const cases: [number, number, number, number | undefined, string, string, string][] = [
    [256, 1280, 11520, 1280, '64x128/tk64/s10', '128x128/tk64/s9', '64x128/tk64/s15'],
    [1024, 1280, 3840, 1280, '128x128/tk64/s5', '128x128/tk64/s3', '64x128/tk64/s5'],
    [4096, 640, 17280, 1920, '128x128/tk64/s3', '128x128/tk64/s2', '128x128/tk64/s5'],
    [16384, 320, 2880, 320, '128x64/tk32', '128x64/tk32', '128x64/tk32/s2'],
    [1024, 10240, 1280, undefined, '128x128/tk64', '128x128/tk64', '128x128/tk64/s2'],
    [2048, 1280, 11520, 1280, '128x128/tk64/s3', '128x128/tk64/s2', '128x128/tk64/s5'],
    [512, 1280, 1280, undefined, '64x64/tk64', '64x64/tk64', '64x64/tk64'],
    [8192, 320, 2880, 320, '128x64/tk32/s2', '128x64/tk32', '128x64/tk32/s3'],
    [1024, 640, 5760, 640, '128x128/tk64/s10', '128x128/tk64/s5', '64x128/tk64/s10'],
  ];
  // 132 first: a memo that ignored the unit count would hand its picks to the other counts and fail below
  for (const [i, units] of [H200_UNITS, 60, 264].entries()) {
    for (const c of cases) {
      const [m, n, k, convC] = c;
      const t = defaultTiles(m, n, k, { bias: true, convC, maxBytes: H200, units });
      assert.ok(tilesFit(t, m, n, k), `${units} units, ${m}x${n}x${k}: ${JSON.stringify(t)} does not fit`);
      assert.equal(label(t), c[4 + i], `${units} units, ${m}x${n}x${k}`);
    }
  }
  assert.throws(() => defaultTiles(256, 1280, 11520, { units: 0 }), /units must be a positive whole number/);
});

test('device facts: compute units from the option, else the documented default (Dawn exposes none)', () => {
  assert.equal(DEFAULT_COMPUTE_UNITS, 132);
  assert.deepEqual(deviceFacts({ computeUnits: null }), { computeUnits: 132, computeUnitsFrom: 'default', subgroupMatrixConfigs: [], wgslBufferView: false, subgroupMinSize: 0 });
  const cfg = { componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 };
  const f = deviceFacts({ computeUnits: 78 }, [cfg], true, 32);
  assert.deepEqual(f, { computeUnits: 78, computeUnitsFrom: 'option', subgroupMatrixConfigs: [cfg], wgslBufferView: true, subgroupMinSize: 32 });
  assert.equal(deviceFactsOf({ facts: f }), f, 'our backend carries its facts');
  assert.equal(deviceFactsOf({}).computeUnits, 132, 'a stock backend gets the default');
  assert.equal(deviceFactsOf(undefined).subgroupMatrixConfigs.length, 0);
});
