/* topk.c - exact top-k over an fp16 matrix: a multi-threaded scan with a bounded min-heap per
 * chunk, merged at the end. The dot product kernel uses AVX2 + F16C when the CPU has them
 * (chosen once per call), else a portable loop. */
#include "shoebox/search.h"

#include "internal.h"
#include "shoebox/err.h"
#include "shoebox/pool.h"

#include <math.h>
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

/* The query is quantised to int8 once (q ~ qscale * q8) and multiplied with the unsigned codes
 * u = c + 32 (u8 x s8 products, what vpdpbusd and vpmaddubsw take); the bias is removed with
 * sum(q8) afterwards. A row sums at most 63 * 127 per dimension, far inside int32. */

int32_t search_dot6_portable(const uint8_t *c, const int8_t *q, size_t nb);

int32_t search_dot6_portable(const uint8_t *c, const int8_t *q, size_t nb)
{
    int32_t s = 0;
    for (size_t b = 0; b < nb; b++, c += SEARCH_C6_BYTES, q += SEARCH_C6_DIMS) {
        for (int j = 0; j < SEARCH_C6_DIMS; j++) {
            int hi = j < 32 ? c[j] & 15 : c[j - 32] >> 4;
            int lo = (c[32 + (j & 15)] >> (2 * (j >> 4))) & 3;
            s += (int32_t)(hi << 2 | lo) * q[j];
        }
    }
    return s;
}

#ifdef SEARCH_X86
/* 64 codes per block in two halves of 32: nibbles shifted up by 2, or'd with their bit pairs
 * (each 128-bit lane of the broadcast pairs shifted by its own 2t). vpmaddubsw sums two
 * products of at most 63 * 127, and adding the two halves stays below 32767. */
__attribute__((target("avx2"))) static int32_t dot6_avx2(const uint8_t *c, const int8_t *q,
                                                         size_t nb)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x03);
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i sh0 = _mm256_set_epi64x(2, 2, 0, 0), sh1 = _mm256_set_epi64x(6, 6, 4, 4);
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    for (size_t b = 0; b < nb; b++, c += SEARCH_C6_BYTES, q += SEARCH_C6_DIMS) {
        __m256i nib = _mm256_loadu_si256((const __m256i *)(const void *)c);
        __m256i t =
            _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(c + 32)));
        __m256i lo = _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(nib, m4), 2),
                                     _mm256_and_si256(_mm256_srlv_epi64(t, sh0), m2));
        __m256i hi =
            _mm256_or_si256(_mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(nib, 4), m4), 2),
                            _mm256_and_si256(_mm256_srlv_epi64(t, sh1), m2));
        __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(const void *)q));
        __m256i p1 =
            _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(const void *)(q + 32)));
        __m256i p = _mm256_madd_epi16(_mm256_add_epi16(p0, p1), ones);
        if (b & 1)
            acc1 = _mm256_add_epi32(acc1, p);
        else
            acc0 = _mm256_add_epi32(acc0, p);
    }
    __m256i acc = _mm256_add_epi32(acc0, acc1);
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* The same with all 64 codes of a block in one zmm register and one vpdpbusd. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static int32_t
dot6_vnni(const uint8_t *c, const int8_t *q, size_t nb)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f), m2 = _mm512_set1_epi8(0x03);
    const __m512i sh = _mm512_set_epi64(6, 6, 4, 4, 2, 2, 0, 0);
    __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
    for (size_t b = 0; b < nb; b++, c += SEARCH_C6_BYTES, q += SEARCH_C6_DIMS) {
        __m256i nib = _mm256_loadu_si256((const __m256i *)(const void *)c);
        __m512i n = _mm512_inserti64x4(_mm512_castsi256_si512(nib), _mm256_srli_epi16(nib, 4), 1);
        __m512i t =
            _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(const void *)(c + 32)));
        __m512i u = _mm512_or_si512(_mm512_slli_epi16(_mm512_and_si512(n, m4), 2),
                                    _mm512_and_si512(_mm512_srlv_epi64(t, sh), m2));
        __m512i qv = _mm512_loadu_si512((const void *)q);
        if (b & 1)
            acc1 = _mm512_dpbusd_epi32(acc1, u, qv);
        else
            acc0 = _mm512_dpbusd_epi32(acc0, u, qv);
    }
    return _mm512_reduce_add_epi32(_mm512_add_epi32(acc0, acc1));
}

/* AVX512-VNNI is CPUID leaf 7 ECX bit 11 (older compilers' __builtin_cpu_supports lack it). */
static bool cpu_has_vnni512(void)
{
    unsigned a, b, c, d;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 11));
}
#endif

size_t search_dot6_kernels(struct search_dot6_kernel *out, size_t cap)
{
    size_t n = 0;
    if (n < cap)
        out[n++] = (struct search_dot6_kernel){ "portable", search_dot6_portable };
#ifdef SEARCH_X86
    if (n < cap && __builtin_cpu_supports("avx2"))
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
    for (size_t b = 0; b < nb; b++, out += SEARCH_C6_BYTES) {
        for (int j = 0; j < SEARCH_C6_DIMS; j++) {
            size_t i = b * SEARCH_C6_DIMS + (size_t)j;
            unsigned u = (unsigned)((i < (size_t)dim ? c[i] : 0) + SEARCH_C6_BIAS);
            if (j < 32)
                out[j] |= (uint8_t)(u >> 2);
            else
                out[j - 32] |= (uint8_t)((u >> 2) << 4);
            out[32 + (j & 15)] |= (uint8_t)((u & 3) << (2 * (j >> 4)));
        }
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
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c())
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

struct scan {
    const struct vec_matrix *m;
    const float *q;
    const unsigned char *mask;
    float min_score;
    size_t k;
    dot_fn dot;
    search_dot6_fn dot6;
    float qnorm;              /* ||q||, for the bound */
    const int8_t *q8;         /* q ~ qscale * q8, padded with zeros to whole blocks */
    int32_t q8sum;            /* sum(q8): removes the codes' bias */
    size_t nblocks;           /* code blocks per row */
    float qscale, qerr;       /* qerr = ||q - qscale * q8|| */
    struct search_hit *heaps; /* nparts x k */
    size_t *counts;
    struct cand **cands; /* per part, pass 1 only */
    size_t *ncands, *capcands;
    unsigned char *failed; /* per part: ran out of memory */
    size_t chunk;
};

/* |q.v - coarse| <= |q.(v - v')| + |(q - q').v'| <= ||q|| resid + qerr ||v'||, where
 * v' = scale * c (||v'|| = cnorm). The slack covers float rounding in the fp16 kernel's sum
 * and in the coarse score's products: relative 1e-4 of ||q|| ||v||, far above what 1024
 * products in float accumulate and far below any score gap that matters. */
static float bound(const struct scan *s, size_t r)
{
    float res = s->m->resid[r], cn = s->m->cnorm[r];
    return s->qnorm * res + s->qerr * cn + 1e-4f * s->qnorm * (cn + res);
}

static bool cand_push(struct scan *s, size_t part, size_t row, float upper)
{
    if (s->ncands[part] == s->capcands[part]) {
        size_t cap = s->capcands[part] ? 2 * s->capcands[part] : 256;
        struct cand *c = realloc(s->cands[part], cap * sizeof(*c));
        if (!c)
            return false;
        s->cands[part] = c;
        s->capcands[part] = cap;
    }
    s->cands[part][s->ncands[part]++] = (struct cand){ row, upper };
    return true;
}

static void scan_range(struct scan *s, size_t part, size_t begin, size_t end)
{
    struct search_hit *h = s->heaps + part * s->k;
    size_t n = 0;
    const int d = s->m->dim;
    if (s->m->codes) {
        /* pass 1: coarse scores; a heap of the k best lower bounds, whose worst is a floor
         * for the final k-th score, and the rows whose upper bound reaches the floor so far */
        const size_t rb = s->nblocks * SEARCH_C6_BYTES;
        float floor = s->min_score;
        for (size_t r = begin; r < end; r++) {
            if (s->mask && !s->mask[r])
                continue;
            int32_t dot =
                s->dot6(s->m->codes + r * rb, s->q8, s->nblocks) - SEARCH_C6_BIAS * s->q8sum;
            float sc = s->m->scales[r] * s->qscale * (float)dot;
            float b = bound(s, r);
            if (sc + b < floor)
                continue;
            if (!cand_push(s, part, r, sc + b)) {
                s->failed[part] = 1;
                break;
            }
            heap_push(h, &n, s->k, (struct search_hit){ s->m->ids[r], r, sc - b });
            if (n == s->k && h[0].score > floor)
                floor = h[0].score;
        }
    } else {
        for (size_t r = begin; r < end; r++) {
            if (s->mask && !s->mask[r])
                continue;
            float sc = s->dot(s->m->data + r * (size_t)d, s->q, d);
            if (sc < s->min_score)
                continue;
            heap_push(h, &n, s->k, (struct search_hit){ s->m->ids[r], r, sc });
        }
    }
    s->counts[part] = n;
}

static void scan_parts(void *arg, size_t pb, size_t pe, int worker)
{
    (void)worker;
    struct scan *s = arg;
    for (size_t p = pb; p < pe; p++) {
        size_t b = p * s->chunk, e = b + s->chunk < s->m->n ? b + s->chunk : s->m->n;
        scan_range(s, p, b, e);
    }
}

/* Pass 2: each part's candidates whose upper bound reaches tau, scored in fp16, into the
 * part's heap (tau travels in min_score's place: the caller sets s->min_score = tau). */
static void rescore_parts(void *arg, size_t pb, size_t pe, int worker)
{
    (void)worker;
    struct scan *s = arg;
    const int d = s->m->dim;
    for (size_t p = pb; p < pe; p++) {
        struct search_hit *h = s->heaps + p * s->k;
        size_t n = 0;
        for (size_t i = 0; i < s->ncands[p]; i++) {
            const struct cand *c = &s->cands[p][i];
            if (c->upper < s->min_score)
                continue;
            float sc = s->dot(s->m->data + c->row * (size_t)d, s->q, d);
            if (sc < s->min_score)
                continue;
            heap_push(h, &n, s->k, (struct search_hit){ s->m->ids[c->row], c->row, sc });
        }
        s->counts[p] = n;
    }
}

/* Moves the parts' heaps to the front of s->heaps, best first; returns how many. */
static size_t merge_parts(struct scan *s, size_t parts)
{
    size_t total = 0;
    for (size_t p = 0; p < parts; p++) {
        memmove(s->heaps + total, s->heaps + p * s->k, s->counts[p] * sizeof(*s->heaps));
        total += s->counts[p];
    }
    qsort(s->heaps, total, sizeof(*s->heaps), better_first);
    return total;
}

static void run_parts(struct sb_pool *pool, size_t parts, sb_range_fn fn, struct scan *s)
{
    if (parts == 1 || !pool)
        fn(s, 0, parts, 0);
    else
        sb_pool_for(pool, parts, 1, fn, s);
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
    /* equal parts of at least 4096 rows, one heap each, spread over the pool */
    size_t parts = (size_t)sb_pool_size(pool) + 1;
    size_t chunk = (m->n + parts - 1) / parts;
    if (chunk < 4096)
        chunk = 4096 < m->n ? 4096 : m->n;
    parts = (m->n + chunk - 1) / chunk;
    struct scan s = { .m = m,
                      .q = q,
                      .mask = mask,
                      .min_score = min_score,
                      .k = k,
                      .dot = pick_dot(),
                      .dot6 = pick_dot6(),
                      .nblocks = (size_t)(m->dim + SEARCH_C6_DIMS - 1) / SEARCH_C6_DIMS,
                      .chunk = chunk };
    double qn = 0.0;
    for (int j = 0; j < m->dim; j++)
        qn += (double)q[j] * (double)q[j];
    s.qnorm = nextafterf((float)sqrt(qn), INFINITY);
    s.heaps = malloc(parts * k * sizeof(*s.heaps));
    s.counts = calloc(parts, sizeof(*s.counts));
    int8_t *q8 = NULL;
    int rc = SB_OK;
    if (m->codes) {
        q8 = calloc(s.nblocks * SEARCH_C6_DIMS, 1);
        s.cands = calloc(parts, sizeof(*s.cands));
        s.ncands = calloc(parts, sizeof(*s.ncands));
        s.capcands = calloc(parts, sizeof(*s.capcands));
        s.failed = calloc(parts, 1);
    }
    if (!s.heaps || !s.counts ||
        (m->codes && (!q8 || !s.cands || !s.ncands || !s.capcands || !s.failed))) {
        rc = sb_fail(err, SB_ENOMEM, "search: out of memory");
        goto out;
    }
    if (q8) {
        float mx = 0.0f;
        for (int j = 0; j < m->dim; j++)
            mx = fabsf(q[j]) > mx ? fabsf(q[j]) : mx;
        s.qscale = mx > 0 ? mx / 127.0f : 1.0f;
        double e = 0.0;
        int32_t sum = 0;
        for (int j = 0; j < m->dim; j++) {
            long iv = lrintf(q[j] / s.qscale);
            iv = iv > 127 ? 127 : iv < -127 ? -127 : iv;
            q8[j] = (int8_t)iv;
            sum += (int32_t)iv;
            double diff = (double)q[j] - (double)s.qscale * (double)iv;
            e += diff * diff;
        }
        s.qerr = nextafterf((float)sqrt(e), INFINITY);
        s.q8 = q8;
        s.q8sum = sum;
    }
    run_parts(pool, parts, scan_parts, &s);
    for (size_t p = 0; s.failed && p < parts; p++)
        if (s.failed[p])
            rc = SB_ENOMEM;
    if (rc) {
        rc = sb_fail(err, SB_ENOMEM, "search: out of memory");
        goto out;
    }
    size_t total = merge_parts(&s, parts);
    if (m->codes) {
        /* tau: the k-th best lower bound; fewer than k eligible rows: every candidate */
        float tau = total >= k ? s.heaps[k - 1].score : -INFINITY;
        s.min_score = min_score > tau ? min_score : tau;
        run_parts(pool, parts, rescore_parts, &s);
        s.min_score = min_score;
        total = merge_parts(&s, parts);
    }
    if (total > k)
        total = k;
    memcpy(out, s.heaps, total * sizeof(*out));
    *nout = total;
out:
    for (size_t p = 0; s.cands && p < parts; p++)
        free(s.cands[p]);
    free(s.cands);
    free(s.ncands);
    free(s.capcands);
    free(s.failed);
    free(s.heaps);
    free(s.counts);
    free(q8);
    return rc;
}
