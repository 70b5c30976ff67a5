/* fuzz_exif.c - libFuzzer target: meta_parse_exif() on the raw bytes (as an EXIF/TIFF block)
 * and meta_read() on them as a whole file of whatever format they sniff as. */
#include "shoebox/err.h"
#include "shoebox/image.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct photo_meta m;
    struct sb_err err;
    meta_parse_exif(data, size, &m, &err);
    meta_read(data, size, IMAGE_FMT_UNKNOWN, &m, &err);
    return 0;
}
