/* fuzz_safetensors.c - libFuzzer target: st_parse() on arbitrary bytes as a whole
 * safetensors file (header length, JSON header, offsets validated against the data), then a
 * read of every tensor's bytes so that ASan sees any range that escaped validation. */
#include "shoebox/err.h"

#include "internal.h" /* src/model: st_parse is private to the model module */

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct st_file f;
    struct sb_err err;
    if (st_parse(data, size, "fuzz.safetensors", &f, &err) != SB_OK)
        return 0;
    unsigned sum = 0;
    for (size_t i = 0; i < f.n; i++) {
        const struct st_tensor *t = &f.t[i];
        for (size_t k = 0; k < t->nbytes; k++)
            sum += t->data[k];
        if (st_find(&f, t->name) == NULL)
            __builtin_trap(); /* every parsed name must be found again */
    }
    st_file_release(&f);
    return (int)(sum & 0); /* keep the reads */
}
