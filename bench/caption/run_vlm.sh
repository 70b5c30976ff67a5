#!/usr/bin/env bash
# Seconds per caption: shoebox's vlm (image processor + SigLIP tower + pixel shuffle +
# projection, prefill, 30 generated tokens) vs Debian's PyTorch on the same random
# SmolVLM-256M-shaped weights (BF16 file; torch computes in f32). shoebox runs twice: the
# vision tower and projector in fp32, then in bf16 (oneDNN; runs fp32 where unavailable), the
# bf16 run also with batch=8 (8 photos' decode steps together, as index's captions stage).
# Usage: bench/caption/run_vlm.sh BUILD_DIR [THREADS] [NEW_TOKENS]
set -euo pipefail
build="$1"
threads="${2:-2}"
n="${3:-30}"
here="$(cd "$(dirname "$0")" && pwd)"
model="${TMPDIR:-/tmp}/shoebox-bench-smolvlm256"
[ -f "$model/model.safetensors" ] || /usr/bin/python3 "$here/gen_bench_vlm.py" "$model"
for precision in fp32 bf16; do
    echo "== shoebox ($threads threads, BF16 weights, vision tower and projector in $precision) =="
    batch=()
    [ "$precision" = bf16 ] && batch=(batch=8) # also 8 photos decoded together, as index does
    "$build/bench/bench_vlm" "$model" "$threads" "$n" "$precision" "${batch[@]}"
done
echo "== torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') ($threads threads, f32) =="
/usr/bin/python3 "$here/torch_vlm.py" "$model" "$threads" "$n"
