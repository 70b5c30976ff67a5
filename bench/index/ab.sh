#!/usr/bin/env bash
# bench/index/ab.sh: two shoebox binaries against each other and against PIL (1 process) on
# the same N generated 12 MP JPEGs, interleaved run by run, so that both meet the same load.
# Usage: bench/index/ab.sh OLD_SHOEBOX NEW_SHOEBOX [REPS] [N] [WORKDIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
old="$1"
new="$2"
reps="${3:-3}"
n="${4:-200}"
work="${5:-/tmp/shoebox-bench-index}"
mkdir -p "$work"
/usr/bin/python3 "$here/gen_photos.py" "$work/photos" "$n" >/dev/null
cat "$work/photos"/* >/dev/null
# one shoebox run: prints photos/s, CPU ms per photo, cores busy
run() {
    rm -rf "$work/ab"
    local t0 t1 u s
    t0=$(date +%s.%N)
    /usr/bin/time -o "$work/ab.time" -f '%U %S' "$1" --db "$work/ab/catalog.db" index "$work/photos" 2>/dev/null
    t1=$(date +%s.%N)
    read -r u s < <(tail -1 "$work/ab.time")
    echo "$(echo "$n / ($t1 - $t0)" | bc -l) $(echo "1000 * ($u + $s) / $n" | bc -l) $(echo "($u + $s) / ($t1 - $t0)" | bc -l)"
}
for r in $(seq 1 "$reps"); do
    rm -rf "$work/pil1"
    load=$(cut -d' ' -f1 /proc/loadavg)
    read -r _ _ prate pcpu < <(/usr/bin/python3 "$here/pil_baseline.py" "$work/photos" "$work/pil1" 1)
    read -r orate ocpu ocores < <(run "$old")
    read -r nrate ncpu ncores < <(run "$new")
    printf 'run %d (load %s): PIL 1 process %.2f photos/s %.1f ms CPU | old %.2f photos/s (%.2fx) %.1f ms CPU %.2f cores | new %.2f photos/s (%.2fx) %.1f ms CPU %.2f cores\n' \
        "$r" "$load" "$prate" "$(echo "1000 * $pcpu / $n" | bc -l)" \
        "$orate" "$(echo "$orate / $prate" | bc -l)" "$ocpu" "$ocores" \
        "$nrate" "$(echo "$nrate / $prate" | bc -l)" "$ncpu" "$ncores"
done
