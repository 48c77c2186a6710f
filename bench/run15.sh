#!/usr/bin/env bash
# Run 15 on the GPU host, after bench/host.sh unpacked the runtime (docs/gpu.md): each webgpu step on and off in one
# process (bench/variants.ts: fp32, tensor-core GEMMs, + packed q|k|v, + tensor-core attention), UNet calls at batch
# 2 and 1, then 50-step generations. The parity and PyTorch figures come from `bench/run13.sh parity OUT`.
set -uo pipefail
out=$1
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
cd /tmp/t2v-gpu/app && timeout 420 ../node main.mjs variants "$out" 50 2>&1 | grep -v -i 'deprecated\|^ *-\|^$' | tail -50
