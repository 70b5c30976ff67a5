#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each, seeded from the test fixtures.
# Usage: fuzz/run.sh BUILD_DIR [SECONDS]   (build with -DSHOEBOX_FUZZ=ON, clang)
set -euo pipefail
build="$1"
secs="${2:-20}"
here="$(cd "$(dirname "$0")" && pwd)"
data="$here/../tests/data"
work="$build/fuzz-corpus"
rm -rf "$work"

seed() { # seed NAME FILES...: a fresh corpus folder for NAME holding copies of FILES
    local dir="$work/$1"
    shift
    mkdir -p "$dir"
    for f in "$@"; do
        [ -f "$f" ] && cp "$f" "$dir/$(echo "$f" | md5sum | cut -c1-16)"
    done
    echo "$dir"
}

run() { # run TARGET CORPUS [extra libFuzzer flags]
    local t="$1" c="$2"
    shift 2
    echo "== $t ($secs s) =="
    local log="$work/$t.log" rc=0
    "$build/fuzz/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$work/$t-" "$@" "$c" > "$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then # the finding, its stack and the input that made it
        grep -v '^#[0-9]' "$log" | tail -60
        return "$rc"
    fi
    tail -3 "$log"
}

imgs=$(seed images $(find "$data/images" -type f -size -300k))
run fuzz_image_decode "$imgs" -max_len=262144
run fuzz_exif "$(seed exif $(find "$data/images" \( -name '*.jp*g' -o -iname '*.cr3' \) -size -100k))" -max_len=65536
run fuzz_tokenizer "$(seed tok "$data/tokenizer/clip_cases.jsonl")" -max_len=4096
run fuzz_tokenizer_parse "$(seed tokparse "$data/tokenizer/clip/special_tokens_map.json" "$data/tokenizer/clip/tokenizer_config.json")" -max_len=65536
run fuzz_safetensors "$(seed st $(find "$data/models" -name '*.safetensors' -size -200k))" -max_len=262144
run fuzz_config "$(seed cfg $(find "$data/models" -name '*config*.json'))" -max_len=16384
run fuzz_lrprev "$(seed lrprev "$data/lightroom/Lightroom 5 Catalog Previews.lrdata"/*/*/*.lrprev)" -max_len=65536
run fuzz_bpe "$(seed bpe "$data/lm/qwen2_bf16/tokenizer_config.json" "$data/lm/llama_ms_f16/tokenizer_config.json")" -max_len=65536
run fuzz_spiece "$(seed spiece "$data/siglip/spiece/cases.json" "$data/siglip/tiny/tokenizer_config.json")" -max_len=8192
run fuzz_xmp "$(seed xmp "$data"/xmp/*.xmp)" -max_len=65536
run fuzz_query "$(seed query "$here"/corpus/query/*)" -max_len=4096
run fuzz_takeout "$(seed takeout "$here"/corpus/takeout/*)" -max_len=65536
run fuzz_http "$(seed http "$here"/corpus/http/*)" -max_len=32768
run fuzz_vlm_config "$(seed vlm_config "$here"/corpus/vlm_config/*)" -max_len=65536
