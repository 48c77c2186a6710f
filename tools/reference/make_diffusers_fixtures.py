"""One small random model in two layouts: the ModelScope release and the diffusers hub folder.

The ModelScope layout comes from the upstream code (UNetSD, the LDM AutoencoderKL, OpenCLIP). The diffusers layout
is made from it by diffusers' OWN conversion functions, loaded at run time from a diffusers source tree (never
copied into this repository):
  - the UNet by `convert_ldm_unet_checkpoint` in scripts/convert_ms_text_to_video_to_diffusers.py,
  - the VAE by `convert_ldm_vae_checkpoint` and the text tower by `convert_open_clip_checkpoint` in
    src/diffusers/loaders/single_file_utils.py.
Those are dict manipulations, so they run on this machine's PyTorch 1.13 with their imports stubbed.

It also writes the initial noise, the prompt and the final latents of the upstream ModelScope DDIM flow (the same
noise, few steps) so that both converted folders can be checked against upstream numbers.

  T2V_REF=/tmp/ref DIFFUSERS_SRC=/work/.mirror/huggingface+diffusers/repo \
    /usr/bin/python3 tools/reference/make_diffusers_fixtures.py

DIFFUSERS_SRC is a diffusers checkout or a bare git directory of one (read with `git show HEAD:<path>`).
"""
import ast
import gzip
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import types

import numpy as np
import torch

from _ref import FIXTURES, randomize, save_npy

import open_clip  # noqa: E402  (from T2V_REF, put on sys.path by _ref)
from autoencoder import AutoencoderKL  # noqa: E402
from diffusion import GaussianDiffusion, beta_schedule  # noqa: E402
from unet_sd import UNetSD  # noqa: E402

OUT = os.path.join(FIXTURES, 'diffusers')
MS = os.path.join(OUT, 'modelscope')
HUB = os.path.join(OUT, 'hub')
BIN = os.path.join(OUT, 'bin')
VOCAB = os.path.join(os.path.dirname(FIXTURES), '..', '..', 'shared', 'clip-tokenizer', 'bpe_simple_vocab_16e6.txt.gz')

# The small model. The text tower stays 1024 wide (ModelScope's decoder hard-codes a 1024-wide context) with the real
# vocabulary; diffusers' UNet3D hard-codes 8 heads in transformer_in, so unet_num_heads is 8.
MODEL_CFG = {
    'unet_in_dim': 4, 'unet_dim': 32, 'unet_y_dim': 32, 'unet_context_dim': 1024, 'unet_out_dim': 4,
    'unet_dim_mult': [1, 1], 'unet_num_heads': 8, 'unet_head_dim': 8, 'unet_res_blocks': 1,
    'unet_attn_scales': [1], 'unet_dropout': 0.1, 'temporal_attention': 'True', 'num_timesteps': 1000,
    'mean_type': 'eps', 'var_type': 'fixed_small', 'loss_type': 'mse',
}
DDCONFIG = {'double_z': True, 'z_channels': 4, 'resolution': 64, 'in_channels': 3, 'out_ch': 3, 'ch': 32,
            'ch_mult': [1, 1, 1, 1], 'num_res_blocks': 1, 'attn_resolutions': [], 'dropout': 0.0}
TEXT = {'width': 1024, 'heads': 16, 'layers': 2, 'context_length': 77, 'vocab_size': 49408}
PROMPT = 'a red panda eating bamboo'
FRAMES, LATENT_HW, STEPS, GUIDE = 2, 8, 5, 9.0
STRIDE = 2  # row stride of the compact text-tower weights (see compact_views)


# ----------------------------------------------------------------------------------------------------------------
# diffusers' conversion functions, executed from its source with the imports it does not need stubbed

def diffusers_source(rel: str) -> str:
    src = os.environ.get('DIFFUSERS_SRC')
    if not src:
        sys.exit('set DIFFUSERS_SRC to a diffusers checkout or git directory')
    if os.path.exists(os.path.join(src, rel)):
        with open(os.path.join(src, rel)) as f:
            return f.read()
    return subprocess.run(['git', '-C', src, 'show', f'HEAD:{rel}'], check=True, capture_output=True,
                          text=True).stdout


def load_functions(rel: str, names: list) -> dict:
    """Top-level functions (with every module-level constant) of a diffusers file, without its imports."""
    tree = ast.parse(diffusers_source(rel))
    keep = [n for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
            or (isinstance(n, ast.FunctionDef))]
    ns = {'torch': torch, 'copy': __import__('copy'), 're': __import__('re')}
    for node in keep:
        try:
            exec(compile(ast.Module(body=[node], type_ignores=[]), rel, 'exec'), ns)
        except NameError:
            pass  # constants built from symbols of the stubbed imports; not used here
    missing = [n for n in names if n not in ns]
    if missing:
        sys.exit(f'{rel}: functions not found: {missing}')
    return ns


# ----------------------------------------------------------------------------------------------------------------
# file writers

def save_safetensors(path: str, sd: dict, dtype=torch.float32) -> None:
    """The safetensors format by hand: u64 header length, JSON header, then the raw little-endian data."""
    code = {torch.float32: 'F32', torch.float16: 'F16'}[dtype]
    header, blobs, offset = {'__metadata__': {'format': 'pt'}}, [], 0
    for k, t in sd.items():
        b = t.detach().to(dtype).contiguous().numpy().tobytes()
        header[k] = {'dtype': code, 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def save_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)
        f.write('\n')


# ----------------------------------------------------------------------------------------------------------------
# the text tower: every 2-D weight is a strided view of a small storage, so the checkpoints stay small

@torch.no_grad()
def strided_text_tower(model, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    views = {}
    for name, p in model.named_parameters():
        if name.startswith('visual.') or p.dim() != 2 or p.shape[1] < 64:
            continue
        rows, cols = p.shape
        base = torch.randn((rows - 1) * STRIDE + cols, generator=g) / math.sqrt(cols)
        v = base.as_strided((rows, cols), (STRIDE, 1))
        p.copy_(v)
        views[name] = v
    return views


def compact_views(sd: dict, views: dict) -> dict:
    """Replace each large tensor of a converted dict by an equal strided view of a source storage (checked equal)."""
    out = {}
    for k, t in sd.items():
        if t.dim() == 2 and t.numel() >= 65536:
            found = None
            for v in views.values():
                rows = v.shape[0]
                for part in (1, 3):
                    if rows % part or t.shape != (rows // part, v.shape[1]):
                        continue
                    for i in range(part):
                        c = v.storage_offset() + i * (rows // part) * STRIDE
                        cand = torch.as_strided(v, t.shape, (STRIDE, 1), c)
                        if torch.equal(cand, t):
                            found = cand
                            break
                    if found is not None:
                        break
                if found is not None:
                    break
            if found is None:
                sys.exit(f'{k}: no compact view equals the converted tensor')
            out[k] = found
        else:
            out[k] = t
    return out


# ----------------------------------------------------------------------------------------------------------------
# tokenizer in the Hugging Face layout, from OpenCLIP's merge list

def bytes_to_unicode() -> dict:
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_tokenizer(folder: str) -> None:
    merges = gzip.open(VOCAB).read().decode('utf-8').split('\n')[1:49152 - 256 - 2 + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + '</w>' for v in vocab] + [''.join(m) for m in merges] + ['<|startoftext|>', '<|endoftext|>']
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, 'vocab.json'), 'w') as f:
        json.dump({v: i for i, v in enumerate(vocab)}, f, ensure_ascii=False, separators=(',', ':'))
    with open(os.path.join(folder, 'merges.txt'), 'w') as f:
        f.write('#version: 0.2\n' + '\n'.join(' '.join(m) for m in merges) + '\n')
    save_json(os.path.join(folder, 'tokenizer_config.json'), {
        'tokenizer_class': 'CLIPTokenizer', 'model_max_length': 77, 'do_lower_case': True,
        'bos_token': '<|startoftext|>', 'eos_token': '<|endoftext|>', 'unk_token': '<|endoftext|>', 'pad_token': '!'})
    save_json(os.path.join(folder, 'special_tokens_map.json'), {
        'bos_token': '<|startoftext|>', 'eos_token': '<|endoftext|>', 'unk_token': '<|endoftext|>', 'pad_token': '!'})


# ----------------------------------------------------------------------------------------------------------------

def unet_diffusers_config(cfg: dict, sample_size: int) -> dict:
    levels = len(cfg['unet_dim_mult'])
    attn_levels = [1 / 2 ** i in cfg['unet_attn_scales'] for i in range(levels)]
    return {
        '_class_name': 'UNet3DConditionModel', '_diffusers_version': '0.15.0.dev0', 'act_fn': 'silu',
        'attention_head_dim': cfg['unet_head_dim'],
        'block_out_channels': [cfg['unet_dim'] * m for m in cfg['unet_dim_mult']],
        'cross_attention_dim': cfg['unet_context_dim'],
        'down_block_types': ['CrossAttnDownBlock3D' if a else 'DownBlock3D' for a in attn_levels],
        'downsample_padding': 1, 'in_channels': 4, 'layers_per_block': cfg['unet_res_blocks'],
        'norm_eps': 1e-05, 'norm_num_groups': 32, 'out_channels': 4, 'sample_size': sample_size,
        'up_block_types': ['CrossAttnUpBlock3D' if a else 'UpBlock3D' for a in reversed(attn_levels)],
    }


def vae_diffusers_config(dd: dict) -> dict:
    return {
        '_class_name': 'AutoencoderKL', '_diffusers_version': '0.15.0.dev0', 'act_fn': 'silu',
        'block_out_channels': [dd['ch'] * m for m in dd['ch_mult']],
        'down_block_types': ['DownEncoderBlock2D'] * len(dd['ch_mult']),
        'in_channels': 3, 'latent_channels': 4, 'layers_per_block': dd['num_res_blocks'],
        'norm_num_groups': 32, 'out_channels': 3, 'sample_size': dd['resolution'],
        'scaling_factor': 0.18215,
        'up_block_types': ['UpDecoderBlock2D'] * len(dd['ch_mult']),
    }


@torch.no_grad()
def released_structure(ms: dict, sf: dict) -> None:
    """Key names and shapes, both layouts, of the released structure (four levels, attention at three, two blocks
    per level) at a small width: checks the index arithmetic of the key tables where the small model cannot."""
    cfg = dict(MODEL_CFG, unet_dim=32, unet_dim_mult=[1, 2, 4, 4], unet_res_blocks=2,
               unet_attn_scales=[1, 0.5, 0.25], unet_head_dim=8)
    unet = UNetSD(in_dim=4, dim=cfg['unet_dim'], y_dim=32, context_dim=cfg['unet_context_dim'], out_dim=4, dim_mult=cfg['unet_dim_mult'],
                  num_heads=8, head_dim=cfg['unet_head_dim'], num_res_blocks=2, attn_scales=cfg['unet_attn_scales'],
                  dropout=0.1, temporal_attention=True)
    usd = unet.state_dict()
    uconf = unet_diffusers_config(cfg, 32)
    d_unet = ms['convert_ldm_unet_checkpoint'](dict(usd), dict(uconf, class_embed_type=None, num_head_channels=8))
    dd = dict(DDCONFIG, ch=32, ch_mult=[1, 2, 4, 4], num_res_blocks=2)
    vae = AutoencoderKL(dd, 4)
    vsd = {'first_stage_model.' + k: v for k, v in vae.state_dict().items()}
    vconf = vae_diffusers_config(dd)
    d_vae = sf['convert_ldm_vae_checkpoint'](dict(vsd), vconf)
    shapes = lambda sd, cut=0: {k[cut:]: list(v.shape) for k, v in sd.items()}  # noqa: E731
    with open(os.path.join(OUT, 'released-structure.json'), 'w') as f:
        json.dump({
            'unet': {'config': uconf, 'modelscope': shapes(usd), 'diffusers': shapes(d_unet)},
            'vae': {'config': vconf, 'modelscope': shapes(vsd, len('first_stage_model.')), 'diffusers': shapes(d_vae)},
        }, f, separators=(',', ':'))


@torch.no_grad()
def main() -> None:
    torch.manual_seed(0)
    shutil.rmtree(OUT, ignore_errors=True)
    cfg = dict(MODEL_CFG)

    # --- the upstream networks, random
    unet = UNetSD(in_dim=cfg['unet_in_dim'], dim=cfg['unet_dim'], y_dim=cfg['unet_y_dim'],
                  context_dim=cfg['unet_context_dim'], out_dim=cfg['unet_out_dim'], dim_mult=cfg['unet_dim_mult'],
                  num_heads=cfg['unet_num_heads'], head_dim=cfg['unet_head_dim'], num_res_blocks=cfg['unet_res_blocks'],
                  attn_scales=cfg['unet_attn_scales'], dropout=cfg['unet_dropout'], temporal_attention=True)
    randomize(unet, 1)
    vae = AutoencoderKL(DDCONFIG, 4)
    randomize(vae, 2)
    clip = open_clip.CLIP(embed_dim=TEXT['width'],
                          vision_cfg=open_clip.model.CLIPVisionCfg(layers=1, width=32, head_width=32, patch_size=8,
                                                                   image_size=16),
                          text_cfg=open_clip.model.CLIPTextCfg(**TEXT))
    randomize(clip, 3)
    views = strided_text_tower(clip, 4)
    # Values exactly representable in float16: the fp16 files then hold the same numbers as the fp32 ones, and the
    # UNet can be saved in float16 as ModelScope released it.
    for m in (unet, vae, clip):
        for p in m.parameters():
            p.copy_(p.half().float())
    for k, v in views.items():
        v.copy_(v.half().float())

    # --- the ModelScope release layout
    unet_sd = {k: v.clone().half() for k, v in unet.state_dict().items()}
    vae_sd = {'first_stage_model.' + k: v.clone().half() for k, v in vae.state_dict().items()}
    clip_sd = dict(clip.state_dict())
    clip_sd.update(views)
    os.makedirs(MS, exist_ok=True)
    torch.save(unet_sd, os.path.join(MS, 'text2video_pytorch_model.pth'))
    torch.save({'state_dict': vae_sd, 'global_step': 0}, os.path.join(MS, 'VQGAN_autoencoder.pth'))
    torch.save(clip_sd, os.path.join(MS, 'open_clip_pytorch_model.bin'))
    save_json(os.path.join(MS, 'configuration.json'), {
        'framework': 'pytorch', 'task': 'text-to-video-synthesis',
        'model': {'type': 'latent-text-to-video-synthesis',
                  'model_args': {'ckpt_clip': 'open_clip_pytorch_model.bin',
                                 'ckpt_unet': 'text2video_pytorch_model.pth',
                                 'ckpt_autoencoder': 'VQGAN_autoencoder.pth', 'max_frames': FRAMES, 'tiny_gpu': 1},
                  'model_cfg': cfg},
        'pipeline': {'type': 'latent-text-to-video-synthesis'}})

    # --- the diffusers layout, by diffusers' own functions
    ms = load_functions('scripts/convert_ms_text_to_video_to_diffusers.py', ['convert_ldm_unet_checkpoint'])
    sf = load_functions('src/diffusers/loaders/single_file_utils.py',
                        ['convert_ldm_vae_checkpoint', 'convert_open_clip_checkpoint'])
    unet_config = unet_diffusers_config(cfg, LATENT_HW)
    # the script reads two keys UNet3DConditionModel's config lacks
    d_unet = ms['convert_ldm_unet_checkpoint'](
        {k: v.float() for k, v in unet_sd.items()},
        dict(unet_config, class_embed_type=None, num_head_channels=cfg['unet_head_dim']))
    vae_config = vae_diffusers_config(DDCONFIG)
    d_vae = sf['convert_ldm_vae_checkpoint']({k: v.float() for k, v in vae_sd.items()}, vae_config)
    fake_text_model = types.SimpleNamespace(config=types.SimpleNamespace(hidden_size=TEXT['width']))
    d_text = sf['convert_open_clip_checkpoint'](fake_text_model, {'cond_stage_model.model.' + k: v
                                                                  for k, v in clip_sd.items()})
    # CLIPTextModel: no `text_model.` prefix in recent transformers, no projection, all blocks but the last
    last = f'encoder.layers.{TEXT["layers"] - 1}.'
    d_text = {k[len('text_model.'):] if k.startswith('text_model.') else k: v for k, v in d_text.items()}
    d_text = {k: v for k, v in d_text.items() if not k.startswith(last) and k != 'text_projection.weight'}
    d_text = compact_views(d_text, views)

    # --- write the hub folder
    save_json(os.path.join(HUB, 'model_index.json'), {
        '_class_name': 'TextToVideoSDPipeline', '_diffusers_version': '0.15.0.dev0',
        'scheduler': ['diffusers', 'DDIMScheduler'], 'text_encoder': ['transformers', 'CLIPTextModel'],
        'tokenizer': ['transformers', 'CLIPTokenizer'], 'unet': ['diffusers', 'UNet3DConditionModel'],
        'vae': ['diffusers', 'AutoencoderKL']})
    save_json(os.path.join(HUB, 'scheduler', 'scheduler_config.json'), {
        '_class_name': 'DDIMScheduler', '_diffusers_version': '0.15.0.dev0', 'beta_end': 0.012,
        'beta_schedule': 'scaled_linear', 'beta_start': 0.00085, 'clip_sample': False, 'num_train_timesteps': 1000,
        'prediction_type': 'epsilon', 'set_alpha_to_one': False, 'skip_prk_steps': True, 'steps_offset': 1,
        'trained_betas': None})
    save_json(os.path.join(HUB, 'text_encoder', 'config.json'), {
        'architectures': ['CLIPTextModel'], 'attention_dropout': 0.0, 'bos_token_id': 0, 'dropout': 0.0,
        'eos_token_id': 2, 'hidden_act': 'gelu', 'hidden_size': TEXT['width'], 'initializer_factor': 1.0,
        'initializer_range': 0.02, 'intermediate_size': 4 * TEXT['width'], 'layer_norm_eps': 1e-05,
        'max_position_embeddings': TEXT['context_length'], 'model_type': 'clip_text_model',
        'num_attention_heads': TEXT['heads'], 'num_hidden_layers': TEXT['layers'] - 1, 'pad_token_id': 1,
        'projection_dim': TEXT['width'], 'torch_dtype': 'float32', 'vocab_size': TEXT['vocab_size']})
    torch.save(d_text, os.path.join(HUB, 'text_encoder', 'pytorch_model.bin'))
    write_tokenizer(os.path.join(HUB, 'tokenizer'))
    # To keep the fixture small the UNet is there as the fp16 variant only (its values are float16 numbers anyway);
    # the VAE in both forms.
    for name, sd, conf in (('unet', d_unet, unet_config), ('vae', d_vae, vae_config)):
        save_json(os.path.join(HUB, name, 'config.json'), conf)
        if name == 'vae':
            save_safetensors(os.path.join(HUB, name, 'diffusion_pytorch_model.safetensors'), sd)
        save_safetensors(os.path.join(HUB, name, 'diffusion_pytorch_model.fp16.safetensors'), sd, torch.float16)
    # the .bin form of a diffusers network (a float16 state_dict, as fp16 .bin variants hold)
    os.makedirs(os.path.join(BIN, 'vae'), exist_ok=True)
    torch.save({k: v.half().contiguous() for k, v in d_vae.items()}, os.path.join(BIN, 'vae', 'diffusion_pytorch_model.bin'))

    # --- the upstream ModelScope flow on the same weights: noise in, final latents out
    tokens = open_clip.tokenize([PROMPT, ''])
    x = clip.token_embedding(tokens) + clip.positional_embedding
    x = x.permute(1, 0, 2)
    for r in clip.transformer.resblocks[:-1]:  # penultimate layer
        x = r(x, attn_mask=clip.attn_mask)
    ctx = clip.ln_final(x.permute(1, 0, 2))
    diffusion = GaussianDiffusion(betas=beta_schedule('linear_sd', 1000, init_beta=0.00085, last_beta=0.0120),
                                  mean_type='eps', var_type='fixed_small', loss_type='mse', rescale_timesteps=False)
    noise = torch.randn(1, 4, FRAMES, LATENT_HW, LATENT_HW)
    latents = diffusion.ddim_sample_loop(noise=noise, model=unet, model_kwargs=[{'y': ctx[0:1]}, {'y': ctx[1:2]}],
                                         guide_scale=GUIDE, ddim_timesteps=STEPS, eta=0.0)
    save_npy(os.path.join(OUT, 'noise.npy'), noise)
    save_npy(os.path.join(OUT, 'latents_modelscope.npy'), latents)
    save_json(os.path.join(OUT, 'run.json'), {'prompt': PROMPT, 'negative_prompt': '', 'frames': FRAMES,
                                              'height': LATENT_HW * 8, 'width': LATENT_HW * 8, 'steps': STEPS,
                                              'guide_scale': GUIDE, 'eta': 0.0})
    released_structure(ms, sf)
    print('latents', latents.shape, float(latents.abs().max()))


if __name__ == '__main__':
    main()
