"""Times the upstream ModelScope UNetSD (PyTorch) on the GPU host, beside our WebGPU bench, so ratios come from one
machine. The upstream sources travel in a git-ignored folder (--ref, holding vs/unet_sd.py and einops/); weights are
random, in the released configuration. Writes a JSON file.

  python3 bench/torch_unet.py --ref .ref --out $OUT/torch.json [--runs 10] [--device cuda]
"""
import argparse
import importlib.util
import json
import math
import statistics
import sys
import time

import torch

RELEASED = dict(in_dim=4, dim=320, y_dim=768, context_dim=1024, out_dim=4, dim_mult=[1, 2, 4, 4], num_heads=8,
                head_dim=64, num_res_blocks=2, attn_scales=[1, 0.5, 0.25], dropout=0.1, temporal_attention=True)
UNET_TFLOP = 4.89


def load_unet_module(ref):
    sys.path.insert(0, ref)
    spec = importlib.util.spec_from_file_location('unet_sd', f'{ref}/vs/unet_sd.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sync(dev):
    if dev == 'cuda':
        torch.cuda.synchronize()


def time_call(fn, dev, runs, warmup=2):
    for _ in range(warmup):
        fn()
    sync(dev)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--ref', default='.ref')
    ap.add_argument('--out', required=True)
    ap.add_argument('--runs', type=int, default=10)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--frames', type=int, default=16)
    ap.add_argument('--size', type=int, default=32, help='latent height and width')
    ap.add_argument('--dim', type=int, default=320)
    args = ap.parse_args()
    dev = args.device
    res = {'torch': torch.__version__, 'device': dev}
    if dev == 'cuda':
        res['gpu'] = torch.cuda.get_device_name(0)
    mod = load_unet_module(args.ref)
    torch.manual_seed(0)
    cfg = dict(RELEASED, dim=args.dim)
    model = mod.UNetSD(**cfg).to(dev).eval()
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            if p.dim() > 1:
                p.normal_(0, 1 / math.sqrt(fan_in))
            else:
                p.normal_(0, 0.05)
    res['params'] = sum(p.numel() for p in model.parameters())
    x = torch.randn(1, 4, args.frames, args.size, args.size, device=dev)
    t = torch.tensor([500], device=dev)
    y = torch.randn(1, 77, 1024, device=dev)
    res['shape'] = dict(frames=args.frames, size=args.size, dim=args.dim)

    def call():
        with torch.no_grad():
            return model(x, t, y)

    modes = {}
    if dev == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.cuda.reset_peak_memory_stats()
        modes['fp32'] = time_call(call, dev, args.runs)
        res['peak_bytes_fp32'] = torch.cuda.max_memory_allocated()
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        modes['tf32'] = time_call(call, dev, args.runs)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

        def call16():
            with torch.no_grad(), torch.autocast('cuda', dtype=torch.float16):
                return model(x, t, y)
        modes['fp16_autocast'] = time_call(call16, dev, args.runs)
        # output error of the fast modes against fp32 (TF32 off), relative to the largest value: our tensor-core
        # path is measured the same way against our fp32 (bench/tensor-cores.ts)
        ref = call().double()
        rel = lambda o: float((o.double() - ref).abs().max() / ref.abs().max())
        res['rel_err_fp16_autocast_vs_fp32'] = rel(call16())
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        res['rel_err_tf32_vs_fp32'] = rel(call())
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        # 100 calls = 50 DDIM steps with guidance, fp16 as upstream runs it
        t0 = time.perf_counter()
        for _ in range(100):
            call16()
        sync(dev)
        res['ms_100_calls_fp16'] = (time.perf_counter() - t0) * 1000
        # batch 2: one DDIM step with guidance as one call (what our pipeline does on webgpu), each mode
        x2, t2, y2 = torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, y])

        def call_b2(half=False):
            with torch.no_grad(), torch.autocast('cuda', dtype=torch.float16, enabled=half):
                return model(x2, t2, y2)
        b2 = {'fp32': time_call(call_b2, dev, args.runs)}
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        b2['tf32'] = time_call(call_b2, dev, args.runs)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        b2['fp16_autocast'] = time_call(lambda: call_b2(True), dev, args.runs)
        t0 = time.perf_counter()
        for _ in range(50):
            call_b2(True)
        sync(dev)
        b2['ms_50_calls_fp16'] = (time.perf_counter() - t0) * 1000
        res['ms_batch2'] = b2
        # attention alone, upstream's einsum path vs SDPA, level-0 spatial self-attention shape
        q = torch.randn(80, 1024, 64, device=dev)
        k = torch.randn(80, 1024, 64, device=dev)
        v = torch.randn(80, 1024, 64, device=dev)

        def einsum_attn():
            s = torch.einsum('b i d, b j d -> b i j', q, k) * 0.125
            return torch.einsum('b i j, b j d -> b i d', s.softmax(-1), v)
        res['attn_L0_einsum_fp32_ms'] = time_call(einsum_attn, dev, args.runs)
        res['attn_L0_sdpa_fp32_ms'] = time_call(
            lambda: torch.nn.functional.scaled_dot_product_attention(q[None], k[None], v[None]), dev, args.runs)
        xg = torch.randn(16, 320, 32, 32, device=dev)
        gn = torch.nn.GroupNorm(32, 320).to(dev)
        res['groupnorm_silu_16x320x32x32_ms'] = time_call(
            lambda: torch.nn.functional.silu(gn(xg)), dev, args.runs)
    else:
        modes['fp32'] = time_call(call, dev, args.runs, warmup=1)
    res['ms'] = modes
    res['tflops'] = {m: UNET_TFLOP / ms * 1000 for m, ms in modes.items()} if args.dim == 320 and args.size == 32 \
        and args.frames == 16 else None
    print(json.dumps(res, indent=1))
    with open(args.out, 'w') as f:
        json.dump(res, f, indent=1)


if __name__ == '__main__':
    main()
