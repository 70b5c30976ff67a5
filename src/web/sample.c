/* sample.c - "Rediscover": a varied sample of the library. Half of it is spread over time
 * (the dated photos cut into equal-count buckets, one random photo from each), the rest
 * spread over the embedding space by farthest-point sampling: starting from the time picks
 * (or one random photo), repeatedly add the candidate whose highest cosine to everything
 * chosen so far is the lowest. Candidates are a random subset of at most MAX_CANDIDATES
 * rows, so a request costs O(MAX_CANDIDATES * n * dim) whatever the library's size. */
#include "internal.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/search.h"

#include <stdlib.h>
#include <string.h>

enum { MAX_CANDIDATES = 4000 };

/* xorshift64* (Vigna): small, good enough to pick photos */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static size_t rng_below(uint64_t *state, size_t n)
{
    return n ? (size_t)(rng_next(state) % n) : 0;
}

static bool chosen_has(const int64_t *ids, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id)
            return true;
    }
    return false;
}

/* Adds up to want photos by farthest-point sampling over the store's present rows. */
static int spread_embedding(struct catalog *cat, struct vec_store *vs, uint64_t *rng, int64_t *out,
                            size_t *nout, size_t want, struct sb_err *err)
{
    const struct vec_matrix *m = vec_store_matrix(vs);
    unsigned char *mask = NULL;
    size_t *cand = NULL;
    float *maxcos = NULL, *v = NULL;
    int rc = vec_store_mask(vs, cat, NULL, &mask, err);
    if (rc)
        goto out;
    cand = malloc((m->n ? m->n : 1) * sizeof(*cand));
    v = malloc((size_t)m->dim * sizeof(float));
    if (!cand || !v) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
        goto out;
    }
    size_t nc = 0;
    for (size_t r = 0; r < m->n; r++) {
        if (mask[r])
            cand[nc++] = r;
    }
    /* a random subset: partial Fisher-Yates */
    size_t keep = nc < MAX_CANDIDATES ? nc : MAX_CANDIDATES;
    for (size_t i = 0; i < keep; i++) {
        size_t j = i + rng_below(rng, nc - i);
        size_t t = cand[i];
        cand[i] = cand[j];
        cand[j] = t;
    }
    nc = keep;
    if (nc == 0)
        goto out;
    maxcos = malloc(nc * sizeof(float));
    if (!maxcos) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t c = 0; c < nc; c++)
        maxcos[c] = chosen_has(out, *nout, m->ids[cand[c]]) ? 2.0f : -2.0f;
    /* distances to what is chosen already (the time picks) */
    for (size_t i = 0; i < *nout; i++) {
        int64_t row = search_find_row(m, out[i]);
        if (row < 0)
            continue;
        search_row(m, (size_t)row, v);
        for (size_t c = 0; c < nc; c++) {
            float d = search_score_row(m, v, cand[c]);
            if (d > maxcos[c])
                maxcos[c] = d;
        }
    }
    size_t target = *nout + want;
    bool first = true;
    while (*nout < target) {
        size_t best = nc;
        if (first && *nout == 0) {
            best = rng_below(rng, nc); /* nothing chosen yet: a random seed */
        } else {
            float lo = 1.5f;
            for (size_t c = 0; c < nc; c++) {
                if (maxcos[c] < lo) {
                    lo = maxcos[c];
                    best = c;
                }
            }
        }
        first = false;
        if (best == nc)
            break; /* every candidate is taken */
        out[(*nout)++] = m->ids[cand[best]];
        maxcos[best] = 2.0f;
        search_row(m, cand[best], v);
        for (size_t c = 0; c < nc; c++) {
            float d = search_score_row(m, v, cand[c]);
            if (d > maxcos[c])
                maxcos[c] = d;
        }
    }
out:
    free(mask);
    free(cand);
    free(maxcos);
    free(v);
    return rc;
}

int web_rediscover(struct web_server *s, struct catalog *cat, size_t n, uint64_t seed,
                   int64_t **ids, size_t *nids, struct sb_err *err)
{
    int64_t *tids = NULL, *times = NULL, *out = NULL;
    size_t nt = 0, nout = 0;
    struct web_store *st = NULL;
    uint64_t rng = seed ? seed : 0x9E3779B97F4A7C15ULL;
    int rc = catalog_photo_times(cat, &tids, &times, &nt, err);
    if (!rc)
        rc = web_store_get(s, cat, &st, err);
    if (rc)
        goto out;
    out = malloc((n ? n : 1) * sizeof(*out));
    if (!out) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
        goto out;
    }
    const struct vec_matrix *m = st ? vec_store_matrix(st->vs) : NULL;
    bool have_vectors = m && m->n > 0;
    size_t by_time = have_vectors ? n / 2 : n;
    if (by_time > nt)
        by_time = nt;
    for (size_t b = 0; b < by_time; b++) {
        size_t lo = b * nt / by_time, hi = (b + 1) * nt / by_time;
        int64_t id = tids[lo + rng_below(&rng, hi - lo)];
        if (!chosen_has(out, nout, id))
            out[nout++] = id;
    }
    if (have_vectors && nout < n)
        rc = spread_embedding(cat, st->vs, &rng, out, &nout, n - nout, err);
    if (rc)
        goto out;
    /* a random order, so the time picks and the embedding picks mix on the page */
    for (size_t i = nout; i > 1; i--) {
        size_t j = rng_below(&rng, i);
        int64_t t = out[i - 1];
        out[i - 1] = out[j];
        out[j] = t;
    }
    *ids = out;
    *nids = nout;
    out = NULL;
out:
    web_store_put(s, st);
    free(out);
    free(tids);
    free(times);
    return rc;
}
