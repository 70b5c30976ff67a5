/* clip_avx512.c - AVX-512 bodies of clip.c's small kernels: layer norm rows, f32 -> bf16 rows
 * and one attention head, all fp32 inside. clip.c calls them when clip_avx512() says the CPU
 * has AVX512F, BW and VL and keeps its portable C for the rest; results agree with it to rounding
 * (sums are taken in another order, exp is a polynomial within 2 ulp of expf).
 *
 * Dimension legend (clip.c's): L tokens of a sequence, E head size, C row width. */
#include "internal.h"

#include "shoebox/util.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AVX512     __attribute__((target("avx512f,avx512bw,avx512vl")))
#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
/* the exp and activation helpers go into their callers, also the AVX512BF16 ones */
#define INLINE __attribute__((always_inline)) inline

bool clip_avx512_bf16(void)
{
    static int have = -1; /* a race here writes the same value */
    if (have < 0) {
        unsigned a = 0, b = 0, c = 0, d = 0;
        /* CPUID.(7,1):EAX bit 5; the OS's ZMM state is part of AVX512F's check */
        bool bf16 = __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
        have = clip_avx512() && bf16 ? 1 : 0;
    }
    return have == 1;
}

bool clip_avx512(void)
{
    static int have = -1; /* a race here writes the same value */
    if (have < 0) {
        if (sb_isa_max() < SB_ISA_AVX512) { /* the bf16 and AMX kernels go with it */
            have = 0;
            return false;
        }
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
AVX512 INLINE static __m512 exp_nonpos(__m512 x)
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
AVX512 INLINE static __m512 exp_any(__m512 x)
{
    return exp_nonpos(_mm512_min_ps(x, _mm512_set1_ps(88.7f)));
}

/* quick_gelu or the tanh gelu of 16 lanes (not CLIP_ACT_GELU's erf). rough: for a bf16 result,
 * quick_gelu divides through vrcp14ps (relative error < 2^-14, far below bf16's 2^-9). */
AVX512 INLINE static __m512 act16(__m512 x, enum clip_act kind, bool rough)
{
    if (kind == CLIP_ACT_QUICK_GELU) { /* x / (1 + e^(-1.702 x)) */
        __m512 e = exp_any(_mm512_mul_ps(x, _mm512_set1_ps(-1.702f)));
        __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), e);
        return rough ? _mm512_mul_ps(x, _mm512_rcp14_ps(d)) : _mm512_div_ps(x, d);
    }
    /* 0.5 x (1 + tanh(y)), tanh(y) = 1 - 2 / (1 + e^(2y)) */
    __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    __m512 y = _mm512_mul_ps(_mm512_set1_ps(0.79788456080286536f),
                             _mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x));
    __m512 e = exp_any(_mm512_add_ps(y, y));
    __m512 t =
        _mm512_sub_ps(_mm512_set1_ps(1.0f),
                      _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x),
                         _mm512_add_ps(_mm512_set1_ps(1.0f), t));
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
        if (act)
            x = act16(x, kind, false);
        _mm512_mask_storeu_ps(o + i, m, x);
    }
    return true;
}

/* Row r's sums at columns [u, u + 16) (m: the columns < nc) plus the bias. */
AVX512 INLINE static __m512 sums16(const float *a, const float *bias, int u, __mmask16 m)
{
    __m512 v = _mm512_maskz_loadu_ps(m, a + u);
    return bias ? _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + u)) : v;
}

/* bf16 outputs round through vcvtne2ps2bf16 (nearest even, as to_bf16 but for denormals,
 * which it flushes): the caller is the AMX kernel, so the CPU has AVX512-BF16. */
AVX512BF16 bool clip_avx512_epilogue(const float *acc, size_t lda, int rows, int nc,
                                     const float *bias, void *out, size_t ldo, enum clip_epi epi,
                                     enum clip_act act)
{
    if (epi == CLIP_EPI_ACT && act == CLIP_ACT_GELU)
        return false;
    if (epi == CLIP_EPI_ACT || epi == CLIP_EPI_BF16) {
        bool activate = epi == CLIP_EPI_ACT;
        for (int r = 0; r < rows; r++) {
            const float *a = acc + (size_t)r * lda;
            for (int u = 0; u < nc; u += 32) {
                int n = nc - u < 32 ? nc - u : 32;
                __m512 lo = sums16(a, bias, u, tail_mask((size_t)n)),
                       hi = n > 16 ? sums16(a, bias, u + 16, tail_mask((size_t)(n - 16)))
                                   : _mm512_setzero_ps();
                if (activate) {
                    lo = act16(lo, act, true);
                    hi = act16(hi, act, true);
                }
                __mmask32 m = n >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << n) - 1u);
                _mm512_mask_storeu_epi16((uint16_t *)out + (size_t)r * ldo + (size_t)u, m,
                                         (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
            }
        }
        return true;
    }
    for (int r = 0; r < rows; r++) {
        const float *a = acc + (size_t)r * lda;
        float *o = (float *)out + (size_t)r * ldo;
        for (int u = 0; u < nc; u += 16) {
            __mmask16 m = tail_mask((size_t)(nc - u));
            __m512 v = sums16(a, bias, u, m);
            if (epi == CLIP_EPI_RESIDUAL)
                v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, o + u), v);
            _mm512_mask_storeu_ps(o + u, m, v);
        }
    }
    return true;
}

size_t clip_avx512_attention_scratch(size_t L, size_t E)
{
    size_t Lp = (L + 63) / 64 * 64;
    /* the AMX kernel's: kP, vP (E Lp / 2 each), s (16 Lp), p (16 Lp bf16 = 8 Lp) */
    return (E + 24) * Lp;
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

/* kP (E/2, Lp): K's bf16 pairs (k_j[2p], k_j[2p+1]) as 32-bit words, key j in column j; vP
 * (Lp/2, E): the pairs (v_2t[e], v_2t+1[e]); keys past L are zeros. */
AVX512 static void build_pairs(uint32_t *kP, uint32_t *vP, const uint16_t *k, const uint16_t *v,
                               size_t ld, int L, int E, size_t Lp)
{
    size_t E2 = (size_t)E / 2;
    for (size_t j = 0; j < Lp; j++) {
        const uint32_t *kj = (const uint32_t *)(k + j * ld);
        for (size_t p = 0; p < E2; p++)
            kP[p * Lp + j] = j < (size_t)L ? kj[p] : 0;
    }
    for (size_t t = 0; t < Lp / 2; t++) {
        size_t j = 2 * t;
        for (int e = 0; e < E; e += 16) {
            __m512i lo =
                j < (size_t)L
                    ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const void *)(v + j * ld + e)))
                    : _mm512_setzero_si512();
            __m512i hi = j + 1 < (size_t)L ? _mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                                 (const void *)(v + (j + 1) * ld + e)))
                                           : _mm512_setzero_si512();
            _mm512_storeu_si512(vP + t * (size_t)E + e,
                                _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
    }
}

/* The bf16 head (avx512bf16): q, k, v rows of E bf16 (E a multiple of 16) with row stride ld;
 * out rows of E bf16 with stride ldo. Products as pairs with vdpbf16ps (bf16 x bf16, f32
 * accumulation), softmax in f32, the probabilities rounded to bf16 for p @ V as PyTorch's bf16
 * attention does. kP (E/2, Lp) holds K's bf16 pairs (k_j[2p], k_j[2p+1]) as 32-bit words, key j
 * in column j; vP (Lp/2, E) the pairs (v_2t[e], v_2t+1[e]); keys past L are zeros. */
AVX512BF16 void clip_avx512_attention_head_bf16(float *scratch, const uint16_t *q,
                                                const uint16_t *k, const uint16_t *v, size_t ld,
                                                int L, int E, float scale, bool causal,
                                                uint16_t *out, size_t ldo)
{
    size_t Lp = (size_t)(L + 63) / 64 * 64, E2 = (size_t)E / 2;
    uint32_t *kP = (uint32_t *)scratch, *vP = kP + E2 * Lp;
    float *s = (float *)(vP + E2 * Lp);      /* 4 rows of Lp */
    uint32_t *pb = (uint32_t *)(s + 4 * Lp); /* 4 rows of Lp / 2 bf16 pairs */
    build_pairs(kP, vP, k, v, ld, L, E, Lp);
    __m512 vscale = _mm512_set1_ps(scale);
    for (int i0 = 0; i0 < L; i0 += 4) {
        const uint32_t *qr[4];
        int m[4], mmax = 0;
        float inv[4];
        for (int r = 0; r < 4; r++) {
            int i = i0 + r < L ? i0 + r : L - 1;
            qr[r] = (const uint32_t *)(q + (size_t)i * ld);
            m[r] = causal ? i + 1 : L;
            mmax = m[r] > mmax ? m[r] : mmax;
        }
        int mb = (mmax + 63) / 64 * 64;
        for (int j0 = 0; j0 < mb; j0 += 64) {
            __m512 a[4][4];
            for (int r = 0; r < 4; r++)
                for (int u = 0; u < 4; u++)
                    a[r][u] = _mm512_setzero_ps();
            const uint32_t *kt = kP + j0;
            for (size_t p = 0; p < E2; p++, kt += Lp) {
                __m512bh k0 = (__m512bh)_mm512_loadu_si512(kt),
                         k1 = (__m512bh)_mm512_loadu_si512(kt + 16),
                         k2 = (__m512bh)_mm512_loadu_si512(kt + 32),
                         k3 = (__m512bh)_mm512_loadu_si512(kt + 48);
                for (int r = 0; r < 4; r++) {
                    __m512bh qp = (__m512bh)_mm512_set1_epi32((int)qr[r][p]);
                    a[r][0] = _mm512_dpbf16_ps(a[r][0], qp, k0);
                    a[r][1] = _mm512_dpbf16_ps(a[r][1], qp, k1);
                    a[r][2] = _mm512_dpbf16_ps(a[r][2], qp, k2);
                    a[r][3] = _mm512_dpbf16_ps(a[r][3], qp, k3);
                }
            }
            for (int r = 0; r < 4; r++)
                for (int u = 0; u < 4; u++)
                    _mm512_storeu_ps(s + (size_t)r * Lp + j0 + 16 * u,
                                     _mm512_mul_ps(a[r][u], vscale));
        }
        for (int r = 0; r < 4; r++) {
            float *sr = s + (size_t)r * Lp;
            inv[r] = softmax_row(sr, m[r], mb);
            uint16_t *pr = (uint16_t *)(pb + (size_t)r * Lp / 2);
            for (int j = 0; j < mb; j += 16)
                _mm256_storeu_si256((void *)(pr + j), to_bf16(_mm512_loadu_ps(sr + j)));
        }
        int nr = L - i0 < 4 ? L - i0 : 4, pairs = (mmax + 1) / 2;
        for (int e0 = 0; e0 < E; e0 += 64) {
            int ne = E - e0 < 64 ? E - e0 : 64, nu = ne / 16;
            __m512 o[4][4];
            for (int r = 0; r < 4; r++)
                for (int u = 0; u < 4; u++)
                    o[r][u] = _mm512_setzero_ps();
            for (int t = 0; t < pairs; t++) {
                const uint32_t *vt = vP + (size_t)t * (size_t)E + e0;
                __m512bh v0 = (__m512bh)_mm512_loadu_si512(vt),
                         v1 = (__m512bh)(nu > 1 ? _mm512_loadu_si512(vt + 16)
                                                : _mm512_setzero_si512()),
                         v2 = (__m512bh)(nu > 2 ? _mm512_loadu_si512(vt + 32)
                                                : _mm512_setzero_si512()),
                         v3 = (__m512bh)(nu > 3 ? _mm512_loadu_si512(vt + 48)
                                                : _mm512_setzero_si512());
                for (int r = 0; r < 4; r++) {
                    __m512bh pp =
                        (__m512bh)_mm512_set1_epi32((int)pb[(size_t)r * Lp / 2 + (size_t)t]);
                    o[r][0] = _mm512_dpbf16_ps(o[r][0], pp, v0);
                    o[r][1] = _mm512_dpbf16_ps(o[r][1], pp, v1);
                    o[r][2] = _mm512_dpbf16_ps(o[r][2], pp, v2);
                    o[r][3] = _mm512_dpbf16_ps(o[r][3], pp, v3);
                }
            }
            for (int r = 0; r < nr; r++) {
                __m512 vi = _mm512_set1_ps(inv[r]);
                size_t at = (size_t)(i0 + r) * ldo + (size_t)e0;
                for (int u = 0; u < nu; u++)
                    _mm256_storeu_si256((void *)(out + at + 16 * (size_t)u),
                                        to_bf16(_mm512_mul_ps(o[r][u], vi)));
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* AMX: the bf16 head's two products on tiles (16 x 32 bf16 by 32 x 16 -> 16 x 16 f32) */

#define AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")))

bool clip_amx(void)
{
    static int have = -1; /* a race here writes the same value */
    if (have < 0) {
        unsigned a = 0, b = 0, c = 0, d = 0;
        bool amx = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 22)) &&
                   (d & (1u << 24)); /* AMX-BF16, AMX-TILE */
        /* the OS must hand this process the tile data (Linux >= 5.16; asked once, as oneDNN
         * does; asking again is harmless) */
        have = amx && clip_avx512_bf16() &&
                       syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18) == 0
                   ? 1
                   : 0;
    }
    return have == 1;
}

struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* The same head as clip_avx512_attention_head_bf16 (same scratch layout, same rounding
 * points), E a multiple of 32, its products on AMX tiles: tiles 0-3 accumulate 16 x 16 f32 blocks,
 * 4 holds 16 rows of 32 bf16 (q or p), 5 16 pairs x 16 columns (kP or vP). Query rows go 16 at a
 * time; rows past L read the panel's spare rows (results unused: rows are independent). */
AMX void clip_amx_attention_head_bf16(float *scratch, const uint16_t *q, const uint16_t *k,
                                      const uint16_t *v, size_t ld, int L, int E, float scale,
                                      bool causal, uint16_t *out, size_t ldo)
{
    size_t Lp = (size_t)(L + 63) / 64 * 64, E2 = (size_t)E / 2;
    uint32_t *kP = (uint32_t *)scratch, *vP = kP + E2 * Lp;
    float *s = (float *)(vP + E2 * Lp); /* 16 rows of Lp (scratch: E Lp + 8 Lp >= 16 Lp + ...) */
    uint16_t *pb = (uint16_t *)(s + 16 * Lp); /* 16 rows of Lp bf16 */
    build_pairs(kP, vP, k, v, ld, L, E, Lp);
    struct tile_config cfg = { .palette = 1 };
    for (int t = 0; t < 6; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
    __m512 vscale = _mm512_set1_ps(scale);
    for (int i0 = 0; i0 < L; i0 += 16) {
        int nr = L - i0 < 16 ? L - i0 : 16;
        int mmax = causal ? i0 + nr : L, mb = (mmax + 63) / 64 * 64;
        const uint16_t *qi = q + (size_t)i0 * ld;
        for (int j0 = 0; j0 < mb; j0 += 64) { /* scores: 16 rows x 64 keys */
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int e0 = 0; e0 < E; e0 += 32) {
                _tile_loadd(4, qi + e0, (long)(ld * 2));
                const uint32_t *kt = kP + (size_t)(e0 / 2) * Lp + (size_t)j0;
                _tile_loadd(5, kt, (long)(Lp * 4));
                _tile_dpbf16ps(0, 4, 5);
                _tile_loadd(5, kt + 16, (long)(Lp * 4));
                _tile_dpbf16ps(1, 4, 5);
                _tile_loadd(5, kt + 32, (long)(Lp * 4));
                _tile_dpbf16ps(2, 4, 5);
                _tile_loadd(5, kt + 48, (long)(Lp * 4));
                _tile_dpbf16ps(3, 4, 5);
            }
            _tile_stored(0, s + j0, (long)(Lp * 4));
            _tile_stored(1, s + j0 + 16, (long)(Lp * 4));
            _tile_stored(2, s + j0 + 32, (long)(Lp * 4));
            _tile_stored(3, s + j0 + 48, (long)(Lp * 4));
        }
        float inv[16];
        for (int r = 0; r < 16; r++) {
            float *sr = s + (size_t)r * Lp;
            int m = causal ? (i0 + r < L ? i0 + r : L - 1) + 1 : L;
            for (int j = 0; j < mb; j += 16)
                _mm512_storeu_ps(sr + j, _mm512_mul_ps(_mm512_loadu_ps(sr + j), vscale));
            inv[r] = softmax_row(sr, m, mb);
            for (int j = 0; j < mb; j += 16)
                _mm256_storeu_si256((void *)(pb + (size_t)r * Lp + j),
                                    to_bf16(_mm512_loadu_ps(sr + j)));
        }
        for (int e0 = 0; e0 < E; e0 += 64) { /* p @ V: 16 rows x up to 64 columns */
            int nu = (E - e0 < 64 ? E - e0 : 64) / 16;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int t0 = 0; t0 < mb / 2; t0 += 16) {
                _tile_loadd(4, pb + 2 * t0, (long)(Lp * 2));
                const uint32_t *vt = vP + (size_t)t0 * (size_t)E + e0;
                _tile_loadd(5, vt, (long)(E * 4));
                _tile_dpbf16ps(0, 4, 5);
                if (nu > 1) {
                    _tile_loadd(5, vt + 16, (long)(E * 4));
                    _tile_dpbf16ps(1, 4, 5);
                }
                if (nu > 2) {
                    _tile_loadd(5, vt + 32, (long)(E * 4));
                    _tile_dpbf16ps(2, 4, 5);
                }
                if (nu > 3) {
                    _tile_loadd(5, vt + 48, (long)(E * 4));
                    _tile_dpbf16ps(3, 4, 5);
                }
            }
            float *o = s; /* 16 rows x 64, the scores are spent */
            _tile_stored(0, o, 256);
            _tile_stored(1, o + 16, 256);
            _tile_stored(2, o + 32, 256);
            _tile_stored(3, o + 48, 256);
            for (int r = 0; r < nr; r++) {
                __m512 vi = _mm512_set1_ps(inv[r]);
                for (int u = 0; u < nu; u++)
                    _mm256_storeu_si256(
                        (void *)(out + (size_t)(i0 + r) * ldo + (size_t)e0 + 16 * (size_t)u),
                        to_bf16(_mm512_mul_ps(_mm512_loadu_ps(o + r * 64 + 16 * u), vi)));
            }
        }
    }
    _tile_release();
}

#else
bool clip_avx512(void)
{
    return false;
}
bool clip_avx512_bf16(void)
{
    return false;
}
bool clip_amx(void)
{
    return false;
}
void clip_amx_attention_head_bf16(float *scratch, const uint16_t *q, const uint16_t *k,
                                  const uint16_t *v, size_t ld, int L, int E, float scale,
                                  bool causal, uint16_t *out, size_t ldo)
{
    clip_avx512_attention_head_bf16(scratch, q, k, v, ld, L, E, scale, causal, out, ldo);
}
void clip_avx512_attention_head_bf16(float *scratch, const uint16_t *q, const uint16_t *k,
                                     const uint16_t *v, size_t ld, int L, int E, float scale,
                                     bool causal, uint16_t *out, size_t ldo)
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
}
bool clip_avx512_epilogue(const float *acc, size_t lda, int rows, int nc, const float *bias,
                          void *out, size_t ldo, enum clip_epi epi, enum clip_act act)
{
    (void)acc;
    (void)lda;
    (void)rows;
    (void)nc;
    (void)bias;
    (void)out;
    (void)ldo;
    (void)epi;
    (void)act;
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
