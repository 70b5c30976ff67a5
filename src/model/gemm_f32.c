/* gemm_f32.c - fp32 products of few rows (a text query: at most CLIP_F32_MAX_ROWS rows) on
 * weights packed once at load into column panels, for the fp32 mode (CPUs without native bf16,
 * or --precision fp32). cblas_sgemm packs the weights again on every call: a third of an fp32
 * text query's time went to that copy (sgemm_incopy), and its kernels are at their least
 * efficient on so few rows. Here the weights stream once, from the panel layout, at the rate
 * the FMA units take them.
 *
 * Layout: W (N, K) row-major, as nn.Linear stores it, becomes panels of NP columns (NP = 64
 * with AVX-512, 16 with AVX2 + FMA): panel p holds, for k = 0..K-1, the NP floats
 * W[p NP + j][k], j = 0..NP-1 (zero past N), contiguously. A register block is 6 rows x NP
 * columns (24 or 12 accumulators) over all of K: each weight is read once per 6 rows, from L2
 * after the first block of a panel. fp32 throughout; sums taken in k order per output.
 *
 * Dimension legend: M rows of in (M, K), N outputs, [n0, n1) the columns one worker computes
 * (n0 a multiple of NP). */
#include "internal.h"

#include "shoebox/util.h"

#include <string.h>

enum { ROWS = 6 };

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#define AVX2   __attribute__((target("avx2,fma")))
#define INLINE __attribute__((always_inline)) inline

/* rows x 64 sums of in rows [0, rows) (ldi apart) with panel b, into c (rows x 64, ldc 64).
 * Every other K step also prefetches into L2 the next line of [*pf, pf_end) (the next panel,
 * while this one comes from cache) and advances *pf. */
AVX512 INLINE static void block512(int rows, const float *in, size_t ldi, const float *b, int K,
                                   float *c, const char **pf, const char *pf_end)
{
    const char *p = *pf;
    __m512 acc[ROWS][4];
#pragma GCC unroll 6
    for (int r = 0; r < ROWS; r++)
        for (int v = 0; v < 4; v++)
            acc[r][v] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++, b += 64) {
        if ((k & 1) && p < pf_end) {
            _mm_prefetch(p, _MM_HINT_T1);
            p += 64;
        }
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16), b2 = _mm512_loadu_ps(b + 32),
               b3 = _mm512_loadu_ps(b + 48);
#pragma GCC unroll 6
        for (int r = 0; r < rows; r++) {
            __m512 a = _mm512_set1_ps(in[(size_t)r * ldi + (size_t)k]);
            acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(a, b2, acc[r][2]);
            acc[r][3] = _mm512_fmadd_ps(a, b3, acc[r][3]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < 4; v++)
            _mm512_storeu_ps(c + r * 64 + v * 16, acc[r][v]);
    *pf = p;
}

AVX512 static void sums512(int rows, const float *in, size_t ldi, const float *b, int K, float *c,
                           const char **pf, const char *pf_end)
{
    switch (rows) { /* each a copy with its row count known: the accumulators stay in registers */
    case 1:
        block512(1, in, ldi, b, K, c, pf, pf_end);
        break;
    case 2:
        block512(2, in, ldi, b, K, c, pf, pf_end);
        break;
    case 3:
        block512(3, in, ldi, b, K, c, pf, pf_end);
        break;
    case 4:
        block512(4, in, ldi, b, K, c, pf, pf_end);
        break;
    case 5:
        block512(5, in, ldi, b, K, c, pf, pf_end);
        break;
    default:
        block512(6, in, ldi, b, K, c, pf, pf_end);
        break;
    }
}

/* rows x 16 sums (ldc 16), as block512 with two 8-float registers per row */
AVX2 INLINE static void block256(int rows, const float *in, size_t ldi, const float *b, int K,
                                 float *c, const char **pf, const char *pf_end)
{
    const char *p = *pf;
    __m256 acc[ROWS][2];
#pragma GCC unroll 6
    for (int r = 0; r < ROWS; r++) {
        acc[r][0] = _mm256_setzero_ps();
        acc[r][1] = _mm256_setzero_ps();
    }
    for (int k = 0; k < K; k++, b += 16) {
        if ((k & 3) == 3 && p < pf_end) { /* a panel is a quarter of AVX-512's */
            _mm_prefetch(p, _MM_HINT_T1);
            p += 64;
        }
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (int r = 0; r < rows; r++) {
            __m256 a = _mm256_broadcast_ss(in + (size_t)r * ldi + (size_t)k);
            acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < rows; r++) {
        _mm256_storeu_ps(c + r * 16, acc[r][0]);
        _mm256_storeu_ps(c + r * 16 + 8, acc[r][1]);
    }
    *pf = p;
}

AVX2 static void sums256(int rows, const float *in, size_t ldi, const float *b, int K, float *c,
                         const char **pf, const char *pf_end)
{
    switch (rows) {
    case 1:
        block256(1, in, ldi, b, K, c, pf, pf_end);
        break;
    case 2:
        block256(2, in, ldi, b, K, c, pf, pf_end);
        break;
    case 3:
        block256(3, in, ldi, b, K, c, pf, pf_end);
        break;
    case 4:
        block256(4, in, ldi, b, K, c, pf, pf_end);
        break;
    case 5:
        block256(5, in, ldi, b, K, c, pf, pf_end);
        break;
    default:
        block256(6, in, ldi, b, K, c, pf, pf_end);
        break;
    }
}

int clip_f32_panel(void)
{
    if (clip_avx512())
        return 64;
    return clip_avx2() ? 16 : 0;
}
#else
int clip_f32_panel(void)
{
    return 0;
}
#endif

size_t clip_f32_packed_size(int K, int N, int np)
{
    return np > 0 ? ((size_t)N + (size_t)np - 1) / (size_t)np * (size_t)np * (size_t)K : 0;
}

void clip_f32_pack(float *dst, const float *w, size_t ld, int K, int N, int np)
{
    /* 16 K steps of a panel at a time: 64 contiguous bytes read from each of its W rows, 16
     * rows of the panel written whole */
    for (int c0 = 0; c0 < N; c0 += np) {
        float *panel = dst + (size_t)(c0 / np) * (size_t)np * (size_t)K;
        int nc = N - c0 < np ? N - c0 : np;
        for (int k0 = 0; k0 < K; k0 += 16) {
            int kn = K - k0 < 16 ? K - k0 : 16;
            for (int j = 0; j < np; j++) {
                const float *src = j < nc ? w + (size_t)(c0 + j) * ld + (size_t)k0 : NULL;
                for (int k = 0; k < kn; k++)
                    panel[(size_t)(k0 + k) * (size_t)np + (size_t)j] = src ? src[k] : 0.0f;
            }
        }
    }
}

/* The epilogue of one row's nc sums s into o: bias, then the activation (ACT), or added to
 * what o holds (RESIDUAL). */
static void row_epilogue(float *o, const float *s, const float *bias, int nc, enum clip_epi epi,
                         enum clip_act act)
{
    if (epi == CLIP_EPI_RESIDUAL) {
        for (int j = 0; j < nc; j++)
            o[j] += s[j] + (bias ? bias[j] : 0.0f);
        return;
    }
    memcpy(o, s, (size_t)nc * sizeof(float));
    clip_k_bias_act(o, bias, (size_t)nc, epi == CLIP_EPI_ACT, act);
}

void clip_f32_gemm(float *out, size_t ldo, const float *in, size_t ldi, int M, const float *wp,
                   int np, const float *bias, int K, int N, int n0, int n1, enum clip_epi epi,
                   enum clip_act act)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (n1 > N)
        n1 = N;
    float s[ROWS * 64];
    size_t panel = (size_t)np * (size_t)K;
    for (int c0 = n0 / np * np; c0 < n1; c0 += np) {
        const float *b = wp + (size_t)(c0 / np) * panel;
        int nc = n1 - c0 < np ? n1 - c0 : np;
        /* the next panel of this range into L2 while this one is reused from cache (after the
         * first block of rows, which streams it) */
        const char *pf = (const char *)(b + panel), *pf_end = pf;
        if (c0 + np < n1)
            pf_end += panel * sizeof(float);
        for (int m0 = 0; m0 < M; m0 += ROWS) {
            int rows = M - m0 < ROWS ? M - m0 : ROWS;
            const float *a = in + (size_t)m0 * ldi;
            const char *end = m0 ? pf_end : pf;
            if (np == 64)
                sums512(rows, a, ldi, b, K, s, &pf, end);
            else
                sums256(rows, a, ldi, b, K, s, &pf, end);
            for (int r = 0; r < rows; r++)
                row_epilogue(out + (size_t)(m0 + r) * ldo + (size_t)c0, s + r * np,
                             bias ? bias + c0 : NULL, nc, epi, act);
        }
    }
#else
    (void)out, (void)ldo, (void)in, (void)ldi, (void)M, (void)wp, (void)np, (void)bias;
    (void)K, (void)N, (void)n0, (void)n1, (void)epi, (void)act;
#endif
}
