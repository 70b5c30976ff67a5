#!/usr/bin/env bash
# End to end: index real photos and their resized, recompressed and cropped copies with a tiny
# random CLIP model; search (text, image, id, algebra), filters, cutoff, output formats,
# similar (a copy is the nearest neighbour of its original) and dupes.
. "$(dirname "$0")/lib_e2e.sh"

MODEL="$DATA/models/tiny_b32"
LIB="$TMP/lib"
DB="$TMP/cat/catalog.db"
mkdir -p "$LIB/orig" "$LIB/copies" "$LIB/png"
cp "$REPO/samples/"*.jpg "$LIB/orig/"
cp "$REPO/samples/"*.png "$LIB/png/"
cp "$DATA/images/Nikon_D70.jpg" "$LIB/orig/nikon.jpg"
cp "$DATA/library/exiftool_FujiS1Pro_gps_stub.jpg" "$LIB/orig/gps.jpg"
cp "$LIB/orig/rocket_launch_pad_night.jpg" "$LIB/copies/rocket_exact_copy.jpg"
# near duplicates made with libjpeg's tools: half size, heavy recompression, a 90% crop
djpeg -scale 1/2 "$LIB/orig/Landscape_6.jpg" | cjpeg -quality 85 > "$LIB/copies/landscape_small.jpg"
djpeg "$LIB/orig/hubble_deep_field.jpg" | cjpeg -quality 30 > "$LIB/copies/hubble_q30.jpg"
jpegtran -crop 576x384+32+20 "$LIB/orig/rocket_launch_pad_night.jpg" > "$LIB/copies/rocket_crop.jpg"

"$SB" --db "$TMP/none.db" search "cat" 2>/dev/null
expect_eq "search without a catalog" 1 $?

"$SB" --db "$DB" --model "$MODEL" index "$LIB" 2>"$TMP/index.err"
expect_eq "index with model" 0 $?
# index leaves the near-duplicate pairs computed for `dupes` and the web
ls "$TMP/cat/cache/"near-*.pairs >/dev/null 2>&1 && ok || fail "no near-duplicate pair cache after index"
st=$("$SB" --db "$DB" status --json)
printf '%s' "$st" | grep -q '"embed:clip-tiny-b32@[0-9a-f]*":{"done":11,"pending":0,"failed":0}' && ok || fail "embed stage: $st"

# text search: JSON schema, best first, one result per photo (copies listed with it)
js=$("$SB" --db "$DB" --model "$MODEL" search "a photo of a rocket" --min-score -1 -n 50 --json)
expect_eq "search exit" 0 $?
n=$(printf '%s' "$js" | grep -o '"id":' | wc -l)
expect_eq "one result per photo" 11 "$n"
printf '%s' "$js" | grep -q '^{"results":\[{"id":[0-9]*,"path":"[^"]*","paths":\["[^"]*"' && ok || fail "json schema: ${js:0:200}"
printf '%s' "$js" | grep -q '"paths":\["[^"]*rocket_launch_pad_night.jpg","[^"]*rocket_exact_copy.jpg"\]' && ok || fail "copies listed with the photo"
scores=$(printf '%s' "$js" | grep -o '"score":[-0-9.e]*' | cut -d: -f2)
sorted=$(printf '%s\n' $scores | sort -g -r)
expect_eq "scores best first" "$(printf '%s\n' $scores)" "$sorted"
# the model is remembered: no --model needed afterwards
"$SB" --db "$DB" search "rocket" --min-score -1 -n 1 --paths > "$TMP/p.txt"
expect_eq "search without --model (remembered)" 0 $?
[ -f "$(cat "$TMP/p.txt")" ] && ok || fail "--paths prints a path: $(cat "$TMP/p.txt")"

# cutoff: nothing is that relevant; an honest empty answer, exit 0
js=$("$SB" --db "$DB" search "a photo of a rocket" --min-score 0.999 --json)
expect_eq "cutoff exit" 0 $?
printf '%s' "$js" | grep -q '"results":\[\]' && ok || fail "cutoff: $js"

# filters
js=$("$SB" --db "$DB" search "photo" --min-score -1 -n 50 --format png --json)
expect_eq "format filter" "3" "$(printf '%s' "$js" | grep -o '"path":"[^"]*\.png"' | wc -l)"
expect_eq "format filter only png" "3" "$(printf '%s' "$js" | grep -o '"id":' | wc -l)"
js=$("$SB" --db "$DB" search "photo" --min-score -1 -n 50 --in "$LIB/copies" --json)
expect_eq "--in filter" 4 "$(printf '%s' "$js" | grep -o '"id":' | wc -l)"
js=$("$SB" --db "$DB" search "photo" --min-score -1 -n 50 --camera nikon --json)
expect_eq "--camera" 1 "$(printf '%s' "$js" | grep -o '"id":' | wc -l)"
js=$("$SB" --db "$DB" search "photo" --min-score -1 -n 50 --has-gps --json)
expect_eq "--has-gps" 1 "$(printf '%s' "$js" | grep -o '"id":' | wc -l)"
js=$("$SB" --db "$DB" search "photo" --min-score -1 -n 50 --after 2008-01-01 --before 2008-12-31 --json)
expect_eq "--after/--before" 1 "$(printf '%s' "$js" | grep -o '"id":' | wc -l)"
# filters only: by date, newest first, no scores
js=$("$SB" --db "$DB" search --before 2010-01-01 --json)
expect_eq "filters only" 2 "$(printf '%s' "$js" | grep -o '"id":' | wc -l)"
printf '%s' "$js" | grep -q '"taken_at":"2008-03-15T09:52:01".*"taken_at":"2002-07-13T15:58:28"' && ok || fail "by date: $js"
"$SB" --db "$DB" search --after 2030-13-45x 2>/dev/null; expect_eq "bad date" 2 $?

# query algebra: image + text - text, id:N, and a term that cancels out
rid=$(sqlite3 "$DB" "SELECT photo_id FROM files WHERE path LIKE '%orig/rocket_launch_pad_night.jpg'")
js=$("$SB" --db "$DB" search "id:$rid" --min-score -1 -n 1 --json)
printf '%s' "$js" | grep -q "\"id\":$rid," && ok || fail "id:N finds itself first: $js"
"$SB" --db "$DB" search "2:$LIB/orig/hubble_deep_field.jpg" + "stars" - "0.5:night" --min-score -1 -n 3 >/dev/null
expect_eq "image + text - text" 0 $?
"$SB" --db "$DB" search "cat" - "cat" 2>/dev/null; expect_eq "cancelling terms" 2 $?
"$SB" --db "$DB" search "cat" + 2>/dev/null; expect_eq "dangling operator" 2 $?

# similar: each near-duplicate copy is the nearest neighbour of its original (and back)
near() { # near QUERY -> the path of the best result
    "$SB" --db "$DB" similar "$1" --min-score -1 -n 1 --paths
}
expect_eq "resized copy is nearest" "$LIB/copies/landscape_small.jpg" "$(near "$LIB/orig/Landscape_6.jpg")"
expect_eq "original nearest to resized" "$LIB/orig/Landscape_6.jpg" "$(near "$LIB/copies/landscape_small.jpg")"
expect_eq "recompressed copy is nearest" "$LIB/copies/hubble_q30.jpg" "$(near "$LIB/orig/hubble_deep_field.jpg")"
expect_eq "cropped copy is nearest" "$LIB/copies/rocket_crop.jpg" "$(near "$LIB/orig/rocket_launch_pad_night.jpg")"
# the photo itself and its exact copy are duplicates, not results
js=$("$SB" --db "$DB" similar "$LIB/copies/rocket_exact_copy.jpg" --min-score -1 -n 50 --json)
printf '%s' "$js" | grep -q "\"query_id\":$rid" && ok || fail "similar query id"
printf '%s' "$js" | grep -q '"duplicates":\["[^"]*orig/rocket_launch_pad_night.jpg","[^"]*rocket_exact_copy.jpg"\]' && ok || fail "similar lists duplicates: $js"
printf '%s' "$js" | grep -q "\"results\":\[[^]]*\"id\":$rid," && fail "similar returned the photo itself" || ok
expect_eq "similar by id" "$LIB/copies/rocket_crop.jpg" "$("$SB" --db "$DB" similar "$rid" --min-score -1 -n 1 --paths)"
# a file outside the catalog is embedded on the fly
cp "$LIB/orig/Landscape_6.jpg" "$TMP/outside.jpg"
expect_eq "similar to an uncataloged file" "$LIB/orig/Landscape_6.jpg" "$("$SB" --db "$DB" --model "$MODEL" similar "$TMP/outside.jpg" --min-score -1 -n 1 --paths)"

# dupes: the exact copy, and the near copies grouped with their originals, best marked
js=$("$SB" --db "$DB" dupes --threshold 0.9 --json)
expect_eq "dupes exit" 0 $?
printf '%s' "$js" | grep -q '"exact":\[{"id":'"$rid"',"paths":\["[^"]*rocket_launch_pad_night.jpg","[^"]*rocket_exact_copy.jpg"\]}\]' && ok || fail "exact dupes: ${js:0:300}"
printf '%s' "$js" | grep -q '"path":"[^"]*orig/Landscape_6.jpg"[^}]*"best":true' && ok || fail "the full-size original is the best copy"
printf '%s' "$js" | grep -q '"path":"[^"]*landscape_small.jpg"[^}]*"best":false' && ok || fail "the small copy is not best"
"$SB" --db "$DB" dupes --exact | grep -q "rocket_exact_copy.jpg" && ok || fail "dupes --exact human output"
"$SB" dupes --help | grep -q "Read-only" && ok || fail "dupes --help"
"$SB" similar --help | grep -q usage && ok || fail "similar --help"
"$SB" search --help | grep -q "min-score" && ok || fail "search --help"
finish
