#!/usr/bin/env bash
# The web API end to end with curl: `shoebox serve` on a fresh catalog and a free port, a crawl
# started through POST /api/index (tiny random CLIP model), then every endpoint, bad input,
# path traversal attempts, Host checks (DNS rebinding), the token on POST (CSRF), body limits,
# ETag/304 and the security headers.
. "$(dirname "$0")/lib_e2e.sh"

if ! command -v curl >/dev/null; then
    echo "SKIPPED: curl is not installed" >&2
    exit 0
fi
MODEL="$DATA/models/tiny_b32"
LIB="$TMP/lib"
DB="$TMP/cat/catalog.db"
TOKEN=test-token-0123456789abcdef
mkdir -p "$LIB/orig" "$LIB/copies"
cp "$REPO/samples/"*.jpg "$REPO/samples/"*.png "$LIB/orig/"
cp "$DATA/images/Nikon_D70.jpg" "$LIB/orig/nikon.jpg"
cp "$DATA/library/exiftool_FujiS1Pro_gps_stub.jpg" "$LIB/orig/gps.jpg"
cp "$LIB/orig/nikon.jpg" "$LIB/copies/nikon_copy.jpg"
printf 'not an image' > "$LIB/orig/broken.jpg"

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
}
trap cleanup EXIT

# start_server LOG ARGS... -> sets PORT (waits for the "serving"/"WARNING" line)
start_server() {
    local log="$1"
    shift
    "$SB" "$@" > "$log" 2>&1 &
    PIDS+=($!)
    PORT=""
    for _ in $(seq 1 100); do
        PORT=$(grep -o 'http://[0-9.]*:[0-9]*' "$log" | head -1 | sed 's/.*://')
        [ -n "$PORT" ] && return 0
        sleep 0.1
    done
    echo "server did not start: $(cat "$log")" >&2
    return 1
}

start_server "$TMP/serve.log" --db "$DB" --model "$MODEL" serve --port 0 --token "$TOKEN" || { fail "start"; finish; }
B="http://127.0.0.1:$PORT"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
get() { curl -s "$@"; }

# the page: token embedded, security headers, no inline script
page=$(get "$B/")
printf '%s' "$page" | grep -q "content=\"$TOKEN\"" && ok || fail "token in page"
printf '%s' "$page" | grep -q '<script src="/app.js"' && ok || fail "app.js linked"
printf '%s' "$page" | grep -q '<script>' && fail "inline script" || ok
hdr=$(curl -s -D - -o /dev/null "$B/")
printf '%s' "$hdr" | grep -qi "^Content-Security-Policy: default-src 'self'; img-src 'self' data:" && ok || fail "CSP: $hdr"
printf '%s' "$hdr" | grep -qi '^X-Content-Type-Options: nosniff' && ok || fail "nosniff"
printf '%s' "$hdr" | grep -qi '^Referrer-Policy: no-referrer' && ok || fail "referrer policy"
expect_eq "app.js" 200 "$(code "$B/app.js")"
expect_eq "style.css" 200 "$(code "$B/style.css")"
curl -s -D - -o /dev/null "$B/app.js" | grep -qi '^Content-Type: text/javascript' && ok || fail "app.js type"

# empty catalog
st=$(get "$B/api/status")
printf '%s' "$st" | grep -q '"photos":0' && ok || fail "empty status: $st"
printf '%s' "$st" | grep -q '"crawl":{"running":false' && ok || fail "crawl idle: $st"
js=$(get "$B/api/search?q=cat")
printf '%s' "$js" | grep -q '"results":\[\]' && ok || fail "search before any vector: $js"

# crawl through the API: POST, token, body checks
expect_eq "index: GET" 405 "$(code "$B/api/index")"
expect_eq "index: no token" 403 "$(code -X POST -d "{\"path\":\"$LIB\"}" "$B/api/index")"
expect_eq "index: wrong token" 403 "$(code -X POST -H 'X-Shoebox-Token: nope' -d "{\"path\":\"$LIB\"}" "$B/api/index")"
expect_eq "index: foreign origin" 403 "$(code -X POST -H "X-Shoebox-Token: $TOKEN" -H 'Origin: http://evil.example' -d "{\"path\":\"$LIB\"}" "$B/api/index")"
expect_eq "index: token as cookie is not enough" 403 "$(code -X POST -b "shoebox_token=$TOKEN" -d "{\"path\":\"$LIB\"}" "$B/api/index")"
head -c 100000 /dev/zero | tr '\0' 'a' > "$TMP/big.txt"
expect_eq "index: oversized body" 413 "$(code -X POST -H "X-Shoebox-Token: $TOKEN" --data-binary @"$TMP/big.txt" "$B/api/index")"
expect_eq "index: chunked oversized body" 413 "$(code -X POST -H "X-Shoebox-Token: $TOKEN" -H 'Transfer-Encoding: chunked' --data-binary @"$TMP/big.txt" "$B/api/index")"
expect_eq "index: bad json" 400 "$(code -X POST -H "X-Shoebox-Token: $TOKEN" -d '{"path":' "$B/api/index")"
expect_eq "index: no such folder" 400 "$(code -X POST -H "X-Shoebox-Token: $TOKEN" -d '{"path":"/no/such/folder"}' "$B/api/index")"
r=$(curl -s -w ' %{http_code}' -X POST -H "X-Shoebox-Token: $TOKEN" -H 'Content-Type: application/json' -d "{\"path\":\"$LIB\"}" "$B/api/index")
expect_eq "index: started" "202" "${r##* }"
for _ in $(seq 1 300); do
    st=$(get "$B/api/status")
    printf '%s' "$st" | grep -q '"running":false' && break
    sleep 0.1
done
printf '%s' "$st" | grep -q '"result":"ok"' && ok || fail "crawl finished: $st"
printf '%s' "$st" | grep -q '"photos":8' && ok || fail "8 photos: $st"
printf '%s' "$st" | grep -q '"embed:clip-tiny-b32@[0-9a-f]*":{"done":8' && ok || fail "embedded: $st"
printf '%s' "$st" | grep -q '"vectors":8' && ok || fail "search sees the new vectors: $st"
printf '%s' "$st" | grep -q '"text_search":true' && ok || fail "text search on"

# search: schema like `shoebox search --json`, cutoff, offset, filters
js=$(get "$B/api/search?q=a%20photo%20of%20a%20rocket&n=50&min_score=-1")
expect_eq "search: one result per photo" 8 "$(printf '%s' "$js" | grep -o '"id":' | wc -l)"
printf '%s' "$js" | grep -q '^{"results":\[{"id":[0-9]*,"path":"[^"]*","paths":\["[^"]*"\],"score":[-0-9.e]*,"taken_at":' && ok || fail "search schema: ${js:0:200}"
printf '%s' "$js" | grep -q '"min_score":-1' && ok || fail "min_score echoed"
cli=$("$SB" --db "$DB" search "a photo of a rocket" --min-score -1 -n 50 --json)
expect_eq "same order as the CLI" "$(printf '%s' "$cli" | grep -o '"id":[0-9]*' | tr '\n' ' ')" "$(printf '%s' "$js" | grep -o '"id":[0-9]*' | tr '\n' ' ')"
# queries at once: one borrows the query team (text tower and scan on every core), the others
# run on their own request threads; all must give the one answer
first=$(printf '%s' "$js" | grep -o '"id":[0-9]*' | head -1 | cut -d: -f2)
pids=()
for i in 1 2 3 4 5 6; do
    get -m 60 "$B/api/search?q=a%20photo%20of%20a%20rocket&n=50&min_score=-1" >"$TMP/par$i.json" &
    pids+=($!)
    get -m 60 "$B/api/photos/$first/similar?n=5" >"$TMP/sim$i.json" &
    pids+=($!)
done
wait "${pids[@]}" # not the server's
# the ids in order (a query on the team and one on its own thread may differ in a score's
# last digit: products split otherwise)
ids_of() { grep -o '"id":[0-9]*' "$1" | tr '\n' ' '; }
same=0
for i in 1 2 3 4 5 6; do
    [ "$(ids_of "$TMP/par$i.json")" = "$(ids_of "$TMP/par1.json")" ] &&
        [ "$(ids_of "$TMP/sim$i.json")" = "$(ids_of "$TMP/sim1.json")" ] && same=$((same + 1))
done
expect_eq "concurrent searches agree" 6 "$same"
expect_eq "concurrent search = the sequential one" "$(printf '%s' "$js" | grep -o '"id":[0-9]*' | tr '\n' ' ')" "$(ids_of "$TMP/par1.json")"
grep -q '"results":\[{"id"' "$TMP/sim1.json" && ok || fail "concurrent similar: $(head -c 200 "$TMP/sim1.json")"
js=$(get "$B/api/search?q=a%20photo%20of%20a%20rocket&n=3&offset=3&min_score=-1")
expect_eq "offset" "$(printf '%s' "$cli" | grep -o '"id":[0-9]*' | sed -n 4,6p | tr '\n' ' ')" "$(printf '%s' "$js" | grep -o '"id":[0-9]*' | tr '\n' ' ')"
js=$(get "$B/api/search?q=rocket&min_score=0.999")
printf '%s' "$js" | grep -q '"results":\[\]' && ok || fail "cutoff: $js"
js=$(get "$B/api/search?q=rocket")
printf '%s' "$js" | grep -q '"min_score":0.2' && ok || fail "default text cutoff: $js"
js=$(get "$B/api/search?q=photo&min_score=-1&format=png")
expect_eq "format filter" 3 "$(printf '%s' "$js" | grep -o '"id":' | wc -l)"
js=$(get "$B/api/search?q=photo&min_score=-1&in=$LIB/copies/")
expect_eq "in filter" 1 "$(printf '%s' "$js" | grep -o '"id":' | wc -l)"
js=$(get "$B/api/search?q=photo&min_score=-1&camera=nikon")
expect_eq "camera filter" 1 "$(printf '%s' "$js" | grep -o '"id":' | wc -l)"
js=$(get "$B/api/search?q=photo&min_score=-1&after=2008-01-01&before=2008-12-31")
expect_eq "date filter" 1 "$(printf '%s' "$js" | grep -o '"id":' | wc -l)"
js=$(get "$B/api/search?before=2010-01-01")
printf '%s' "$js" | grep -q '"taken_at":"2008-03-15T09:52:01".*"taken_at":"2002-07-13T15:58:28"' && ok || fail "filters only, newest first: $js"
rid=$(sqlite3 "$DB" "SELECT photo_id FROM files WHERE path LIKE '%orig/rocket_launch_pad_night.jpg'")
nid=$(sqlite3 "$DB" "SELECT photo_id FROM files WHERE path LIKE '%orig/nikon.jpg'")
js=$(get "$B/api/search?q=id:$rid&n=1&min_score=-1")
printf '%s' "$js" | grep -q "\"id\":$rid," && ok || fail "id:N finds itself: $js"
expect_eq "algebra" 200 "$(code "$B/api/search?q=id:$rid%20%2B%20stars%20-%20night&min_score=-1")"
expect_eq "cancelling terms" 400 "$(code "$B/api/search?q=cat%20-%20cat")"
expect_eq "dangling operator" 400 "$(code "$B/api/search?q=cat%20%2B")"
expect_eq "unknown id term" 400 "$(code "$B/api/search?q=id:99999")"
expect_eq "bad n" 400 "$(code "$B/api/search?q=cat&n=0")"
expect_eq "huge n" 400 "$(code "$B/api/search?q=cat&n=100000")"
expect_eq "bad offset" 400 "$(code "$B/api/search?q=cat&offset=-1")"
expect_eq "bad date" 400 "$(code "$B/api/search?after=2020-13-01")"
expect_eq "bad min_score" 400 "$(code "$B/api/search?q=cat&min_score=abc")"
expect_eq "relative folder" 400 "$(code "$B/api/search?in=../etc")"
long=$(head -c 3000 /dev/zero | tr '\0' 'a')
expect_eq "query too long" 400 "$(code "$B/api/search?q=$long")"
huge=$(head -c 70000 /dev/zero | tr '\0' 'a')
c=$(code "$B/api/search?q=$huge")
case "$c" in 4*) ok ;; *) fail "oversized query string: $c" ;; esac
js=$(get "$B/api/search?q=a%20path%20like%20/etc/passwd&min_score=-1")
printf '%s' "$js" | grep -q '"results":\[{' && ok || fail "a path in the query is just text"

# photos
js=$(get "$B/api/photos/$nid")
printf '%s' "$js" | grep -q '"paths":\["[^"]*orig/nikon.jpg","[^"]*copies/nikon_copy.jpg"\]' && ok || fail "photo paths: $js"
printf '%s' "$js" | grep -q '"make":"NIKON CORPORATION","model":"NIKON D70"' && ok || fail "photo exif: $js"
printf '%s' "$js" | grep -q '"tags":\[\]' && ok || fail "photo tags"
printf '%s' "$js" | grep -q '"texts":{},"caption":null' && ok || fail "photo texts: $js"
gid=$(sqlite3 "$DB" "SELECT photo_id FROM files WHERE path LIKE '%orig/gps.jpg'")
get "$B/api/photos/$gid" | grep -q '"gps":{"lat":[-0-9.]*,"lon":[-0-9.]*' && ok || fail "gps"
expect_eq "photo 0" 404 "$(code "$B/api/photos/0")"
expect_eq "photo unknown" 404 "$(code "$B/api/photos/99999")"
expect_eq "photo huge id" 404 "$(code "$B/api/photos/99999999999999999999999")"
expect_eq "photo text id" 404 "$(code "$B/api/photos/abc")"
expect_eq "photo negative id" 404 "$(code "$B/api/photos/-1")"
expect_eq "photo trailing junk" 404 "$(code "$B/api/photos/1x")"
js=$(get "$B/api/photos/$rid/similar?n=50")
printf '%s' "$js" | grep -q "\"query_id\":$rid" && ok || fail "similar: $js"
printf '%s' "$js" | grep -q "\"results\":\[[^]]*\"id\":$rid," && fail "similar returned the photo itself" || ok
expect_eq "similar unknown" 404 "$(code "$B/api/photos/99999/similar")"
expect_eq "similar bad n" 400 "$(code "$B/api/photos/$rid/similar?n=x")"

# browsing
get "$B/api/timeline" | grep -q '{"month":"2008-03","count":1}' && ok || fail "timeline"
get "$B/api/folders" | grep -q "{\"path\":\"$LIB/copies\",\"count\":1}" && ok || fail "folders"
get "$B/api/facets" | grep -q '"cameras":\[.*"NIKON D70"' && ok || fail "facets"
expect_eq "rediscover count" 5 "$(get "$B/api/rediscover?n=5&seed=7" | grep -o '"id":' | wc -l)"
expect_eq "rediscover is seeded" "$(get "$B/api/rediscover?n=5&seed=7")" "$(get "$B/api/rediscover?n=5&seed=7")"
expect_eq "rediscover no repeats" 8 "$(get "$B/api/rediscover?n=50" | grep -o '"id":[0-9]*' | sort -u | wc -l)"
get "$B/api/onthisday?date=03-15" | grep -q '"taken_at":"2008-03-15' && ok || fail "on this day"
expect_eq "on this day bad date" 400 "$(code "$B/api/onthisday?date=3-15")"
js=$(get "$B/api/dupes")
printf '%s' "$js" | grep -q "\"exact\":\[{\"id\":$nid," && ok || fail "dupes: ${js:0:300}"
printf '%s' "$js" | grep -q '"near":\[' && ok || fail "near dupes"
expect_eq "dupes bad threshold" 400 "$(code "$B/api/dupes?threshold=2")"

# files: thumbnails with ETag/304, originals with their type
hdr=$(curl -s -D - -o "$TMP/t.jpg" "$B/thumb/$rid")
printf '%s' "$hdr" | grep -qi '^Content-Type: image/jpeg' && ok || fail "thumb type"
printf '%s' "$hdr" | grep -qi '^Cache-Control: private, max-age' && ok || fail "thumb cache-control"
[ "$(head -c 2 "$TMP/t.jpg" | od -An -tx1 | tr -d ' ')" = "ffd8" ] && ok || fail "thumb is a jpeg"
etag=$(printf '%s' "$hdr" | grep -i '^ETag:' | cut -d' ' -f2 | tr -d '\r')
[ -n "$etag" ] && ok || fail "thumb etag"
expect_eq "thumb 304" 304 "$(code -H "If-None-Match: $etag" "$B/thumb/$rid")"
expect_eq "thumb other etag" 200 "$(code -H 'If-None-Match: "x"' "$B/thumb/$rid")"
expect_eq "thumb 1024" 200 "$(code "$B/thumb/$rid?size=1024")"
expect_eq "thumb bad size" 400 "$(code "$B/thumb/$rid?size=300")"
expect_eq "thumb unknown" 404 "$(code "$B/thumb/99999")"
cmp -s <(get "$B/photo/$rid") "$LIB/orig/rocket_launch_pad_night.jpg" && ok || fail "original bytes"
curl -s -D - -o /dev/null "$B/photo/$rid" | grep -qi '^Content-Type: image/jpeg' && ok || fail "original type jpeg"
pid=$(sqlite3 "$DB" "SELECT photo_id FROM files WHERE path LIKE '%orig/cat_chelsea.png'")
curl -s -D - -o /dev/null "$B/photo/$pid" | grep -qi '^Content-Type: image/png' && ok || fail "original type png"
expect_eq "original unknown" 404 "$(code "$B/photo/99999")"
etag=$(curl -s -D - -o /dev/null "$B/app.js" | grep -i '^ETag:' | cut -d' ' -f2 | tr -d '\r')
expect_eq "static 304" 304 "$(code -H "If-None-Match: $etag" "$B/app.js")"

# traversal: nothing outside the catalog, whatever the spelling
for u in "/photo/../../etc/passwd" "/photo/..%2f..%2fetc%2fpasswd" "/photo/%2e%2e/%2e%2e/etc/passwd" \
         "/thumb/1/../../x" "/thumb/%2e%2e%2f%2e%2e%2fetc%2fpasswd" "/../../etc/passwd" \
         "/%2e%2e/%2e%2e/etc/passwd" "/static/../../../etc/passwd" "/app.js/../../etc/passwd" \
         "/photo/1/../../../etc/passwd" "/api/photos/1/../../../../etc/passwd" \
         "//etc/passwd" "/photo//etc/passwd"; do
    body=$(curl -s --path-as-is -w ' %{http_code}' "$B$u")
    c="${body##* }"
    case "$c" in 4*) ok ;; *) fail "traversal $u: $c" ;; esac
    printf '%s' "$body" | grep -q 'root:' && fail "traversal $u leaked /etc/passwd" || ok
done
# MHD decodes %00 and the URL ends there: "/photo/ID%00.jpg" is photo ID, nothing else
cmp -s <(curl -s "$B/photo/$rid%00.jpg") "$LIB/orig/rocket_launch_pad_night.jpg" && ok || fail "NUL in URL"
expect_eq "unknown page" 404 "$(code "$B/nope")"
expect_eq "unknown api" 404 "$(code "$B/api/nope")"
get "$B/api/nope" | grep -q '^{"error":"not found"}$' && ok || fail "generic json error"

# DNS rebinding: only the names of the address served
expect_eq "host localhost" 200 "$(code -H "Host: localhost:$PORT" "$B/api/status")"
expect_eq "host [::1]" 200 "$(code -H "Host: [::1]:$PORT" "$B/api/status")"
expect_eq "host evil" 403 "$(code -H "Host: evil.example:$PORT" "$B/api/status")"
expect_eq "host wrong port" 403 "$(code -H "Host: 127.0.0.1:1" "$B/api/status")"
expect_eq "host missing" 403 "$(code -0 -H "Host:" "$B/api/status")"
expect_eq "method" 405 "$(code -X DELETE "$B/api/status")"

# a crawl can be stopped; a second one while running is refused
r=$(code -X POST -H "X-Shoebox-Token: $TOKEN" -d "{\"path\":\"$LIB\"}" "$B/api/index")
expect_eq "second crawl starts" 202 "$r"
expect_eq "stop" 200 "$(code -X POST -H "X-Shoebox-Token: $TOKEN" "$B/api/index/stop")"
for _ in $(seq 1 100); do get "$B/api/status" | grep -q '"running":false' && break; sleep 0.1; done
get "$B/api/status" | grep -q '"running":false' && ok || fail "stopped crawl ends"

# remote mode: every request needs the token
start_server "$TMP/serve2.log" --db "$DB" serve --host 0.0.0.0 --port 0 --token "$TOKEN" || fail "start remote"
grep -q WARNING "$TMP/serve2.log" && ok || fail "remote warning"
R="http://127.0.0.1:$PORT"
expect_eq "remote: no token" 401 "$(code "$R/api/status")"
expect_eq "remote: thumb no token" 401 "$(code "$R/thumb/$rid")"
expect_eq "remote: header token" 200 "$(code -H "X-Shoebox-Token: $TOKEN" "$R/api/status")"
expect_eq "remote: cookie token" 200 "$(code -b "shoebox_token=$TOKEN" "$R/thumb/$rid")"
curl -s -D - -o /dev/null "$R/?token=$TOKEN" | grep -qi "^Set-Cookie: shoebox_token=$TOKEN; HttpOnly; SameSite=Strict" && ok || fail "remote: cookie set"

# shutdown on SIGTERM
kill -TERM "${PIDS[0]}"
wait "${PIDS[0]}"
expect_eq "clean exit on SIGTERM" 0 $?

# shutdown with every connection slot taken by idle clients: at once, not after the 60 s
# connection timeout
start_server "$TMP/serve3.log" --db "$DB" serve --port 0 || fail "start full"
FDS=()
for _ in $(seq 1 530); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" 2>/dev/null && FDS+=("$fd")
done
[ "${#FDS[@]}" -ge 512 ] && ok || fail "idle connections opened: ${#FDS[@]}"
kill -TERM "${PIDS[2]}"
stopped=no
for _ in $(seq 1 100); do
    kill -0 "${PIDS[2]}" 2>/dev/null || { stopped=yes; break; }
    sleep 0.1
done
expect_eq "stops within 10 s with 512 idle connections" yes "$stopped"
for fd in "${FDS[@]}"; do exec {fd}>&-; done
finish
