#!/usr/bin/env bash
# Run 14 on the GPU host, after bench/host.sh unpacked the runtime (docs/gpu.md): the tensor-core tilings of the
# UNet's GEMMs with the UNet call and whole generations before and after (bench/tiles.ts; run 14 itself timed each
# shape alone, since replaced by GPU times inside the call), then PyTorch's figures on the same machine
# (bench/torch_unet.py, batch 1 and 2). Each step has its own time limit.
set -uo pipefail
out=$1; root=$(cd "$(dirname "$0")/.." && pwd)
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
(cd /tmp/t2v-gpu/app && timeout 400 ../node main.mjs tiles "$out" 2 50 2>&1 | grep -v -i 'deprecated\|^ *-\|^$' | tail -60)
(cd "$root" && timeout 150 python3 bench/torch_unet.py --ref .ref --out "$out/torch.json" > "$out/torch.log" 2>&1; tail -c 1500 "$out/torch.log")
