/* tiff.c - TIFF decoding via libtiff from memory (TIFFClientOpenExt with per-handle error
 * handlers, so nothing is printed and no process-global state is touched). Only the first
 * page is decoded. libtiff's RGBA reader is used with the requested orientation equal to the
 * file's, so pixels come in stored order and image.c applies the orientation like EXIF. */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

/* libtiff refuses single allocations above this (strip buffers, tag arrays). */
#define TIFF_MAX_SINGLE_ALLOC ((tmsize_t)256 << 20)

struct tiff_mem {
    const unsigned char *buf;
    size_t len, pos;
    char msg[160];
};

static tmsize_t mem_read(thandle_t h, void *out, tmsize_t n)
{
    struct tiff_mem *m = h;
    if (n <= 0 || m->pos >= m->len)
        return 0;
    size_t k = (size_t)n < m->len - m->pos ? (size_t)n : m->len - m->pos;
    memcpy(out, m->buf + m->pos, k);
    m->pos += k;
    return (tmsize_t)k;
}

static tmsize_t mem_write(thandle_t h, void *in, tmsize_t n)
{
    (void)h;
    (void)in;
    (void)n;
    return -1; /* read-only */
}

static toff_t mem_seek(thandle_t h, toff_t off, int whence)
{
    struct tiff_mem *m = h;
    uint64_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->len : 0;
    if (whence != SEEK_SET && whence != SEEK_CUR && whence != SEEK_END)
        return (toff_t)-1;
    uint64_t np = base + off; /* toff_t is unsigned; a negative SEEK_CUR wraps and fails */
    if (np > m->len)
        return (toff_t)-1;
    m->pos = (size_t)np;
    return np;
}

static int mem_close(thandle_t h)
{
    (void)h;
    return 0;
}

static toff_t mem_size(thandle_t h)
{
    return ((struct tiff_mem *)h)->len;
}

static int mem_map(thandle_t h, void **base, toff_t *size)
{
    (void)h;
    (void)base;
    (void)size;
    return 0;
}

static void mem_unmap(thandle_t h, void *base, toff_t size)
{
    (void)h;
    (void)base;
    (void)size;
}

/* libtiff hands us its own printf-style format: forward it as is. */
__attribute__((format(printf, 4, 0))) static int on_error(TIFF *tif, void *user, const char *module,
                                                          const char *fmt, va_list ap)
{
    (void)tif;
    (void)module;
    struct tiff_mem *m = user;
    if (!m->msg[0])
        vsnprintf(m->msg, sizeof(m->msg), fmt, ap);
    return 1; /* handled: keep libtiff's global handler quiet */
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    (void)tif;
    (void)user;
    (void)module;
    (void)fmt;
    (void)ap;
    return 1;
}

int img_decode_tiff(const unsigned char *buf, size_t len, const char *name,
                    const struct image_decode_params *p, struct image **out,
                    struct image_info *info, struct sb_err *err)
{
    struct tiff_mem mem = { .buf = buf, .len = len };
    TIFFOpenOptions *opts = NULL;
    TIFF *tif = NULL;
    uint32_t *raster = NULL;
    struct image *img = NULL;
    TIFFRGBAImage ri;
    int ri_started = 0;
    int rc = SB_OK;
    opts = TIFFOpenOptionsAlloc();
    if (!opts) {
        rc = sb_fail(err, SB_ENOMEM, "decode '%s': cannot start libtiff", img_label(name));
        goto out;
    }
    TIFFOpenOptionsSetMaxSingleMemAlloc(opts, TIFF_MAX_SINGLE_ALLOC);
    TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, &mem);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, &mem);
    tif = TIFFClientOpenExt(img_label(name), "rm", &mem, mem_read, mem_write, mem_seek, mem_close,
                            mem_size, mem_map, mem_unmap, opts);
    if (!tif) {
        rc = sb_fail(err, SB_ECORRUPT, "decode '%s': %s", img_label(name),
                     mem.msg[0] ? mem.msg : "bad TIFF header");
        goto out;
    }
    uint32_t w = 0, h = 0;
    uint16_t orient = ORIENTATION_TOPLEFT;
    if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h)) {
        rc = sb_fail(err, SB_ECORRUPT, "decode '%s': TIFF without image size", img_label(name));
        goto out;
    }
    info->width = (int)(w > INT32_MAX ? INT32_MAX : w);
    info->height = (int)(h > INT32_MAX ? INT32_MAX : h);
    rc = img_check_size(w, h, p->max_pixels, name, err);
    if (rc)
        goto out;
    TIFFGetFieldDefaulted(tif, TIFFTAG_ORIENTATION, &orient);
    char emsg[1024] = "";
    if (!TIFFRGBAImageOK(tif, emsg) || !TIFFRGBAImageBegin(&ri, tif, 0, emsg)) {
        rc = sb_fail(err, SB_EFORMAT, "decode '%s': unsupported TIFF: %.150s", img_label(name),
                     emsg[0] ? emsg : mem.msg);
        goto out;
    }
    ri_started = 1;
    ri.req_orientation = ri.orientation; /* stored order: no flips by libtiff */
    size_t n;
    if (!sb_mul3_size(w, h, sizeof(uint32_t), &n) || !(raster = malloc(n)) ||
        !(img = image_new((int)w, (int)h))) {
        rc = sb_fail(err, SB_ENOMEM, "decode '%s': out of memory for %ux%u", img_label(name),
                     (unsigned)w, (unsigned)h);
        goto out;
    }
    if (!TIFFRGBAImageGet(&ri, raster, w, h)) {
        rc = sb_fail(err, SB_ECORRUPT, "decode '%s': %s", img_label(name),
                     mem.msg[0] ? mem.msg : "bad TIFF image data");
        goto out;
    }
    size_t npx = (size_t)w * h;
    for (size_t i = 0; i < npx; i++) {
        uint32_t v = raster[i];
        img->px[3 * i + 0] = (unsigned char)TIFFGetR(v);
        img->px[3 * i + 1] = (unsigned char)TIFFGetG(v);
        img->px[3 * i + 2] = (unsigned char)TIFFGetB(v);
    }
    info->orientation = orient >= 1 && orient <= 8 ? orient : 1;
    *out = img;
    img = NULL;
out:
    if (ri_started)
        TIFFRGBAImageEnd(&ri);
    if (tif)
        TIFFClose(tif);
    if (opts)
        TIFFOpenOptionsFree(opts);
    free(raster);
    image_free(img);
    return rc;
}
