#!/usr/bin/env bash
# On the GPU host, after the staged parts arrived (bench/stage.sh; docs/gpu.md): joins /tmp/stage/part* (or the
# .gs*/ folders when all are present) into /tmp/t2v-gpu once, installs the Vulkan loader, and copies a newer bundle
# from .gsapp/ if carried. Then: cd /tmp/t2v-gpu/app && ../node main.mjs MODE $OUT [args]
set -euo pipefail
dest=/tmp/t2v-gpu
if [ ! -x $dest/node ]; then
  mkdir -p $dest
  if ls /tmp/stage/part* >/dev/null 2>&1; then cat /tmp/stage/part*; else cat .gs[0-9]*/payload.part; fi | xz -d | tar -x -C $dest
fi
[ -f .gsapp/main.mjs ] && cp .gsapp/main.mjs $dest/app/main.mjs
for f in $dest/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
echo "export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}"
