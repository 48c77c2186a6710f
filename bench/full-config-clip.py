"""Upstream half of bench/full-config-clip.ts: the ViT-H-14 text tower at full size with random weights.

T2V_REF=/tmp/ref /usr/bin/python3 bench/full-config-clip.py WORK_DIR [VOCAB]
Writes WORK_DIR/open_clip_pytorch_model.bin (every parameter random; a one-block image tower stands in for
ViT-H-14's, which the text path never touches), tokens.npy (open_clip.tokenize of a prompt and ""),
penultimate.npy (FrozenOpenCLIPEmbedder(layer='penultimate').encode_with_transformer) and timing.json.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tools', 'reference'))
import _ref  # noqa: E402
import make_clip_fixtures as fx  # noqa: E402
import open_clip  # noqa: E402
import torch  # noqa: E402
from open_clip import tokenizer as oc_tok  # noqa: E402
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg  # noqa: E402

PROMPTS = ['A panda eating bamboo on a rock, cinematic lighting, 4k', '']


def main() -> None:
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    if len(sys.argv) > 2:
        oc_tok._tokenizer = oc_tok.SimpleTokenizer(sys.argv[2])
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    t0 = time.perf_counter()
    model = CLIP(
        embed_dim=1024,  # ViT-H-14
        vision_cfg=CLIPVisionCfg(layers=1, width=64, head_width=32, patch_size=14, image_size=28),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=1024, heads=16, layers=24),
    )
    _ref.randomize(model, 2024)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    torch.save(model.state_dict(), os.path.join(work, 'open_clip_pytorch_model.bin'))
    save_s = time.perf_counter() - t0

    Embedder = fx.frozen_embedder_class()
    emb = Embedder.__new__(Embedder)
    torch.nn.Module.__init__(emb)
    emb.model, emb.device, emb.max_length, emb.layer, emb.layer_idx = model, 'cpu', 77, 'penultimate', 1
    tokens = open_clip.tokenize(PROMPTS)
    with torch.no_grad():
        emb.encode_with_transformer(tokens)  # warm-up
        t0 = time.perf_counter()
        out = emb.encode_with_transformer(tokens)
        forward_s = time.perf_counter() - t0
    _ref.save_npy(os.path.join(work, 'tokens.npy'), tokens.to(torch.int32))
    _ref.save_npy(os.path.join(work, 'penultimate.npy'), out)
    text_params = sum(p.numel() for n, p in model.named_parameters() if not n.startswith('visual.'))
    timing = {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'text_params': text_params,
              'build_s': build_s, 'save_s': save_s, 'forward_s': forward_s, 'prompts': PROMPTS}
    with open(os.path.join(work, 'timing.json'), 'w') as f:
        json.dump(timing, f, indent=1)
    print(json.dumps(timing))


if __name__ == '__main__':
    main()
