/* fuzz_lrprev.c - the .lrprev section parser against arbitrary bytes: every level it returns
 * must lie inside the input (ASan checks the reads below). */
#include "shoebox/err.h"
#include "shoebox/lightroom.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct lrprev p;
    struct sb_err err;
    if (lrprev_parse(data, size, &p, &err) != SB_OK)
        return 0;
    unsigned sum = 0;
    for (int i = 0; i < p.nlevels; i++) {
        const struct lrprev_level *lv = &p.levels[i];
        if (lv->jpeg < data || lv->len > size || lv->jpeg + lv->len > data + size)
            __builtin_trap();
        sum += lv->jpeg[0] + lv->jpeg[lv->len - 1];
    }
    (void)lrprev_pick(&p, 0);
    return (int)(sum & 0);
}
