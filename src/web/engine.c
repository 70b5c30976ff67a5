/* engine.c - the read side shared by all request threads: pooled read-only catalog
 * connections, the text tower with pooled contexts, the vector store (reopened when a crawl
 * stored newer vectors), and search.
 *
 * The query path itself (term vectors, cutoffs, the cached present-photo mask) is the search
 * library's, shared with the CLI (src/search/run.c, vec_store_mask). */
#include "internal.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/model.h"
#include "shoebox/pool.h"
#include "shoebox/search.h"
#include "shoebox/util.h"

#include <cblas.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_TERMS = 64, MAX_RESULTS = 5000 };

/* ---- catalog connections ---------------------------------------------------------------- */

int web_cat_get(struct web_server *s, struct catalog **out, struct sb_err *err)
{
    struct catalog *cat = NULL;
    pthread_mutex_lock(&s->cat_mu);
    if (s->ncat_free > 0)
        cat = s->cat_free[--s->ncat_free];
    pthread_mutex_unlock(&s->cat_mu);
    if (!cat) {
        int rc = catalog_open(s->db_path, true, &cat, err);
        if (rc)
            return rc;
    }
    *out = cat;
    return SB_OK;
}

void web_cat_put(struct web_server *s, struct catalog *cat)
{
    if (!cat)
        return;
    pthread_mutex_lock(&s->cat_mu);
    if (s->ncat_free < WEB_POOL_MAX) {
        s->cat_free[s->ncat_free++] = cat;
        cat = NULL;
    }
    pthread_mutex_unlock(&s->cat_mu);
    catalog_close(cat);
}

/* ---- the text model ---------------------------------------------------------------------- */

static enum clip_precision web_clip_precision(const struct web_server *s)
{
    switch (s->p.precision) {
    case WEB_PRECISION_BF16:
        return CLIP_PRECISION_BF16;
    case WEB_PRECISION_AUTO:
        return CLIP_PRECISION_AUTO;
    default:
        return CLIP_PRECISION_FP32;
    }
}

/* Every model the server loads: its precision; OpenBLAS's thread count left alone. The server
 * shares products out over its own pools (the query team, a crawl's workers) and runs requests
 * side by side, so web_engine_init sets OpenBLAS to one thread once, before any request: the
 * count is a process-wide setting, and a load that changed it while another thread was inside
 * an OpenBLAS call would race with that call. */
struct clip_load_params web_load_params(const struct web_server *s)
{
    struct clip_load_params lp = clip_load_default_params();
    lp.precision = web_clip_precision(s);
    lp.blas_threads = 0;
    return lp;
}

static int load_text(struct web_server *s, const char *dir, struct clip_model **out,
                     struct sb_err *err)
{
    struct clip_load_params lp = web_load_params(s);
    lp.towers = CLIP_TOWER_TEXT;
    lp.fast_text = true; /* a server runs many queries */
    return clip_model_load(dir, &lp, out, err);
}

/* The text tower's context on the query team, made as soon as the model is there rather
 * than by the first query: a context on a pool makes OpenBLAS single-threaded process-wide
 * (one threading runtime, see clip_ctx_new), which should happen before serving, not in the
 * middle of another request's product. Best effort: a busy team leaves it to the first text
 * query. */
static void team_ctx_prepare(struct web_server *s, const struct clip_model *m)
{
    struct sb_pool *team = web_team_take(s);
    struct sb_err err;
    if (team && !s->team_ctx && clip_ctx_new(m, 1, team, &s->team_ctx, &err))
        SB_LOG_W("serve: text queries on one thread: %s", err.msg);
    web_team_give(s, team);
}

void web_model_name(struct web_server *s, char *buf, size_t cap)
{
    pthread_mutex_lock(&s->model_mu);
    snprintf(buf, cap, "%s", s->model_name);
    pthread_mutex_unlock(&s->model_mu);
}

void web_model_set(struct web_server *s, const char *dir, const char *name)
{
    pthread_mutex_lock(&s->model_mu);
    bool need_load = !s->text_model;
    snprintf(s->model_name, sizeof(s->model_name), "%s", name);
    snprintf(s->model_dir, sizeof(s->model_dir), "%s", dir);
    pthread_mutex_unlock(&s->model_mu);
    if (!need_load)
        return;
    struct clip_model *m = NULL;
    struct sb_err err;
    if (load_text(s, dir, &m, &err)) {
        SB_LOG_W("serve: text search unavailable: %s", err.msg);
        return;
    }
    pthread_mutex_lock(&s->model_mu);
    if (!s->text_model) {
        s->text_model = m;
        m = NULL;
    }
    const struct clip_model *live = s->text_model; /* never replaced once there */
    pthread_mutex_unlock(&s->model_mu);
    clip_model_free(m);
    team_ctx_prepare(s, live);
}

struct sb_pool *web_team_take(struct web_server *s)
{
    if (!s->team || atomic_load(&s->busy) > 1 || pthread_mutex_trylock(&s->team_mu) != 0)
        return NULL;
    return s->team;
}

void web_team_give(struct web_server *s, struct sb_pool *team)
{
    if (team)
        pthread_mutex_unlock(&s->team_mu);
}

int web_embed_text(struct web_server *s, const char *text, float *out, int dim, struct sb_err *err)
{
    pthread_mutex_lock(&s->model_mu);
    const struct clip_model *m = s->text_model; /* never replaced once there */
    pthread_mutex_unlock(&s->model_mu);
    if (!m)
        return sb_fail(err, SB_EMODEL,
                       "searching by text needs the model the photos were "
                       "indexed with (shoebox --model DIR serve)");
    if (clip_model_dim(m) != dim)
        return sb_fail(err, SB_EMODEL, "the model does not match the catalog's vectors");
    int rc = SB_OK;
    struct sb_pool *team = web_team_take(s);
    if (team) { /* the team's ctx: made when the model loaded, else here */
        if (!s->team_ctx)
            rc = clip_ctx_new(m, 1, team, &s->team_ctx, err);
        if (!rc)
            rc = clip_embed_text(s->team_ctx, text, out, NULL, NULL, err);
        web_team_give(s, team);
        return rc;
    }
    struct clip_ctx *c = NULL;
    pthread_mutex_lock(&s->model_mu);
    if (s->nctx_free > 0)
        c = s->ctx_free[--s->nctx_free];
    pthread_mutex_unlock(&s->model_mu);
    if (!c)
        rc = clip_ctx_new(m, 1, NULL, &c, err);
    if (!rc)
        rc = clip_embed_text(c, text, out, NULL, NULL, err);
    if (c) {
        pthread_mutex_lock(&s->model_mu);
        if (s->nctx_free < WEB_POOL_MAX) {
            s->ctx_free[s->nctx_free++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&s->model_mu);
        clip_ctx_free(c);
    }
    return rc;
}

static int embed_text_cb(void *user, const char *text, float *out, int dim, struct sb_err *err)
{
    return web_embed_text(user, text, out, dim, err);
}

/* ---- the vector store ------------------------------------------------------------------ */

static void store_unref_locked(struct web_store *st, struct web_store **dead)
{
    *dead = NULL;
    if (st && --st->refs == 0)
        *dead = st;
}

static void store_free(struct web_store *st)
{
    if (!st)
        return;
    vec_store_close(st->vs);
    free(st);
}

void web_store_put(struct web_server *s, struct web_store *st)
{
    struct web_store *dead;
    pthread_mutex_lock(&s->store_mu);
    store_unref_locked(st, &dead);
    pthread_mutex_unlock(&s->store_mu);
    store_free(dead);
}

void web_store_poke(struct web_server *s)
{
    pthread_mutex_lock(&s->store_mu);
    s->store_checked = 0;
    pthread_mutex_unlock(&s->store_mu);
}

int web_store_get(struct web_server *s, struct catalog *cat, struct web_store **out,
                  struct sb_err *err)
{
    double now = sb_now();
    pthread_mutex_lock(&s->store_mu);
    struct web_store *cur = s->store;
    if (cur)
        cur->refs++;
    bool check = now - s->store_checked >= 1.0;
    if (check)
        s->store_checked = now;
    pthread_mutex_unlock(&s->store_mu);
    if (!check || (cur && !vec_store_stale(cur->vs, cat))) {
        *out = cur;
        return SB_OK;
    }
    char name[256];
    web_model_name(s, name, sizeof(name));
    if (!name[0]) {
        *out = cur;
        return SB_OK;
    }
    /* stale or absent: one thread rebuilds, the others keep using what they have */
    if (pthread_mutex_trylock(&s->store_reopen_mu) != 0) {
        *out = cur;
        return SB_OK;
    }
    struct web_store *fresh = calloc(1, sizeof(*fresh));
    int rc = fresh ? vec_store_open(cat, name, s->cache_dir, &fresh->vs, err)
                   : sb_fail(err, SB_ENOMEM, "out of memory");
    /* the server holds the store for many queries: in huge pages, whatever the page cache
     * holds (without the memory, the mapped file serves as the CLI's does) */
    struct sb_err rerr;
    if (rc == SB_OK && vec_store_resident(fresh->vs, &rerr))
        SB_LOG_W("serve: %s; searching the mapped file", rerr.msg);
    pthread_mutex_unlock(&s->store_reopen_mu);
    if (rc) {
        free(fresh);
        if (rc == SB_ENOENT) { /* no vectors yet */
            *out = cur;
            return SB_OK;
        }
        web_store_put(s, cur);
        return rc;
    }
    struct web_store *dead_old, *dead_cur;
    fresh->refs = 2; /* the server's and ours */
    pthread_mutex_lock(&s->store_mu);
    struct web_store *old = s->store;
    s->store = fresh;
    store_unref_locked(old, &dead_old);
    store_unref_locked(cur, &dead_cur);
    pthread_mutex_unlock(&s->store_mu);
    store_free(dead_old);
    if (dead_cur != dead_old)
        store_free(dead_cur);
    SB_LOG_I("serve: vector store reopened: %zu vectors", vec_store_matrix(fresh->vs)->n);
    *out = fresh;
    return SB_OK;
}

/* ---- set-up ------------------------------------------------------------------------------ */

int web_engine_init(struct web_server *s, struct sb_err *err)
{
    /* once, before any request and whether or not a model is set (see web_load_params); a
     * near-duplicate pass would otherwise find OpenBLAS at its default and switch it */
    openblas_set_num_threads(1);
    struct catalog *cat = NULL;
    int rc = catalog_open(s->db_path, false, &cat, err); /* creates and migrates */
    if (rc)
        return rc;
    char dir[PATH_MAX] = "", name[256] = "";
    if (catalog_setting_get(cat, "model_dir", dir, sizeof(dir), NULL))
        dir[0] = '\0';
    if (catalog_setting_get(cat, "model_name", name, sizeof(name), NULL))
        name[0] = '\0';
    catalog_close(cat);
    if (sb_cpu_count() > 1) {
        rc = sb_pool_new(sb_cpu_count() - 1, &s->team, err);
        if (rc)
            return rc;
    }
    search_cache_dir(s->db_path, s->cache_dir, sizeof(s->cache_dir));
    if (s->model_dir_arg)
        snprintf(dir, sizeof(dir), "%s", s->model_dir_arg);
    snprintf(s->model_dir, sizeof(s->model_dir), "%s", dir);
    snprintf(s->model_name, sizeof(s->model_name), "%s", name);
    if (dir[0]) {
        struct sb_err lerr;
        rc = load_text(s, dir, &s->text_model, &lerr);
        if (rc && s->model_dir_arg)
            return sb_fail(err, rc, "model '%s': %s", dir, lerr.msg);
        if (rc)
            SB_LOG_W("serve: text search unavailable: model '%s': %s", dir, lerr.msg);
        else {
            snprintf(s->model_name, sizeof(s->model_name), "%s", clip_model_id(s->text_model));
            team_ctx_prepare(s, s->text_model);
        }
    }
    return SB_OK;
}

void web_engine_release(struct web_server *s)
{
    for (int i = 0; i < s->ncat_free; i++)
        catalog_close(s->cat_free[i]);
    s->ncat_free = 0;
    for (int i = 0; i < s->nctx_free; i++)
        clip_ctx_free(s->ctx_free[i]);
    s->nctx_free = 0;
    clip_ctx_free(s->team_ctx);
    s->team_ctx = NULL;
    sb_pool_free(s->team);
    s->team = NULL;
    clip_model_free(s->text_model);
    s->text_model = NULL;
    if (s->store) {
        store_free(s->store);
        s->store = NULL;
    }
}

/* ---- search ------------------------------------------------------------------------------ */

static bool no_file(const char *path)
{
    (void)path; /* a query from the network never names a server file */
    return false;
}

static int build_mask(struct catalog *cat, struct vec_store *vs, const struct catalog_filter *f,
                      int64_t exclude, unsigned char **out, struct sb_err *err)
{
    /* always filtered: only photos with a present file are answers */
    int rc = vec_store_mask(vs, cat, f, out, err);
    if (!rc && exclude) {
        int64_t row = search_find_row(vec_store_matrix(vs), exclude);
        if (row >= 0)
            (*out)[row] = 0;
    }
    return rc;
}

/* words (may be NULL): the query's text, for hybrid ranking with the photos' texts and tags
 * (search_hybrid; the scan then goes deeper so that a text match can lift a photo). */
static int scan(struct web_server *s, struct catalog *cat, struct vec_store *vs, const float *qv,
                const struct catalog_filter *f, int64_t exclude, float min_score, size_t offset,
                size_t n, const char *words, struct web_hit **hits, size_t *nhits,
                struct sb_err *err)
{
    unsigned char *mask = NULL;
    struct search_hit *h = NULL, *hy = NULL;
    struct web_hit *res = NULL;
    size_t k = offset + n, deep = words ? k + 100 : k, nh = 0;
    const struct vec_matrix *m = vec_store_matrix(vs);
    int rc = build_mask(cat, vs, f, exclude, &mask, err);
    if (rc)
        goto out;
    h = malloc(deep * sizeof(*h));
    res = malloc((n ? n : 1) * sizeof(*res));
    if (!h || !res) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
        goto out;
    }
    struct sb_pool *team = web_team_take(s);
    rc = search_topk(m, qv, mask, min_score, deep, team, h, &nh, err);
    web_team_give(s, team);
    if (!rc && words) {
        size_t nhy = 0;
        rc = search_hybrid(cat, f, m, mask, qv, words, h, nh, k, &hy, &nhy, err);
        if (!rc) {
            free(h);
            h = hy;
            hy = NULL;
            nh = nhy;
        }
    }
    if (rc)
        goto out;
    size_t count = 0;
    for (size_t i = offset; i < nh; i++)
        res[count++] = (struct web_hit){ h[i].photo_id, h[i].score };
    *hits = res;
    *nhits = count;
    res = NULL;
out:
    free(res);
    free(h);
    free(hy);
    free(mask);
    return rc;
}

int web_search(struct web_server *s, struct catalog *cat, struct web_query *q,
               struct web_hit **hits, size_t *nhits, float *min_score_used, struct sb_err *err)
{
    char *buf = NULL;
    char *argv[MAX_TERMS];
    int argc = 0;
    struct search_term *terms = NULL;
    size_t nterms = 0;
    struct web_store *st = NULL;
    float *qv = NULL;
    char *words = NULL;
    int rc = SB_OK;
    *min_score_used = (float)NAN;
    if (q->n == 0 || q->n > MAX_RESULTS || q->offset > MAX_RESULTS)
        return sb_fail(err, SB_EINVAL, "n and offset must be in 1..%d", MAX_RESULTS);
    buf = sb_strdup(q->q ? q->q : "");
    if (!buf)
        return sb_fail(err, SB_ENOMEM, "out of memory");
    rc = search_split_query(buf, argv, MAX_TERMS, &argc, err);
    if (!rc)
        rc = search_parse_terms(argc, argv, no_file, &terms, &nterms, err);
    if (rc) {
        rc = SB_EINVAL;
        goto out;
    }
    if (nterms == 0) {
        /* filters only: newest first */
        int64_t *ids = NULL;
        size_t n = 0;
        rc = catalog_photos_by_date(cat, &q->filter, q->offset, q->n, &ids, &n, err);
        if (rc)
            goto out;
        struct web_hit *res = malloc((n ? n : 1) * sizeof(*res));
        if (!res) {
            free(ids);
            rc = sb_fail(err, SB_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            res[i] = (struct web_hit){ ids[i], (float)NAN };
        free(ids);
        *hits = res;
        *nhits = n;
        goto out;
    }
    bool any_text = false;
    for (size_t i = 0; i < nterms; i++)
        any_text |= terms[i].kind == SEARCH_TERM_TEXT;
    float min_score = q->min_score_set ? q->min_score : search_default_min_score(terms, nterms);
    *min_score_used = min_score;
    rc = web_store_get(s, cat, &st, err);
    if (rc)
        goto out;
    if (!st) {
        rc = sb_fail(err, SB_ENOENT, "no photo has been embedded yet");
        goto out;
    }
    if (!q->min_score_set && any_text) { /* SigLIP: the cosine where probability is 0.1 */
        pthread_mutex_lock(&s->model_mu);
        if (s->text_model)
            min_score = clip_model_text_min_score(s->text_model);
        pthread_mutex_unlock(&s->model_mu);
        *min_score_used = min_score;
    }
    const struct vec_matrix *m = vec_store_matrix(st->vs);
    qv = malloc((size_t)m->dim * sizeof(float));
    if (!qv) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
        goto out;
    }
    /* no image files from the network: only id:N and text terms */
    struct search_embed emb = { s, embed_text_cb, NULL };
    rc = search_query_vector(NULL, m, terms, nterms, &emb, qv, err);
    if (rc) {
        if (rc != SB_EMODEL && rc != SB_ENOMEM)
            rc = SB_EINVAL;
        goto out;
    }
    words = search_query_words(terms, nterms);
    rc = scan(s, cat, st->vs, qv, &q->filter, q->exclude, min_score, q->offset, q->n, words, hits,
              nhits, err);
out:
    free(words);
    web_store_put(s, st);
    free(qv);
    search_terms_free(terms, nterms);
    free(buf);
    return rc;
}

int web_similar(struct web_server *s, struct catalog *cat, int64_t id, size_t n, float min_score,
                struct web_hit **hits, size_t *nhits, struct sb_err *err)
{
    struct web_store *st = NULL;
    float *qv = NULL;
    int rc = web_store_get(s, cat, &st, err);
    if (rc)
        return rc;
    if (!st) {
        rc = sb_fail(err, SB_ENOENT, "no photo has been embedded yet");
        goto out;
    }
    const struct vec_matrix *m = vec_store_matrix(st->vs);
    int64_t row = search_find_row(m, id);
    if (row < 0) {
        rc = sb_fail(err, SB_ENOENT, "photo %lld has no vector yet", (long long)id);
        goto out;
    }
    qv = malloc((size_t)m->dim * sizeof(float));
    if (!qv) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
        goto out;
    }
    search_row(m, (size_t)row, qv);
    rc = scan(s, cat, st->vs, qv, NULL, id, min_score, 0, n, NULL, hits, nhits, err);
out:
    free(qv);
    web_store_put(s, st);
    return rc;
}
