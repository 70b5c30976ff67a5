/* webp.c - WebP decoding via libwebp (still images) and libwebpdemux (first frame of an
 * animation). Alpha is dropped, as PIL's convert("RGB") does. */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <string.h>
#include <webp/decode.h>
#include <webp/demux.h>

static int decode_anim_first(const unsigned char *buf, size_t len, const char *name,
                             const struct image_decode_params *p, struct image **out,
                             struct image_info *info, struct sb_err *err)
{
    WebPAnimDecoderOptions opt;
    WebPAnimDecoder *dec = NULL;
    struct image *img = NULL;
    int rc = SB_OK;
    if (!WebPAnimDecoderOptionsInit(&opt)) {
        rc = sb_fail(err, SB_EINTERNAL, "decode '%s': libwebp version mismatch", img_label(name));
        goto out;
    }
    opt.color_mode = MODE_RGBA;
    opt.use_threads = 0;
    WebPData data = { buf, len };
    dec = WebPAnimDecoderNew(&data, &opt);
    if (!dec) {
        rc = sb_fail(err, SB_ECORRUPT, "decode '%s': bad animated WebP", img_label(name));
        goto out;
    }
    WebPAnimInfo ai;
    if (!WebPAnimDecoderGetInfo(dec, &ai)) {
        rc = sb_fail(err, SB_ECORRUPT, "decode '%s': bad animated WebP", img_label(name));
        goto out;
    }
    info->width = (int)ai.canvas_width;
    info->height = (int)ai.canvas_height;
    rc = img_check_size(ai.canvas_width, ai.canvas_height, p->max_pixels, name, err);
    if (rc)
        goto out;
    uint8_t *rgba = NULL;
    int ts = 0;
    if (!WebPAnimDecoderGetNext(dec, &rgba, &ts) || !rgba) {
        rc = sb_fail(err, SB_ECORRUPT, "decode '%s': bad first WebP frame", img_label(name));
        goto out;
    }
    img = image_new((int)ai.canvas_width, (int)ai.canvas_height);
    if (!img) {
        rc = sb_fail(err, SB_ENOMEM, "decode '%s': out of memory", img_label(name));
        goto out;
    }
    size_t npx = (size_t)img->w * (size_t)img->h;
    for (size_t i = 0; i < npx; i++)
        memcpy(img->px + 3 * i, rgba + 4 * i, 3);
    *out = img;
    img = NULL;
out:
    image_free(img);
    WebPAnimDecoderDelete(dec);
    return rc;
}

int img_decode_webp(const unsigned char *buf, size_t len, const char *name,
                    const struct image_decode_params *p, struct image **out,
                    struct image_info *info, struct sb_err *err)
{
    struct image *img = NULL;
    int rc = SB_OK;
    WebPBitstreamFeatures f;
    VP8StatusCode st = WebPGetFeatures(buf, len, &f);
    if (st != VP8_STATUS_OK) {
        rc = sb_fail(err, st == VP8_STATUS_NOT_ENOUGH_DATA ? SB_ECORRUPT : SB_EFORMAT,
                     "decode '%s': %s", img_label(name),
                     st == VP8_STATUS_NOT_ENOUGH_DATA ? "truncated WebP data" : "bad WebP header");
        goto out;
    }
    if (f.has_animation) {
        rc = decode_anim_first(buf, len, name, p, out, info, err);
        if (rc)
            goto out;
        info->orientation = img_exif_orientation(buf, len, IMAGE_FMT_WEBP);
        goto out;
    }
    info->width = f.width;
    info->height = f.height;
    rc = img_check_size(f.width, f.height, p->max_pixels, name, err);
    if (rc)
        goto out;
    img = image_new(f.width, f.height);
    if (!img) {
        rc = sb_fail(err, SB_ENOMEM, "decode '%s': out of memory", img_label(name));
        goto out;
    }
    size_t size = (size_t)img->w * (size_t)img->h * 3;
    if (!WebPDecodeRGBInto(buf, len, img->px, size, img->w * 3)) {
        rc = sb_fail(err, SB_ECORRUPT, "decode '%s': bad or truncated WebP data", img_label(name));
        goto out;
    }
    info->orientation = img_exif_orientation(buf, len, IMAGE_FMT_WEBP);
    *out = img;
    img = NULL;
out:
    image_free(img);
    return rc;
}
