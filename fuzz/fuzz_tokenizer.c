/* fuzz_tokenizer.c - libFuzzer targets for the CLIP tokenizer.
 *
 * Built plain: tokenizes arbitrary bytes with the real CLIP vocabulary, loaded once from
 * $SHOEBOX_FUZZ_TOKENIZER_DIR, else SHOEBOX_FUZZ_TOKENIZER_DIR_DEFAULT (set by CMake to
 * tests/data/tokenizer/clip), and checks the output's invariants: bos first, eos last, ids in
 * the vocabulary, and truncation to 77 equal to a prefix of the untruncated ids.
 * Built with -DFUZZ_TOKENIZER_PARSE=1: the input is tokenizer files. First byte even: all of
 * the rest is a tokenizer.json; odd: vocab.json, a NUL byte, then merges.txt. A tokenizer
 * that loads is then used on a few texts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shoebox/err.h"
#include "shoebox/tokenizer.h"

#ifndef SHOEBOX_FUZZ_TOKENIZER_DIR_DEFAULT
#define SHOEBOX_FUZZ_TOKENIZER_DIR_DEFAULT "tests/data/tokenizer/clip"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LONG_IDS 4096

#if FUZZ_TOKENIZER_PARSE

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct clip_tokenizer *tok = NULL;
    struct sb_err err = { 0 };
    if (size < 1)
        return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    int rc;
    if (data[0] % 2 == 0) {
        rc = clip_tokenizer_load_json_mem(s, n, NULL, 0, &tok, &err);
    } else {
        const char *nul = memchr(s, '\0', n);
        size_t vn = nul ? (size_t)(nul - s) : n;
        const char *m = nul ? nul + 1 : NULL;
        size_t mn = nul ? n - vn - 1 : 0;
        rc = clip_tokenizer_load_mem(s, vn, m, mn, NULL, 0, &tok, &err);
    }
    if (rc) {
        if (tok || err.code != rc || !err.msg[0])
            abort(); /* failure must leave *out alone and explain itself */
        return 0;
    }
    static const char *const texts[] = { "a photo of a cat", "don't 42 東京 🐶!", "", "abcab" };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        int32_t ids[77];
        size_t k = 0;
        if (clip_tokenize(tok, texts[i], ids, 77, &k, &err) == 0 &&
            (k < 2 || ids[0] != clip_tokenizer_bos_id(tok) ||
             ids[k - 1] != clip_tokenizer_eos_id(tok)))
            abort();
    }
    clip_tokenizer_free(tok);
    return 0;
}

#else

static struct clip_tokenizer *the_tok; /* loaded once, then only read */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int32_t full[LONG_IDS], cut[77];
    struct sb_err err = { 0 };
    if (!the_tok) {
        const char *dir = getenv("SHOEBOX_FUZZ_TOKENIZER_DIR");
        if (clip_tokenizer_load(dir ? dir : SHOEBOX_FUZZ_TOKENIZER_DIR_DEFAULT, &the_tok, &err))
            abort(); /* no vocabulary: nothing to fuzz; set SHOEBOX_FUZZ_TOKENIZER_DIR */
    }
    size_t nf = 0, nc = 0;
    int rc = clip_tokenize_len(the_tok, (const char *)data, size, full, LONG_IDS, &nf, &err);
    if (rc) {
        if (size <= CLIP_TOKENIZER_MAX_INPUT)
            abort();
        return 0;
    }
    if (clip_tokenize_len(the_tok, (const char *)data, size, cut, 77, &nc, &err))
        abort();
    int32_t bos = clip_tokenizer_bos_id(the_tok), eos = clip_tokenizer_eos_id(the_tok);
    if (nf < 2 || nf > LONG_IDS || full[0] != bos || full[nf - 1] != eos)
        abort();
    for (size_t i = 0; i < nf; i++)
        if (full[i] < 0 || (size_t)full[i] >= clip_tokenizer_vocab_size(the_tok))
            abort();
    /* truncation keeps [bos, first 75, eos] */
    size_t body = nf - 2 < 75 ? nf - 2 : 75;
    if (nc != body + 2 || cut[0] != bos || cut[nc - 1] != eos ||
        memcmp(cut + 1, full + 1, body * sizeof(cut[0])) != 0)
        abort();
    return 0;
}

#endif
