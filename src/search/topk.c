/* topk.c - exact top-k over an fp16 matrix: a multi-threaded scan with a bounded min-heap per
 * chunk, merged at the end. The dot product kernel uses AVX2 + F16C when the CPU has them
 * (chosen once per call), else a portable loop. */
#include "shoebox/search.h"

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

/* The int8 pass works in integers: the query is quantised to int16 once (q ~ qscale * q16) and
 * each row's int8 codes are multiplied with it by vpmaddwd, 16 products per instruction. With
 * unit vectors a lane sums at most 64 products of 127 * 32767, far inside int32. */
typedef int32_t (*dot8_fn)(const int8_t *a, const int16_t *q, int d);

static int32_t dot8_portable(const int8_t *a, const int16_t *q, int d)
{
    int32_t s = 0;
    for (int i = 0; i < d; i++)
        s += (int32_t)a[i] * q[i];
    return s;
}

#ifdef SEARCH_X86
__attribute__((target("avx2"))) static int32_t dot8_avx2(const int8_t *a, const int16_t *q, int d)
{
    __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
    int i = 0;
    for (; i + 32 <= d; i += 32) {
        __m256i a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(a + i)));
        __m256i a1 =
            _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)(a + i + 16)));
        acc0 = _mm256_add_epi32(
            acc0,
            _mm256_madd_epi16(a0, _mm256_loadu_si256((const __m256i *)(const void *)(q + i))));
        acc1 = _mm256_add_epi32(
            acc1,
            _mm256_madd_epi16(a1, _mm256_loadu_si256((const __m256i *)(const void *)(q + i + 16))));
    }
    __m256i acc = _mm256_add_epi32(acc0, acc1);
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    int32_t r = _mm_cvtsi128_si32(s);
    for (; i < d; i++)
        r += (int32_t)a[i] * q[i];
    return r;
}
#endif

static dot8_fn pick_dot8(void)
{
#ifdef SEARCH_X86
    if (__builtin_cpu_supports("avx2"))
        return dot8_avx2;
#endif
    return dot8_portable;
}

void search_quantize(const struct vec_matrix *m, int8_t *codes, float *scales, float *resid)
{
    const int d = m->dim;
    for (size_t r = 0; r < m->n; r++) {
        const uint16_t *row = m->data + r * (size_t)d;
        float mx = 0.0f;
        for (int j = 0; j < d; j++) {
            float v = search_f16_to_f32(row[j]);
            if (v < 0)
                v = -v;
            if (v > mx)
                mx = v;
        }
        float scale = mx > 0 ? mx / 127.0f : 1.0f;
        double e = 0.0;
        int8_t *c = codes + r * (size_t)d;
        for (int j = 0; j < d; j++) {
            float v = search_f16_to_f32(row[j]);
            float qv = v / scale;
            int iv = (int)(qv < 0 ? qv - 0.5f : qv + 0.5f);
            if (iv > 127)
                iv = 127;
            if (iv < -127)
                iv = -127;
            c[j] = (int8_t)iv;
            double diff = (double)v - (double)scale * iv;
            e += diff * diff;
        }
        scales[r] = scale;
        resid[r] = (float)sqrt(e);
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

struct scan {
    const struct vec_matrix *m;
    const float *q;
    const unsigned char *mask;
    float min_score;
    size_t k;
    dot_fn dot;
    dot8_fn dot8;
    float qnorm;              /* ||q||, for the int8 bound */
    const int16_t *q16;       /* q ~ qscale * q16 */
    float qscale, qerr;       /* qerr = ||q - qscale * q16|| */
    float *coarse;            /* pass 1 scores (n), int8 path only */
    struct search_hit *heaps; /* nparts x k */
    size_t *counts;
    size_t chunk;
};

/* Slack for float rounding in the two scores compared through the bound: far above what 512
 * or 1024 products in float can accumulate on unit vectors, far below any score gap. */
#define BOUND_SLACK 1e-4f

/* |q.v - coarse| <= |q.(v - v')| + |(q - q').v'| <= ||q|| resid + qerr ||v'||, where
 * v' = scale * codes and ||v'|| <= ||v|| + resid; rows are unit vectors up to fp16 rounding. */
static float bound(const struct scan *s, size_t r)
{
    float res = s->m->resid[r];
    return s->qnorm * res + s->qerr * (1.01f + res) + BOUND_SLACK;
}

static void scan_range(void *arg, size_t begin, size_t end, int worker)
{
    (void)worker;
    struct scan *s = arg;
    size_t part = begin / s->chunk;
    struct search_hit *h = s->heaps + part * s->k;
    size_t n = 0;
    const int d = s->m->dim;
    if (s->m->codes) {
        /* pass 1: coarse scores, and a heap of the k best lower bounds */
        for (size_t r = begin; r < end; r++) {
            if (s->mask && !s->mask[r]) {
                s->coarse[r] = -INFINITY;
                continue;
            }
            float sc = s->m->scales[r] * s->qscale *
                       (float)s->dot8(s->m->codes + r * (size_t)d, s->q16, d);
            s->coarse[r] = sc;
            float lower = sc - bound(s, r);
            heap_push(h, &n, s->k, (struct search_hit){ s->m->ids[r], r, lower });
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
    struct scan *s = arg;
    for (size_t p = pb; p < pe; p++) {
        size_t b = p * s->chunk, e = b + s->chunk < s->m->n ? b + s->chunk : s->m->n;
        scan_range(s, b, e, worker);
    }
}

/* Pass 2 of the int8 path: every row whose upper bound reaches tau, scored exactly. */
static void rescore(struct scan *s, float tau, struct search_hit *h, size_t *n)
{
    const int d = s->m->dim;
    *n = 0;
    for (size_t r = 0; r < s->m->n; r++) {
        float c = s->coarse[r];
        if (c == -INFINITY || c + bound(s, r) < tau)
            continue;
        float sc = s->dot(s->m->data + r * (size_t)d, s->q, d);
        if (sc < s->min_score)
            continue;
        heap_push(h, n, s->k, (struct search_hit){ s->m->ids[r], r, sc });
    }
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
                      .dot8 = pick_dot8(),
                      .chunk = chunk };
    double qn = 0.0;
    for (int j = 0; j < m->dim; j++)
        qn += (double)q[j] * (double)q[j];
    s.qnorm = (float)sqrt(qn);
    s.heaps = malloc(parts * k * sizeof(*s.heaps));
    s.counts = calloc(parts, sizeof(*s.counts));
    int16_t *q16 = NULL;
    if (m->codes) {
        s.coarse = malloc(m->n * sizeof(float));
        q16 = malloc((size_t)m->dim * sizeof(int16_t));
    }
    if (!s.heaps || !s.counts || (m->codes && (!s.coarse || !q16))) {
        free(s.heaps);
        free(s.counts);
        free(s.coarse);
        free(q16);
        return sb_fail(err, SB_ENOMEM, "search: out of memory");
    }
    if (q16) {
        float mx = 0.0f;
        for (int j = 0; j < m->dim; j++)
            mx = fabsf(q[j]) > mx ? fabsf(q[j]) : mx;
        s.qscale = mx > 0 ? mx / 32767.0f : 1.0f;
        double e = 0.0;
        for (int j = 0; j < m->dim; j++) {
            float v = q[j] / s.qscale;
            long iv = lrintf(v);
            iv = iv > 32767 ? 32767 : iv < -32767 ? -32767 : iv;
            q16[j] = (int16_t)iv;
            double diff = (double)q[j] - (double)s.qscale * (double)iv;
            e += diff * diff;
        }
        s.qerr = (float)sqrt(e);
        s.q16 = q16;
    }
    if (parts == 1 || !pool)
        scan_parts(&s, 0, parts, 0);
    else
        sb_pool_for(pool, parts, 1, scan_parts, &s);
    /* merge the parts' heaps */
    size_t total = 0;
    for (size_t p = 0; p < parts; p++) {
        memmove(s.heaps + total, s.heaps + p * k, s.counts[p] * sizeof(*s.heaps));
        total += s.counts[p];
    }
    qsort(s.heaps, total, sizeof(*s.heaps), better_first);
    if (m->codes) {
        /* tau: the k-th best lower bound; fewer than k eligible rows: everything is a candidate */
        float tau = total >= k ? s.heaps[k - 1].score : -INFINITY;
        if (min_score > tau)
            tau = min_score;
        size_t n = 0;
        rescore(&s, tau, s.heaps, &n);
        qsort(s.heaps, n, sizeof(*s.heaps), better_first);
        total = n;
    }
    if (total > k)
        total = k;
    memcpy(out, s.heaps, total * sizeof(*out));
    *nout = total;
    free(s.heaps);
    free(s.counts);
    free(s.coarse);
    free(q16);
    return SB_OK;
}
