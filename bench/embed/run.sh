#!/bin/bash
# bench/embed/run.sh - CLIP engine speed against Debian's PyTorch on the same random weights.
# Generates full-size ViT-B/32 and ViT-B/16 CLIP models, and SigLIP B/16-224 ("siglip") and
# SigLIP 2 B/16-224 ("siglip2", 256000-piece Gemma tokenizer.json) on request (both towers,
# real HF layout) into $OUT (default /tmp/shoebox-bench-embed, not committed), then measures:
#   image tower images/s at batch 1 and 16, fp32 and bf16; text query latency (median ms).
# shoebox: build-perf/bench/bench_embed (cmake --build BUILD --target bench_embed), THREADS
# compute threads; torch: /usr/bin/python3 (python3-torch) with THREADS threads and Debian's
# OpenMP OpenBLAS (the pthread build makes torch 3-5x slower and would flatter us).
# usage: bench/embed/run.sh [BUILD_DIR] [SECONDS]      env: OUT, THREADS (2), MODELS ("b32 b16";
#        also siglip, siglip2: torch side bench/embed/torch_siglip.py), BASE (another build
#        folder, e.g. of the previous commit: adds its pool-mode figure as a column "base-pool",
#        measured alongside, so a before/after ratio comes from one run)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-perf}
SECS=${2:-3}
OUT=${OUT:-/tmp/shoebox-bench-embed}
THREADS=${THREADS:-2}
MODELS=${MODELS:-"b32 b16"}
BENCH=$BUILD/bench/bench_embed
BASE=${BASE:-}
OMPBLAS=/usr/lib/x86_64-linux-gnu/openblas-openmp
[ -x "$BENCH" ] || { echo "build $BENCH first" >&2; exit 1; }
[ -z "$BASE" ] || [ -x "$BASE/bench/bench_embed" ] || { echo "build $BASE/bench/bench_embed" >&2; exit 1; }
[ -d "$OMPBLAS" ] || { echo "apt-get install libopenblas0-openmp (for torch)" >&2; exit 1; }
# shellcheck disable=SC2086  # MODELS is a list
/usr/bin/python3 "$ROOT/bench/embed/gen_models.py" "$OUT" $MODELS

sb() { # model precision mode batch(0 = text) [bench binary] -> value
    "${5:-$BENCH}" "$OUT/$1" "$2" "$THREADS" "$3" "$4" "$SECS" |
        awk '/^images/{print $3} /^text/{print $2}'
}
base() { # model precision batch -> the BASE build's pool figure, or -
    if [ -n "$BASE" ]; then sb "$1" "$2" pool "$3" "$BASE/bench/bench_embed"; else echo -; fi
}
pt() { # model precision images|text batch -> value
    local script=torch_clip.py
    case $1 in siglip*) script=torch_siglip.py ;; esac
    THREADS=$THREADS OMP_NUM_THREADS=$THREADS LD_LIBRARY_PATH=$OMPBLAS \
        /usr/bin/python3 "$ROOT/bench/embed/$script" "$OUT/$1" "$2" "$3" "$4" "$SECS" |
        awk '/^images/{print $3} /^text/{print $2}'
}

printf "%-7s %-5s %-16s %12s %12s %12s %12s %8s\n" model prec what shoebox-pool shoebox-lib \
    base-pool torch "pool/torch"
for m in $MODELS; do
    for p in fp32 bf16; do
        for b in 1 16; do
            a=$(sb "$m" "$p" pool "$b"); l=$(sb "$m" "$p" lib "$b"); o=$(base "$m" "$p" "$b")
            t=$(pt "$m" "$p" images "$b")
            printf "%-7s %-5s %-16s %12s %12s %12s %12s %8.2f\n" "$m" "$p" "images/s b$b" "$a" "$l" \
                "$o" "$t" "$(echo "$a / $t" | bc -l)"
        done
        a=$(sb "$m" "$p" pool 0); l=$(sb "$m" "$p" lib 0); o=$(base "$m" "$p" 0)
        t=$(pt "$m" "$p" text -)
        printf "%-7s %-5s %-16s %12s %12s %12s %12s %8.2f\n" "$m" "$p" "text ms (median)" "$a" "$l" \
            "$o" "$t" "$(echo "$t / $a" | bc -l)"
    done
done
echo "(text: the ratio is torch ms / shoebox ms; images: shoebox / torch. THREADS=$THREADS)"
