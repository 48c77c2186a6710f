#!/usr/bin/env bash
# Run 19 on the GPU host, after bench/host.sh unpacked the runtime (docs/gpu.md): today's defaults measured whole
# (bench/gpu.ts step under DAWN_FLAGS with timestamp quantization off: calls, GPU time by kernel and GEMM shape,
# batch 1's GPU time and a CPU profile of its JavaScript side, the 128-row tiling and tensor-core attention on and
# off, two 50-step generations), then the parity bench and PyTorch's figures (bench/run13.sh parity). Everything
# lands in OUT/NAME.tgz (the device tool returns at most 8 files), the two logs also beside it.
# Usage: bench/run19.sh OUT [NAME]   (NAME: run19; run 20 ran it again as run20)
set -uo pipefail
out=$1; name=${2:-run19}; root=$(cd "$(dirname "$0")/.." && pwd); tmp=/tmp/$name
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
mkdir -p $tmp/step
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee $tmp/gpu.txt
(cd /tmp/t2v-gpu/app && T2V_DAWN_FLAGS="enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness disable-dawn-features=timestamp_quantization" \
  timeout 400 ../node main.mjs step $tmp/step ${STEPS:-50} ${GENS:-2} "${VARIANTS:-}" 2>&1 | grep -v -i 'deprecated\|^ *-\|^$\|warning\|Compilation log\|Reached the WGSL\|^ \|subgroupMatrix' | tail -30)
bash "$root/bench/run13.sh" parity $tmp/parity 2>&1 | grep -E "vs |fp32|tf32|fp16|took|steps on" | tail -40
cp $tmp/step/step.log "$out/step.log"; cp $tmp/parity/parity.log "$out/parity.log" 2>/dev/null
tar -C $tmp -czf "$out/$name.tgz" .
