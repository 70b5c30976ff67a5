/* image.c - the image module's core: image allocation, the decode dispatcher (sniff, decode,
 * orientation), EXIF orientation transforms and thumbnails. Decoders live in one file per
 * format and return pixels in stored orientation; only this file rotates. */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <stdlib.h>
#include <string.h>

/* Largest file image_decode_file() reads into memory; camera raws stay well below this. */
#define IMG_MAX_FILE_BYTES ((size_t)1 << 30)

struct image *image_new(int w, int h)
{
    if (w <= 0 || h <= 0)
        return NULL;
    size_t n;
    if (!sb_mul3_size((size_t)w, (size_t)h, 3, &n))
        return NULL;
    struct image *img = malloc(sizeof(*img));
    if (!img)
        return NULL;
    img->px = malloc(n);
    if (!img->px) {
        free(img);
        return NULL;
    }
    img->w = w;
    img->h = h;
    return img;
}

void image_free(struct image *img)
{
    if (!img)
        return;
    free(img->px);
    free(img);
}

struct image_decode_params image_decode_default_params(void)
{
    struct image_decode_params p = {
        .min_long = 0,
        .min_short = 0,
        .max_pixels = 200u * 1000u * 1000u,
        .apply_orientation = 1,
    };
    return p;
}

const char *img_label(const char *name)
{
    return name && name[0] ? name : "<memory>";
}

int img_check_size(int64_t w, int64_t h, uint64_t max_pixels, const char *name, struct sb_err *err)
{
    if (w <= 0 || h <= 0)
        return sb_fail(err, SB_ECORRUPT, "decode '%s': invalid image size %lldx%lld",
                       img_label(name), (long long)w, (long long)h);
    /* Each side must fit an int, and a row of RGBA must fit an int too (libraries index rows
     * with int); the pixel count is what max_pixels bounds. */
    if (w > (INT32_MAX / 4) || h > (INT32_MAX / 4) || (uint64_t)w * (uint64_t)h > max_pixels)
        return sb_fail(err, SB_ETOOBIG,
                       "decode '%s': %lldx%lld pixels is over the limit of %llu pixels",
                       img_label(name), (long long)w, (long long)h, (unsigned long long)max_pixels);
    return SB_OK;
}

int img_name_has_ext(const char *name, const char *ext)
{
    if (!name || !ext)
        return 0;
    size_t n = strlen(name), e = strlen(ext);
    if (n < e)
        return 0;
    const char *s = name + n - e;
    for (size_t i = 0; i < e; i++) {
        char a = s[i], b = ext[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (a != b)
            return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Orientation */

void img_orient_px(unsigned char *dst, size_t dstride, const unsigned char *src, size_t sstride,
                   int W, int H, int bpp, int o)
{
    if (o < 1 || o > 8)
        o = 1;
    int dw = o >= 5 ? H : W, dh = o >= 5 ? W : H;
    /* dst(x, y) = src(sx, sy), following PIL's ImageOps.exif_transpose: 2 FLIP_LEFT_RIGHT,
     * 3 ROTATE_180, 4 FLIP_TOP_BOTTOM, 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90.
     * The source pixel of dst(x, y) is at origin + x * xstep + y * ystep, in units of bpp
     * bytes (ws: a source row's stride in those units, W or more). */
    if (sstride % (size_t)bpp)
        return; /* never: strides are whole pixels */
    ptrdiff_t ws = (ptrdiff_t)(sstride / (size_t)bpp), x1 = W - 1, y1 = (ptrdiff_t)(H - 1) * ws;
    ptrdiff_t origin, xstep, ystep;
    switch (o) {
    case 2: /* sx = W-1-x, sy = y */
        origin = x1, xstep = -1, ystep = ws;
        break;
    case 3: /* sx = W-1-x, sy = H-1-y */
        origin = y1 + x1, xstep = -1, ystep = -ws;
        break;
    case 4: /* sx = x, sy = H-1-y */
        origin = y1, xstep = 1, ystep = -ws;
        break;
    case 5: /* sx = y, sy = x */
        origin = 0, xstep = ws, ystep = 1;
        break;
    case 6: /* sx = y, sy = H-1-x */
        origin = y1, xstep = -ws, ystep = 1;
        break;
    case 7: /* sx = W-1-y, sy = H-1-x */
        origin = y1 + x1, xstep = -ws, ystep = -1;
        break;
    case 8: /* sx = W-1-y, sy = x */
        origin = x1, xstep = ws, ystep = -1;
        break;
    default:
        for (int y = 0; y < H; y++)
            memcpy(dst + (size_t)y * dstride, src + (size_t)y * sstride, (size_t)W * (size_t)bpp);
        return;
    }
    /* 32 x 32 tiles keep the column walks of the quarter turns within the cache */
    enum { TILE = 32 };
    for (int ty = 0; ty < dh; ty += TILE) {
        int yend = ty + TILE < dh ? ty + TILE : dh;
        for (int tx = 0; tx < dw; tx += TILE) {
            int xend = tx + TILE < dw ? tx + TILE : dw;
            for (int y = ty; y < yend; y++) {
                unsigned char *d = dst + (size_t)y * dstride + (size_t)tx * (size_t)bpp;
                const unsigned char *s = src + (origin + tx * xstep + y * ystep) * bpp;
                if (bpp == 1) {
                    for (int x = tx; x < xend; x++, s += xstep)
                        *d++ = *s;
                    continue;
                }
                for (int x = tx; x < xend; x++, d += 3, s += xstep * 3) {
                    d[0] = s[0];
                    d[1] = s[1];
                    d[2] = s[2];
                }
            }
        }
    }
}

struct image *image_orient(const struct image *img, int o)
{
    if (!img || !img->px)
        return NULL;
    struct image *dst = o >= 5 && o <= 8 ? image_new(img->h, img->w) : image_new(img->w, img->h);
    if (dst)
        img_orient_px(dst->px, (size_t)dst->w * 3, img->px, (size_t)img->w * 3, img->w, img->h, 3,
                      o);
    return dst;
}

/* ---------------------------------------------------------------------------------------- */
/* Decoding */

static img_decoder_fn decoder_for(enum image_format f)
{
    switch (f) {
    case IMAGE_FMT_JPEG:
        return img_decode_jpeg;
    case IMAGE_FMT_PNG:
        return img_decode_png;
    case IMAGE_FMT_WEBP:
        return img_decode_webp;
    case IMAGE_FMT_HEIF:
    case IMAGE_FMT_AVIF:
        return img_decode_heif;
    case IMAGE_FMT_TIFF:
        return img_decode_tiff;
    case IMAGE_FMT_GIF:
        return img_decode_gif;
    case IMAGE_FMT_RAW:
        return img_decode_raw;
    case IMAGE_FMT_UNKNOWN:
        break;
    }
    return NULL;
}

int image_decode(const unsigned char *buf, size_t len, const char *name,
                 const struct image_decode_params *p, struct image **out, struct image_info *info,
                 struct sb_err *err)
{
    struct image *img = NULL;
    struct image_decode_params dp = image_decode_default_params();
    if (p)
        dp = *p;
    if (!buf && len)
        return sb_fail(err, SB_EINVAL, "decode '%s': no buffer", img_label(name));
    if (dp.min_long < 0 || dp.min_short < 0)
        return sb_fail(err, SB_EINVAL, "decode '%s': negative minimum size", img_label(name));
    if (len == 0)
        return sb_fail(err, SB_EFORMAT, "decode '%s': empty file", img_label(name));

    struct image_info inf = { .format = image_sniff(buf, len, name), .orientation = 1 };
    img_decoder_fn fn = decoder_for(inf.format);
    if (!fn)
        return sb_fail(err, SB_EFORMAT, "decode '%s': not a recognised image format",
                       img_label(name));
    int rc = fn(buf, len, name, &dp, &img, &inf, err);
    if (rc)
        goto out;
    if (inf.orientation < 1 || inf.orientation > 8)
        inf.orientation = 1;
    if (dp.apply_orientation && inf.orientation != 1) {
        struct image *r = image_orient(img, inf.orientation);
        if (!r) {
            rc = sb_fail(err, SB_ENOMEM, "decode '%s': out of memory rotating %dx%d",
                         img_label(name), img->w, img->h);
            goto out;
        }
        image_free(img);
        img = r;
    }
    *out = img;
    img = NULL;
out:
    if (info) /* on failure too: the size a readable header gave (see image.h) */
        *info = inf;
    image_free(img);
    return rc;
}

int image_decode_file(const char *path, const struct image_decode_params *p, struct image **out,
                      struct image_info *info, struct sb_err *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = sb_read_file(path, IMG_MAX_FILE_BYTES, &buf, &len, err);
    if (rc)
        goto out;
    rc = image_decode(buf, len, path, p, out, info, err);
out:
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Thumbnails */

void img_thumb_size(int w, int h, int px, int *tw, int *th)
{
    *tw = w;
    *th = h;
    if (w <= px && h <= px)
        return;
    if (w >= h) {
        *tw = px;
        *th = (int)(((int64_t)h * px + w / 2) / w);
    } else {
        *th = px;
        *tw = (int)(((int64_t)w * px + h / 2) / h);
    }
    if (*tw < 1)
        *tw = 1;
    if (*th < 1)
        *th = 1;
}

struct image *image_thumbnail(const struct image *img, int px)
{
    if (!img || !img->px || px <= 0)
        return NULL;
    int tw, th;
    img_thumb_size(img->w, img->h, px, &tw, &th);
    if (tw == img->w && th == img->h)
        return image_orient(img, 1); /* a copy */
    return image_resize_fast(img, tw, th, IMAGE_FILTER_BICUBIC);
}
