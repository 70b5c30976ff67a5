#!/usr/bin/env bash
# Seconds per caption with Moondream 2-shaped random weights (F16, 1.87 B parameters, the
# 2025-01-09 layout): shoebox's vlm (crops + tower + projection, prefill of 735 rows, N
# generated tokens) vs Debian's PyTorch (float32) in the same run, on a synthetic photo
# (default 378x378: one 1 x 1 tiling, 2 crops; 640x480 tiles 2 x 4, 9 crops).
# Usage: bench/caption/run_moondream.sh BUILD_DIR [THREADS] [NEW_TOKENS] [WxH]
set -euo pipefail
build="$1"
threads="${2:-2}"
n="${3:-30}"
size="${4:-378x378}"
here="$(cd "$(dirname "$0")" && pwd)"
model="${TMPDIR:-/tmp}/shoebox-bench-moondream2"
[ -f "$model/model.safetensors" ] || /usr/bin/python3 "$here/gen_bench_moondream.py" "$model"
echo "== shoebox ($threads threads, F16 weights) =="
"$build/bench/bench_vlm" "$model" "$threads" "$n" "$size"
echo "== torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') ($threads threads, f32) =="
/usr/bin/python3 "$here/torch_moondream.py" "$model" "$threads" "$n" "$size"
