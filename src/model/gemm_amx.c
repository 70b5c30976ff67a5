/* gemm_amx.c - our own bf16 matrix product on AMX tiles, the bf16 backend's kernel where the
 * CPU has AMX-BF16 (linear_dnnl.c picks it at load; oneDNN stays for CPUs without AMX).
 *
 * out(M, n0..n1) = epilogue(in(M, K) @ W^T + b), W (N, K) row-major as nn.Linear stores it,
 * converted once at load to bf16 (rounding to nearest even) in the tile layout:
 *   32-column blocks of W^T, each its K in 32-deep steps, each step two 1 KB tiles (columns
 *   0-15 and 16-31 of the block): tile row r, pair c = W[n][k], W[n][k + 1] for n = block
 *   column c, k = step start + 2r (the VNNI pairs TDPBF16PS multiplies). K and N are padded
 *   with zeros to multiples of 32, so a block is one contiguous stream and tails multiply 0.
 * The kernel walks 32-row blocks of in: tiles 0-3 accumulate the 2 x 2 16 x 16 f32 blocks,
 * 4-5 hold 16 rows x 32 bf16 of in, 6-7 the two weight tiles. fp32 accumulation; bias,
 * activation, residual add and bf16 output are applied to each 32 x 32 block while it is in
 * cache, interleaved with the next block's tile products. Rows past M are neither read (the tile
 * rows shrink) nor written; the K tail (K not a multiple of 32) is copied into zero-padded tiles,
 * so activations past K are never read either. Rows and columns are independent: callers share a
 * product out by rows or by 32-column blocks. */
#include "internal.h"

#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")))

enum { KSTEP = 32, TILE = 16 * 32 }; /* bf16 per K step of a row; bf16 per tile */
/* No software prefetch of the weights: with few rows they stream from memory, and prefetches
 * into L1 filled its few miss buffers and stalled the tile loads (SigLIP text query 14.3
 * against 16.3 ms); the hardware's L2 streamer keeps up. With many rows they come from L2 and
 * the prefetch gained nothing either (bench/embed, same run). */

size_t clip_amx_packed_size(int K, int N)
{
    size_t Kp = ((size_t)K + 31) / 32 * 32, Np = ((size_t)N + 31) / 32 * 32;
    return Kp * Np;
}

void clip_amx_pack(uint16_t *dst, const float *w, size_t ld, int K, int N, uint16_t *row)
{
    size_t steps = ((size_t)K + 31) / 32;
    memset(dst, 0, clip_amx_packed_size(K, N) * sizeof(uint16_t));
    for (size_t n = 0; n < (size_t)N; n++) {
        clip_k_store_input(row, 0, w + n * ld, (size_t)K, true);
        size_t blk = n / 32, t = n % 32 / 16, c = n % 16;
        uint16_t *base = dst + (blk * steps * 2 + t) * TILE + 2 * c;
        for (size_t k = 0; k < (size_t)K; k++) {
            size_t s = k / 32, r = k % 32 / 2, e = k % 2;
            base[s * 2 * TILE + r * 32 + e] = row[k];
        }
    }
}

struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* Tiles 0-1 and 4 have r0 rows, 2-3 and 5 r1 (0: unused); 6-7 are 16 pairs x 16 columns. */
AMX static void configure(int r0, int r1)
{
    struct tile_config cfg = { .palette = 1 };
    int rows[8] = { r0, r0, r1, r1, r0, r1, 16, 16 };
    for (int t = 0; t < 8; t++) {
        if (!rows[t])
            continue;
        cfg.rows[t] = (uint8_t)rows[t];
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
}

static __mmask16 mask16(int n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

/* The epilogue of rows x nc of the block acc (32 x 32 f32) into out; the row by row way below
 * is only for the erf gelu. */
AMX static void epilogue(float *acc, int rows, int nc, const float *bias, void *out, size_t ldo,
                         enum clip_epi epi, enum clip_act act)
{
    if (clip_avx512_epilogue(acc, 32, rows, nc, bias, out, ldo, epi, act))
        return;
    for (int r = 0; r < rows; r++) {
        float *a = acc + r * 32;
        for (int u = 0; u < nc; u += 16) {
            __mmask16 m = mask16(nc - u);
            __m512 v = _mm512_loadu_ps(a + u);
            if (bias)
                v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + u));
            if (epi == CLIP_EPI_STORE) {
                _mm512_mask_storeu_ps((float *)out + (size_t)r * ldo + u, m, v);
            } else if (epi == CLIP_EPI_RESIDUAL) {
                float *o = (float *)out + (size_t)r * ldo + u;
                _mm512_mask_storeu_ps(o, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, o), v));
            } else {
                _mm512_storeu_ps(a + u, v);
            }
        }
        if (epi == CLIP_EPI_ACT)
            clip_k_bias_act(a, NULL, (size_t)nc, true, act);
        if (epi == CLIP_EPI_ACT || epi == CLIP_EPI_BF16)
            clip_avx512_to_bf16((uint16_t *)out + (size_t)r * ldo, a, (size_t)nc);
    }
}

/* A block whose sums wait in acc for their epilogue, done rows at a time. */
struct pending {
    float *acc;
    int rows, done, nc;
    const float *bias;
    char *out; /* row 0 of the block */
};

static void drain(struct pending *p, int n, enum clip_epi epi, enum clip_act act, size_t ldo,
                  size_t osize)
{
    n = p->rows - p->done < n ? p->rows - p->done : n;
    if (n <= 0)
        return;
    epilogue(p->acc + p->done * 32, n, p->nc, p->bias, p->out + (size_t)p->done * ldo * osize, ldo,
             epi, act);
    p->done += n;
}

/* Few rows: the output's blocks go column block by column block, each weight block streamed
 * from memory once and reused from L1/L2 for every row block (on a second pass over the rows
 * the weights came from L2 again: the text query 14.3 against 15.8-16.2 ms); many rows: row
 * block by row block, the weights of a worker's share reused from L2. */
#define COLS_OUTER_ROWS 128

AMX void clip_amx_gemm(void *out, size_t ldo, const uint16_t *in, size_t ldi, int M,
                       const uint16_t *wp, const float *bias, int K, int N, int n0, int n1,
                       enum clip_epi epi, enum clip_act act)
{
    int steps = (K + 31) / 32, full = K / 32, ktail = K - full * 32;
    if (n1 > N)
        n1 = N;
    _Alignas(64) float acc[2][32 * 32]; /* this block's sums, the previous block's */
    int cur = 0, per = (32 + steps - 1) / steps;
    struct pending pend = { 0 };
    /* the last K step's columns of each row block, zero-padded to 32 */
    _Alignas(64) uint16_t tail[COLS_OUTER_ROWS / 16][16 * KSTEP];
    size_t osize = epi == CLIP_EPI_ACT || epi == CLIP_EPI_BF16 ? sizeof(uint16_t) : sizeof(float);
    long lda = (long)(ldi * sizeof(uint16_t));
    int cur0 = -1, cur1 = -1, cfirst = n0 / 32 * 32;
    int nrb = (M + 31) / 32, ncb = n1 > cfirst ? (n1 - cfirst + 31) / 32 : 0;
    bool cols_outer = M <= COLS_OUTER_ROWS;
    for (int it = 0; it < nrb * ncb; it++) {
        int rb = cols_outer ? it % nrb : it / ncb, cb = cols_outer ? it / nrb : it % ncb;
        int m0 = rb * 32, c0 = cfirst + cb * 32;
        int r0 = M - m0 < 16 ? M - m0 : 16, r1 = M - m0 - 16;
        r1 = r1 < 0 ? 0 : r1 > 16 ? 16 : r1;
        if (r0 != cur0 || r1 != cur1) {
            configure(r0, r1);
            cur0 = r0;
            cur1 = r1;
        }
        const uint16_t *a0 = in + (size_t)m0 * ldi, *a1 = a0 + 16 * ldi;
        uint16_t *t0 = tail[cols_outer ? 2 * rb : 0], *t1 = t0 + 16 * KSTEP;
        if (ktail && cb == 0) { /* a row block's first visit */
            memset(t0, 0, 2 * 16 * KSTEP * sizeof(uint16_t));
            for (int r = 0; r < r0 + r1; r++)
                memcpy((r < 16 ? t0 : t1) + (r % 16) * KSTEP, a0 + (size_t)r * ldi + full * 32,
                       (size_t)ktail * sizeof(uint16_t));
        }
        const uint16_t *b = wp + (size_t)(c0 / 32) * (size_t)steps * 2 * TILE;
        if (epi == CLIP_EPI_RESIDUAL) /* the rows this block adds to, read a block later */
            for (int r = 0; r < r0 + r1; r++) {
                const char *o = (const char *)out + ((size_t)(m0 + r) * ldo + (size_t)c0) * 4;
                _mm_prefetch(o, _MM_HINT_T0);
                _mm_prefetch(o + 64, _MM_HINT_T0);
            }
        _tile_zero(0);
        _tile_zero(1);
        if (r1) {
            _tile_zero(2);
            _tile_zero(3);
        }
        for (int s = 0; s < steps; s++, b += 2 * TILE) {
            if (s < full) {
                _tile_loadd(4, a0 + s * 32, lda);
                if (r1)
                    _tile_loadd(5, a1 + s * 32, lda);
            } else {
                _tile_loadd(4, t0, KSTEP * 2);
                if (r1)
                    _tile_loadd(5, t1, KSTEP * 2);
            }
            _tile_loadd(6, b, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_loadd(7, b + TILE, 64);
            _tile_dpbf16ps(1, 4, 7);
            if (r1) {
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            /* the previous block's epilogue, a few rows per step, while the tiles work */
            drain(&pend, per, epi, act, ldo, osize);
        }
        /* this block's sums into acc[cur]; the previous block's epilogue is finished */
        float *a = acc[cur];
        drain(&pend, pend.rows, epi, act, ldo, osize);
        _tile_stored(0, a, 128);
        _tile_stored(1, a + 16, 128);
        if (r1) {
            _tile_stored(2, a + 16 * 32, 128);
            _tile_stored(3, a + 16 * 32 + 16, 128);
        }
        pend = (struct pending){ a,
                                 r0 + r1,
                                 0,
                                 n1 - c0 < 32 ? n1 - c0 : 32,
                                 bias ? bias + c0 : NULL,
                                 (char *)out + ((size_t)m0 * ldo + (size_t)c0) * osize };
        cur ^= 1;
    }
    drain(&pend, pend.rows, epi, act, ldo, osize);
    _tile_release();
}

#else
size_t clip_amx_packed_size(int K, int N)
{
    (void)K;
    (void)N;
    return 0;
}
void clip_amx_pack(uint16_t *dst, const float *w, size_t ld, int K, int N, uint16_t *row)
{
    (void)dst;
    (void)w;
    (void)ld;
    (void)K;
    (void)N;
    (void)row;
}
void clip_amx_gemm(void *out, size_t ldo, const uint16_t *in, size_t ldi, int M, const uint16_t *wp,
                   const float *bias, int K, int N, int n0, int n1, enum clip_epi epi,
                   enum clip_act act)
{
    (void)out;
    (void)ldo;
    (void)in;
    (void)ldi;
    (void)M;
    (void)wp;
    (void)bias;
    (void)K;
    (void)N;
    (void)n0;
    (void)n1;
    (void)epi;
    (void)act;
}
#endif
