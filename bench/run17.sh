#!/usr/bin/env bash
# Run 17 on the GPU host, after bench/host.sh unpacked the runtime (docs/gpu.md): `bench/gpu.ts step` (one guided
# step, GPU time by kernel and GEMM shape, 50-step generations) once per set of Dawn toggles, each in its own process
# (toggles are fixed when Dawn starts). Every set leaves timestamp quantization off, so the kernel times are exact.
# Usage: bench/run17.sh OUT [SETS]   SETS: a space-separated subset of "base norobust noval both robustonly" (default:
# the first four; run 18: "norobust" = today's DAWN_FLAGS, then "robustonly" with GENS=0); STEPS, GENS: bench/gpu.ts step's
set -uo pipefail
out=$1
sets=${2:-base norobust noval both}
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
base=allow_unsafe_apis,vulkan_enable_f16_on_nvidia
for s in $sets; do
  case $s in
    base) on=$base ;;
    norobust) on=$base,disable_robustness,disable_workgroup_init ;;
    noval) on=$base,skip_validation ;;
    both) on=$base,disable_robustness,disable_workgroup_init,skip_validation ;;
    robustonly) on=$base,disable_robustness ;;
    *) echo "unknown set $s"; continue ;;
  esac
  echo "== $s"
  mkdir -p "$out/$s"
  (cd /tmp/t2v-gpu/app && T2V_DAWN_FLAGS="enable-dawn-features=$on disable-dawn-features=timestamp_quantization" \
    timeout 300 ../node main.mjs step "$out/$s" ${STEPS:-50} ${GENS:-2} 2>&1 | grep -v -i 'deprecated\|^ *-\|^$' | grep -v "^  " | tail -20)
done
