/* lm_gemv.c - matrix-vector products and row widening over f32 / f16 / bf16 weights for the
 * decoder LM (lm.c). A decode step reads every weight once per token, so it is bound by
 * memory bandwidth: the weights stay 16-bit and are widened to f32 in registers, in the inner
 * loop. The kernel is chosen per call from the CPU's features (AVX512F, else AVX2+FMA+F16C,
 * else portable C); every kernel accumulates in f32.
 *
 * Dimension legend: N output rows (W's rows), K inputs (W's columns), [n0, n1) the rows one
 * worker computes. */
#include "lm_internal.h"

#include "shoebox/util.h"

#include <cblas.h>
#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LM_X86 1
#include <immintrin.h>
#endif

/* IEEE half -> float (exact), subnormals included. */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else {
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* ------------------------------------------------------------------------------------------ */
/* Portable kernels */

static float dot_f32(const float *w, const float *x, int K)
{
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int k = 0;
    for (; k + 4 <= K; k += 4) {
        s0 += w[k] * x[k];
        s1 += w[k + 1] * x[k + 1];
        s2 += w[k + 2] * x[k + 2];
        s3 += w[k + 3] * x[k + 3];
    }
    for (; k < K; k++)
        s0 += w[k] * x[k];
    return (s0 + s1) + (s2 + s3);
}

static float dot_16(const uint16_t *w, const float *x, int K, bool bf16)
{
    float s = 0.0f;
    for (int k = 0; k < K; k++)
        s += (bf16 ? bf16_to_f32(w[k]) : f16_to_f32(w[k])) * x[k];
    return s;
}

static void gemv_portable(float *const *y, const float *x, size_t ldx, int T, const void *W,
                          enum st_dtype dt, int K, int n0, int n1)
{
    for (int n = n0; n < n1; n++)
        for (int t = 0; t < T; t++) {
            const float *xt = x + (size_t)t * ldx;
            if (dt == ST_F32)
                y[t][n] = dot_f32((const float *)W + (size_t)n * K, xt, K);
            else
                y[t][n] = dot_16((const uint16_t *)W + (size_t)n * K, xt, K, dt == ST_BF16);
        }
}

/* ------------------------------------------------------------------------------------------ */
/* x86 kernels: 16 (AVX512) or 8 (AVX2) columns per step, two accumulators, scalar tail. */

#ifdef LM_X86
__attribute__((target("avx512f"))) static float hsum512(__m512 v)
{
    return _mm512_reduce_add_ps(v);
}

#define AVX512_INLINE __attribute__((target("avx512f"), always_inline)) static inline
#define AVX2_INLINE   __attribute__((target("avx2,fma,f16c"), always_inline)) static inline

AVX512_INLINE __m512 load16_512(const void *w, enum st_dtype dt, size_t i)
{
    if (dt == ST_F32)
        return _mm512_loadu_ps((const float *)w + i);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i));
    if (dt == ST_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The scalar tail of a row: the columns past the last whole vector step. */
static float dot_tail(const void *W, enum st_dtype dt, size_t row, const float *x, int k, int K,
                      float s)
{
    for (; k < K; k++) {
        const void *p = (const char *)W + (row + (size_t)k) * st_dtype_size(dt);
        float w = dt == ST_F32   ? *(const float *)p
                  : dt == ST_F16 ? f16_to_f32(*(const uint16_t *)p)
                                 : bf16_to_f32(*(const uint16_t *)p);
        s += w * x[k];
    }
    return s;
}

/* TB <= GEMV_TB input rows xs against weight row n (at element row of W): each weight vector
 * is loaded and widened once for all of them, and every input row's sum runs through the
 * same steps in the same order as with one row (two accumulators over 32-column steps, a
 * 16-column step, the reduction, the scalar tail), so its result does not depend on how many
 * rows share the pass. Inlined with TB and dt constant at each call. */
#define GEMV_TB 4
AVX512_INLINE void dot_rows_avx512(float *const *y, const float *const *xs, const int TB,
                                   const void *W, const enum st_dtype dt, size_t row, int K, int n)
{
    __m512 a0[GEMV_TB], a1[GEMV_TB];
#pragma GCC unroll 4
    for (int i = 0; i < TB; i++)
        a0[i] = a1[i] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        __m512 w0 = load16_512(W, dt, row + k), w1 = load16_512(W, dt, row + k + 16);
#pragma GCC unroll 4
        for (int i = 0; i < TB; i++) {
            a0[i] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xs[i] + k), a0[i]);
            a1[i] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xs[i] + k + 16), a1[i]);
        }
    }
    int k16 = k;
    for (int i = 0; i < TB; i++) {
        k = k16;
        for (; k + 16 <= K; k += 16)
            a0[i] = _mm512_fmadd_ps(load16_512(W, dt, row + k), _mm512_loadu_ps(xs[i] + k), a0[i]);
        float s = hsum512(_mm512_add_ps(a0[i], a1[i]));
        y[i][n] = dot_tail(W, dt, row, xs[i], k, K, s);
    }
}

AVX512_INLINE void gemv_avx512_dt(float *const *y, const float *x, size_t ldx, int T, const void *W,
                                  const enum st_dtype dt, int K, int n0, int n1)
{
    for (int n = n0; n < n1; n++) {
        size_t row = (size_t)n * K;
        int t0 = 0;
        for (; t0 + GEMV_TB <= T; t0 += GEMV_TB) {
            const float *xs[GEMV_TB];
            for (int i = 0; i < GEMV_TB; i++)
                xs[i] = x + (size_t)(t0 + i) * ldx;
            dot_rows_avx512(y + t0, xs, GEMV_TB, W, dt, row, K, n);
        }
        const float *xs[GEMV_TB] = { x + (size_t)t0 * ldx, x + (size_t)(t0 + 1) * ldx,
                                     x + (size_t)(t0 + 2) * ldx };
        switch (T - t0) {
        case 3:
            dot_rows_avx512(y + t0, xs, 3, W, dt, row, K, n);
            break;
        case 2:
            dot_rows_avx512(y + t0, xs, 2, W, dt, row, K, n);
            break;
        case 1:
            dot_rows_avx512(y + t0, xs, 1, W, dt, row, K, n);
            break;
        default:
            break;
        }
    }
}

__attribute__((target("avx512f"))) static void gemv_avx512(float *const *y, const float *x,
                                                           size_t ldx, int T, const void *W,
                                                           enum st_dtype dt, int K, int n0, int n1)
{
    switch (dt) {
    case ST_BF16:
        gemv_avx512_dt(y, x, ldx, T, W, ST_BF16, K, n0, n1);
        break;
    case ST_F16:
        gemv_avx512_dt(y, x, ldx, T, W, ST_F16, K, n0, n1);
        break;
    default:
        gemv_avx512_dt(y, x, ldx, T, W, ST_F32, K, n0, n1);
        break;
    }
}

__attribute__((target("avx512f"))) static void widen_avx512(float *dst, const void *W,
                                                            enum st_dtype dt, size_t count)
{
    size_t i = 0;
    for (; i + 16 <= count; i += 16)
        _mm512_storeu_ps(dst + i, load16_512(W, dt, i));
    for (; i < count; i++)
        dst[i] = dt == ST_F16 ? f16_to_f32(((const uint16_t *)W)[i])
                              : bf16_to_f32(((const uint16_t *)W)[i]);
}

AVX2_INLINE __m256 load8_256(const void *w, enum st_dtype dt, size_t i)
{
    if (dt == ST_F32)
        return _mm256_loadu_ps((const float *)w + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (dt == ST_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AVX2_INLINE float hsum256(__m256 a)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* As dot_rows_avx512, 8 columns per vector. */
AVX2_INLINE void dot_rows_avx2(float *const *y, const float *const *xs, const int TB, const void *W,
                               const enum st_dtype dt, size_t row, int K, int n)
{
    __m256 a0[GEMV_TB], a1[GEMV_TB];
#pragma GCC unroll 4
    for (int i = 0; i < TB; i++)
        a0[i] = a1[i] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 16 <= K; k += 16) {
        __m256 w0 = load8_256(W, dt, row + k), w1 = load8_256(W, dt, row + k + 8);
#pragma GCC unroll 4
        for (int i = 0; i < TB; i++) {
            a0[i] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xs[i] + k), a0[i]);
            a1[i] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xs[i] + k + 8), a1[i]);
        }
    }
    int k8 = k;
    for (int i = 0; i < TB; i++) {
        k = k8;
        for (; k + 8 <= K; k += 8)
            a0[i] = _mm256_fmadd_ps(load8_256(W, dt, row + k), _mm256_loadu_ps(xs[i] + k), a0[i]);
        float s = hsum256(_mm256_add_ps(a0[i], a1[i]));
        y[i][n] = dot_tail(W, dt, row, xs[i], k, K, s);
    }
}

AVX2_INLINE void gemv_avx2_dt(float *const *y, const float *x, size_t ldx, int T, const void *W,
                              const enum st_dtype dt, int K, int n0, int n1)
{
    for (int n = n0; n < n1; n++) {
        size_t row = (size_t)n * K;
        int t0 = 0;
        for (; t0 + GEMV_TB <= T; t0 += GEMV_TB) {
            const float *xs[GEMV_TB];
            for (int i = 0; i < GEMV_TB; i++)
                xs[i] = x + (size_t)(t0 + i) * ldx;
            dot_rows_avx2(y + t0, xs, GEMV_TB, W, dt, row, K, n);
        }
        const float *xs[GEMV_TB] = { x + (size_t)t0 * ldx, x + (size_t)(t0 + 1) * ldx,
                                     x + (size_t)(t0 + 2) * ldx };
        switch (T - t0) {
        case 3:
            dot_rows_avx2(y + t0, xs, 3, W, dt, row, K, n);
            break;
        case 2:
            dot_rows_avx2(y + t0, xs, 2, W, dt, row, K, n);
            break;
        case 1:
            dot_rows_avx2(y + t0, xs, 1, W, dt, row, K, n);
            break;
        default:
            break;
        }
    }
}

__attribute__((target("avx2,fma,f16c"))) static void gemv_avx2(float *const *y, const float *x,
                                                               size_t ldx, int T, const void *W,
                                                               enum st_dtype dt, int K, int n0,
                                                               int n1)
{
    switch (dt) {
    case ST_BF16:
        gemv_avx2_dt(y, x, ldx, T, W, ST_BF16, K, n0, n1);
        break;
    case ST_F16:
        gemv_avx2_dt(y, x, ldx, T, W, ST_F16, K, n0, n1);
        break;
    default:
        gemv_avx2_dt(y, x, ldx, T, W, ST_F32, K, n0, n1);
        break;
    }
}

__attribute__((target("avx2,fma,f16c"))) static void widen_avx2(float *dst, const void *W,
                                                                enum st_dtype dt, size_t count)
{
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        _mm256_storeu_ps(dst + i, load8_256(W, dt, i));
    for (; i < count; i++)
        dst[i] = dt == ST_F16 ? f16_to_f32(((const uint16_t *)W)[i])
                              : bf16_to_f32(((const uint16_t *)W)[i]);
}

enum isa { ISA_PORTABLE, ISA_AVX2, ISA_AVX512 };

static enum isa cpu_best(void)
{
    __builtin_cpu_init();
    if (sb_isa_max() >= SB_ISA_AVX512 && __builtin_cpu_supports("avx512f"))
        return ISA_AVX512;
    if (sb_isa_max() >= SB_ISA_AVX2 && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        return ISA_AVX2; /* every AVX2 CPU has F16C */
    return ISA_PORTABLE;
}
#else
enum isa { ISA_PORTABLE };
static enum isa cpu_best(void)
{
    return ISA_PORTABLE;
}
#endif

static _Atomic int isa_cap = -1; /* lm_gemv_limit(): the best kernel allowed, -1 none */

static enum isa cpu_isa(void)
{
    enum isa best = cpu_best();
    int cap = atomic_load(&isa_cap);
    return cap >= 0 && cap < (int)best ? (enum isa)cap : best;
}

bool lm_gemv_limit(const char *name)
{
    static const char *const names[] = { "portable", "avx2+f16c", "avx512f" };
    if (!name) {
        atomic_store(&isa_cap, -1);
        return true;
    }
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0 && i <= (int)cpu_best()) {
            atomic_store(&isa_cap, i);
            return true;
        }
    return false;
}

void lm_gemv_rows_n(float *const *y, const float *x, size_t ldx, int T, const void *W,
                    enum st_dtype dt, int K, int n0, int n1)
{
    switch (cpu_isa()) {
#ifdef LM_X86
    case ISA_AVX512:
        gemv_avx512(y, x, ldx, T, W, dt, K, n0, n1);
        return;
    case ISA_AVX2:
        gemv_avx2(y, x, ldx, T, W, dt, K, n0, n1);
        return;
#endif
    case ISA_PORTABLE:
        break;
    }
    gemv_portable(y, x, ldx, T, W, dt, K, n0, n1);
}

void lm_gemv_rows(float *y, const void *W, enum st_dtype dt, const float *x, int K, int n0, int n1)
{
    lm_gemv_rows_n(&y, x, (size_t)K, 1, W, dt, K, n0, n1);
}

void lm_sgemm_rows(const struct lm_mat *W, const float *in, int T, int n0, int n1, float beta,
                   float *out, float *buf)
{
    int K = W->n_in;
    const float *w = (const float *)W->w + (size_t)n0 * K;
    if (W->dt != ST_F32) {
        lm_widen_rows(buf, W->w, W->dt, K, n0, n1);
        w = buf;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, n1 - n0, K, 1.0f, in, K, w, K, beta,
                out + n0, W->n_out);
}

void lm_widen_rows(float *dst, const void *W, enum st_dtype dt, int K, int n0, int n1)
{
    size_t count = (size_t)(n1 - n0) * (size_t)K;
    size_t at = (size_t)n0 * (size_t)K;
    if (dt == ST_F32) {
        memcpy(dst, (const float *)W + at, count * sizeof(float));
        return;
    }
    const uint16_t *src = (const uint16_t *)W + at;
    switch (cpu_isa()) {
#ifdef LM_X86
    case ISA_AVX512:
        widen_avx512(dst, src, dt, count);
        return;
    case ISA_AVX2:
        widen_avx2(dst, src, dt, count);
        return;
#endif
    case ISA_PORTABLE:
        break;
    }
    for (size_t i = 0; i < count; i++)
        dst[i] = dt == ST_F16 ? f16_to_f32(src[i]) : bf16_to_f32(src[i]);
}

const char *lm_gemv_kernel_name(void)
{
    switch (cpu_isa()) {
#ifdef LM_X86
    case ISA_AVX512:
        return "avx512f";
    case ISA_AVX2:
        return "avx2+f16c";
#endif
    case ISA_PORTABLE:
        break;
    }
    return "portable";
}
