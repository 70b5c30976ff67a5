#!/usr/bin/env bash
# End to end: `shoebox model fetch` and `shoebox model list` against the fake hub of
# test_model_hub (run with --serve; SHOEBOX_HUB_SERVER is its path). Help texts, exit codes,
# stdout/stderr split, an interrupted download resumed by a second run, list --json.
. "$(dirname "$0")/lib_e2e.sh"

SERVER="${SHOEBOX_HUB_SERVER:?}"
unset HF_TOKEN
MODELS="$XDG_DATA_HOME/shoebox/models"

"$SB" model --help >"$TMP/help.out"
expect_eq "model --help exit" 0 $?
grep -q "shoebox model fetch REPO" "$TMP/help.out" && ok || fail "model --help text"
"$SB" model fetch --help >"$TMP/help.out"
expect_eq "model fetch --help exit" 0 $?
grep -q "SHOEBOX_HF_ENDPOINT" "$TMP/help.out" && ok || fail "model fetch --help text"
"$SB" model list --help >/dev/null
expect_eq "model list --help exit" 0 $?
"$SB" model 2>/dev/null
expect_eq "model without a subcommand" 2 $?
"$SB" model frobnicate 2>/dev/null
expect_eq "unknown subcommand" 2 $?
"$SB" model fetch 2>/dev/null
expect_eq "fetch without a repo" 2 $?
"$SB" model fetch 'a/b/c' 2>/dev/null
expect_eq "fetch of a bad repo id" 2 $?

# the fake hub: cut the first weights download halfway
coproc HUB { exec "$SERVER" --serve 1; }
hub_pid=$HUB_PID # bash unsets HUB_PID when the coprocess ends
read -r PORT <&"${HUB[0]}"
[ -n "$PORT" ] && ok || fail "the fake hub did not start"
export SHOEBOX_HF_ENDPOINT="http://127.0.0.1:$PORT"

"$SB" model fetch acme/tiny-clip >"$TMP/fetch.out" 2>"$TMP/fetch.err"
expect_eq "interrupted fetch exit" 1 $?
grep -q "run fetch again to resume" "$TMP/fetch.err" && ok || fail "interrupted fetch message: $(cat "$TMP/fetch.err")"
[ -f "$MODELS/acme--tiny-clip/model.safetensors.part" ] && ok || fail "no .part kept"
expect_eq "nothing on stdout after a failure" "" "$(cat "$TMP/fetch.out")"

out=$("$SB" model fetch acme/tiny-clip 2>"$TMP/fetch.err")
expect_eq "resumed fetch exit" 0 $?
expect_eq "fetch prints the folder" "$MODELS/acme--tiny-clip" "$out"
grep -q "1 resumed" "$TMP/fetch.err" && ok || fail "resume not reported: $(cat "$TMP/fetch.err")"
[ ! -e "$MODELS/acme--tiny-clip/model.safetensors.part" ] && ok || fail ".part left behind"
[ ! -e "$MODELS/acme--tiny-clip/pytorch_model.bin" ] && ok || fail ".bin downloaded"

js=$("$SB" --json model fetch acme/tiny-clip 2>/dev/null)
expect_eq "re-fetch exit" 0 $?
expect_eq "re-fetch downloads nothing" 0 "$(json_num "$js" downloaded)"
expect_eq "re-fetch skips all" 5 "$(json_num "$js" skipped)"

"$SB" model fetch acme/binonly 2>"$TMP/fetch.err"
expect_eq ".bin-only exit" 1 $?
grep -q "only has PyTorch .bin weights; shoebox reads safetensors" "$TMP/fetch.err" && ok || fail ".bin-only message"

"$SB" model fetch acme/gated 2>"$TMP/fetch.err"
expect_eq "gated exit" 1 $?
grep -q "HF_TOKEN" "$TMP/fetch.err" && ok || fail "gated message: $(cat "$TMP/fetch.err")"
HF_TOKEN=hf_test "$SB" model fetch acme/gated >/dev/null 2>&1
expect_eq "gated with a token" 0 $?

"$SB" model fetch acme/missing 2>"$TMP/fetch.err"
expect_eq "missing repo exit" 1 $?
grep -q "not found" "$TMP/fetch.err" && ok || fail "missing repo message"

"$SB" model fetch acme/sharded --revision refs/pr/1 --dir "$TMP/elsewhere" >/dev/null 2>&1
expect_eq "fetch --revision --dir" 0 $?
[ -f "$TMP/elsewhere/model-00002-of-00002.safetensors" ] && ok || fail "--dir not used"

eval "exec ${HUB[1]}>&-"
wait "$hub_pid" 2>/dev/null

ls=$("$SB" model list --json)
expect_eq "list --json exit" 0 $?
printf '%s' "$ls" | grep -q '"repo":"acme/tiny-clip"' && ok || fail "list --json: $ls"
printf '%s' "$ls" | grep -o '"folder":"acme--tiny-clip"[^}]*' | grep -q '"complete":true,"loadable":true' \
    && ok || fail "tiny-clip not complete and loadable: $ls"
"$SB" model list >"$TMP/list.out"
expect_eq "list exit" 0 $?
grep -q "^acme/gated .* complete" "$TMP/list.out" && ok || fail "list table: $(cat "$TMP/list.out")"
"$SB" model list --dir "$TMP/elsewhere-not" >/dev/null 2>&1
expect_eq "list of a missing folder" 0 $?

finish
