#!/usr/bin/env bash
# End to end: `index --ocr` reads the words in memes, documents, signs and screenshots (and
# keeps doing so on later runs), `search` finds them by their words (with and without a
# model), `search --text`, JSON "text", broken files never stop the stage.
. "$(dirname "$0")/lib_e2e.sh"

MODEL="$DATA/models/tiny_b32"
LIB="$TMP/lib"
DB="$TMP/cat/catalog.db"
mkdir -p "$LIB/memes" "$LIB/docs" "$LIB/photos" "$LIB/broken"
cp "$DATA"/ocr/gen_meme_*.jpg "$DATA"/ocr/meme_no_time_for_that_tiny.gif "$LIB/memes/"
cp "$DATA"/ocr/gen_doc_*.png "$DATA"/ocr/text_*.png "$DATA"/ocr/gen_screenshot_*.png "$LIB/docs/"
cp "$DATA"/ocr/gen_sign_*.jpg "$DATA"/ocr/gen_rotated_90.png "$DATA"/ocr/gen_accents_*.png "$LIB/photos/"
cp "$REPO"/samples/cat_chelsea.png "$REPO"/samples/hubble_deep_field.jpg "$LIB/photos/"
cp "$DATA"/images/broken/truncated_400bytes.jpg "$DATA"/images/broken/zero_bytes.jpg \
   "$DATA"/images/broken/png_bad_crc.png "$LIB/broken/"

"$SB" --db "$DB" index --ocr-lang xqz --ocr "$LIB" 2>"$TMP/lang.err"
expect_eq "missing language exit" 1 $?
grep -q "tesseract-ocr-xqz" "$TMP/lang.err" && ok || fail "missing language names the package: $(cat "$TMP/lang.err")"
"$SB" --db "$DB" index --ocr-lang '../x' --ocr "$LIB" 2>/dev/null
expect_eq "bad language name exit" 2 $?

# no model: OCR only
"$SB" --db "$DB" index --ocr "$LIB" 2>"$TMP/index.err"
expect_eq "index --ocr" 0 $?
grep -q "^ocr (tesseract-" "$TMP/index.err" && ok || fail "ocr report: $(cat "$TMP/index.err")"
st=$("$SB" --db "$DB" status --json)
printf '%s' "$st" | grep -q '"ocr":{"done":[0-9]*,"pending":0,' && ok || fail "ocr stage done: $st"
expect_eq "texts stored" 1 "$(q "$DB" "SELECT count(*) >= 8 FROM texts WHERE source = 'ocr'")"
expect_eq "model recorded" 1 "$(q "$DB" "SELECT count(*) > 0 FROM texts WHERE model LIKE 'tesseract-%:eng'")"

# search by the printed words, no model: the meme first
js=$("$SB" --db "$DB" search "one does not simply" --json 2>/dev/null)
expect_eq "search exit (no model)" 0 $?
printf '%s' "$js" | grep -q '^{"results":\[{"id":[0-9]*,"path":"[^"]*gen_meme_one_does_not_simply.jpg"' && ok || fail "meme first: $js"
printf '%s' "$js" | grep -q '"text":{"ocr":"ONE DOES NOT SIMPLY' && ok || fail "json text: $js"
p=$("$SB" --db "$DB" search --text "invoice 2023" --paths)
expect_eq "--text finds the invoice" "$LIB/docs/gen_doc_invoice_2023.png" "$p"
p=$("$SB" --db "$DB" search --text "passport renewal" --paths)
expect_eq "--text finds turned text" "$LIB/photos/gen_rotated_90.png" "$p"
p=$("$SB" --db "$DB" search --text "creme" --paths)
expect_eq "--text ignores accents" "$LIB/photos/gen_accents_cafe_creme.png" "$p"
p=$("$SB" --db "$DB" search --text "costliest robes" --paths)
expect_eq "--text real text image" "$LIB/docs/text_moby_dick_quote.png" "$p"
"$SB" --db "$DB" search --text "fresh coffee" | grep -q '"FRESH COFFEE OPEN DAILY"' && ok || fail "human excerpt"
out=$("$SB" --db "$DB" search --text 'NEAR("one' '*' 'simply)' --json)
expect_eq "fts syntax is text" 0 $?
"$SB" --db "$DB" search --text --in "$LIB/photos" "invoice" --json | grep -q '"results":\[\]' && ok || fail "--text with a filter"
"$SB" --db "$DB" search --text 2>/dev/null; expect_eq "--text without words" 2 $?

# broken files failed in hashing or decoding (the ocr job with them); the stage went on
errs=$("$SB" --db "$DB" errors --json)
printf '%s' "$errs" | grep -q 'truncated_400bytes.jpg' && ok || fail "truncated file in errors: $errs"
printf '%s' "$errs" | grep -q 'zero_bytes.jpg' && ok || fail "empty file in errors: $errs"

# the setting is remembered: a model run later reads new photos without --ocr, and hybrid
# search puts the photo showing the words first even with a random model
cp "$DATA"/ocr/gen_tilted_6deg.png "$LIB/photos/"
"$SB" --db "$DB" --model "$MODEL" index "$LIB" 2>"$TMP/index2.err"
expect_eq "index with model" 0 $?
expect_eq "new photo read without --ocr" 1 "$(q "$DB" "SELECT count(*) FROM texts t JOIN files f ON f.photo_id = t.photo_id WHERE f.path LIKE '%gen_tilted_6deg.png' AND t.text LIKE '%zone seven%'")"
p=$("$SB" --db "$DB" search "zone seven" -n 1 --paths)
expect_eq "hybrid: words first" "$LIB/photos/gen_tilted_6deg.png" "$p"
p=$("$SB" --db "$DB" search "walk into mordor" -n 1 --paths)
expect_eq "hybrid: meme first" "$LIB/memes/gen_meme_one_does_not_simply.jpg" "$p"
# the web API ranks the same way (search_hybrid is shared)
if command -v curl >/dev/null; then
    "$SB" --db "$DB" --model "$MODEL" serve --port 0 > "$TMP/serve.log" 2>&1 &
    spid=$!
    port=""
    for _ in $(seq 1 100); do
        port=$(grep -o 'http://[0-9.]*:[0-9]*' "$TMP/serve.log" | head -1 | sed 's/.*://')
        [ -n "$port" ] && break
        sleep 0.1
    done
    wid=$(q "$DB" "SELECT photo_id FROM files WHERE path LIKE '%gen_meme_one_does_not_simply.jpg'")
    js=$(curl -s "http://127.0.0.1:$port/api/search?q=walk+into+mordor&n=1")
    printf '%s' "$js" | grep -q "^{\"results\":\[{\"id\":$wid," && ok || fail "web hybrid: meme first: $js"
    kill "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
fi
js=$("$SB" --db "$DB" search "photo" --min-score -1 -n 50 --json)
n=$(printf '%s' "$js" | grep -o '"id":' | wc -l)
[ "$n" -ge 12 ] && ok || fail "plain search still lists everything: $n"
# --no-ocr is remembered too
"$SB" --db "$DB" index --no-ocr "$LIB" 2>/dev/null
expect_eq "ocr setting off" 0 "$(q "$DB" "SELECT value FROM settings WHERE key = 'ocr'")"
"$SB" index --help | grep -q -- "--ocr-lang" && ok || fail "index --help"
"$SB" search --help | grep -q -- "--text" && ok || fail "search --help"
finish
