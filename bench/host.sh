#!/usr/bin/env bash
# On the GPU host, once the parts from bench/stage.sh are there (in /tmp/stage/part*, or as the carried .gs*/ folders):
# joins them into /tmp/t2v-gpu, a copy of .gpu/, unless it is there already. Then:  bash /tmp/t2v-gpu/run.sh bench OUT
set -euo pipefail
dest=/tmp/t2v-gpu
if [ ! -f $dest/run.sh ]; then
  mkdir -p $dest
  if ls /tmp/stage/part* >/dev/null 2>&1; then cat /tmp/stage/part*; else cat .gs[0-9]*/payload.part; fi | xz -d | tar -x -C $dest
fi
echo "ready: bash $dest/run.sh bench OUT [options]"
