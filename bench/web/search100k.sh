#!/usr/bin/env bash
# search100k.sh BUILD [N_QUERIES] [BASE_BUILD]: GET /api/search latency, p50/p99, on the
# 100k-photo catalog that bench/search/run.sh builds (full-size random ViT-B/32; the server
# loads the text tower once), queries one after another from curl. With BASE_BUILD (e.g. a
# build of an earlier commit) its server is measured too, in turns with BUILD's, three rounds,
# so that a before/after ratio comes from one run. Run bench/search/run.sh first.
set -euo pipefail
BUILD="$(cd "${1:-build}" && pwd)"
N="${2:-200}"
BASE="${3:-}"
[ -z "$BASE" ] || BASE="$(cd "$BASE" && pwd)"
work="${SHOEBOX_BENCH_DIR:-/tmp/shoebox-bench-search}"
db="$work/cat100k/catalog.db"
model="${SHOEBOX_BENCH_MODEL:-/tmp/sbemb/b32}"
[ -f "$db" ] || { echo "no $db: run bench/search/run.sh first" >&2; exit 1; }
log=$(mktemp)
pid=
trap '[ -z "$pid" ] || kill $pid 2>/dev/null; rm -f "$log" "$log.t"' EXIT
words=(dog beach sunset mountain city night cat snow forest car boat food party child river bridge)

# measure BUILD_DIR LABEL: one server, N queries, one line
measure() {
    "$1/shoebox" --db "$db" --model "$model" serve --port 0 2> "$log" &
    pid=$!
    for _ in $(seq 1 200); do grep -q 'http://' "$log" && break; sleep 0.1; done
    local port
    port=$(grep -o '127.0.0.1:[0-9]*' "$log" | head -1 | cut -d: -f2)
    curl -s "http://127.0.0.1:$port/api/search?q=warm+up&n=20" >/dev/null
    : > "$log.t"
    for i in $(seq 1 "$N"); do
        q="${words[$((i % 16))]}+${words[$(((i * 7) % 16))]}+$i"
        curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$port/api/search?q=$q&n=20" >> "$log.t"
    done
    kill $pid 2>/dev/null
    wait $pid 2>/dev/null || true
    pid=
    sort -g "$log.t" | awk -v n="$N" -v what="$2" '{ t[NR] = $1 * 1000 } END {
        printf "%-5s GET /api/search at 100k photos, %d queries: p50 %.1f ms  p99 %.1f ms  max %.1f ms\n",
            what, n, t[int(n * 0.5)], t[int(n * 0.99)], t[n] }'
}

if [ -z "$BASE" ]; then
    measure "$BUILD" ""
else
    for _ in 1 2 3; do
        measure "$BASE" base
        measure "$BUILD" this
    done
fi
