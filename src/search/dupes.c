/* dupes.c - near-duplicate groups: exact all-pairs cosine through blocked matrix products
 * (B x D rows against every later block), union-find over pairs above the threshold. */
#include "shoebox/search.h"

#include "shoebox/err.h"
#include "shoebox/pool.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

enum { BLOCK = 1024 };

static int64_t find_root(int64_t *parent, int64_t x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

static void unite(int64_t *parent, int64_t a, int64_t b)
{
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a == b)
        return;
    if (a < b)
        parent[b] = a; /* the smallest row becomes the root */
    else
        parent[a] = b;
}

/* Rows [b, b + n) that pass the mask, as floats; returns how many, their rows in idx. */
static size_t load_block(const struct vec_matrix *m, const unsigned char *mask, size_t b, size_t n,
                         float *out, size_t *idx)
{
    size_t k = 0;
    for (size_t r = b; r < b + n; r++) {
        if (mask && !mask[r])
            continue;
        search_row(m, r, out + k * (size_t)m->dim);
        idx[k++] = r;
    }
    return k;
}

int search_near_groups(const struct vec_matrix *m, const unsigned char *mask, float threshold,
                       struct sb_pool *pool, int64_t *group, struct sb_err *err)
{
    (void)pool; /* the products run on OpenBLAS's threads */
    size_t n = m->n, d = (size_t)m->dim;
    int64_t *parent = malloc((n ? n : 1) * sizeof(*parent));
    unsigned char *linked = calloc(n ? n : 1, 1);
    float *a = malloc(BLOCK * d * sizeof(float));
    float *b = malloc(BLOCK * d * sizeof(float));
    float *c = malloc((size_t)BLOCK * BLOCK * sizeof(float));
    size_t *ia = malloc(BLOCK * sizeof(size_t)), *ib = malloc(BLOCK * sizeof(size_t));
    int rc = SB_OK;
    if (!parent || !linked || !a || !b || !c || !ia || !ib) {
        rc = sb_fail(err, SB_ENOMEM, "dupes: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        parent[i] = (int64_t)i;
    for (size_t bi = 0; bi < n; bi += BLOCK) {
        size_t na = load_block(m, mask, bi, n - bi < BLOCK ? n - bi : BLOCK, a, ia);
        if (!na)
            continue;
        for (size_t bj = bi; bj < n; bj += BLOCK) {
            size_t nb = load_block(m, mask, bj, n - bj < BLOCK ? n - bj : BLOCK, b, ib);
            if (!nb)
                continue;
            /* c(na, nb) = a(na, d) @ b(nb, d)^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)na, (int)nb, (int)d, 1.0f, a,
                        (int)d, b, (int)d, 0.0f, c, (int)nb);
            for (size_t i = 0; i < na; i++) {
                for (size_t j = 0; j < nb; j++) {
                    if (ib[j] <= ia[i] || c[i * nb + j] < threshold)
                        continue;
                    unite(parent, (int64_t)ia[i], (int64_t)ib[j]);
                    linked[ia[i]] = linked[ib[j]] = 1;
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        group[i] = linked[i] ? find_root(parent, (int64_t)i) : -1;
out:
    free(parent);
    free(linked);
    free(a);
    free(b);
    free(c);
    free(ia);
    free(ib);
    return rc;
}
