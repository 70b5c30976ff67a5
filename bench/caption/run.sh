#!/usr/bin/env bash
# Decoder LM speed: shoebox's lm runtime vs Debian's PyTorch on the same random SmolLM2-135M-
# shaped weights (the SmolVLM-256M decoder), prefill of 100 tokens and 32 decode steps.
# Usage: bench/caption/run.sh BUILD_DIR [THREADS] [DTYPE]   (DTYPE BF16 | F16 | F32)
set -euo pipefail
build="$1"
threads="${2:-2}"
dtype="${3:-BF16}"
here="$(cd "$(dirname "$0")" && pwd)"
model="${TMPDIR:-/tmp}/shoebox-bench-lm-$dtype"
[ -f "$model/model.safetensors" ] || /usr/bin/python3 "$here/gen_bench_lm.py" "$model" "$dtype"
echo "== shoebox ($threads threads, $dtype weights) =="
"$build/bench/bench_lm" "$model" "$threads" 100 32
echo "== torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') ($threads threads, f32) =="
/usr/bin/python3 "$here/torch_lm.py" "$model" "$threads" 100 32
