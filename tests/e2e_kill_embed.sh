#!/usr/bin/env bash
# kill -9 at random moments while `index` also embeds (a model set), at least 10 times, then
# finish: the jobs, the vectors, the search cache (what `search` reads) and the near-duplicate
# pair cache (what `dupes` reads) must come out as an uninterrupted run makes them.
. "$(dirname "$0")/lib_e2e.sh"

MODEL="$DATA/models/tiny_b32"
LIB="$TMP/lib"
mkdir -p "$LIB"
# 100 distinct photos (trailing bytes make each file its own photo; the pixels repeat, so near
# duplicates abound), plus an exact copy and a broken file
i=0
for src in "$DATA/images/Landscape_1.jpg" "$DATA/images/Nikon_D70.jpg" "$DATA/images/orient_6.jpg" \
    "$DATA/images/cmyk_adobe.jpg"; do
    for k in $(seq 1 25); do
        i=$((i + 1))
        cp "$src" "$LIB/p$i.jpg"
        printf 'shoebox-%d' "$i" >> "$LIB/p$i.jpg"
    done
done
cp "$LIB/p2.jpg" "$LIB/copy_of_p2.jpg"
cp "$DATA/images/broken/truncated_progressive.jpg" "$LIB/"

sbi() { # sbi DB ARGS...: shoebox on catalog DB with the model, in exact mode
    local db="$1"
    shift
    "$SB" --db "$db" --model "$MODEL" --precision fp32 --threads 2 "$@"
}

dump() {
    q "$1" "SELECT f.path, f.status, coalesce(f.error, ''), hex(p.hash),
              (SELECT group_concat(stage || '=' || state || ':' || coalesce(error, ''), ',')
                 FROM (SELECT stage, state, error FROM jobs WHERE photo_id = p.id ORDER BY stage)),
              (SELECT count(*) FROM vectors v WHERE v.photo_id = p.id)
            FROM files f LEFT JOIN photos p ON p.id = f.photo_id ORDER BY f.path"
}

vectors() { # one line per photo: hash, vector (the model's id may differ between catalogs)
    q "$1" "SELECT hex(p.hash), hex(v.vec) FROM vectors v JOIN photos p ON p.id = v.photo_id
            ORDER BY p.hash"
}

CLEAN="$TMP/clean/catalog.db"
t0=$(date +%s%N)
sbi "$CLEAN" index "$LIB" 2>/dev/null
expect_eq "clean run" 0 $?
# kills land at random moments within the time an uninterrupted run takes, a window that
# shrinks when a run finishes before its kill (less work is left each time)
window=$((($(date +%s%N) - t0) / 1000000))
[ "$window" -ge 50 ] || window=50
echo "uninterrupted run: $window ms" >&2
dump "$CLEAN" > "$TMP/clean.txt"
expect_eq "clean vectors" 100 "$(q "$CLEAN" "SELECT count(*) FROM vectors")"

# four catalogs, each killed three times (the first kill at a random moment of a whole run, so
# that kills land in every stage, the next ones within a window that shrinks when a run ends
# before its kill) and then finished; each must match the clean one
vectors "$CLEAN" > "$TMP/clean.vec"
kills=0
partial=0 # kills that left some vectors still to compute
# (more catalogs, up to 10, while fewer than 3 kills have landed before every vector was
# stored: the kills' moments are random, and once in ~20 runs four catalogs gave only 2)
s=0
while [ "$s" -lt 4 ] || { [ "$partial" -lt 3 ] && [ "$s" -lt 10 ]; }; do
    s=$((s + 1))
    DB="$TMP/killed$s/catalog.db"
    w=$window
    k=0
    tries=0
    while [ "$k" -lt 3 ] && [ "$tries" -lt 20 ]; do
        tries=$((tries + 1))
        "$SB" --db "$DB" --model "$MODEL" --precision fp32 --threads 2 index "$LIB" 2>/dev/null &
        pid=$! # shoebox itself (a function run with & would be a subshell, and the kill its)
        ms=$((RANDOM % w))
        sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
        if kill -9 "$pid" 2>/dev/null; then
            k=$((k + 1))
        else
            w=$((w * 2 / 3))
            [ "$w" -ge 30 ] || w=30
        fi
        wait "$pid" 2>/dev/null
        if [ -f "$DB" ]; then
            r=$(q "$DB" "PRAGMA integrity_check" 2>&1)
            [ "$r" = ok ] && ok || fail "integrity after a kill: $r"
            [ "$(q "$DB" "SELECT count(*) FROM vectors")" -lt 100 ] && partial=$((partial + 1))
            # a half-built catalog searches (the cache follows what is stored) and never lists
            # more photos than have vectors
            n=$(sbi "$DB" search "a photo" --paths -n 200 --min-score -1 2>/dev/null | wc -l)
            have=$(q "$DB" "SELECT count(*) FROM vectors")
            [ "$n" -le "$have" ] && ok || fail "search listed $n photos with $have vectors stored"
        fi
    done
    kills=$((kills + k))
    sbi "$DB" index "$LIB" 2>/dev/null
    expect_eq "final run $s" 0 $?
    dump "$DB" > "$TMP/killed.txt"
    if diff "$TMP/clean.txt" "$TMP/killed.txt" > "$TMP/diff.txt"; then ok; else
        fail "catalog $s differs from a clean run: $(head -5 "$TMP/diff.txt")"; fi
    vectors "$DB" > "$TMP/killed.vec"
    cmp -s "$TMP/clean.vec" "$TMP/killed.vec" && ok || fail "catalog $s: vectors differ from a clean run"
    expect_eq "integrity $s" ok "$(q "$DB" "PRAGMA integrity_check")"
    # what search and dupes read (the vector cache, the pair cache), as in the clean catalog
    for qy in "a photo" "mountains at dusk"; do
        a=$(sbi "$CLEAN" search "$qy" --json -n 30 --min-score -1 2>/dev/null | sed 's/"id":[0-9]*,//g')
        b=$(sbi "$DB" search "$qy" --json -n 30 --min-score -1 2>/dev/null | sed 's/"id":[0-9]*,//g')
        [ -n "$a" ] && [ "$a" = "$b" ] && ok || fail "catalog $s: search '$qy' differs: clean $a, killed $b"
    done
    a=$(sbi "$CLEAN" dupes --json 2>/dev/null | sed 's/"id":[0-9]*,//g')
    b=$(sbi "$DB" dupes --json 2>/dev/null | sed 's/"id":[0-9]*,//g')
    [ -n "$a" ] && [ "$a" = "$b" ] && ok || fail "catalog $s: dupes differ: clean $(printf '%.300s' "$a"), killed $(printf '%.300s' "$b")"
    printf '%s' "$b" | grep -q '"near":\[{' && ok || fail "no near-duplicate groups: $(printf '%.300s' "$b")"
done
[ "$kills" -ge 10 ] && ok || fail "only $kills kills landed"
[ "$partial" -ge 3 ] && ok || fail "only $partial kills landed before every vector was stored"
echo "killed $kills times ($partial before every vector was stored)" >&2
finish
