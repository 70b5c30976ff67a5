/* index_input.h - the model input as `shoebox index` makes it, for the CLIP and SigLIP
 * fidelity tests: a JPEG from the planes of its thumbnails (image_jpeg_planes, the fast
 * resizer), anything else decoded to RGB covering both the thumbnails and the model. */
#ifndef SHOEBOX_TEST_INDEX_INPUT_H
#define SHOEBOX_TEST_INDEX_INPUT_H

#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/model.h"
#include "shoebox/util.h"

#include <stdbool.h>
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

/* The embedding of the photo at path into out: its model input as index_input() makes it when
 * index (then *nplanar counts the ones made from JPEG planes), else decoded to upright RGB
 * covering min_short; clip_preprocess() into px (3 x S x S floats), the image tower. */
static inline int file_embedding(const struct clip_model *m, struct clip_ctx *ctx, const char *path,
                                 int min_short, bool index, int *nplanar, float *px, float *out,
                                 struct sb_err *err)
{
    struct image *img = NULL;
    int rc;
    if (index) {
        int planar = index_input(m, path, min_short, &img, err);
        *nplanar += planar > 0;
        rc = planar < 0 ? SB_EIO : SB_OK;
    } else {
        struct image_decode_params dp = image_decode_default_params();
        dp.min_short = min_short;
        dp.apply_orientation = 1;
        rc = image_decode_file(path, &dp, &img, NULL, err);
    }
    if (!rc)
        rc = clip_preprocess(m, img, px, err);
    if (!rc)
        rc = clip_embed_images(ctx, px, 1, out, err);
    image_free(img);
    return rc;
}

#endif
