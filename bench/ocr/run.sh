#!/usr/bin/env bash
# bench/ocr/run.sh - speed of the OCR stage with and without the text gate, and what the gate
# costs in missed text. Usage: bench/ocr/run.sh [BUILD_DIR] [PHOTO_DIR...]
# Default photos: ../shared/testdata/photos (real photos, a few with text) + tests/data/ocr.
# Indexes the same photos three times into scratch catalogs (no model): without OCR (the
# baseline: hash, probe, thumbnails), with --ocr, with --ocr --ocr-no-gate. The stage's rate
# is photos / (run time - baseline time). "Missed" are photos where ungated OCR kept text and
# the gate skipped them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${1:-$repo/build}"
shift || true
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=("$repo/../shared/testdata/photos" "$repo/tests/data/ocr")
sb="$build/shoebox"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lib"
for d in "${dirs[@]}"; do cp -r "$d" "$tmp/lib/"; done
export XDG_DATA_HOME="$tmp/xdg"
run() { # run NAME ARGS... -> seconds
    local t0 t1
    t0=$(date +%s.%N)
    "$sb" --db "$tmp/$1.db" --threads "${THREADS:-2}" index "${@:2}" "$tmp/lib" 2>"$tmp/$1.err"
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc -l
}
# warm the page cache
cat "$tmp"/lib/*/* > /dev/null 2>&1 || true
base=$(run base)
gate=$(run gate --ocr)
nogate=$(run nogate --ocr --ocr-no-gate)
n=$(sqlite3 "$tmp/gate.db" "SELECT count(*) FROM jobs WHERE stage = 'ocr' AND state = 1")
printf 'photos: %s (threads %s)\n' "$n" "${THREADS:-2}"
printf 'baseline index (no OCR): %.2fs\n' "$base"
printf 'with OCR, gate on:  %.2fs -> OCR stage %.2f photos/s\n' "$gate" "$(echo "$n / ($gate - $base)" | bc -l)"
printf 'with OCR, gate off: %.2fs -> OCR stage %.2f photos/s\n' "$nogate" "$(echo "$n / ($nogate - $base)" | bc -l)"
grep '^ocr' "$tmp/gate.err" "$tmp/nogate.err" | sed "s#$tmp/##"
sqlite3 "$tmp/nogate.db" "ATTACH '$tmp/gate.db' AS g;
  SELECT 'ungated OCR kept text in ' || count(*) || ' photos' FROM texts WHERE source = 'ocr';
  SELECT 'gated run kept text in ' || count(*) || ' photos' FROM g.texts WHERE source = 'ocr';
  SELECT 'missed by the gate: ' || f.path || ' (' || replace(substr(t.text, 1, 60), char(10), ' | ') || ')'
    FROM texts t JOIN files f ON f.photo_id = t.photo_id
    WHERE t.source = 'ocr' AND f.path NOT IN (SELECT gf.path FROM g.texts gt JOIN g.files gf ON gf.photo_id = gt.photo_id);"
