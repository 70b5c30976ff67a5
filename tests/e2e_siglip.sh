#!/usr/bin/env bash
# End to end with a tiny random SigLIP model (tests/data/siglip/tiny, tools/gen_siglip.py):
# index, text and image search (with SigLIP's probability-derived default cutoff), similar,
# dupes, embed-text ids against the reference tokenizer (also SigLIP 2's Gemma tokenizer.json),
# and `shoebox models` listing both a CLIP and a SigLIP model in one catalog and which one
# search uses.
. "$(dirname "$0")/lib_e2e.sh"

MODEL="$DATA/siglip/tiny"
CLIP="$DATA/models/tiny_b32"
LIB="$TMP/lib"
DB="$TMP/cat/catalog.db"
mkdir -p "$LIB"
cp "$REPO/samples/"*.jpg "$LIB/"
cp "$LIB/rocket_launch_pad_night.jpg" "$LIB/rocket_copy.jpg"

"$SB" --db "$DB" --model "$MODEL" index "$LIB" 2>"$TMP/index.err"
expect_eq "index with siglip" 0 $?
st=$("$SB" --db "$DB" status --json)
n=$(ls "$REPO/samples/"*.jpg | wc -l)
printf '%s' "$st" | grep -q "\"embed:siglip-tiny@[0-9a-f]*\":{\"done\":$n,\"pending\":0,\"failed\":0}" && ok || fail "embed stage: $st"

# embed-text: SiglipTokenizer ids (lowercase, punctuation dropped, </s>) as the reference gives
js=$("$SB" --model "$MODEL" embed-text "A  Photo of a CAT!" --json)
expect_eq "embed-text exit" 0 $?
want=$(grep -o '"text":"a photo of a cat","ids":\[[0-9,]*\]' "$MODEL/ref.json" | head -1 | grep -o '\[[0-9,]*\]')
printf '%s' "$js" | grep -qF "\"tokens\":$want" && ok || fail "embed-text tokens: ${js:0:200} want $want"

# SigLIP 2 (tests/data/siglip/siglip2: Gemma tokenizer.json): lower-cased Gemma ids ending in
# <eos>, as tools/ref_siglip.py gives them
S2="$DATA/siglip/siglip2"
js=$("$SB" --model "$S2" embed-text "A  Photo of a CAT!" --json)
expect_eq "embed-text siglip2 exit" 0 $?
want=$(grep -o '"text":"A  Photo of a CAT!","ids":\[[0-9,]*\]' "$S2/ref.json" | head -1 | grep -o '\[[0-9,]*\]')
printf '%s' "$js" | grep -qF "\"tokens\":$want" && ok || fail "embed-text siglip2 tokens: ${js:0:200} want $want"

# text search with the default cutoff: the JSON reports the cutoff used, which for SigLIP is the
# cosine where sigmoid(cos * scale + bias) = 0.1 (scale 10, bias -10: (ln(1/9) + 10) / 10)
js=$("$SB" --db "$DB" search "a photo of a rocket" --json)
expect_eq "search exit" 0 $?
ms=$(json_num "$js" min_score)
awk -v m="$ms" 'BEGIN { exit !(m > 0.78 && m < 0.79) }' && ok || fail "siglip default cutoff: $ms"
js=$("$SB" --db "$DB" search "a photo of a rocket" --min-score -1 -n 50 --json)
expect_eq "one result per photo" "$n" "$(printf '%s' "$js" | grep -o '"id":' | wc -l)"
scores=$(printf '%s' "$js" | grep -o '"score":[-0-9.e]*' | cut -d: -f2)
expect_eq "scores best first" "$(printf '%s\n' $scores)" "$(printf '%s\n' $scores | sort -g -r)"

# image query and similar: an exact copy is the same photo; its best other match scores ~1
js=$("$SB" --db "$DB" search "$LIB/hubble_deep_field.jpg" --min-score -1 -n 1 --json)
printf '%s' "$js" | grep -q '"path":"[^"]*hubble_deep_field.jpg"' && ok || fail "image query: ${js:0:200}"
"$SB" --db "$DB" similar "$LIB/Landscape_6.jpg" --min-score -1 -n 3 --json > "$TMP/sim.json"
expect_eq "similar exit" 0 $?
"$SB" --db "$DB" dupes --json > "$TMP/dupes.json"
expect_eq "dupes exit" 0 $?
grep -q 'rocket_copy.jpg' "$TMP/dupes.json" && ok || fail "dupes: $(head -c 300 "$TMP/dupes.json")"

# a second model in the same catalog: models lists both, search uses the last indexed
"$SB" --db "$DB" --model "$CLIP" index "$LIB" 2>>"$TMP/index.err"
expect_eq "index with clip" 0 $?
js=$("$SB" --db "$DB" models --json)
expect_eq "models exit" 0 $?
printf '%s' "$js" | grep -q "{\"name\":\"siglip-tiny@[0-9a-f]*\",\"dim\":32,\"vectors\":$n,\"current\":false}" && ok || fail "models siglip: $js"
printf '%s' "$js" | grep -q "{\"name\":\"clip-tiny-b32@[0-9a-f]*\",\"dim\":24,\"vectors\":$n,\"current\":true}" && ok || fail "models clip: $js"
"$SB" --db "$DB" models | grep -q '^\* clip-tiny-b32@' && ok || fail "models table marks the current one"
# switching back is --model DIR on search
js=$("$SB" --db "$DB" --model "$MODEL" search "rocket" --min-score -1 -n 1 --json)
printf '%s' "$js" | grep -q '"model":"siglip-tiny@' && ok || fail "search --model siglip: ${js:0:300}"

finish
