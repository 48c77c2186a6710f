"""Fixtures for the AutoencoderKL parity tests: small random autoencoders built by the upstream code.

For each configuration writes test/fixtures/vae/<name>/VQGAN_autoencoder.pth in the released layout
({"state_dict": {"first_stage_model.<key>": ...} plus unrelated keys}) and .npy inputs/outputs in NCHW:
decode_z / decode_out (AutoencoderKL.decode), encode_x / encode_mean (AutoencoderKL.encode(x).mode()); and
released-config-keys.json, the state_dict keys and shapes of the released configuration (83.7 M parameters).
Run: T2V_REF=/tmp/ref /usr/bin/python3 tools/reference/make_vae_fixtures.py
"""
import json
import os

import torch

from _ref import FIXTURES, randomize, save_npy
from autoencoder import AutoencoderKL

OUT = os.path.join(FIXTURES, 'vae')
os.makedirs(OUT, exist_ok=True)

# Small ddconfigs (GroupNorm(32) needs channels divisible by 32). 'released' has the released model's shape
# (4 levels: 8x up/down, no attention, z 4, embed 4) at a fraction of its width and depth.
CONFIGS = {
    'attn': dict(
        ddconfig=dict(double_z=True, z_channels=4, resolution=16, in_channels=3, out_ch=3, ch=32, ch_mult=[1, 1],
                      num_res_blocks=2, attn_resolutions=[16, 8], dropout=0.0),
        embed_dim=3, decode_z=(2, 3, 6, 5), encode_x=(2, 3, 12, 8)),
    'released': dict(
        ddconfig=dict(double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=32,
                      ch_mult=[1, 1, 1, 2], num_res_blocks=1, attn_resolutions=[], dropout=0.0),
        embed_dim=4, decode_z=(3, 4, 4, 3), encode_x=(2, 3, 24, 32)),
    'noconv': dict(
        ddconfig=dict(double_z=True, z_channels=2, resolution=16, in_channels=4, out_ch=5, ch=32, ch_mult=[1, 1],
                      num_res_blocks=1, attn_resolutions=[8], dropout=0.0, resamp_with_conv=False),
        embed_dim=2, decode_z=(1, 2, 5, 7), encode_x=(1, 4, 9, 7)),
}


# The released model's ddconfig (text_to_video_synthesis_model.py) with embed_dim 4: only its key list is saved.
RELEASED_DDCONFIG = dict(double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=128,
                         ch_mult=[1, 2, 4, 4], num_res_blocks=2, attn_resolutions=[], dropout=0.0)


@torch.no_grad()
def main() -> None:
    full = AutoencoderKL(RELEASED_DDCONFIG, 4)
    with open(os.path.join(OUT, 'released-config-keys.json'), 'w') as f:
        json.dump({'ddconfig': RELEASED_DDCONFIG, 'embed_dim': 4, 'params': sum(p.numel() for p in full.parameters()),
                   'keys': [[k, list(v.shape)] for k, v in full.state_dict().items()]}, f)
    del full
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        out = os.path.join(OUT, name)
        os.makedirs(out, exist_ok=True)
        torch.manual_seed(100 + i)
        vae = AutoencoderKL(cfg['ddconfig'], cfg['embed_dim'])  # no ckpt_path: nothing is loaded
        randomize(vae, seed=200 + i)
        sd = {'first_stage_model.' + k: v.clone() for k, v in vae.state_dict().items()}
        sd['cond_stage_model.transformer.x'] = torch.randn(3)
        sd['model.diffusion_model.y'] = torch.randn(2, 2)
        torch.save({'state_dict': sd, 'other': 1}, os.path.join(out, 'VQGAN_autoencoder.pth'))

        g = torch.Generator().manual_seed(300 + i)
        z = torch.randn(cfg['decode_z'], generator=g)
        x = torch.rand(cfg['encode_x'], generator=g) * 2 - 1
        dec = vae.decode(z)
        mean = vae.encode(x).mode()
        save_npy(os.path.join(out, 'decode_z.npy'), z)
        save_npy(os.path.join(out, 'decode_out.npy'), dec)
        save_npy(os.path.join(out, 'encode_x.npy'), x)
        save_npy(os.path.join(out, 'encode_mean.npy'), mean)
        if name == 'noconv':  # the decoder's two switches, off in the released model
            vae.decoder.tanh_out = True
            save_npy(os.path.join(out, 'decode_out_tanh.npy'), vae.decode(z))
            vae.decoder.tanh_out = False
            vae.decoder.give_pre_end = True
            save_npy(os.path.join(out, 'decode_out_pre_end.npy'), vae.decode(z))
            vae.decoder.give_pre_end = False
        params = sum(p.numel() for p in vae.parameters())
        with open(os.path.join(out, 'meta.json'), 'w') as f:
            json.dump({'ddconfig': cfg['ddconfig'], 'embed_dim': cfg['embed_dim'], 'params': params}, f, indent=1)
        print(f'{name}: {params} params, decode {tuple(z.shape)} -> {tuple(dec.shape)}, '
              f'encode {tuple(x.shape)} -> {tuple(mean.shape)}, max|dec| {dec.abs().max():.3g}')


if __name__ == '__main__':
    main()
