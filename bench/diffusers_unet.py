#!/usr/bin/env python3
"""The PyTorch side of the benchmark: diffusers' UNet3DConditionModel in the ms-1.7b configuration (random weights,
SDPA attention) timed three ways in one process, eager, with CUDA graph replay (torch.cuda.graphs) and under
torch.compile(mode="reduce-overhead"):
  unet-call    one UNet call at batch 1
  guided-step  the UNet call of one guided step: batch 2 ([x, x] under [uncond, cond]), as TextToVideoSDPipeline runs it
  video        a whole generation: the text tower (transformers' CLIPTextModel, when importable), STEPS DDIM steps with
               guidance (the UNet at batch 2, the guidance sum, DDIMScheduler.step), the VAE decode of every frame
and the peaks of torch.cuda.max_memory_allocated and max_memory_reserved for each way. Medians with ranges go to --out
as JSON; bench/gpu.ts (the `torch` scenario) runs it and puts the figures beside t2v's in OUT/table.md.

diffusers' source is not installed anywhere: --diffusers names a folder holding the `diffusers` package (or the
repository's `src`, or a .tar/.tar.xz/.tgz of either), as ../shared/reference/README.md describes.
  GPU host:  python3 bench/diffusers_unet.py --diffusers DIR --out torch.json
  here:      /usr/bin/python3 bench/diffusers_unet.py --diffusers /tmp/dsrc/src --device cpu --dtype fp32 --tiny --torch1 \\
               --out /tmp/torch.json   (PyTorch 1.13: tools/reference/torch1_stubs.py; no graphs, no compile)
"""
import argparse
import json
import os
import statistics
import sys
import tarfile
import tempfile
import time
import traceback

# diffusers' unet/config.json of damo-vilab/text-to-video-ms-1.7b (the same network as ModelScope's UNetSD)
RELEASED_UNET = {
    'act_fn': 'silu', 'attention_head_dim': 64, 'block_out_channels': [320, 640, 1280, 1280],
    'cross_attention_dim': 1024,
    'down_block_types': ['CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'CrossAttnDownBlock3D', 'DownBlock3D'],
    'downsample_padding': 1, 'in_channels': 4, 'layers_per_block': 2, 'norm_eps': 1e-05, 'norm_num_groups': 32,
    'out_channels': 4, 'sample_size': 32,
    'up_block_types': ['UpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D', 'CrossAttnUpBlock3D'],
}
# the same structure, small enough for a CPU smoke run (transformer_in's 8 heads need attention_head_dim * 8 wide)
TINY_UNET = dict(RELEASED_UNET, attention_head_dim=8, block_out_channels=[32, 64], layers_per_block=1,
                 down_block_types=['CrossAttnDownBlock3D', 'DownBlock3D'], up_block_types=['UpBlock3D', 'CrossAttnUpBlock3D'])
RELEASED_VAE = {
    'act_fn': 'silu', 'block_out_channels': [128, 256, 512, 512], 'down_block_types': ['DownEncoderBlock2D'] * 4,
    'in_channels': 3, 'latent_channels': 4, 'layers_per_block': 2, 'norm_num_groups': 32, 'out_channels': 3,
    'sample_size': 256, 'scaling_factor': 0.18215, 'up_block_types': ['UpDecoderBlock2D'] * 4,
}
TINY_VAE = dict(RELEASED_VAE, block_out_channels=[32, 32, 32, 32], layers_per_block=1)
# OpenCLIP ViT-H-14's text tower as the pipeline uses it (all blocks but the last)
RELEASED_TEXT = {'hidden_size': 1024, 'intermediate_size': 4096, 'num_hidden_layers': 23, 'num_attention_heads': 16,
                 'max_position_embeddings': 77, 'vocab_size': 49408, 'hidden_act': 'gelu', 'projection_dim': 1024}
TINY_TEXT = dict(RELEASED_TEXT, intermediate_size=256, num_hidden_layers=1, num_attention_heads=4)
# scheduler/scheduler_config.json of the same repository
SCHEDULER = {'beta_end': 0.012, 'beta_schedule': 'scaled_linear', 'beta_start': 0.00085, 'clip_sample': False,
             'num_train_timesteps': 1000, 'prediction_type': 'epsilon', 'set_alpha_to_one': False,
             'skip_prk_steps': True, 'steps_offset': 1, 'trained_betas': None}
VAE_SCALE = 0.18215  # the latents' scale factor
SCENARIOS = ('unet-call', 'guided-step', 'video')
MODES = ('eager', 'graph', 'compile')


def put_diffusers_on_path(where: str) -> None:
    """Makes `import diffusers` find the source at `where`: the package folder's parent, the repository's src, or an
    archive of either (extracted into a temporary folder)."""
    if not where:
        raise SystemExit('diffusers_unet.py: pass --diffusers DIR (a folder holding the diffusers package; see the docstring)')
    if os.path.isfile(where):
        dest = tempfile.mkdtemp(prefix='t2v-diffusers-')
        with tarfile.open(where) as tf:
            tf.extractall(dest, **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))
        where = dest
    for cand in (where, os.path.join(where, 'src')):
        if os.path.isdir(os.path.join(cand, 'diffusers')):
            sys.path.insert(0, cand)
            return
    raise SystemExit(f'diffusers_unet.py: no diffusers package under {where}')


def summary(ms: list) -> dict:
    return {'median': statistics.median(ms), 'min': min(ms), 'max': max(ms), 'runs': ms}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--diffusers', default=os.environ.get('T2V_DIFFUSERS', ''))
    p.add_argument('--out', required=True)
    p.add_argument('--device', default='cuda')
    p.add_argument('--dtype', default='fp16', choices=['fp16', 'fp32'])
    p.add_argument('--frames', type=int, default=16)
    p.add_argument('--height', type=int, default=256)
    p.add_argument('--width', type=int, default=256)
    p.add_argument('--steps', type=int, default=50)
    p.add_argument('--guidance', type=float, default=9.0)
    p.add_argument('--runs', type=int, default=10, help='timed UNet calls per figure (after warm-up)')
    p.add_argument('--video-runs', type=int, default=3)
    p.add_argument('--scenarios', default=','.join(SCENARIOS))
    p.add_argument('--modes', default=','.join(MODES))
    p.add_argument('--tiny', action='store_true', help='a small UNet, VAE and text tower of the same structure')
    p.add_argument('--torch1', action='store_true', help="Debian's PyTorch 1.13: load tools/reference/torch1_stubs.py")
    args = p.parse_args()
    scenarios = [s for s in args.scenarios.split(',') if s]
    modes = [m for m in args.modes.split(',') if m]
    for s in scenarios:
        if s not in SCENARIOS:
            raise SystemExit(f'diffusers_unet.py: unknown scenario {s}; valid: {", ".join(SCENARIOS)}')
    for m in modes:
        if m not in MODES:
            raise SystemExit(f'diffusers_unet.py: unknown mode {m}; valid: {", ".join(MODES)}')
    if args.height % 8 or args.width % 8:
        raise SystemExit('diffusers_unet.py: --height and --width must be multiples of 8')

    if args.torch1:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools', 'reference'))
        import torch1_stubs  # noqa: F401
    put_diffusers_on_path(args.diffusers)
    import torch
    import diffusers
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel

    dev = torch.device(args.device)
    cuda = dev.type == 'cuda'
    dtype = torch.float16 if args.dtype == 'fp16' else torch.float32
    torch.manual_seed(0)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    res: dict = {
        'torch': torch.__version__, 'diffusers': diffusers.__version__, 'python': sys.version.split()[0],
        'device': torch.cuda.get_device_name(dev) if cuda else 'cpu', 'dtype': args.dtype,
        'config': 'tiny' if args.tiny else 'released',
        'shape': {'frames': args.frames, 'height': args.height, 'width': args.width},
        'steps': args.steps, 'guidance': args.guidance, 'runs': args.runs, 'video_runs': args.video_runs, 'modes': {},
    }

    def build(cls, cfg):
        # made on the device in the target dtype where PyTorch can (2.x), else built on the CPU and moved
        if hasattr(torch, 'get_default_device'):
            with torch.device(dev):
                m = cls(**cfg)
        else:
            m = cls(**cfg)
        return m.to(dev, dtype).eval().requires_grad_(False)

    t0 = time.perf_counter()
    unet = build(UNet3DConditionModel, TINY_UNET if args.tiny else RELEASED_UNET)
    res['unet_params'] = sum(x.numel() for x in unet.parameters())
    procs = {type(v).__name__ for v in unet.attn_processors.values()}
    res['attention'] = ', '.join(sorted(procs))  # AttnProcessor2_0 is SDPA; AttnProcessor where PyTorch lacks it
    vae = build(AutoencoderKL, TINY_VAE if args.tiny else RELEASED_VAE) if 'video' in scenarios else None
    text = None
    if 'video' in scenarios and args.torch1:
        res['text_encoder'] = 'not measured: transformers is a stand-in under --torch1'
    elif 'video' in scenarios:
        try:
            from transformers import CLIPTextConfig, CLIPTextModel
            text = build(lambda **c: CLIPTextModel(CLIPTextConfig(**c)), TINY_TEXT if args.tiny else RELEASED_TEXT)
        except Exception as e:  # Debian's torch 1.13 has no transformers: the video row then says so
            res['text_encoder'] = f'not measured: {str(e).splitlines()[0][:120] or type(e).__name__}'
    sync()
    res['build_s'] = time.perf_counter() - t0
    print(f'diffusers {diffusers.__version__}, torch {torch.__version__}, {res["device"]}, {args.dtype}, '
          f'UNet {res["unet_params"] / 1e6:.1f} M parameters, attention {res["attention"]}', flush=True)

    lh, lw = args.height // 8, args.width // 8
    x1 = torch.randn(1, 4, args.frames, lh, lw, device=dev, dtype=dtype)
    x2 = torch.cat([x1, x1])
    ctx2 = torch.randn(2, 77, 1024, device=dev, dtype=dtype)
    ctx1 = ctx2[1:].contiguous()
    t_dev = torch.tensor(500, device=dev)
    ids = torch.tensor([[49406, 320, 1929, 49407] + [0] * 73, [49406, 49407] + [0] * 75], device=dev)

    def call(m, x, t, c):
        return m(x, t, encoder_hidden_states=c, return_dict=False)[0]

    def time_calls(fn, runs: int, warmup: int = 2) -> dict:
        for _ in range(warmup):
            fn()
        sync()
        ms = []
        for _ in range(runs):
            t1 = time.perf_counter()
            fn()
            sync()
            ms.append((time.perf_counter() - t1) * 1000)
        return summary(ms)

    def make_callers(mode: str):
        """(batch-1 call, batch-2 call) for one way of running, each taking (x, t, ctx) of its batch."""
        if mode == 'eager':
            return (lambda x, t, c: call(unet, x, t, c)), (lambda x, t, c: call(unet, x, t, c))
        if mode == 'compile':
            if not hasattr(torch, 'compile'):
                raise NotImplementedError(f'torch.compile needs PyTorch 2 (this is {torch.__version__})')
            cu = torch.compile(unet, mode='reduce-overhead', dynamic=False)
            mark = getattr(getattr(torch, 'compiler', None), 'cudagraph_mark_step_begin', None)

            def f(x, t, c):
                if mark:
                    mark()  # each call is a new step of cudagraph trees: the last output is consumed by then
                return call(cu, x, t, c)
            return f, f
        if not cuda:
            raise NotImplementedError('CUDA graphs need a CUDA device')
        pool = torch.cuda.graph_pool_handle()
        made = []

        def capture(x, c):
            sx, sc, st = x.clone(), c.clone(), t_dev.clone()
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    call(unet, sx, st, sc)
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g, pool=pool):
                out = call(unet, sx, st, sc)
            made.append(g)

            def replay(x_, t_, c_):
                if x_ is not sx:
                    sx.copy_(x_)
                if c_ is not sc:
                    sc.copy_(c_)
                st.copy_(t_)
                g.replay()
                return out
            return replay
        return capture(x1, ctx1), capture(x2, ctx2)

    def video(b2) -> dict:
        sched = DDIMScheduler.from_config(SCHEDULER)
        sched.set_timesteps(args.steps)
        steps_t = [torch.tensor(int(t), device=dev) for t in sched.timesteps]
        lat2 = torch.empty_like(x2)
        sync()
        t1 = time.perf_counter()
        if text is not None:
            ctx = text(ids)[0].to(dtype)
            ctx = torch.cat([ctx[1:], ctx[:1]])  # [uncond, cond], as the pipeline orders them
        else:
            ctx = ctx2
        sync()
        t2 = time.perf_counter()
        lat = torch.randn(x1.shape, device=dev, dtype=dtype)
        for t, td in zip(sched.timesteps, steps_t):
            lat2[0].copy_(lat[0])
            lat2[1].copy_(lat[0])
            eps = b2(lat2, td, ctx)
            u, c = eps.chunk(2)
            lat = sched.step(u + args.guidance * (c - u), int(t), lat).prev_sample
        sync()
        t3 = time.perf_counter()
        z = lat[0].permute(1, 0, 2, 3) / VAE_SCALE  # [frames, 4, h, w]: the frames decoded as a batch
        frames = vae.decode(z, return_dict=False)[0]
        frames = (frames * 0.5 + 0.5).clamp(0, 1)
        sync()
        t4 = time.perf_counter()
        return {'total': (t4 - t1) * 1000, 'text': (t2 - t1) * 1000 if text is not None else None,
                'denoise': (t3 - t2) * 1000, 'decode': (t4 - t3) * 1000}

    for mode in modes:
        r: dict = {}
        res['modes'][mode] = r
        try:
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            with torch.no_grad():
                t1 = time.perf_counter()
                b1, b2 = make_callers(mode)
                # first calls: CUDA graph capture, or torch.compile's compilation
                if 'unet-call' in scenarios:
                    b1(x1, t_dev, ctx1)
                b2(x2, t_dev, ctx2)
                sync()
                r['first_calls_s'] = time.perf_counter() - t1
                if 'unet-call' in scenarios:
                    r['unet_call'] = time_calls(lambda: b1(x1, t_dev, ctx1), args.runs)
                if 'guided-step' in scenarios:
                    r['guided_step'] = time_calls(lambda: b2(x2, t_dev, ctx2), args.runs)
                if 'video' in scenarios:
                    video(b2)  # warm-up: the scheduler's and the VAE's kernels
                    vids = [video(b2) for _ in range(args.video_runs)]
                    r['video'] = {k: summary([v[k] for v in vids]) if vids[0][k] is not None else None for k in vids[0]}
            if cuda:
                r['peak_bytes'] = torch.cuda.max_memory_allocated()
                # the caching allocator's segments (what it holds, live or free): the counterpart of t2v's pool
                r['reserved_bytes'] = torch.cuda.max_memory_reserved()
            msg = ', '.join(f'{k} {v["median"]:.1f} ms' for k, v in r.items() if isinstance(v, dict) and 'median' in v)
            if 'video' in r:
                msg += f', video {r["video"]["total"]["median"] / 1000:.2f} s'
            print(f'{mode}: {msg}', flush=True)
        except NotImplementedError as e:
            r['skipped'] = str(e)
            print(f'{mode}: skipped ({e})', flush=True)
        except Exception as e:  # one way failing leaves the others their figures
            r['error'] = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'[:300]
            print(f'{mode}: failed: {r["error"]}', flush=True)
            traceback.print_exc()
        finally:
            b1 = b2 = None
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
        with open(args.out + '.tmp', 'w') as f:
            json.dump(res, f, indent=1)
        os.replace(args.out + '.tmp', args.out)


if __name__ == '__main__':
    main()
