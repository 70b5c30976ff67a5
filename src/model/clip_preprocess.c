/* clip_preprocess.c - CLIPImageProcessor (transformers image_processing_clip.py, the PIL
 * "slow" processor): resize so the shortest edge is `size` (PIL resampling via image_resize),
 * centre crop, rescale, normalise, HWC uint8 -> CHW float. */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/image.h"

#include <stdlib.h>

/* Python's a // 2 (floor division), as transformers' center_crop uses it. */
static int floor_half(int a)
{
    return a >= 0 ? a / 2 : -((-a + 1) / 2);
}

/* image_transforms.get_resize_output_image_size(default_to_square=False): the short edge
 * becomes size, the long edge int(size * long / short) (truncated). */
static void shortest_edge_size(int w, int h, int size, int *out_w, int *out_h)
{
    int s = w <= h ? w : h, l = w <= h ? h : w;
    int nl = (int)((double)size * (double)l / (double)s);
    if (w <= h) {
        *out_w = size;
        *out_h = nl;
    } else {
        *out_w = nl;
        *out_h = size;
    }
}

static enum image_filter pil_filter(int resample)
{
    switch (resample) {
    case 1:
        return IMAGE_FILTER_LANCZOS;
    case 2:
        return IMAGE_FILTER_BILINEAR;
    default:
        return IMAGE_FILTER_BICUBIC;
    }
}

int clip_preprocess_size(const struct clip_model *m, int w, int h, int *out_w, int *out_h,
                         enum image_filter *f)
{
    const struct clip_preproc_config *p = &m->pre;
    if (!(m->towers & CLIP_TOWER_VISION) || !p->do_resize || w < 1 || h < 1)
        return 0;
    if (p->size_is_shortest_edge)
        shortest_edge_size(w, h, p->size_short, out_w, out_h);
    else {
        *out_w = p->size_w;
        *out_h = p->size_h;
    }
    *f = pil_filter(p->resample);
    return *out_w >= 1 && *out_h >= 1;
}

int clip_preprocess(const struct clip_model *m, const struct image *rgb, float *out,
                    struct sb_err *err)
{
    const struct clip_preproc_config *p = &m->pre;
    struct image *resized = NULL;
    const struct image *img = rgb;
    int rc = SB_OK;
    if (!(m->towers & CLIP_TOWER_VISION))
        return sb_fail(err, SB_EMODEL, "preprocess: the vision tower is not loaded");
    if (!rgb || rgb->w < 1 || rgb->h < 1 || !rgb->px)
        return sb_fail(err, SB_EINVAL, "preprocess: empty image");
    if (p->do_resize) {
        int w, h;
        if (p->size_is_shortest_edge)
            shortest_edge_size(rgb->w, rgb->h, p->size_short, &w, &h);
        else {
            w = p->size_w;
            h = p->size_h;
        }
        if (w < 1 || h < 1) { /* e.g. a 1 x 100000 strip */
            rc = sb_fail(err, SB_EINVAL, "preprocess: %dx%d image resizes to nothing", rgb->w,
                         rgb->h);
            goto out;
        }
        /* PIL's Image.resize returns a copy when the size is unchanged */
        if (w != rgb->w || h != rgb->h) {
            resized = image_resize(rgb, w, h, pil_filter(p->resample));
            if (!resized) {
                rc = sb_fail(err, SB_ENOMEM, "preprocess: resize %dx%d to %dx%d failed", rgb->w,
                             rgb->h, w, h);
                goto out;
            }
            img = resized;
        }
    }
    /* center_crop: rows from (H - crop_h) // 2, zero padding where the image is smaller */
    int S = m->cfg.image_size;
    int top = p->do_center_crop ? floor_half(img->h - S) : 0;
    int left = p->do_center_crop ? floor_half(img->w - S) : 0;
    for (int ch = 0; ch < 3; ch++) {
        float mean = p->do_normalize ? p->mean[ch] : 0.0f;
        float std = p->do_normalize ? p->std[ch] : 1.0f;
        float scale = p->do_rescale ? p->rescale : 1.0f;
        float *plane = out + (size_t)ch * S * S;
        for (int y = 0; y < S; y++) {
            int sy = top + y;
            for (int x = 0; x < S; x++) {
                int sx = left + x;
                float v = 0.0f;
                if (sy >= 0 && sy < img->h && sx >= 0 && sx < img->w)
                    v = (float)img->px[((size_t)sy * img->w + (size_t)sx) * 3 + (size_t)ch];
                /* transformers normalize: (x * rescale - mean) / std */
                plane[(size_t)y * S + x] = (v * scale - mean) / std;
            }
        }
    }
out:
    image_free(resized);
    return rc;
}
