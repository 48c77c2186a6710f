"""UNetSD parity fixtures: small random-weight UNets built by ModelScope's unet_sd.py, saved as released.

Writes test/fixtures/unet/<name>/: configuration.json (model.model_cfg with the unet_* keys),
text2video_pytorch_model.pth (a plain UNetSD state_dict, as released, but float16: see half_state_dict) and, per case, inputs and the output in
upstream layout: <case>.x.npy [b, c, f, h, w], <case>.t.npy [b], <case>.context.npy [b, n, ctx], <case>.out.npy.
With --released it also writes released-shapes.json: every state_dict key and shape, in order, of UNetSD at the
released configuration (builds the 1.4 B-parameter model: about 6 GB of memory and a minute).
Usage: T2V_REF=/tmp/ref /usr/bin/python3 tools/reference/make_unet_fixtures.py [--released]
"""
import copy
import json
import os
import sys

import torch

from _ref import FIXTURES, randomize, save_npy
from unet_sd import UNetSD

# Upstream's output blocks hard-code a 1024-wide cross-attention context, so every configuration uses 1024.
CONFIGS = {
    # two levels, one res block, attention at the full-resolution level only; first temporal transformer
    # 2 heads x 8 = 16 wide (narrower than dim).
    'small-a': dict(unet_in_dim=4, unet_dim=32, unet_y_dim=768, unet_context_dim=1024, unet_out_dim=4,
                    unet_dim_mult=[1, 2], unet_num_heads=2, unet_head_dim=8, unet_res_blocks=1,
                    unet_attn_scales=[1], unet_dropout=0.1, temporal_attention='True'),
    # three levels, two res blocks, attention at the two coarser levels; first temporal transformer
    # 4 heads x 16 = 64 wide (wider than dim); in/out channels differ.
    'small-b': dict(unet_in_dim=4, unet_dim=32, unet_y_dim=768, unet_context_dim=1024, unet_out_dim=6,
                    unet_dim_mult=[1, 1, 1], unet_num_heads=4, unet_head_dim=16, unet_res_blocks=2,
                    unet_attn_scales=[0.5, 0.25], unet_dropout=0.1, temporal_attention='True'),
}

# configuration.json model_cfg of the released model (damo-vilab/modelscope-damo-text-to-video-synthesis), where
# temporal_attention is the string 'True'
RELEASED = dict(unet_in_dim=4, unet_dim=320, unet_y_dim=768, unet_context_dim=1024, unet_out_dim=4,
                unet_dim_mult=[1, 2, 4, 4], unet_num_heads=8, unet_head_dim=64, unet_res_blocks=2,
                unet_attn_scales=[1, 0.5, 0.25], unet_dropout=0.1, temporal_attention='True')

# (case, batch, frames, h, w, context tokens, timesteps). At the coarsest level every GroupNorm group keeps >= 6
# values per frame: with 2 (one channel of a 2x1 map) float32 itself is off float64 by ~2e-4 on some inputs.
CASES = {
    'small-a': [('b2f3', 2, 3, 4, 6, 6, [999.0, 37.0]), ('b1f1', 1, 1, 6, 4, 5, [500.0])],
    'small-b': [('b2f2', 2, 2, 8, 12, 6, [981.0, 1.0]), ('b1f1', 1, 1, 12, 8, 5, [250.0])],
}


def build(cfg):
    return UNetSD(in_dim=cfg['unet_in_dim'], dim=cfg['unet_dim'], y_dim=cfg['unet_y_dim'],
                  context_dim=cfg['unet_context_dim'], out_dim=cfg['unet_out_dim'],
                  dim_mult=cfg['unet_dim_mult'], num_heads=cfg['unet_num_heads'],
                  head_dim=cfg['unet_head_dim'], num_res_blocks=cfg['unet_res_blocks'],
                  attn_scales=cfg['unet_attn_scales'], dropout=cfg['unet_dropout'],
                  temporal_attention=cfg['temporal_attention'] == 'True')  # as text_to_video_synthesis_model.py reads it


@torch.no_grad()
def half_state_dict(model, seed):
    """The state_dict to save, stored as float16 to keep the fixtures small; the model's own weights are rounded
    to the same values, so the float32 reference output is exact for what is saved.

    The [inner, 1024] context projections would still dominate the file: each becomes a strided view of a small
    random storage (row i starts 7 elements after row i-1, so every row differs), which torch.save stores as that
    storage plus the strides, a layout the released-format readers handle."""
    g = torch.Generator().manual_seed(1000 + seed)
    views = {}
    for name, mod in model.named_modules():
        if not name.endswith('attn2'):
            continue
        for attr in ('to_k', 'to_v'):
            lin = getattr(mod, attr)
            rows, cols = lin.weight.shape
            base = (torch.randn(rows * 7 + cols, generator=g) / cols ** 0.5).half()
            views[f'{name}.{attr}.weight'] = base.as_strided((rows, cols), (7, 1))
            lin.weight = torch.nn.Parameter(views[f'{name}.{attr}.weight'].float(), requires_grad=False)
    for p in model.parameters():
        p.copy_(p.half().float())
    return {k: views.get(k, v.half()) for k, v in model.state_dict().items()}


@torch.no_grad()
def float64_output(model, x, t, ctx):
    """The same model in float64: how far float32 itself is from exact on this input (printed, not saved)."""
    m64 = copy.deepcopy(model).double()
    # sinusoidal_embedding casts t to float32; feed the MLP float64
    m64.time_embed.register_forward_pre_hook(lambda mod, inp: tuple(i.double() for i in inp))
    return m64(x.double(), t.double(), ctx.double())


@torch.no_grad()
def main():
    for seed, (name, cfg) in enumerate(CONFIGS.items()):
        out_dir = os.path.join(FIXTURES, 'unet', name)
        os.makedirs(out_dir, exist_ok=True)
        torch.manual_seed(100 + seed)
        model = build(cfg)
        randomize(model, seed=1 + seed)
        torch.save(half_state_dict(model, seed=1 + seed), os.path.join(out_dir, 'text2video_pytorch_model.pth'))
        with open(os.path.join(out_dir, 'configuration.json'), 'w') as fh:
            json.dump({'framework': 'pytorch', 'task': 'text-to-video-synthesis',
                       'model': {'type': 'latent-text-to-video-synthesis', 'model_cfg': cfg,
                                 'model_args': {'ckpt_unet': 'text2video_pytorch_model.pth'}}}, fh, indent=2)
        g = torch.Generator().manual_seed(7 + seed)
        for case, b, f, h, w, n, ts in CASES[name]:
            x = torch.randn(b, cfg['unet_in_dim'], f, h, w, generator=g)
            t = torch.tensor(ts, dtype=torch.float32)
            ctx = torch.randn(b, n, cfg['unet_context_dim'], generator=g)
            y = model(x, t, ctx)
            y64 = float64_output(model, x, t, ctx)
            for k, v in (('x', x), ('t', t), ('context', ctx), ('out', y)):
                save_npy(os.path.join(out_dir, f'{case}.{k}.npy'), v)
            print(name, case, tuple(y.shape), 'max|out| %.4g' % y.abs().max().item(),
                  'float32 vs float64 %.2g' % ((y.double() - y64).abs().max() / y64.abs().max()).item())
        print(name, sum(p.numel() for p in model.parameters()), 'parameters')
    if '--released' in sys.argv:
        sd = build(RELEASED).state_dict()
        with open(os.path.join(FIXTURES, 'unet', 'released-shapes.json'), 'w') as fh:
            json.dump({'model_cfg': RELEASED, 'params': sum(v.numel() for v in sd.values()),
                       'state_dict': [[k, list(v.shape)] for k, v in sd.items()]}, fh, separators=(',', ':'))
        print('released', len(sd), 'tensors', sum(v.numel() for v in sd.values()), 'parameters')


if __name__ == '__main__':
    main()
