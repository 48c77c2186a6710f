#!/usr/bin/env bash
# Lavapipe (Mesa's Vulkan on the CPU) for the WebGPU tests, unpacked into a private folder, nothing installed:
# Debian 12's Mesa 22 is too old for Dawn, Mesa 25 from bookworm-backports works (docs/gpu.md). apt resolves
# mesa-vulkan-drivers against what this system has and downloads what is missing or too old; each .deb is unpacked
# with dpkg -x. Reused when already unpacked. T2V_LAVAPIPE_DIR picks the folder (default .lavapipe in the checkout).
#   bash .ci/lavapipe.sh               prints the environment as export lines (eval "$(bash .ci/lavapipe.sh)")
#   bash .ci/lavapipe.sh CMD ARGS...   runs CMD in it
# A failure is one line on stderr ("lavapipe: ...") and exit 1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
DIR=${T2V_LAVAPIPE_DIR:-$HERE/.lavapipe}
case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac
ROOT=$DIR/root
LIB=$ROOT/usr/lib/x86_64-linux-gnu
ICD=$ROOT/usr/share/vulkan/icd.d/lvp_icd.json
LOG=$DIR/apt.log

fail() { echo "lavapipe: $*" >&2; exit 1; }

[ "$(uname -m)" = x86_64 ] || fail "only x86_64 is handled (this is $(uname -m))"
command -v apt-get >/dev/null && command -v dpkg >/dev/null || fail "needs apt-get and dpkg (Debian 12)"

if [ ! -f "$DIR/ready" ]; then
  mkdir -p "$DIR/apt/lists/partial" "$DIR/apt/cache/archives/partial"
  printf '%s\n' 'deb http://deb.debian.org/debian bookworm main' \
    'deb http://deb.debian.org/debian bookworm-backports main' > "$DIR/apt/sources.list"
  # private lists, sources and cache; the system's dpkg status, read only, so that only what is missing is fetched
  o=(-o "Dir::State::Lists=$DIR/apt/lists" -o "Dir::Etc::SourceList=$DIR/apt/sources.list"
     -o Dir::Etc::SourceParts=/dev/null -o "Dir::Cache=$DIR/apt/cache" -o Debug::NoLocking=1
     -o Acquire::Languages=none -o APT::Install-Recommends=false -o APT::Get::Download-Only=true)
  echo "lavapipe: fetching Mesa's Vulkan drivers from bookworm-backports into $DIR" >&2
  why() { grep -m1 '^[WE]:' "$LOG" || tail -n1 "$LOG"; }
  apt-get "${o[@]}" -q update >"$LOG" 2>&1 || fail "apt-get update failed: $(why)"
  if grep -q '^[WE]: Failed to fetch' "$LOG"; then fail "apt-get update could not fetch the lists: $(why)"; fi
  apt-get "${o[@]}" -q -y install mesa-vulkan-drivers/bookworm-backports >>"$LOG" 2>&1 \
    || fail "apt-get could not download mesa-vulkan-drivers from bookworm-backports: $(why)"
  debs=("$DIR"/apt/cache/archives/*.deb)
  [ -e "${debs[0]}" ] || fail "apt-get downloaded nothing (see $LOG)"
  rm -rf "$ROOT.part"
  for f in "${debs[@]}"; do dpkg -x "$f" "$ROOT.part" || fail "dpkg -x $f failed"; done
  [ -f "$ROOT.part/usr/share/vulkan/icd.d/lvp_icd.json" ] || fail "no lvp_icd.json in the unpacked packages"
  # the ICD names its library bare (found through the loader's search path): make it absolute
  sed -i "s#\"library_path\": *\"[^\"]*libvulkan_lvp.so\"#\"library_path\": \"$LIB/libvulkan_lvp.so\"#" \
    "$ROOT.part/usr/share/vulkan/icd.d/lvp_icd.json"
  rm -rf "$ROOT" && mv "$ROOT.part" "$ROOT"
  rm -f "$DIR"/apt/cache/archives/*.deb "$DIR"/apt/cache/*.bin
  ls "$ROOT"/usr/share/doc > "$DIR/ready"
fi

grep -q "\"$LIB/libvulkan_lvp.so\"" "$ICD" || fail "$ICD does not point at $LIB/libvulkan_lvp.so (remove $DIR and rerun)"
missing=$(LD_LIBRARY_PATH=$LIB ldd "$LIB/libvulkan_lvp.so" | awk '/not found/ { print $1 }' | tr '\n' ' ')
[ -z "$missing" ] || fail "libvulkan_lvp.so needs libraries this system lacks: $missing(remove $DIR and rerun)"

export VK_ICD_FILENAMES=$ICD
export LD_LIBRARY_PATH=$LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
export T2V_WEBGPU_SOFTWARE=1 T2V_REQUIRE_WEBGPU=1
# no disable_robustness: lavapipe runs unclamped shaders minutes per kernel instead of milliseconds
export T2V_DAWN_FLAGS=enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia
if [ $# -gt 0 ]; then exec "$@"; fi
for v in VK_ICD_FILENAMES LD_LIBRARY_PATH XDG_RUNTIME_DIR T2V_WEBGPU_SOFTWARE T2V_REQUIRE_WEBGPU T2V_DAWN_FLAGS; do
  printf 'export %s=%q\n' "$v" "${!v}"
done
