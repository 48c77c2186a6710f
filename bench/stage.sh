#!/usr/bin/env bash
# For a transfer with a size limit (the device tool sends at most 64 MiB a call, the tree included): .gpu/ from
# bench/pack.sh as one xz tarball split into parts, one git-ignored folder .gs<i>/ per part, carried over consecutive
# calls; on the host bench/host.sh joins them into /tmp/t2v-gpu, a copy of .gpu/ (docs/gpu.md).
# Usage: bench/stage.sh [PART_MiB]
set -euo pipefail
part=${1:-10}
root=$(git rev-parse --show-toplevel); cd "$root"
[ -f .gpu/run.sh ] || { echo "stage.sh: no .gpu/ here: run bench/pack.sh first" >&2; exit 1; }
rm -rf .gs[0-9]*
tmp=$(mktemp -d)
tar -C .gpu -cf - . | xz -T2 -3 > "$tmp/payload.tar.xz"
split -b "${part}M" -d -a 1 "$tmp/payload.tar.xz" "$tmp/part."
i=1; for f in "$tmp"/part.*; do mkdir -p ".gs$i"; mv "$f" ".gs$i/payload.part"; i=$((i + 1)); done
rm -rf "$tmp"
du -sh .gs* | sed 's/^/staged: /'
