"""Conversion fixtures: a small random ModelScope model in the released layout, made by the upstream code, whose
configuration differs from the end-to-end model's (channel multipliers [1, 2], attention at one level only), and the
float16 storage expectations.

Writes test/fixtures/release/ with
  configuration.json          model.model_cfg (unet_* keys) and model.model_args (file names, max_frames)
  text2video_pytorch_model.pth   a plain UNetSD state_dict
  VQGAN_autoencoder.pth       {"state_dict": {"first_stage_model.<key>": ..., "model.<key>": ..., "cond_stage_model.<key>": ...}}
  f16_values.npy, f16_bits.npy   float32 inputs, and numpy's float16 bits of each (as int32)
The text tower is not duplicated: the tests take test/fixtures/e2e/tiny/open_clip_pytorch_model.bin (a 1024-wide,
2-layer OpenCLIP model with its visual tower, made by make_e2e_fixtures.py) beside these files.

Run: T2V_REF=/tmp/ref /usr/bin/python3 tools/reference/make_release_fixtures.py
With `--full DIR` it instead writes a FULL-SIZE folder in the released layout to DIR (about 10 GB; for measuring
`t2v convert`, never committed): UNetSD at the released model_cfg, the ViT-H-14 OpenCLIP model (text and visual
towers) and the VAE at upstream's ddconfig, each with the upstream modules' own random initialization.
"""
import sys
import json
import os
import shutil

import numpy as np
import torch

from _ref import FIXTURES, randomize, save_npy  # noqa: E402  (sets sys.path)

from autoencoder import AutoencoderKL  # noqa: E402
from unet_sd import UNetSD  # noqa: E402

OUT = os.path.join(FIXTURES, 'release')

MODEL_CFG = {
    'unet_in_dim': 4, 'unet_dim': 32, 'unet_y_dim': 1024, 'unet_context_dim': 1024, 'unet_out_dim': 4,
    'unet_dim_mult': [1, 2], 'unet_num_heads': 8, 'unet_head_dim': 8, 'unet_res_blocks': 1,
    'unet_attn_scales': [0.5], 'unet_dropout': 0.1, 'temporal_attention': 'True', 'num_timesteps': 1000,
    'mean_type': 'eps', 'var_type': 'fixed_small', 'loss_type': 'mse',
}
DDCONFIG = {
    'double_z': True, 'z_channels': 4, 'resolution': 64, 'in_channels': 3, 'out_ch': 3, 'ch': 32,
    'ch_mult': [1, 2], 'num_res_blocks': 1, 'attn_resolutions': [32], 'dropout': 0.0,
}


def shrink(sd, g, min_numel=4096):
    """Large tensors become strided views of small storages (row i starts 7 elements after row i-1), so the files
    stay small while every row differs; torch.save stores the small storage with the strides."""
    out = {}
    for k, v in sd.items():
        if v.dim() >= 2 and v.numel() > min_numel:
            inner = v[0].numel()
            base = torch.randn(7 * (v.shape[0] - 1) + inner, generator=g) / inner ** 0.5
            out[k] = base.as_strided(tuple(v.shape), (7,) + tuple(v[0].stride()))
        else:
            out[k] = v
    return out


def float16_cases():
    g = np.random.default_rng(7)
    special = np.array([0.0, -0.0, 1.0, -1.0, 65504.0, 65519.0, 65520.0, 1e6, -1e6, 6.1035156e-05, 6.0e-05,
                        5.9604645e-08, 2.9802322e-08, 2.98023259e-08, 1e-9, 1 + 2 ** -11, 1 + 3 * 2 ** -11,
                        np.inf, -np.inf], dtype=np.float32)
    scales = 10.0 ** g.integers(-9, 6, size=4000)
    rand = (g.standard_normal(4000) * scales).astype(np.float32)
    values = np.concatenate([special, rand])
    with np.errstate(over='ignore'):
        bits = values.astype(np.float16).view(np.uint16).astype(np.int32)
        return values, bits


FULL_CFG = {
    'unet_in_dim': 4, 'unet_dim': 320, 'unet_y_dim': 768, 'unet_context_dim': 1024, 'unet_out_dim': 4,
    'unet_dim_mult': [1, 2, 4, 4], 'unet_num_heads': 8, 'unet_head_dim': 64, 'unet_res_blocks': 2,
    'unet_attn_scales': [1, 0.5, 0.25], 'unet_dropout': 0.1, 'temporal_attention': 'True', 'num_timesteps': 1000,
    'mean_type': 'eps', 'var_type': 'fixed_small', 'loss_type': 'mse',
}
FULL_DDCONFIG = {
    'double_z': True, 'z_channels': 4, 'resolution': 256, 'in_channels': 3, 'out_ch': 3, 'ch': 128,
    'ch_mult': [1, 2, 4, 4], 'num_res_blocks': 2, 'attn_resolutions': [], 'dropout': 0.0,
}


def write_config(out, model_cfg, max_frames):
    config = {
        'framework': 'pytorch', 'task': 'text-to-video-synthesis',
        'model': {
            'type': 'latent-text-to-video-synthesis',
            'model_args': {'ckpt_clip': 'open_clip_pytorch_model.bin', 'ckpt_unet': 'text2video_pytorch_model.pth',
                           'ckpt_autoencoder': 'VQGAN_autoencoder.pth', 'max_frames': max_frames, 'tiny_gpu': 1},
            'model_cfg': model_cfg,
        },
        'pipeline': {'type': 'latent-text-to-video-synthesis'},
    }
    with open(os.path.join(out, 'configuration.json'), 'w') as f:
        json.dump(config, f, indent=4)


@torch.no_grad()
def full(out):
    import open_clip  # noqa: E402
    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)
    c = FULL_CFG
    unet = UNetSD(in_dim=c['unet_in_dim'], dim=c['unet_dim'], y_dim=c['unet_y_dim'],
                  context_dim=c['unet_context_dim'], out_dim=c['unet_out_dim'], dim_mult=c['unet_dim_mult'],
                  num_heads=c['unet_num_heads'], head_dim=c['unet_head_dim'], num_res_blocks=c['unet_res_blocks'],
                  attn_scales=c['unet_attn_scales'], dropout=c['unet_dropout'], temporal_attention=True)
    print('unet params', sum(p.numel() for p in unet.parameters()), flush=True)
    torch.save(unet.state_dict(), os.path.join(out, 'text2video_pytorch_model.pth'))
    del unet
    vae = AutoencoderKL(FULL_DDCONFIG, 4)
    torch.save({'state_dict': {'first_stage_model.' + k: v for k, v in vae.state_dict().items()}, 'global_step': 0},
               os.path.join(out, 'VQGAN_autoencoder.pth'))
    print('vae params', sum(p.numel() for p in vae.parameters()), flush=True)
    del vae
    clip = open_clip.create_model('ViT-H-14')
    print('clip params', sum(p.numel() for p in clip.parameters()), flush=True)
    torch.save(clip.state_dict(), os.path.join(out, 'open_clip_pytorch_model.bin'))
    write_config(out, FULL_CFG, 16)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--full':
        return full(sys.argv[2])
    torch.set_num_threads(2)
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    c = MODEL_CFG
    unet = UNetSD(in_dim=c['unet_in_dim'], dim=c['unet_dim'], y_dim=c['unet_y_dim'],
                  context_dim=c['unet_context_dim'], out_dim=c['unet_out_dim'], dim_mult=c['unet_dim_mult'],
                  num_heads=c['unet_num_heads'], head_dim=c['unet_head_dim'], num_res_blocks=c['unet_res_blocks'],
                  attn_scales=c['unet_attn_scales'], dropout=c['unet_dropout'], temporal_attention=True)
    randomize(unet, 501)
    vae = AutoencoderKL(DDCONFIG, 4)
    randomize(vae, 502)
    g = torch.Generator().manual_seed(503)
    torch.save(shrink(unet.state_dict(), g), os.path.join(OUT, 'text2video_pytorch_model.pth'))
    wrapped = {'first_stage_model.' + k: v for k, v in shrink(vae.state_dict(), g).items()}
    # the released file keeps other models' weights beside the autoencoder's
    wrapped['model.diffusion_model.out.2.weight'] = torch.randn(4, 8, 3, 3, generator=g)
    wrapped['cond_stage_model.transformer.ln_final.weight'] = torch.randn(16, generator=g)
    torch.save({'state_dict': wrapped, 'global_step': 0, 'epoch': 1}, os.path.join(OUT, 'VQGAN_autoencoder.pth'))
    write_config(OUT, MODEL_CFG, 12)
    values, bits = float16_cases()
    save_npy(os.path.join(OUT, 'f16_values.npy'), values)
    np.save(os.path.join(OUT, 'f16_bits.npy'), bits)
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)))
    print('unet params', sum(p.numel() for p in unet.parameters()), 'vae params', sum(p.numel() for p in vae.parameters()))


if __name__ == '__main__':
    main()
