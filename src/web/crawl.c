/* crawl.c - "crawl this folder" from the UI: crawl_index() in a thread of its own with its own
 * read-write catalog connection, its own worker pool and the vision tower (loaded for the run
 * and freed after it). The progress callback copies counters into web_server.crawl (under
 * crawl_mu) for /api/status; stop_requested lets shutdown (or POST /api/index/stop) end it. */
#include "internal.h"

#include "shoebox/catalog.h"
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/model.h"
#include "shoebox/pool.h"
#include "shoebox/progress.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The vision tower as the crawler's embedder, with the server's precision, its products shared
 * out over the crawl's own pool as `shoebox index` does (the shared adapter:
 * src/crawl/clip_embedder.c). OpenBLAS stays at one thread: see web_load_params(). */
static int embedder_open(struct web_server *s, const char *dir, struct sb_pool *pool,
                         struct crawl_clip_embedder *e, struct sb_err *err)
{
    struct clip_load_params lp = web_load_params(s);
    lp.towers = CLIP_TOWER_VISION;
    return crawl_clip_embedder_open(dir, &lp, pool, e, err);
}

/* ---- progress ---------------------------------------------------------------------------- */

static void on_progress(void *user, const char *stage, int64_t done, int64_t total)
{
    struct web_server *s = user;
    double now = sb_now();
    bool embedding = false;
    pthread_mutex_lock(&s->crawl_mu);
    struct web_crawl *c = &s->crawl;
    if (strcmp(c->stage, stage) != 0) {
        snprintf(c->stage, sizeof(c->stage), "%s", stage);
        c->stage_started = now;
        c->stage_done0 = done;
        c->rate = 0;
    }
    c->done = done;
    c->total = total;
    double dt = now - c->stage_started;
    if (dt > 0.5)
        c->rate = (double)(done - c->stage_done0) / dt;
    c->eta = total > done && c->rate > 0 ? (double)(total - done) / c->rate : -1;
    embedding = strcmp(stage, "index") == 0;
    pthread_mutex_unlock(&s->crawl_mu);
    if (embedding)
        web_store_poke(s); /* new vectors may be in: let the next search look */
}

static bool on_stop(void *user)
{
    struct web_server *s = user;
    pthread_mutex_lock(&s->crawl_mu);
    bool stop = s->crawl.stop;
    pthread_mutex_unlock(&s->crawl_mu);
    return stop;
}

/* ---- the thread -------------------------------------------------------------------------- */

static void *crawl_main(void *arg)
{
    struct web_server *s = arg;
    struct catalog *cat = NULL;
    struct sb_pool *pool = NULL;
    struct crawl_clip_embedder emb;
    bool have_emb = false;
    struct crawl_stats st;
    struct sb_err err;
    char root[PATH_MAX], dir[PATH_MAX];
    memset(&st, 0, sizeof(st));
    sb_err_clear(&err);
    pthread_mutex_lock(&s->crawl_mu);
    snprintf(root, sizeof(root), "%s", s->crawl.root);
    pthread_mutex_unlock(&s->crawl_mu);
    pthread_mutex_lock(&s->model_mu);
    snprintf(dir, sizeof(dir), "%s", s->model_dir);
    pthread_mutex_unlock(&s->model_mu);

    int rc = catalog_open(s->db_path, false, &cat, &err);
    if (!rc)
        rc = sb_pool_new(s->p.crawl_threads, &pool, &err);
    if (!rc && dir[0]) {
        rc = embedder_open(s, dir, pool, &emb, &err);
        have_emb = rc == SB_OK;
    }
    if (!rc && have_emb) {
        /* remember the model, as `shoebox index` does, so search finds it */
        rc = catalog_begin(cat, &err);
        if (!rc)
            rc = catalog_setting_set(cat, "model_dir", dir, &err);
        if (!rc)
            rc = catalog_setting_set(cat, "model_name", emb.crawl.model_name, &err);
        if (!rc)
            rc = catalog_commit(cat, &err);
        else
            catalog_rollback(cat);
        if (!rc)
            web_model_set(s, dir, emb.crawl.model_name);
    }
    if (!rc) {
        struct crawl_params p = crawl_default_params();
        const char *roots[1] = { root };
        struct sb_progress prog = { on_progress, on_stop, s };
        p.roots = roots;
        p.nroots = 1;
        p.pool = pool;
        p.progress = &prog;
        p.embedder = have_emb ? &emb.crawl : NULL;
        rc = crawl_index(cat, &p, &st, &err);
    }
    if (rc && rc != SB_ECANCELED)
        SB_LOG_W("serve: crawl of '%s': %s", root, err.msg);
    if (have_emb)
        crawl_clip_embedder_close(&emb);
    sb_pool_free(pool);
    catalog_close(cat);
    web_store_poke(s);
    pthread_mutex_lock(&s->crawl_mu);
    s->crawl.running = false;
    s->crawl.finished = sb_now();
    s->crawl.stats = st;
    s->crawl.eta = -1;
    snprintf(s->crawl.result, sizeof(s->crawl.result), "%s",
             rc == SB_OK          ? "ok"
             : rc == SB_ECANCELED ? "stopped"
                                  : "error");
    /* the user typed the folder: telling what went wrong with it is fine, but no more than
     * the code's text for catalog or model failures */
    if (rc == SB_ENOENT || rc == SB_EACCES)
        snprintf(s->crawl.error, sizeof(s->crawl.error), "%s", err.msg);
    else if (rc && rc != SB_ECANCELED)
        snprintf(s->crawl.error, sizeof(s->crawl.error), "%s", sb_code_str(rc));
    pthread_mutex_unlock(&s->crawl_mu);
    return NULL;
}

int web_crawl_start(struct web_server *s, const char *root, struct sb_err *err)
{
    web_crawl_join(s, false); /* reap a finished run */
    pthread_mutex_lock(&s->crawl_mu);
    if (s->crawl.running || s->crawl_thread_live) {
        pthread_mutex_unlock(&s->crawl_mu);
        return sb_fail(err, SB_EINVAL, "a crawl is running already");
    }
    struct web_crawl *c = &s->crawl;
    int64_t runs = c->runs;
    memset(c, 0, sizeof(*c));
    c->runs = runs + 1;
    c->running = true;
    c->started = sb_now();
    c->stage_started = c->started;
    c->eta = -1;
    snprintf(c->root, sizeof(c->root), "%s", root);
    snprintf(c->stage, sizeof(c->stage), "start");
    int e = pthread_create(&s->crawl_thread, NULL, crawl_main, s);
    if (e) {
        c->running = false;
        pthread_mutex_unlock(&s->crawl_mu);
        return sb_fail(err, SB_EINTERNAL, "cannot start the crawl thread");
    }
    s->crawl_thread_live = true;
    pthread_mutex_unlock(&s->crawl_mu);
    return SB_OK;
}

void web_crawl_request_stop(struct web_server *s)
{
    pthread_mutex_lock(&s->crawl_mu);
    if (s->crawl.running)
        s->crawl.stop = true;
    pthread_mutex_unlock(&s->crawl_mu);
}

void web_crawl_join(struct web_server *s, bool stop)
{
    pthread_mutex_lock(&s->crawl_mu);
    if (stop && s->crawl.running)
        s->crawl.stop = true;
    bool join = s->crawl_thread_live && (stop || !s->crawl.running);
    pthread_t t = s->crawl_thread;
    if (join)
        s->crawl_thread_live = false;
    pthread_mutex_unlock(&s->crawl_mu);
    if (join)
        pthread_join(t, NULL);
}

void web_crawl_json(struct web_server *s, cJSON *o)
{
    pthread_mutex_lock(&s->crawl_mu);
    struct web_crawl c = s->crawl;
    pthread_mutex_unlock(&s->crawl_mu);
    double now = sb_now();
    cJSON_AddBoolToObject(o, "running", c.running);
    cJSON_AddNumberToObject(o, "runs", (double)c.runs);
    if (!c.runs)
        return;
    char *root = sb_utf8_clean(c.root);
    cJSON_AddStringToObject(o, "root", root ? root : "");
    free(root);
    cJSON_AddStringToObject(o, "stage", c.stage);
    cJSON_AddNumberToObject(o, "done", (double)c.done);
    cJSON_AddNumberToObject(o, "total", (double)c.total);
    cJSON_AddNumberToObject(o, "rate", round(c.rate * 10) / 10);
    if (c.eta >= 0)
        cJSON_AddNumberToObject(o, "eta_s", round(c.eta));
    else
        cJSON_AddNullToObject(o, "eta_s");
    cJSON_AddNumberToObject(o, "elapsed_s",
                            round(((c.running ? now : c.finished) - c.started) * 10) / 10);
    if (!c.running) {
        cJSON_AddStringToObject(o, "result", c.result);
        if (c.error[0]) {
            char *e = sb_utf8_clean(c.error);
            cJSON_AddStringToObject(o, "error", e ? e : "error");
            free(e);
        }
        cJSON *st = cJSON_AddObjectToObject(o, "stats");
        cJSON_AddNumberToObject(st, "seen", (double)c.stats.seen);
        cJSON_AddNumberToObject(st, "new_photos", (double)c.stats.new_photos);
        cJSON_AddNumberToObject(st, "processed", (double)c.stats.processed);
        cJSON_AddNumberToObject(st, "embedded", (double)c.stats.embedded);
        cJSON_AddNumberToObject(st, "failed", (double)c.stats.failed);
        cJSON_AddNumberToObject(st, "ignored", (double)c.stats.ignored);
    }
}
