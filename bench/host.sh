#!/usr/bin/env bash
# On the GPU host: joins the staged parts (bench/stage.sh) into /tmp/t2v-gpu once, installs the Vulkan loader, and
# prints where node is. Then: /tmp/t2v-gpu/node /tmp/t2v-gpu/app/main.mjs MODE OUTDIR
set -euo pipefail
dest=/tmp/t2v-gpu
if [ ! -x $dest/node ]; then
  mkdir -p $dest
  cat .gs[0-9]*/payload.part | xz -d | tar -x -C $dest
fi
for f in $dest/gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
echo "$dest/node $($dest/node --version)"
