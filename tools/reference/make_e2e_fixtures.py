"""End-to-end fixtures: a tiny random ModelScope text-to-video model in the released layout, and what the upstream
flow produces from it for a few prompts, from a given initial noise.

Writes test/fixtures/e2e/tiny/ with
  configuration.json, text2video_pytorch_model.pth, VQGAN_autoencoder.pth, open_clip_pytorch_model.bin
and test/fixtures/e2e/cases/<case>/ with
  case.json (prompt, negative prompt, size, frames, steps, guidance), noise.npy [1, 4, f, h/8, w/8] float32,
  latents.npy (the DDIM result before the 1/0.18215 scaling), frames.npy uint8 [f, H, W, 3].

The flow mirrors text_to_video_synthesis_model.py: FrozenOpenCLIPEmbedder('penultimate') for the prompt and the
unconditional text (the empty string, or the negative prompt), GaussianDiffusion.ddim_sample_loop with two model calls
per step and guidance, latents / 0.18215, AutoencoderKL.decode over all frames as one batch, then the pipeline's
post-processing (x * 0.5 + 0.5, clamp to [0, 1], (x * 255) cast to uint8). Float32 on CPU, no autocast.

Run: T2V_REF=/tmp/ref /usr/bin/python3 tools/reference/make_e2e_fixtures.py
"""
import json
import math
import os
import shutil

import torch

from _ref import FIXTURES, randomize, save_npy  # noqa: E402  (sets sys.path)

import open_clip  # noqa: E402
from autoencoder import AutoencoderKL  # noqa: E402
from diffusion import GaussianDiffusion, beta_schedule  # noqa: E402
from unet_sd import UNetSD  # noqa: E402

OUT = os.path.join(FIXTURES, 'e2e')
MODEL = os.path.join(OUT, 'tiny')

MODEL_CFG = {
    'unet_in_dim': 4, 'unet_dim': 32, 'unet_y_dim': 1024, 'unet_context_dim': 1024, 'unet_out_dim': 4,
    'unet_dim_mult': [1, 1], 'unet_num_heads': 8, 'unet_head_dim': 8, 'unet_res_blocks': 1,
    'unet_attn_scales': [1, 0.5], 'unet_dropout': 0.1, 'temporal_attention': 'True', 'num_timesteps': 1000,
    'mean_type': 'eps', 'var_type': 'fixed_small', 'loss_type': 'mse',
}
DDCONFIG = {
    'double_z': True, 'z_channels': 4, 'resolution': 64, 'in_channels': 3, 'out_ch': 3, 'ch': 32,
    'ch_mult': [1, 1, 1, 1], 'num_res_blocks': 1, 'attn_resolutions': [], 'dropout': 0.0,
}
TEXT_LAYERS = 2

CASES = [
    # non-square, a step count that does not divide 1000 (stride 333 gives four timesteps: 999, 667, 334, 1)
    {'name': 'wide', 'prompt': 'a panda eating bamboo on a rock, cinematic lighting', 'negative': None,
     'height': 48, 'width': 64, 'frames': 3, 'steps': 3, 'guidance': 9.0, 'seed': 11},
    # a prompt over 77 tokens (truncated by the tokenizer), a negative prompt, another guidance and step count
    {'name': 'long', 'prompt': ' '.join(['a very long prompt about an astronaut riding a horse on mars'] * 8),
     'negative': 'blurry, low quality, watermark', 'height': 32, 'width': 32, 'frames': 4, 'steps': 5,
     'guidance': 7.5, 'seed': 12},
]


def strided(shape, scale, g):
    """A [rows, cols] tensor that is a view of a small storage (row i starts 7 elements after row i-1)."""
    rows, cols = shape
    base = torch.randn(7 * (rows - 1) + cols, generator=g) * scale
    return base.as_strided((rows, cols), (7, 1))


def make_clip(seed):
    vision = open_clip.model.CLIPVisionCfg(layers=1, width=64, head_width=32, patch_size=14, image_size=28)
    text = open_clip.model.CLIPTextCfg(context_length=77, vocab_size=49408, width=1024, heads=16,
                                       layers=TEXT_LAYERS)
    model = open_clip.model.CLIP(embed_dim=1024, vision_cfg=vision, text_cfg=text)
    randomize(model, seed)
    # Large matrices become strided views of small storages so the checkpoint stays small; every row differs.
    g = torch.Generator().manual_seed(seed + 1)
    sd = model.state_dict()
    for k, v in list(sd.items()):
        if v.dim() == 2 and v.numel() > 200_000:
            sd[k] = strided(tuple(v.shape), 1.0 if k == 'token_embedding.weight' else 1 / math.sqrt(v.shape[1]), g)
    model.load_state_dict(sd)
    model.eval()
    return model, sd


def encode_text(model, text):
    """FrozenOpenCLIPEmbedder with layer='penultimate': all residual blocks but the last, then ln_final."""
    tokens = open_clip.tokenize(text)
    x = model.token_embedding(tokens) + model.positional_embedding
    x = x.permute(1, 0, 2)
    blocks = model.transformer.resblocks
    for r in list(blocks)[:len(blocks) - 1]:
        x = r(x, attn_mask=model.attn_mask)
    x = x.permute(1, 0, 2)
    return model.ln_final(x)


def make_unet(seed):
    c = MODEL_CFG
    unet = UNetSD(in_dim=c['unet_in_dim'], dim=c['unet_dim'], y_dim=c['unet_y_dim'],
                  context_dim=c['unet_context_dim'], out_dim=c['unet_out_dim'], dim_mult=c['unet_dim_mult'],
                  num_heads=c['unet_num_heads'], head_dim=c['unet_head_dim'], num_res_blocks=c['unet_res_blocks'],
                  attn_scales=c['unet_attn_scales'], dropout=c['unet_dropout'], temporal_attention=True)
    randomize(unet, seed)
    return unet


def make_vae(seed):
    vae = AutoencoderKL(DDCONFIG, 4)
    randomize(vae, seed)
    return vae


@torch.no_grad()
def run_case(case, clip, unet, vae, diffusion):
    lh, lw = case['height'] // 8, case['width'] // 8
    g = torch.Generator().manual_seed(case['seed'])
    noise = torch.randn((1, 4, case['frames'], lh, lw), generator=g)
    y = encode_text(clip, case['prompt'])
    zero_y = encode_text(clip, case['negative'] or '')
    torch.manual_seed(0)  # ddim_sample draws (unused, eta 0) noise from the global generator
    x0 = diffusion.ddim_sample_loop(noise=noise.clone(), model=unet, model_kwargs=[{'y': y}, {'y': zero_y}],
                                    guide_scale=case['guidance'], ddim_timesteps=case['steps'], eta=0.0)
    video = 1. / 0.18215 * x0
    b = video.shape[0]
    video = video.permute(0, 2, 1, 3, 4).reshape(-1, 4, lh, lw)  # b c f h w -> (b f) c h w
    video = vae.decode(video)
    video = video.reshape(b, -1, *video.shape[1:]).permute(0, 2, 1, 3, 4)  # (b f) c h w -> b c f h w
    video = video.mul_(0.5).add_(0.5).clamp_(0, 1)
    frames = (video[0].permute(1, 2, 3, 0).numpy() * 255).astype('uint8')  # f h w c
    d = os.path.join(OUT, 'cases', case['name'])
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'case.json'), 'w') as f:
        json.dump({k: v for k, v in case.items() if k != 'seed'}, f, indent=1)
    save_npy(os.path.join(d, 'noise.npy'), noise)
    save_npy(os.path.join(d, 'latents.npy'), x0)
    save_npy(os.path.join(d, 'frames.npy'), frames)
    # the text features too, to tell a text-tower difference from a sampler difference when a test fails
    save_npy(os.path.join(d, 'context.npy'), y)
    save_npy(os.path.join(d, 'context_uncond.npy'), zero_y)
    print(case['name'], 'latents', tuple(x0.shape), 'max', float(x0.abs().max()), 'frames', frames.shape,
          'mean', float(frames.mean()))


def main():
    torch.set_num_threads(2)
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(MODEL)
    clip, clip_sd = make_clip(401)
    unet = make_unet(402)
    vae = make_vae(403)
    torch.save(clip_sd, os.path.join(MODEL, 'open_clip_pytorch_model.bin'))
    torch.save(unet.state_dict(), os.path.join(MODEL, 'text2video_pytorch_model.pth'))
    torch.save({'state_dict': {'first_stage_model.' + k: v for k, v in vae.state_dict().items()},
                'global_step': 0}, os.path.join(MODEL, 'VQGAN_autoencoder.pth'))
    config = {
        'framework': 'pytorch', 'task': 'text-to-video-synthesis',
        'model': {
            'type': 'latent-text-to-video-synthesis',
            'model_args': {'ckpt_clip': 'open_clip_pytorch_model.bin', 'ckpt_unet': 'text2video_pytorch_model.pth',
                           'ckpt_autoencoder': 'VQGAN_autoencoder.pth', 'max_frames': 16, 'tiny_gpu': 1},
            'model_cfg': MODEL_CFG,
        },
        'pipeline': {'type': 'latent-text-to-video-synthesis'},
    }
    with open(os.path.join(MODEL, 'configuration.json'), 'w') as f:
        json.dump(config, f, indent=4)

    betas = beta_schedule('linear_sd', 1000, init_beta=0.00085, last_beta=0.0120)
    diffusion = GaussianDiffusion(betas=betas, mean_type='eps', var_type='fixed_small', loss_type='mse',
                                  rescale_timesteps=False)
    for case in CASES:
        run_case(case, clip, unet, vae, diffusion)
    sampler_only(diffusion)


@torch.no_grad()
def sampler_only(diffusion):
    """ddim_sample_loop with a stand-in model (out = sin(x) * y + t / 1000), to test the sampler by itself."""
    d = os.path.join(OUT, 'ddim')
    os.makedirs(d, exist_ok=True)
    np_save64(os.path.join(d, 'alphas_cumprod.npy'), diffusion.alphas_cumprod)

    def model(x, t, y):
        return torch.sin(x) * y + t.float().view(-1, 1, 1, 1, 1) / 1000

    g = torch.Generator().manual_seed(21)
    noise = torch.randn((1, 4, 2, 3, 5), generator=g)
    save_npy(os.path.join(d, 'noise.npy'), noise)
    results = {}
    for steps, guide in ((1, 9.0), (3, 9.0), (7, 4.5), (50, 9.0)):
        out = diffusion.ddim_sample_loop(noise=noise.clone(), model=model,
                                         model_kwargs=[{'y': torch.tensor(0.7)}, {'y': torch.tensor(-0.3)}],
                                         guide_scale=guide, ddim_timesteps=steps, eta=0.0)
        save_npy(os.path.join(d, f'final_{steps}.npy'), out)
        results[steps] = guide
    with open(os.path.join(d, 'cases.json'), 'w') as f:
        json.dump({'cond': 0.7, 'uncond': -0.3, 'runs': [{'steps': s, 'guidance': g} for s, g in results.items()]}, f)


def np_save64(path, t):
    import numpy as np
    np.save(path, t.numpy().astype(np.float64))


if __name__ == '__main__':
    main()
