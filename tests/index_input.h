/* index_input.h - the model input as `shoebox index` makes it, for the CLIP and SigLIP
 * fidelity tests: a JPEG from the planes of its thumbnails (image_jpeg_planes, the fast
 * resizer), anything else decoded to RGB covering both the thumbnails and the model. */
#ifndef SHOEBOX_TEST_INDEX_INPUT_H
#define SHOEBOX_TEST_INDEX_INPUT_H

#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/model.h"
#include "shoebox/util.h"

#include <stdlib.h>

static inline int index_model_size(void *user, int w, int h, int *ow, int *oh, enum image_filter *f)
{
    const struct clip_model *const *m = user;
    return clip_preprocess_size(*m, w, h, ow, oh, f);
}

/* Returns the planar flag, -1 on failure (err says why). */
static inline int index_input(const struct clip_model *m, const char *path, int min_short,
                              struct image **img, struct sb_err *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int planar = 0, rc = sb_read_file(path, 64u << 20, &buf, &len, err);
    struct image_thumb t[2] = { { .px = 1024 }, { .px = 256 } };
    struct image_model_input mi = { min_short, index_model_size, &m };
    if (!rc)
        rc = image_jpeg_planes(buf, len, path, 1u << 30, 85, t, 2, &mi, img, &planar, NULL, err);
    if (!rc && !planar) {
        struct image_decode_params dp = image_decode_default_params();
        dp.min_short = min_short;
        dp.min_long = 1024;
        rc = image_decode(buf, len, path, &dp, img, NULL, err);
    }
    free(t[0].jpeg);
    free(t[1].jpeg);
    free(buf);
    return rc ? -1 : planar;
}

#endif
