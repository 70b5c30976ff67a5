/* fuzz_xmp.c - the XMP reader and writer against arbitrary bytes (src/interop/xmp*.c): parse
 * the input as a sidecar, scan it for an embedded packet, and merge keywords and a caption
 * into it. Whatever a parse returns must be whole NUL-terminated strings (ASan checks the
 * reads below); a merged document must parse again. */
#include "shoebox/err.h"
#include "shoebox/util.h"
#include "shoebox/xmp.h"

#include <libxml/parser.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t touch(const struct xmp_data *x)
{
    size_t sum = 0;
    for (size_t i = 0; i < x->nkeywords; i++)
        sum += strlen(x->keywords[i]);
    for (size_t i = 0; i < x->nhierarchical; i++)
        sum += strlen(x->hierarchical[i]);
    sum += x->label ? strlen(x->label) : 0;
    sum += x->title ? strlen(x->title) : 0;
    sum += x->description ? strlen(x->description) : 0;
    if (x->rating != XMP_NO_RATING && (x->rating < -1 || x->rating > 5))
        __builtin_trap();
    return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const kw[] = { "dog", "a & b <c>", "Animals|Cat", "\xc3\xa9t\xc3\xa9" };
    struct sb_err err;
    struct xmp_data x;
    size_t sum = 0;
    memset(&x, 0, sizeof(x));
    if (xmp_parse((const char *)data, size, "fuzz", &x, &err) == SB_OK)
        sum += touch(&x);
    xmp_data_release(&x);

    const unsigned char *pkt = NULL;
    size_t plen = 0;
    if (xmp_find_embedded(data, size, &pkt, &plen)) {
        if (pkt < data || plen > size || pkt + plen > data + size)
            __builtin_trap();
        memset(&x, 0, sizeof(x));
        if (xmp_parse((const char *)pkt, plen, "fuzz packet", &x, &err) == SB_OK)
            sum += touch(&x);
        xmp_data_release(&x);
    }

    char *out = NULL;
    size_t out_len = 0, nchanges = 0;
    if (xmp_merge((const char *)data, size, "fuzz", kw, sizeof(kw) / sizeof(kw[0]), "caption", &out,
                  &out_len, &nchanges, NULL, &err) == SB_OK) {
        memset(&x, 0, sizeof(x));
        int rc = xmp_parse(out, out_len, "fuzz merged", &x, &err);
        if (rc != SB_OK && rc != SB_ETOOBIG && rc != SB_ENOMEM)
            __builtin_trap(); /* we wrote something we cannot read back */
        xmp_data_release(&x);
    }
    free(out);
    return (int)(sum & 0);
}
