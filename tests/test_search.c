/* test_search.c - fp16, exact top-k against a double-precision brute force, masks, query
 * algebra, combination, near-duplicate groups, and the vector store cache. */
#include "check.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/pool.h"
#include "shoebox/search.h"
#include "shoebox/util.h"

#include "../src/search/internal.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t rng_state = 88172645463325252ull;

static double rnd(void) /* xorshift64*, uniform in [-1, 1) */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11) / (double)(1ull << 52) - 1.0;
}

static void test_f16(void)
{
    static const struct {
        float f;
        uint16_t h;
    } cases[] = {
        { 0.0f, 0x0000 },           { -0.0f, 0x8000 },          { 1.0f, 0x3c00 },
        { -2.0f, 0xc000 },          { 65504.0f, 0x7bff },       { 1e6f, 0x7c00 },
        { 0.333333f, 0x3555 },      { 6.1035156e-05f, 0x0400 }, { 5.9604645e-08f, 0x0001 },
        { 1e-9f, 0x0000 },          { 1.00048828125f, 0x3c00 }, /* tie: even */
        { 1.00146484375f, 0x3c02 },                             /* tie: even up */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_EQ_INT(cases[i].h, search_f32_to_f16(cases[i].f));
        if (cases[i].h != 0x7c00 && cases[i].f != 1e-9f && cases[i].f != 0.333333f &&
            cases[i].f != 1.00048828125f && cases[i].f != 1.00146484375f)
            CHECK_NEAR(cases[i].f, search_f16_to_f32(cases[i].h), 0);
    }
    /* every finite half round-trips exactly */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        if (search_f32_to_f16(search_f16_to_f32((uint16_t)h)) != h)
            bad++;
    }
    CHECK_EQ_INT(0, bad);
}

struct ref {
    double score;
    int64_t id;
};

static int ref_cmp(const void *a, const void *b)
{
    const struct ref *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* top-k vs brute force in double precision over the same fp16 data */
enum data_kind { RANDOM, TIES, NEAR }; /* NEAR: one vector plus tiny noise, scores within 1e-3 */

/* Quantizes m into the given arrays (m->n rows each) and attaches them: the two-pass scan. */
static void attach_codes(struct vec_matrix *m, uint8_t *codes, float *scales, float *resid,
                         float *cnorm)
{
    search_quantize(m, codes, scales, resid, cnorm);
    m->codes = codes;
    m->scales = scales;
    m->resid = resid;
    m->cnorm = cnorm;
}

static void check_topk_kind(size_t n, int dim, size_t k, bool with_mask, enum data_kind kind,
                            float min_score, struct sb_pool *pool)
{
    bool ties = kind == TIES;
    uint16_t *data = malloc((n ? n : 1) * (size_t)dim * 2);
    int64_t *ids = malloc((n ? n : 1) * 8);
    unsigned char *mask = malloc(n ? n : 1);
    float *q = malloc((size_t)dim * 4);
    struct ref *ref = malloc((n ? n : 1) * sizeof(*ref));
    struct search_hit *hits = malloc((k ? k : 1) * sizeof(*hits));
    for (size_t r = 0; r < n; r++) {
        ids[r] = (int64_t)(r * 3 + 1);
        mask[r] = with_mask ? (unsigned char)(r % 3 != 0) : 1;
        uint64_t keep = rng_state;
        for (int j = 0; j < dim; j++) {
            double v = ties ? (double)((int)(rnd() * 3)) * 0.25 : rnd();
            if (kind == NEAR) {
                double noise = rnd() * 1e-3;
                rng_state = keep + (uint64_t)j * 0x9E3779B97F4A7C15ull; /* the same base */
                v = rnd() + noise;
            }
            data[r * (size_t)dim + j] = search_f32_to_f16((float)v);
        }
        if (kind == NEAR)
            rng_state = keep * 6364136223846793005ull + 1442695040888963407ull;
    }
    for (int j = 0; j < dim; j++)
        q[j] = ties ? 0.5f : (float)rnd();
    size_t nref = 0;
    for (size_t r = 0; r < n; r++) {
        if (!mask[r])
            continue;
        double s = 0;
        for (int j = 0; j < dim; j++)
            s += (double)search_f16_to_f32(data[r * (size_t)dim + j]) * (double)q[j];
        if (s < (double)min_score)
            continue;
        ref[nref++] = (struct ref){ s, ids[r] };
    }
    qsort(ref, nref, sizeof(*ref), ref_cmp);
    struct vec_matrix m = { .data = data, .ids = ids, .n = n, .dim = dim };
    size_t nh = 99;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK,
                 search_topk(&m, q, with_mask ? mask : NULL, min_score, k, pool, hits, &nh, &err));
    /* the two-pass scan (6-bit codes, fp16 rescoring) returns exactly the fp16 scan's hits */
    uint8_t *codes = malloc((n ? n : 1) * search_code_bytes(dim));
    float *scales = malloc((n ? n : 1) * sizeof(float)), *resid = malloc((n ? n : 1) * 4);
    float *cnorm = malloc((n ? n : 1) * 4);
    struct search_hit *hits8 = malloc((k ? k : 1) * sizeof(*hits8));
    struct vec_matrix m8 = m;
    attach_codes(&m8, codes, scales, resid, cnorm);
    size_t nh8 = 99;
    CHECK_EQ_INT(
        SB_OK, search_topk(&m8, q, with_mask ? mask : NULL, min_score, k, pool, hits8, &nh8, &err));
    CHECK_EQ_INT(nh, nh8);
    int diff8 = 0;
    for (size_t i = 0; i < nh && i < nh8; i++)
        diff8 += hits[i].photo_id != hits8[i].photo_id || hits[i].score != hits8[i].score;
    if (diff8)
        fprintf(stderr, "coded path differs at %d ranks (n=%zu dim=%d k=%zu)\n", diff8, n, dim, k);
    CHECK_EQ_INT(0, diff8);
    free(codes);
    free(scales);
    free(resid);
    free(cnorm);
    free(hits8);
    size_t want = k < nref ? k : nref;
    CHECK_EQ_INT(want, nh);
    int mismatches = 0;
    double maxdiff = 0;
    for (size_t i = 0; i < nh && i < want; i++) {
        double d = fabs((double)hits[i].score - ref[i].score);
        if (d > maxdiff)
            maxdiff = d;
        /* the same photo at each rank; with float accumulation, near-equal scores may swap */
        if (hits[i].photo_id != ref[i].id && fabs(ref[i].score - (double)hits[i].score) > 1e-4)
            mismatches++;
        if (ties && hits[i].photo_id != ref[i].id)
            mismatches++; /* exact ties: lower id first, exactly */
    }
    if (mismatches)
        fprintf(stderr, "topk n=%zu dim=%d k=%zu mask=%d ties=%d: %d mismatches, max diff %g\n", n,
                dim, k, with_mask, ties, mismatches, maxdiff);
    CHECK_EQ_INT(0, mismatches);
    CHECK(maxdiff < 1e-4);
    free(data);
    free(ids);
    free(mask);
    free(q);
    free(ref);
    free(hits);
}

static void check_topk(size_t n, int dim, size_t k, bool with_mask, bool ties, struct sb_pool *pool)
{
    check_topk_kind(n, dim, k, with_mask, ties ? TIES : RANDOM, -INFINITY, pool);
}

/* The packed layout: u[j] = c[j] + 32 in bits 6j..6j+5 of the row's bytes, little-endian. */
static unsigned packed_code(const uint8_t *p, size_t j)
{
    unsigned v = 0;
    for (int t = 0; t < 6; t++) {
        size_t bit = 6 * j + (size_t)t;
        v |= (unsigned)(p[bit / 8] >> (bit % 8) & 1) << t;
    }
    return v;
}

/* Every dot6 kernel this CPU runs gives the exact sums, row for row, on random and extreme
 * codes (all -31, all +31) and queries (all -127, all +127), for 1 to 13 rows (the 4-row SIMD
 * loop and its tails) and 1 to 9 blocks; each row's codes sit in a buffer of exactly its size,
 * so a kernel reading past the end trips ASan. */
static void test_dot6_kernels(void)
{
    struct search_dot6_kernel ks[4];
    size_t nk = search_dot6_kernels(ks, 4);
    CHECK(nk >= 1);
    enum { MAXB = 9, MAXR = 13, D = MAXB * SEARCH_C6_DIMS };
    int8_t *c = malloc((size_t)MAXR * D), q[2 * D];
    int32_t want[2 * MAXR], got[2 * MAXR + 1];
    int trial = 0;
    for (size_t nb = 1; nb <= MAXB; nb++) {
        size_t dims = nb * SEARCH_C6_DIMS; /* the query's second part starts at q + dims */
        for (size_t nr = 1; nr <= MAXR; nr++, trial++) {
            uint8_t *packed = malloc(nr * nb * SEARCH_C6_BYTES);
            int kind = trial % 5; /* 0: -31 x -127, 1: 31 x 127, 2: 31 x -127, else random */
            for (size_t j = 0; j < 2 * dims; j++)
                q[j] = (int8_t)(kind == 0 || kind == 2 ? -127
                                : kind == 1            ? 127
                                                       : (int)lrint(rnd() * 127.4));
            for (size_t r = 0; r < nr; r++) {
                int8_t *cr = c + r * D;
                want[2 * r] = want[2 * r + 1] = 0;
                for (size_t j = 0; j < dims; j++) {
                    cr[j] = (int8_t)(kind == 0 ? -31 : kind <= 2 ? 31 : (int)lrint(rnd() * 31.4));
                    want[2 * r] += (cr[j] + SEARCH_C6_BIAS) * q[j];
                    want[2 * r + 1] += (cr[j] + SEARCH_C6_BIAS) * q[dims + j];
                }
                uint8_t *pr = packed + r * nb * SEARCH_C6_BYTES;
                search_c6_pack(cr, (int)dims, pr);
                int badbits = 0;
                for (size_t j = 0; j < dims; j++)
                    badbits += packed_code(pr, j) != (unsigned)(cr[j] + SEARCH_C6_BIAS);
                CHECK_EQ_INT(0, badbits);
            }
            for (size_t i = 0; i < nk; i++) {
                memset(got, 0x55, sizeof(got));
                ks[i].fn(packed, nr, q, nb, got);
                int bad = 0;
                for (size_t r = 0; r < 2 * nr; r++)
                    bad += got[r] != want[r];
                if (bad)
                    fprintf(stderr, "dot6 %s: %d of %zu sums wrong (%zu blocks, trial %d)\n",
                            ks[i].name, bad, 2 * nr, nb, trial);
                CHECK_EQ_INT(0, bad);
                CHECK_EQ_INT(0x55555555, got[2 * nr]); /* nothing written past the rows */
            }
            free(packed);
        }
    }
    free(c);
    /* a partial last block is padded with c = 0 */
    int8_t c3[3] = { -31, 5, 31 };
    int8_t q3[2 * SEARCH_C6_DIMS] = { 1, 2, 3, 4, [SEARCH_C6_DIMS] = -1 };
    uint8_t p3[SEARCH_C6_BYTES];
    CHECK_EQ_INT(SEARCH_C6_BYTES, search_code_bytes(3));
    search_c6_pack(c3, 3, p3);
    for (size_t i = 0; i < nk; i++) {
        int32_t s3[2] = { 0, 0 };
        ks[i].fn(p3, 1, q3, 1, s3);
        CHECK_EQ_INT((1 * 1 + 37 * 2 + 63 * 3 + 32 * 4), s3[0]);
        CHECK_EQ_INT(-1, s3[1]);
    }
}

/* The whole two-pass scan with each dot6 kernel in turn (SHOEBOX_SEARCH_KERNEL picks one):
 * the same hits and scores as the fp16 scan and the double brute force, odd sizes included. */
static void test_topk_each_kernel(struct sb_pool *pool)
{
    struct search_dot6_kernel ks[4];
    size_t nk = search_dot6_kernels(ks, 4);
    for (size_t i = 0; i < nk; i++) {
        setenv("SHOEBOX_SEARCH_KERNEL", ks[i].name, 1);
        check_topk_kind(5000, 512, 20, false, NEAR, -INFINITY, pool);
        check_topk_kind(20011, 100, 50, true, RANDOM, -INFINITY, pool);
        check_topk_kind(4099, 37, 7, false, RANDOM, -INFINITY, NULL);
        check_topk_kind(3001, 8, 100, false, TIES, -INFINITY, pool);
    }
    unsetenv("SHOEBOX_SEARCH_KERNEL");
}

/* Rescoring goes by upper bound, highest first, and stops below the k-th exact score so far.
 * Decoys with loose bounds (noise in the dimensions the query ignores) and scores one fp16 step
 * (1e-6) below the two true hits are rescored first and fill the heap; the true hits, whose
 * bounds are tight (2.1e-6, from a 2e-6 their codes round away, wide enough to let the decoys
 * past tau), come last and must still be read: a stop off by 4e-6 would return the decoys. */
static void test_rescore_order(struct sb_pool *pool)
{
    enum { DIM = 64, NDECOY = 40, N = NDECOY + 2 };
    const float t = 1.0f / 1024 + 4.0f / 1048576, delta = 1.0f / 1048576; /* fp16 exact */
    uint16_t *data = calloc((size_t)N * DIM, 2);
    int64_t ids[N];
    uint8_t *codes = malloc(N * search_code_bytes(DIM));
    float scales[N], resid[N], cnorm[N], q[DIM] = { 1.0f };
    for (int r = 0; r < N; r++) {
        bool hit = r == 7 || r == N - 1;
        ids[r] = 10 + r;
        data[(size_t)r * DIM] = search_f32_to_f16(hit ? t : t - delta);
        for (int j = 1; j < DIM; j++)
            data[(size_t)r * DIM + j] = search_f32_to_f16(hit ? (j == 1   ? t
                                                                 : j == 2 ? 2e-6f
                                                                          : 0.0f)
                                                              : (float)(0.3 * rnd()));
    }
    struct vec_matrix m = { .data = data, .ids = ids, .n = N, .dim = DIM };
    attach_codes(&m, codes, scales, resid, cnorm);
    for (int with_pool = 0; with_pool < 2; with_pool++) {
        struct search_hit h[2];
        size_t nh = 0;
        CHECK_EQ_INT(SB_OK,
                     search_topk(&m, q, NULL, -1.0f, 2, with_pool ? pool : NULL, h, &nh, NULL));
        CHECK_EQ_INT(2, nh);
        CHECK(nh == 2 && h[0].photo_id == 10 + 7 && h[1].photo_id == 10 + N - 1);
        CHECK(nh == 2 && h[0].score == t && h[1].score == t);
    }
    free(codes);
    free(data);
}

/* The bound at equality: a row whose whole quantisation error (half a code step) lies along
 * the query, so |q.(v - v')| = ||q|| resid exactly, against a row with exact codes scoring
 * 1/2048 of a step (5e-7) below it. A bound 1% short (the slack is 0.6% of this one) rules the
 * first row out in pass 1 and returns the second. */
static void test_bound_tight(struct sb_pool *pool)
{
    enum { DIM = 64, N = 2 };
    const float step = 1.0f / 1024; /* row 0: scale = (31/1024) / 31 */
    uint16_t data[N * DIM] = { 0 };
    int64_t ids[N] = { 3, 4 };
    uint8_t codes[N * 48];
    float scales[N], resid[N], cnorm[N], q[DIM] = { 1.0f };
    for (int order = 0; order < 2; order++) { /* the true hit scanned first, then second */
        int hit = order, other = 1 - order;
        memset(data, 0, sizeof(data));
        data[hit * DIM] = search_f32_to_f16(0.5f * step); /* codes round it to 0 */
        data[hit * DIM + 1] = search_f32_to_f16(31.0f * step);
        data[other * DIM] = search_f32_to_f16((0.5f - 1.0f / 2048) * step); /* exact codes */
        struct vec_matrix m = { .data = data, .ids = ids, .n = N, .dim = DIM };
        attach_codes(&m, codes, scales, resid, cnorm);
        CHECK(resid[hit] >= 0.5f * step && resid[hit] < 0.5001f * step);
        struct search_hit h[1];
        size_t nh = 0;
        CHECK_EQ_INT(SB_OK, search_topk(&m, q, NULL, -1.0f, 1, pool, h, &nh, NULL));
        CHECK(nh == 1 && h[0].photo_id == ids[hit] && h[0].score == 0.5f * step);
    }
}

static void test_topk(struct sb_pool *pool)
{
    test_bound_tight(pool);
    test_rescore_order(pool);
    test_dot6_kernels();
    test_topk_each_kernel(pool);
    /* adversarial for the bound: scores within 1e-3 of each other, many rescored */
    check_topk_kind(5000, 512, 20, false, NEAR, -INFINITY, pool);
    check_topk_kind(3000, 100, 300, true, NEAR, -INFINITY, NULL);
    check_topk_kind(20000, 64, 10, true, RANDOM, 2.0f, pool);    /* min_score prunes pass 1 */
    check_topk_kind(100, 64, 500, false, TIES, -INFINITY, pool); /* k > n, ties */
    check_topk(0, 16, 5, false, false, pool);                    /* empty catalog */
    check_topk(3, 16, 10, false, false, pool);                   /* k > n */
    check_topk(1000, 512, 10, false, false, pool);
    check_topk(20000, 64, 50, true, false, pool); /* several parts, mask */
    check_topk(20000, 37, 7, false, false, NULL); /* odd dimension, no pool */
    check_topk(9000, 8, 100, false, true, pool);  /* many exact ties */
    check_topk(500, 512, 0, false, false, pool);  /* k = 0 */
    /* min_score: nothing above 10 */
    uint16_t d[4] = { search_f32_to_f16(1), 0, 0, search_f32_to_f16(1) };
    int64_t ids[2] = { 5, 9 };
    struct vec_matrix m = { .data = d, .ids = ids, .n = 2, .dim = 2 };
    float q[2] = { 1, 0 };
    struct search_hit h[2];
    size_t nh = 0;
    CHECK_EQ_INT(SB_OK, search_topk(&m, q, NULL, 10.0f, 2, NULL, h, &nh, NULL));
    CHECK_EQ_INT(0, nh);
    CHECK_EQ_INT(SB_OK, search_topk(&m, q, NULL, 0.5f, 2, NULL, h, &nh, NULL));
    CHECK_EQ_INT(1, nh);
    CHECK_EQ_INT(5, h[0].photo_id);
    CHECK_EQ_INT(1, search_find_row(&m, 9));
    CHECK_EQ_INT(-1, search_find_row(&m, 7));
    unsigned char mask[2];
    int64_t want[] = { 1, 9, 12 };
    search_mask_from_ids(&m, want, 3, mask);
    CHECK(mask[0] == 0 && mask[1] == 1);
}

static bool fake_is_file(const char *p)
{
    return strcmp(p, "./pool.jpg") == 0 || strcmp(p, "/a b.jpg") == 0;
}

static void test_parse(void)
{
    struct search_term *t = NULL;
    size_t n = 0;
    struct sb_err err;
    char *a1[] = { "2:golden retriever", "+", "./pool.jpg", "-", "night" };
    CHECK_EQ_INT(SB_OK, search_parse_terms(5, a1, fake_is_file, &t, &n, &err));
    CHECK_EQ_INT(3, n);
    if (n == 3) {
        CHECK(t[0].kind == SEARCH_TERM_TEXT && t[0].weight == 2.0f);
        CHECK_EQ_STR("golden retriever", t[0].text);
        CHECK(t[1].kind == SEARCH_TERM_IMAGE && t[1].weight == 1.0f);
        CHECK(t[2].kind == SEARCH_TERM_TEXT && t[2].weight == -1.0f);
    }
    search_terms_free(t, n);
    char *a2[] = { "poodle", "on", "a", "beach" }; /* unquoted words: one text */
    CHECK_EQ_INT(SB_OK, search_parse_terms(4, a2, fake_is_file, &t, &n, &err));
    CHECK_EQ_INT(1, n);
    if (n == 1)
        CHECK_EQ_STR("poodle on a beach", t[0].text);
    search_terms_free(t, n);
    char *a3[] = { "id:42", "-", "0.5:id:7", "+", "/a b.jpg" };
    CHECK_EQ_INT(SB_OK, search_parse_terms(5, a3, fake_is_file, &t, &n, &err));
    CHECK_EQ_INT(3, n);
    if (n == 3) {
        CHECK(t[0].kind == SEARCH_TERM_ID && t[0].id == 42);
        CHECK(t[1].kind == SEARCH_TERM_ID && t[1].id == 7 && t[1].weight == -0.5f);
        CHECK(t[2].kind == SEARCH_TERM_IMAGE);
    }
    search_terms_free(t, n);
    static const struct {
        int argc;
        char *argv[3];
    } bad[] = {
        { 1, { "+" } },    { 2, { "cat", "-" } }, { 3, { "cat", "+", "-" } },
        { 1, { "id:x" } }, { 1, { "id:-3" } },    { 2, { "./pool.jpg", "cat" } },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = NULL;
        n = 0;
        CHECK_EQ_INT(SB_EINVAL, search_parse_terms(bad[i].argc, (char **)(uintptr_t)bad[i].argv,
                                                   fake_is_file, &t, &n, &err));
    }
    CHECK_EQ_INT(SB_OK, search_parse_terms(0, NULL, fake_is_file, &t, &n, &err));
    CHECK_EQ_INT(0, n);
    search_terms_free(t, n);
    /* "16:9" is a weight only if followed by text; "cat:" is text */
    char *a4[] = { "cat:" };
    CHECK_EQ_INT(SB_OK, search_parse_terms(1, a4, fake_is_file, &t, &n, &err));
    CHECK(n == 1 && t[0].weight == 1.0f);
    search_terms_free(t, n);
}

static void test_split(void)
{
    char q[] = "  poodle\ton a  beach +pool.jpg -night + 2:dog -0.5:cat - id:3 ";
    const char *want[] = { "poodle", "on", "a",     "beach",    "+", "pool.jpg", "-",
                           "night",  "+",  "2:dog", "-0.5:cat", "-", "id:3" };
    char *argv[16];
    int argc = -1;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, search_split_query(q, argv, 16, &argc, &err));
    CHECK_EQ_INT(13, argc);
    for (int i = 0; i < argc && i < 13; i++)
        CHECK_EQ_STR(want[i], argv[i]);
    char empty[] = " \t ";
    CHECK_EQ_INT(SB_OK, search_split_query(empty, argv, 16, &argc, &err));
    CHECK_EQ_INT(0, argc);
    char many[] = "a b c d e -f";
    CHECK_EQ_INT(SB_EINVAL, search_split_query(many, argv, 6, &argc, &err));
    char fits[] = "a b c -d";
    CHECK_EQ_INT(SB_OK, search_split_query(fits, argv, 6, &argc, &err));
    CHECK_EQ_INT(5, argc);
}

static void test_combine(void)
{
    float v[6] = { 1, 0, 0, 0, 1, 0 };
    float w[2] = { 1, 1 }, out[3];
    CHECK_EQ_INT(SB_OK, search_combine(v, w, 2, 3, out, NULL));
    CHECK_NEAR(0.70710678, out[0], 1e-6);
    CHECK_NEAR(0.70710678, out[1], 1e-6);
    float w2[2] = { 2, -1 };
    CHECK_EQ_INT(SB_OK, search_combine(v, w2, 2, 3, out, NULL));
    CHECK_NEAR(2 / sqrt(5), out[0], 1e-6);
    CHECK_NEAR(-1 / sqrt(5), out[1], 1e-6);
    float same[6] = { 1, 0, 0, 1, 0, 0 }, w3[2] = { 1, -1 };
    CHECK_EQ_INT(SB_EINVAL, search_combine(same, w3, 2, 3, out, NULL)); /* cat - cat */
}

static void test_near_groups(void)
{
    /* rows 0,2 near; 3,4,5 a chain (single linkage); 1 alone; 6 masked out */
    float rows[7][4] = { { 1, 0, 0, 0 },        { 0, 1, 0, 0 },          { 0.99f, 0.14f, 0, 0 },
                         { 0, 0, 1, 0 },        { 0, 0, 0.97f, 0.243f }, { 0, 0, 0.9f, 0.436f },
                         { 0.99f, 0.14f, 0, 0 } };
    uint16_t d[28];
    for (int r = 0; r < 7; r++) {
        double nn = 0;
        for (int j = 0; j < 4; j++)
            nn += (double)rows[r][j] * (double)rows[r][j];
        for (int j = 0; j < 4; j++)
            d[r * 4 + j] = search_f32_to_f16((float)((double)rows[r][j] / sqrt(nn)));
    }
    int64_t ids[7] = { 1, 2, 3, 4, 5, 6, 7 };
    struct vec_matrix m = { .data = d, .ids = ids, .n = 7, .dim = 4 };
    unsigned char mask[7] = { 1, 1, 1, 1, 1, 1, 0 };
    int64_t g[7];
    CHECK_EQ_INT(SB_OK, search_near_groups(&m, NULL, 0, mask, 0.95f, NULL, g, NULL));
    CHECK_EQ_INT(0, g[0]);
    CHECK_EQ_INT(-1, g[1]);
    CHECK_EQ_INT(0, g[2]);
    CHECK_EQ_INT(3, g[3]);
    CHECK_EQ_INT(3, g[4]);
    CHECK_EQ_INT(3, g[5]);
    CHECK_EQ_INT(-1, g[6]);
}

/* Groups through the pair cache file equal groups computed without it: on the first build,
 * after rows are added, changed and removed (incremental update), with a mask, at a threshold
 * below the cache's base, and with a corrupt file. Rows come in near families so that groups
 * exist at 0.9..0.99. */
static void near_rows_fam(uint16_t *d, int64_t *ids, size_t n, int dim, uint64_t seed,
                          size_t family)
{
    for (size_t r = 0; r < n; r++) {
        ids[r] = (int64_t)(r * 2 + 1);
        rng_state = seed + (r / family) * 7919; /* families share a base */
        double v[256], nn = 0;
        for (int j = 0; j < dim; j++)
            v[j] = rnd();
        rng_state = seed * 31 + r;
        double amount = 0.02 + 0.1 * (double)(r % 3);
        for (int j = 0; j < dim; j++) {
            v[j] += amount * rnd();
            nn += v[j] * v[j];
        }
        for (int j = 0; j < dim; j++)
            d[r * (size_t)dim + (size_t)j] = search_f32_to_f16((float)(v[j] / sqrt(nn)));
    }
}

static void near_rows(uint16_t *d, int64_t *ids, size_t n, int dim, uint64_t seed)
{
    near_rows_fam(d, ids, n, dim, seed, 3);
}

static int64_t ref_root(int64_t *parent, int64_t x)
{
    while (parent[x] != x)
        x = parent[x];
    return x;
}

/* Groups from a double-precision brute force over all pairs against search_near_groups (no
 * cache), which bounds most pairs away through a product over a quarter of the dimensions; on
 * this thread and with the blocks shared out over pool. */
static void check_near_ref(size_t n, int dim, size_t family, float threshold, struct sb_pool *pool)
{
    uint16_t *d = malloc(n * (size_t)dim * 2);
    int64_t *ids = malloc(n * sizeof(*ids)), *parent = malloc(n * sizeof(*parent));
    int64_t *g = malloc(n * sizeof(*g));
    unsigned char *linked = calloc(n, 1);
    near_rows_fam(d, ids, n, dim, 1234, family);
    for (size_t i = 0; i < n; i++)
        parent[i] = (int64_t)i;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++) {
            double sc = 0;
            for (int k = 0; k < dim; k++)
                sc += (double)search_f16_to_f32(d[i * (size_t)dim + (size_t)k]) *
                      (double)search_f16_to_f32(d[j * (size_t)dim + (size_t)k]);
            if (sc < (double)threshold)
                continue;
            int64_t a = ref_root(parent, (int64_t)i), b = ref_root(parent, (int64_t)j);
            if (a != b)
                parent[a > b ? a : b] = a < b ? a : b;
            linked[i] = linked[j] = 1;
        }
    }
    struct vec_matrix m = { .data = d, .ids = ids, .n = n, .dim = dim };
    struct sb_err err;
    for (int with_pool = 0; with_pool < 2; with_pool++) {
        CHECK_EQ_INT(SB_OK, search_near_groups(&m, NULL, 0, NULL, threshold,
                                               with_pool ? pool : NULL, g, &err));
        int diffs = 0, grouped = 0;
        for (size_t i = 0; i < n; i++) {
            int64_t want = linked[i] ? ref_root(parent, (int64_t)i) : -1;
            diffs += g[i] != want;
            grouped += want >= 0;
        }
        if (diffs)
            fprintf(stderr, "near groups n=%zu dim=%d family=%zu t=%g pool %d: %d rows differ\n", n,
                    dim, family, (double)threshold, with_pool, diffs);
        CHECK_EQ_INT(0, diffs);
        CHECK(grouped > 0);
    }
    free(d);
    free(ids);
    free(parent);
    free(g);
    free(linked);
}

/* Rows whose group differs between no cache on this thread and the cache file (brought up to
 * date with the blocks shared out over pool). */
static int group_diffs(const struct vec_matrix *m, const char *path, int64_t version,
                       const unsigned char *mask, float threshold, struct sb_pool *pool)
{
    int64_t *g1 = malloc(m->n * sizeof(*g1)), *g2 = malloc(m->n * sizeof(*g2));
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, search_near_groups(m, NULL, 0, mask, threshold, NULL, g1, &err));
    CHECK_EQ_INT(SB_OK, search_near_groups(m, path, version, mask, threshold, pool, g2, &err));
    int diffs = 0, grouped = 0;
    for (size_t i = 0; i < m->n; i++) {
        diffs += g1[i] != g2[i];
        grouped += g1[i] >= 0;
    }
    CHECK(grouped > 0); /* the data has groups at this threshold */
    free(g1);
    free(g2);
    return diffs;
}

static void test_near_cache(struct sb_pool *pool)
{
    check_near_ref(700, 128, 3, 0.95f, pool);   /* families of 3: the prefix bound prunes */
    check_near_ref(1100, 64, 3, 0.90f, pool);   /* (2 x 2 blocks) */
    check_near_ref(1100, 64, 1100, 0.9f, pool); /* all alike: dense blocks, full products */
    check_near_ref(300, 40, 3, 0.95f, pool);    /* under 64 dimensions: no prefix */
    check_near_ref(2100, 64, 3, 0.85f, pool);   /* below the cached base: union-finds, 3 blocks */
    const char *tmp = getenv("SHOEBOX_TMP");
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/test_search_near.%d", tmp ? tmp : "/tmp", (int)getpid());
    CHECK_EQ_INT(SB_OK, sb_mkdirs(dir, NULL));
    snprintf(path, sizeof(path), "%s/near-1.pairs", dir);
    enum { N = 3000, D = 48 };
    uint16_t *d = malloc((size_t)N * D * 2);
    int64_t *ids = malloc(N * sizeof(*ids));
    unsigned char *mask = malloc(N);
    near_rows(d, ids, N, D, 77);
    struct vec_matrix m = { .data = d, .ids = ids, .n = 2000, .dim = D };
    int64_t version = 0; /* unknown: every call checks the rows' hashes */
    CHECK_EQ_INT(0, group_diffs(&m, path, version, NULL, 0.95f, pool)); /* first build */
    CHECK(access(path, F_OK) == 0);
    CHECK_EQ_INT(0, group_diffs(&m, path, version, NULL, 0.99f, pool)); /* from the file */
    version = 5; /* now known: the file gets it, and is then taken as it is */
    CHECK_EQ_INT(0, group_diffs(&m, path, version, NULL, 0.95f, pool));
    CHECK_EQ_INT(0, group_diffs(&m, path, version, NULL, 0.96f, pool));
    m.n = N; /* 1000 rows more: a new version */
    version = 6;
    CHECK_EQ_INT(0, group_diffs(&m, path, version, NULL, 0.95f, pool));
    /* rows changed in place, rows removed (ids kept ascending) */
    near_rows(d, ids, 50, D, 99);
    memmove(d + 100 * D, d + 400 * D, (size_t)(N - 400) * D * 2);
    memmove(ids + 100, ids + 400, (size_t)(N - 400) * sizeof(*ids));
    m.n = N - 300;
    version = 7;
    for (size_t r = 0; r < m.n; r++)
        mask[r] = (unsigned char)(r % 5 != 0);
    CHECK_EQ_INT(0, group_diffs(&m, path, version, mask, 0.95f, pool));
    CHECK_EQ_INT(0, group_diffs(&m, path, version, NULL, 0.92f, pool));
    CHECK_EQ_INT(0,
                 group_diffs(&m, path, version, NULL, 0.80f, pool)); /* below the base: no cache */
    /* a corrupt file is rebuilt, not trusted */
    FILE *f = fopen(path, "r+b");
    if (f) {
        fseek(f, 64 + 16 * 5, SEEK_SET);
        for (int i = 0; i < 64; i++)
            fputc(0x5a, f);
        fclose(f);
    }
    CHECK_EQ_INT(0, group_diffs(&m, path, version, NULL, 0.95f, pool));
    /* a flipped byte among the pairs (a score) too */
    struct stat st;
    if (stat(path, &st) == 0 && (f = fopen(path, "r+b")) != NULL) {
        fseek(f, (long)st.st_size - 12, SEEK_SET);
        fputc(0x00, f);
        fputc(0x00, f);
        fclose(f);
    }
    CHECK_EQ_INT(0, group_diffs(&m, path, version, NULL, 0.95f, pool));
    truncate(path, 70);
    CHECK_EQ_INT(0, group_diffs(&m, path, version, NULL, 0.95f, pool));
    unlink(path);
    rmdir(dir);
    free(d);
    free(ids);
    free(mask);
}

/* The VmFlags of the mapping that holds addr, from /proc/self/smaps ("" when not found). */
static void vm_flags_of(const void *addr, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return;
    char line[512];
    bool in = false;
    uintptr_t a = (uintptr_t)addr;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
            in = a >= lo && a < hi;
        else if (in && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(out, cap, "%s", line + 8);
            break;
        }
    }
    fclose(f);
}

/* Transparent huge pages are on ("always" or "madvise"); false where the kernel lacks them. */
static bool thp_enabled(void)
{
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    char line[128] = "";
    if (!f)
        return false;
    bool ok = fgets(line, sizeof(line), f) != NULL && strstr(line, "[never]") == NULL;
    fclose(f);
    return ok;
}

static void test_store(void)
{
    const char *tmp = getenv("SHOEBOX_TMP");
    char db[512], cache[512];
    snprintf(db, sizeof(db), "%s/test_search.%d/catalog.db", tmp ? tmp : "/tmp", (int)getpid());
    snprintf(cache, sizeof(cache), "%s/test_search.%d/cache", tmp ? tmp : "/tmp", (int)getpid());
    struct catalog *cat = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, catalog_open(db, false, &cat, &err));
    if (!cat)
        return;
    struct vec_store *s = NULL;
    CHECK_EQ_INT(SB_ENOENT, vec_store_open(cat, "m", cache, &s, &err));
    int64_t mid = 0;
    struct catalog_stat st = { 1, 1, 1, 1, 1 };
    const char *stages[] = { NULL };
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_model_ensure(cat, "m", 3, &mid, &err));
    for (int i = 0; i < 5; i++) {
        char path[32];
        unsigned char h[16] = { (unsigned char)(i + 1) };
        snprintf(path, sizeof(path), "/x/%d.jpg", i);
        CHECK_EQ_INT(SB_OK, catalog_file_touch(cat, path, &st, &err));
        struct catalog_file *f = NULL;
        size_t nf = 0;
        catalog_files_pending(cat, 1, &f, &nf, &err);
        int64_t pid = 0;
        if (nf == 1)
            CHECK_EQ_INT(SB_OK, catalog_file_set_photo(cat, f[0].id, h, 1, "jpeg", stages, &pid,
                                                       NULL, &err));
        catalog_files_free(f, nf);
        float v[3] = { (float)i, 1, 0 };
        CHECK_EQ_INT(SB_OK, catalog_vector_put(cat, mid, pid, v, 3, &err));
    }
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    CHECK_EQ_INT(SB_OK, vec_store_open(cat, "m", cache, &s, &err));
    const struct vec_matrix *m = s ? vec_store_matrix(s) : NULL;
    CHECK(m && m->n == 5 && m->dim == 3);
    if (m) {
        float row[3];
        search_row(m, 4, row);
        CHECK_NEAR(4.0, row[0], 0);
        CHECK(!vec_store_stale(s, cat));
        /* the scan's part of the mapped file asks for huge pages (the fp16 rows do not need to) */
        char flags[512];
        vm_flags_of(m->codes, flags, sizeof(flags));
        if (thp_enabled() && flags[0] && !strstr(flags, " hg")) {
            fprintf(stderr, "codes mapping without MADV_HUGEPAGE: VmFlags:%s", flags);
            CHECK(false);
        }
        /* the server's copy: the same matrix elsewhere, all of it asking for huge pages */
        const void *old_data = m->data;
        float before[3];
        search_row(m, 3, before);
        CHECK_EQ_INT(SB_OK, vec_store_resident(s, &err));
        m = vec_store_matrix(s);
        CHECK(m->data != old_data && m->n == 5 && m->dim == 3 && m->ids[4] == 5);
        search_row(m, 3, row);
        CHECK(memcmp(row, before, sizeof(row)) == 0);
        CHECK_NEAR(3.0, row[0], 0);
        struct search_hit hit[2];
        size_t nh = 0;
        float q[3] = { 1, 0, 0 };
        CHECK_EQ_INT(SB_OK, search_topk(m, q, NULL, -1.0f, 2, NULL, hit, &nh, &err));
        CHECK(nh == 2 && hit[0].photo_id == 5 && hit[1].photo_id == 4);
        vm_flags_of(m->data, flags, sizeof(flags));
        if (thp_enabled() && !strstr(flags, " hg")) {
            fprintf(stderr, "resident store without MADV_HUGEPAGE: VmFlags:%s", flags);
            CHECK(false);
        }
    }
    /* the present mask: cached while the present set stands still, refreshed when it moves */
    if (s) {
        unsigned char *mask = NULL;
        int64_t g0 = -1, g1 = -1;
        CHECK_EQ_INT(SB_OK, catalog_present_generation(cat, &g0, &err));
        CHECK_EQ_INT(SB_OK, vec_store_mask(s, cat, NULL, &mask, &err));
        CHECK(mask && mask[0] && mask[1] && mask[4]);
        free(mask);
        mask = NULL;
        CHECK_EQ_INT(SB_OK, vec_store_mask(s, cat, NULL, &mask, &err)); /* from the cache */
        CHECK(mask && mask[0] && mask[1] && mask[4]);
        free(mask);
        mask = NULL;
        CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
        CHECK_EQ_INT(SB_OK, catalog_file_set_missing(cat, 2, &err));
        CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
        CHECK_EQ_INT(SB_OK, catalog_present_generation(cat, &g1, &err));
        CHECK(g1 != g0);
        CHECK_EQ_INT(SB_OK, vec_store_mask(s, cat, NULL, &mask, &err));
        CHECK(mask && mask[0] && !mask[1] && mask[4]); /* file 2 is photo 2, row 1 */
        free(mask);
        mask = NULL;
        struct catalog_filter f = { .format = "png" }; /* a filter: never from the cache */
        CHECK_EQ_INT(SB_OK, vec_store_mask(s, cat, &f, &mask, &err));
        CHECK(mask && !mask[0] && !mask[4]);
        free(mask);
    }
    /* a new vector makes it stale; reopening rebuilds the file */
    float v[3] = { 9, 9, 9 };
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_vector_put(cat, mid, 1, v, 3, &err));
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    CHECK(s && vec_store_stale(s, cat));
    vec_store_close(s);
    CHECK_EQ_INT(SB_OK, vec_store_open(cat, "m", cache, &s, &err));
    m = s ? vec_store_matrix(s) : NULL;
    if (m) {
        float row[3];
        search_row(m, 0, row);
        CHECK_NEAR(9.0, row[0], 0);
    }
    vec_store_close(s);
    char f[600];
    snprintf(f, sizeof(f), "%s/vectors-%lld.f16", cache, (long long)mid);
    /* a file of the previous format (3: the codes in another bit order) is rebuilt, never read
     * as format 4 */
    FILE *fp2 = fopen(f, "r+b");
    uint32_t fmt = 0;
    if (fp2) {
        fseek(fp2, 8, SEEK_SET);
        fputc(3, fp2);
        fclose(fp2);
    }
    CHECK_EQ_INT(SB_OK, vec_store_open(cat, "m", cache, &s, &err));
    m = s ? vec_store_matrix(s) : NULL;
    CHECK(m && m->n == 5 && m->codes);
    vec_store_close(s);
    fp2 = fopen(f, "rb");
    if (fp2) {
        fseek(fp2, 8, SEEK_SET);
        CHECK(fread(&fmt, 4, 1, fp2) == 1);
        fclose(fp2);
    }
    CHECK_EQ_INT(4, fmt);
    /* a corrupt cache file is rebuilt, not trusted */
    FILE *fp = fopen(f, "r+b");
    if (fp) {
        fseek(fp, 70, SEEK_SET);
        fputc(0x7f, fp);
        fclose(fp);
        truncate(f, 100);
    }
    CHECK_EQ_INT(SB_OK, vec_store_open(cat, "m", cache, &s, &err));
    m = s ? vec_store_matrix(s) : NULL;
    CHECK(m && m->n == 5);
    vec_store_close(s);
    catalog_close(cat);
}

/* One scan on the pool (the web server's query team) while others run on their own threads
 * (pool NULL) over the same matrix: every one returns the single-threaded answer. Under TSan
 * (CI) this is the check that scans share nothing but the read-only matrix. */
struct concurrent_scan {
    const struct vec_matrix *m;
    const float *q;
    struct sb_pool *pool;
    const struct search_hit *want;
    size_t nwant;
    int wrong;
};

static void *concurrent_scan_run(void *arg)
{
    struct concurrent_scan *c = arg;
    for (int i = 0; i < 8; i++) {
        struct search_hit h[30];
        size_t nh = 0;
        if (search_topk(c->m, c->q, NULL, -1.0f, 30, c->pool, h, &nh, NULL) != SB_OK ||
            nh != c->nwant) {
            c->wrong++;
            continue;
        }
        for (size_t j = 0; j < nh; j++)
            c->wrong += h[j].photo_id != c->want[j].photo_id || h[j].score != c->want[j].score;
    }
    return NULL;
}

static void test_topk_concurrent(struct sb_pool *pool)
{
    enum { N = 30011, DIM = 64, T = 3 };
    uint16_t *data = malloc((size_t)N * DIM * 2);
    int64_t *ids = malloc((size_t)N * 8);
    uint8_t *codes = malloc((size_t)N * search_code_bytes(DIM));
    float *scales = malloc(N * 4), *resid = malloc(N * 4), *cnorm = malloc(N * 4), q[DIM];
    CHECK(data && ids && codes && scales && resid && cnorm);
    if (!data || !ids || !codes || !scales || !resid || !cnorm)
        return;
    for (size_t r = 0; r < N; r++) {
        ids[r] = (int64_t)r + 1;
        for (int j = 0; j < DIM; j++)
            data[r * DIM + (size_t)j] = search_f32_to_f16((float)rnd());
    }
    for (int j = 0; j < DIM; j++)
        q[j] = (float)rnd();
    struct vec_matrix m = { .data = data, .ids = ids, .n = N, .dim = DIM };
    attach_codes(&m, codes, scales, resid, cnorm);
    struct search_hit want[30];
    size_t nwant = 0;
    CHECK_EQ_INT(SB_OK, search_topk(&m, q, NULL, -1.0f, 30, NULL, want, &nwant, NULL));
    CHECK_EQ_INT(30, nwant);
    struct concurrent_scan c[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        c[t] = (struct concurrent_scan){ &m, q, t == 0 ? pool : NULL, want, nwant, 0 };
        CHECK_EQ_INT(0, pthread_create(&th[t], NULL, concurrent_scan_run, &c[t]));
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(0, c[t].wrong);
    }
    free(data);
    free(ids);
    free(codes);
    free(scales);
    free(resid);
    free(cnorm);
}

int main(void)
{
    struct sb_pool *pool = NULL;
    sb_pool_new(2, &pool, NULL);
    test_f16();
    test_topk(pool);
    test_topk_concurrent(pool);
    test_parse();
    test_split();
    test_combine();
    test_near_groups();
    test_near_cache(pool);
    test_store();
    sb_pool_free(pool);
    return check_exit();
}
