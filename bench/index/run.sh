#!/usr/bin/env bash
# bench/index: photos/s of `shoebox index` (crawl + hash + EXIF + two thumbnails, no model) on
# N generated 12 MP JPEGs, against PIL doing the same work over the same files in the same run
# (1 process, and one process per core). Then the unchanged-rescan time of a 10k-file tree.
# Usage: bench/index/run.sh [BUILD_DIR] [N] [WORKDIR]   (needs python3-pil, python3-numpy; python3-xxhash)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-build}"
n="${2:-200}"
work="${3:-/tmp/shoebox-bench-index}"
sb="$(cd "$build" && pwd)/shoebox"
cores=$(nproc)
mkdir -p "$work"
/usr/bin/python3 "$here/gen_photos.py" "$work/photos" "$n" >/dev/null
cat "$work/photos"/* > /dev/null  # warm the page cache for everyone alike

rm -rf "$work/pil1" "$work/pil2" "$work/sb"
read -r _ pil1_s pil1_rate pil1_cpu < <(/usr/bin/python3 "$here/pil_baseline.py" "$work/photos" "$work/pil1" 1)
read -r _ pil2_s pil2_rate pil2_cpu < <(/usr/bin/python3 "$here/pil_baseline.py" "$work/photos" "$work/pil2" "$cores")
t0=$(date +%s.%N)
/usr/bin/time -o "$work/sb.time" -f '%P %U %S' "$sb" --db "$work/sb/catalog.db" index "$work/photos" 2>/dev/null
t1=$(date +%s.%N)
sb_s=$(echo "$t1 - $t0" | bc -l)
read -r _ sb_user sb_sys < <(tail -1 "$work/sb.time")
sb_cpu=$(echo "$sb_user + $sb_sys" | bc -l)
sb_rate=$(echo "$n / $sb_s" | bc -l)
# CPU ms per photo: what a loaded (shared) box cannot blur as much as the wall clock (with
# autogrouping, a busy box gives each session about the same share, threads or not)
ms() { echo "1000 * $1 / $n" | bc -l; }
printf 'index %d x 12 MP JPEG (%d cores)\n' "$n" "$cores"
printf '  shoebox index         %7.2f s  %7.2f photos/s  CPU %5.1f ms/photo (%.2f cores busy)\n' "$sb_s" "$sb_rate" "$(ms "$sb_cpu")" "$(echo "$sb_cpu / $sb_s" | bc -l)"
printf '  PIL, 1 process        %7.2f s  %7.2f photos/s  CPU %5.1f ms/photo  (shoebox: %.1fx photos/s, %.1fx per CPU s)\n' "$pil1_s" "$pil1_rate" "$(ms "$pil1_cpu")" "$(echo "$sb_rate / $pil1_rate" | bc -l)" "$(echo "$pil1_cpu / $sb_cpu" | bc -l)"
printf '  PIL, %d processes      %7.2f s  %7.2f photos/s  CPU %5.1f ms/photo  (shoebox: %.1fx photos/s)\n' "$cores" "$pil2_s" "$pil2_rate" "$(ms "$pil2_cpu")" "$(echo "$sb_rate / $pil2_rate" | bc -l)"

# unchanged rescan of 10k files
if [ ! -d "$work/many" ]; then
    mkdir -p "$work/many"
    src="$here/../../tests/data/library/exiftool_FujiS1Pro_gps_stub.jpg"
    for d in $(seq 0 99); do
        mkdir -p "$work/many/d$d"
        for f in $(seq 0 99); do
            { cat "$src"; printf '%d-%d' "$d" "$f"; } > "$work/many/d$d/f$f.jpg"
        done
    done
fi
rm -rf "$work/sbmany"
"$sb" --db "$work/sbmany/catalog.db" index "$work/many" 2>/dev/null
t0=$(date +%s.%N)
"$sb" --db "$work/sbmany/catalog.db" index "$work/many" 2>/dev/null
t1=$(date +%s.%N)
printf 'rescan of an unchanged 10000-file tree: %.2f s\n' "$(echo "$t1 - $t0" | bc -l)"
