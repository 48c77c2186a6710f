"""OpenCLIP text tower parity fixtures -> test/fixtures/clip/<config>/.

T2V_REF=/tmp/ref /usr/bin/python3 tools/reference/make_clip_fixtures.py

For each small configuration: an open_clip CLIP model (a tiny image tower beside the text tower, as in the
released open_clip_pytorch_model.bin) with every parameter random, saved as a state_dict; token ids from
open_clip.tokenize for a few prompts (the empty one included); and the text features ModelScope's
FrozenOpenCLIPEmbedder(layer='penultimate').encode_with_transformer computes from them.

Size trick: every large 2-D weight is saved as a strided view (row stride 3) of a small random storage, so the
file stays small while every row still differs; the model computes with exactly those values.
"""
import ast
import json
import math
import os
import sys

import _ref
import numpy as np
import open_clip
import torch
from open_clip import tokenizer as oc_tok
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

CONFIGS = {
    # the width the UNet's cross-attention needs; two blocks run
    'w1024': dict(width=1024, heads=16, layers=3, seed=11),
    # narrow and three blocks deep
    'w128': dict(width=128, heads=2, layers=4, seed=12),
}
PROMPTS = [
    'A panda eating bamboo on a rock, cinematic lighting',
    '',
    'Astronaut riding a horse on Mars, 4k \u2014 caf\u00e9 \u4e2d\u6587 \U0001F600 &amp; more',
    ' '.join(['a very long prompt that goes on'] * 12),
]
ROW_STRIDE = 3


def frozen_embedder_class():
    """ModelScope's FrozenOpenCLIPEmbedder, taken from its file without importing the modelscope package."""
    path = os.path.join(_ref.REF, 'modelscope', 'models', 'multi_modal', 'video_synthesis',
                        'text_to_video_synthesis_model.py')
    tree = ast.parse(open(path, encoding='utf-8').read())
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == 'FrozenOpenCLIPEmbedder')
    ns = {'torch': torch, 'open_clip': open_clip}
    exec(compile(ast.Module(body=[node], type_ignores=[]), path, 'exec'), ns)
    return ns['FrozenOpenCLIPEmbedder']


@torch.no_grad()
def compact_state_dict(model: torch.nn.Module, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed + 1000)
    sd = model.state_dict()
    for name, p in model.named_parameters():
        if p.dim() == 2 and p.numel() > 8192 and p.shape[1] >= ROW_STRIDE:
            rows, cols = p.shape
            base = torch.randn(ROW_STRIDE * (rows - 1) + cols, generator=g) / math.sqrt(cols)
            view = base.as_strided((rows, cols), (ROW_STRIDE, 1))
            p.copy_(view)
            sd[name] = view
    return sd


def main() -> None:
    vocab = os.path.join(_ref.ROOT, '..', 'shared', 'clip-tokenizer', 'bpe_simple_vocab_16e6.txt.gz')
    if os.path.exists(vocab):
        oc_tok._tokenizer = oc_tok.SimpleTokenizer(vocab)
    tokens = open_clip.tokenize(PROMPTS)
    Embedder = frozen_embedder_class()
    for name, c in CONFIGS.items():
        torch.manual_seed(c['seed'])
        model = CLIP(
            embed_dim=64,
            vision_cfg=CLIPVisionCfg(layers=1, width=64, head_width=32, patch_size=16, image_size=32),
            text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=c['width'], heads=c['heads'],
                                 layers=c['layers']),
        )
        _ref.randomize(model, c['seed'])
        sd = compact_state_dict(model, c['seed'])
        out_dir = os.path.join(_ref.FIXTURES, 'clip', name)
        os.makedirs(out_dir, exist_ok=True)
        ckpt = os.path.join(out_dir, 'open_clip_pytorch_model.bin')
        torch.save(sd, ckpt)

        emb = Embedder.__new__(Embedder)
        torch.nn.Module.__init__(emb)
        emb.model, emb.device, emb.max_length, emb.layer, emb.layer_idx = model, 'cpu', 77, 'penultimate', 1
        with torch.no_grad():
            out = emb.encode_with_transformer(tokens)
            # the saved file must reproduce the numbers
            reloaded = torch.load(ckpt)
            model.load_state_dict(reloaded)
            again = emb.encode_with_transformer(tokens)
        assert torch.equal(out, again), 'checkpoint does not reproduce the model'
        _ref.save_npy(os.path.join(out_dir, 'tokens.npy'), tokens.to(torch.int32))
        _ref.save_npy(os.path.join(out_dir, 'penultimate.npy'), out)
        with open(os.path.join(out_dir, 'prompts.json'), 'w') as f:
            json.dump(PROMPTS, f, indent=1)
        with open(os.path.join(out_dir, 'config.json'), 'w') as f:
            json.dump({'context_length': 77, 'vocab_size': 49408, 'width': c['width'], 'heads': c['heads'],
                       'layers': c['layers'] - 1, 'mlp_width': 4 * c['width'], 'layer_norm_eps': 1e-5}, f, indent=1)
        size = os.path.getsize(ckpt)
        print(f'{name}: {out.shape} max|out| {out.abs().max():.3f}, checkpoint {size / 1e6:.2f} MB')


if __name__ == '__main__':
    main()
