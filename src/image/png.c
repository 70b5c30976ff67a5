/* png.c - PNG decoding via libpng's progressive-free low-level API from memory. Matches what
 * PIL's Image.open(...).convert("RGB") yields: palette looked up, grey expanded, alpha and tRNS
 * dropped (not composited), 16-bit samples reduced to their high byte. */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* Ancillary chunks (text, iCCP, eXIf...) bigger than this are dropped, which defeats the
 * zTXt/iCCP decompression bombs; image data is bounded by max_pixels instead. */
#define PNG_CHUNK_MALLOC_MAX (8u << 20)
#define PNG_CHUNK_CACHE_MAX  256u

struct png_ctx {
    const unsigned char *buf;
    size_t len, pos;
    const char *name;
    const struct image_decode_params *p;
    png_structp png;
    png_infop info;
    struct image *img;
    png_bytep *rows;
    struct image_info *inf;
    struct sb_err *err;
    int rc;
    char msg[160];
};

static void png_err_fn(png_structp png, png_const_charp msg)
{
    struct png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof(c->msg), "%s", msg ? msg : "libpng error");
    png_longjmp(png, 1);
}

static void png_warn_fn(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg; /* warnings (bad ancillary CRC, unknown sRGB profile...) are not failures */
}

static void png_read_mem(png_structp png, png_bytep out, size_t n)
{
    struct png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) {
        snprintf(c->msg, sizeof(c->msg), "truncated PNG data");
        png_longjmp(png, 1);
    }
    memcpy(out, c->buf + c->pos, n);
    c->pos += n;
}

/* All libpng calls happen here, below the setjmp; state lives in *c, owned by the caller. */
static int png_run(struct png_ctx *c)
{
    if (setjmp(png_jmpbuf(c->png))) {
        if (!c->rc)
            c->rc = sb_fail(c->err, SB_ECORRUPT, "decode '%s': %s", img_label(c->name),
                            c->msg[0] ? c->msg : "bad PNG data");
        return c->rc;
    }
    png_set_read_fn(c->png, c, png_read_mem);
    png_set_user_limits(c->png, 0x7FFFFFF, 0x7FFFFFF);
    png_set_chunk_cache_max(c->png, PNG_CHUNK_CACHE_MAX);
    png_set_chunk_malloc_max(c->png, PNG_CHUNK_MALLOC_MAX);
    png_read_info(c->png, c->info);
    png_uint_32 w = 0, h = 0;
    int depth = 0, ctype = 0, interlace = 0;
    png_get_IHDR(c->png, c->info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    c->inf->width = (int)w;
    c->inf->height = (int)h;
    c->rc = img_check_size(w, h, c->p->max_pixels, c->name, c->err);
    if (c->rc)
        return c->rc;
    if (depth == 16)
        png_set_strip_16(c->png);
    if (ctype == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(c->png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(c->png);
    if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(c->png);
    /* palette_to_rgb also turns tRNS into an alpha channel: strip that too */
    if ((ctype & PNG_COLOR_MASK_ALPHA) || png_get_valid(c->png, c->info, PNG_INFO_tRNS))
        png_set_strip_alpha(c->png);
    png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);
    if (png_get_rowbytes(c->png, c->info) != (size_t)w * 3) {
        c->rc =
            sb_fail(c->err, SB_EFORMAT, "decode '%s': unsupported PNG layout", img_label(c->name));
        return c->rc;
    }
    c->img = image_new((int)w, (int)h);
    size_t nrows;
    if (c->img && sb_mul_size(h, sizeof(*c->rows), &nrows))
        c->rows = malloc(nrows);
    if (!c->img || !c->rows) {
        c->rc = sb_fail(c->err, SB_ENOMEM, "decode '%s': out of memory for %ux%u",
                        img_label(c->name), (unsigned)w, (unsigned)h);
        return c->rc;
    }
    for (png_uint_32 y = 0; y < h; y++)
        c->rows[y] = c->img->px + (size_t)y * (size_t)w * 3;
    png_read_image(c->png, c->rows);
    return SB_OK;
}

int img_decode_png(const unsigned char *buf, size_t len, const char *name,
                   const struct image_decode_params *p, struct image **out, struct image_info *info,
                   struct sb_err *err)
{
    struct png_ctx c = {
        .buf = buf,
        .len = len,
        .name = name,
        .p = p,
        .inf = info,
        .err = err,
    };
    int rc;
    c.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_err_fn, png_warn_fn);
    if (c.png)
        c.info = png_create_info_struct(c.png);
    if (!c.png || !c.info) {
        rc = sb_fail(err, SB_ENOMEM, "decode '%s': cannot start libpng", img_label(name));
        goto out;
    }
    rc = png_run(&c);
    if (rc)
        goto out;
    info->orientation = img_exif_orientation(buf, len, IMAGE_FMT_PNG);
    *out = c.img;
    c.img = NULL;
out:
    if (c.png)
        png_destroy_read_struct(&c.png, c.info ? &c.info : NULL, NULL);
    free(c.rows);
    image_free(c.img);
    return rc;
}
