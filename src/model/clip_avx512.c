/* clip_avx512.c - AVX-512 bodies of clip.c's small kernels: layer norm rows, f32 -> bf16 rows
 * and one attention head, all fp32 inside. clip.c calls them when clip_avx512() says the CPU
 * has AVX512F, BW and VL and keeps its portable C for the rest; results agree with it to rounding
 * (sums are taken in another order, exp is a polynomial within 2 ulp of expf).
 *
 * Dimension legend (clip.c's): L tokens of a sequence, E head size, C row width. */
#include "internal.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))

bool clip_avx512(void)
{
    static int have = -1; /* a race here writes the same value */
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512vl")
                   ? 1
                   : 0;
    }
    return have == 1;
}

/* f32 -> bf16 rounding to nearest even, NaN kept quiet: clip.c's bf16_from_f32, 16 lanes. */
AVX512 static __m256i to_bf16(__m512 v)
{
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_or_epi32(r, nan, u, _mm512_set1_epi32(0x400000));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

/* Stores 16 floats (n <= 16 of them) as f32 or bf16 at o[i]. */
AVX512 static void store16(void *o, bool bf16, size_t i, __m512 v, __mmask16 m)
{
    if (bf16)
        _mm256_mask_storeu_epi16((uint16_t *)o + i, m, to_bf16(v));
    else
        _mm512_mask_storeu_ps((float *)o + i, m, v);
}

static __mmask16 tail_mask(size_t n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

AVX512 void clip_avx512_to_bf16(uint16_t *o, const float *v, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        store16(o, true, i, _mm512_maskz_loadu_ps(m, v + i), m);
    }
}

AVX512 void clip_avx512_layernorm_row(void *out, bool bf16, const float *x, const float *w,
                                      const float *b, int C, float eps)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= C; i += 32) {
        s0 = _mm512_add_ps(s0, _mm512_loadu_ps(x + i));
        s1 = _mm512_add_ps(s1, _mm512_loadu_ps(x + i + 16));
    }
    for (; i < C; i += 16)
        s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(tail_mask((size_t)(C - i)), x + i));
    float mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / (float)C;
    __m512 vm = _mm512_set1_ps(mean);
    s0 = _mm512_setzero_ps();
    s1 = _mm512_setzero_ps();
    for (i = 0; i + 32 <= C; i += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(x + i), vm);
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16), vm);
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
    }
    for (; i < C; i += 16) {
        __mmask16 m = tail_mask((size_t)(C - i));
        __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, x + i), vm);
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    float var = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / (float)C;
    __m512 inv = _mm512_set1_ps(1.0f / sqrtf(var + eps));
    for (i = 0; i < C; i += 16) {
        __mmask16 m = tail_mask((size_t)(C - i));
        __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm), inv);
        __m512 y =
            _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, w + i), _mm512_maskz_loadu_ps(m, b + i));
        store16(out, bf16, (size_t)i, y, m);
    }
}

/* e^x for x <= 0 (softmax after the max is taken out): x = n ln2 + r, |r| <= ln2/2, e^r by its
 * degree-7 Taylor polynomial (relative error < 2e-8 before rounding), times 2^n by scalef
 * (0 below the f32 range). */
AVX512 static __m512 exp_nonpos(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* e^x for any x: clamped to [-104, 88.7] (0 below, +inf above the f32 range comes out of
 * scalef), else as exp_nonpos. */
AVX512 static __m512 exp_any(__m512 x)
{
    return exp_nonpos(_mm512_min_ps(x, _mm512_set1_ps(88.7f)));
}

AVX512 bool clip_avx512_bias_act(float *o, const float *b, size_t n, bool act, enum clip_act kind)
{
    if (act && kind == CLIP_ACT_GELU)
        return false; /* erf: the caller's C loop */
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask(n - i);
        __m512 x = _mm512_maskz_loadu_ps(m, o + i);
        if (b)
            x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(m, b + i));
        if (act && kind == CLIP_ACT_QUICK_GELU) { /* x / (1 + e^(-1.702 x)) */
            __m512 e = exp_any(_mm512_mul_ps(x, _mm512_set1_ps(-1.702f)));
            x = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        } else if (act) { /* 0.5 x (1 + tanh(y)), tanh(y) = 1 - 2 / (1 + e^(2y)) */
            __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
            __m512 y = _mm512_mul_ps(_mm512_set1_ps(0.79788456080286536f),
                                     _mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x));
            __m512 e = exp_any(_mm512_add_ps(y, y));
            __m512 t = _mm512_sub_ps(
                _mm512_set1_ps(1.0f),
                _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
            x = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x),
                              _mm512_add_ps(_mm512_set1_ps(1.0f), t));
        }
        _mm512_mask_storeu_ps(o + i, m, x);
    }
    return true;
}

size_t clip_avx512_attention_scratch(size_t L, size_t E)
{
    size_t Lp = (L + 63) / 64 * 64;
    return (E + 4) * Lp;
}

/* Scores of 4 query rows against keys [0, mb) (mb a multiple of 64): s[r] = scale * q_r . kT. */
AVX512 static void scores4(float *s, size_t Lp, const float *const q[4], const float *kT, int E,
                           int mb, float scale)
{
    __m512 vscale = _mm512_set1_ps(scale);
    for (int j0 = 0; j0 < mb; j0 += 64) {
        __m512 a[4][4];
        for (int r = 0; r < 4; r++)
            for (int u = 0; u < 4; u++)
                a[r][u] = _mm512_setzero_ps();
        const float *kt = kT + j0;
        for (int e = 0; e < E; e++, kt += Lp) {
            __m512 k0 = _mm512_loadu_ps(kt), k1 = _mm512_loadu_ps(kt + 16),
                   k2 = _mm512_loadu_ps(kt + 32), k3 = _mm512_loadu_ps(kt + 48);
            for (int r = 0; r < 4; r++) {
                __m512 qe = _mm512_set1_ps(q[r][e]);
                a[r][0] = _mm512_fmadd_ps(qe, k0, a[r][0]);
                a[r][1] = _mm512_fmadd_ps(qe, k1, a[r][1]);
                a[r][2] = _mm512_fmadd_ps(qe, k2, a[r][2]);
                a[r][3] = _mm512_fmadd_ps(qe, k3, a[r][3]);
            }
        }
        for (int r = 0; r < 4; r++)
            for (int u = 0; u < 4; u++)
                _mm512_storeu_ps(s + (size_t)r * Lp + j0 + 16 * u, _mm512_mul_ps(a[r][u], vscale));
    }
}

/* softmax of s[0, m) in place, zeros in [m, mb); returns 1 / the sum (applied later). */
AVX512 static float softmax_row(float *s, int m, int mb)
{
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < m; j += 16) {
        __mmask16 mk = tail_mask((size_t)(m - j));
        vmax = _mm512_mask_max_ps(vmax, mk, vmax, _mm512_maskz_loadu_ps(mk, s + j));
    }
    __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax)), vsum = _mm512_setzero_ps();
    for (int j = 0; j < mb; j += 16) {
        __mmask16 mk = j < m ? tail_mask((size_t)(m - j)) : 0;
        __m512 p = exp_nonpos(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s + j), mx));
        p = _mm512_maskz_mov_ps(mk, p);
        _mm512_storeu_ps(s + j, p);
        vsum = _mm512_add_ps(vsum, p);
    }
    return 1.0f / _mm512_reduce_add_ps(vsum);
}

/* One head: q, k, v rows of E floats with row stride ld (L rows each); out rows of E (f32 or
 * bf16) with stride ldo. kT (E, Lp) is K transposed, zero-padded to Lp = L rounded up to 64.
 * Query rows go 4 at a time (a tail repeats the last row, its results unused): 16 independent
 * FMA chains over kT for the scores, then softmax per row and 16 chains over V for p @ V. */
AVX512 void clip_avx512_attention_head(float *scratch, const float *q, const float *k,
                                       const float *v, size_t ld, int L, int E, float scale,
                                       bool causal, void *out, size_t ldo, bool bf16)
{
    size_t Lp = (size_t)(L + 63) / 64 * 64;
    float *kT = scratch, *s = scratch + (size_t)E * Lp; /* s: 4 rows of Lp */
    for (int e = 0; e < E; e++) {
        float *row = kT + (size_t)e * Lp;
        for (int j = 0; j < L; j++)
            row[j] = k[(size_t)j * ld + (size_t)e];
        memset(row + L, 0, (Lp - (size_t)L) * sizeof(float));
    }
    for (int i0 = 0; i0 < L; i0 += 4) {
        const float *qr[4];
        int m[4], mmax = 0;
        float inv[4];
        for (int r = 0; r < 4; r++) {
            int i = i0 + r < L ? i0 + r : L - 1;
            qr[r] = q + (size_t)i * ld;
            m[r] = causal ? i + 1 : L; /* keys this row sees */
            mmax = m[r] > mmax ? m[r] : mmax;
        }
        int mb = (mmax + 63) / 64 * 64;
        scores4(s, Lp, qr, kT, E, mb, scale);
        for (int r = 0; r < 4; r++)
            inv[r] = softmax_row(s + (size_t)r * Lp, m[r], mb);
        int nr = L - i0 < 4 ? L - i0 : 4;
        for (int e0 = 0; e0 < E; e0 += 64) {
            int ne = E - e0 < 64 ? E - e0 : 64;
            __mmask16 mk[4];
            for (int u = 0; u < 4; u++)
                mk[u] = tail_mask(ne > 16 * u ? (size_t)(ne - 16 * u) : 0);
            __m512 o[4][4];
            for (int r = 0; r < 4; r++)
                for (int u = 0; u < 4; u++)
                    o[r][u] = _mm512_setzero_ps();
            const float *vj = v + e0;
            for (int j = 0; j < mmax; j++, vj += ld) {
                __m512 v0 = _mm512_maskz_loadu_ps(mk[0], vj),
                       v1 = _mm512_maskz_loadu_ps(mk[1], vj + 16),
                       v2 = _mm512_maskz_loadu_ps(mk[2], vj + 32),
                       v3 = _mm512_maskz_loadu_ps(mk[3], vj + 48);
                for (int r = 0; r < 4; r++) {
                    __m512 p = _mm512_set1_ps(s[(size_t)r * Lp + (size_t)j]);
                    o[r][0] = _mm512_fmadd_ps(p, v0, o[r][0]);
                    o[r][1] = _mm512_fmadd_ps(p, v1, o[r][1]);
                    o[r][2] = _mm512_fmadd_ps(p, v2, o[r][2]);
                    o[r][3] = _mm512_fmadd_ps(p, v3, o[r][3]);
                }
            }
            for (int r = 0; r < nr; r++) {
                __m512 vi = _mm512_set1_ps(inv[r]);
                size_t at = (size_t)(i0 + r) * ldo + (size_t)e0;
                for (int u = 0; u < 4; u++)
                    store16(out, bf16, at + 16 * (size_t)u, _mm512_mul_ps(o[r][u], vi), mk[u]);
            }
        }
    }
}

#else
bool clip_avx512(void)
{
    return false;
}
bool clip_avx512_bias_act(float *o, const float *b, size_t n, bool act, enum clip_act kind)
{
    (void)o;
    (void)b;
    (void)n;
    (void)act;
    (void)kind;
    return false;
}
size_t clip_avx512_attention_scratch(size_t L, size_t E)
{
    (void)L;
    (void)E;
    return 0;
}
void clip_avx512_to_bf16(uint16_t *o, const float *v, size_t n)
{
    (void)o;
    (void)v;
    (void)n;
}
void clip_avx512_layernorm_row(void *out, bool bf16, const float *x, const float *w, const float *b,
                               int C, float eps)
{
    (void)out;
    (void)bf16;
    (void)x;
    (void)w;
    (void)b;
    (void)C;
    (void)eps;
}
void clip_avx512_attention_head(float *scratch, const float *q, const float *k, const float *v,
                                size_t ld, int L, int E, float scale, bool causal, void *out,
                                size_t ldo, bool bf16)
{
    (void)scratch;
    (void)q;
    (void)k;
    (void)v;
    (void)ld;
    (void)L;
    (void)E;
    (void)scale;
    (void)causal;
    (void)out;
    (void)ldo;
    (void)bf16;
}
#endif
