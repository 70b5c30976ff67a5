#!/usr/bin/env bash
# bench/search: the floor (merely reading the 1M-row codes' bytes, bench_stream); the 6-bit
# kernels alone (ns per row from cache and from memory, 4 KiB and 2 MiB pages); the vector scan
# at 100k and 1M 512-d vectors (fp16, and 6-bit codes + exact fp16 rescoring; isotropic
# Gaussian data and CLIP-like clustered data), against numpy doing rclip's scan in the same
# run; then `shoebox search "text"` end to end from a cold process on a 100k-photo catalog,
# model loading included, with a full-size random ViT-B/32 (tools/gen_clip.py --bench).
# SHOEBOX_SEARCH_KERNEL=portable|avx2|avx512vnni forces the scan's kernel.
# Usage: bench/search/run.sh [BUILD]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
build="$(cd "${1:-$root/build}" && pwd)"
work="${SHOEBOX_BENCH_DIR:-/tmp/shoebox-bench-search}"
mkdir -p "$work"
threads=$(nproc)
cc -O2 -I"$root/include" "$here/bench_search.c" -o "$work/bench_search" \
    "$build/libsb_search.a" "$build/libsb_model.a" "$build/libsb_catalog.a" \
    "$build/libsb_image.a" "$build/libsb_base.a" \
    $(pkg-config --libs sqlite3 openblas libcjson libutf8proc libcurl libturbojpeg libpng libwebp \
      libwebpdemux libheif libtiff-4 libraw_r libexif lcms2 libgif) \
    $( [ -e /usr/lib/x86_64-linux-gnu/libdnnl.so ] && echo -ldnnl ) -lm -lpthread
cc -O2 -I"$root/include" "$here/bench_dot6.c" -o "$work/bench_dot6" "$build/libsb_search.a" \
    "$build/libsb_base.a" -lm -lpthread
cc -O2 "$here/bench_stream.c" -o "$work/bench_stream" -lpthread

echo "== the floor: reading 378 MiB (the 1M-row codes), AVX-512 loads and adds only =="
"$work/bench_stream" 378 "$threads" 9

echo "== pass-1 kernels alone, one thread =="
"$work/bench_dot6"

echo "== scan: in-process latency, $threads threads, k = 20 =="
for n in ${SCAN_SIZES:-100000 1000000}; do
    "$work/bench_search" "$n" 512 "$threads"
    "$work/bench_search" "$n" 512 "$threads" --clustered
    /usr/bin/python3 "$here/numpy_scan.py" "$n" 512
done
case " ${SCAN_SIZES:-100000 1000000} " in *" 1000000 "*)
    echo "-- the 1M gaussian scan again, the matrix in 4 KiB pages (what a plain malloc gets) --"
    SHOEBOX_BENCH_PAGES=4k "$work/bench_search" 1000000 512 "$threads" | grep 6-bit ;;
esac

echo "== end to end: shoebox search \"text\" from a cold process, 100k photos =="
# a full-size random ViT-B/32 (text tower included), as bench/embed makes it
model="${SHOEBOX_BENCH_MODEL:-/tmp/sbemb/b32}"
if [ ! -f "$model/model.safetensors" ]; then
    /usr/bin/python3 "$root/bench/embed/gen_models.py" "$(dirname "$model")" >/dev/null
fi
db="$work/cat100k/catalog.db"
if [ ! -f "$db" ]; then
    "$work/bench_search" 100000 512 1 --catalog "$db" "$model"
fi
"$build/shoebox" --db "$db" search "warm up the cache file" -n 1 >/dev/null 2>&1 || true
# the scan on the store's matrix as the CLI holds it (the cache file mapped) and as the server
# holds it (vec_store_resident)
"$work/bench_search" 0 0 "$threads" --store "$db"
times=()
for i in $(seq 1 9); do
    t0=$(date +%s%N)
    "$build/shoebox" --db "$db" search "a dog on a beach at sunset" -n 20 --min-score -1 >/dev/null
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "shoebox search \"a dog on a beach at sunset\" (100k photos, ViT-B/32 text tower): median ${sorted[4]} ms, max ${sorted[8]} ms"
ls -l "$(dirname "$db")/cache/" | awk 'NR>1 {printf "vector cache file: %.0f MiB for 100k vectors\n", $5/1048576}'
