#!/bin/bash
# e2e_tags.sh - auto-tags, user tags, XMP sidecars read at index time and written back, checked
# with an external reader (exiftool).
. "$(dirname "$0")/lib_e2e.sh"
MODEL="$DATA/models/tiny_b32"
DB="$TMP/cat.db"
LIB="$TMP/lib"
mkdir -p "$LIB/raw" "$LIB/dt" "$LIB/dog" "$LIB/bad" "$LIB/ro"
cp "$DATA/images/Nikon_D70.jpg" "$LIB/IMG_0042.jpg"
cp "$DATA/images/Canon_40D.jpg" "$LIB/raw/IMG_0100.jpg"
cp "$DATA/xmp/lightroom_style.xmp" "$LIB/raw/IMG_0100.xmp"         # Lightroom naming
cp "$DATA/images/Landscape_1.jpg" "$LIB/dt/IMG_0200.jpg"
cp "$DATA/xmp/bluesquare.xmp" "$LIB/dt/IMG_0200.jpg.xmp"           # darktable naming
cp "$DATA/images/cmyk_synthetic.jpg" "$LIB/dog/d.jpg"
cp "$DATA/xmp/libavif_dog.xmp" "$LIB/dog/d.xmp"
cp "$DATA/images/Landscape_6.jpg" "$LIB/bad/evil.jpg"
cat > "$LIB/bad/evil.xmp" <<'XML'
<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>
XML
cp "$DATA/images/Nikon_D70.jpg" "$LIB/ro/IMG_0300.jpg"
SUMS_BEFORE=$(find "$LIB" -name '*.jpg' | sort | xargs md5sum)
sb() { "$SB" --db "$DB" "$@"; }

# --tags without a model is a usage error
sb index --tags "$LIB" 2>/dev/null
expect_eq "index --tags without model" 2 $?

sb --model "$MODEL" index --tags "$LIB" 2>"$TMP/index.err"
expect_eq "index --tags exit" 0 $?
expect_eq "auto_tags setting" 1 "$(q "$DB" "SELECT value FROM settings WHERE key='auto_tags'")"
NPH=$(q "$DB" "SELECT count(*) FROM photos")
expect_eq "photos with auto tags" "$NPH" "$(q "$DB" "SELECT count(DISTINCT photo_id) FROM tags WHERE source='auto'")"
MAXK=$(q "$DB" "SELECT max(c) FROM (SELECT count(*) c FROM tags WHERE source='auto' GROUP BY photo_id)")
[ "$MAXK" -le 6 ] && ok || fail "at most 6 auto tags per photo, got $MAXK"
expect_eq "vocabulary cached" 1 "$(q "$DB" "SELECT count(*) FROM blob_cache WHERE key LIKE 'tagvocab:%'")"

# XMP read at index time: keywords (dc:subject + hierarchical leaves), rating, label, title
J=$(sb --json tags "$LIB/raw/IMG_0100.jpg")
for k in boat Harbour Lighthouse; do
    printf '%s' "$J" | grep -q "\"tag\":\"$k\",\"source\":\"xmp\"" && ok || fail "xmp keyword $k: $J"
done
expect_eq "xmp rating/label/title" "4|Red|Harbour at dusk" \
    "$(q "$DB" "SELECT rating, label, title FROM photo_xmp x JOIN files f ON f.photo_id = x.photo_id WHERE f.path LIKE '%IMG_0100.jpg'")"
sb tags "$LIB/dt/IMG_0200.jpg" | grep -q "Blue Square" && ok || fail "darktable sidecar keywords"
sb --json search --tag lighthouse | grep -q IMG_0100 && ok || fail "search --tag on an xmp keyword"
# the hostile sidecar fails that photo's xmp stage with a clear message; the run went on
sb --json errors | grep "evil.jpg" | grep -q "DOCTYPE" && ok || fail "billion laughs sidecar reported"

# user tags: add, list, remove; both spellings
sb tag add "golden retriever" "$LIB/IMG_0042.jpg" "$LIB/raw/IMG_0100.jpg"
expect_eq "tag add exit" 0 $?
sb tags add dog "$LIB/IMG_0042.jpg"
sb tag list "$LIB/IMG_0042.jpg" | grep -E "dog +user" >/dev/null && ok || fail "tag list shows dog"
sb tag add x "$TMP/nope.jpg" 2>/dev/null
expect_eq "tag add on an unknown file" 1 $?
sb tag add temp "$LIB/IMG_0042.jpg" && sb tag remove temp "$LIB/IMG_0042.jpg"
expect_eq "removed" 0 "$(q "$DB" "SELECT count(*) FROM tags WHERE tag='temp'")"
sb --json search --tag DOG | grep -q IMG_0042 && ok || fail "search --tag dog (any case)"

# auto re-tagging replaces only auto rows (the setting is remembered: no --tags this time)
q "$DB" "UPDATE jobs SET state = 0 WHERE stage LIKE 'tags:%'"
q "$DB" "INSERT INTO tags(photo_id, tag, source, score) SELECT photo_id, 'stale-auto', 'auto', 0.9 FROM files WHERE path LIKE '%IMG_0042.jpg'"
sb --model "$MODEL" index "$LIB" 2>/dev/null
expect_eq "user tags kept" 3 "$(q "$DB" "SELECT count(*) FROM tags WHERE source='user'")"
expect_eq "stale auto tag replaced" 0 "$(q "$DB" "SELECT count(*) FROM tags WHERE tag='stale-auto'")"
expect_eq "pending tags jobs" 0 "$(q "$DB" "SELECT count(*) FROM jobs WHERE stage LIKE 'tags:%' AND state = 0")"

# xmp write: dry run writes nothing and lists the changes
NX=$(find "$LIB" -name '*.xmp' | wc -l)
OUT=$(sb xmp write "$LIB" --dry-run 2>/dev/null)
expect_eq "dry run writes nothing" "$NX" "$(find "$LIB" -name '*.xmp' | wc -l)"
printf '%s' "$OUT" | grep -q "+ dc:subject dog" && ok || fail "dry run lists + dc:subject dog: $OUT"
cmp -s "$DATA/xmp/lightroom_style.xmp" "$LIB/raw/IMG_0100.xmp" && ok || fail "dry run changed a sidecar"

chmod 555 "$LIB/ro"
sb xmp write "$LIB" >"$TMP/xmp.out" 2>"$TMP/xmp.err"
expect_eq "xmp write exit (a read-only folder)" 1 $?
grep -q "folder '$LIB/ro' is read-only" "$TMP/xmp.err" && ok || fail "read-only error: $(cat "$TMP/xmp.err")"
[ ! -e "$LIB/ro/IMG_0300.xmp" ] && ok || fail "wrote into a read-only folder"
chmod 755 "$LIB/ro"

# exiftool reads back what we wrote, and what was there before is still there
ET() { exiftool -q -q -s3 "$@"; }
ET -Subject "$LIB/IMG_0042.xmp" | grep -q "dog" && ok || fail "new sidecar: dc:subject dog"
ET -Subject "$LIB/IMG_0042.xmp" | grep -q "golden retriever" && ok || fail "new sidecar: golden retriever"
ET -HierarchicalSubject "$LIB/IMG_0042.xmp" | grep -q "dog" && ok || fail "new sidecar: lr:hierarchicalSubject"
S=$(ET -Subject "$LIB/raw/IMG_0100.xmp")
for k in boat Harbour "golden retriever"; do
    printf '%s' "$S" | grep -q "$k" && ok || fail "merged Lightroom sidecar subject has $k: $S"
done
expect_eq "merged: rating kept" 4 "$(ET -Rating "$LIB/raw/IMG_0100.xmp")"
expect_eq "merged: develop settings kept" "+0.35" "$(ET -Exposure2012 "$LIB/raw/IMG_0100.xmp")"
expect_eq "merged: description kept" "Boats in the old harbour & the lighthouse" \
    "$(ET -Description "$LIB/raw/IMG_0100.xmp")"
grep -q 'acme:Secret="keep me"' "$LIB/raw/IMG_0100.xmp" && ok || fail "unknown namespace kept"
[ ! -e "$LIB/dt/IMG_0200.xmp" ] && ok || fail "darktable: wrote IMG_0200.xmp beside IMG_0200.jpg.xmp"
ET -Subject "$LIB/dt/IMG_0200.jpg.xmp" | grep -q "Blue Square" && ok || fail "darktable sidecar kept its keywords"
expect_eq "dog sidecar: extended XMP kept" 6B36616418AF977799D4D22C0BAB9968 \
    "$(ET -HasExtendedXMP "$LIB/dog/d.xmp")"
[ -n "$(ET -Subject "$LIB/dog/d.xmp")" ] && ok || fail "dog sidecar got keywords"

# a second write changes nothing
sb xmp write "$LIB/raw" 2>"$TMP/xmp2.err" >/dev/null
grep -q "wrote 0 sidecars" "$TMP/xmp2.err" && ok || fail "second write: $(cat "$TMP/xmp2.err")"
# --source user: only the user's tags
rm -f "$LIB/IMG_0042.xmp"
sb xmp write --source user "$LIB/IMG_0042.jpg" 2>/dev/null >/dev/null
expect_eq "--source user" "dog, golden retriever" "$(ET -Subject "$LIB/IMG_0042.xmp")"

# XMP title/description are full-text searchable (texts 'xmp:title', 'xmp:description')
expect_eq "xmp title text" "Harbour at dusk" \
    "$(q "$DB" "SELECT t.text FROM texts t JOIN files f ON f.photo_id = t.photo_id WHERE f.path LIKE '%IMG_0100.jpg' AND t.source='xmp:title'")"
expect_eq "xmp texts in the fts index" 1 \
    "$(q "$DB" "SELECT count(*) FROM texts_fts WHERE texts_fts MATCH 'lighthouse' AND rowid IN (SELECT id FROM texts WHERE source='xmp:description')")"

# a sidecar edited after indexing is read again by the next index (and only that photo's)
sed -i 's/Harbour at dusk/Harbour at night/; s/>boat</>ferry</' "$LIB/raw/IMG_0100.xmp"
touch -d '+1 minute' "$LIB/raw/IMG_0100.xmp"
sb --model "$MODEL" index "$LIB" 2>/dev/null
expect_eq "edited sidecar: title re-read" "Harbour at night" \
    "$(q "$DB" "SELECT title FROM photo_xmp x JOIN files f ON f.photo_id = x.photo_id WHERE f.path LIKE '%IMG_0100.jpg'")"
J=$(sb --json tags "$LIB/raw/IMG_0100.jpg")
printf '%s' "$J" | grep -q '"tag":"ferry","source":"xmp"' && ok || fail "edited sidecar: new keyword: $J"
printf '%s' "$J" | grep -q '"tag":"boat","source":"xmp"' && fail "edited sidecar: old keyword kept: $J" || ok
expect_eq "edited sidecar: fts follows" 1 \
    "$(q "$DB" "SELECT count(*) FROM texts_fts WHERE texts_fts MATCH 'night'")"
# a new sidecar for a photo that had none, and a removed one
printf '%s\n' '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:subject><rdf:Bag><rdf:li>sunset</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>' >"$LIB/ro/IMG_0300.xmp"
rm "$LIB/dt/IMG_0200.jpg.xmp"
sb --model "$MODEL" index "$LIB" 2>/dev/null
sb tags "$LIB/ro/IMG_0300.jpg" | grep -q "sunset" && ok || fail "new sidecar read on the next index"
sb tags "$LIB/dt/IMG_0200.jpg" | grep -q "Blue Square" && fail "removed sidecar: keywords kept" || ok
expect_eq "no xmp job left pending" 0 "$(q "$DB" "SELECT count(*) FROM jobs WHERE stage='xmp' AND state=0")"

expect_eq "originals untouched" "$SUMS_BEFORE" "$(find "$LIB" -name '*.jpg' | sort | xargs md5sum)"
finish
