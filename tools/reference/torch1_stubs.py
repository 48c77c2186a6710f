"""Lets diffusers' source import on Debian's PyTorch 1.13 without transformers, huggingface_hub, safetensors,
tokenizers, accelerate or httpx (none of which the fixture run needs: models are built from their configs and
loaded by load_safetensors below, the text tower runs in diffusers_schedulers_reference.py, token ids are given).
Missing modules become empty stand-ins, torch gets the few attributes diffusers touches at import time. Used by
diffusers_schedulers_reference.py --torch1; not needed where PyTorch 2 and transformers exist.
"""
import json
import os
import tempfile
import importlib.abc, importlib.machinery, sys, types

STUB = ('huggingface_hub', 'transformers', 'safetensors', 'accelerate', 'tokenizers', 'httpx')

class _Any(str):
    def __new__(cls, name='stub'):
        return str.__new__(cls, os.path.join(tempfile.gettempdir(), 't2v-hf-stub'))
    def __call__(self, *a, **k):
        return _Any()
    def __getattr__(self, k):
        return _Any()

def _mk(name):
    class Dummy:
        def __init__(self, *a, **k): pass
        def __init_subclass__(cls, **k): pass
    Dummy.__name__ = name
    return Dummy

class Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.split('.')[0] in STUB:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None
    def create_module(self, spec):
        m = types.ModuleType(spec.name)
        m.__path__ = []
        def ga(k):
            if k.startswith('__'):
                raise AttributeError(k)
            if k.isupper():
                return _Any()
            return _mk(k)
        m.__getattr__ = ga
        m.__version__ = '99.0.0'
        return m
    def exec_module(self, module):
        pass

sys.meta_path.insert(0, Finder())

# distribution metadata, so that diffusers' availability checks see the stand-ins as installed
_META = os.path.join(tempfile.gettempdir(), 't2v-torch1-meta')
for _n, _v in (('transformers', '4.99.0'), ('huggingface_hub', '0.99.0'), ('safetensors', '0.9.0')):
    _d = os.path.join(_META, f'{_n}-{_v}.dist-info')
    os.makedirs(_d, exist_ok=True)
    with open(os.path.join(_d, 'METADATA'), 'w') as _f:
        _f.write(f'Metadata-Version: 2.1\nName: {_n}\nVersion: {_v}\n')
sys.path.append(_META)

import torch as _torch
class _NS:
    def __getattr__(self, k):
        if k.startswith('__'):
            raise AttributeError(k)
        return lambda *a, **kw: False
for _n in ('xpu', 'mps', 'mtia', 'npu'):
    if not hasattr(_torch, _n):
        setattr(_torch, _n, _NS())
    else:
        _m = getattr(_torch, _n)
        for _f in ('empty_cache', 'device_count', 'manual_seed', 'reset_peak_memory_stats', 'max_memory_allocated', 'synchronize', 'is_available', 'current_device'):
            if not hasattr(_m, _f):
                setattr(_m, _f, lambda *a, **kw: False)
class _FakeDtype:
    def __init__(self, n): self.n = n
    def __repr__(self): return 'torch.' + self.n
for _d in ('uint1', 'uint2', 'uint3', 'uint4', 'uint5', 'uint6', 'uint7', 'uint16', 'uint32', 'uint64', 'float8_e4m3fn', 'float8_e5m2', 'int4'):
    if not hasattr(_torch, _d):
        setattr(_torch, _d, _FakeDtype(_d))
import torch.distributed as _dist
if not hasattr(_dist, 'device_mesh'):
    _dist.device_mesh = types.SimpleNamespace(DeviceMesh=type('DeviceMesh', (), {}))
class TorchFallback(Finder):
    def find_spec(self, fullname, path, target=None):
        if fullname.startswith('torch.') and not fullname.startswith('torch._dynamo'):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None
sys.meta_path.append(TorchFallback())
if not hasattr(_torch, 'compiler'):
    _torch.compiler = types.SimpleNamespace(disable=lambda f=None, **k: (f if f is not None else (lambda g: g)),
                                            is_compiling=lambda: False, is_dynamo_compiling=lambda: False)


def load_safetensors(path):
    """A .safetensors file as a dict of float32 torch tensors (numpy reads the format: 8-byte header size, JSON, data)."""
    import numpy as np
    with open(path, 'rb') as f:
        n = int.from_bytes(f.read(8), 'little')
        header = json.loads(f.read(n))
        data = f.read()
    dt = {'F16': np.float16, 'F32': np.float32, 'BF16': None, 'F64': np.float64, 'I64': np.int64}
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        arr = np.frombuffer(data[a:b], dtype=dt[v['dtype']]).reshape(v['shape'])
        out[k] = _torch.from_numpy(arr.astype(np.float32).copy())
    return out

# diffusers' AttnProcessor scores are baddbmm(torch.empty(...), q, k^T, beta=0): PyTorch 1.13 on the CPU lets NaNs in
# that uninitialised input through, so beta 0 is taken as a plain scaled bmm here
_baddbmm = _torch.baddbmm


def _baddbmm_beta0(input, batch1, batch2, *, beta=1, alpha=1, out=None):
    if beta == 0 and out is None:
        return _torch.bmm(batch1, batch2) * alpha
    return _baddbmm(input, batch1, batch2, beta=beta, alpha=alpha, out=out)


_torch.baddbmm = _baddbmm_beta0
