#!/bin/bash
# e2e_apple.sh - `shoebox apple import` on a small Photos library in the macOS 13-14 layout
# (Photos.sqlite + search/psi.sqlite built here with sqlite3): index the library, import,
# search by Apple's keywords, labels and OCR text; the library's databases stay unchanged.
. "$(dirname "$0")/lib_e2e.sh"
DB="$TMP/cat.db"
LIB="$TMP/My Photos.photoslibrary"
U1=11111111-1111-1111-2222-222222222222
U2=33333333-3333-3333-4444-444444444444
mkdir -p "$LIB/originals/1" "$LIB/originals/3" "$LIB/database/search"
cp "$DATA/images/Landscape_1.jpg" "$LIB/originals/1/$U1.jpeg"
cp "$DATA/images/Canon_40D.jpg" "$LIB/originals/3/$U2.jpeg"
sqlite3 "$LIB/database/Photos.sqlite" <<SQL
CREATE TABLE ZASSET (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, ZACTIVELIBRARYSCOPEPARTICIPATIONSTATE INTEGER,
  ZFAVORITE INTEGER, ZHIDDEN INTEGER, ZTRASHEDSTATE INTEGER, ZDATECREATED TIMESTAMP, ZLATITUDE FLOAT,
  ZLONGITUDE FLOAT, ZDIRECTORY VARCHAR, ZFILENAME VARCHAR, ZUUID VARCHAR);
CREATE TABLE ZADDITIONALASSETATTRIBUTES (Z_PK INTEGER PRIMARY KEY, ZASSET INTEGER, ZTIMEZONEOFFSET INTEGER,
  ZORIGINALFILENAME VARCHAR, ZTITLE VARCHAR);
CREATE TABLE ZKEYWORD (Z_PK INTEGER PRIMARY KEY, ZTITLE VARCHAR);
CREATE TABLE Z_1KEYWORDS (Z_1ASSETATTRIBUTES INTEGER, Z_40KEYWORDS INTEGER);
CREATE TABLE ZGENERICALBUM (Z_PK INTEGER PRIMARY KEY, ZKIND INTEGER, ZTRASHEDSTATE INTEGER,
  ZPARENTFOLDER INTEGER, ZTITLE VARCHAR);
CREATE TABLE Z_28ASSETS (Z_28ALBUMS INTEGER, Z_3ASSETS INTEGER, Z_FOK_3ASSETS INTEGER);
INSERT INTO ZASSET VALUES (1, 3, 0, 1, 0, 0, 700000000.0, 35.3606, 138.7274, '1', '$U1.jpeg', '$U1'),
  (2, 3, 0, 0, 0, 0, 600000000.0, -180.0, -180.0, '3', '$U2.jpeg', '$U2');
INSERT INTO ZADDITIONALASSETATTRIBUTES VALUES (10, 1, 32400, 'IMG_0001.JPG', 'Fuji at dawn'), (11, 2, 0, 'IMG_0002.JPG', NULL);
INSERT INTO ZKEYWORD VALUES (1, 'mountain'), (2, 'japan');
INSERT INTO Z_1KEYWORDS VALUES (10, 1), (10, 2), (11, 2);
INSERT INTO ZGENERICALBUM VALUES (1, 3999, 0, NULL, NULL), (2, 4000, 0, 1, 'Travel'), (3, 2, 0, 2, 'Japan 2023');
INSERT INTO Z_28ASSETS VALUES (3, 1, 1);
SQL
sqlite3 "$LIB/database/search/psi.sqlite" <<SQL
CREATE TABLE groups (rowid INTEGER PRIMARY KEY, category INT, owning_groupid INT, content_string TEXT,
  normalized_string TEXT, lookup_identifier TEXT);
CREATE TABLE assets (rowid INTEGER PRIMARY KEY, uuid_0 INT, uuid_1 INT);
CREATE TABLE ga (groupid INT, assetid INT);
INSERT INTO groups VALUES (1, 1500, NULL, 'Volcano', 'volcano', ''), (2, 1203, NULL, 'KAWAGUCHIKO STATION', '', '');
INSERT INTO assets VALUES (1, 1229782938247303441, 2459565876494606882);
INSERT INTO ga VALUES (1, 1), (2, 1);
SQL
SUMS_BEFORE=$(find "$LIB" -type f | sort | xargs -d '\n' md5sum; find "$LIB/database" -type f -printf '%p %T@\n' | sort)
sb() { "$SB" --db "$DB" "$@"; }

sb index "$LIB" 2>/dev/null
expect_eq "index the library" 0 $?
J=$(sb --json apple import "$LIB")
expect_eq "apple import exit" 0 $?
expect_eq "assets" 2 "$(json_num "$J" assets)"
expect_eq "matched" 2 "$(json_num "$J" matched)"
expect_eq "labels" 1 "$(json_num "$J" labels)"
printf '%s' "$J" | grep -q '"search_index":true' && ok || fail "search index read: $J"
T=$(sb --json tags "$LIB/originals/1/$U1.jpeg")
for k in mountain japan Volcano; do
    printf '%s' "$T" | grep -q "\"tag\":\"$k\",\"source\":\"apple\"" && ok || fail "apple tag $k: $T"
done
sb --json search --tag volcano | grep -q "$U1" && ok || fail "search --tag on an Apple label"
expect_eq "album" "Travel/Japan 2023" \
    "$(q "$DB" "SELECT album FROM albums WHERE source='apple'")"
expect_eq "ocr text" "KAWAGUCHIKO STATION" "$(q "$DB" "SELECT text FROM texts WHERE source='apple:ocr'")"
expect_eq "title" "Fuji at dawn" "$(q "$DB" "SELECT text FROM texts WHERE source='apple:title'")"
expect_eq "favourite" 1 "$(q "$DB" "SELECT favorite FROM apple_assets WHERE uuid='$U1'")"
# a second import replaces what the first stored
sb apple import "$LIB" >/dev/null
expect_eq "re-import: no duplicate tags" 3 "$(q "$DB" "SELECT count(*) FROM tags WHERE source='apple' AND photo_id = (SELECT photo_id FROM files WHERE path LIKE '%$U1.jpeg')")"

# errors: usage, not a library, an alien database
sb apple import 2>/dev/null
expect_eq "no library: usage" 2 $?
sb apple import "$TMP/nope.photoslibrary" 2>"$TMP/e1"
expect_eq "missing library" 1 $?
mkdir -p "$TMP/Alien.photoslibrary/database"
sqlite3 "$TMP/Alien.photoslibrary/database/Photos.sqlite" "CREATE TABLE t(x)"
sb apple import "$TMP/Alien.photoslibrary" 2>"$TMP/e2"
expect_eq "alien database exit" 1 $?
grep -q "not an Apple Photos database" "$TMP/e2" && ok || fail "alien database message: $(cat "$TMP/e2")"

expect_eq "library untouched" "$SUMS_BEFORE" \
    "$(find "$LIB" -type f | sort | xargs -d '\n' md5sum; find "$LIB/database" -type f -printf '%p %T@\n' | sort)"
finish
