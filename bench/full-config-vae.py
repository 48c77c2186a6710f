"""AutoencoderKL at the released configuration with random weights, run by the upstream code.

Writes <out>/VQGAN_autoencoder.pth in the released layout and, per latent size S, decode_z_S.npy [2, 4, S, S] /
decode_out_S.npy [2, 3, 8S, 8S] (and decode_out64_S.npy, the model run in float64), plus encode_x.npy [2, 3, 64, 64] / encode_mean.npy; prints parameters and times.
bench/full-config-vae.ts runs our port on the same files and prints the errors.
Run: T2V_REF=/tmp/ref /usr/bin/python3 bench/full-config-vae.py [out=/tmp/vae-full] [sizes=8,32]
"""
import copy
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools', 'reference'))
from _ref import randomize, save_npy  # noqa: E402
from autoencoder import AutoencoderKL  # noqa: E402

# The released ddconfig (text_to_video_synthesis_model.py) and embed_dim 4.
DDCONFIG = dict(double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=128, ch_mult=[1, 2, 4, 4],
                num_res_blocks=2, attn_resolutions=[], dropout=0.0)


@torch.no_grad()
def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else '/tmp/vae-full'
    sizes = [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else '8,32').split(',')]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    vae = AutoencoderKL(DDCONFIG, 4)
    randomize(vae, seed=1)
    params = sum(p.numel() for p in vae.parameters())
    print(f'params {params} ({params / 1e6:.1f} M), torch {torch.__version__}, threads {torch.get_num_threads()}')
    sd = {'first_stage_model.' + k: v for k, v in vae.state_dict().items()}
    sd['cond_stage_model.unused'] = torch.zeros(1)
    torch.save({'state_dict': sd}, os.path.join(out, 'VQGAN_autoencoder.pth'))

    vae64 = copy.deepcopy(vae).double()
    g = torch.Generator().manual_seed(2)
    for s in sizes:
        z = torch.randn((2, 4, s, s), generator=g)
        t0 = time.perf_counter()
        dec = vae.decode(z)
        t = time.perf_counter() - t0
        save_npy(os.path.join(out, f'decode_z_{s}.npy'), z)
        save_npy(os.path.join(out, f'decode_out_{s}.npy'), dec)
        # The same model in float64: how far upstream's own float32 result is from exact.
        dec64 = vae64.decode(z.double())
        save_npy(os.path.join(out, f'decode_out64_{s}.npy'), dec64)
        err32 = ((dec.double() - dec64).abs().max() / dec64.abs().max()).item()
        print(f'upstream decode [2, 4, {s}, {s}] -> {list(dec.shape)}: {t:.2f} s, max|out| {dec.abs().max():.3g}, '
              f'float32 vs float64 max rel error {err32:.2e}')
    x = torch.rand((2, 3, 64, 64), generator=g) * 2 - 1
    t0 = time.perf_counter()
    mean = vae.encode(x).mode()
    t = time.perf_counter() - t0
    save_npy(os.path.join(out, 'encode_x.npy'), x)
    save_npy(os.path.join(out, 'encode_mean.npy'), mean)
    print(f'upstream encode [2, 3, 64, 64] -> {list(mean.shape)}: {t:.2f} s')


if __name__ == '__main__':
    main()
