/* caption_setup.c - the captions stage of `index` and the model loading of `shoebox caption`
 * (see caption_setup.h). The stage is a crawl plugin "caption:<model id>": the crawler runs it
 * after the embeddings (plugins come last), on pool workers; each worker captions its photo
 * alone with its own vlm_ctx (OpenBLAS single-threaded), so workers x BLAS threads <= cores,
 * and the caption is stored in the batch transaction that marks the job done. In bf16
 * (--precision) each worker's vision tower runs on a oneDNN team of its own: more threads than
 * cores, yet two such captioners side by side encoded in 5.2 s against 8.3 s in fp32
 * (SmolVLM-256M shapes, 2 vCPUs). */
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
    struct vlm_params p = vlm_default_params();
    if (o->max_new_tokens > 0)
        p.max_new_tokens = o->max_new_tokens;
    int32_t ids[VLM_MAX_NEW_TOKENS];
    int n = 0;
    struct sb_buf text;
    sb_buf_init(&text);
    int rc = vlm_caption(o->ctxs[worker], rgb, &p, ids, &n, &text, err);
    if (rc) {
        sb_buf_release(&text);
        return rc;
    }
    *result = text.data ? text.data : sb_strdup("");
    return *result ? SB_OK : sb_fail(err, SB_ENOMEM, "no memory for a caption");
}

static int plugin_store(void *user, struct catalog *cat, int64_t photo_id, void *result,
                        const float *embedding, int dim, struct sb_err *err)
{
    struct cli_caption *o = user;
    (void)embedding;
    (void)dim;
    o->captioned++;
    return catalog_text_set(cat, photo_id, CATALOG_TEXT_CAPTION, result, (double)NAN,
                            vlm_model_id(o->m), err);
}

static void plugin_free(void *user, void *result)
{
    (void)user;
    free(result);
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
        int rc = cli_caption_load(ctx, o->model_dir, workers, o->tiles == 1, &o->m);
        if (rc)
            return rc;
        o->n_ctxs = workers + 1;
        o->ctxs = calloc((size_t)o->n_ctxs, sizeof(*o->ctxs));
        if (!o->ctxs) {
            cli_error("out of memory");
            return CLI_EXIT_FAIL;
        }
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
                                     .free_result = plugin_free };
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
    free(o->ctxs);
    o->ctxs = NULL;
    o->n_ctxs = 0;
    vlm_model_free(o->m);
    o->m = NULL;
}
