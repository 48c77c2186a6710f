"""Shared set-up for the fixture generators: upstream sources on sys.path, randomization, .npy output."""
import math
import os
import sys

import numpy as np
import torch

REF = os.environ.get('T2V_REF')
if not REF:
    sys.exit('set T2V_REF to the folder with the upstream sources (see tools/reference/README.md)')
for p in (os.path.join(REF, 'modelscope', 'models', 'multi_modal', 'video_synthesis'),
          os.path.join(REF, 'src'), REF, os.path.join(REF, 'stubs')):
    sys.path.insert(0, p)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, 'test', 'fixtures')


@torch.no_grad()
def randomize(module: torch.nn.Module, seed: int) -> None:
    """Every parameter random: upstream zero-initializes output layers, which would hide whole branches."""
    g = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        leaf = name.rsplit('.', 1)[-1]
        if p.dim() >= 2:
            fan_in = p[0].numel()
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
        elif 'norm' in name or leaf == 'weight':
            p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.05 * torch.randn(p.shape, generator=g))
    module.eval()


def save_npy(path: str, t) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    a = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    if a.dtype == np.float64:
        a = a.astype(np.float32)
    np.save(path, np.ascontiguousarray(a))
