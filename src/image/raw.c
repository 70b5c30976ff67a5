/* raw.c - camera raw via libraw (thread-safe libraw_r). The embedded preview JPEG is used when
 * it covers the requested size (fast, and it is the camera's own rendering); otherwise the raw
 * is developed with libraw's defaults (camera white balance, half size when that suffices).
 * The raw's flip is reported as an EXIF orientation for image.c to apply. */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <libraw.h>
#include <stdlib.h>
#include <string.h>

/* dcraw's flip value -> EXIF orientation (inverse of dcraw's "50132467"[orientation & 7]). */
static int flip_to_orientation(int flip)
{
    static const int map[8] = { 1, 2, 4, 3, 5, 8, 6, 7 };
    return flip >= 0 && flip < 8 ? map[flip] : 1;
}

static int covers(int w, int h, const struct image_decode_params *p)
{
    if (p->min_long <= 0 && p->min_short <= 0)
        return 0; /* full size wanted: develop the raw */
    int lo = w > h ? w : h, sh = w > h ? h : w;
    return lo >= p->min_long && sh >= p->min_short;
}

static int raw_fail(int e, const char *what, const char *name, struct sb_err *err)
{
    int code = e == LIBRAW_FILE_UNSUPPORTED      ? SB_EFORMAT
               : e == LIBRAW_UNSUFFICIENT_MEMORY ? SB_ENOMEM
               : e == LIBRAW_MEMPOOL_OVERFLOW    ? SB_ETOOBIG
               : e == LIBRAW_NO_THUMBNAIL        ? SB_EFORMAT
                                                 : SB_ECORRUPT;
    return sb_fail(err, code, "decode '%s': %s: %s", img_label(name), what, libraw_strerror(e));
}

static int from_thumb(libraw_data_t *lr, const char *name, const struct image_decode_params *p,
                      struct image **out, struct sb_err *err)
{
    libraw_thumbnail_t *t = &lr->thumbnail;
    if (!t->thumb || t->tlength == 0)
        return sb_fail(err, SB_ECORRUPT, "decode '%s': empty raw preview", img_label(name));
    if (t->tformat == LIBRAW_THUMBNAIL_JPEG) {
        struct image_info ti = { 0 };
        return img_decode_jpeg((const unsigned char *)t->thumb, t->tlength, name, p, out, &ti, err);
    }
    /* LIBRAW_THUMBNAIL_BITMAP: packed 8-bit RGB */
    int rc = img_check_size(t->twidth, t->theight, p->max_pixels, name, err);
    if (rc)
        return rc;
    if ((size_t)t->tlength < (size_t)t->twidth * t->theight * 3)
        return sb_fail(err, SB_ECORRUPT, "decode '%s': short raw preview", img_label(name));
    struct image *img = image_new(t->twidth, t->theight);
    if (!img)
        return sb_fail(err, SB_ENOMEM, "decode '%s': out of memory", img_label(name));
    memcpy(img->px, t->thumb, (size_t)t->twidth * t->theight * 3);
    *out = img;
    return SB_OK;
}

static int develop(libraw_data_t *lr, const char *name, const struct image_decode_params *p,
                   struct image **out, struct sb_err *err)
{
    libraw_processed_image_t *pi = NULL;
    struct image *img = NULL;
    int rc = SB_OK, e;
    int w = lr->sizes.width, h = lr->sizes.height;
    lr->params.use_camera_wb = 1;
    lr->params.output_bps = 8;
    lr->params.user_flip = 0; /* we rotate, from the flip saved by the caller */
    lr->params.half_size = covers(w / 2, h / 2, p) ? 1 : 0;
    if ((e = libraw_unpack(lr)) != LIBRAW_SUCCESS) {
        rc = raw_fail(e, "cannot unpack raw data", name, err);
        goto out;
    }
    if ((e = libraw_dcraw_process(lr)) != LIBRAW_SUCCESS) {
        rc = raw_fail(e, "cannot develop raw", name, err);
        goto out;
    }
    pi = libraw_dcraw_make_mem_image(lr, &e);
    if (!pi) {
        rc = raw_fail(e, "cannot develop raw", name, err);
        goto out;
    }
    if (pi->type != LIBRAW_IMAGE_BITMAP || pi->bits != 8 || (pi->colors != 3 && pi->colors != 1)) {
        rc = sb_fail(err, SB_EFORMAT, "decode '%s': unexpected developed raw layout",
                     img_label(name));
        goto out;
    }
    rc = img_check_size(pi->width, pi->height, p->max_pixels, name, err);
    if (rc)
        goto out;
    size_t npx = (size_t)pi->width * pi->height;
    if (pi->data_size < npx * pi->colors) {
        rc = sb_fail(err, SB_ECORRUPT, "decode '%s': short developed raw", img_label(name));
        goto out;
    }
    img = image_new(pi->width, pi->height);
    if (!img) {
        rc = sb_fail(err, SB_ENOMEM, "decode '%s': out of memory", img_label(name));
        goto out;
    }
    for (size_t i = 0; i < npx; i++) {
        const unsigned char *s = pi->data + i * pi->colors;
        unsigned char *d = img->px + 3 * i;
        d[0] = s[0];
        d[1] = pi->colors == 3 ? s[1] : s[0];
        d[2] = pi->colors == 3 ? s[2] : s[0];
    }
    *out = img;
    img = NULL;
out:
    if (pi)
        libraw_dcraw_clear_mem(pi);
    image_free(img);
    return rc;
}

/* libraw's default data-error handler prints to stderr; errors come back as return codes. */
static void quiet_data_error(void *user, const char *file, const int offset)
{
    (void)user;
    (void)file;
    (void)offset;
}

int img_decode_raw(const unsigned char *buf, size_t len, const char *name,
                   const struct image_decode_params *p, struct image **out, struct image_info *info,
                   struct sb_err *err)
{
    libraw_data_t *lr = libraw_init(0);
    int rc = SB_OK, e;
    if (!lr) {
        rc = sb_fail(err, SB_ENOMEM, "decode '%s': cannot start libraw", img_label(name));
        goto out;
    }
    libraw_set_dataerror_handler(lr, quiet_data_error, NULL);
    /* libraw only reads the buffer, but its API takes void *. */
    if ((e = libraw_open_buffer(lr, (void *)(uintptr_t)buf, len)) != LIBRAW_SUCCESS) {
        rc = raw_fail(e, "cannot open raw", name, err);
        goto out;
    }
    int w = lr->sizes.width, h = lr->sizes.height;
    info->width = w;
    info->height = h;
    int flip = lr->sizes.flip;
    rc = img_check_size(lr->sizes.raw_width, lr->sizes.raw_height, p->max_pixels, name, err);
    if (rc)
        goto out;
    rc = img_check_size(w, h, p->max_pixels, name, err);
    if (rc)
        goto out;
    libraw_thumbnail_t *t = &lr->thumbnail;
    int try_thumb =
        (t->tformat == LIBRAW_THUMBNAIL_JPEG || t->tformat == LIBRAW_THUMBNAIL_BITMAP) &&
        covers(t->twidth, t->theight, p);
    rc = SB_EFORMAT;
    if (try_thumb && libraw_unpack_thumb(lr) == LIBRAW_SUCCESS)
        rc = from_thumb(lr, name, p, out, err);
    if (rc == SB_ETOOBIG || rc == SB_ENOMEM)
        goto out;
    if (rc)
        rc = develop(lr, name, p, out, err);
    if (rc)
        goto out;
    info->orientation = flip_to_orientation(flip);
out:
    if (lr)
        libraw_close(lr);
    return rc;
}
