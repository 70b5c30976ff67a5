/* fuzz_bpe.c - libFuzzer target for the tokenizer.json BPE tokenizers (bpe.h).
 *
 * First byte 0..127: the rest is text, encoded with each fixture tokenizer (loaded once from
 * $SHOEBOX_FUZZ_BPE_DIR/{llama_smol,qwen2_bf16,llama_ms_f16}, else the tests/data/lm folder
 * CMake names), then decoded; checks: the call succeeds, every id decodes, and the decoded
 * text is valid UTF-8 with a NUL at its end. First byte 128..255: the rest is a tokenizer.json
 * (bytes up to a NUL) and a tokenizer_config.json (after it); one that loads is used on a few
 * texts and its chat template applied. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoebox/bpe.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#ifndef SHOEBOX_FUZZ_BPE_DIR_DEFAULT
#define SHOEBOX_FUZZ_BPE_DIR_DEFAULT "tests/data/lm"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IDS 8192

static void roundtrip(const struct bpe_tokenizer *t, const char *s, size_t n)
{
    static int32_t ids[MAX_IDS];
    size_t n_ids = 0;
    struct sb_err err = { 0 };
    int rc = bpe_encode(t, s, n, true, ids, MAX_IDS, &n_ids, &err);
    if (rc == SB_ETOOBIG || rc == SB_ENOMEM)
        return;
    if (rc)
        abort(); /* any text must tokenize */
    struct sb_buf out;
    sb_buf_init(&out);
    for (int skip = 0; skip < 2; skip++) {
        out.len = 0;
        if (bpe_decode(t, ids, n_ids, skip, &out, &err) != SB_OK && !out.failed)
            abort(); /* every id the encoder made must decode */
        if (out.data && out.data[out.len] != '\0')
            abort();
    }
    sb_buf_release(&out);
}

static const struct bpe_tokenizer *fixtures[3];

static void load_fixtures(void)
{
    static const char *const names[] = { "llama_smol", "qwen2_bf16", "llama_ms_f16" };
    const char *dir = getenv("SHOEBOX_FUZZ_BPE_DIR");
    if (!dir)
        dir = SHOEBOX_FUZZ_BPE_DIR_DEFAULT;
    for (int i = 0; i < 3; i++) {
        char path[4096];
        struct bpe_tokenizer *t = NULL;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (bpe_load(path, &t, NULL) != SB_OK) {
            fprintf(stderr, "fuzz_bpe: cannot load '%s'\n", path);
            abort();
        }
        fixtures[i] = t;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] < 128) {
        if (!fixtures[0])
            load_fixtures();
        for (int i = 0; i < 3; i++)
            roundtrip(fixtures[i], s, n);
        return 0;
    }
    const char *nul = memchr(s, '\0', n);
    size_t jl = nul ? (size_t)(nul - s) : n;
    const char *cfg = nul ? nul + 1 : NULL;
    size_t cl = nul ? n - jl - 1 : 0;
    struct bpe_tokenizer *t = NULL;
    if (bpe_load_mem(s, jl, cfg, cl, &t, NULL) != SB_OK)
        return 0;
    static const char *const texts[] = { "Hello world", " a  b\n\nc 123 <s>", "caf\xc3\xa9 \xff" };
    for (size_t i = 0; i < 3; i++)
        roundtrip(t, texts[i], strlen(texts[i]));
    const struct bpe_chat_msg msg = { "user", "hi", 1 };
    struct sb_buf out;
    sb_buf_init(&out);
    bpe_chat_apply(t, &msg, 1, true, &out, NULL);
    sb_buf_release(&out);
    bpe_free(t);
    return 0;
}
