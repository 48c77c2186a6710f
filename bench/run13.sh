#!/usr/bin/env bash
# Run 13 on the GPU host (docs/gpu.md "Running it on the H100"), after bench/host.sh has unpacked the runtime:
#   bench/run13.sh parity OUT   the 50-step parity (bench/parity.ts; its wasm reference in a second process while
#                               PyTorch's UNet benchmark runs), then PyTorch's figures (bench/torch_unet.py)
#   bench/run13.sh tc OUT       tensor-core ops, the UNet call fp32 and tensor cores (profile, dispatches, CPU
#                               encode time, submit batches), whole generations fp32 and tensor cores
# Each step has its own time limit so that what finished is kept.
set -uo pipefail
mode=$1; out=$2; root=$(cd "$(dirname "$0")/.." && pwd)
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export T2V_WASM_DIR=$root/.gsapp
app=/tmp/t2v-gpu/app; node=/tmp/t2v-gpu/node
fix=$root/test/fixtures/e2e; vocab=$root/.ref/bpe_simple_vocab_16e6.txt.gz
mkdir -p "$out"
cd $app
case $mode in
  parity)
    # the small model's wasm reference: carried from an earlier run (.ref/parity-small-wasm.*) or made now
    if [ -f "$root/.ref/parity-small-wasm.f32" ]; then cp "$root"/.ref/parity-small-wasm.* "$out/"; ref=
    else timeout 280 $node main.mjs parity-ref "$out" "$fix" "$vocab" 50 > "$out/parity-ref.out" 2>&1 & ref=$!; fi
    (cd "$root" && timeout 200 python3 bench/torch_unet.py --ref .ref --out "$out/torch.json" > "$out/torch.log" 2>&1)
    [ -n "$ref" ] && wait $ref
    timeout 280 $node main.mjs parity "$out" "$fix" "$vocab" 50 2>&1 | grep -v -i 'deprecated\|^ *-\|^$' | tail -40
    tail -5 "$out/torch.log"; cat "$out/parity-ref.log" 2>/dev/null ;;
  tc)
    timeout 560 $node main.mjs tc "$out" x pipeline 2>&1 | grep -v -i 'deprecated\|^ *-\|^$' | tail -80 ;;
esac
