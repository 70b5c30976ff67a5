/* fuzz_spiece.c - libFuzzer target for the SentencePiece tokenizer (spm.h).
 *
 * First byte 0..127: the rest is text, encoded with the fixture spiece.model (and the
 * byte-fallback one) loaded once from $SHOEBOX_FUZZ_SPIECE_DIR, else the tests/data/siglip/spiece
 * folder CMake names, both raw and through SiglipTokenizer's pipeline; every id must be a piece.
 * First byte 128..255: the rest is a ModelProto (the hand-written protobuf reader, the charsmap
 * trie and the piece table against arbitrary bytes); one that loads encodes a few texts. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoebox/err.h"
#include "shoebox/spm.h"

#ifndef SHOEBOX_FUZZ_SPIECE_DIR_DEFAULT
#define SHOEBOX_FUZZ_SPIECE_DIR_DEFAULT "tests/data/siglip/spiece"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IDS 8192

static void encode_all(const struct spm_tokenizer *t, const char *s, size_t n)
{
    static int32_t ids[MAX_IDS];
    size_t n_ids = 0;
    struct sb_err err;
    if (spm_encode(t, s, n, -1, ids, MAX_IDS, &n_ids, &err) == SB_OK)
        for (size_t i = 0; i < n_ids; i++)
            if (!spm_piece(t, ids[i]))
                __builtin_trap();
    char *z = malloc(n + 1); /* SiglipTokenizer takes a C string */
    if (!z)
        return;
    memcpy(z, s, n);
    z[n] = '\0';
    if (spm_tokenize_siglip(t, z, ids, 64, &n_ids, &err) == SB_OK) {
        if (n_ids < 1 || n_ids > 64)
            __builtin_trap();
        for (size_t i = 0; i < n_ids; i++)
            if (!spm_piece(t, ids[i]))
                __builtin_trap();
    }
    free(z);
}

static struct spm_tokenizer *fixture[2];

static void load_fixtures(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    const char *dir = getenv("SHOEBOX_FUZZ_SPIECE_DIR");
    if (!dir)
        dir = SHOEBOX_FUZZ_SPIECE_DIR_DEFAULT;
    static const char *const names[2] = { "spiece.model", "spiece_bytes.model" };
    for (int i = 0; i < 2; i++) {
        char path[4096];
        struct sb_err err;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (spm_load_file(path, &fixture[i], &err) == SB_OK)
            spm_set_siglip(fixture[i], NULL, &err);
        else
            fprintf(stderr, "fuzz_spiece: %s\n", err.msg);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] < 128) {
        load_fixtures();
        for (int i = 0; i < 2; i++)
            if (fixture[i])
                encode_all(fixture[i], (const char *)data + 1, size - 1);
        return 0;
    }
    struct spm_tokenizer *t = NULL;
    struct sb_err err;
    if (spm_load_mem(data + 1, size - 1, &t, &err) == SB_OK) {
        encode_all(t, "a photo of a cat", 16);
        encode_all(t, "  \xe2\x91\xa0 \xef\xac\x81 caf\xc3\xa9 \xff\xfe x", 19);
        spm_free(t);
    }
    return 0;
}
