/* dupes.c - near-duplicate groups: exact pair cosines through blocked matrix products (B x D
 * rows against later blocks), union-find over the pairs above the threshold.
 *
 * All pairs cost O(n^2 d), so the pairs at cosine >= SEARCH_NEAR_BASE are kept in a cache file
 * beside the vector cache and brought up to date incrementally: a row whose photo id is new,
 * or whose vector changed (a hash of its fp16 bytes differs), is compared with every row; the
 * pairs of unchanged rows are kept, those of rows gone are dropped. Indexing 1000 new photos
 * into a library of 100k then costs 1000 x 100k products instead of 100k x 100k.
 *
 * Pair file layout (little-endian): a 64-byte header {magic "SBNEARPR", u32 format 1, u32 dim,
 * u64 rows, u64 pairs, f32 base, u32 0, u64 FNV-1a of the rest, i64 vector version, zero padding},
 * rows x {i64 photo id (ascending), u64 row hash}, pairs x {i64 id a < i64 id b, f32 cosine, u32
 * zero}. Written to a temporary file and renamed; a file that does not match exactly is ignored and
 * rebuilt. */
#include "shoebox/search.h"

#include <stdatomic.h>
#include <stdbool.h>

#include "shoebox/err.h"
#include "shoebox/pool.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { BLOCK = 1024, PAIRS_FORMAT = 1 };
static const char pairs_magic[8] = { 'S', 'B', 'N', 'E', 'A', 'R', 'P', 'R' };

struct pairs_header {
    char magic[8];
    uint32_t format, dim;
    uint64_t rows, pairs;
    float base;
    uint32_t zero;
    uint64_t check;  /* FNV-1a of everything after the header */
    int64_t version; /* the vectors' version the pairs were computed for (0: unknown) */
    unsigned char pad[64 - 56];
};
_Static_assert(sizeof(struct pairs_header) == 64, "pairs header layout");

struct row_key {
    int64_t id;
    uint64_t hash;
};

struct pair {
    int64_t a, b;
    float score;
    uint32_t zero;
};

/* ---- union-find --------------------------------------------------------------------------- */

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

/* ---- pairs -------------------------------------------------------------------------------- */

struct pair_list {
    struct pair *p;
    size_t n, cap;
};

static bool pair_add(struct pair_list *l, int64_t a, int64_t b, float score)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        struct pair *p = realloc(l->p, cap * sizeof(*p));
        if (!p)
            return false;
        l->p = p;
        l->cap = cap;
    }
    l->p[l->n++] = (struct pair){ a < b ? a : b, a < b ? b : a, score, 0 };
    return true;
}

#define FNV_INIT 0xcbf29ce484222325ull

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* A hash of a row's fp16 bytes: tells a changed vector from an unchanged one. */
static uint64_t row_hash(const struct vec_matrix *m, size_t r)
{
    return fnv(FNV_INIT, m->data + r * (size_t)m->dim, (size_t)m->dim * 2);
}

/* Rows idx[0..n) as floats into out (n x dim). */
static void load_rows(const struct vec_matrix *m, const size_t *idx, size_t n, float *out)
{
    for (size_t k = 0; k < n; k++)
        search_row(m, idx[k], out + k * (size_t)m->dim);
}

/* Where fresh_pairs puts a pair: into a list, or (parent non-NULL) straight into the
 * union-find when both rows pass mask, so that a low threshold never holds O(n^2) pairs. */
struct pair_sink {
    struct pair_list *list;
    int64_t *parent;
    unsigned char *linked;
    const unsigned char *mask;
};

/* Takes pair (i, j) of rows with cosine sc: into the list, or united. false: out of memory. */
static bool sink_put(const struct vec_matrix *m, const struct pair_sink *out, size_t i, size_t j,
                     float sc)
{
    if (out->parent) {
        if (out->mask && (!out->mask[i] || !out->mask[j]))
            return true;
        unite(out->parent, (int64_t)i, (int64_t)j);
        out->linked[i] = out->linked[j] = 1;
        return true;
    }
    return pair_add(out->list, m->ids[i], m->ids[j], sc);
}

static float dot_f(const float *x, const float *y, size_t d)
{
    float s = 0.0f;
    for (size_t k = 0; k < d; k++)
        s += x[k] * y[k];
    return s;
}

/* One worker's scratch for fresh_pairs: a block of fresh rows (a), a block of others (b),
 * their products (c), the pairs that survive the prefix bound; in union mode (the sink has a
 * union-find) a union-find: worker 0 the sink's own, the others theirs, merged into it at the
 * end. */
struct fp_scratch {
    float *a, *b, *c;
    size_t *ib;
    uint32_t *surv; /* i * BLOCK + j */
    int64_t *parent;
    unsigned char *linked;
};

struct fp_job {
    const struct vec_matrix *m;
    const unsigned char *fresh;
    float base;
    size_t P;
    const float *tail, *norm;
    const size_t *fidx; /* the fresh rows, ascending: block k is fidx[k * BLOCK ..] */
    size_t nfresh;
    const struct pair_sink *out;
    struct fp_scratch *w;    /* per worker */
    struct pair_list *lists; /* list mode: each block's pairs, appended in block order */
    atomic_bool failed;      /* out of memory */
};

enum { MAX_SURVIVORS = BLOCK * BLOCK / 16 };

/* Block k of fresh rows against every row of a later block or not fresh: its pairs into the
 * block's list, or the worker's union-find. false: out of memory. */
static bool block_pairs(struct fp_job *j, struct fp_scratch *w, size_t k)
{
    const struct vec_matrix *m = j->m;
    const unsigned char *fresh = j->fresh;
    const size_t n = m->n, d = (size_t)m->dim, P = j->P;
    const float base = j->base, *tail = j->tail, *norm = j->norm;
    const size_t *ia = j->fidx + k * BLOCK;
    size_t na = j->nfresh - k * BLOCK < BLOCK ? j->nfresh - k * BLOCK : BLOCK;
    struct pair_sink sink = j->lists
                                ? (struct pair_sink){ &j->lists[k], NULL, NULL, NULL }
                                : (struct pair_sink){ NULL, w->parent, w->linked, j->out->mask };
    float *a = w->a, *b = w->b, *c = w->c;
    load_rows(m, ia, na, a);
    /* every row of a later block, or a not-fresh row before it: those pairs are new */
    size_t s = 0;
    while (s < n) {
        size_t nb = 0;
        for (; s < n && nb < BLOCK; s++)
            if (!fresh[s] || s > ia[0])
                w->ib[nb++] = s;
        if (!nb)
            break;
        const size_t *ib = w->ib;
        load_rows(m, ib, nb, b);
        /* c(na, nb) = a(na, :P) @ b(nb, :P)^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)na, (int)nb, (int)P, 1.0f, a,
                    (int)d, b, (int)d, 0.0f, c, (int)nb);
        size_t ns = 0;
        bool dense = false;
        for (size_t i = 0; i < na && !dense; i++) {
            for (size_t jj = 0; jj < nb; jj++) {
                size_t x = ia[i], y = ib[jj];
                if (y == x || (fresh[y] && y < x))
                    continue;
                /* slack: the float products' rounding, far below any threshold step */
                float ub = c[i * nb + jj] + tail[x] * tail[y] + 1e-4f * norm[x] * norm[y];
                if (ub < base)
                    continue;
                if (ns == MAX_SURVIVORS) {
                    dense = true;
                    break;
                }
                w->surv[ns++] = (uint32_t)(i * BLOCK + jj);
            }
        }
        if (dense || P == d) {
            /* many candidates (or no prefix): the full product, every pair from it */
            if (P != d)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)na, (int)nb, (int)d, 1.0f,
                            a, (int)d, b, (int)d, 0.0f, c, (int)nb);
            for (size_t i = 0; i < na; i++) {
                for (size_t jj = 0; jj < nb; jj++) {
                    size_t x = ia[i], y = ib[jj];
                    float sc = c[i * nb + jj];
                    if (sc < base || y == x || (fresh[y] && y < x))
                        continue;
                    if (!sink_put(m, &sink, x, y, sc))
                        return false;
                }
            }
            continue;
        }
        for (size_t q = 0; q < ns; q++) {
            size_t i = w->surv[q] / BLOCK, jj = w->surv[q] % BLOCK;
            float sc = dot_f(a + i * d, b + jj * d, d);
            if (sc >= base && !sink_put(m, &sink, ia[i], ib[jj], sc))
                return false;
        }
    }
    return true;
}

static void fp_blocks(void *arg, size_t begin, size_t end, int worker)
{
    struct fp_job *j = arg;
    for (size_t k = begin; k < end; k++)
        if (atomic_load(&j->failed) || !block_pairs(j, &j->w[worker], k))
            atomic_store(&j->failed, true);
}

/* Pairs (i, j) with cosine >= base where i is a fresh row and j any row (both fresh: j > i
 * only, so each pair is found once), through products of BLOCK x BLOCK row blocks; the blocks
 * of fresh rows are shared out over pool (NULL: this thread), each worker's products on one
 * OpenBLAS thread. The pairs reach out in the order one thread would find them.
 *
 * A block's product first runs over the leading P = d/4 dimensions only: by Cauchy-Schwarz
 * x.y <= x[:P].y[:P] + ||x[P:]|| ||y[P:]||, so a pair whose bound stays below base is not a
 * near duplicate, and the few that remain are scored over all d (a block where many remain
 * gets the full product instead). Near duplicates are rare among all pairs, so most blocks
 * cost a quarter of the full product. */
static int fresh_pairs(const struct vec_matrix *m, const unsigned char *fresh, float base,
                       const struct pair_sink *out, struct sb_pool *pool, struct sb_err *err)
{
    size_t n = m->n, d = (size_t)m->dim, nw = pool ? (size_t)sb_pool_size(pool) + 1 : 1;
    float *tail = malloc((n ? n : 1) * sizeof(float)), *norm = malloc((n ? n : 1) * sizeof(float));
    size_t *fidx = malloc((n ? n : 1) * sizeof(size_t)), nfresh = 0, nblocks = 0;
    struct fp_scratch *w = calloc(nw, sizeof(*w));
    struct fp_job j = { .m = m,
                        .fresh = fresh,
                        .base = base,
                        .P = d >= 64 ? d / 4 : d,
                        .tail = tail,
                        .norm = norm,
                        .fidx = fidx,
                        .out = out,
                        .w = w };
    atomic_init(&j.failed, false);
    int rc = SB_OK;
    bool ok = tail && norm && fidx && w;
    for (size_t i = 0; ok && i < nw; i++) {
        w[i].a = malloc(BLOCK * d * sizeof(float));
        w[i].b = malloc(BLOCK * d * sizeof(float));
        w[i].c = malloc((size_t)BLOCK * BLOCK * sizeof(float));
        w[i].ib = malloc(BLOCK * sizeof(size_t));
        w[i].surv = malloc(MAX_SURVIVORS * sizeof(uint32_t));
        ok = w[i].a && w[i].b && w[i].c && w[i].ib && w[i].surv;
        if (ok && out->parent && i == 0) {
            w[0].parent = out->parent;
            w[0].linked = out->linked;
        } else if (ok && out->parent) {
            w[i].parent = malloc((n ? n : 1) * sizeof(int64_t));
            w[i].linked = calloc(n ? n : 1, 1);
            ok = w[i].parent && w[i].linked;
            for (size_t r = 0; ok && r < n; r++)
                w[i].parent[r] = (int64_t)r;
        }
    }
    if (!ok) {
        rc = sb_fail(err, SB_ENOMEM, "dupes: out of memory");
        goto out;
    }
    float *row = w[0].a;
    for (size_t r = 0; r < n; r++) {
        search_row(m, r, row);
        double t = 0.0, all = 0.0;
        for (size_t k = 0; k < d; k++) {
            all += (double)row[k] * (double)row[k];
            if (k >= j.P)
                t += (double)row[k] * (double)row[k];
        }
        tail[r] = nextafterf((float)sqrt(t), INFINITY); /* rounded up: the bound stays a bound */
        norm[r] = nextafterf((float)sqrt(all), INFINITY);
        if (fresh[r])
            fidx[nfresh++] = r;
    }
    j.nfresh = nfresh;
    nblocks = (nfresh + BLOCK - 1) / BLOCK;
    if (!out->parent && !(j.lists = calloc(nblocks ? nblocks : 1, sizeof(*j.lists)))) {
        rc = sb_fail(err, SB_ENOMEM, "dupes: out of memory");
        goto out;
    }
    /* one threading runtime: the workers' products each on one OpenBLAS thread (a process
     * setting: left alone when it already is one, as where a model context runs on a pool) */
    int blas_threads = openblas_get_num_threads();
    bool single = pool && blas_threads != 1;
    if (single)
        openblas_set_num_threads(1);
    sb_pool_for_each(pool, nblocks, fp_blocks, &j);
    if (single)
        openblas_set_num_threads(blas_threads);
    for (size_t k = 0; j.lists && k < nblocks && !atomic_load(&j.failed); k++)
        for (size_t i = 0; i < j.lists[k].n; i++)
            if (!pair_add(out->list, j.lists[k].p[i].a, j.lists[k].p[i].b, j.lists[k].p[i].score))
                atomic_store(&j.failed, true);
    for (size_t i = 1; out->parent && i < nw; i++)
        for (size_t r = 0; r < n; r++)
            if (w[i].linked[r]) {
                unite(out->parent, (int64_t)r, find_root(w[i].parent, (int64_t)r));
                out->linked[r] = 1;
            }
    if (atomic_load(&j.failed))
        rc = sb_fail(err, SB_ENOMEM, "dupes: out of memory");
out:
    for (size_t i = 0; w && i < nw; i++) {
        free(w[i].a);
        free(w[i].b);
        free(w[i].c);
        free(w[i].ib);
        free(w[i].surv);
        if (i > 0) { /* worker 0's are the sink's */
            free(w[i].parent);
            free(w[i].linked);
        }
    }
    for (size_t k = 0; j.lists && k < nblocks; k++)
        free(j.lists[k].p);
    free(j.lists);
    free(w);
    free(fidx);
    free(tail);
    free(norm);
    return rc;
}

/* Reads path when it is a pair file of dim and base: *keys (rows), *pairs. false otherwise. */
static bool pairs_read(const char *path, int dim, float base, int64_t *version,
                       struct row_key **keys, size_t *nkeys, struct pair_list *pairs)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    struct pairs_header h;
    struct stat st;
    bool ok = fstat(fileno(f), &st) == 0 && fread(&h, sizeof(h), 1, f) == 1 &&
              memcmp(h.magic, pairs_magic, 8) == 0 && h.format == PAIRS_FORMAT &&
              (int)h.dim == dim && h.base == base && h.rows < ((uint64_t)1 << 36) &&
              h.pairs < ((uint64_t)1 << 36) &&
              (uint64_t)st.st_size ==
                  sizeof(h) + h.rows * sizeof(struct row_key) + h.pairs * sizeof(struct pair);
    struct row_key *k = NULL;
    struct pair *p = NULL;
    if (ok) {
        k = malloc(h.rows ? (size_t)h.rows * sizeof(*k) : 1);
        p = malloc(h.pairs ? (size_t)h.pairs * sizeof(*p) : 1);
        ok = k && p && fread(k, sizeof(*k), (size_t)h.rows, f) == h.rows &&
             fread(p, sizeof(*p), (size_t)h.pairs, f) == h.pairs &&
             fnv(fnv(FNV_INIT, k, (size_t)h.rows * sizeof(*k)), p, (size_t)h.pairs * sizeof(*p)) ==
                 h.check;
    }
    fclose(f);
    if (!ok) {
        free(k);
        free(p);
        return false;
    }
    *keys = k;
    *nkeys = (size_t)h.rows;
    *version = h.version;
    pairs->p = p;
    pairs->n = pairs->cap = (size_t)h.pairs;
    return true;
}

static int pairs_write(const char *path, const struct vec_matrix *m, const uint64_t *hashes,
                       int64_t version, float base, const struct pair_list *pairs,
                       struct sb_err *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp)
        return sb_fail(err, SB_ENOMEM, "dupes: out of memory");
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int rc = SB_OK;
    int fd = mkstemp(tmp); /* unique: two server threads may refresh the file at once */
    if (fd >= 0)
        (void)fchmod(fd, 0644); /* as readable as the vector cache beside it */
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        rc = sb_fail(err, sb_code_from_errno(e), "write '%s': %s", path, strerror(e));
        goto out;
    }
    struct pairs_header h;
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, pairs_magic, 8);
    h.format = PAIRS_FORMAT;
    h.dim = (uint32_t)m->dim;
    h.rows = m->n;
    h.pairs = pairs->n;
    h.base = base;
    h.version = version;
    uint64_t check = FNV_INIT;
    for (size_t r = 0; r < m->n; r++) {
        struct row_key k = { m->ids[r], hashes[r] };
        check = fnv(check, &k, sizeof(k));
    }
    h.check = fnv(check, pairs->p, pairs->n * sizeof(*pairs->p));
    bool ok = fwrite(&h, sizeof(h), 1, f) == 1;
    for (size_t r = 0; ok && r < m->n; r++) {
        struct row_key k = { m->ids[r], hashes[r] };
        ok = fwrite(&k, sizeof(k), 1, f) == 1;
    }
    ok = ok && fwrite(pairs->p, sizeof(*pairs->p), pairs->n, f) == pairs->n;
    if (fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        rc = sb_fail(err, sb_code_from_errno(e), "write '%s': %s", path, strerror(e));
    }
out:
    free(tmp);
    return rc;
}

/* The index of id in keys (ascending), or n. */
static size_t key_find(const struct row_key *keys, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keys[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && keys[lo].id == id ? lo : n;
}

/* The pairs at cosine >= base among all rows of m: from the file at path (NULL: no file),
 * brought up to date, or computed afresh. */
static int near_pairs(const struct vec_matrix *m, const char *path, int64_t version, float base,
                      struct sb_pool *pool, struct pair_list *out, struct sb_err *err)
{
    struct row_key *keys = NULL;
    size_t nkeys = 0;
    struct pair_list old = { 0 };
    uint64_t *hashes = malloc((m->n ? m->n : 1) * sizeof(*hashes));
    unsigned char *fresh = malloc(m->n ? m->n : 1);
    unsigned char *kept = NULL; /* per old key: still a row, unchanged */
    int rc = SB_OK;
    if (!hashes || !fresh) {
        rc = sb_fail(err, SB_ENOMEM, "dupes: out of memory");
        goto out;
    }
    int64_t file_version = 0;
    bool have = path && pairs_read(path, m->dim, base, &file_version, &keys, &nkeys, &old);
    if (have && version != 0 && file_version == version && nkeys == m->n) {
        /* the same vectors as when the file was written: its pairs as they are */
        bool same = true;
        for (size_t r = 0; same && r < m->n; r++)
            same = keys[r].id == m->ids[r];
        if (same) {
            *out = old;
            old.p = NULL;
            goto out;
        }
    }
    for (size_t r = 0; r < m->n; r++) {
        hashes[r] = row_hash(m, r);
        fresh[r] = 1;
    }
    if (have) {
        kept = calloc(nkeys ? nkeys : 1, 1);
        if (!kept) {
            rc = sb_fail(err, SB_ENOMEM, "dupes: out of memory");
            goto out;
        }
        /* both lists ascend by photo id (a file where they do not is not trusted) */
        size_t j = 0;
        bool sorted = true;
        for (size_t i = 1; i < nkeys; i++)
            sorted = sorted && keys[i - 1].id < keys[i].id;
        if (!sorted)
            old.n = 0;
        for (size_t r = 0; sorted && r < m->n; r++) {
            while (j < nkeys && keys[j].id < m->ids[r])
                j++;
            if (j < nkeys && keys[j].id == m->ids[r] && keys[j].hash == hashes[r]) {
                fresh[r] = 0;
                kept[j] = 1;
            }
        }
        /* keep the old pairs whose two rows are both kept */
        for (size_t i = 0; i < old.n; i++) {
            struct pair p = old.p[i];
            size_t ja = key_find(keys, nkeys, p.a), jb = key_find(keys, nkeys, p.b);
            if (ja < nkeys && jb < nkeys && kept[ja] && kept[jb] && p.score >= base &&
                !pair_add(out, p.a, p.b, p.score)) {
                rc = sb_fail(err, SB_ENOMEM, "dupes: out of memory");
                goto out;
            }
        }
    }
    size_t nfresh = 0;
    for (size_t r = 0; r < m->n; r++)
        nfresh += fresh[r];
    if (nfresh) {
        struct pair_sink sink = { out, NULL, NULL, NULL };
        rc = fresh_pairs(m, fresh, base, &sink, pool, err);
        if (rc)
            goto out;
    }
    /* best effort: a read-only cache folder still gets answers */
    if (path && (nfresh || nkeys != m->n || file_version != version))
        (void)pairs_write(path, m, hashes, version, base, out, NULL);
out:
    free(keys);
    free(old.p);
    free(kept);
    free(hashes);
    free(fresh);
    return rc;
}

int search_near_groups(const struct vec_matrix *m, const char *cache_path, int64_t version,
                       const unsigned char *mask, float threshold, struct sb_pool *pool,
                       int64_t *group, struct sb_err *err)
{
    size_t n = m->n;
    struct pair_list pairs = { 0 };
    int64_t *parent = malloc((n ? n : 1) * sizeof(*parent));
    unsigned char *linked = calloc(n ? n : 1, 1);
    int rc = SB_OK;
    if (!parent || !linked) {
        rc = sb_fail(err, SB_ENOMEM, "dupes: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        parent[i] = (int64_t)i;
    if (threshold < SEARCH_NEAR_BASE) {
        /* below the cached base: every pair, united as found */
        unsigned char *all = malloc(n ? n : 1);
        struct pair_sink sink = { NULL, parent, linked, mask };
        if (!all) {
            rc = sb_fail(err, SB_ENOMEM, "dupes: out of memory");
            goto out;
        }
        memset(all, 1, n ? n : 1);
        rc = fresh_pairs(m, all, threshold, &sink, pool, err);
        free(all);
    } else {
        rc = near_pairs(m, cache_path, version, SEARCH_NEAR_BASE, pool, &pairs, err);
    }
    if (rc)
        goto out;
    for (size_t i = 0; i < pairs.n; i++) {
        if (pairs.p[i].score < threshold)
            continue;
        int64_t a = search_find_row(m, pairs.p[i].a), b = search_find_row(m, pairs.p[i].b);
        if (a < 0 || b < 0 || (mask && (!mask[a] || !mask[b])))
            continue;
        unite(parent, a, b);
        linked[a] = linked[b] = 1;
    }
    for (size_t i = 0; i < n; i++)
        group[i] = linked[i] ? find_root(parent, (int64_t)i) : -1;
out:
    free(pairs.p);
    free(parent);
    free(linked);
    return rc;
}
