#!/usr/bin/env bash
# Run 31 on the GPU host, after bench/host.sh: tilings of the tensor-core GEMM (split-K among them) chosen by GPU time
# inside a batch-1 UNet call (bench/tiles.ts), then bench/gpu.ts step with the split-K variant (its batch-1 profile).
# Run 32: the same with split-K by default (VARIANTS="never split|run 29").
set -uo pipefail
out=$1
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export T2V_DAWN_FLAGS="enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness disable-dawn-features=timestamp_quantization"
filter() { grep -v -i 'deprecated\|^ *-\|^$\|warning\|Compilation log\|Reached the WGSL\|^ \|subgroupMatrix'; }
mkdir -p "$out/tiles" "$out/step"
(cd /tmp/t2v-gpu/app && timeout 300 ../node main.mjs tiles "$out/tiles" 1 0 2>&1 | filter | tail -60)
(cd /tmp/t2v-gpu/app && timeout 250 ../node main.mjs step "$out/step" 50 ${GENS:-0} "${VARIANTS:-split}" 2>&1 | filter | tail -40)
gzip -f "$out/step/batch1.cpuprofile" 2>/dev/null || true
