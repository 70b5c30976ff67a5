/* fuzz_image_decode.c - libFuzzer target: image_decode() and image_jpeg_planes() on
 * arbitrary bytes, with a small pixel budget so that legitimate-but-huge inputs do not look
 * like leaks or timeouts. The first byte picks a file name, since the name steers raw
 * detection. */
#include "shoebox/err.h"
#include "shoebox/image.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A CLIP-like model input: short edge to *user px, the long edge int(size * long / short). */
static int model_size(void *user, int w, int h, int *ow, int *oh, enum image_filter *f)
{
    int size = *(const int *)user, s = w < h ? w : h, l = w < h ? h : w;
    int nl = (int)((double)size * (double)l / (double)s);
    *ow = w < h ? size : nl;
    *oh = w < h ? nl : size;
    *f = IMAGE_FILTER_BICUBIC;
    return 1;
}

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
    /* the same with the embedder's model input from the planes (the indexer with a model) */
    int msize = size > 2 ? 1 + data[2] % 64 : 24;
    struct image_model_input mi = { msize, model_size, &msize };
    struct image *model = NULL;
    if (image_jpeg_planes(data, size, name, p.max_pixels, 85, th, 2, &mi, &model, &planar, &info,
                          &err) == SB_OK) {
        free(th[0].jpeg);
        free(th[1].jpeg);
        image_free(model);
    }
    return 0;
}
