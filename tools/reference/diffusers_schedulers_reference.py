"""Final latents and decoded frames of diffusers' own ModelScope pipelines with each scheduler t2v offers.

On the small diffusers-layout test model (test/fixtures/diffusers/hub), in float32 on the CPU:
  - TextToVideoSDPipeline from the fixture's initial noise (noise.npy, run.json's prompt and guidance) with
    DPMSolverMultistepScheduler (with and without use_karras_sigmas), EulerDiscreteScheduler and
    UniPCMultistepScheduler, each `from_config` of the folder's DDIMScheduler config, as diffusers' docs swap them in;
  - VideoToVideoSDPipeline at strength 0.6 from a short clip (v2v_video.npy, uint8 [frames, h, w, 3], given as PIL
    images) with DDIMScheduler and DPMSolverMultistepScheduler. The pipeline module's `retrieve_latents` is replaced
    by the posterior's mode and its `randn_tensor` by the given noise (v2v_noise.npy, float32 [1, 4, f, h/8, w/8]),
    so the run is deterministic.
Each case writes sched_<case>_latents.npy (float32 [1, 4, f, h/8, w/8], before 1/scaling_factor) and
sched_<case>_frames.npy (uint8 [f, h, w, 3]: diffusers' decoded frames in [0, 1] times 255, truncated as t2v and
ModelScope do), and cases.json the settings and the timesteps each scheduler ran.

Needs PyTorch 2, transformers, PIL and diffusers' source (DIFFUSERS_SRC, as diffusers_pipeline_reference.py):

  DIFFUSERS_SRC=/path/to/diffusers python3 tools/reference/diffusers_schedulers_reference.py \
      test/fixtures/diffusers OUT_DIR

`--torch1 IDS.json` runs it on Debian's PyTorch 1.13 instead (no transformers there): torch1_stubs.py lets diffusers
import, the UNet and VAE are built from their configs with the folder's weights, and the text features come from
the CLIPTextModel computation written out below (embeddings, pre-LN blocks with the causal mask, final LayerNorm)
on the token ids in IDS.json ({"prompt": [...77 ids], "negative": [...]}, from t2v's tokenizer, which matches
open_clip's and transformers' ids). A case `t2v-ddim` (the 5-step run of run.json) checks that set-up against
latents_diffusers.npy, which diffusers_pipeline_reference.py made with transformers on PyTorch 2.

`--make-inputs` instead writes the clip and the added noise (numpy only, seeded) into the fixture folder.
"""
import json
import os
import sys

import numpy as np

V2V_FRAMES, V2V_HW, V2V_STEPS, V2V_STRENGTH = 3, 64, 10, 0.6
T2V_STEPS = 6


def make_inputs(fixtures: str) -> None:
    """A 3-frame 64x64 clip (smooth colour fields and a square that moves) and the noise v2v adds to its latents."""
    yy, xx = np.mgrid[0:V2V_HW, 0:V2V_HW].astype(np.float64) / V2V_HW
    frames = []
    for f in range(V2V_FRAMES):
        r = 0.5 + 0.4 * np.sin(2 * np.pi * (xx + 0.1 * f))
        g = 0.5 + 0.4 * np.cos(2 * np.pi * (yy * 1.5 - 0.05 * f))
        b = 0.5 + 0.3 * np.sin(2 * np.pi * (xx + yy))
        img = np.stack([r, g, b], -1)
        x0 = 12 + 6 * f
        img[20:40, x0:x0 + 20] = [0.95, 0.85, 0.1]
        frames.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    np.save(os.path.join(fixtures, 'v2v_video.npy'), np.stack(frames))
    rng = np.random.default_rng(20261203)
    noise = rng.standard_normal((1, 4, V2V_FRAMES, V2V_HW // 8, V2V_HW // 8)).astype(np.float32)
    np.save(os.path.join(fixtures, 'v2v_noise.npy'), noise)
    print('wrote v2v_video.npy, v2v_noise.npy')


def clip_text(folder: str, ids: list):
    """transformers' CLIPTextModel last_hidden_state for one row of token ids (quick_gelu or gelu per the config)."""
    import torch
    import torch.nn.functional as F
    with open(os.path.join(folder, 'text_encoder', 'config.json')) as f:
        cfg = json.load(f)
    sd = torch.load(os.path.join(folder, 'text_encoder', 'pytorch_model.bin'), map_location='cpu')
    sd = {k[len('text_model.'):] if k.startswith('text_model.') else k: v.float() for k, v in sd.items()}
    n = len(ids)
    heads, eps = cfg['num_attention_heads'], cfg['layer_norm_eps']
    x = sd['embeddings.token_embedding.weight'][torch.tensor(ids)] + sd['embeddings.position_embedding.weight'][:n]
    x = x[None]
    mask = torch.full((n, n), torch.finfo(torch.float32).min).triu(1)
    act = (lambda v: v * torch.sigmoid(1.702 * v)) if cfg['hidden_act'] == 'quick_gelu' else F.gelu
    lin = lambda v, p: F.linear(v, sd[p + '.weight'], sd[p + '.bias'])
    for i in range(cfg['num_hidden_layers']):
        p = f'encoder.layers.{i}.'
        h = F.layer_norm(x, (x.shape[-1],), sd[p + 'layer_norm1.weight'], sd[p + 'layer_norm1.bias'], eps)
        q, k, v = (lin(h, p + f'self_attn.{w}_proj').view(1, n, heads, -1).transpose(1, 2) for w in 'qkv')
        w = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2) + mask
        a = (w.softmax(-1) @ v).transpose(1, 2).reshape(1, n, -1)
        x = x + lin(a, p + 'self_attn.out_proj')
        h = F.layer_norm(x, (x.shape[-1],), sd[p + 'layer_norm2.weight'], sd[p + 'layer_norm2.bias'], eps)
        x = x + lin(act(lin(h, p + 'mlp.fc1')), p + 'mlp.fc2')
    return F.layer_norm(x, (x.shape[-1],), sd['final_layer_norm.weight'], sd['final_layer_norm.bias'], eps)


def main() -> None:
    if sys.argv[1:2] == ['--make-inputs']:
        make_inputs(sys.argv[2])
        return
    fixtures, out = sys.argv[1], sys.argv[2]
    ids = json.load(open(sys.argv[sys.argv.index('--torch1') + 1])) if '--torch1' in sys.argv else None
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if ids is not None:
        import torch1_stubs  # noqa: F401
        src = os.environ.get('DIFFUSERS_SRC')
        if src:
            sys.path.insert(0, os.path.join(src, 'src') if os.path.isdir(os.path.join(src, 'src')) else src)
    else:
        from diffusers_pipeline_reference import load_text_encoder  # puts DIFFUSERS_SRC on sys.path first
    import torch
    from PIL import Image
    from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler,
                           TextToVideoSDPipeline, UNet3DConditionModel, UniPCMultistepScheduler,
                           VideoToVideoSDPipeline)
    from diffusers.pipelines.deprecated.text_to_video_synthesis import pipeline_text_to_video_synth_img2img as v2v_mod

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    folder = os.path.join(fixtures, 'hub')
    with open(os.path.join(fixtures, 'run.json')) as f:
        run = json.load(f)
    os.makedirs(out, exist_ok=True)

    def kw(sub: str) -> dict:
        plain = os.path.exists(os.path.join(folder, sub, 'diffusion_pytorch_model.safetensors'))
        return {'torch_dtype': torch.float32, **({} if plain else {'variant': 'fp16'})}

    text = {}
    if ids is None:
        from transformers import CLIPTokenizer
        vae = AutoencoderKL.from_pretrained(folder, subfolder='vae', **kw('vae')).eval()
        unet = UNet3DConditionModel.from_pretrained(folder, subfolder='unet', **kw('unet')).eval()
        text_encoder = load_text_encoder(folder)
        tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder='tokenizer')
        ddim = DDIMScheduler.from_pretrained(folder, subfolder='scheduler')
    else:
        from torch1_stubs import load_safetensors

        def build(cls, sub):
            with open(os.path.join(folder, sub, 'config.json')) as f:
                cfg = {k: v for k, v in json.load(f).items() if not k.startswith('_')}
            m = cls(**cfg)
            name = 'diffusion_pytorch_model.safetensors'
            if not os.path.exists(os.path.join(folder, sub, name)):
                name = 'diffusion_pytorch_model.fp16.safetensors'
            m.load_state_dict(load_safetensors(os.path.join(folder, sub, name)), strict=True)
            return m.eval()
        vae = build(AutoencoderKL, 'vae')
        unet = build(UNet3DConditionModel, 'unet')
        with open(os.path.join(folder, 'scheduler', 'scheduler_config.json')) as f:
            ddim = DDIMScheduler.from_config(json.load(f))
        text_encoder = tokenizer = None
        with torch.no_grad():
            text = {'prompt_embeds': clip_text(folder, ids['prompt']), 'negative_prompt_embeds': clip_text(folder, ids['negative'])}
    schedulers = {
        'ddim': lambda: DDIMScheduler.from_config(ddim.config),
        'dpm-solver++': lambda: DPMSolverMultistepScheduler.from_config(ddim.config),
        'dpm-solver++-karras': lambda: DPMSolverMultistepScheduler.from_config(ddim.config, use_karras_sigmas=True),
        'euler': lambda: EulerDiscreteScheduler.from_config(ddim.config),
        'unipc': lambda: UniPCMultistepScheduler.from_config(ddim.config),
    }
    parts = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet)

    def frames_of(pipe, latents):
        with torch.no_grad():
            video = pipe.decode_latents(latents)
            video = pipe.video_processor.postprocess_video(video=video, output_type='np')  # [1, f, h, w, 3] in [0, 1]
        return (video[0] * 255).astype(np.uint8)

    def save(case: str, latents, frames, info: dict, sched) -> dict:
        lat = latents.detach().float().cpu().numpy().astype(np.float32)
        np.save(os.path.join(out, f'sched_{case}_latents.npy'), np.ascontiguousarray(lat))
        np.save(os.path.join(out, f'sched_{case}_frames.npy'), np.ascontiguousarray(frames))
        cfg = {k: (v if not isinstance(v, float) or np.isfinite(v) else str(v)) for k, v in dict(sched.config).items()
               if isinstance(v, (int, float, str, bool)) or v is None}
        print(case, lat.shape, f'max |x| {np.abs(lat).max():.4f}', 'timesteps', info['timesteps'], flush=True)
        return {**info, 'scheduler_class': type(sched).__name__, 'scheduler_config': cfg}

    cases = {}
    noise = torch.from_numpy(np.load(os.path.join(fixtures, 'noise.npy')).astype(np.float32))
    _, _, frames, lh, lw = noise.shape
    def prompts() -> dict:
        return text if text else {'prompt': run['prompt'], 'negative_prompt': run['negative_prompt']}

    for name in (('ddim',) if ids is not None else ()) + ('dpm-solver++', 'dpm-solver++-karras', 'euler', 'unipc'):
        steps = run['steps'] if name == 'ddim' else T2V_STEPS
        pipe = TextToVideoSDPipeline(**parts, scheduler=schedulers[name]())
        pipe.set_progress_bar_config(disable=True)
        seen = []
        with torch.no_grad():
            lat = pipe(**prompts(), num_inference_steps=steps,
                       guidance_scale=run['guide_scale'], num_frames=frames, height=lh * 8, width=lw * 8,
                       latents=noise.clone(), output_type='latent',
                       callback=lambda i, t, x: seen.append(float(t)), callback_steps=1).frames
        cases[f't2v-{name}'] = save(f't2v-{name}', lat, frames_of(pipe, lat), {
            'kind': 't2v', 'scheduler': name.replace('-karras', ''), 'karras_sigmas': name.endswith('karras'),
            'steps': steps, 'noise': 'noise.npy', 'timesteps': seen,
            'all_timesteps': [float(t) for t in pipe.scheduler.timesteps]}, pipe.scheduler)

    if 't2v-ddim' in cases:
        ref = np.load(os.path.join(fixtures, 'latents_diffusers.npy'))
        got = np.load(os.path.join(out, 'sched_t2v-ddim_latents.npy'))
        err = float(np.abs(got - ref).max() / np.abs(ref).max())
        cases['t2v-ddim']['vs_latents_diffusers'] = err
        print(f'set-up check: t2v-ddim vs latents_diffusers.npy (PyTorch 2, transformers): {err:.2e}', flush=True)

    clip = np.load(os.path.join(fixtures, 'v2v_video.npy'))
    v2v_noise = torch.from_numpy(np.load(os.path.join(fixtures, 'v2v_noise.npy')))
    f2 = v2v_noise.shape[2]
    # the pipeline draws noise of the latents' shape [b * f, c, h, w]: the given [1, c, f, h, w] noise, frames first
    v2v_mod.randn_tensor = lambda shape, **_: v2v_noise.permute(0, 2, 1, 3, 4).reshape(tuple(shape)).clone()
    v2v_mod.retrieve_latents = lambda enc, generator=None, sample_mode='sample': enc.latent_dist.mode()
    with torch.no_grad():
        pix = torch.from_numpy(clip.astype(np.float32) / 255.0).permute(0, 3, 1, 2) * 2 - 1
        init = vae.encode(pix).latent_dist.mode() * vae.config.scaling_factor
    np.save(os.path.join(out, 'sched_v2v_init_latents.npy'),
            np.ascontiguousarray(init.reshape(1, f2, 4, *init.shape[2:]).permute(0, 2, 1, 3, 4).numpy().astype(np.float32)))
    for name in ('ddim', 'dpm-solver++'):
        pipe = VideoToVideoSDPipeline(**parts, scheduler=schedulers[name]())
        pipe.set_progress_bar_config(disable=True)
        seen = []
        with torch.no_grad():
            lat = pipe(**prompts(),
                       video=[Image.fromarray(fr) for fr in clip], strength=V2V_STRENGTH,
                       num_inference_steps=V2V_STEPS, guidance_scale=run['guide_scale'], output_type='latent',
                       callback=lambda i, t, x: seen.append(float(t)), callback_steps=1).frames
        cases[f'v2v-{name}'] = save(f'v2v-{name}', lat, frames_of(pipe, lat), {
            'kind': 'v2v', 'scheduler': name, 'karras_sigmas': False, 'steps': V2V_STEPS, 'strength': V2V_STRENGTH,
            'noise': 'v2v_noise.npy', 'video': 'v2v_video.npy', 'timesteps': seen,
            'all_timesteps': [float(t) for t in pipe.scheduler.timesteps]}, pipe.scheduler)
    with open(os.path.join(out, 'cases.json'), 'w') as f:
        json.dump({'prompt': run['prompt'], 'negative_prompt': run['negative_prompt'], 'guide_scale': run['guide_scale'],
                   'torch': torch.__version__, 'cases': cases}, f, indent=1)
    print('done; torch', torch.__version__)


if __name__ == '__main__':
    main()
