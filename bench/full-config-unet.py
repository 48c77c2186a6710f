"""UNetSD at the released configuration with random weights, run by the upstream code.

Writes <out>/text2video_pytorch_model.pth (a plain state_dict, as released: 5.6 GB) and configuration.json, and per
case x [b, 4, f, h, w], t [b], context [b, 77, 1024] and the output as .npy; prints parameters and times.
bench/full-config-unet.ts runs our port on the same files and prints the errors.
Run: T2V_REF=/tmp/ref /usr/bin/python3 bench/full-config-unet.py [out=/tmp/unet-full] [cases=1x2x8x8]
(a case is BxFxHxW: batch, frames, latent height and width; an existing checkpoint in <out> is reused)
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools', 'reference'))
from _ref import randomize, save_npy  # noqa: E402
from unet_sd import UNetSD  # noqa: E402

# configuration.json model_cfg of the released model (temporal_attention is the string 'True' there).
MODEL_CFG = dict(unet_in_dim=4, unet_dim=320, unet_y_dim=768, unet_context_dim=1024, unet_out_dim=4,
                 unet_dim_mult=[1, 2, 4, 4], unet_num_heads=8, unet_head_dim=64, unet_res_blocks=2,
                 unet_attn_scales=[1, 0.5, 0.25], unet_dropout=0.1, temporal_attention='True')


@torch.no_grad()
def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else '/tmp/unet-full'
    cases = (sys.argv[2] if len(sys.argv) > 2 else '1x2x8x8').split(',')
    os.makedirs(out, exist_ok=True)
    c = MODEL_CFG
    torch.manual_seed(0)
    t0 = time.perf_counter()
    unet = UNetSD(in_dim=c['unet_in_dim'], dim=c['unet_dim'], y_dim=c['unet_y_dim'], context_dim=c['unet_context_dim'],
                  out_dim=c['unet_out_dim'], dim_mult=c['unet_dim_mult'], num_heads=c['unet_num_heads'],
                  head_dim=c['unet_head_dim'], num_res_blocks=c['unet_res_blocks'], attn_scales=c['unet_attn_scales'],
                  dropout=c['unet_dropout'], temporal_attention=c['temporal_attention'] == 'True')
    ckpt = os.path.join(out, 'text2video_pytorch_model.pth')
    reuse = os.path.exists(ckpt)
    if reuse:  # a previous run's weights
        unet.load_state_dict(torch.load(ckpt))
        unet.eval()
    else:
        randomize(unet, seed=1)
    params = sum(p.numel() for p in unet.parameters())
    print(f'params {params} ({params / 1e9:.3f} B), {len(unet.state_dict())} tensors; built and '
          f'{"loaded" if reuse else "randomized"} in {time.perf_counter() - t0:.0f} s; torch {torch.__version__}, '
          f'threads {torch.get_num_threads()}')
    t0 = time.perf_counter()
    if not reuse:
        torch.save(unet.state_dict(), ckpt)
    with open(os.path.join(out, 'configuration.json'), 'w') as fh:
        json.dump({'framework': 'pytorch', 'task': 'text-to-video-synthesis',
                   'model': {'type': 'latent-text-to-video-synthesis', 'model_cfg': MODEL_CFG}}, fh, indent=2)
    print(f'saved in {time.perf_counter() - t0:.0f} s')

    g = torch.Generator().manual_seed(2)
    for case in cases:
        b, f, h, w = (int(v) for v in case.split('x'))
        x = torch.randn((b, 4, f, h, w), generator=g)
        t = torch.randint(0, 1000, (b,), generator=g).float()
        ctx = torch.randn((b, 77, 1024), generator=g)
        unet(x[:, :, :1, :8, :8], t, ctx)  # warm-up
        t0 = time.perf_counter()
        y = unet(x, t, ctx)
        secs = time.perf_counter() - t0
        for k, v in (('x', x), ('t', t), ('context', ctx), ('out', y)):
            save_npy(os.path.join(out, f'{case}.{k}.npy'), v)
        print(f'upstream forward {case} (b x f x h x w) -> {list(y.shape)}: {secs:.2f} s, max|out| {y.abs().max():.3g}')


if __name__ == '__main__':
    main()
