/* gif.c - GIF decoding via giflib: the first frame only, read record by record (never
 * DGifSlurp, which would decode every frame of an animation). The canvas is the logical
 * screen; the frame is clipped to it. Pixels map through the palette as PIL's
 * convert("RGB") does, the transparent index included (its palette colour). */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <gif_lib.h>
#include <stdlib.h>
#include <string.h>

struct gif_mem {
    const unsigned char *buf;
    size_t len, pos;
};

static int gif_read(GifFileType *g, GifByteType *out, int n)
{
    struct gif_mem *m = g->UserData;
    if (n <= 0 || m->pos >= m->len)
        return 0;
    size_t k = (size_t)n < m->len - m->pos ? (size_t)n : m->len - m->pos;
    memcpy(out, m->buf + m->pos, k);
    m->pos += k;
    return (int)k;
}

static int gif_fail(GifFileType *g, const char *name, struct sb_err *err)
{
    int e = g ? g->Error : 0;
    /* giflib reads through our memory reader: a failed read is data that ends too soon */
    const char *s = e == D_GIF_ERR_READ_FAILED ? "truncated GIF data" : GifErrorString(e);
    int code = e == D_GIF_ERR_NOT_GIF_FILE     ? SB_EFORMAT
               : e == D_GIF_ERR_NOT_ENOUGH_MEM ? SB_ENOMEM
                                               : SB_ECORRUPT;
    return sb_fail(err, code, "decode '%s': %s", img_label(name), s ? s : "bad GIF data");
}

int img_decode_gif(const unsigned char *buf, size_t len, const char *name,
                   const struct image_decode_params *p, struct image **out, struct image_info *info,
                   struct sb_err *err)
{
    struct gif_mem mem = { .buf = buf, .len = len };
    GifFileType *g = NULL;
    struct image *img = NULL;
    unsigned char *idx = NULL, *line = NULL;
    int rc = SB_OK, gerr = 0;
    /* The logical screen size sits at bytes 6..9: refuse a bomb before giflib reads on. */
    if (len >= 10) {
        int lw = buf[6] | buf[7] << 8, lh = buf[8] | buf[9] << 8;
        if (lw > 0 && lh > 0) {
            rc = img_check_size(lw, lh, p->max_pixels, name, err);
            if (rc)
                goto out;
        }
    }
    g = DGifOpen(&mem, gif_read, &gerr);
    if (!g) {
        rc = sb_fail(err, gerr == D_GIF_ERR_NOT_GIF_FILE ? SB_EFORMAT : SB_ECORRUPT,
                     "decode '%s': %s", img_label(name), GifErrorString(gerr));
        goto out;
    }
    int sw = g->SWidth, sh = g->SHeight;
    info->width = sw;
    info->height = sh;
    rc = img_check_size(sw, sh, p->max_pixels, name, err);
    if (rc)
        goto out;
    int transparent = -1;
    for (;;) {
        GifRecordType rt;
        if (DGifGetRecordType(g, &rt) == GIF_ERROR) {
            rc = gif_fail(g, name, err);
            goto out;
        }
        if (rt == TERMINATE_RECORD_TYPE) {
            rc = sb_fail(err, SB_ECORRUPT, "decode '%s': GIF without an image", img_label(name));
            goto out;
        }
        if (rt == EXTENSION_RECORD_TYPE) {
            int code = 0;
            GifByteType *ext = NULL;
            if (DGifGetExtension(g, &code, &ext) == GIF_ERROR) {
                rc = gif_fail(g, name, err);
                goto out;
            }
            if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4) {
                GraphicsControlBlock gcb;
                if (DGifExtensionToGCB(ext[0], ext + 1, &gcb) == GIF_OK)
                    transparent = gcb.TransparentColor;
            }
            while (ext) {
                if (DGifGetExtensionNext(g, &ext) == GIF_ERROR) {
                    rc = gif_fail(g, name, err);
                    goto out;
                }
            }
            continue;
        }
        if (rt != IMAGE_DESC_RECORD_TYPE)
            continue;
        if (DGifGetImageDesc(g) == GIF_ERROR) {
            rc = gif_fail(g, name, err);
            goto out;
        }
        break;
    }
    GifImageDesc *d = &g->Image;
    int fw = d->Width, fh = d->Height, fl = d->Left, ft = d->Top;
    /* The frame is decoded line by line (its width bounded here), then clipped to the screen. */
    rc = img_check_size(fw, fh, p->max_pixels, name, err);
    if (rc)
        goto out;
    const ColorMapObject *cmap = d->ColorMap ? d->ColorMap : g->SColorMap;
    const ColorMapObject *gmap = g->SColorMap ? g->SColorMap : cmap;
    if (!cmap) {
        rc = sb_fail(err, SB_ECORRUPT, "decode '%s': GIF without a palette", img_label(name));
        goto out;
    }
    size_t n = (size_t)sw * (size_t)sh;
    img = image_new(sw, sh);
    idx = malloc(n);
    line = malloc((size_t)fw);
    if (!img || !idx || !line) {
        rc = sb_fail(err, SB_ENOMEM, "decode '%s': out of memory", img_label(name));
        goto out;
    }
    /* Outside the first frame: the background colour (the transparent one if there is one). */
    int fill = transparent >= 0 ? transparent : g->SBackGroundColor;
    memset(idx, fill & 0xFF, n);
    static const int ioff[4] = { 0, 4, 2, 1 }, istep[4] = { 8, 8, 4, 2 };
    int passes = d->Interlace ? 4 : 1;
    for (int pass = 0; pass < passes; pass++) {
        int y0 = d->Interlace ? ioff[pass] : 0, step = d->Interlace ? istep[pass] : 1;
        for (int y = y0; y < fh; y += step) {
            if (DGifGetLine(g, line, fw) == GIF_ERROR) {
                rc = gif_fail(g, name, err);
                goto out;
            }
            int64_t cy = (int64_t)ft + y;
            if (cy < 0 || cy >= sh)
                continue;
            for (int x = 0; x < fw; x++) {
                int64_t cx = (int64_t)fl + x;
                if (cx >= 0 && cx < sw)
                    idx[(size_t)cy * (size_t)sw + (size_t)cx] = line[x];
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t y = i / (size_t)sw, x = i % (size_t)sw;
        int in_frame = (int64_t)x >= fl && (int64_t)x < (int64_t)fl + fw && (int64_t)y >= ft &&
                       (int64_t)y < (int64_t)ft + fh;
        const ColorMapObject *m = in_frame ? cmap : gmap;
        unsigned char *px = img->px + 3 * i;
        if (idx[i] < m->ColorCount) {
            const GifColorType *c = &m->Colors[idx[i]];
            px[0] = c->Red;
            px[1] = c->Green;
            px[2] = c->Blue;
        } else {
            px[0] = px[1] = px[2] = 0;
        }
    }
    info->orientation = 1;
    *out = img;
    img = NULL;
out:
    if (g)
        DGifCloseFile(g, &gerr);
    free(idx);
    free(line);
    image_free(img);
    return rc;
}
