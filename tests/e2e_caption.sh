#!/usr/bin/env bash
# End to end: `shoebox caption` (human and --json, options, errors) on the random captioning
# models of tools/gen_vlm.py, and `index --captions`: captions stored in texts (source
# 'caption', the model id), the setting remembered, resumable (a second run does no work),
# shown by search (human and JSON), and a query made of caption words ranks that photo first
# in the hybrid ranking (with a CLIP model) and in the text-only search (without one).
. "$(dirname "$0")/lib_e2e.sh"

VLM="$DATA/vlm/idefics3"
CLIP="$DATA/models/tiny_b32"
LIB="$TMP/lib"
DB="$TMP/cat/catalog.db"
mkdir -p "$LIB"
cp "$REPO"/samples/cat_chelsea.png "$REPO"/samples/coffee_cup.png "$REPO"/samples/hubble_deep_field.jpg \
   "$REPO"/samples/kodak_kodim03_hats.png "$DATA"/images/Nikon_D70.jpg "$DATA"/vlm/photo.png "$LIB/"

# caption: JSON lines with the generated ids (the reference's greedy tokens for photo.png)
js=$("$SB" --json caption --caption-model "$DATA/vlm/llava15" --max-new-tokens 20 \
     --repetition-penalty 1 --raw "$DATA/vlm/photo.png")
expect_eq "caption exit" 0 $?
want=$(grep -o '"greedy": *\[[^]]*\]' "$DATA/vlm/llava15/ref.json" | sed 's/.*\[//; s/ //g; s/\]//')
got=$(printf '%s' "$js" | grep -o '"tokens":\[[^]]*\]' | sed 's/.*\[//; s/\]//')
expect_eq "caption tokens = reference greedy" "$want" "$got"
printf '%s' "$js" | grep -q '^{"input":"[^"]*photo.png","caption":"' && ok || fail "caption json: $js"
# --tiles: Idefics3 image splitting (3x4 crops + the global image of photo.png)
js=$("$SB" --json --precision fp32 caption --caption-model "$VLM" --tiles --max-new-tokens 20 \
     --repetition-penalty 1 --raw "$DATA/vlm/photo.png")
expect_eq "caption --tiles exit" 0 $?
want=$(grep -o '"greedy": *\[[^]]*\]' "$VLM/ref_split.json" | sed 's/.*\[//; s/ //g; s/\]//')
got=$(printf '%s' "$js" | grep -o '"tokens":\[[^]]*\]' | sed 's/.*\[//; s/\]//')
expect_eq "caption --tiles tokens = reference greedy" "$want" "$got"
"$SB" caption --caption-model "$DATA/vlm/llava15" --tiles "$LIB/photo.png" 2>"$TMP/tiles.err"
expect_eq "--tiles on a LLaVA model" 1 $?
grep -q "Idefics3" "$TMP/tiles.err" && ok || fail "tiles message: $(cat "$TMP/tiles.err")"
# Moondream 2: the 700x500 photo is tiled 2 x 4; tokens = tools/ref_moondream.py's first case
MD="$DATA/vlm/moondream"
js=$("$SB" --json caption --caption-model "$MD" --max-new-tokens 20 --repetition-penalty 1 --raw \
     "$DATA/vlm/moondream_photo.png")
expect_eq "moondream caption exit" 0 $?
want=$(grep -o '"greedy": *\[[^]]*\]' "$MD/ref.json" | head -1 | sed 's/.*\[//; s/ //g; s/\]//')
got=$(printf '%s' "$js" | grep -o '"tokens":\[[^]]*\]' | sed 's/.*\[//; s/\]//')
expect_eq "moondream tokens = reference greedy" "$want" "$got"
[ -n "$want" ] && ok || fail "no moondream reference tokens"
n=$("$SB" --json caption --caption-model "$VLM" "$LIB"/*.png | wc -l)
expect_eq "one line per image" 4 "$n"
h=$("$SB" caption --model "$DATA/vlm/llava_qwen" --prompt "What is this?" --max-new-tokens 5 "$LIB/photo.png")
printf '%s' "$h" | grep -q "^$LIB/photo.png	" && ok || fail "human output: $h"
"$SB" caption --caption-model "$VLM" "$LIB/photo.png" "$TMP/missing.jpg" >/dev/null 2>"$TMP/cap.err"
expect_eq "a missing image fails the run" 1 $?
grep -q "missing.jpg" "$TMP/cap.err" && ok || fail "names the missing file: $(cat "$TMP/cap.err")"
"$SB" caption "$LIB/photo.png" 2>/dev/null; expect_eq "no model" 2 $?
"$SB" caption --caption-model "$CLIP" "$LIB/photo.png" 2>"$TMP/clip.err"
expect_eq "a CLIP folder is not a captioning model" 1 $?
grep -q "not a supported captioning model" "$TMP/clip.err" && ok || fail "clip message: $(cat "$TMP/clip.err")"
"$SB" caption --caption-model "$VLM" --max-new-tokens 0 "$LIB/photo.png" 2>/dev/null
expect_eq "bad --max-new-tokens" 2 $?

# index --captions without a model folder is a usage error
"$SB" --db "$DB" index --captions "$LIB" 2>/dev/null; expect_eq "--captions needs a model" 2 $?

# index with a CLIP model and captions
"$SB" --db "$DB" --model "$CLIP" index --captions --caption-model "$VLM" "$LIB" 2>"$TMP/index.err"
expect_eq "index --captions" 0 $?
grep -q "^captions (idefics3@" "$TMP/index.err" && ok || fail "caption report: $(cat "$TMP/index.err")"
expect_eq "captions stored" 6 "$(q "$DB" "SELECT count(*) FROM texts WHERE source = 'caption' AND model LIKE 'idefics3@%'")"
st=$("$SB" --db "$DB" status --json)
printf '%s' "$st" | grep -q '"caption:idefics3@[0-9a-f]*":{"done":6,"pending":0,' && ok || fail "caption stage done: $st"

# resumable / idempotent: the setting is remembered, nothing left to do
"$SB" --db "$DB" --model "$CLIP" index "$LIB" 2>"$TMP/index2.err"
expect_eq "second index" 0 $?
grep -q "^captions" "$TMP/index2.err" && fail "second run captioned again: $(cat "$TMP/index2.err")" || ok
expect_eq "setting" 1 "$(q "$DB" "SELECT value FROM settings WHERE key = 'captions'")"

# a word found only in one photo's caption finds that photo first
pick=""
for f in cat_chelsea.png coffee_cup.png kodak_kodim03_hats.png Nikon_D70.jpg hubble_deep_field.jpg photo.png; do
    id=$(q "$DB" "SELECT photo_id FROM files WHERE path = '$LIB/$f'")
    for w in $(q "$DB" "SELECT text FROM texts WHERE source = 'caption' AND photo_id = $id" |
               tr -c '[:alpha:]' '\n' | tr 'A-Z' 'a-z' | awk 'length >= 4' | sort -u); do
        others=$(q "$DB" "SELECT count(*) FROM texts WHERE source = 'caption' AND photo_id != $id AND lower(text) LIKE '%$w%'")
        if [ "$others" = 0 ]; then pick="$f $w"; break 2; fi
    done
done
[ -n "$pick" ] && ok || fail "no caption word unique to one photo"
set -- $pick
photo="$1" word="$2"
js=$("$SB" --db "$DB" --model "$CLIP" search "$word" --json 2>/dev/null)
expect_eq "hybrid search exit" 0 $?
printf '%s' "$js" | grep -q "^{\"results\":\[{\"id\":[0-9]*,\"path\":\"$LIB/$photo\"" && ok || fail "hybrid: '$word' finds $photo first: $js"
printf '%s' "$js" | grep -q '"text":{"caption":"' && ok || fail "json shows the caption: $js"
p=$("$SB" --db "$DB" search --text "$word" --paths | head -1)
expect_eq "--text finds the caption" "$LIB/$photo" "$p"
"$SB" --db "$DB" --model "$CLIP" search "$word" | grep -q '^ *"' && ok || fail "human output shows the caption"
# without a CLIP model: the captions alone
rm -f "$TMP/nomodel.db"
"$SB" --db "$TMP/nomodel.db" index --captions --caption-model "$VLM" "$LIB" 2>/dev/null
p=$("$SB" --db "$TMP/nomodel.db" search "$word" --paths 2>/dev/null | head -1)
expect_eq "no model: captions searched" "$LIB/$photo" "$p"

# batched decoding: each worker decodes up to 8 photos at once, a finished caption's slot
# taking the next photo (one worker here: 10 photos pass through 8 slots); the 10 photos (4 of
# them photo.png with trailing bytes: other files, same pixels) get exactly the captions
# `shoebox caption` makes one at a time (the PNGs: the JPEG's pixels differ between index's
# decode and caption's, batched or not)
LIB2="$TMP/lib2"
mkdir -p "$LIB2"
cp "$LIB"/* "$LIB2/"
for i in 1 2 3 4; do { cat "$DATA/vlm/photo.png"; printf 'pad%d' "$i"; } >"$LIB2/copy$i.png"; done
rm -f "$TMP/batch.db"
"$SB" --db "$TMP/batch.db" --threads 1 index --captions --caption-model "$VLM" "$LIB2" 2>/dev/null
expect_eq "index --captions (10 photos)" 0 $?
expect_eq "10 captions stored" 10 "$(q "$TMP/batch.db" "SELECT count(*) FROM texts WHERE source = 'caption'")"
same=0
for f in "$LIB2"/*.png; do
    alone=$("$SB" caption --caption-model "$VLM" "$f" | cut -f2-)
    id=$(q "$TMP/batch.db" "SELECT photo_id FROM files WHERE path = '$f'")
    stored=$(q "$TMP/batch.db" "SELECT text FROM texts WHERE source = 'caption' AND photo_id = $id")
    if [ "$alone" = "$stored" ] && [ -n "$stored" ]; then same=$((same + 1)); else
        echo "  $f: alone '$alone', batched '$stored'"; fi
done
expect_eq "batched captions = one at a time" 8 "$same"

# `shoebox caption` with several images decodes up to 8 at once: 11 inputs (one missing, in the
# middle) through 8 slots; the output keeps the input order and each caption is the one the
# image gets alone (the loop above made those, one process per image)
all=()
i=0
for f in "$LIB2"/*; do
    [ "$i" = 5 ] && all+=("$TMP/missing2.jpg")
    all+=("$f")
    i=$((i + 1))
done
out=$("$SB" caption --caption-model "$VLM" "${all[@]}" 2>"$TMP/multi.err")
expect_eq "several images, one missing" 1 $?
grep -q "missing2.jpg" "$TMP/multi.err" && ok || fail "names the missing file: $(cat "$TMP/multi.err")"
expect_eq "one line per image, in input order" "$(printf '%s\n' "$LIB2"/*)" "$(printf '%s\n' "$out" | cut -f1)"
same=0
for f in "$LIB2"/*; do
    alone=$("$SB" caption --caption-model "$VLM" "$f" | cut -f2-)
    batched=$(printf '%s\n' "$out" | grep -F "$f	" | cut -f2-)
    if [ "$alone" = "$batched" ] && [ -n "$batched" ]; then same=$((same + 1)); else
        echo "  $f: alone '$alone', batched '$batched'"; fi
done
expect_eq "several at once = one at a time" 10 "$same"

# --caption-tiles: the stage captions with image splitting, and remembers it
rm -f "$TMP/tiles.db"
"$SB" --db "$TMP/tiles.db" --precision fp32 index --captions --caption-tiles --caption-model "$VLM" \
    "$LIB/photo.png" 2>/dev/null
expect_eq "index --caption-tiles" 0 $?
expect_eq "tiles setting" 1 "$(q "$TMP/tiles.db" "SELECT value FROM settings WHERE key = 'caption_tiles'")"
expect_eq "tiled caption stored" 1 "$(q "$TMP/tiles.db" "SELECT count(*) FROM texts WHERE source = 'caption'")"
"$SB" --db "$TMP/tiles.db" index --no-caption-tiles "$LIB/photo.png" 2>/dev/null
expect_eq "tiles off remembered" 0 "$(q "$TMP/tiles.db" "SELECT value FROM settings WHERE key = 'caption_tiles'")"

finish
