#!/usr/bin/env bash
# bench/search/dupes.sh BUILD [BASE_BUILD]: `shoebox dupes` from scratch (the pair cache deleted
# first, so every pair of the 100k vectors is compared) on the 100k-photo catalog that
# bench/search/run.sh builds: wall, user and system seconds. With BASE_BUILD (e.g. a build of an
# earlier commit) that build runs too, in turns with BUILD, two rounds, and the two JSON outputs
# must be the same. Run bench/search/run.sh first.
set -euo pipefail
BUILD="$(cd "${1:-build}" && pwd)"
BASE="${2:-}"
[ -z "$BASE" ] || BASE="$(cd "$BASE" && pwd)"
work="${SHOEBOX_BENCH_DIR:-/tmp/shoebox-bench-search}"
[ -f "$work/cat100k/catalog.db" ] || { echo "no $work/cat100k: run bench/search/run.sh first" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp -r "$work/cat100k/." "$scratch/"

# run BUILD_DIR LABEL: one run from scratch, one line; its JSON in $scratch/LABEL.json
run() {
    rm -f "$scratch"/cache/near-*.pairs
    /usr/bin/time -f "$2 %e s wall  %U s user  %S s sys" "$1/shoebox" --db "$scratch/catalog.db" \
        dupes --json 2> "$scratch/time" > "$scratch/$2.json"
    tail -1 "$scratch/time"
}

if [ -z "$BASE" ]; then
    run "$BUILD" this
else
    for _ in 1 2; do
        run "$BASE" base
        run "$BUILD" this
    done
    cmp -s "$scratch/base.json" "$scratch/this.json" && echo "same JSON" || echo "JSON DIFFERS"
fi
