"""Final latents of diffusers' own TextToVideoSDPipeline on a diffusers-layout folder, from given initial noise.

Needs PyTorch 2, transformers and diffusers' source (not installed on the development machine; a GPU host's python3
usually has the first two). Put diffusers' `src` on the path with DIFFUSERS_SRC (a checkout; its src/ is used) or
have diffusers installed.

  DIFFUSERS_SRC=/path/to/diffusers python3 tools/reference/diffusers_pipeline_reference.py \
      test/fixtures/diffusers/hub test/fixtures/diffusers/noise.npy test/fixtures/diffusers/latents_diffusers.npy \
      --run test/fixtures/diffusers/run.json

The run settings (prompt, negative prompt, steps, guidance, frames, size) come from --run (the JSON the fixture
generator writes) or from the flags. Everything runs in float32 on the CPU by default (no TF32), eta 0, and the
pipeline returns the latents before decoding (output_type='latent'); they are written as float32 [1, 4, f, h, w].
"""
import argparse
import json
import os
import sys

import numpy as np

src = os.environ.get('DIFFUSERS_SRC')
if src:
    sys.path.insert(0, os.path.join(src, 'src') if os.path.isdir(os.path.join(src, 'src')) else src)

import torch  # noqa: E402
from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402


def load_text_encoder(folder: str) -> CLIPTextModel:
    """CLIPTextModel from text_encoder/, whichever of `text_model.`-prefixed or bare keys the file and the
    installed transformers use."""
    sub = os.path.join(folder, 'text_encoder')
    model = CLIPTextModel(CLIPTextConfig.from_pretrained(sub))
    path = os.path.join(sub, 'model.safetensors')
    if os.path.exists(path):
        from safetensors.torch import load_file
        sd = load_file(path)
    else:
        sd = torch.load(os.path.join(sub, 'pytorch_model.bin'), map_location='cpu')
    want = set(model.state_dict().keys())
    pre = 'text_model.'
    fixed = {}
    for k, v in sd.items():
        if k not in want and pre + k in want:
            k = pre + k
        elif k not in want and k.startswith(pre) and k[len(pre):] in want:
            k = k[len(pre):]
        fixed[k] = v.float()
    missing, unexpected = model.load_state_dict(fixed, strict=False)
    missing = [k for k in missing if not k.endswith('position_ids')]
    unexpected = [k for k in unexpected if not k.endswith('position_ids')]
    if missing or unexpected:
        sys.exit(f'text encoder: missing {missing[:5]}, unexpected {unexpected[:5]}')
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument('folder', help='the diffusers-layout folder (model_index.json, unet/, vae/, ...)')
    ap.add_argument('noise', help='initial latents .npy, float32 [1, 4, frames, h/8, w/8]')
    ap.add_argument('out', help='where to write the final latents .npy')
    ap.add_argument('--run', help='run.json with prompt, negative_prompt, steps, guide_scale, frames, height, width')
    ap.add_argument('--prompt')
    ap.add_argument('--negative-prompt', default='')
    ap.add_argument('--steps', type=int, default=50)
    ap.add_argument('--guidance', type=float, default=9.0)
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--variant', default=None, help='weights variant to load, e.g. fp16 (loaded as float32)')
    a = ap.parse_args()
    run = {}
    if a.run:
        with open(a.run) as f:
            run = json.load(f)
    prompt = a.prompt if a.prompt is not None else run.get('prompt')
    if prompt is None:
        sys.exit('give --prompt or --run')
    negative = run.get('negative_prompt', a.negative_prompt) if a.run else a.negative_prompt
    steps = int(run.get('steps', a.steps))
    guidance = float(run.get('guide_scale', a.guidance))

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device(a.device)

    def kw(sub: str) -> dict:
        # the variant asked for, else the plain files, else the fp16 variant (the test fixture's UNet has only that)
        plain = any(os.path.exists(os.path.join(a.folder, sub, f'diffusion_pytorch_model.{e}')) for e in ('safetensors', 'bin'))
        variant = a.variant or (None if plain else 'fp16')
        return {'torch_dtype': torch.float32, **({'variant': variant} if variant else {})}

    pipe = TextToVideoSDPipeline(
        vae=AutoencoderKL.from_pretrained(a.folder, subfolder='vae', **kw('vae')).eval(),
        text_encoder=load_text_encoder(a.folder),
        tokenizer=CLIPTokenizer.from_pretrained(a.folder, subfolder='tokenizer'),
        unet=UNet3DConditionModel.from_pretrained(a.folder, subfolder='unet', **kw('unet')).eval(),
        scheduler=DDIMScheduler.from_pretrained(a.folder, subfolder='scheduler'),
    ).to(dev)
    pipe.set_progress_bar_config(disable=True)

    noise = torch.from_numpy(np.load(a.noise).astype(np.float32)).to(dev)
    _, _, frames, lh, lw = noise.shape
    scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    with torch.no_grad():
        out = pipe(prompt=prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=guidance,
                   num_frames=frames, height=lh * scale, width=lw * scale, latents=noise, eta=0.0,
                   output_type='latent')
    latents = out.frames if not isinstance(out, tuple) else out[0]
    latents = latents.detach().float().cpu().numpy()
    if latents.shape != tuple(noise.shape):
        sys.exit(f'latents came back as {latents.shape}, expected {tuple(noise.shape)}')
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    np.save(a.out, np.ascontiguousarray(latents.astype(np.float32)))
    print(f'{a.out}: {latents.shape}, max |x| {np.abs(latents).max():.4f}; torch {torch.__version__}')


if __name__ == '__main__':
    main()
