#!/usr/bin/env bash
# End to end: index a library of real and broken files; check counts, metadata, errors,
# thumbnails, clutter and loops; then rescans, changes, moves and deletions.
. "$(dirname "$0")/lib_e2e.sh"

LIB="$TMP/lib"
DB="$TMP/cat/catalog.db"
make_library "$LIB"
nbroken=$(ls "$LIB/broken" | wc -l)

before=$(find "$LIB" -printf '%p %s %T@ %m\n' | sort | md5sum)
"$SB" --db "$DB" index "$LIB" 2>"$TMP/index.err"
expect_eq "index exit status" 0 $?
grep -q "no model set" "$TMP/index.err" && ok || fail "index should say how to get a model"

st=$("$SB" --db "$DB" status --json)
expect_eq "status exit" 0 $?
expect_eq "duplicates" 1 "$(json_num "$st" duplicates)"
expect_eq "hash pending" 0 "$(printf '%s' "$st" | grep -o '"hash":{[^}]*}' | grep -o '"pending":[0-9]*' | cut -d: -f2)"
expect_eq "probe pending" 0 "$(printf '%s' "$st" | grep -o '"probe":{[^}]*}' | grep -o '"pending":[0-9]*' | cut -d: -f2)"
expect_eq "clutter not indexed" 0 "$(q "$DB" "SELECT count(*) FROM files WHERE path LIKE '%/.git/%' OR path LIKE '%@eaDir%' OR path LIKE '%/._%'")"
expect_eq "text file ignored" 3 "$(q "$DB" "SELECT status FROM files WHERE path LIKE '%readme.txt'")"
expect_eq "loop walked once" 0 "$(q "$DB" "SELECT count(*) FROM files WHERE path LIKE '%/loop/%'")"
nfiles=$(json_num "$st" files)
nphotos=$(json_num "$st" photos)
nhashfail=$(printf '%s' "$st" | grep -o '"hash":{[^}]*}' | grep -o '"failed":[0-9]*' | cut -d: -f2)
expect_eq "files = photos + duplicates + unreadable" "$nfiles" "$((nphotos + 1 + nhashfail))"

# metadata, as exiftool reports it (exiftool -n): Nikon D70 sample
row=$(q "$DB" "SELECT p.taken_at, p.make, p.model, p.fnumber, p.exposure_s, p.iso, p.focal_mm, p.width, p.height, p.time_source, p.format FROM photos p JOIN files f ON f.photo_id = p.id WHERE f.path LIKE '%/trip/DSC_0001.jpg'")
expect_eq "nikon metadata" "2008-03-15T09:52:01|NIKON CORPORATION|NIKON D70|9.0|0.005|200|100.0|100|66|exif|jpeg" "$row"
row=$(q "$DB" "SELECT p.taken_at, p.make, p.model, round(p.gps_lat, 5), round(p.gps_lon, 5), p.width, p.height FROM photos p JOIN files f ON f.photo_id = p.id WHERE f.path LIKE '%/gps.jpg'")
expect_eq "gps metadata" "2002-07-13T15:58:28|FUJIFILM|FinePixS1Pro|54.98967|-1.91417|120|80" "$row"
# orientation 6: stored 1200x1800, shown 1800x1200
row=$(q "$DB" "SELECT p.orientation, p.width, p.height FROM photos p JOIN files f ON f.photo_id = p.id WHERE f.path LIKE '%/landscape.jpg'")
expect_eq "orientation applied to size" "6|1800|1200" "$row"
# no EXIF: time from mtime
row=$(q "$DB" "SELECT p.time_source, p.format FROM photos p JOIN files f ON f.photo_id = p.id WHERE f.path LIKE '%/cat.png'")
expect_eq "png without exif" "mtime|png" "$row"

# thumbnails: two per processed photo, JPEG, long edge as asked
nthumb_done=$(q "$DB" "SELECT count(*) FROM jobs WHERE stage = 'thumb' AND state = 1")
nthumbs=$(find "$TMP/cat/thumbs" -name '*.jpg' | wc -l)
expect_eq "thumb files" "$((2 * nthumb_done))" "$nthumbs"
big=$(find "$TMP/cat/thumbs" -name '*-1024.jpg' | head -1)
head -c 3 "$big" | od -An -tx1 | grep -q "ff d8 ff" && ok || fail "thumbnail is not a JPEG"
# the orientation-6 photo's thumbnails (turned after the reduction) are upright: index them
# in a catalog of their own and read their sizes back
lh=$(q "$DB" "SELECT lower(hex(p.hash)) FROM photos p JOIN files f ON f.photo_id = p.id WHERE f.path LIKE '%/landscape.jpg'")
mkdir -p "$TMP/lthumbs"
cp "$TMP/cat/thumbs/${lh:0:2}/$lh-1024.jpg" "$TMP/cat/thumbs/${lh:0:2}/$lh-256.jpg" "$TMP/lthumbs/"
"$SB" --db "$TMP/lthumbcat/catalog.db" index "$TMP/lthumbs" 2>/dev/null
expect_eq "upright thumbnails of an orientation-6 photo" "1024x683 256x171" \
    "$(q "$TMP/lthumbcat/catalog.db" "SELECT group_concat(width || 'x' || height, ' ') FROM (SELECT p.width, p.height FROM photos p ORDER BY p.width DESC)")"
after=$(find "$LIB" -printf '%p %s %T@ %m\n' | sort | md5sum)
expect_eq "library untouched (names, sizes, mtimes, modes)" "$before" "$after"

# errors: every broken file that is not an image, or that failed to decode, is listed
errs=$("$SB" --db "$DB" errors --json)
expect_eq "errors exit" 0 $?
printf '%s' "$errs" | grep -q '"path":"[^"]*zero_bytes.jpg","stage":"hash","error":"empty file"' && ok || fail "zero-byte file error: $errs"
printf '%s' "$errs" | grep -q 'text_file_named.jpg","stage":"hash","error":"not an image' && ok || fail "text file named .jpg"
printf '%s' "$errs" | grep -q 'truncated_400bytes.jpg' && ok || fail "truncated jpeg listed"
nfailed=$(json_num "$st" failed)
[ "$nfailed" -ge 5 ] && [ "$nfailed" -le "$nbroken" ] && ok || fail "failed count $nfailed (broken files: $nbroken)"
"$SB" --db "$DB" errors | grep -q "zero_bytes.jpg" && ok || fail "human errors output"

# rescan of an unchanged tree: no hashing, no decoding
"$SB" --db "$DB" index "$LIB" 2>"$TMP/rescan.err"
expect_eq "rescan exit" 0 $?
grep -q " 0 new or changed, 0 missing, 0 not images), 0 hashed, 0 new photos, 0 processed" "$TMP/rescan.err" && ok || fail "rescan did work: $(cat "$TMP/rescan.err")"

# a move keeps the photo (no new photo, no work); a deletion marks missing
pid=$(q "$DB" "SELECT photo_id FROM files WHERE path LIKE '%/gps.jpg'")
mv "$LIB/2008/gps.jpg" "$LIB/2008/trip/moved_gps.jpg"
rm "$LIB/2008/copy_of_DSC_0001.jpg"
"$SB" --db "$DB" index "$LIB" 2>"$TMP/move.err"
grep -q "1 new or changed, 2 missing" "$TMP/move.err" && ok || fail "move: $(cat "$TMP/move.err")"
grep -q "1 hashed, 0 new photos, 0 processed" "$TMP/move.err" && ok || fail "move re-processed: $(cat "$TMP/move.err")"
expect_eq "moved file keeps its photo" "$pid" "$(q "$DB" "SELECT photo_id FROM files WHERE path LIKE '%/moved_gps.jpg'")"
st=$("$SB" --db "$DB" status --json)
expect_eq "duplicates after delete" 0 "$(json_num "$st" duplicates)"
expect_eq "missing" 2 "$(json_num "$st" missing)"

# a changed file is processed again
cp "$DATA/images/Landscape_1.jpg" "$LIB/2008/landscape.jpg"
"$SB" --db "$DB" index "$LIB" 2>"$TMP/change.err"
grep -q "1 hashed, 1 new photos, 1 processed" "$TMP/change.err" && ok || fail "change: $(cat "$TMP/change.err")"
expect_eq "changed file's new orientation" "1|1800|1200" "$(q "$DB" "SELECT p.orientation, p.width, p.height FROM photos p JOIN files f ON f.photo_id = p.id WHERE f.path LIKE '%/landscape.jpg'")"

# an unreadable file (EACCES): root reads everything, so as root run shoebox as nobody
cp "$DATA/images/Nikon_D70.jpg" "$LIB/2008/secret.jpg"
chmod 000 "$LIB/2008/secret.jpg"
if [ "$(id -u)" = 0 ]; then
    if command -v setpriv >/dev/null; then
        chmod -R a+rwX "$TMP/cat"; chmod a+rwx "$LIB/2008"
        chmod a+x "$TMP" "$LIB"
        setpriv --reuid=65534 --regid=65534 --clear-groups "$SB" --db "$DB" index "$LIB" 2>/dev/null
        "$SB" --db "$DB" errors | grep -A1 "secret.jpg" | grep -q "Permission denied" && ok || fail "EACCES error: $("$SB" --db "$DB" errors | grep -A1 secret)"
    fi
else
    "$SB" --db "$DB" index "$LIB" 2>/dev/null
    "$SB" --db "$DB" errors | grep -A1 "secret.jpg" | grep -q "Permission denied" && ok || fail "EACCES error"
fi
rm -f "$LIB/2008/secret.jpg"

# a path longer than PATH_MAX (4096): recorded with a clear error, the crawl goes on
deep="$LIB/deep"
mkdir -p "$deep"
( cd "$deep" && for i in $(seq 1 18); do d=$(printf 'level%02d_%0240d' "$i" 0); mkdir "$d" && cd "$d"; done
  cp "$DATA/images/Nikon_D70.jpg" ./deep.jpg )
"$SB" --db "$DB" index "$LIB" 2>/dev/null
expect_eq "index with a long path" 0 $?
"$SB" --db "$DB" errors | grep -A1 "deep.jpg" | grep -q "File name too long" && ok || fail "long path error: $("$SB" --db "$DB" errors | grep -A1 deep.jpg | cut -c1-100)"
rm -rf "$deep"

# decompression bombs: refuse above the pixel limit (here 1 MP), with a clear error
mkdir -p "$TMP/bomb"
cp "$DATA/images/Landscape_1.jpg" "$TMP/bomb/big.jpg"
"$SB" --db "$TMP/bomb.db" index --max-pixels 1 "$TMP/bomb" 2>/dev/null
expect_eq "bomb index exit" 0 $?
"$SB" --db "$TMP/bomb.db" errors | grep -A1 "big.jpg" | grep -qi "pixel" && ok || fail "pixel limit error: $("$SB" --db "$TMP/bomb.db" errors)"

# non-UTF-8 file name: indexed, and --json output stays valid UTF-8
cp "$DATA/images/Nikon_D70.jpg" "$LIB/2008/$(printf 'caf\xe9.jpg')"
printf 'garbage' > "$LIB/2008/$(printf 'bad\xff.jpg')"
"$SB" --db "$DB" index "$LIB" 2>/dev/null
expect_eq "non-utf8 indexed" 1 "$(q "$DB" "SELECT count(*) FROM files WHERE hex(path) LIKE '%636166E92E6A7067'")"
"$SB" --db "$DB" errors --json | iconv -f UTF-8 -t UTF-8 >/dev/null && ok || fail "errors --json is not UTF-8"

expect_eq "integrity" ok "$(q "$DB" "PRAGMA integrity_check")"
"$SB" --db "$DB" status >/dev/null; expect_eq "status human exit" 0 $?
"$SB" status --help | grep -q usage && ok || fail "status --help"
"$SB" index 2>/dev/null; expect_eq "index without paths is a usage error" 2 $?
"$SB" --db "$DB" index "$TMP/does-not-exist" 2>/dev/null; expect_eq "missing root fails" 1 $?
finish
