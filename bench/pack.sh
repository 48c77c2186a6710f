#!/usr/bin/env bash
# Packs the benchmark for a GPU host: ../shared/gpu/pack.sh bench/gpu.ts (Node, Dawn, the Vulkan loader, the bundle in
# .gpu/), then beside the bundle the PyTorch side's script, diffusers' source as an archive (from DIFFUSERS_SRC: a
# folder holding diffusers/ or src/diffusers/, or a git directory of huggingface/diffusers) and tfjs's .wasm files.
# Usage, from the project root:  DIFFUSERS_SRC=... bench/pack.sh       then on the host:  bash .gpu/run.sh bench OUT
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
"${T2V_SHARED:-../shared}"/gpu/pack.sh bench/gpu.ts   # T2V_SHARED: where shared/ is, if not beside the checkout
app=.gpu/app
cp bench/diffusers_unet.py "$app/"
mkdir -p "$app/wasm" && cp node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm "$app/wasm/"
src=${DIFFUSERS_SRC:-}
rm -f "$app"/diffusers-src.tar*
if [ -z "$src" ]; then
  echo "DIFFUSERS_SRC unset: no diffusers source packed (the torch scenario then needs --diffusers on the host)"
elif git --git-dir="$src" rev-parse --verify -q HEAD >/dev/null 2>&1; then
  git --git-dir="$src" archive HEAD src/diffusers | xz -T2 -6 > "$app/diffusers-src.tar.xz"
elif [ -d "$src/diffusers" ]; then
  tar -C "$src" -cf - --exclude=__pycache__ diffusers | xz -T2 -6 > "$app/diffusers-src.tar.xz"
elif [ -d "$src/src/diffusers" ]; then
  tar -C "$src/src" -cf - --exclude=__pycache__ diffusers | xz -T2 -6 > "$app/diffusers-src.tar.xz"
else
  echo "DIFFUSERS_SRC=$src holds no diffusers package" >&2; exit 1
fi
du -sh .gpu | sed "s/^/packed: /"; ls -sh "$app"/diffusers-src.tar.xz 2>/dev/null || true
