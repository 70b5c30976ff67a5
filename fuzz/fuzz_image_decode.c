/* fuzz_image_decode.c - libFuzzer target: image_decode() and image_jpeg_thumbnails() on
 * arbitrary bytes, with a small pixel budget so that legitimate-but-huge inputs do not look
 * like leaks or timeouts. The first byte picks a file name, since the name steers raw
 * detection. */
#include "shoebox/err.h"
#include "shoebox/image.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = { "fuzz.jpg", "fuzz.tif", "fuzz.nef", "fuzz.dng" };
    const char *name = names[size ? data[0] % 4 : 0];
    struct image_decode_params p = image_decode_default_params();
    p.max_pixels = 4u * 1000 * 1000;
    p.min_long = size > 1 ? data[1] : 0;
    struct image *img = NULL;
    struct image_info info;
    struct sb_err err;
    if (image_decode(data, size, name, &p, &img, &info, &err) == SB_OK) {
        struct image *t = image_thumbnail(img, 32);
        image_free(t);
        image_free(img);
    }
    /* the crawler's JPEG thumbnail path (planes, no RGB image) */
    struct image_thumb th[2] = { { .px = p.min_long > 0 ? p.min_long : 64 }, { .px = 16 } };
    int planar = 0;
    if (image_jpeg_thumbnails(data, size, name, p.max_pixels, 85, th, 2, &planar, &info, &err) ==
        SB_OK) {
        free(th[0].jpeg);
        free(th[1].jpeg);
    }
    return 0;
}
