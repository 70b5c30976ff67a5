#!/usr/bin/env bash
# run.sh BUILD_DIR [clients] [seconds] - builds a library of ~200 distinct photos (the samples
# recompressed and rescaled with libjpeg's tools), indexes it with the tiny random CLIP model,
# starts `shoebox serve` on a free loopback port and runs load.mjs against it.
# The tiny model makes text queries cheap; with a real CLIP the text tower adds its forward
# time to each search (see bench/embed).
set -euo pipefail
BUILD="${1:-build}"
CLIENTS="${2:-50}"
SECS="${3:-20}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SB="$BUILD/shoebox"
TMP="$(mktemp -d /tmp/shoebox-webload.XXXXXX)"
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$TMP"' EXIT
mkdir -p "$TMP/lib"
for f in "$REPO"/samples/*.jpg "$REPO"/tests/data/images/Nikon_D70.jpg; do
    b=$(basename "$f" .jpg)
    for q in 40 50 60 70 80 90; do
        for s in 1/1 1/2 1/4 3/8 5/8 7/8; do
            djpeg -scale "$s" "$f" | cjpeg -quality "$q" > "$TMP/lib/${b}_q${q}_s${s/\//of}.jpg"
        done
    done
done
"$SB" --db "$TMP/cat/catalog.db" --model "$REPO/tests/data/models/tiny_b32" index "$TMP/lib" 2>&1 | tail -1
"$SB" --db "$TMP/cat/catalog.db" serve --port 0 2> "$TMP/serve.log" &
PID=$!
for _ in $(seq 1 100); do grep -q 'http://' "$TMP/serve.log" && break; sleep 0.1; done
PORT=$(grep -o '127.0.0.1:[0-9]*' "$TMP/serve.log" | head -1 | cut -d: -f2)
node "$HERE/load.mjs" "http://127.0.0.1:$PORT" "$CLIENTS" "$SECS"
