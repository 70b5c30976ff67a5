/* jpeg.c - JPEG decoding with DCT scaling and JPEG encoding, both via libturbojpeg's TurboJPEG
 * 2.x API (Debian 12 ships 2.1, which has no tj3 functions). */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

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
    if (tjDecompress2(h, jb, (unsigned long)jlen, dst, sw, 0, sh, is_cmyk ? TJPF_CMYK : TJPF_RGB,
                      flags) != 0) {
        const char *m = tjGetErrorStr2(h);
        if (tjGetErrorCode(h) != TJERR_WARNING) {
            rc = tj_fail(h, "bad JPEG data", name, err);
            goto out;
        }
        /* A warning leaves a decoded image. Premature end of data means the bottom of the
         * picture is grey filler: report it instead of indexing a half picture. Other
         * warnings (stray bytes between markers, a short APPn) are harmless, as in PIL. */
        if (m && strstr(m, "Premature end")) {
            rc = sb_fail(err, SB_ECORRUPT, "decode '%s': truncated JPEG data", img_label(name));
            goto out;
        }
    }
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
    info->orientation = img_exif_orientation(buf, len, IMAGE_FMT_JPEG);
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
