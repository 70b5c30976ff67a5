/* heif.c - HEIF/HEIC and AVIF decoding via libheif. libheif applies the container's irot/imir
 * (and clap) transforms itself, so the pixels come out upright and info->orientation is 1:
 * the EXIF orientation inside a HEIF must not be applied again (it describes the same turn). */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <libheif/heif.h>
#include <string.h>

static int heif_code(struct heif_error e)
{
    switch (e.code) {
    case heif_error_Memory_allocation_error:
        return SB_ENOMEM;
    case heif_error_Unsupported_filetype:
    case heif_error_Unsupported_feature:
        return SB_EFORMAT;
    case heif_error_Decoder_plugin_error:
        return e.subcode == heif_suberror_Unsupported_codec ? SB_EFORMAT : SB_ECORRUPT;
    default:
        return SB_ECORRUPT;
    }
}

int img_decode_heif(const unsigned char *buf, size_t len, const char *name,
                    const struct image_decode_params *p, struct image **out,
                    struct image_info *info, struct sb_err *err)
{
    struct heif_context *ctx = NULL;
    struct heif_image_handle *h = NULL;
    struct heif_image *him = NULL;
    struct image *img = NULL;
    int rc = SB_OK;
    ctx = heif_context_alloc();
    if (!ctx) {
        rc = sb_fail(err, SB_ENOMEM, "decode '%s': cannot start libheif", img_label(name));
        goto out;
    }
    heif_context_set_max_decoding_threads(ctx, 1); /* callers parallelise across files */
    struct heif_error he = heif_context_read_from_memory_without_copy(ctx, buf, len, NULL);
    if (he.code == heif_error_Ok)
        he = heif_context_get_primary_image_handle(ctx, &h);
    if (he.code != heif_error_Ok) {
        rc = sb_fail(err, heif_code(he), "decode '%s': %s", img_label(name),
                     he.message ? he.message : "bad HEIF container");
        goto out;
    }
    int w = heif_image_handle_get_width(h), hh = heif_image_handle_get_height(h);
    info->width = w;
    info->height = hh;
    rc = img_check_size(w, hh, p->max_pixels, name, err);
    if (rc)
        goto out;
    he = heif_decode_image(h, &him, heif_colorspace_RGB, heif_chroma_interleaved_RGB, NULL);
    if (he.code != heif_error_Ok) {
        rc = sb_fail(err, heif_code(he), "decode '%s': %s", img_label(name),
                     he.message ? he.message : "cannot decode HEIF image");
        goto out;
    }
    int dw = heif_image_get_width(him, heif_channel_interleaved);
    int dh = heif_image_get_height(him, heif_channel_interleaved);
    int stride = 0;
    const uint8_t *plane = heif_image_get_plane_readonly(him, heif_channel_interleaved, &stride);
    if (!plane || dw <= 0 || dh <= 0 || stride < dw * 3 ||
        heif_image_get_bits_per_pixel(him, heif_channel_interleaved) != 24) {
        rc =
            sb_fail(err, SB_ECORRUPT, "decode '%s': unexpected HEIF image layout", img_label(name));
        goto out;
    }
    rc = img_check_size(dw, dh, p->max_pixels, name, err);
    if (rc)
        goto out;
    img = image_new(dw, dh);
    if (!img) {
        rc = sb_fail(err, SB_ENOMEM, "decode '%s': out of memory", img_label(name));
        goto out;
    }
    for (int y = 0; y < dh; y++)
        memcpy(img->px + (size_t)y * (size_t)dw * 3, plane + (size_t)y * (size_t)stride,
               (size_t)dw * 3);
    info->orientation = 1;
    *out = img;
    img = NULL;
out:
    image_free(img);
    if (him)
        heif_image_release(him);
    if (h)
        heif_image_handle_release(h);
    if (ctx)
        heif_context_free(ctx);
    return rc;
}
