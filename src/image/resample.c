/* resample.c - separable resampling that reproduces Pillow's Image.resize() for 8-bit RGB
 * (Pillow src/libImaging/Resample.c: precompute_coeffs, normalize_coeffs_8bpc and the 8bpc
 * horizontal/vertical passes). The coefficients are computed in double exactly as Pillow does,
 * then quantised to PRECISION_BITS fixed point, so results match Pillow bit for bit. CLIP's
 * preprocessing (CLIPImageProcessor) resizes with PIL bicubic, hence the care. */
#include "internal.h"

#include "shoebox/util.h"

#include <math.h>
#include <stdbool.h>
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
 * normalize_coeffs_8bpc with `bits` fractional bits (Pillow: PRECISION_BITS). Returns 0 on
 * allocation failure. */
static int coeffs_init_at(struct coeffs *c, int in_size, int out_size, double step, double shift,
                          double width, const struct filter *f, int bits);

static int coeffs_init(struct coeffs *c, int in_size, int out_size, const struct filter *f,
                       int bits)
{
    return coeffs_init_at(c, in_size, out_size, 0, 0, 0, f, bits);
}

/* As coeffs_init, with output sample xx centred at (xx + 0.5 - shift) * step input samples
 * when step > 0 (planes whose samples are not where in_size / out_size puts them), and the
 * filter stretched by width instead of the scale when width > 0. */
static int coeffs_init_at(struct coeffs *c, int in_size, int out_size, double step, double shift,
                          double width, const struct filter *f, int bits)
{
    memset(c, 0, sizeof(*c));
    double *kk = NULL;
    double scale = step > 0 ? step : (double)in_size / out_size;
    double filterscale = width > 0 ? width : scale;
    if (filterscale < 1.0)
        filterscale = 1.0;
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
        double center = step > 0 ? (xx + 0.5 - shift) * scale : (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        if (xmin >= xmax) /* centred past the input's end (planes only): its last sample */
            xmin = in_size - 1, xmax = in_size;
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
        double v = kk[i] * (1 << bits);
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
    if (!coeffs_init(&cv, img->h, h, fl, PRECISION_BITS))
        return NULL;
    /* Pillow's ImagingResampleInner: the horizontal pass only covers the rows the vertical
     * pass reads, then the vertical pass runs on that strip. Either pass is skipped when that
     * dimension does not change. */
    int y_first = cv.bounds[0];
    int y_last = cv.bounds[(h - 1) * 2] + cv.bounds[(h - 1) * 2 + 1];
    const struct image *src = img;
    int shift = 0;
    if (w != img->w) {
        if (!coeffs_init(&ch, img->w, w, fl, PRECISION_BITS))
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

/* ---------------------------------------------------------------------------------------- */
/* Fast resampling for thumbnails (image_resize_fast). The same filters and the same
 * coefficients, quantised to FAST_BITS so that a pixel x weight pair fits SSE2's pmaddwd
 * (16-bit lanes), and the vertical pass first, so the costlier horizontal pass only sees the
 * output rows. The SIMD and the scalar code compute the same integer sums, so they give the
 * same bytes; against image_resize() (22-bit weights, horizontal pass first) the results
 * differ by rounding only. */

#define FAST_BITS 14

#if (defined(__x86_64__) || defined(__i386__)) && defined(__SSE2__)
#define SB_FAST_X86 1
#include <immintrin.h>
#endif

/* 0: scalar, 1: SSE2/SSSE3, 2: AVX2 too (each only where the CPU has it) */
static int fast_simd = 2;

void img_resize_fast_set_simd(int level)
{
    fast_simd = level < 0 ? 0 : level > 2 ? 2 : level;
}

#ifdef SB_FAST_X86
/* fast_simd as SHOEBOX_MAX_ISA allows it: "c" turns off the SSE2/SSSE3 passes too */
static int simd_level(void)
{
    return sb_isa_max() >= SB_ISA_AVX2 ? fast_simd : 0;
}

static bool use_avx2(void)
{
    return simd_level() >= 2 && __builtin_cpu_supports("avx2");
}
#endif

static unsigned char clip_fast(int32_t s)
{
    int32_t v = s >> FAST_BITS;
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Every weight must fit an int16 lane (the normalised weights of the filters here stay
 * below 2.0 in magnitude; checked all the same). */
static int coeffs_fit16(const struct coeffs *c, int out_size)
{
    for (size_t i = 0; i < (size_t)out_size * (size_t)c->ksize; i++)
        if (c->k[i] < INT16_MIN || c->k[i] > INT16_MAX)
            return 0;
    return 1;
}

/* The weights of taps 2j and 2j + 1 as the two 16-bit halves of kpair[j] (0 past the last
 * tap), the operand pmaddwd multiplies a pair of rows with. */
static void pair_weights(int32_t *kpair, const int32_t *k, int n)
{
    for (int t = 0; t < n; t += 2) {
        uint32_t k1 = t + 1 < n ? (uint16_t)k[t + 1] : 0;
        kpair[t / 2] = (int32_t)((uint16_t)k[t] | k1 << 16);
    }
}

#ifdef SB_FAST_X86
/* fast_v_row's 32 bytes at a time (AVX2): as the SSE2 code, each 128-bit lane on its own
 * (the unpacks and packs stay within lanes, so the bytes come back in order). Returns how
 * many bytes it did. */
__attribute__((target("avx2"))) static size_t fast_v_row_avx2(unsigned char *out, size_t nbytes,
                                                              const unsigned char *const *rows,
                                                              const int32_t *kpair, int n)
{
    const __m256i zero = _mm256_setzero_si256();
    const __m256i bias = _mm256_set1_epi32(1 << (FAST_BITS - 1));
    size_t i = 0;
    for (; i + 32 <= nbytes; i += 32) {
        __m256i a0 = bias, a1 = bias, a2 = bias, a3 = bias;
        for (int t = 0; t < n; t += 2) {
            __m256i r0 = _mm256_loadu_si256((const __m256i *)(const void *)(rows[t] + i));
            __m256i r1 = t + 1 < n
                             ? _mm256_loadu_si256((const __m256i *)(const void *)(rows[t + 1] + i))
                             : zero;
            __m256i kw = _mm256_set1_epi32(kpair[t / 2]);
            __m256i lo = _mm256_unpacklo_epi8(r0, r1), hi = _mm256_unpackhi_epi8(r0, r1);
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_unpacklo_epi8(lo, zero), kw));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_unpackhi_epi8(lo, zero), kw));
            a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(_mm256_unpacklo_epi8(hi, zero), kw));
            a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(_mm256_unpackhi_epi8(hi, zero), kw));
        }
        a0 = _mm256_srai_epi32(a0, FAST_BITS);
        a1 = _mm256_srai_epi32(a1, FAST_BITS);
        a2 = _mm256_srai_epi32(a2, FAST_BITS);
        a3 = _mm256_srai_epi32(a3, FAST_BITS);
        __m256i p = _mm256_packus_epi16(_mm256_packs_epi32(a0, a1), _mm256_packs_epi32(a2, a3));
        _mm256_storeu_si256((__m256i *)(void *)(out + i), p);
    }
    return i;
}
#endif

/* out[i] = sum over t < n of rows[t][i] * k[t], for nbytes bytes; kpair: pair_weights(k). */
static void fast_v_row(unsigned char *out, size_t nbytes, const unsigned char *const *rows,
                       const int32_t *k, const int32_t *kpair, int n)
{
    size_t i = 0;
#ifdef SB_FAST_X86
    if (use_avx2())
        i = fast_v_row_avx2(out, nbytes, rows, kpair, n);
    if (simd_level()) {
        const __m128i zero = _mm_setzero_si128();
        const __m128i bias = _mm_set1_epi32(1 << (FAST_BITS - 1));
        for (; i + 16 <= nbytes; i += 16) {
            __m128i a0 = bias, a1 = bias, a2 = bias, a3 = bias;
            for (int t = 0; t < n; t += 2) {
                /* two rows interleaved byte by byte, widened to 16 bits: pmaddwd then adds
                 * row_t[j] * k[t] + row_t+1[j] * k[t + 1] in each 32-bit lane */
                __m128i r0 = _mm_loadu_si128((const __m128i *)(const void *)(rows[t] + i));
                __m128i r1 = t + 1 < n
                                 ? _mm_loadu_si128((const __m128i *)(const void *)(rows[t + 1] + i))
                                 : zero;
                __m128i kw = _mm_set1_epi32(kpair[t / 2]);
                __m128i lo = _mm_unpacklo_epi8(r0, r1), hi = _mm_unpackhi_epi8(r0, r1);
                a0 = _mm_add_epi32(a0, _mm_madd_epi16(_mm_unpacklo_epi8(lo, zero), kw));
                a1 = _mm_add_epi32(a1, _mm_madd_epi16(_mm_unpackhi_epi8(lo, zero), kw));
                a2 = _mm_add_epi32(a2, _mm_madd_epi16(_mm_unpacklo_epi8(hi, zero), kw));
                a3 = _mm_add_epi32(a3, _mm_madd_epi16(_mm_unpackhi_epi8(hi, zero), kw));
            }
            a0 = _mm_srai_epi32(a0, FAST_BITS);
            a1 = _mm_srai_epi32(a1, FAST_BITS);
            a2 = _mm_srai_epi32(a2, FAST_BITS);
            a3 = _mm_srai_epi32(a3, FAST_BITS);
            /* saturating packs clamp to 0..255 as clip_fast does */
            __m128i p = _mm_packus_epi16(_mm_packs_epi32(a0, a1), _mm_packs_epi32(a2, a3));
            _mm_storeu_si128((__m128i *)(void *)(out + i), p);
        }
    }
#else
    (void)kpair;
#endif
    for (; i < nbytes; i++) {
        int32_t s = 1 << (FAST_BITS - 1);
        for (int t = 0; t < n; t++)
            s += rows[t][i] * k[t];
        out[i] = clip_fast(s);
    }
}

static void fast_h_row_scalar(unsigned char *out, int out_w, const unsigned char *src,
                              const struct coeffs *c, int bpp)
{
    for (int xx = 0; xx < out_w; xx++) {
        int xmin = c->bounds[xx * 2], n = c->bounds[xx * 2 + 1];
        const int32_t *k = c->k + (size_t)xx * c->ksize;
        for (int ch = 0; ch < bpp; ch++) {
            int32_t sum = 1 << (FAST_BITS - 1);
            const unsigned char *p = src + (size_t)xmin * (size_t)bpp + (size_t)ch;
            for (int x = 0; x < n; x++)
                sum += p[(size_t)x * (size_t)bpp] * k[x];
            out[(size_t)xx * (size_t)bpp + (size_t)ch] = clip_fast(sum);
        }
    }
}

#ifdef SB_FAST_X86
/* RGB: taps two pixels at a time: 8 bytes loaded at pixel xmin + 2j are shuffled into 16-bit
 * (r0 r1 g0 g1 b0 b1 0 0), and pmaddwd with (k0 k1 k0 k1 k0 k1 0 0) gives the three
 * channels' partial sums. kp holds those weight vectors, `vecs` per output pixel. src must
 * be readable 8 bytes past its last pixel (the caller pads the row). */
__attribute__((target("ssse3"))) static void fast_h_row_ssse3(unsigned char *out, int out_w,
                                                              const unsigned char *src,
                                                              const struct coeffs *c,
                                                              const int16_t *kp, int vecs)
{
    const __m128i shuf =
        _mm_setr_epi8(0, -128, 3, -128, 1, -128, 4, -128, 2, -128, 5, -128, -128, -128, -128, -128);
    const __m128i bias = _mm_set1_epi32(1 << (FAST_BITS - 1));
    for (int xx = 0; xx < out_w; xx++) {
        int xmin = c->bounds[xx * 2], n = c->bounds[xx * 2 + 1];
        const int16_t *k = kp + (size_t)xx * (size_t)vecs * 8;
        const unsigned char *p = src + (size_t)xmin * 3;
        __m128i acc = bias;
        for (int j = 0; 2 * j < n; j++) {
            __m128i px = _mm_loadl_epi64((const __m128i *)(const void *)(p + 6 * j));
            __m128i kw = _mm_loadu_si128((const __m128i *)(const void *)(k + 8 * j));
            acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_shuffle_epi8(px, shuf), kw));
        }
        acc = _mm_srai_epi32(acc, FAST_BITS);
        __m128i b = _mm_packus_epi16(_mm_packs_epi32(acc, acc), acc);
        uint32_t v = (uint32_t)_mm_cvtsi128_si32(b);
        out[xx * 3 + 0] = (unsigned char)v;
        out[xx * 3 + 1] = (unsigned char)(v >> 8);
        out[xx * 3 + 2] = (unsigned char)(v >> 16);
    }
}

/* fast_h_row_gray with AVX2: eight output pixels at a time, xx + j in the low 128-bit lane
 * and xx + 4 + j in the high one (the bytes at their xmin + 8v, widened with vpmovzxbw,
 * times their weights); three rounds of phaddd then leave the eight sums in order. */
__attribute__((target("avx2"), always_inline)) static inline __m256i
gray_taps2(const unsigned char *src, const struct coeffs *c, const int16_t *kp, int vecs, int xa,
           int xb)
{
    const unsigned char *pa = src + c->bounds[xa * 2], *pb = src + c->bounds[xb * 2];
    const int16_t *ka = kp + (size_t)xa * (size_t)vecs * 8,
                  *kb = kp + (size_t)xb * (size_t)vecs * 8;
    int n = c->bounds[xa * 2 + 1] > c->bounds[xb * 2 + 1] ? c->bounds[xa * 2 + 1]
                                                          : c->bounds[xb * 2 + 1];
    __m256i acc = _mm256_setzero_si256();
    for (int j = 0; 8 * j < n; j++) {
        __m128i px =
            _mm_unpacklo_epi64(_mm_loadl_epi64((const __m128i *)(const void *)(pa + 8 * j)),
                               _mm_loadl_epi64((const __m128i *)(const void *)(pb + 8 * j)));
        __m256i kw = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(ka + 8 * j))),
            _mm_loadu_si128((const __m128i *)(const void *)(kb + 8 * j)), 1);
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepu8_epi16(px), kw));
    }
    return acc;
}

__attribute__((target("avx2"))) static int fast_h_row_gray_avx2(unsigned char *out, int out_w,
                                                                const unsigned char *src,
                                                                const struct coeffs *c,
                                                                const int16_t *kp, int vecs)
{
    const __m256i bias = _mm256_set1_epi32(1 << (FAST_BITS - 1));
    int xx = 0;
    for (; xx + 8 <= out_w; xx += 8) {
        __m256i a0 = gray_taps2(src, c, kp, vecs, xx, xx + 4);
        __m256i a1 = gray_taps2(src, c, kp, vecs, xx + 1, xx + 5);
        __m256i a2 = gray_taps2(src, c, kp, vecs, xx + 2, xx + 6);
        __m256i a3 = gray_taps2(src, c, kp, vecs, xx + 3, xx + 7);
        __m256i sum = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
        sum = _mm256_srai_epi32(_mm256_add_epi32(sum, bias), FAST_BITS);
        __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        _mm_storel_epi64((__m128i *)(void *)(out + xx), _mm_packus_epi16(w, w));
    }
    return xx;
}

/* One channel (SSE2): 8 taps per pmaddwd on the bytes at xmin + 8j widened to 16 bits,
 * weights zero-padded to whole vectors of 8. Four output pixels at a time: their four
 * partial-sum vectors are transposed and added, then rounded and packed together. */
static __m128i gray_taps(const unsigned char *src, const struct coeffs *c, const int16_t *kp,
                         int vecs, int xx)
{
    const __m128i zero = _mm_setzero_si128();
    int xmin = c->bounds[xx * 2], n = c->bounds[xx * 2 + 1];
    const int16_t *k = kp + (size_t)xx * (size_t)vecs * 8;
    const unsigned char *p = src + xmin;
    __m128i acc = zero;
    for (int j = 0; 8 * j < n; j++) {
        __m128i px = _mm_loadl_epi64((const __m128i *)(const void *)(p + 8 * j));
        __m128i kw = _mm_loadu_si128((const __m128i *)(const void *)(k + 8 * j));
        acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_unpacklo_epi8(px, zero), kw));
    }
    return acc;
}

static void fast_h_row_gray(unsigned char *out, int out_w, const unsigned char *src,
                            const struct coeffs *c, const int16_t *kp, int vecs)
{
    const __m128i bias = _mm_set1_epi32(1 << (FAST_BITS - 1));
    int xx = use_avx2() ? fast_h_row_gray_avx2(out, out_w, src, c, kp, vecs) : 0;
    for (; xx + 4 <= out_w; xx += 4) {
        __m128i a0 = gray_taps(src, c, kp, vecs, xx), a1 = gray_taps(src, c, kp, vecs, xx + 1);
        __m128i a2 = gray_taps(src, c, kp, vecs, xx + 2), a3 = gray_taps(src, c, kp, vecs, xx + 3);
        __m128i s01 = _mm_add_epi32(_mm_unpacklo_epi32(a0, a1), _mm_unpackhi_epi32(a0, a1));
        __m128i s23 = _mm_add_epi32(_mm_unpacklo_epi32(a2, a3), _mm_unpackhi_epi32(a2, a3));
        __m128i sum = _mm_add_epi32(_mm_unpacklo_epi64(s01, s23), _mm_unpackhi_epi64(s01, s23));
        sum = _mm_srai_epi32(_mm_add_epi32(sum, bias), FAST_BITS);
        __m128i b = _mm_packs_epi32(sum, sum);
        uint32_t v = (uint32_t)_mm_cvtsi128_si32(_mm_packus_epi16(b, b));
        memcpy(out + xx, &v, 4); /* little-endian: pixel xx in the low byte */
    }
    for (; xx < out_w; xx++) {
        __m128i acc = gray_taps(src, c, kp, vecs, xx);
        acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, 0x4E));
        acc = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, 0xB1));
        out[xx] = clip_fast(_mm_cvtsi128_si32(acc) + (1 << (FAST_BITS - 1)));
    }
}

/* The weight vectors fast_h_row_ssse3 (bpp 3) or fast_h_row_gray (bpp 1) reads; NULL when
 * out of memory. */
static int16_t *fast_h_weights(const struct coeffs *c, int out_w, int bpp, int *vecs_out)
{
    int vecs = bpp == 3 ? (c->ksize + 1) / 2 : (c->ksize + 7) / 8;
    int16_t *kp = calloc((size_t)out_w * (size_t)vecs * 8, sizeof(int16_t));
    if (!kp)
        return NULL;
    for (int xx = 0; xx < out_w; xx++) {
        int n = c->bounds[xx * 2 + 1];
        const int32_t *k = c->k + (size_t)xx * c->ksize;
        int16_t *d = kp + (size_t)xx * (size_t)vecs * 8;
        for (int x = 0; x < n; x++) {
            if (bpp == 1) {
                d[x] = (int16_t)k[x];
                continue;
            }
            int16_t *v = d + 8 * (x / 2) + (x % 2);
            v[0] = v[2] = v[4] = (int16_t)k[x];
        }
    }
    *vecs_out = vecs;
    return kp;
}
#endif

/* Horizontal pass over rows rows of src (sw -> dw pixels of bpp bytes, row strides sstride
 * and dstride bytes). Returns 0 on allocation failure. */
/* How far past a row's end the SIMD loads of fast_h may read: up to the taps of a wider
 * neighbour (AVX2 pairs pixels), in whole 8-byte loads. */
static size_t fast_h_overrun(const struct coeffs *c)
{
    return (size_t)c->ksize + 32;
}

/* padded: src's rows may be read fast_h_overrun() bytes past their end (the next row, or
 * readable padding after the last): no padded copy of each row is needed. */
static int fast_h(unsigned char *dst, size_t dstride, int dw, const unsigned char *src,
                  size_t sstride, int sw, int rows, int bpp, const struct coeffs *c, bool padded)
{
    size_t in_bytes = (size_t)sw * (size_t)bpp;
    unsigned char *row = calloc(in_bytes + fast_h_overrun(c), 1); /* a padded copy */
    if (!row)
        return 0;
    int16_t *kp = NULL;
    int vecs = 0;
#ifdef SB_FAST_X86
    if (simd_level() && (bpp == 1 || (bpp == 3 && __builtin_cpu_supports("ssse3")))) {
        kp = fast_h_weights(c, dw, bpp, &vecs);
        if (!kp) {
            free(row);
            return 0;
        }
    }
#endif
    for (int y = 0; y < rows; y++) {
        const unsigned char *s = src + (size_t)y * sstride;
        unsigned char *d = dst + (size_t)y * dstride;
#ifdef SB_FAST_X86
        if (kp) {
            const unsigned char *in = s;
            if (!padded) {
                memcpy(row, s, in_bytes);
                in = row;
            }
            if (bpp == 3)
                fast_h_row_ssse3(d, dw, in, c, kp, vecs);
            else
                fast_h_row_gray(d, dw, in, c, kp, vecs);
            continue;
        }
#endif
        fast_h_row_scalar(d, dw, s, c, bpp);
    }
    free(kp);
    free(row);
    return 1;
}

int img_resize_fast_plane(const unsigned char *src, size_t sstride, unsigned char *dst,
                          size_t dstride, struct img_axis x, struct img_axis y, int bpp,
                          enum image_filter f)
{
    if (!src || !dst || x.in <= 0 || y.in <= 0 || x.out <= 0 || y.out <= 0 ||
        (bpp != 1 && bpp != 3) || (unsigned)f > IMAGE_FILTER_LANCZOS ||
        sstride < (size_t)x.in * (size_t)bpp || dstride < (size_t)x.out * (size_t)bpp)
        return -1;
    bool do_x = x.in != x.out || x.step > 0, do_y = y.in != y.out || y.step > 0;
    size_t in_bytes = (size_t)x.in * (size_t)bpp;
    if (!do_x && !do_y) {
        for (int r = 0; r < y.in; r++)
            memcpy(dst + (size_t)r * dstride, src + (size_t)r * sstride, in_bytes);
        return 0;
    }
    const struct filter *fl = &filters[f];
    struct coeffs cv = { 0 }, ch = { 0 };
    unsigned char *tmp = NULL;
    const unsigned char **rows = NULL;
    int32_t *kpair = NULL;
    int rc = -1;
    if (do_y && !coeffs_init_at(&cv, y.in, y.out, y.step, y.shift, y.width, fl, FAST_BITS))
        goto out;
    if (do_x && !coeffs_init_at(&ch, x.in, x.out, x.step, x.shift, x.width, fl, FAST_BITS))
        goto out;
    if ((cv.k && !coeffs_fit16(&cv, y.out)) || (ch.k && !coeffs_fit16(&ch, x.out))) {
        rc = 1;
        goto out;
    }
    const unsigned char *s = src;
    size_t s_stride = sstride;
    if (do_y) {
        /* straight into dst when there is no horizontal pass */
        unsigned char *vout = dst;
        size_t vstride = dstride;
        if (do_x) {
            size_t n;
            /* the horizontal pass reads this in place: readable (zeroed) bytes after it */
            size_t pad = fast_h_overrun(&ch);
            if (!sb_mul_size(in_bytes, (size_t)y.out, &n) || n > SIZE_MAX - pad ||
                !(tmp = malloc(n + pad)))
                goto out;
            memset(tmp + n, 0, pad);
            vout = tmp;
            vstride = in_bytes;
        }
        rows = malloc((size_t)cv.ksize * sizeof(*rows));
        kpair = malloc(((size_t)cv.ksize + 1) / 2 * sizeof(*kpair));
        if (!rows || !kpair)
            goto out;
        for (int yy = 0; yy < y.out; yy++) {
            int ymin = cv.bounds[yy * 2], n = cv.bounds[yy * 2 + 1];
            const int32_t *k = cv.k + (size_t)yy * cv.ksize;
            for (int t = 0; t < n; t++)
                rows[t] = src + (size_t)(ymin + t) * sstride;
            pair_weights(kpair, k, n);
            fast_v_row(vout + (size_t)yy * vstride, in_bytes, rows, k, kpair, n);
        }
        s = vout;
        s_stride = vstride;
    }
    if (do_x && !fast_h(dst, dstride, x.out, s, s_stride, x.in, y.out, bpp, &ch, s == tmp))
        goto out;
    rc = 0;
out:
    free(rows);
    free(kpair);
    free(tmp);
    coeffs_release(&cv);
    coeffs_release(&ch);
    return rc;
}

struct image *image_resize_fast(const struct image *img, int w, int h, enum image_filter f)
{
    if (!img || !img->px || img->w <= 0 || img->h <= 0 || w <= 0 || h <= 0 ||
        (unsigned)f > IMAGE_FILTER_LANCZOS)
        return NULL;
    struct image *out = image_new(w, h);
    if (!out)
        return NULL;
    struct img_axis x = { img->w, w, 0, 0, 0 }, y = { img->h, h, 0, 0, 0 };
    int rc = img_resize_fast_plane(img->px, (size_t)img->w * 3, out->px, (size_t)w * 3, x, y, 3, f);
    if (rc == 0)
        return out;
    image_free(out);
    /* weights too big for 16 bits (none of the filters here, checked all the same) */
    return rc > 0 ? image_resize(img, w, h, f) : NULL;
}
