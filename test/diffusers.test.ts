import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { NetworkKind } from '../src/layers/network.js';
import { openCheckpoint } from '../converters/open.js';
import { networkSpec } from '../src/layers/registry.js';
import { convertNetworkFile } from '../converters/modelscope.js';
import { chooseWeights } from '../src/io/diffusers-files.js';
import { mapTextKey, mapUNetKey, mapVAEKey } from '../converters/diffusers-keys.js';
import {
  convertDiffusers, convertNetworkCheckpoint, diffusersModelInfo, isDiffusersFolder, mapCheckpoint, readDiffusersConfigs,
  unetJsonFromDiffusers, schedulerNotes, detectLayout,
} from '../converters/diffusers.js';
import { FIXTURES } from './helpers.js';

// One small random model in both layouts; the diffusers one made by diffusers' own conversion functions
// (tools/reference/make_diffusers_fixtures.py). Every weight is exactly representable in float16.
const DIR = join(FIXTURES, 'diffusers');
const HUB = join(DIR, 'hub');
const MS = join(DIR, 'modelscope');

const hasSpec = (kind: NetworkKind): boolean => { try { networkSpec(kind); return true; } catch { return false; } };
const skipWithout = (...kinds: NetworkKind[]) => {
  const missing = kinds.filter((k) => !hasSpec(k));
  return missing.length ? `network not implemented in this build: ${missing.join(', ')}` : false;
};

const MS_FILES: Record<NetworkKind, { file: string; prefix?: string }> = {
  text_encoder: { file: 'open_clip_pytorch_model.bin' },
  unet: { file: 'text2video_pytorch_model.pth' },
  vae: { file: 'VQGAN_autoencoder.pth', prefix: 'first_stage_model.' },
};

const msModelCfg = () => (JSON.parse(readFileSync(join(MS, 'configuration.json'), 'utf8')) as { model: { model_cfg: Record<string, unknown> } }).model.model_cfg;

/** Every weight of a converted network folder, decoded, by name. */
function readWeights(netDir: string): Map<string, { shape: number[]; data: Float32Array }> {
  const doc = JSON.parse(readFileSync(join(netDir, 'model.json'), 'utf8')) as { weightsManifest: tf.io.WeightsManifestConfig };
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const g of doc.weightsManifest) {
    const buf = readFileSync(join(netDir, g.paths[0]));
    const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
    const ts = tf.io.decodeWeights(ab, g.weights);
    for (const [k, t] of Object.entries(ts)) {
      out.set(k, { shape: t.shape, data: t.dataSync() as Float32Array });
      t.dispose();
    }
  }
  return out;
}

function assertSameWeights(a: string, b: string): number {
  const wa = readWeights(a);
  const wb = readWeights(b);
  assert.deepEqual([...wb.keys()].sort(), [...wa.keys()].sort());
  for (const [k, x] of wa) {
    const y = wb.get(k)!;
    assert.deepEqual(y.shape, x.shape, k);
    for (let i = 0; i < x.data.length; i++) {
      if (x.data[i] !== y.data[i]) assert.fail(`${k}[${i}]: ${y.data[i]} != ${x.data[i]}`);
    }
  }
  assert.deepEqual(JSON.parse(readFileSync(join(b, 'config.json'), 'utf8')), JSON.parse(readFileSync(join(a, 'config.json'), 'utf8')));
  return wa.size;
}

test('diffusers key tables map the fixture one-to-one onto the ModelScope/LDM/OpenCLIP keys', async () => {
  const configs = await readDiffusersConfigs(HUB);
  const cases: [NetworkKind, string, (k: string) => string][] = [
    ['unet', 'unet/diffusion_pytorch_model.fp16.safetensors', (k) => mapUNetKey(k, configs.unet as never).key],
    ['vae', 'vae/diffusion_pytorch_model.safetensors', (k) => mapVAEKey(k, configs.vae as never).key],
  ];
  for (const [kind, rel, map] of cases) {
    const d = await openCheckpoint(join(HUB, rel));
    const m = await openCheckpoint(join(MS, MS_FILES[kind].file));
    try {
      const prefix = MS_FILES[kind].prefix ?? '';
      const ours = new Map([...m.entries].map(([k, e]) => [k.slice(prefix.length), e.shape]));
      const seen = new Set<string>();
      for (const [k, e] of d.entries) {
        const o = map(k);
        assert.ok(ours.has(o), `${kind}: ${k} -> ${o}, not a ModelScope key`);
        assert.ok(!seen.has(o), `${kind}: two keys map to ${o}`);
        seen.add(o);
        const s = ours.get(o)!;
        assert.equal(e.shape.reduce((a, b) => a * b, 1), s.reduce((a, b) => a * b, 1), `${k}: size`);
      }
      assert.equal(seen.size, ours.size, `${kind}: every ModelScope key has a diffusers source`);
    } finally {
      await d.close();
      await m.close();
    }
  }
  // the text tower: q/k/v join, the last OpenCLIP block is absent in CLIPTextModel
  assert.deepEqual(mapTextKey('text_model.encoder.layers.3.self_attn.k_proj.bias'),
    { key: 'transformer.resblocks.3.attn.in_proj_bias', transform: 'qkv:1' });
  assert.equal(mapTextKey('final_layer_norm.weight').key, 'ln_final.weight');
  assert.equal(mapTextKey('embeddings.position_embedding.weight').key, 'positional_embedding');
  assert.equal(mapTextKey('encoder.layers.0.mlp.fc2.weight').key, 'transformer.resblocks.0.mlp.c_proj.weight');
  assert.equal(mapTextKey('text_model.embeddings.position_ids').transform, 'skip');
  // diffusers < 0.15 saved the VAE attention as query/key/value/proj_attn
  assert.deepEqual(mapVAEKey('decoder.mid_block.attentions.0.proj_attn.weight', { up_block_types: ['a', 'b'] }),
    { key: 'decoder.mid.attn_1.proj_out.weight', transform: 'conv2d' });
  assert.throws(() => mapUNetKey('down_blocks.0.foo.weight', { layers_per_block: 2, up_block_types: [] }), /unknown UNet3DConditionModel weight/);
});

test('key tables at the released structure (four levels, attention at three, two blocks per level): a bijection with matching sizes', () => {
  type Side = { config: Record<string, unknown>; modelscope: Record<string, number[]>; diffusers: Record<string, number[]> };
  const doc = JSON.parse(readFileSync(join(DIR, 'released-structure.json'), 'utf8')) as { unet: Side; vae: Side };
  const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
  for (const [kind, side] of Object.entries(doc)) {
    const map = kind === 'unet' ? (k: string) => mapUNetKey(k, side.config as never) : (k: string) => mapVAEKey(k, side.config as never);
    const seen = new Set<string>();
    for (const [k, shape] of Object.entries(side.diffusers)) {
      const m = map(k);
      const ours = side.modelscope[m.key];
      assert.ok(ours, `${kind}: ${k} -> ${m.key}, not an upstream key`);
      assert.ok(!seen.has(m.key), `${kind}: two keys map to ${m.key}`);
      seen.add(m.key);
      const want = m.transform === 'conv1d' ? [...shape, 1] : m.transform === 'conv2d' ? [...shape, 1, 1] : shape;
      assert.deepEqual(want, ours, `${kind}: ${k} -> ${m.key}`);
      assert.equal(size(shape), size(ours));
    }
    assert.equal(seen.size, Object.keys(side.modelscope).length, `${kind}: every upstream key has a diffusers source`);
    // and the network configuration inferred from either side is the same
    if (hasSpec(kind as NetworkKind)) {
      const spec = networkSpec(kind as NetworkKind);
      const mapped = new Map(Object.entries(side.diffusers).map(([k, s]) => {
        const m = map(k);
        return [m.key, m.transform === 'conv1d' ? [...s, 1] : m.transform === 'conv2d' ? [...s, 1, 1] : s];
      }));
      const ms = new Map(Object.entries(side.modelscope));
      const json = kind === 'unet' ? { unet_head_dim: 8, unet_num_heads: 8 } : undefined;
      assert.deepEqual(spec.infer(mapped, kind === 'unet' ? unetJsonFromDiffusers(side.config) : undefined), spec.infer(ms, json));
    }
  }
});

test('text encoder: q/k/v projections join into in_proj_weight equal to OpenCLIP\'s', async () => {
  const d = mapCheckpoint(await openCheckpoint(join(HUB, 'text_encoder/pytorch_model.bin')), mapTextKey);
  const m = await openCheckpoint(join(MS, MS_FILES.text_encoder.file));
  try {
    let n = 0;
    for (const [k, e] of d.entries) {
      const ref = m.entries.get(k);
      assert.ok(ref, `${k} is not an OpenCLIP key`);
      assert.deepEqual(e.shape, ref.shape, k);
      assert.deepEqual(await e.read(), await ref.read(), k);
      n++;
    }
    // the CLIPTextModel holds every OpenCLIP block but the last (the penultimate-layer output ends there)
    const layers = (k: string) => k.startsWith('transformer.resblocks.');
    const msBlocks = [...m.entries.keys()].filter(layers).length;
    const dBlocks = [...d.entries.keys()].filter(layers).length;
    assert.equal(dBlocks, msBlocks / 2, 'one of the two blocks');
    assert.ok(n > 0);
  } finally {
    await d.close();
    await m.close();
  }
});

test('weights files: safetensors before .bin, the asked variant first, sharded indexes', () => {
  const have = (files: string[]) => (rel: string) => files.includes(rel);
  const both = ['unet/diffusion_pytorch_model.safetensors', 'unet/diffusion_pytorch_model.fp16.safetensors', 'unet/diffusion_pytorch_model.bin'];
  assert.equal(chooseWeights('unet', have(both))?.file, 'unet/diffusion_pytorch_model.safetensors');
  assert.equal(chooseWeights('unet', have(both), 'fp16')?.file, 'unet/diffusion_pytorch_model.fp16.safetensors');
  assert.equal(chooseWeights('unet', have(['unet/diffusion_pytorch_model.bin']), 'fp16')?.file, 'unet/diffusion_pytorch_model.bin');
  assert.equal(chooseWeights('text_encoder', have(['text_encoder/pytorch_model.bin', 'text_encoder/model.fp16.safetensors']))?.file,
    'text_encoder/pytorch_model.bin');
  assert.deepEqual(chooseWeights('unet', have(['unet/diffusion_pytorch_model.safetensors.index.fp16.json']), 'fp16'),
    { file: 'unet/diffusion_pytorch_model.safetensors.index.fp16.json', sharded: true, variant: 'fp16' });
  assert.equal(chooseWeights('vae', have([])), null);
  // no variant asked and only the fp16 files there: those
  assert.equal(chooseWeights('unet', have(['unet/diffusion_pytorch_model.fp16.safetensors']))?.file, 'unet/diffusion_pytorch_model.fp16.safetensors');
});

test('t2v.json facts from the folder: DDIM config, VAE scale, default size from unet sample_size', async () => {
  assert.ok(isDiffusersFolder(HUB));
  assert.ok(!isDiffusersFolder(MS));
  assert.equal(detectLayout(HUB), 'diffusers');
  assert.equal(detectLayout(MS), 'modelscope');
  assert.equal(detectLayout(DIR), null);
  const c = await readDiffusersConfigs(HUB);
  const info = diffusersModelInfo(c);
  assert.equal(info.scale_factor, 0.18215);
  assert.deepEqual([info.defaults.height, info.defaults.width], [64, 64]); // sample_size 8, four VAE levels
  const s = info.scheduler as unknown as Record<string, unknown>;
  assert.equal(s.beta_schedule, 'linear_sd');
  assert.equal(s.mean_type, 'eps');
  assert.equal(s.steps_offset, 1);
  assert.equal(s.timestep_spacing, undefined, 'not stated by the config: each scheduler takes its diffusers default');
  assert.equal(s.set_alpha_to_one, false);
  assert.equal(s.clip_sample, false);
  // zeroscope_v2_576w-like: a 576x320 sample size
  const z = diffusersModelInfo({ ...c, unet: { ...c.unet, sample_size: [40, 72] }, vae: { ...c.vae, scaling_factor: 0.13025 } });
  assert.deepEqual([z.defaults.height, z.defaults.width, z.scale_factor], [320, 576, 0.13025]);
  assert.deepEqual(unetJsonFromDiffusers(c.unet), { unet_head_dim: 8, unet_res_blocks: 1, unet_context_dim: 1024 });
  // the released scheduler steps exactly as ModelScope's DDIM; other settings are named
  assert.deepEqual(schedulerNotes(c.scheduler), []);
  // steps_offset and timestep_spacing are followed (noiseScheduleFromInfo), so they need no note
  assert.deepEqual(schedulerNotes({ ...c.scheduler, steps_offset: 0, timestep_spacing: 'trailing' }), []);
  assert.deepEqual(schedulerNotes({ ...c.scheduler, clip_sample: true }), ['scheduler clip_sample true (t2v\'s DDIM runs as false)']);
});

// Both layouts of the same model must convert to identical weights and configs, in every file form.
for (const kind of ['vae', 'unet', 'text_encoder'] as NetworkKind[]) {
  test(`${kind}: ModelScope layout and diffusers layout (safetensors, fp16 variant, .bin) convert to identical weights`,
    { skip: skipWithout(kind) }, async () => {
      const tmp = mkdtempSync(join(tmpdir(), 't2v-diffusers-'));
      try {
        const msOut = join(tmp, 'ms');
        await convertNetworkFile(kind, join(MS, MS_FILES[kind].file), msOut, {
          dtype: 'float32', prefix: MS_FILES[kind].prefix, json: kind === 'unet' ? msModelCfg() : undefined,
        });
        const configs = await readDiffusersConfigs(HUB);
        const map = kind === 'unet' ? (k: string) => mapUNetKey(k, configs.unet as never)
          : kind === 'vae' ? (k: string) => mapVAEKey(k, configs.vae as never) : mapTextKey;
        const json = kind === 'unet' ? unetJsonFromDiffusers(configs.unet) : kind === 'text_encoder' ? configs.text_encoder : undefined;
        // (the fixture holds the UNet as the fp16 variant only, the VAE in both forms)
        const files = kind === 'text_encoder' ? ['text_encoder/pytorch_model.bin']
          : kind === 'unet' ? ['unet/diffusion_pytorch_model.fp16.safetensors']
            : ['vae/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.fp16.safetensors'];
        const paths = files.map((f) => join(HUB, f));
        if (kind === 'vae') paths.push(join(DIR, 'bin', 'vae', 'diffusion_pytorch_model.bin'));
        for (const [i, p] of paths.entries()) {
          const out = join(tmp, `d${i}`);
          const ckpt = mapCheckpoint(await openCheckpoint(p), map);
          try {
            await convertNetworkCheckpoint(kind, ckpt, out, { dtype: 'float32', json });
          } finally {
            await ckpt.close();
          }
          assertSameWeights(join(msOut, kind), join(out, kind));
        }
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });
}

test('convertDiffusers: the whole folder, fp16 variant, into the t2v model format',
  { skip: skipWithout('text_encoder', 'unet', 'vae') }, async () => {
    const tmp = mkdtempSync(join(tmpdir(), 't2v-diffusers-'));
    try {
      // the hub folder with .bin files for the VAE: the converter takes whichever form is there
      const src = join(tmp, 'src');
      cpSync(HUB, src, { recursive: true });
      rmSync(join(src, 'vae', 'diffusion_pytorch_model.safetensors'));
      rmSync(join(src, 'vae', 'diffusion_pytorch_model.fp16.safetensors'));
      mkdirSync(join(src, 'vae'), { recursive: true });
      symlinkSync(join(DIR, 'bin', 'vae', 'diffusion_pytorch_model.bin'), join(src, 'vae', 'diffusion_pytorch_model.bin'));
      const out = join(tmp, 'out');
      const sum = await convertDiffusers(src, out, { variant: 'fp16', dtype: 'float16' });
      assert.deepEqual(sum.networks.map((n) => n.kind), ['text_encoder', 'unet', 'vae']);
      assert.deepEqual(sum.notes, []);
      const info = JSON.parse(readFileSync(join(out, 't2v.json'), 'utf8'));
      assert.equal(info.format, 't2v-model');
      assert.equal(info.dtype, 'float16');
      assert.equal(info.source.layout, 'diffusers');
      assert.equal(info.source.files.unet, 'unet/diffusion_pytorch_model.fp16.safetensors');
      assert.equal(info.source.files.vae, 'vae/diffusion_pytorch_model.bin');
      assert.equal(info.tokenizer, 'tokenizer');
      assert.deepEqual(readFileSync(join(out, 'tokenizer', 'merges.txt')), readFileSync(join(HUB, 'tokenizer', 'merges.txt')));
      await assert.rejects(convertDiffusers(src, out, {}), /not empty/);
      assert.deepEqual([info.defaults.height, info.defaults.width, info.defaults.frames], [64, 64, 16], 'from the files');
      // downloaded under a hub id whose model card states its size and length: those become the defaults
      const zs = join(tmp, 'zeroscope');
      await convertDiffusers(src, zs, { variant: 'fp16', source: { hub: 'cerspense/zeroscope_v2_576w' } });
      const zinfo = JSON.parse(readFileSync(join(zs, 't2v.json'), 'utf8'));
      assert.deepEqual([zinfo.defaults.height, zinfo.defaults.width, zinfo.defaults.frames], [320, 576, 24]);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

/** Splits a safetensors file into two shards plus the `*.safetensors.index.json` diffusers writes for large models. */
function shard(file: string, dir: string, stem: string): void {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  delete (header as Record<string, unknown>).__metadata__;
  const keys = Object.keys(header);
  const parts = [keys.slice(0, keys.length >> 1), keys.slice(keys.length >> 1)];
  const map: Record<string, string> = {};
  parts.forEach((ks, i) => {
    const name = `${stem}-0000${i + 1}-of-00002.safetensors`;
    const h: Record<string, unknown> = {};
    const blobs: Buffer[] = [];
    let off = 0;
    for (const k of ks) {
      const e = header[k];
      const b = buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
      h[k] = { dtype: e.dtype, shape: e.shape, data_offsets: [off, off + b.length] };
      blobs.push(b);
      off += b.length;
      map[k] = name;
    }
    let json = Buffer.from(JSON.stringify(h));
    json = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeFileSync(join(dir, name), Buffer.concat([len, json, ...blobs]));
  });
  writeFileSync(join(dir, `${stem}.safetensors.index.json`), JSON.stringify({ metadata: {}, weight_map: map }));
}

test('convertDiffusers: sharded weights (an index and its shards) convert like the single file',
  { skip: skipWithout('text_encoder', 'unet', 'vae') }, async () => {
    const tmp = mkdtempSync(join(tmpdir(), 't2v-diffusers-'));
    try {
      const src = join(tmp, 'src');
      cpSync(HUB, src, { recursive: true });
      rmSync(join(src, 'vae', 'diffusion_pytorch_model.safetensors'));
      rmSync(join(src, 'vae', 'diffusion_pytorch_model.fp16.safetensors'));
      shard(join(HUB, 'vae', 'diffusion_pytorch_model.safetensors'), join(src, 'vae'), 'diffusion_pytorch_model');
      const sum = await convertDiffusers(src, join(tmp, 'sharded'), { dtype: 'float32' });
      assert.equal(sum.networks.find((x) => x.kind === 'vae')?.source, join(src, 'vae', 'diffusion_pytorch_model.safetensors.index.json'));
      await convertNetworkFile('vae', join(MS, MS_FILES.vae.file), join(tmp, 'ms'), { dtype: 'float32', prefix: MS_FILES.vae.prefix });
      assert.ok(assertSameWeights(join(tmp, 'ms', 'vae'), join(tmp, 'sharded', 'vae')) > 0);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

test('convertDiffusers: clear errors for foreign folders', async () => {
  // a weight no table knows names the file
  const bad = { path: '/x/unet.safetensors', entries: new Map([['down_blocks.0.mystery.weight', { name: 'down_blocks.0.mystery.weight', dtype: 'float32' as const, shape: [1], read: async () => new Float32Array(1) }]]), close: async () => {} };
  assert.throws(() => mapCheckpoint(bad, (k) => mapUNetKey(k, { layers_per_block: 1, up_block_types: [] })),
    /\/x\/unet.safetensors: unknown UNet3DConditionModel weight down_blocks.0.mystery.weight/);
  await assert.rejects(convertDiffusers(MS, join(tmpdir(), 'never')), /no unet\/config.json/);
  const tmp = mkdtempSync(join(tmpdir(), 't2v-diffusers-'));
  try {
    cpSync(HUB, tmp, { recursive: true });
    rmSync(join(tmp, 'unet', 'diffusion_pytorch_model.fp16.safetensors'));
    await assert.rejects(convertDiffusers(tmp, join(tmp, 'out')), /unet: no weights/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
