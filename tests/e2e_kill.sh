#!/usr/bin/env bash
# kill -9 at random moments, at least 10 times, then finish: the catalog must equal the one an
# uninterrupted run makes, pass integrity_check, and have every thumbnail.
. "$(dirname "$0")/lib_e2e.sh"

LIB="$TMP/lib"
mkdir -p "$LIB/a" "$LIB/b"
# 200 distinct photos: real JPEGs with a few different trailing bytes (decoders ignore them),
# plus copies and broken files so that every path of the pipeline is interrupted somewhere.
i=0
for src in "$DATA/images/Landscape_1.jpg" "$DATA/images/Landscape_6.jpg" "$DATA/images/Nikon_D70.jpg" "$DATA/images/orient_3.jpg"; do
    for k in $(seq 1 50); do
        i=$((i + 1))
        d=$([ $((i % 2)) = 0 ] && echo a || echo b)
        cp "$src" "$LIB/$d/p$i.jpg"
        printf 'shoebox-%d' "$i" >> "$LIB/$d/p$i.jpg"
    done
done
cp "$LIB/a/p2.jpg" "$LIB/b/copy_of_p2.jpg"
cp "$DATA/images/broken/truncated_progressive.jpg" "$DATA/images/broken/zero_bytes.jpg" "$LIB/b/"
touch -d '2020-01-01 00:00:00' "$LIB"/a/* "$LIB"/b/*

dump() {
    q "$1" "SELECT f.path, f.status, coalesce(f.error, ''), hex(p.hash), p.taken_at, p.width, p.height,
              p.make, p.orientation, p.time_source,
              (SELECT group_concat(stage || '=' || state || ':' || coalesce(error, ''), ',')
                 FROM (SELECT stage, state, error FROM jobs WHERE photo_id = p.id ORDER BY stage))
            FROM files f LEFT JOIN photos p ON p.id = f.photo_id ORDER BY f.path"
}

# the reference: one uninterrupted run
"$SB" --db "$TMP/clean/catalog.db" index "$LIB" 2>/dev/null
expect_eq "clean run" 0 $?
dump "$TMP/clean/catalog.db" > "$TMP/clean.txt"
[ "$(wc -l < "$TMP/clean.txt")" -ge 200 ] && ok || fail "clean run has $(wc -l < "$TMP/clean.txt") files"

DB="$TMP/killed/catalog.db"
kills=0
tries=0
while [ "$kills" -lt 12 ] && [ "$tries" -lt 60 ]; do
    tries=$((tries + 1))
    "$SB" --db "$DB" index "$LIB" 2>/dev/null &
    pid=$!
    # a random moment between 0 and 0.15 s into the run: short enough that kills also land in
    # the quick runs once most of the library is done (a Release build indexes these 200
    # photos in well under a second), long enough to stop runs mid-batch
    sleep "0.$(printf '%03d' $((RANDOM % 150)))"
    if kill -9 "$pid" 2>/dev/null; then
        kills=$((kills + 1))
    fi
    wait "$pid" 2>/dev/null
    if [ -f "$DB" ]; then
        r=$(q "$DB" "PRAGMA integrity_check" 2>&1)
        [ "$r" = ok ] && ok || fail "integrity after kill $kills: $r"
    fi
done
[ "$kills" -ge 10 ] && ok || fail "only $kills kills landed in $tries tries"
echo "killed $kills times in $tries runs" >&2

"$SB" --db "$DB" index "$LIB" 2>"$TMP/final.err"
expect_eq "final run" 0 $?
dump "$DB" > "$TMP/killed.txt"
if diff "$TMP/clean.txt" "$TMP/killed.txt" > "$TMP/diff.txt"; then ok; else fail "catalog differs from a clean run: $(head -5 "$TMP/diff.txt")"; fi
expect_eq "no duplicate photos" "$(q "$DB" "SELECT count(*) FROM photos")" "$(q "$DB" "SELECT count(DISTINCT hash) FROM photos")"
expect_eq "no duplicate files" "$(q "$DB" "SELECT count(*) FROM files")" "$(q "$DB" "SELECT count(DISTINCT path) FROM files")"
expect_eq "integrity" ok "$(q "$DB" "PRAGMA integrity_check")"
# every photo whose thumb job is done has both thumbnails, and they are whole JPEGs
missing=0
for h in $(q "$DB" "SELECT lower(hex(p.hash)) FROM photos p JOIN jobs j ON j.photo_id = p.id WHERE j.stage = 'thumb' AND j.state = 1"); do
    for px in 256 1024; do
        t="$TMP/killed/thumbs/${h:0:2}/$h-$px.jpg"
        if [ ! -s "$t" ] || [ "$(tail -c 2 "$t" | od -An -tx1 | tr -d ' ')" != "ffd9" ]; then
            missing=$((missing + 1))
        fi
    done
done
expect_eq "thumbnails present and whole" 0 "$missing"
finish
