/* jpeg.c - JPEG decoding with DCT scaling and JPEG encoding, both via libturbojpeg's TurboJPEG
 * 2.x API (Debian 12 ships 2.1, which has no tj3 functions). */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

int64_t img_jpeg_find_soi(const unsigned char *buf, size_t len)
{
    size_t lim = len < 65536 ? len : 65536;
    for (size_t i = 0; i + 3 <= lim; i++)
        if (buf[i] == 0xFF && buf[i + 1] == 0xD8 && buf[i + 2] == 0xFF)
            return (int64_t)i;
    return -1;
}

int img_jpeg_find_exif(const unsigned char *buf, size_t len, size_t *off, size_t *n)
{
    int64_t soi = img_jpeg_find_soi(buf, len);
    if (soi < 0)
        return 0;
    size_t i = (size_t)soi + 2;
    while (i + 4 <= len) {
        if (buf[i] != 0xFF) {
            i++; /* tolerate stray bytes between segments, as libjpeg does */
            continue;
        }
        unsigned m = buf[i + 1];
        if (m == 0xFF) {
            i++; /* fill byte */
            continue;
        }
        if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) {
            i += 2;
            continue;
        }
        if (m == 0xDA || m == 0xD9)
            return 0; /* image data starts: EXIF must come before it */
        size_t seg = (size_t)buf[i + 2] << 8 | buf[i + 3];
        if (seg < 2)
            return 0;
        size_t start = i + 4, plen = seg - 2;
        if (plen > len - start)
            plen = len - start; /* a truncated segment still yields what is there */
        if (m == 0xE1 && plen >= 6 && memcmp(buf + start, "Exif\0\0", 6) == 0) {
            *off = start;
            *n = plen;
            return 1;
        }
        i = start + plen;
    }
    return 0;
}

static int tj_fail(tjhandle h, const char *what, const char *name, struct sb_err *err)
{
    const char *m = h ? tjGetErrorStr2(h) : tjGetErrorStr2(NULL);
    return sb_fail(err, SB_ECORRUPT, "decode '%s': %s: %s", img_label(name), what,
                   m ? m : "unknown libjpeg error");
}

/* Picks the smallest DCT scaling factor <= 1 whose output covers min_long x min_short; the
 * full size when nothing smaller does, or when both minimums are 0. */
static void pick_scale(int w, int h, int min_long, int min_short, int *sw, int *sh)
{
    *sw = w;
    *sh = h;
    if (min_long <= 0 && min_short <= 0)
        return;
    int n = 0;
    tjscalingfactor *sf = tjGetScalingFactors(&n);
    if (!sf)
        return;
    for (int i = 0; i < n; i++) {
        if (sf[i].num <= 0 || sf[i].denom <= 0 || sf[i].num > sf[i].denom)
            continue;
        int tw = TJSCALED(w, sf[i]), th = TJSCALED(h, sf[i]);
        int lo = tw > th ? tw : th, sh_ = tw > th ? th : tw;
        if (lo < min_long || sh_ < min_short)
            continue;
        if ((int64_t)tw * th < (int64_t)*sw * *sh) {
            *sw = tw;
            *sh = th;
        }
    }
}

/* The outcome of a tjDecompress* call that returned r. */
static int decode_result(tjhandle h, int r, const char *name, struct sb_err *err)
{
    if (r == 0)
        return SB_OK;
    const char *m = tjGetErrorStr2(h);
    if (tjGetErrorCode(h) != TJERR_WARNING)
        return tj_fail(h, "bad JPEG data", name, err);
    /* A warning leaves a decoded image. Premature end of data means the bottom of the
     * picture is grey filler: report it instead of indexing a half picture. Other warnings
     * (stray bytes between markers, a short APPn) are harmless, as in PIL. */
    if (m && strstr(m, "Premature end"))
        return sb_fail(err, SB_ECORRUPT, "decode '%s': truncated JPEG data", img_label(name));
    return SB_OK;
}

/* PIL reads 4-component JPEGs as Adobe-inverted CMYK ("CMYK;I") and converts with
 * libImaging/Convert.c cmyk2rgb: out = nk - nk * c / 255 (rounded as MULDIV255), nk = 255 - k.
 * libjpeg hands us the stored (inverted) values, so c = 255 - stored. */
static unsigned char cmyk_chan(unsigned stored_c, unsigned stored_k)
{
    unsigned c = 255 - stored_c, nk = stored_k;
    unsigned t = c * nk + 128;
    unsigned mul = ((t >> 8) + t) >> 8;
    return (unsigned char)(nk - mul);
}

int img_decode_jpeg(const unsigned char *buf, size_t len, const char *name,
                    const struct image_decode_params *p, struct image **out,
                    struct image_info *info, struct sb_err *err)
{
    tjhandle h = NULL;
    struct image *img = NULL;
    unsigned char *cmyk = NULL;
    int rc = SB_OK;
    int64_t soi = img_jpeg_find_soi(buf, len);
    if (soi < 0) {
        rc = sb_fail(err, SB_EFORMAT, "decode '%s': no JPEG start marker", img_label(name));
        goto out;
    }
    const unsigned char *jb = buf + soi;
    size_t jlen = len - (size_t)soi;
    if (jlen > (size_t)0xFFFFFFFFu) {
        rc = sb_fail(err, SB_ETOOBIG, "decode '%s': JPEG over 4 GiB", img_label(name));
        goto out;
    }
    h = tjInitDecompress();
    if (!h) {
        rc = sb_fail(err, SB_ENOMEM, "decode '%s': cannot start libjpeg", img_label(name));
        goto out;
    }
    int w = 0, hh = 0, subsamp = 0, cs = 0;
    /* A warning here (stray bytes before a marker, a short APPn) still gives a header. */
    if (tjDecompressHeader3(h, jb, (unsigned long)jlen, &w, &hh, &subsamp, &cs) != 0 &&
        (tjGetErrorCode(h) != TJERR_WARNING || w <= 0 || hh <= 0)) {
        rc = tj_fail(h, "bad JPEG header", name, err);
        goto out;
    }
    info->width = w;
    info->height = hh;
    info->orientation = img_exif_orientation(buf, len, IMAGE_FMT_JPEG);
    rc = img_check_size(w, hh, p->max_pixels, name, err);
    if (rc)
        goto out;
    int sw, sh;
    pick_scale(w, hh, p->min_long, p->min_short, &sw, &sh);
    img = image_new(sw, sh);
    if (!img) {
        rc = sb_fail(err, SB_ENOMEM, "decode '%s': out of memory for %dx%d", img_label(name), sw,
                     sh);
        goto out;
    }
    int is_cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
    unsigned char *dst = img->px;
    if (is_cmyk) {
        size_t n;
        if (!sb_mul3_size((size_t)sw, (size_t)sh, 4, &n) || !(cmyk = malloc(n))) {
            rc = sb_fail(err, SB_ENOMEM, "decode '%s': out of memory", img_label(name));
            goto out;
        }
        dst = cmyk;
    }
    /* TJFLAG_LIMITSCANS stops progressive files with thousands of scans (a CPU bomb). The
     * default (ISLOW) IDCT and fancy upsampling match what PIL's libjpeg does. */
    int flags = TJFLAG_LIMITSCANS;
    rc = decode_result(h,
                       tjDecompress2(h, jb, (unsigned long)jlen, dst, sw, 0, sh,
                                     is_cmyk ? TJPF_CMYK : TJPF_RGB, flags),
                       name, err);
    if (rc)
        goto out;
    if (is_cmyk) {
        size_t npx = (size_t)sw * (size_t)sh;
        for (size_t i = 0; i < npx; i++) {
            const unsigned char *s = cmyk + 4 * i;
            unsigned char *d = img->px + 3 * i;
            d[0] = cmyk_chan(s[0], s[3]);
            d[1] = cmyk_chan(s[1], s[3]);
            d[2] = cmyk_chan(s[2], s[3]);
        }
    }
    *out = img;
    img = NULL;
out:
    free(cmyk);
    image_free(img);
    if (h)
        tjDestroy(h);
    return rc;
}

int image_encode_jpeg(const struct image *img, int quality, unsigned char **out, size_t *len,
                      struct sb_err *err)
{
    tjhandle h = NULL;
    unsigned char *jpeg = NULL;
    unsigned long jlen = 0;
    int rc = SB_OK;
    if (!img || !img->px || img->w <= 0 || img->h <= 0 || !out || !len)
        return sb_fail(err, SB_EINVAL, "encode jpeg: no image");
    if (quality < 1 || quality > 100)
        return sb_fail(err, SB_EINVAL, "encode jpeg: quality %d is not in 1..100", quality);
    h = tjInitCompress();
    if (!h) {
        rc = sb_fail(err, SB_ENOMEM, "encode jpeg: cannot start libjpeg");
        goto out;
    }
    if (tjCompress2(h, img->px, img->w, 0, img->h, TJPF_RGB, &jpeg, &jlen, TJSAMP_420, quality,
                    0) != 0) {
        rc = sb_fail(err, SB_EINTERNAL, "encode jpeg %dx%d: %s", img->w, img->h, tjGetErrorStr2(h));
        goto out;
    }
    unsigned char *copy = malloc(jlen ? jlen : 1);
    if (!copy) {
        rc = sb_fail(err, SB_ENOMEM, "encode jpeg: out of memory");
        goto out;
    }
    memcpy(copy, jpeg, jlen);
    *out = copy;
    *len = jlen;
out:
    if (jpeg)
        tjFree(jpeg);
    if (h)
        tjDestroy(h);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Thumbnails from the Y/Cb/Cr planes */

/* Three planes: Y w x h, Cb and Cr as the sampling gives (4:2:0 for the thumbnails). */
struct planes {
    int w, h, subsamp;
    int pw[3], ph[3];
    unsigned char *p[3];
};

static void planes_free(struct planes *pl)
{
    for (int i = 0; i < 3; i++) {
        free(pl->p[i]);
        pl->p[i] = NULL;
    }
}

static int planes_alloc(struct planes *pl, int w, int h, int subsamp)
{
    pl->w = w;
    pl->h = h;
    pl->subsamp = subsamp;
    for (int i = 0; i < 3; i++) {
        pl->pw[i] = tjPlaneWidth(i, w, subsamp);
        pl->ph[i] = tjPlaneHeight(i, h, subsamp);
        size_t n;
        if (pl->pw[i] <= 0 || pl->ph[i] <= 0 ||
            !sb_mul_size((size_t)pl->pw[i], (size_t)pl->ph[i], &n) || !(pl->p[i] = malloc(n))) {
            planes_free(pl);
            return 0;
        }
    }
    return 1;
}

static int planar_sampling(int subsamp)
{
    return subsamp == TJSAMP_444 || subsamp == TJSAMP_422 || subsamp == TJSAMP_420 ||
           subsamp == TJSAMP_440;
}

/* The chroma filter's width in thumbnail luma pixels (times the reduction). The RGB path's
 * chroma is bicubic at 1 then the encoder's 2x2 box; bicubic at 2 (the chroma sample spacing)
 * is blurrier than that, 1.5 comes as close to the RGB path as its quality on the fixtures
 * tells (tests/test_image.c test_jpeg_planar_thumbs). */
#define CHROMA_WIDTH 1.5

/* Which axes of the stored picture EXIF orientation o reverses: bit 0 x, bit 1 y. */
static int flipped_axes(int o)
{
    switch (o) {
    case 2:
    case 8:
        return 1;
    case 4:
    case 6:
        return 2;
    case 3:
    case 7:
        return 3;
    default:
        return 0;
    }
}

/* Repeats the last column and row of Y's w x h picture into its padding (the encoder reads
 * whole planes; what is there shapes the last visible pixels' blocks). */
static void pad_luma(struct planes *pl)
{
    unsigned char *y = pl->p[0];
    size_t stride = (size_t)pl->pw[0];
    for (int r = 0; r < pl->h; r++)
        for (int c = pl->w; c < pl->pw[0]; c++)
            y[(size_t)r * stride + (size_t)c] = y[(size_t)r * stride + (size_t)pl->w - 1];
    for (int r = pl->h; r < pl->ph[0]; r++)
        memcpy(y + (size_t)r * stride, y + (size_t)(pl->h - 1) * stride, stride);
}

/* One thumbnail: src planes (any sampling) -> 4:2:0 planes of image_thumbnail's size for
 * t->px in stored orientation -> upright (*up, which the next size is made from) -> JPEG.
 * Chroma sample centres follow the luma geometry: a 4:2:0 chroma sample j covers luma
 * [2j, 2j + 2); on an axis that the orientation reverses, an odd luma size moves the stored
 * samples by one luma pixel so that they land there once turned. */
static int plane_thumb(tjhandle ch, const struct planes *src, int orientation, int quality,
                       struct image_thumb *t, struct planes *up, const char *name,
                       struct sb_err *err)
{
    int tw, th;
    img_thumb_size(src->w, src->h, t->px, &tw, &th);
    struct planes st = { 0 };
    int swap = orientation >= 5 && orientation <= 8, flip = flipped_axes(orientation);
    int rc = SB_OK;
    bool turn = orientation >= 2 && orientation <= 8; /* else st is already upright */
    if (!planes_alloc(&st, tw, th, TJSAMP_420) ||
        (turn && !planes_alloc(up, swap ? th : tw, swap ? tw : th, TJSAMP_420))) {
        rc = sb_fail(err, SB_ENOMEM, "thumbnail '%s': out of memory", img_label(name));
        goto out;
    }
    double sx = (double)src->w / tw, sy = (double)src->h / th;
    int hs = tjMCUWidth[src->subsamp] / 8, vs = tjMCUHeight[src->subsamp] / 8;
    for (int i = 0; i < 3; i++) {
        struct img_axis x = { i ? src->pw[i] : src->w, i ? st.pw[i] : tw, 0, 0, 0 };
        struct img_axis y = { i ? src->ph[i] : src->h, i ? st.ph[i] : th, 0, 0, 0 };
        if (i) {
            x.width = CHROMA_WIDTH * sx / hs;
            y.width = CHROMA_WIDTH * sy / vs;
            x.step = 2 * sx / hs;
            x.shift = (flip & 1) && (tw & 1) ? 0.5 : 0;
            y.step = 2 * sy / vs;
            y.shift = (flip & 2) && (th & 1) ? 0.5 : 0;
        }
        if (img_resize_fast_plane(src->p[i], (size_t)src->pw[i], st.p[i], (size_t)st.pw[i], x, y, 1,
                                  IMAGE_FILTER_BICUBIC) != 0) {
            rc = sb_fail(err, SB_ENOMEM, "thumbnail '%s': out of memory", img_label(name));
            goto out;
        }
        if (turn)
            img_orient_px(up->p[i], (size_t)up->pw[i], st.p[i], (size_t)st.pw[i], x.out, y.out, 1,
                          orientation);
    }
    if (!turn) {
        *up = st; /* the planes themselves: no copy */
        memset(&st, 0, sizeof(st));
    }
    pad_luma(up);
    unsigned char *jpeg = NULL;
    unsigned long jlen = 0;
    const unsigned char *cp[3] = { up->p[0], up->p[1], up->p[2] };
    if (tjCompressFromYUVPlanes(ch, cp, up->w, up->pw, up->h, TJSAMP_420, &jpeg, &jlen, quality,
                                0) != 0) {
        rc = sb_fail(err, SB_EINTERNAL, "encode jpeg %dx%d: %s", up->w, up->h, tjGetErrorStr2(ch));
    } else if (!(t->jpeg = malloc(jlen ? jlen : 1))) {
        rc = sb_fail(err, SB_ENOMEM, "encode jpeg: out of memory");
    } else {
        memcpy(t->jpeg, jpeg, jlen);
        t->len = jlen;
        t->w = up->w;
        t->h = up->h;
    }
    if (jpeg)
        tjFree(jpeg);
out:
    planes_free(&st);
    return rc;
}

/* The largest model input image_jpeg_planes makes (models take 224-768 px squares). */
#define MODEL_MAX_PIXELS ((int64_t)16 << 20)

/* JFIF YCbCr -> RGB as libjpeg's jdcolor.c computes it (16 fractional bits, rounded). */
#define YCC_BITS   16
#define YCC_FIX(x) ((int32_t)((x) * (1 << YCC_BITS) + 0.5))

static unsigned char ycc_clamp(int32_t v)
{
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static void ycc_to_rgb(struct image *img, const struct planes *pl)
{
    const int32_t half = 1 << (YCC_BITS - 1);
    for (int r = 0; r < img->h; r++) {
        const unsigned char *y = pl->p[0] + (size_t)r * (size_t)pl->pw[0];
        const unsigned char *cb = pl->p[1] + (size_t)r * (size_t)pl->pw[1];
        const unsigned char *cr = pl->p[2] + (size_t)r * (size_t)pl->pw[2];
        unsigned char *d = img->px + (size_t)r * (size_t)img->w * 3;
        for (int c = 0; c < img->w; c++) {
            int32_t l = y[c], b = (int32_t)cb[c] - 128, q = (int32_t)cr[c] - 128;
            d[3 * c + 0] = ycc_clamp(l + ((YCC_FIX(1.40200) * q + half) >> YCC_BITS));
            d[3 * c + 1] =
                ycc_clamp(l + ((-YCC_FIX(0.34414) * b - YCC_FIX(0.71414) * q + half) >> YCC_BITS));
            d[3 * c + 2] = ycc_clamp(l + ((YCC_FIX(1.77200) * b + half) >> YCC_BITS));
        }
    }
}

/* The model's picture: src planes (any sampling) -> three full-resolution planes of the
 * upright rw x rh's stored-orientation size, each sample centred where the output pixel's
 * luma centre lies (a chroma sample covers hs x vs luma pixels from its corner, so it is
 * centred at (j + 0.5) * hs: output pixel i, centred at luma (i + 0.5) * sx, reads chroma at
 * (i + 0.5) * sx / hs), the filter stretched by the reduction -> upright -> RGB. Resizing
 * before turning is the same geometry as turning first: each output pixel is centred on the
 * same point of the picture either way. */
static int plane_model(const struct planes *src, int orientation, int rw, int rh,
                       enum image_filter f, struct image **out)
{
    int swap = orientation >= 5 && orientation <= 8;
    bool turn = orientation >= 2 && orientation <= 8;
    int ow = swap ? rh : rw, oh = swap ? rw : rh;
    struct planes st = { 0 }, up = { 0 };
    struct image *img = NULL;
    int rc = -1;
    if (!planes_alloc(&st, ow, oh, TJSAMP_444) ||
        (turn && !planes_alloc(&up, rw, rh, TJSAMP_444)) || !(img = image_new(rw, rh)))
        goto out;
    double sx = (double)src->w / ow, sy = (double)src->h / oh;
    int hs = tjMCUWidth[src->subsamp] / 8, vs = tjMCUHeight[src->subsamp] / 8;
    for (int i = 0; i < 3; i++) {
        struct img_axis x = { i ? src->pw[i] : src->w, ow, 0, 0, 0 };
        struct img_axis y = { i ? src->ph[i] : src->h, oh, 0, 0, 0 };
        if (i && hs > 1)
            x.step = sx / hs;
        if (i && vs > 1)
            y.step = sy / vs;
        if (img_resize_fast_plane(src->p[i], (size_t)src->pw[i], st.p[i], (size_t)st.pw[i], x, y, 1,
                                  f) != 0)
            goto out;
        if (turn)
            img_orient_px(up.p[i], (size_t)up.pw[i], st.p[i], (size_t)st.pw[i], ow, oh, 1,
                          orientation);
    }
    ycc_to_rgb(img, turn ? &up : &st);
    *out = img;
    img = NULL;
    rc = 0;
out:
    image_free(img);
    planes_free(&st);
    planes_free(&up);
    return rc;
}

int image_jpeg_thumbnails(const unsigned char *buf, size_t len, const char *name,
                          uint64_t max_pixels, int quality, struct image_thumb *t, int n,
                          int *planar, struct image_info *info, struct sb_err *err)
{
    return image_jpeg_planes(buf, len, name, max_pixels, quality, t, n, NULL, NULL, planar, info,
                             err);
}

int image_jpeg_planes(const unsigned char *buf, size_t len, const char *name, uint64_t max_pixels,
                      int quality, struct image_thumb *t, int n, const struct image_model_input *mi,
                      struct image **model, int *planar, struct image_info *info,
                      struct sb_err *err)
{
    if (planar)
        *planar = 0;
    if (model)
        *model = NULL;
    if (!buf || !planar || n < 0 || (n > 0 && !t) || (n == 0 && !mi) ||
        (mi && (!mi->size || !model)) || quality < 1 || quality > 100)
        return sb_fail(err, SB_EINVAL, "thumbnails '%s': bad arguments", img_label(name));
    for (int i = 0; i < n; i++) {
        t[i].jpeg = NULL;
        t[i].len = 0;
        if (t[i].px <= 0)
            return sb_fail(err, SB_EINVAL, "thumbnails '%s': size %d", img_label(name), t[i].px);
    }
    int64_t soi = img_jpeg_find_soi(buf, len);
    if (soi < 0 || len - (size_t)soi > (size_t)0xFFFFFFFFu)
        return SB_OK; /* the RGB path says what is wrong */
    const unsigned char *jb = buf + soi;
    unsigned long jlen = (unsigned long)(len - (size_t)soi);
    tjhandle dh = tjInitDecompress(), ch = NULL;
    struct planes pl[2] = { { 0 }, { 0 } };
    struct image_info inf = { .format = IMAGE_FMT_JPEG, .orientation = 1 };
    int rc = SB_OK;
    if (!dh)
        return sb_fail(err, SB_ENOMEM, "decode '%s': cannot start libjpeg", img_label(name));
    int w = 0, hh = 0, subsamp = -1, cs = -1;
    if ((tjDecompressHeader3(dh, jb, jlen, &w, &hh, &subsamp, &cs) != 0 &&
         (tjGetErrorCode(dh) != TJERR_WARNING || w <= 0 || hh <= 0)) ||
        cs != TJCS_YCbCr || !planar_sampling(subsamp))
        goto out; /* not for this path */
    inf.width = w;
    inf.height = hh;
    inf.orientation = img_exif_orientation(buf, len, IMAGE_FMT_JPEG);
    if (inf.orientation < 1 || inf.orientation > 8)
        inf.orientation = 1;
    int sw, sh;
    pick_scale(w, hh, n ? t[0].px : 0, mi ? mi->min_short : 0, &sw, &sh);
    int mw = 0, mh = 0;
    enum image_filter mf = IMAGE_FILTER_BICUBIC;
    if (mi) {
        int swap = inf.orientation >= 5;
        /* declined, or absurd (a strip whose short edge is enlarged to the model's size):
         * the model's own resize, or its error, on the RGB path */
        if (!mi->size(mi->user, swap ? sh : sw, swap ? sw : sh, &mw, &mh, &mf) || mw < 1 ||
            mh < 1 || (int64_t)mw * mh > MODEL_MAX_PIXELS || (unsigned)mf > IMAGE_FILTER_LANCZOS)
            goto out;
    }
    *planar = 1;
    rc = img_check_size(w, hh, max_pixels, name, err);
    if (rc)
        goto out;
    if (!planes_alloc(&pl[0], sw, sh, subsamp)) {
        rc = sb_fail(err, SB_ENOMEM, "decode '%s': out of memory for %dx%d", img_label(name), sw,
                     sh);
        goto out;
    }
    rc = decode_result(
        dh, tjDecompressToYUVPlanes(dh, jb, jlen, pl[0].p, sw, pl[0].pw, sh, TJFLAG_LIMITSCANS),
        name, err);
    if (rc)
        goto out;
    if (mi && plane_model(&pl[0], inf.orientation, mw, mh, mf, model) != 0) {
        rc = sb_fail(err, SB_ENOMEM, "model input '%s': out of memory", img_label(name));
        goto out;
    }
    ch = n ? tjInitCompress() : NULL;
    if (n && !ch) {
        rc = sb_fail(err, SB_ENOMEM, "encode jpeg: cannot start libjpeg");
        goto out;
    }
    /* each size from the upright planes of the one before, as image_thumbnail does */
    for (int i = 0; i < n && !rc; i++) {
        struct planes *src = &pl[i % 2], *up = &pl[(i + 1) % 2];
        rc = plane_thumb(ch, src, i ? 1 : inf.orientation, quality, &t[i], up, name, err);
        planes_free(src);
    }
out:
    if (info && *planar) /* done, or failed after the header: what it told (image.h) */
        *info = inf;
    if (rc) {
        for (int i = 0; i < n; i++) {
            free(t[i].jpeg);
            t[i].jpeg = NULL;
        }
        if (model) {
            image_free(*model);
            *model = NULL;
        }
    }
    planes_free(&pl[0]);
    planes_free(&pl[1]);
    if (ch)
        tjDestroy(ch);
    tjDestroy(dh);
    return rc;
}
