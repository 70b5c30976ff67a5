#!/usr/bin/env bash
# End to end: rescue the previews of the real Lightroom 5 sample (named after their originals,
# never overwriting), index them with their original paths remembered, import the catalog
# against a folder holding the "originals", and check the user's catalog never changes.
. "$(dirname "$0")/lib_e2e.sh"

LR="$TMP/lr"
mkdir -p "$LR"
cp -r "$DATA/lightroom/." "$LR/" # the test works on a copy of the fixtures
chmod -R a-w "$LR"               # and the copy is read-only, as a user's might be
LRCAT="$LR/Lightroom 5 Catalog.lrcat"
LRDATA="$LR/Lightroom 5 Catalog Previews.lrdata"
DB="$TMP/cat/catalog.db"
before=$(stat -c '%s %Y' "$LRCAT"; md5sum < "$LRCAT")

out=$("$SB" --db "$DB" --json lightroom previews "$LRDATA" -o "$TMP/rescued" 2>"$TMP/prev.err")
expect_eq "previews exit" 0 $?
expect_eq "found" 1 "$(json_num "$out" found)"
expect_eq "written" 1 "$(json_num "$out" written)"
expect_eq "named" 1 "$(json_num "$out" named)"
[ -f "$TMP/rescued/Sample Images/sample3.jpg" ] && ok || fail "rescued file named after its original"
printf '%s' "$out" | grep -q '"original":"/Users/arronhartley/Pictures/Sample Images/sample3.jpg"' && ok ||
    fail "original path in the JSON summary"

# again, with --index: a second file (never overwrite), indexed, originals remembered
"$SB" --db "$DB" lightroom previews "$LRDATA" -o "$TMP/rescued" --index >"$TMP/prev2.out" 2>"$TMP/prev2.err"
expect_eq "previews --index exit" 0 $?
[ -f "$TMP/rescued/Sample Images/sample3-1.jpg" ] && ok || fail "second run writes sample3-1.jpg"
st=$("$SB" --db "$DB" status --json)
expect_eq "indexed previews" 1 "$(json_num "$st" photos)" # both rescues are the same content
expect_eq "originals remembered" 1 "$(q "$DB" "SELECT count(*) FROM original_paths WHERE path LIKE '%sample3-1.jpg' AND original_path LIKE '/Users/%/sample3.jpg'")"

# broken previews: an empty file and a truncated one give clear errors, exit 0
mkdir -p "$TMP/broken.lrdata/0/0000"
: >"$TMP/broken.lrdata/0/0000/empty.lrprev"
head -c 1000 "$LRDATA"/3/3829/*.lrprev >"$TMP/broken.lrdata/0/0000/cut.lrprev"
"$SB" lightroom previews "$TMP/broken.lrdata" -o "$TMP/rescued-broken" 2>"$TMP/broken.err" >/dev/null
expect_eq "broken previews exit" 0 $?
grep -q "empty.lrprev: lrprev: empty file" "$TMP/broken.err" && ok || fail "empty file error"
grep -q "cut.lrprev: lrprev: no complete preview level" "$TMP/broken.err" && ok || fail "truncated file error"
"$SB" lightroom previews "$TMP/nope.lrdata" -o "$TMP/x" 2>/dev/null
expect_eq "missing folder exit" 1 $?

# import: the rescued JPEG stands in for the original, mapped from the Mac path
mkdir -p "$TMP/mac/Sample Images"
cp "$TMP/rescued/Sample Images/sample3.jpg" "$TMP/mac/Sample Images/sample3.jpg"
"$SB" --db "$DB" index "$TMP/mac" 2>/dev/null
out=$("$SB" --db "$DB" --json lightroom import --map "/Users/arronhartley/Pictures=$TMP/mac" "$LRCAT")
expect_eq "import exit" 0 $?
expect_eq "images" 3 "$(json_num "$out" images)"
expect_eq "matched" 1 "$(json_num "$out" matched)"
expect_eq "unmatched" 2 "$(json_num "$out" unmatched)"
expect_eq "lr_images rows" 3 "$(q "$DB" "SELECT count(*) FROM lr_images")"
"$SB" --db "$DB" lightroom import "$TMP/cat/catalog.db" 2>"$TMP/notlr.err" >/dev/null
expect_eq "not a catalog exit" 1 $?
grep -q "not a Lightroom catalog" "$TMP/notlr.err" && ok || fail "not a catalog message"

after=$(stat -c '%s %Y' "$LRCAT"; md5sum < "$LRCAT")
expect_eq "catalog unchanged" "$before" "$after"
[ ! -e "$LRCAT-journal" ] && [ ! -e "$LRCAT-wal" ] && ok || fail "no journal beside the catalog"
chmod -R u+w "$LR"
finish
