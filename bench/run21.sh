#!/usr/bin/env bash
# Run 21 on the GPU host, after bench/host.sh (docs/gpu.md): bench/gpu.ts step alone under DAWN_FLAGS (timestamp
# quantization off), one 50-step generation; K steps of 64 became the default for 128-wide tiles here. Run 22:
# GENS=0 VARIANTS=unrolled, with a variant since removed (the attention kernel written out with constant indices).
set -uo pipefail
out=$1
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
mkdir -p "$out/step"
(cd /tmp/t2v-gpu/app && T2V_DAWN_FLAGS="enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia,disable_robustness disable-dawn-features=timestamp_quantization" \
  timeout 400 ../node main.mjs step "$out/step" 50 ${GENS:-1} "${VARIANTS:-}" 2>&1 | grep -v -i 'deprecated\|^ *-\|^$\|warning\|Compilation log\|Reached the WGSL\|^ \|subgroupMatrix' | tail -30)
gzip -f "$out/step/batch1.cpuprofile" 2>/dev/null || true
