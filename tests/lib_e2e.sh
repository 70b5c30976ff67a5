# lib_e2e.sh - helpers for the end-to-end shell tests (sourced, not run).
# Env from ctest: SHOEBOX_BIN (the binary), SHOEBOX_TESTDATA (tests/data), SHOEBOX_TMP.
set -u
SB="${SHOEBOX_BIN:?}"
DATA="${SHOEBOX_TESTDATA:?}"
REPO="$(cd "$DATA/../.." && pwd)"
TMP="${SHOEBOX_TMP:?}"
rm -rf "$TMP"
mkdir -p "$TMP"
export XDG_DATA_HOME="$TMP/xdg"
unset SHOEBOX_DB SHOEBOX_MODEL
FAILS=0
CHECKS=0

ok() {
    CHECKS=$((CHECKS + 1))
}

fail() {
    CHECKS=$((CHECKS + 1))
    FAILS=$((FAILS + 1))
    echo "FAIL: $*" >&2
}

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then ok; else fail "$1: expected '$2', got '$3'"; fi
}

# json_num JSON KEY -> the first number after "KEY":
json_num() {
    printf '%s' "$1" | grep -o "\"$2\":[0-9.-]*" | head -1 | cut -d: -f2
}

q() { # q DB SQL
    sqlite3 -batch -noheader "$1" "$2"
}

finish() {
    echo "$CHECKS passed checks, $FAILS failed" >&2
    [ "$FAILS" -eq 0 ]
    exit $?
}

# A library: real photos of several formats, a copy (duplicate), clutter, non-images and
# broken files. Prints nothing; fills $1.
make_library() {
    local lib="$1"
    mkdir -p "$lib/2008/trip" "$lib/formats" "$lib/broken" "$lib/.git" "$lib/@eaDir" "$lib/docs"
    cp "$DATA/images/Nikon_D70.jpg" "$lib/2008/trip/DSC_0001.jpg"
    cp "$DATA/images/Nikon_D70.jpg" "$lib/2008/copy_of_DSC_0001.jpg"  # duplicate content
    cp "$DATA/images/Landscape_6.jpg" "$lib/2008/landscape.jpg"
    cp "$DATA/library/exiftool_FujiS1Pro_gps_stub.jpg" "$lib/2008/gps.jpg"
    cp "$REPO/samples/cat_chelsea.png" "$lib/formats/cat.png"
    for f in "$DATA"/images/*.webp "$DATA"/images/*.gif "$DATA"/images/*.tif* "$DATA"/images/cmyk*.jpg; do
        [ -f "$f" ] && cp "$f" "$lib/formats/"
    done
    cp "$DATA/images/broken/"* "$lib/broken/"
    cp "$DATA/images/Nikon_D70.jpg" "$lib/.git/hidden.jpg"          # clutter: never indexed
    cp "$DATA/images/Nikon_D70.jpg" "$lib/@eaDir/synology.jpg"
    cp "$DATA/images/Nikon_D70.jpg" "$lib/2008/._DSC_0001.jpg"
    printf 'notes\n' > "$lib/docs/readme.txt"                       # not an image: ignored
    printf 'x' > "$lib/docs/.DS_Store"
    ln -s .. "$lib/2008/loop"                                        # symlink loop
}
