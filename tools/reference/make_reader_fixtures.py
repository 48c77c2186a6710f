"""Small checkpoints for the reader tests (test/readers.test.ts), written by PyTorch itself, plus a family of
malicious pickles. Run with the Debian PyTorch: /usr/bin/python3 tools/reference/make_reader_fixtures.py
Needs no upstream sources. Nothing here executes a payload: the payloads are only pickled.

Writes test/fixtures/readers/:
  <case>.pth|.bin|.safetensors    the checkpoints
  <case>/<tensor name>.npy        each tensor's expected values as float32
  expected.json                   {case: {file, tensors: {name: {dtype, shape}}}}
  malicious.json                  {file: the global the reader must name when refusing it}
"""
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import zipfile
import zlib
from collections import OrderedDict

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'readers')
MARKER = '/tmp/t2v-reader-marker-'  # a payload that ran would create MARKER + case; the test checks it does not

g = torch.Generator().manual_seed(1234)


def randn(*shape):
    return torch.randn(*shape, generator=g)


def dtype_name(t):
    return str(t.dtype).replace('torch.', '')


expected = {}


def record(case, file, tensors):
    """Saves each tensor's values (as float32) beside the checkpoint, and its dtype and shape."""
    d = os.path.join(OUT, case)
    os.makedirs(d, exist_ok=True)
    meta = {}
    for name, t in tensors.items():
        np.save(os.path.join(d, name + '.npy'), t.detach().to(torch.float32).contiguous().numpy())
        meta[name] = {'dtype': dtype_name(t), 'shape': list(t.shape)}
    expected[case] = {'file': file, 'tensors': meta}


def save_torch(case, file, obj, tensors):
    torch.save(obj, os.path.join(OUT, file))
    record(case, file, tensors)


def dtypes_case():
    sd = OrderedDict()
    sd['f32'] = randn(3, 4)
    sd['f16'] = randn(2, 5).half()
    sd['bf16'] = randn(3, 3).bfloat16()
    sd['f64'] = randn(4).double()
    sd['i64'] = torch.arange(-3, 5, dtype=torch.int64)
    sd['i32'] = torch.arange(6, dtype=torch.int32).reshape(2, 3)
    sd['u8'] = torch.arange(250, 256, dtype=torch.uint8)
    sd['bool'] = torch.tensor([True, False, True])
    sd['scalar'] = torch.tensor(2.5)
    sd['empty'] = torch.zeros(0, 3)
    sd['f16_special'] = torch.tensor([0.0, -0.0, 65504.0, 6.1e-5, 6e-8, float('inf'), -float('inf')]).half()
    save_torch('dtypes', 'dtypes.pth', sd, sd)


def views_case():
    big = randn(10, 4)
    other = randn(6, 5)
    small = randn(40)
    sd = OrderedDict()
    sd['big'] = big
    sd['rows_3_7'] = big[3:7]             # offset 12, contiguous
    sd['row_2'] = big[2]                  # shares big's storage
    sd['column_1'] = big[:, 1]            # stride 4
    sd['transposed'] = other.t()          # non-contiguous
    sd['permuted'] = randn(2, 3, 4).permute(2, 0, 1)
    sd['stepped'] = other[::2, 1::2]      # offset and two strides
    sd['expanded'] = randn(3, 1).expand(3, 4)  # stride 0
    # The agreed fixture-size trick: a big tensor that is a strided view of a small storage.
    sd['overlapping'] = small.as_strided((10, 8), (3, 1), 2)
    sd['param'] = torch.nn.Parameter(randn(2, 2))
    save_torch('views', 'views.pth', sd, sd)


def wrapped_case():
    """The released VQGAN layout: {'state_dict': {...}, other keys}; the module state_dict carries _metadata."""
    net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.GroupNorm(1, 3), torch.nn.Linear(3, 2))
    inner = OrderedDict(('first_stage_model.' + k, v) for k, v in net.state_dict().items())
    inner._metadata = net.state_dict()._metadata
    obj = {
        'epoch': 7,
        'global_step': 123456,
        'pytorch-lightning_version': '1.4.2',
        'state_dict': inner,
        'optimizer_states': [{'state': {0: {'exp_avg': randn(3)}}, 'param_groups': [{'lr': 1e-4, 'params': [0]}]}],
        'lr_schedulers': [],
        'loss': randn(1),
    }
    save_torch('wrapped', 'wrapped.pth', obj, inner)


def fake_class(module, name):
    """A stand-in class pickled under another library's name (pytorch_lightning is not installed here)."""
    import sys
    import types
    parts = module.split('.')
    for i in range(1, len(parts) + 1):
        sys.modules.setdefault('.'.join(parts[:i]), types.ModuleType('.'.join(parts[:i])))
    cls = type(name, (), {'__module__': module})
    setattr(sys.modules[module], name, cls)
    return cls


def lightning_case():
    """A whole training checkpoint: Lightning callbacks keyed by their class, numpy scalars and arrays beside the
    state_dict. The reader keeps them as inert placeholders and returns the state_dict's tensors."""
    ModelCheckpoint = fake_class('pytorch_lightning.callbacks.model_checkpoint', 'ModelCheckpoint')
    cb = ModelCheckpoint()
    cb.monitor = 'val/loss'
    sd = OrderedDict([('model.w', randn(4, 2)), ('model.b', randn(2).half()), ('model.step', 5)])
    obj = {
        'epoch': 11,
        'global_step': np.int64(4242),
        'state_dict': sd,
        'callbacks': {ModelCheckpoint: {'best_model_score': np.float64(0.25), 'best_model_path': 'x.ckpt'}},
        'callback_instance': cb,
        'hparams': {'scale': np.float32(0.18215), 'arr': np.arange(3)},
    }
    save_torch('lightning', 'lightning.ckpt', obj, OrderedDict((k, v) for k, v in sd.items() if torch.is_tensor(v)))


def bin_case():
    net = torch.nn.Sequential(torch.nn.Embedding(16, 4), torch.nn.LayerNorm(4))
    sd = net.state_dict()
    save_torch('model_bin', 'model.bin', sd, sd)


def safetensors_case():
    """Written by hand (no safetensors package here): the format is simple enough."""
    tensors = OrderedDict()
    tensors['w.f32'] = randn(3, 2)
    tensors['w.f16'] = randn(4).half()
    tensors['w.bf16'] = randn(2, 2).bfloat16()
    tensors['w.f64'] = randn(2).double()
    tensors['w.i64'] = torch.arange(4, dtype=torch.int64)
    tensors['w.scalar'] = torch.tensor(-1.5)
    codes = {torch.float32: 'F32', torch.float16: 'F16', torch.bfloat16: 'BF16', torch.float64: 'F64', torch.int64: 'I64'}
    header = {'__metadata__': {'format': 'pt'}}
    data = b''
    # Deliberately not in data order in the JSON: the reader orders entries by offset.
    for name in reversed(tensors):
        t = tensors[name]
        raw = t.contiguous().view(torch.uint8).numpy().tobytes() if t.dim() else t.reshape(1).view(torch.uint8).numpy().tobytes()
        header[name] = {'dtype': codes[t.dtype], 'shape': list(t.shape), 'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(os.path.join(OUT, 'hand.safetensors'), 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + data)
    record('safetensors', 'hand.safetensors', OrderedDict((n, tensors[n]) for n in reversed(tensors)))


def proto4_case():
    """torch.save's default is pickle protocol 2; protocol 4 adds FRAME, MEMOIZE and STACK_GLOBAL."""
    base = randn(5, 3)
    sd = OrderedDict([('a', base), ('a_t', base.t()), ('b', randn(2).half()), ('c', torch.nn.Parameter(randn(3)))])
    torch.save(sd, os.path.join(OUT, 'proto4.pth'), pickle_protocol=4)
    record('proto4', 'proto4.pth', sd)


def zip64_case():
    """The dtypes checkpoint re-packed with ZIP64 records everywhere (the released files are > 4 GB)."""
    with zipfile.ZipFile(os.path.join(OUT, 'dtypes.pth')) as z:
        items = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    out = io.BytesIO()
    central = b''
    for name, data in items:
        nb = name.encode()
        crc = zlib.crc32(data)
        off = out.tell()
        extra = struct.pack('<HHQQ', 1, 16, len(data), len(data))
        out.write(struct.pack('<IHHHHHIIIHH', 0x04034b50, 45, 0, 0, 0, 0, crc, 0xffffffff, 0xffffffff, len(nb), len(extra)))
        out.write(nb + extra + data)
        cextra = struct.pack('<HHQQQ', 1, 24, len(data), len(data), off)
        central += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 45, 45, 0, 0, 0, 0, crc, 0xffffffff, 0xffffffff,
                               len(nb), len(cextra), 0, 0, 0, 0, 0xffffffff) + nb + cextra
    cd_off = out.tell()
    out.write(central)
    z64 = out.tell()
    out.write(struct.pack('<IQHHIIQQQQ', 0x06064b50, 44, 45, 45, 0, 0, len(items), len(items), len(central), cd_off))
    out.write(struct.pack('<IIQI', 0x07064b50, 0, z64, 1))
    out.write(struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, 0xffff, 0xffff, 0xffffffff, 0xffffffff, 0))
    with open(os.path.join(OUT, 'zip64.pth'), 'wb') as f:
        f.write(out.getvalue())
    expected['zip64'] = {'file': 'zip64.pth', 'tensors': expected['dtypes']['tensors'], 'npy': 'dtypes'}


def legacy_case():
    """The pre-1.6 format (`_use_new_zipfile_serialization=False`): pickles, then raw storages."""
    big = randn(6, 4)
    sd = OrderedDict([('w', randn(3, 2)), ('big', big), ('rows', big[2:5]), ('t', big.t()), ('h', randn(5).half()),
                      ('bf', randn(2).bfloat16()), ('d', randn(3).double()), ('p', torch.nn.Parameter(randn(2)))])
    torch.save({'state_dict': sd, 'epoch': 1}, os.path.join(OUT, 'legacy.pth'), _use_new_zipfile_serialization=False)
    record('legacy', 'legacy.pth', sd)
    small = OrderedDict([('a', randn(2, 3)), ('b', randn(4).half())])
    torch.save(small, os.path.join(OUT, 'legacy_p4.pth'), _use_new_zipfile_serialization=False, pickle_protocol=4)
    record('legacy_p4', 'legacy_p4.pth', small)


def plain_pickles():
    """Plain data pickled with protocols 2 to 5, and the same data as JSON: checks each opcode the unpickler reads."""
    shared = [7, 8]
    data = {
        'ints': [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**31, -2**53 + 1, 2**53 - 1, 2**62, -2**70, 2**100],
        'float': [1.5, -0.0, 1e300, 2.0**-1074], 'str': ['', 'héllo ✓', 'x' * 300], 'bytes': [b'', b'\x00\xff', b'y' * 300],
        'tuples': [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)], 'none': None, 'bools': [True, False],
        'dicts': [{}, {'k': {'k2': [[], ()]}}, {1: 'int key'}], 'sets': [{1}, frozenset([2])],
        'shared': [shared, shared], 'long_list': list(range(1500)), 'many_strings': [str(i) for i in range(300)],
    }

    def plain(v):
        if isinstance(v, bool) or v is None or isinstance(v, (float, str)):
            return v
        if isinstance(v, int):
            return v if abs(v) <= 2**53 - 1 else {'big': str(v)}
        if isinstance(v, bytes):
            return {'bytes': list(v)}
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return [plain(x) for x in v]

    cases = {f'protocol{p}': pickle.dumps(data, protocol=p).hex() for p in (2, 3, 4, 5)}
    # The pickles inside two torch.save files, for fuzzing the unpickler on its own.
    for case in ('lightning.ckpt', 'views.pth'):
        with zipfile.ZipFile(os.path.join(OUT, case)) as z:
            cases['torch:' + case] = z.read([n for n in z.namelist() if n.endswith('/data.pkl')][0]).hex()
    # -0.0 and tiny floats survive JSON as numbers; the test compares with Object.is.
    with open(os.path.join(OUT, 'plain_pickles.json'), 'w') as f:
        json.dump({'pickles': cases, 'expected': plain(data)}, f)


# ---- malicious pickles ---------------------------------------------------------------------------------------

class Reduce:
    """Pickles as `func(*args)`: the classic payload shape."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class Payload:
    """A plain class instance: unpickling it would import __main__ and call its constructor machinery."""

    def __init__(self):
        self.cmd = 'touch ' + MARKER + 'payload_class'


def raw_torch_zip(path, pkl):
    """A zip laid out like torch.save's, holding the given data.pkl (and no storages)."""
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
        z.writestr('archive/data.pkl', pkl)
        z.writestr('archive/byteorder', 'little')
        z.writestr('archive/version', '3\n')


def malicious_cases():
    found = {}

    def torch_saved(case, obj, name):
        torch.save(obj, os.path.join(OUT, f'evil_{case}.pth'))
        found[f'evil_{case}.pth'] = name

    def raw(case, pkl, name):
        raw_torch_zip(os.path.join(OUT, f'evil_{case}.pth'), pkl)
        found[f'evil_{case}.pth'] = name

    def cmd(case):
        return 'touch ' + MARKER + case

    w = randn(2)
    # Written by torch.save itself: os.system pickles as posix.system on Linux, and protocol 2 writes the
    # Python 2 names (__builtin__.eval, commands.Popen), which is what the reader must name.
    torch_saved('posix_system', {'w': w, 'x': Reduce(os.system, (cmd('posix_system'),))}, 'posix.system')
    torch_saved('builtins_eval', {'x': Reduce(eval, (f"open('{MARKER}builtins_eval', 'w')",)), 'w': w}, '__builtin__.eval')
    torch_saved('builtins_exec', {'x': Reduce(exec, (f"open('{MARKER}builtins_exec', 'w')",))}, '__builtin__.exec')
    torch_saved('subprocess_popen', {'x': Reduce(subprocess.Popen, (['touch', MARKER + 'subprocess_popen'],))}, 'commands.Popen')
    torch_saved('getattr', {'x': Reduce(getattr, (Reduce(__import__, ('os',)), 'system'))}, '__builtin__.getattr')
    torch_saved('payload_class', {'w': w, 'x': Payload()}, '__main__.Payload')
    torch_saved('nested', {'state_dict': OrderedDict([('w', w), ('deep', [{'a': (1, Reduce(os.system, (cmd('nested'),)))}])])},
                'posix.system')
    torch_saved('in_wrapper_sibling', {'state_dict': {'w': w}, 'callbacks': {'cb': Reduce(os.system, (cmd('in_wrapper_sibling'),))}},
                'posix.system')

    # Hand-written pickles: literal names, other opcodes.
    def g(mod, name):
        return b'c' + mod.encode() + b'\n' + name.encode() + b'\n'

    def s(text):
        b = text.encode()
        return b'X' + struct.pack('<I', len(b)) + b

    # Whole models instead of state_dicts, in both formats.
    torch_saved('whole_module', torch.nn.Linear(2, 2), 'torch.nn.modules.linear.Linear')
    torch.save(torch.nn.Linear(2, 2), os.path.join(OUT, 'evil_whole_module_legacy.pth'), _use_new_zipfile_serialization=False)
    found['evil_whole_module_legacy.pth'] = 'torch.nn.modules.linear.Linear'

    raw('os_system', b'\x80\x02' + g('os', 'system') + s(cmd('os_system')) + b'\x85R.', 'os.system')
    raw('stack_global', b'\x80\x04' + s('os') + s('system') + b'\x93' + s(cmd('stack_global')) + b'\x85R.', 'os.system')
    raw('inst', b'(' + s(cmd('inst')) + b'ios\nsystem\n.', 'os.system')
    raw('obj', b'\x80\x02(' + g('collections', 'OrderedDict') + b'o.', 'collections.OrderedDict')
    raw('newobj', b'\x80\x02' + g('collections', 'OrderedDict') + b')\x81.', 'collections.OrderedDict')
    # Allowed globals called in ways a state_dict never does.
    raw('call_storage_type', b'\x80\x02' + g('torch', 'FloatStorage') + b'K\x03\x85R.', 'torch.FloatStorage')
    raw('build_on_global', b'\x80\x02' + g('torch._utils', '_rebuild_tensor_v2') + b'}b.', 'torch._utils._rebuild_tensor_v2')
    raw('load_from_bytes', b'\x80\x02' + g('torch.storage', '_load_from_bytes') + b'C\x01x\x85R.', 'torch.storage._load_from_bytes')
    raw('ext', b'\x80\x02\x82\x01.', 'extension')
    raw('global_in_dict', b'\x80\x02}(' + s('w') + g('builtins', 'eval') + s('x') + b'N' + b'u.', 'builtins.eval')
    with open(os.path.join(OUT, 'malicious.json'), 'w') as f:
        json.dump(found, f, indent=1)


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    dtypes_case()
    views_case()
    wrapped_case()
    bin_case()
    lightning_case()
    safetensors_case()
    proto4_case()
    zip64_case()
    legacy_case()
    malicious_cases()
    plain_pickles()
    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump(expected, f, indent=1)
    total = sum(os.path.getsize(os.path.join(dp, n)) for dp, _, ns in os.walk(OUT) for n in ns)
    print(f'wrote {OUT} ({total} bytes)')


if __name__ == '__main__':
    main()
