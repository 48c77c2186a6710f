#!/usr/bin/env bash
# The device tool sends the working tree plus carried folders, 64 MiB a call; the test fixtures take most of it, so
# the packed runtime (.gpu/ from ../shared/gpu/pack.sh: Node, Dawn, the bundle) travels as one xz tarball split into
# parts, one git-ignored folder .gs<i>/ per part, carried over consecutive calls (the warm host keeps them).
# Usage: bench/stage.sh [PART_MiB]      then carry .gs1, .gs2, ... in turn and run bench/host.sh on the host.
set -euo pipefail
part=${1:-10}
root=$(git rev-parse --show-toplevel); cd "$root"
for d in .gs1 .gs2 .gs3 .gs4 .gs5; do grep -qx "/$d/" .git/info/exclude || echo "/$d/" >> .git/info/exclude; done
rm -rf .gs[0-9]*
tmp=$(mktemp -d)
xz -d < .gpu/node.xz > "$tmp/node"; chmod +x "$tmp/node"
tar -C .gpu -cf - app gl run.sh -C "$tmp" node | xz -T2 -6 > "$tmp/payload.tar.xz"
split -b "${part}M" -d -a 1 "$tmp/payload.tar.xz" "$tmp/part."
i=1; for f in "$tmp"/part.*; do mkdir -p ".gs$i"; mv "$f" ".gs$i/payload.part"; i=$((i + 1)); done
rm -rf "$tmp"
du -sh .gs* | sed 's/^/staged: /'
