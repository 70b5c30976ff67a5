#!/bin/bash
# bench/embed/isa.sh - the fp32 image tower and text query as CPUs without AVX-512 run them,
# on this machine: SHOEBOX_MAX_ISA (shoebox/util.h) caps shoebox's own kernels, and
# OPENBLAS_CORETYPE=Haswell makes OpenBLAS use its AVX2 kernels too. Rows: "c" (no hand-written
# SIMD: what an AVX2 CPU ran before clip_avx2.c), "avx2", and this CPU uncapped; ROUNDS rounds
# in turns, so the ratios come from one run.
# usage: bench/embed/isa.sh [BUILD_DIR] [MODEL_DIR] [ROUNDS]   (models: bench/embed/run.sh's OUT)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-perf}
MODEL=${2:-/tmp/shoebox-bench-embed/siglip}
ROUNDS=${3:-2}
BENCH=$BUILD/bench/bench_embed
[ -x "$BENCH" ] || { echo "build $BENCH first" >&2; exit 1; }
[ -f "$MODEL/config.json" ] || { echo "no model in $MODEL (bench/embed/run.sh makes them)" >&2; exit 1; }
printf "%-6s %-22s %16s %16s\n" round isa "fp32 b16 img/s" "fp32 text ms"
for r in $(seq "$ROUNDS"); do
    for isa in c avx2 avx512; do
        core=Haswell
        [ "$isa" = avx512 ] && core=
        img=$(SHOEBOX_MAX_ISA=$isa OPENBLAS_CORETYPE=$core "$BENCH" "$MODEL" fp32 2 pool 16 3 |
            awk '/^images/{print $3}')
        txt=$(SHOEBOX_MAX_ISA=$isa OPENBLAS_CORETYPE=$core "$BENCH" "$MODEL" fp32 2 pool 0 3 |
            awk '/^text/{print $2}')
        printf "%-6s %-22s %16s %16s\n" "$r" "$isa${core:+ (BLAS $core)}" "$img" "$txt"
    done
done
