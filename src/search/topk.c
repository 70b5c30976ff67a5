/* topk.c - exact top-k over an fp16 matrix: a multi-threaded scan (threads take chunks of rows
 * as they go) with a bounded min-heap per thread, merged at the end. With 6-bit codes, pass 1
 * scores the codes (AVX-512 VNNI + VBMI, AVX2 or portable kernel, the best the CPU runs;
 * SHOEBOX_SEARCH_KERNEL=portable|avx2|avx512vnni picks one, for tests and benchmarks) and
 * pass 2 rescores the rows its bound could not rule out from fp16 (AVX2 + F16C, else a
 * portable loop). */
#include "shoebox/search.h"

#include "internal.h"
#include "shoebox/err.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define SEARCH_X86 1
#endif

typedef float (*dot_fn)(const uint16_t *a, const float *q, int d);

static float dot_portable(const uint16_t *a, const float *q, int d)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int i = 0;
    for (; i + 4 <= d; i += 4) {
        s0 += search_f16_to_f32(a[i]) * q[i];
        s1 += search_f16_to_f32(a[i + 1]) * q[i + 1];
        s2 += search_f16_to_f32(a[i + 2]) * q[i + 2];
        s3 += search_f16_to_f32(a[i + 3]) * q[i + 3];
    }
    for (; i < d; i++)
        s0 += search_f16_to_f32(a[i]) * q[i];
    return (s0 + s1) + (s2 + s3);
}

#ifdef SEARCH_X86
__attribute__((target("avx2,fma,f16c"))) static float dot_avx2(const uint16_t *a, const float *q,
                                                               int d)
{
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 32 <= d; i += 32) {
        __m256 a0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(a + i)));
        __m256 a1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(a + i + 8)));
        __m256 a2 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(a + i + 16)));
        __m256 a3 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(a + i + 24)));
        acc0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(q + i), acc0);
        acc1 = _mm256_fmadd_ps(a1, _mm256_loadu_ps(q + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(a2, _mm256_loadu_ps(q + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(a3, _mm256_loadu_ps(q + i + 24), acc3);
    }
    for (; i + 8 <= d; i += 8) {
        __m256 a0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(a + i)));
        acc0 = _mm256_fmadd_ps(a0, _mm256_loadu_ps(q + i), acc0);
    }
    __m256 acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
    __m128 lo = _mm256_castps256_ps128(acc), hi = _mm256_extractf128_ps(acc, 1);
    __m128 s = _mm_add_ps(lo, hi);
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    float r = _mm_cvtss_f32(s);
    for (; i < d; i++)
        r += search_f16_to_f32(a[i]) * q[i];
    return r;
}
#endif

/* ---- the 6-bit first pass ---------------------------------------------------------------- */

/* The query is quantised to int8 in two parts, q ~ qa * a + qb * b with b the quantised rest
 * q - qa * a, and each is multiplied with the unsigned codes u = c + 32 (u8 x s8 products, what
 * vpdpbusd and vpmaddubsw take); the bias is removed with sum(a) and sum(b) afterwards. The
 * second part costs one more product per code (the codes are unpacked once) and leaves the
 * query's own rounding (||q - q'||, a term of the bound) about 100 times smaller, which keeps
 * about two thirds of the rows pass 1 would otherwise send to fp16 rescoring out of it.
 * A row sums at most 63 * 127 per dimension, far inside int32. */

static void dot6_portable(const uint8_t *c, size_t nrows, const int8_t *q, size_t nb, int32_t *out)
{
    const int8_t *qb0 = q + nb * SEARCH_C6_DIMS;
    for (size_t r = 0; r < nrows; r++) {
        int32_t sa = 0, sb = 0;
        const int8_t *qa = q, *qb = qb0;
        for (size_t g = 0; g < nb * (SEARCH_C6_DIMS / 4); g++, c += 3, qa += 4, qb += 4) {
            uint32_t x = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16;
            int32_t u0 = (int32_t)(x & 63), u1 = (int32_t)(x >> 6 & 63);
            int32_t u2 = (int32_t)(x >> 12 & 63), u3 = (int32_t)(x >> 18);
            sa += u0 * qa[0] + u1 * qa[1] + u2 * qa[2] + u3 * qa[3];
            sb += u0 * qb[0] + u1 * qb[1] + u2 * qb[2] + u3 * qb[3];
        }
        out[2 * r] = sa;
        out[2 * r + 1] = sb;
    }
}

#ifdef SEARCH_X86
/* 32 codes from 24 bytes: each 128-bit lane takes 12 bytes (16 codes), one dword per 3 bytes
 * x = b0 | b1 << 8 | b2 << 16, whose codes x & 63, x >> 6, x >> 12, x >> 18 go to its bytes 0-3:
 * byte 0 by a mask, byte 2 by a shift of 4, bytes 1 and 3 by one 16-bit multiply (x4, x64). */
__attribute__((target("avx2"))) static inline __m256i c6_unpack32(__m256i x)
{
    const __m256i m0 = _mm256_set1_epi32(0x3f), m2 = _mm256_set1_epi32(0x3f0000);
    const __m256i m13 = _mm256_set1_epi32(0x00fc0fc0), mul = _mm256_set1_epi32(0x00400004);
    return _mm256_or_si256(
        _mm256_or_si256(_mm256_and_si256(x, m0), _mm256_and_si256(_mm256_slli_epi32(x, 4), m2)),
        _mm256_mullo_epi16(_mm256_and_si256(x, m13), mul));
}

__attribute__((target("avx2"))) static inline __m256i load2x16(const uint8_t *lo, const uint8_t *hi)
{
    return _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)lo)),
        _mm_loadu_si128((const __m128i *)(const void *)hi), 1);
}

/* u0, u1 (a block's two halves) times 64 query bytes, as 8 int32 partial sums. vpmaddubsw
 * sums two products of at most 63 * 127; adding the two halves stays below 32767. */
__attribute__((target("avx2"))) static inline __m256i madd64(__m256i u0, __m256i u1,
                                                             const int8_t *q)
{
    __m256i p0 = _mm256_maddubs_epi16(u0, _mm256_loadu_si256((const __m256i *)(const void *)q));
    __m256i p1 =
        _mm256_maddubs_epi16(u1, _mm256_loadu_si256((const __m256i *)(const void *)(q + 32)));
    return _mm256_madd_epi16(_mm256_add_epi16(p0, p1), _mm256_set1_epi16(1));
}

__attribute__((target("avx2"))) static int32_t hsum8(__m256i acc)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* The second half's lanes are read from bytes 20 and 32 (not 24 and 36), so that no load
 * passes the block's end. */
__attribute__((target("avx2"))) static void dot6_avx2(const uint8_t *c, size_t nrows,
                                                      const int8_t *q, size_t nb, int32_t *out)
{
    const __m256i sh0 = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1, 0, 1,
                                         2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
    const __m256i sh1 = _mm256_add_epi8(sh0, _mm256_set1_epi32(0x00040404));
    const int8_t *qb0 = q + nb * SEARCH_C6_DIMS;
    for (size_t r = 0; r < nrows; r++) {
        __m256i acca = _mm256_setzero_si256(), accb = _mm256_setzero_si256();
        for (size_t b = 0; b < nb; b++, c += SEARCH_C6_BYTES) {
            __m256i u0 = c6_unpack32(_mm256_shuffle_epi8(load2x16(c, c + 12), sh0));
            __m256i u1 = c6_unpack32(_mm256_shuffle_epi8(load2x16(c + 20, c + 32), sh1));
            acca = _mm256_add_epi32(acca, madd64(u0, u1, q + b * SEARCH_C6_DIMS));
            accb = _mm256_add_epi32(accb, madd64(u0, u1, qb0 + b * SEARCH_C6_DIMS));
        }
        out[2 * r] = hsum8(acca);
        out[2 * r + 1] = hsum8(accb);
    }
}

#define TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni,avx512vbmi")))

/* 64 codes of one block in a zmm: the block's 48 bytes (a masked load, never past its end),
 * each qword i given bytes 6i..6i+5 (vpermb), each byte k of it bits 6k.. of the qword
 * (vpmultishiftqb), masked to 6 bits. */
TARGET_VNNI static inline __m512i c6_unpack64(const uint8_t *c, __m512i spread)
{
    const __m512i shifts = _mm512_set1_epi64(0x2a241e18120c0600ll);
    __m512i x = _mm512_maskz_loadu_epi8(0xffffffffffffull, c);
    x = _mm512_permutexvar_epi8(spread, x);
    return _mm512_and_si512(_mm512_multishift_epi64_epi8(shifts, x), _mm512_set1_epi8(0x3f));
}

/* The sums of 16 lanes of a0..a3, as four lanes. */
TARGET_VNNI static inline __m128i hsum4(__m512i a0, __m512i a1, __m512i a2, __m512i a3)
{
    __m512i s0 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
    __m512i s1 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
    __m512i t = _mm512_add_epi32(_mm512_unpacklo_epi64(s0, s1), _mm512_unpackhi_epi64(s0, s1));
    __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(t), _mm512_extracti64x4_epi64(t, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* How far ahead of the rows being scored the scan asks for codes (bytes), into L2. Measured
 * one thread streaming 1M rows (bench_dot6): no prefetch 46 ns/row in 4 KiB pages, 34 in
 * 2 MiB pages; 4096 bytes ahead into L1 45 and 43; 2048 bytes ahead into L2 36 and 26, which
 * is what merely reading the rows costs (bench_stream). */
#define C6_PREFETCH 2048

/* Four rows at a time: each block of the query is loaded once for the four, the eight sums
 * are reduced together, and the codes C6_PREFETCH bytes ahead are requested while these are
 * scored. */
TARGET_VNNI static void dot6_vnni(const uint8_t *c, size_t nrows, const int8_t *q, size_t nb,
                                  int32_t *out)
{
    static const uint8_t spread_bytes[64] = {
        0,  1,  2,  3,  4,  5,  5,  5,  6,  7,  8,  9,  10, 11, 11, 11, 12, 13, 14, 15, 16, 17,
        17, 17, 18, 19, 20, 21, 22, 23, 23, 23, 24, 25, 26, 27, 28, 29, 29, 29, 30, 31, 32, 33,
        34, 35, 35, 35, 36, 37, 38, 39, 40, 41, 41, 41, 42, 43, 44, 45, 46, 47, 47, 47,
    };
    const __m512i spread = _mm512_loadu_si512((const void *)spread_bytes);
    const size_t rb = nb * SEARCH_C6_BYTES;
    const int8_t *qb = q + nb * SEARCH_C6_DIMS;
    size_t r = 0;
    for (; r + 4 <= nrows; r += 4, c += 4 * rb) {
        for (size_t o = 0; o < 4 * rb; o += 64)
            _mm_prefetch((const char *)c + C6_PREFETCH + o, _MM_HINT_T1);
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        __m512i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        const uint8_t *p = c;
        for (size_t b = 0; b < nb; b++, p += SEARCH_C6_BYTES) {
            __m512i qva = _mm512_loadu_si512((const void *)(q + b * SEARCH_C6_DIMS));
            __m512i qvb = _mm512_loadu_si512((const void *)(qb + b * SEARCH_C6_DIMS));
            __m512i u0 = c6_unpack64(p, spread), u1 = c6_unpack64(p + rb, spread);
            __m512i u2 = c6_unpack64(p + 2 * rb, spread), u3 = c6_unpack64(p + 3 * rb, spread);
            a0 = _mm512_dpbusd_epi32(a0, u0, qva);
            b0 = _mm512_dpbusd_epi32(b0, u0, qvb);
            a1 = _mm512_dpbusd_epi32(a1, u1, qva);
            b1 = _mm512_dpbusd_epi32(b1, u1, qvb);
            a2 = _mm512_dpbusd_epi32(a2, u2, qva);
            b2 = _mm512_dpbusd_epi32(b2, u2, qvb);
            a3 = _mm512_dpbusd_epi32(a3, u3, qva);
            b3 = _mm512_dpbusd_epi32(b3, u3, qvb);
        }
        _mm_storeu_si128((__m128i *)(void *)(out + 2 * r), hsum4(a0, b0, a1, b1));
        _mm_storeu_si128((__m128i *)(void *)(out + 2 * r + 4), hsum4(a2, b2, a3, b3));
    }
    for (; r < nrows; r++, c += rb) {
        __m512i a0 = _mm512_setzero_si512(), b0 = a0;
        for (size_t b = 0; b < nb; b++) {
            __m512i u = c6_unpack64(c + b * SEARCH_C6_BYTES, spread);
            a0 = _mm512_dpbusd_epi32(a0, u,
                                     _mm512_loadu_si512((const void *)(q + b * SEARCH_C6_DIMS)));
            b0 = _mm512_dpbusd_epi32(b0, u,
                                     _mm512_loadu_si512((const void *)(qb + b * SEARCH_C6_DIMS)));
        }
        out[2 * r] = _mm512_reduce_add_epi32(a0);
        out[2 * r + 1] = _mm512_reduce_add_epi32(b0);
    }
}

/* AVX512-VNNI is CPUID leaf 7 ECX bit 11, VBMI bit 1 (older compilers' __builtin_cpu_supports
 * lack the first). */
static bool cpu_has_vnni512(void)
{
    unsigned a, b, c, d;
    return sb_isa_max() >= SB_ISA_AVX512 && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __get_cpuid_count(7, 0, &a, &b, &c, &d) &&
           (c & (1u << 11)) && (c & (1u << 1));
}
#endif

size_t search_dot6_kernels(struct search_dot6_kernel *out, size_t cap)
{
    size_t n = 0;
    if (n < cap)
        out[n++] = (struct search_dot6_kernel){ "portable", dot6_portable };
#ifdef SEARCH_X86
    if (n < cap && sb_isa_max() >= SB_ISA_AVX2 && __builtin_cpu_supports("avx2"))
        out[n++] = (struct search_dot6_kernel){ "avx2", dot6_avx2 };
    if (n < cap && cpu_has_vnni512())
        out[n++] = (struct search_dot6_kernel){ "avx512vnni", dot6_vnni };
#endif
    return n;
}

static search_dot6_fn pick_dot6(void)
{
    struct search_dot6_kernel k[3];
    size_t n = search_dot6_kernels(k, 3);
    const char *want = getenv("SHOEBOX_SEARCH_KERNEL");
    for (size_t i = 0; want && i < n; i++)
        if (strcmp(k[i].name, want) == 0)
            return k[i].fn;
    return k[n - 1].fn;
}

size_t search_code_bytes(int dim)
{
    return (size_t)((dim + SEARCH_C6_DIMS - 1) / SEARCH_C6_DIMS) * SEARCH_C6_BYTES;
}

void search_c6_pack(const int8_t *c, int dim, uint8_t *out)
{
    size_t nb = (size_t)(dim + SEARCH_C6_DIMS - 1) / SEARCH_C6_DIMS;
    memset(out, 0, nb * SEARCH_C6_BYTES);
    for (size_t i = 0; i < nb * SEARCH_C6_DIMS; i++) {
        unsigned u = (unsigned)((i < (size_t)dim ? c[i] : 0) + SEARCH_C6_BIAS);
        size_t bit = 6 * i; /* bits bit..bit+5 of the row's code bytes, little-endian */
        out[bit / 8] |= (uint8_t)(u << (bit % 8));
        if (bit % 8 > 2)
            out[bit / 8 + 1] |= (uint8_t)(u >> (8 - bit % 8));
    }
}

void search_quantize(const struct vec_matrix *m, uint8_t *codes, float *scales, float *resid,
                     float *cnorm)
{
    const int d = m->dim;
    const size_t rb = search_code_bytes(d);
    for (size_t r = 0; r < m->n; r++) {
        const uint16_t *row = m->data + r * (size_t)d;
        float mx = 0.0f;
        for (int j = 0; j < d; j++) {
            float v = fabsf(search_f16_to_f32(row[j]));
            if (v > mx)
                mx = v;
        }
        float scale = mx > 0 ? mx / 31.0f : 1.0f;
        double e = 0.0, cn = 0.0;
        int8_t c[SEARCH_C6_DIMS]; /* one block at a time */
        for (int j0 = 0; j0 < d; j0 += SEARCH_C6_DIMS) {
            int nj = d - j0 < SEARCH_C6_DIMS ? d - j0 : SEARCH_C6_DIMS;
            for (int j = 0; j < nj; j++) {
                float v = search_f16_to_f32(row[j0 + j]);
                long iv = lrintf(v / scale);
                iv = iv > 31 ? 31 : iv < -31 ? -31 : iv;
                c[j] = (int8_t)iv;
                double rec = (double)scale * (double)iv;
                e += ((double)v - rec) * ((double)v - rec);
                cn += rec * rec;
            }
            search_c6_pack(c, nj, codes + r * rb + (size_t)(j0 / SEARCH_C6_DIMS) * SEARCH_C6_BYTES);
        }
        scales[r] = scale;
        /* rounded up so that the float bound is never below the exact one */
        resid[r] = nextafterf((float)sqrt(e), INFINITY);
        cnorm[r] = nextafterf((float)sqrt(cn), INFINITY);
    }
}

#ifdef SEARCH_X86
/* F16C is CPUID leaf 1, ECX bit 29 (clang 14's __builtin_cpu_supports does not know "f16c"). */
static bool cpu_has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

static dot_fn pick_dot(void)
{
#ifdef SEARCH_X86
    if (sb_isa_max() >= SB_ISA_AVX2 && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma") && cpu_has_f16c())
        return dot_avx2;
#endif
    return dot_portable;
}

float search_score_row(const struct vec_matrix *m, const float *q, size_t row)
{
    return pick_dot()(m->data + row * (size_t)m->dim, q, m->dim);
}

void search_row(const struct vec_matrix *m, size_t row, float *out)
{
    const uint16_t *a = m->data + row * (size_t)m->dim;
    for (int i = 0; i < m->dim; i++)
        out[i] = search_f16_to_f32(a[i]);
}

int64_t search_find_row(const struct vec_matrix *m, int64_t photo_id)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->ids[mid] < photo_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->n && m->ids[lo] == photo_id ? (int64_t)lo : -1;
}

void search_mask_from_ids(const struct vec_matrix *m, const int64_t *ids, size_t nids,
                          unsigned char *mask)
{
    memset(mask, 0, m->n);
    size_t j = 0;
    for (size_t r = 0; r < m->n && j < nids; r++) {
        while (j < nids && ids[j] < m->ids[r])
            j++;
        if (j < nids && ids[j] == m->ids[r])
            mask[r] = 1;
    }
}

/* ---- heaps ------------------------------------------------------------------------------ */

/* a ranks worse than b: lower score, or equal score and higher photo id */
static int worse(const struct search_hit *a, const struct search_hit *b)
{
    if (a->score != b->score)
        return a->score < b->score;
    return a->photo_id > b->photo_id;
}

/* Min-heap on "worse": the root is the worst hit kept. */
static void heap_push(struct search_hit *h, size_t *n, size_t k, struct search_hit x)
{
    if (*n < k) {
        size_t i = (*n)++;
        h[i] = x;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!worse(&h[i], &h[p]))
                break;
            struct search_hit t = h[i];
            h[i] = h[p];
            h[p] = t;
            i = p;
        }
        return;
    }
    if (!worse(&h[0], &x))
        return; /* x is no better than the worst kept */
    h[0] = x;
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && worse(&h[l], &h[m]))
            m = l;
        if (r < *n && worse(&h[r], &h[m]))
            m = r;
        if (m == i)
            break;
        struct search_hit t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static int better_first(const void *a, const void *b)
{
    const struct search_hit *x = a, *y = b;
    if (worse(x, y))
        return 1;
    if (worse(y, x))
        return -1;
    return 0;
}

void search_hits_sort(struct search_hit *h, size_t n)
{
    qsort(h, n, sizeof(*h), better_first);
}

/* A row that pass 1 could not rule out: its row and its upper bound. */
struct cand {
    size_t row;
    float upper;
};

/* One thread's share of a scan: its heap of the k best (lower bounds in pass 1, exact scores
 * in pass 2) and, with codes, the rows pass 1 kept. */
struct slot {
    struct search_hit *heap; /* k */
    size_t n;
    struct cand *cands;
    size_t ncands, capcands;
    bool failed; /* ran out of memory */
};

struct scan;

/* A batch's bounds from its sums (see scan_codes): up[i] and lo[i] for rows i < nr, and the
 * rows whose upper bound reaches floor as bits (bit i for row i). */
typedef uint64_t (*bounds_fn)(const struct scan *s, const int32_t *dots, size_t r0, size_t nr,
                              float floor, float *up, float *lo);

struct scan {
    const struct vec_matrix *m;
    const float *q;
    const unsigned char *mask;
    float min_score;
    size_t k;
    dot_fn dot;
    search_dot6_fn dot6;
    bounds_fn bounds;
    float qnorm;          /* ||q||, for the bound */
    const int8_t *q8;     /* q ~ qa * a + qb * b: a then b, each padded to whole blocks */
    int32_t biasa, biasb; /* 32 sum(a), 32 sum(b): remove the codes' bias */
    size_t nblocks;       /* code blocks per row */
    float qa, qb, qerr;   /* qerr >= ||q - (qa * a + qb * b)|| */
    float bres, bcn;      /* the bound is bres * resid + bcn * cnorm (see bound_terms) */
    struct slot *slots;
    size_t chunk, nchunks;
    _Atomic size_t next; /* the next chunk a thread takes */
    _Atomic float floor; /* the best floor any thread has reached (pass 1) */
};

/* |q.v - coarse| <= |q.(v - v')| + |(q - q').v'| <= ||q|| resid + qerr ||v'||, where
 * v' = scale * c (||v'|| = cnorm) and q' = qa * a + qb * b. The slack covers float rounding in the
 * fp16 kernel's sum and in the coarse score's products: relative 1e-4 of ||q|| ||v||, far above
 * what 1024 products in float accumulate and far below any score gap that matters. Gathered per row
 * as bres * resid + bcn * cnorm with bres = ||q|| (1 + 1e-4), bcn = qerr + 1e-4 ||q||; float
 * rounding in these terms is relative 1e-7, inside the slack. */
static void bound_terms(struct scan *s)
{
    s->bres = s->qnorm + 1e-4f * s->qnorm;
    s->bcn = s->qerr + 1e-4f * s->qnorm;
}

static bool cand_push(struct slot *sl, size_t row, float upper)
{
    if (sl->ncands == sl->capcands) {
        size_t cap = sl->capcands ? 2 * sl->capcands : 256;
        struct cand *c = realloc(sl->cands, cap * sizeof(*c));
        if (!c)
            return false;
        sl->cands = c;
        sl->capcands = cap;
    }
    sl->cands[sl->ncands++] = (struct cand){ row, upper };
    return true;
}

/* Quantises v (dim floats) to int8: v ~ scale * out, returns scale; v becomes the rest
 * v - scale * out and *bias 32 sum(out). */
static float quantize_part(float *v, int dim, int8_t *out, int32_t *bias)
{
    float mx = 0.0f;
    for (int j = 0; j < dim; j++)
        mx = fabsf(v[j]) > mx ? fabsf(v[j]) : mx;
    float scale = mx > 0 ? mx / 127.0f : 1.0f;
    int32_t sum = 0;
    for (int j = 0; j < dim; j++) {
        long iv = lrintf(v[j] / scale);
        iv = iv > 127 ? 127 : iv < -127 ? -127 : iv;
        out[j] = (int8_t)iv;
        sum += (int32_t)iv;
        v[j] -= scale * (float)iv;
    }
    *bias = SEARCH_C6_BIAS * sum;
    return scale;
}

/* Raises the shared floor to f if f is higher. */
static void floor_raise(struct scan *s, float f)
{
    float cur = atomic_load_explicit(&s->floor, memory_order_relaxed);
    while (cur < f && !atomic_compare_exchange_weak_explicit(
                          &s->floor, &cur, f, memory_order_relaxed, memory_order_relaxed)) {
    }
}

enum { BATCH = 64 };       /* rows scored per kernel call */
enum { SIDE_AHEAD = 512 }; /* rows ahead the per-row terms are requested */

/* The coarse score of row r from its two sums is c = scale * (qa (sa - biasa) + qb (sb - biasb))
 * and its bound b = bres * resid + bcn * cnorm (bound_terms): up = c + b, lo = c - b. */
static uint64_t bounds_portable(const struct scan *s, const int32_t *dots, size_t r0, size_t nr,
                                float floor, float *up, float *lo)
{
    const float *sc = s->m->scales + r0, *res = s->m->resid + r0, *cn = s->m->cnorm + r0;
    uint64_t sel = 0;
    for (size_t i = 0; i < nr; i++) {
        float c = sc[i] * (s->qa * (float)(dots[2 * i] - s->biasa) +
                           s->qb * (float)(dots[2 * i + 1] - s->biasb));
        float b = s->bres * res[i] + s->bcn * cn[i];
        up[i] = c + b;
        lo[i] = c - b;
        sel |= (uint64_t)(up[i] >= floor) << i;
    }
    return sel;
}

#ifdef SEARCH_X86
/* The same 16 rows at a time: the sums' pairs split by two permutes, the rows past nr masked
 * off. The scalar loop was about a seventh of the scan's time (1M rows, one thread). */
__attribute__((target("avx512f"))) static uint64_t bounds_avx512(const struct scan *s,
                                                                 const int32_t *dots, size_t r0,
                                                                 size_t nr, float floor, float *up,
                                                                 float *lo)
{
    const float *sc = s->m->scales + r0, *res = s->m->resid + r0, *cn = s->m->cnorm + r0;
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512 qa = _mm512_set1_ps(s->qa), qb = _mm512_set1_ps(s->qb);
    const __m512 bres = _mm512_set1_ps(s->bres), bcn = _mm512_set1_ps(s->bcn);
    const __m512 fl = _mm512_set1_ps(floor);
    const __m512i biasa = _mm512_set1_epi32(s->biasa), biasb = _mm512_set1_epi32(s->biasb);
    uint64_t sel = 0;
    for (size_t i = 0; i < nr; i += 16) {
        size_t n = nr - i < 16 ? nr - i : 16;
        __mmask16 km = (__mmask16)((1u << n) - 1);
        /* rows i..i+7 and i+8..i+15: two ints each */
        __mmask16 k0 = (__mmask16)(n >= 8 ? 0xffffu : (1u << (2 * n)) - 1);
        __mmask16 k1 = (__mmask16)(n <= 8 ? 0u : n == 16 ? 0xffffu : (1u << (2 * (n - 8))) - 1);
        __m512i d0 = _mm512_maskz_loadu_epi32(k0, dots + 2 * i);
        __m512i d1 = _mm512_maskz_loadu_epi32(k1, dots + 2 * i + 16);
        __m512 sa =
            _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_permutex2var_epi32(d0, even, d1), biasa));
        __m512 sb =
            _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_permutex2var_epi32(d0, odd, d1), biasb));
        __m512 c = _mm512_mul_ps(_mm512_maskz_loadu_ps(km, sc + i),
                                 _mm512_add_ps(_mm512_mul_ps(qa, sa), _mm512_mul_ps(qb, sb)));
        __m512 b = _mm512_add_ps(_mm512_mul_ps(bres, _mm512_maskz_loadu_ps(km, res + i)),
                                 _mm512_mul_ps(bcn, _mm512_maskz_loadu_ps(km, cn + i)));
        __m512 u = _mm512_add_ps(c, b);
        _mm512_mask_storeu_ps(up + i, km, u);
        _mm512_mask_storeu_ps(lo + i, km, _mm512_sub_ps(c, b));
        sel |= (uint64_t)_mm512_mask_cmp_ps_mask(km, u, fl, _CMP_GE_OQ) << i;
    }
    return sel;
}
#endif

/* Pass 1 over rows [begin, end): coarse scores in batches; a heap of the k best lower bounds,
 * whose worst is a floor for the final k-th score, and the rows whose upper bound reaches the
 * floor so far. The floor is shared: any thread's k lower bounds are k rows scoring at least
 * that much, so a row whose upper bound is below any thread's floor is out everywhere. */
static void scan_codes(struct scan *s, struct slot *sl, size_t begin, size_t end)
{
    const struct vec_matrix *m = s->m;
    const size_t rb = s->nblocks * SEARCH_C6_BYTES;
    int32_t dots[2 * BATCH];
    float up[BATCH], lo[BATCH];
    float floor = atomic_load_explicit(&s->floor, memory_order_relaxed);
    for (size_t r0 = begin; r0 < end; r0 += BATCH) {
        size_t nr = end - r0 < BATCH ? end - r0 : BATCH;
        const unsigned char *mk = s->mask ? s->mask + r0 : NULL;
        if (!mk) {
            s->dot6(m->codes + r0 * rb, nr, s->q8, s->nblocks, dots);
        } else {
            /* runs of selected rows; the others get 0 and are skipped below */
            for (size_t i = 0; i < nr;) {
                size_t j = i;
                while (j < nr && mk[j])
                    j++;
                if (j > i)
                    s->dot6(m->codes + (r0 + i) * rb, j - i, s->q8, s->nblocks, dots + 2 * i);
                for (i = j; i < nr && !mk[i]; i++)
                    dots[2 * i] = dots[2 * i + 1] = 0;
            }
        }
        /* the per-row terms SIDE_AHEAD rows on: their three streams are read in bursts of a
         * batch between long runs of codes (1M rows, alternated with and without in one run:
         * queries 5-15% faster with this) */
        if (r0 + SIDE_AHEAD + BATCH <= m->n)
            for (size_t o = 0; o < BATCH; o += 16) {
                __builtin_prefetch(m->scales + r0 + SIDE_AHEAD + o);
                __builtin_prefetch(m->resid + r0 + SIDE_AHEAD + o);
                __builtin_prefetch(m->cnorm + r0 + SIDE_AHEAD + o);
            }
        float shared = atomic_load_explicit(&s->floor, memory_order_relaxed);
        floor = shared > floor ? shared : floor;
        float raised = floor;
        uint64_t sel = s->bounds(s, dots, r0, nr, floor, up, lo);
        while (sel) {
            size_t i = (size_t)__builtin_ctzll(sel);
            sel &= sel - 1;
            /* the floor may have risen since the batch was selected */
            if (up[i] < floor || (mk && !mk[i]))
                continue;
            if (!cand_push(sl, r0 + i, up[i])) {
                sl->failed = true;
                return;
            }
            /* the row stands in for the photo id: this heap only yields its k-th score (rows
             * ascend with ids, so even ties order the same), and the candidates are scattered:
             * reading their ids here was a cache miss each, ~5% of the scan (perf) */
            heap_push(sl->heap, &sl->n, s->k,
                      (struct search_hit){ (int64_t)(r0 + i), r0 + i, lo[i] });
            if (sl->n == s->k && sl->heap[0].score > floor)
                floor = sl->heap[0].score;
        }
        if (floor > raised)
            floor_raise(s, floor);
    }
}

static void scan_fp16(struct scan *s, struct slot *sl, size_t begin, size_t end)
{
    const int d = s->m->dim;
    for (size_t r = begin; r < end; r++) {
        if (s->mask && !s->mask[r])
            continue;
        float sc = s->dot(s->m->data + r * (size_t)d, s->q, d);
        if (sc < s->min_score)
            continue;
        heap_push(sl->heap, &sl->n, s->k, (struct search_hit){ s->m->ids[r], r, sc });
    }
}

/* Each thread takes chunks off s->next until none are left, so a thread that gets less of the
 * CPU (a busy machine) does less of the work instead of holding the others up. */
static void scan_slots(void *arg, size_t pb, size_t pe, int worker)
{
    (void)worker;
    struct scan *s = arg;
    for (size_t p = pb; p < pe; p++) {
        struct slot *sl = &s->slots[p];
        for (;;) {
            size_t c = atomic_fetch_add_explicit(&s->next, 1, memory_order_relaxed);
            if (c >= s->nchunks || sl->failed)
                break;
            size_t b = c * s->chunk, e = b + s->chunk < s->m->n ? b + s->chunk : s->m->n;
            if (s->m->codes)
                scan_codes(s, sl, b, e);
            else
                scan_fp16(s, sl, b, e);
        }
    }
}

static int higher_upper_first(const void *a, const void *b)
{
    float x = ((const struct cand *)a)->upper, y = ((const struct cand *)b)->upper;
    return (x < y) - (x > y);
}

/* Pass 2: each slot's candidates whose upper bound reaches tau, scored in fp16, into the
 * slot's heap (tau travels in min_score's place: the caller sets s->min_score = tau). Highest
 * upper bound first, so that the slot's k-th exact score soon rises above the bounds of the
 * rest: a row whose upper bound is below it cannot make the top k (k rows beat it), and
 * neither can any after it. Most candidates are never read (1M rows, k = 20, two slots:
 * gaussian data ~3500 candidates above tau, ~600 read; clustered ~800, ~400). The rows are
 * scattered over the matrix: each is requested a few candidates ahead. */
static void rescore_slots(void *arg, size_t pb, size_t pe, int worker)
{
    (void)worker;
    struct scan *s = arg;
    const int d = s->m->dim;
    const size_t row_bytes = (size_t)d * sizeof(*s->m->data);
    enum { AHEAD = 4 };
    for (size_t p = pb; p < pe; p++) {
        struct slot *sl = &s->slots[p];
        size_t nc = 0;
        for (size_t i = 0; i < sl->ncands; i++)
            if (sl->cands[i].upper >= s->min_score)
                sl->cands[nc++] = sl->cands[i];
        sl->ncands = nc;
        sl->n = 0;
        if (nc > 1) /* cands is NULL when a slot kept none */
            qsort(sl->cands, nc, sizeof(*sl->cands), higher_upper_first);
        for (size_t i = 0; i < nc; i++) {
            if (sl->n == s->k && sl->cands[i].upper < sl->heap[0].score)
                break;
            if (i + AHEAD < nc) {
                const char *next =
                    (const char *)(s->m->data + sl->cands[i + AHEAD].row * (size_t)d);
                for (size_t o = 0; o < row_bytes; o += 64)
                    __builtin_prefetch(next + o);
            }
            size_t row = sl->cands[i].row;
            float sc = s->dot(s->m->data + row * (size_t)d, s->q, d);
            if (sc < s->min_score)
                continue;
            heap_push(sl->heap, &sl->n, s->k, (struct search_hit){ s->m->ids[row], row, sc });
        }
    }
}

/* Moves the slots' heaps to the front of heaps (the slots' heaps are consecutive blocks of k
 * in it), best first; returns how many. */
static size_t merge_slots(struct scan *s, size_t nslots, struct search_hit *heaps)
{
    size_t total = 0;
    for (size_t p = 0; p < nslots; p++) {
        memmove(heaps + total, s->slots[p].heap, s->slots[p].n * sizeof(*heaps));
        total += s->slots[p].n;
    }
    qsort(heaps, total, sizeof(*heaps), better_first);
    return total;
}

static void run_slots(struct sb_pool *pool, size_t nslots, sb_range_fn fn, struct scan *s)
{
    if (nslots == 1 || !pool)
        fn(s, 0, nslots, 0);
    else
        sb_pool_for(pool, nslots, 1, fn, s);
}

int search_topk(const struct vec_matrix *m, const float *q, const unsigned char *mask,
                float min_score, size_t k, struct sb_pool *pool, struct search_hit *out,
                size_t *nout, struct sb_err *err)
{
    *nout = 0;
    if (k == 0 || m->n == 0)
        return SB_OK;
    if (k > m->n)
        k = m->n;
    /* chunks of at least 4096 rows, about 8 per thread, taken by one slot per thread */
    size_t nslots = pool ? (size_t)sb_pool_size(pool) + 1 : 1;
    size_t chunk = (m->n + 8 * nslots - 1) / (8 * nslots);
    chunk = chunk < 4096 ? 4096 : (chunk + BATCH - 1) / BATCH * BATCH;
    size_t nchunks = (m->n + chunk - 1) / chunk;
    if (nslots > nchunks)
        nslots = nchunks;
    struct scan s = { .m = m,
                      .q = q,
                      .mask = mask,
                      .min_score = min_score,
                      .k = k,
                      .dot = pick_dot(),
                      .nblocks = (size_t)(m->dim + SEARCH_C6_DIMS - 1) / SEARCH_C6_DIMS,
                      .chunk = chunk,
                      .nchunks = nchunks };
    atomic_init(&s.next, 0);
    atomic_init(&s.floor, min_score);
    double qn = 0.0;
    for (int j = 0; j < m->dim; j++)
        qn += (double)q[j] * (double)q[j];
    s.qnorm = nextafterf((float)sqrt(qn), INFINITY);
    struct search_hit *heaps = malloc(nslots * k * sizeof(*heaps));
    s.slots = calloc(nslots, sizeof(*s.slots));
    int8_t *q8 = NULL;
    int rc = SB_OK;
    if (m->codes)
        q8 = calloc(2 * s.nblocks * SEARCH_C6_DIMS, 1);
    if (!heaps || !s.slots || (m->codes && !q8)) {
        rc = sb_fail(err, SB_ENOMEM, "search: out of memory");
        goto out;
    }
    for (size_t p = 0; p < nslots; p++)
        s.slots[p].heap = heaps + p * k;
    if (q8) {
        int8_t *qbv = q8 + s.nblocks * SEARCH_C6_DIMS;
        float *rest = malloc((size_t)m->dim * sizeof(*rest));
        if (!rest) {
            rc = sb_fail(err, SB_ENOMEM, "search: out of memory");
            goto out;
        }
        memcpy(rest, q, (size_t)m->dim * sizeof(*rest));
        s.qa = quantize_part(rest, m->dim, q8, &s.biasa);
        s.qb = quantize_part(rest, m->dim, qbv, &s.biasb);
        /* what is left, in double: the q' of the bound is qa * a + qb * b exactly */
        double e = 0.0;
        for (int j = 0; j < m->dim; j++) {
            double d = (double)q[j] - (double)s.qa * (double)q8[j] - (double)s.qb * (double)qbv[j];
            e += d * d;
        }
        free(rest);
        s.qerr = nextafterf((float)sqrt(e), INFINITY);
        s.q8 = q8;
        s.dot6 = pick_dot6();
        s.bounds = bounds_portable;
#ifdef SEARCH_X86
        /* with the AVX-512 kernel (the one tests force with SHOEBOX_SEARCH_KERNEL=avx512vnni;
         * the others take the portable bounds, so that both are tested) */
        if (s.dot6 == dot6_vnni)
            s.bounds = bounds_avx512;
#endif
        bound_terms(&s);
    }
    run_slots(pool, nslots, scan_slots, &s);
    for (size_t p = 0; p < nslots; p++)
        if (s.slots[p].failed)
            rc = SB_ENOMEM;
    if (rc) {
        rc = sb_fail(err, SB_ENOMEM, "search: out of memory");
        goto out;
    }
    size_t total = merge_slots(&s, nslots, heaps);
    if (m->codes) {
        /* tau: the k-th best lower bound; fewer than k eligible rows: every candidate */
        float tau = total >= k ? heaps[k - 1].score : -INFINITY;
        s.min_score = min_score > tau ? min_score : tau;
        run_slots(pool, nslots, rescore_slots, &s);
        s.min_score = min_score;
        total = merge_slots(&s, nslots, heaps);
    }
    if (total > k)
        total = k;
    memcpy(out, heaps, total * sizeof(*out));
    *nout = total;
out:
    for (size_t p = 0; s.slots && p < nslots; p++)
        free(s.slots[p].cands);
    free(s.slots);
    free(heaps);
    free(q8);
    return rc;
}
