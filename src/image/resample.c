/* resample.c - separable resampling that reproduces Pillow's Image.resize() for 8-bit RGB
 * (Pillow src/libImaging/Resample.c: precompute_coeffs, normalize_coeffs_8bpc and the 8bpc
 * horizontal/vertical passes). The coefficients are computed in double exactly as Pillow does,
 * then quantised to PRECISION_BITS fixed point, so results match Pillow bit for bit. CLIP's
 * preprocessing (CLIPImageProcessor) resizes with PIL bicubic, hence the care. */
#include "internal.h"

#include "shoebox/util.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 32-bit accumulator: 8 bits of pixel, 2 bits of headroom for negative lobes and overshoot. */
#define PRECISION_BITS (32 - 8 - 2)

struct filter {
    double (*fn)(double x);
    double support;
};

static double bilinear_fn(double x)
{
    if (x < 0.0)
        x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Keys' cubic convolution with a = -0.5, as Pillow's bicubic_filter. */
static double bicubic_fn(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc(double x)
{
    if (x == 0.0)
        return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}

static double lanczos_fn(double x)
{
    if (-3.0 <= x && x < 3.0)
        return sinc(x) * sinc(x / 3);
    return 0.0;
}

static const struct filter filters[] = {
    [IMAGE_FILTER_BILINEAR] = { bilinear_fn, 1.0 },
    [IMAGE_FILTER_BICUBIC] = { bicubic_fn, 2.0 },
    [IMAGE_FILTER_LANCZOS] = { lanczos_fn, 3.0 },
};

/* Per output index: first input index, tap count, and ksize fixed-point weights. */
struct coeffs {
    int ksize;
    int *bounds; /* (out_size, 2): xmin, count */
    int32_t *k;  /* (out_size, ksize) */
};

static void coeffs_release(struct coeffs *c)
{
    free(c->bounds);
    free(c->k);
}

/* Pillow's precompute_coeffs over the whole input (box 0..in_size) followed by
 * normalize_coeffs_8bpc. Returns 0 on allocation failure. */
static int coeffs_init(struct coeffs *c, int in_size, int out_size, const struct filter *f)
{
    memset(c, 0, sizeof(*c));
    double *kk = NULL;
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    size_t nk, nb;
    if (!sb_mul_size((size_t)out_size, (size_t)ksize, &nk) ||
        !sb_mul_size(nk, sizeof(double), &nk) ||
        !sb_mul_size((size_t)out_size, 2 * sizeof(int), &nb))
        return 0;
    kk = malloc(nk);
    c->bounds = malloc(nb);
    c->k = malloc(nk / sizeof(double) * sizeof(int32_t));
    if (!kk || !c->bounds || !c->k) {
        free(kk);
        coeffs_release(c);
        return 0;
    }
    c->ksize = ksize;
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        double *k = kk + (size_t)xx * ksize;
        int x;
        for (x = 0; x < xmax; x++) {
            double w = f->fn((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0)
                k[x] /= ww;
        for (; x < ksize; x++)
            k[x] = 0;
        c->bounds[xx * 2 + 0] = xmin;
        c->bounds[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * (size_t)ksize; i++) {
        double v = kk[i] * (1 << PRECISION_BITS);
        c->k[i] = (int32_t)(kk[i] < 0 ? -0.5 + v : 0.5 + v);
    }
    free(kk);
    return 1;
}

static unsigned char clip8(int32_t ss)
{
    int32_t v = ss >> PRECISION_BITS; /* arithmetic shift, as Pillow relies on */
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* out (out_w x rows) from in rows [y0, y0 + rows) of width in_w. */
static void resample_h(unsigned char *out, int out_w, const unsigned char *in, int in_w, int y0,
                       int rows, const struct coeffs *c)
{
    for (int y = 0; y < rows; y++) {
        const unsigned char *src = in + (size_t)(y + y0) * (size_t)in_w * 3;
        unsigned char *dst = out + (size_t)y * (size_t)out_w * 3;
        for (int xx = 0; xx < out_w; xx++) {
            int xmin = c->bounds[xx * 2], n = c->bounds[xx * 2 + 1];
            const int32_t *k = c->k + (size_t)xx * c->ksize;
            int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
            for (int x = 0; x < n; x++) {
                const unsigned char *p = src + (size_t)(x + xmin) * 3;
                s0 += p[0] * k[x];
                s1 += p[1] * k[x];
                s2 += p[2] * k[x];
            }
            dst[xx * 3 + 0] = clip8(s0);
            dst[xx * 3 + 1] = clip8(s1);
            dst[xx * 3 + 2] = clip8(s2);
        }
    }
}

/* out (w x out_h) from in (w x ?), bounds relative to in's first row. acc is scratch of
 * w * 3 int32. Rows are accumulated whole (tap by tap) so the inner loop runs over contiguous
 * bytes and vectorises; the sums are the same integers Pillow computes, in another order,
 * and integer addition is exact, so the result is still bit-exact. */
static void resample_v(unsigned char *out, int out_h, const unsigned char *in, int w,
                       const struct coeffs *c, int shift, int32_t *acc)
{
    size_t stride = (size_t)w * 3;
    for (int yy = 0; yy < out_h; yy++) {
        int ymin = c->bounds[yy * 2] - shift, n = c->bounds[yy * 2 + 1];
        const int32_t *k = c->k + (size_t)yy * c->ksize;
        unsigned char *dst = out + (size_t)yy * stride;
        for (size_t i = 0; i < stride; i++)
            acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < n; y++) {
            const unsigned char *row = in + (size_t)(y + ymin) * stride;
            int32_t ky = k[y];
            for (size_t i = 0; i < stride; i++)
                acc[i] += row[i] * ky;
        }
        for (size_t i = 0; i < stride; i++)
            dst[i] = clip8(acc[i]);
    }
}

struct image *image_resize(const struct image *img, int w, int h, enum image_filter f)
{
    if (!img || !img->px || img->w <= 0 || img->h <= 0 || w <= 0 || h <= 0 ||
        (unsigned)f > IMAGE_FILTER_LANCZOS)
        return NULL;
    if (w == img->w && h == img->h)
        return image_orient(img, 1); /* Pillow returns a copy too */
    struct coeffs cv, ch = { 0 };
    struct image *tmp = NULL, *out = NULL;
    const struct filter *fl = &filters[f];
    if (!coeffs_init(&cv, img->h, h, fl))
        return NULL;
    /* Pillow's ImagingResampleInner: the horizontal pass only covers the rows the vertical
     * pass reads, then the vertical pass runs on that strip. Either pass is skipped when that
     * dimension does not change. */
    int y_first = cv.bounds[0];
    int y_last = cv.bounds[(h - 1) * 2] + cv.bounds[(h - 1) * 2 + 1];
    const struct image *src = img;
    int shift = 0;
    if (w != img->w) {
        if (!coeffs_init(&ch, img->w, w, fl))
            goto out;
        tmp = image_new(w, y_last - y_first);
        if (!tmp)
            goto out;
        resample_h(tmp->px, w, img->px, img->w, y_first, y_last - y_first, &ch);
        src = tmp;
        shift = y_first;
    }
    if (h != img->h) {
        int32_t *acc = malloc((size_t)src->w * 3 * sizeof(int32_t));
        out = acc ? image_new(src->w, h) : NULL;
        if (!out) {
            free(acc);
            goto out;
        }
        resample_v(out->px, h, src->px, src->w, &cv, shift, acc);
        free(acc);
    } else {
        out = tmp;
        tmp = NULL;
    }
out:
    image_free(tmp);
    coeffs_release(&cv);
    coeffs_release(&ch);
    return out;
}
