/* caption_setup.c - the captions stage of `index` and the model loading of `shoebox caption`
 * (see caption_setup.h). The stage is a crawl plugin "caption:<model id>": the crawler runs it
 * after the embeddings (plugins come last), in two phases. run(), on pool workers: each worker
 * puts its photo through the vision tower alone with its own vlm_ctx (OpenBLAS single-threaded,
 * so workers x BLAS threads <= cores); the result is the photo's image rows. finish(), once per
 * work batch: each pool worker takes every W-th photo of the batch (W workers) and captions
 * them CAPTION_BATCH at a time on decoder slots of its own (vlm_caption_step: each decode step
 * reads the decoder's weights once for all of them, where one caption at a time is bound by
 * reading them once per token); a finished caption's slot takes the next photo at once.
 * Workers decode side by side rather than splitting each step over the pool: no hand-off per
 * product, and a worker the OS puts aside holds no one up (on the shared dev box the split
 * steps kept ~1 of 2 cores busy). The captions are exactly those of one photo at a time, and
 * each is stored in the batch transaction that marks its job done (or failed, with that
 * photo's error). In bf16 (--precision) each worker's vision tower runs on a oneDNN team of
 * its own: more threads than cores, yet two such captioners side by side encoded in 5.2 s
 * against 8.3 s in fp32 (SmolVLM-256M shapes, 2 vCPUs). */
#include "caption_setup.h"
#include "embedder.h"

#include "shoebox/catalog.h"
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"
#include "shoebox/vlm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_caption_load(const struct cli_ctx *ctx, const char *dir, int n_threads, bool split_image,
                     struct vlm_model **out)
{
    struct sb_err err = { 0 };
    struct vlm_load_params lp = vlm_load_default_params();
    lp.precision = cli_clip_precision(ctx);
    lp.split_image = split_image;
    lp.blas_threads = n_threads > 1 ? 1 : 0;
    if (vlm_model_load(dir, &lp, out, &err)) {
        cli_error("%s", err.msg);
        return err.code == SB_ENOENT ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

int cli_caption_option(struct cli_caption *o, int argc, char **argv, int *i)
{
    const char *v;
    if (strcmp(argv[*i], "--captions") == 0) {
        o->want = 1;
    } else if (strcmp(argv[*i], "--no-captions") == 0) {
        o->want = 0;
    } else if (strcmp(argv[*i], "--caption-tiles") == 0) {
        o->tiles = 1;
    } else if (strcmp(argv[*i], "--no-caption-tiles") == 0) {
        o->tiles = 0;
    } else if ((v = cli_flag_value(argc, argv, i, "--caption-model"))) {
        if (!*v)
            return -1;
        o->model_dir = v;
    } else {
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* The crawl plugin */

/* A photo between the phases: its image rows, then its caption. */
struct cap_result {
    struct vlm_image *im;
    char *text;
};

static void plugin_free(void *user, void *result)
{
    struct cap_result *r = result;
    (void)user;
    if (!r)
        return;
    vlm_image_free(r->im);
    free(r->text);
    free(r);
}

static int plugin_run(void *user, int worker, const struct image *rgb, const char *path,
                      void **result, struct sb_err *err)
{
    struct cli_caption *o = user;
    (void)path;
    if (worker < 0 || worker >= o->n_ctxs)
        return sb_fail(err, SB_EINTERNAL, "caption: worker %d out of range", worker);
    if (!o->ctxs[worker]) {
        int rc = vlm_ctx_new(o->m, NULL, &o->ctxs[worker], err);
        if (rc)
            return rc;
    }
    struct cap_result *r = calloc(1, sizeof(*r));
    if (!r)
        return sb_fail(err, SB_ENOMEM, "no memory for a caption");
    int rc = vlm_encode(o->ctxs[worker], rgb, &r->im, err);
    if (rc) {
        free(r);
        return rc;
    }
    *result = r;
    return SB_OK;
}

/* One pool worker's decoder slots (plugin_finish): contexts of their own, no pool. */
struct cli_caption_group {
    struct vlm_ctx *dec[CAPTION_BATCH];
    int slot_photo[CAPTION_BATCH]; /* the photo in each slot, or -1 */
    int slots;                     /* in use: cli_caption_slots() */
};

struct finish_job {
    struct cli_caption *o;
    int n;
    void **results;
    int *rcs;
    struct sb_err *errs;
    struct vlm_params p;
};

/* Slot k's caption done: its text into its photo's result (or the photo's error). */
static void slot_finish(const struct finish_job *j, struct cli_caption_group *g, int k)
{
    int i = g->slot_photo[k];
    struct cap_result *r = j->results[i];
    int32_t ids[VLM_MAX_NEW_TOKENS];
    int n = 0;
    struct sb_buf text;
    sb_buf_init(&text);
    j->rcs[i] = vlm_caption_finish(g->dec[k], ids, &n, &text, &j->errs[i]);
    if (!j->rcs[i]) {
        r->text = text.data ? text.data : sb_strdup("");
        if (!r->text)
            j->rcs[i] = sb_fail(&j->errs[i], SB_ENOMEM, "no memory for a caption");
    } else {
        sb_buf_release(&text);
    }
    g->slot_photo[k] = -1;
}

int cli_caption_slots(const struct vlm_model *m, int max_new_tokens, int users)
{
    /* half of what the system has free, shared by the users (the model's weights are already
     * mapped; the rest is the system's) */
    uint64_t avail = sb_mem_available();
    if (avail == 0)
        return CAPTION_BATCH;
    uint64_t budget = avail / 2 / (uint64_t)(users > 0 ? users : 1);
    if (budget > SIZE_MAX)
        budget = SIZE_MAX;
    return vlm_batch_slots(
        m, max_new_tokens > 0 ? max_new_tokens : vlm_default_params().max_new_tokens,
        (size_t)budget, CAPTION_BATCH);
}

int cli_caption_step(struct vlm_ctx *const *dec, const int *item, int n, int *ended, int *n_ended,
                     int *n_live, struct sb_err *err)
{
    struct vlm_ctx *live[CAPTION_BATCH];
    int at[CAPTION_BATCH], nl = 0;
    for (int k = 0; k < n && nl < CAPTION_BATCH; k++)
        if (item[k] >= 0) {
            at[nl] = k;
            live[nl++] = dec[k];
        }
    *n_live = nl;
    *n_ended = 0;
    if (nl == 0)
        return SB_OK;
    int rc = vlm_caption_step(live, nl, err);
    for (int s = 0; s < nl; s++)
        if (rc || vlm_caption_done(live[s]))
            ended[(*n_ended)++] = at[s];
    return rc;
}

/* Group gi captions photos gi, gi + G, gi + 2G, ... of the batch: free slots take the next
 * photo (prefill and first token), then one decode step for every slot in use, until done. */
static void finish_group(const struct finish_job *j, int gi)
{
    struct cli_caption *o = j->o;
    struct cli_caption_group *g = &o->groups[gi];
    for (int k = 0; k < CAPTION_BATCH; k++)
        g->slot_photo[k] = -1;
    int next = gi;
    for (;;) {
        for (int k = 0; k < g->slots && next < j->n; k++) {
            while (g->slot_photo[k] < 0 && next < j->n) {
                int i = next;
                next += o->n_groups;
                struct cap_result *r = j->results[i];
                j->rcs[i] = g->dec[k] ? SB_OK : vlm_ctx_new(o->m, NULL, &g->dec[k], &j->errs[i]);
                if (!j->rcs[i])
                    j->rcs[i] = vlm_caption_start(g->dec[k], r->im, &j->p, &j->errs[i]);
                vlm_image_free(r->im);
                r->im = NULL;
                if (j->rcs[i])
                    continue;
                g->slot_photo[k] = i;
                if (vlm_caption_done(g->dec[k])) /* a one-token caption */
                    slot_finish(j, g, k);
            }
        }
        int ended[CAPTION_BATCH], ne, nl;
        struct sb_err e = { 0 };
        int rc = cli_caption_step(g->dec, g->slot_photo, g->slots, ended, &ne, &nl, &e);
        if (nl == 0)
            break;
        for (int s = 0; s < ne; s++) {
            int k = ended[s];
            if (rc) { /* our bug: fail these photos, keep the others */
                j->rcs[g->slot_photo[k]] = rc;
                j->errs[g->slot_photo[k]] = e;
                g->slot_photo[k] = -1;
            } else {
                slot_finish(j, g, k);
            }
        }
    }
}

static void finish_task(void *arg, size_t begin, size_t end, int worker)
{
    (void)worker;
    for (size_t gi = begin; gi < end; gi++)
        finish_group(arg, (int)gi);
}

static void plugin_finish(void *user, int n, void **results, int *rcs, struct sb_err *errs)
{
    struct cli_caption *o = user;
    struct finish_job j = { o, n, results, rcs, errs, vlm_default_params() };
    if (o->max_new_tokens > 0)
        j.p.max_new_tokens = o->max_new_tokens;
    sb_pool_for(o->pool, (size_t)o->n_groups, 1, finish_task, &j);
}

static int plugin_store(void *user, struct catalog *cat, int64_t photo_id, void *result,
                        const float *embedding, int dim, struct sb_err *err)
{
    struct cli_caption *o = user;
    struct cap_result *r = result;
    (void)embedding;
    (void)dim;
    if (!r->text) /* finish() gives every photo a text or an error */
        return sb_fail(err, SB_EINTERNAL, "caption: no caption made");
    o->captioned++;
    return catalog_text_set(cat, photo_id, CATALOG_TEXT_CAPTION, r->text, (double)NAN,
                            vlm_model_id(o->m), err);
}

int cli_caption_setup(struct cli_caption *o, struct cli_ctx *ctx, struct catalog *cat,
                      struct crawl_plugin *pl, bool *enabled)
{
    struct sb_err err;
    char want[8];
    *enabled = false;
    if (o->want < 0)
        o->want = catalog_setting_get(cat, "captions", want, sizeof(want), NULL) == SB_OK &&
                  strcmp(want, "1") == 0;
    if (o->tiles < 0)
        o->tiles = catalog_setting_get(cat, "caption_tiles", want, sizeof(want), NULL) == SB_OK &&
                   strcmp(want, "1") == 0;
    if (!o->model_dir &&
        catalog_setting_get(cat, "caption_model", o->dir_buf, sizeof(o->dir_buf), NULL) == SB_OK &&
        o->dir_buf[0])
        o->model_dir = o->dir_buf;
    if (o->want && !o->model_dir) {
        cli_error(
            "index --captions needs --caption-model DIR (a LLaVA, SmolVLM or Moondream 2 folder)");
        return CLI_EXIT_USAGE;
    }
    char *real = NULL;
    if (o->want) {
        struct sb_pool *pool = cli_pool(ctx);
        int workers = pool ? sb_pool_size(pool) + 1 : 1;
        o->pool = pool;
        int rc = cli_caption_load(ctx, o->model_dir, workers, o->tiles == 1, &o->m);
        if (rc)
            return rc;
        o->n_ctxs = workers + 1;
        o->ctxs = calloc((size_t)o->n_ctxs, sizeof(*o->ctxs));
        o->n_groups = workers;
        o->groups = calloc((size_t)o->n_groups, sizeof(*o->groups));
        if (!o->ctxs || !o->groups) {
            cli_error("out of memory");
            return CLI_EXIT_FAIL;
        }
        int slots = cli_caption_slots(o->m, o->max_new_tokens, o->n_groups);
        for (int g = 0; g < o->n_groups; g++)
            o->groups[g].slots = slots;
        snprintf(o->stage, sizeof(o->stage), "caption:%s", vlm_model_id(o->m));
        int min_long = 0, min_short = 0;
        vlm_model_min_decode(o->m, &min_long, &min_short);
        *pl = (struct crawl_plugin){ .stage = o->stage,
                                     .needs_pixels = true,
                                     .min_long = min_long,
                                     .min_short = min_short,
                                     .user = o,
                                     .run = plugin_run,
                                     .store = plugin_store,
                                     .free_result = plugin_free,
                                     .finish = plugin_finish };
        *enabled = true;
        real = realpath(o->model_dir, NULL);
    }
    /* remembered only once the model loads: a wrong folder is not saved */
    if (catalog_begin(cat, &err) ||
        catalog_setting_set(cat, "captions", o->want ? "1" : "0", &err) ||
        catalog_setting_set(cat, "caption_tiles", o->tiles == 1 ? "1" : "0", &err) ||
        (o->want && catalog_setting_set(cat, "caption_model", real ? real : o->model_dir, &err)) ||
        catalog_commit(cat, &err)) {
        catalog_rollback(cat);
        free(real);
        cli_error("%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    free(real);
    return CLI_EXIT_OK;
}

void cli_caption_report(const struct cli_caption *o, double secs)
{
    if (!o->m || o->captioned == 0)
        return;
    fprintf(stderr, "captions (%s): %lld photos, %.2f s per photo overall\n", vlm_model_id(o->m),
            (long long)o->captioned, secs / (double)o->captioned);
}

void cli_caption_release(struct cli_caption *o)
{
    for (int i = 0; i < o->n_ctxs; i++)
        vlm_ctx_free(o->ctxs[i]);
    for (int g = 0; g < o->n_groups; g++)
        for (int k = 0; k < CAPTION_BATCH; k++)
            vlm_ctx_free(o->groups[g].dec[k]);
    free(o->groups);
    o->groups = NULL;
    o->n_groups = 0;
    free(o->ctxs);
    o->ctxs = NULL;
    o->n_ctxs = 0;
    vlm_model_free(o->m);
    o->m = NULL;
}
