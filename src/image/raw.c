/* raw.c - camera raw via libraw (thread-safe libraw_r). The embedded preview JPEG is used when
 * it covers the requested size (fast, and it is the camera's own rendering); otherwise the raw
 * is developed with libraw's defaults (camera white balance, half size when that suffices).
 * The raw's flip is reported as an EXIF orientation for image.c to apply.
 *
 * When the raw cannot be developed (sensor data cut short or corrupt: libraw reports data
 * errors but would hand back whatever its buffers held), the camera's preview is used at any
 * size; and when libraw cannot open the file at all (a camera newer than Debian's libraw, a
 * raw whose sensor data was stripped), the largest JPEG embedded in it that decodes, with the
 * orientation its EXIF gives. Only when none of these gives pixels does the file fail. */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <libraw.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

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

/* libraw's default data-error handler prints to stderr; here it counts (a read past the end
 * or corrupt sensor data: libraw goes on, with garbage where the data was missing). */
static void count_data_error(void *user, const char *file, const int offset)
{
    (void)file;
    (void)offset;
    (*(int *)user)++;
}

/* Out of memory or over the pixel limit: no other way to the pixels is tried. */
static bool fatal(int rc)
{
    return rc == SB_ETOOBIG || rc == SB_ENOMEM;
}

/* A JPEG start marker in a raw whose header libjpeg reads, and its size in pixels. */
struct preview {
    size_t off;
    int64_t area;
};

static int larger_first(const void *a, const void *b)
{
    int64_t x = ((const struct preview *)a)->area, y = ((const struct preview *)b)->area;
    return (x < y) - (x > y);
}

/* The largest JPEG embedded in buf that decodes (headers of at most 64 candidate start
 * markers are read; the sensor data's lossless JPEG has no header libjpeg reads). */
static int embedded_jpeg(const unsigned char *buf, size_t len, const char *name,
                         const struct image_decode_params *p, struct image **out,
                         struct sb_err *err)
{
    enum { MAX_CAND = 64 };
    struct preview c[MAX_CAND];
    int n = 0;
    tjhandle h = tjInitDecompress();
    if (!h)
        return sb_fail(err, SB_ENOMEM, "decode '%s': cannot start libjpeg", img_label(name));
    for (size_t i = 0; i + 4 <= len && n < MAX_CAND;) {
        const unsigned char *q = memchr(buf + i, 0xFF, len - i - 3);
        if (!q)
            break;
        i = (size_t)(q - buf);
        if (q[1] == 0xD8 && q[2] == 0xFF && len - i <= (size_t)0xFFFFFFFFu) {
            int w = 0, hh = 0, ss = 0, cs = 0;
            if ((tjDecompressHeader3(h, q, (unsigned long)(len - i), &w, &hh, &ss, &cs) == 0 ||
                 tjGetErrorCode(h) == TJERR_WARNING) &&
                w > 0 && hh > 0) {
                c[n].off = i;
                c[n++].area = (int64_t)w * hh;
            }
        }
        i++;
    }
    tjDestroy(h);
    qsort(c, (size_t)n, sizeof(c[0]), larger_first); /* the first that decodes wins */
    for (int k = 0; k < n; k++) {
        struct image_info ti = { 0 };
        struct sb_err e2;
        int rc = img_decode_jpeg(buf + c[k].off, len - c[k].off, name, p, out, &ti, &e2);
        if (rc == SB_OK || fatal(rc)) {
            if (rc)
                *err = e2;
            return rc;
        }
    }
    return sb_fail(err, SB_EFORMAT, "no embedded preview that decodes"); /* raw_fail_both's tail */
}

/* libraw's error, then why no embedded preview could stand in. */
static int raw_fail_both(int rc, const struct sb_err *raw, const struct sb_err *prev,
                         struct sb_err *err)
{
    return sb_fail(err, rc, "%s; %s", raw->msg, prev->msg);
}

int img_decode_raw(const unsigned char *buf, size_t len, const char *name,
                   const struct image_decode_params *p, struct image **out, struct image_info *info,
                   struct sb_err *err)
{
    libraw_data_t *lr = libraw_init(0);
    int rc = SB_OK, e, data_errors = 0;
    struct sb_err rerr, perr;
    if (!lr)
        return sb_fail(err, SB_ENOMEM, "decode '%s': cannot start libraw", img_label(name));
    libraw_set_dataerror_handler(lr, count_data_error, &data_errors);
    /* libraw only reads the buffer, but its API takes void *. */
    if ((e = libraw_open_buffer(lr, (void *)(uintptr_t)buf, len)) != LIBRAW_SUCCESS) {
        raw_fail(e, "cannot open raw", name, &rerr);
        libraw_close(lr);
        lr = NULL;
        rc = embedded_jpeg(buf, len, name, p, out, &perr);
        if (fatal(rc)) {
            *err = perr;
            return rc;
        }
        if (rc)
            return raw_fail_both(rerr.code, &rerr, &perr, err);
        struct photo_meta m;
        meta_read(buf, len, IMAGE_FMT_RAW, &m, NULL);
        info->width = m.width > 0 && m.height > 0 ? m.width : (*out)->w;
        info->height = m.width > 0 && m.height > 0 ? m.height : (*out)->h;
        info->orientation = m.orientation;
        return SB_OK;
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
    int has_thumb = t->tformat == LIBRAW_THUMBNAIL_JPEG || t->tformat == LIBRAW_THUMBNAIL_BITMAP;
    int thumb_tried = 0;
    rc = SB_EFORMAT;
    if (has_thumb && covers(t->twidth, t->theight, p)) {
        thumb_tried = 1;
        if (libraw_unpack_thumb(lr) == LIBRAW_SUCCESS)
            rc = from_thumb(lr, name, p, out, err);
    }
    if (fatal(rc))
        goto out;
    if (rc) {
        data_errors = 0;
        rc = develop(lr, name, p, out, &rerr);
        if (!rc && data_errors > 0) {
            image_free(*out);
            *out = NULL;
            rc = sb_fail(&rerr, SB_ECORRUPT, "decode '%s': raw data cut short or corrupt",
                         img_label(name));
        }
        if (fatal(rc)) {
            *err = rerr;
            goto out;
        }
    }
    /* a smaller picture beats none */
    if (rc && has_thumb && !thumb_tried && libraw_unpack_thumb(lr) == LIBRAW_SUCCESS)
        rc = from_thumb(lr, name, p, out, &perr);
    if (rc && !fatal(rc))
        rc = embedded_jpeg(buf, len, name, p, out, &perr);
    if (fatal(rc))
        *err = perr; /* the preview's own limit or memory error */
    else if (rc)
        rc = raw_fail_both(rerr.code, &rerr, &perr, err);
    if (rc)
        goto out;
    info->orientation = flip_to_orientation(flip);
out:
    if (lr)
        libraw_close(lr);
    return rc;
}
