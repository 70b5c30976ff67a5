/* clip_avx2.c - AVX2 + FMA bodies of clip.c's elementwise kernels for CPUs without AVX-512 (most
 * laptops and desktops), which run the fp32 mode: bias and activation after an fp32 product.
 * In C, libm's tanhf and expf took ~30% of a SigLIP fp32 image batch (gelu_pytorch_tanh over
 * every MLP activation). Results agree with the C loops to rounding: exp is a polynomial within
 * 2 ulp of expf, as in clip_avx512.c. */
#include "internal.h"

#include "shoebox/util.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX2   __attribute__((target("avx2,fma")))
#define INLINE __attribute__((always_inline)) inline

bool clip_avx2(void)
{
    static int have = -1; /* a race here writes the same value */
    if (have < 0) {
        __builtin_cpu_init();
        have = sb_isa_max() >= SB_ISA_AVX2 && __builtin_cpu_supports("avx2") &&
                       __builtin_cpu_supports("fma")
                   ? 1
                   : 0;
    }
    return have == 1;
}

/* e^x, x clamped to [-87.3, 88.3] (the normal f32 range of 2^n below): x = n ln2 + r,
 * |r| <= ln2/2, e^r by its degree-7 Taylor polynomial, times 2^n built in the exponent bits. */
AVX2 INLINE static __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* quick_gelu x / (1 + e^(-1.702 x)), or gelu_pytorch_tanh 0.5 x (1 + tanh(y)),
 * y = sqrt(2/pi) (x + 0.044715 x^3), tanh(y) = 1 - 2 / (1 + e^(2y)). */
AVX2 INLINE static __m256 act8(__m256 x, enum clip_act kind)
{
    __m256 one = _mm256_set1_ps(1.0f);
    if (kind == CLIP_ACT_QUICK_GELU)
        return _mm256_div_ps(x,
                             _mm256_add_ps(one, exp8(_mm256_mul_ps(x, _mm256_set1_ps(-1.702f)))));
    __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    __m256 y = _mm256_mul_ps(_mm256_set1_ps(0.79788456080286536f),
                             _mm256_fmadd_ps(x3, _mm256_set1_ps(0.044715f), x));
    __m256 t = _mm256_sub_ps(
        one, _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(one, exp8(_mm256_add_ps(y, y)))));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(one, t));
}

AVX2 bool clip_avx2_bias_act(float *o, const float *b, size_t n, bool act, enum clip_act kind)
{
    if (act && kind == CLIP_ACT_GELU)
        return false; /* erf: the caller's C loop */
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(o + i);
        if (b)
            x = _mm256_add_ps(x, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(o + i, act ? act8(x, kind) : x);
    }
    if (i < n) { /* the tail through a padded copy */
        float t[8] = { 0 };
        for (size_t k = i; k < n; k++)
            t[k - i] = o[k] + (b ? b[k] : 0.0f);
        __m256 x = _mm256_loadu_ps(t);
        _mm256_storeu_ps(t, act ? act8(x, kind) : x);
        for (size_t k = i; k < n; k++)
            o[k] = t[k - i];
    }
    return true;
}

#else
bool clip_avx2(void)
{
    return false;
}
bool clip_avx2_bias_act(float *o, const float *b, size_t n, bool act, enum clip_act kind)
{
    (void)o;
    (void)b;
    (void)n;
    (void)act;
    (void)kind;
    return false;
}
#endif
