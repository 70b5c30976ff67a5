/* embedder.c - adapts the CLIP engine to the crawler's struct crawl_embedder. */
#include "embedder.h"

#include "shoebox/err.h"
#include "shoebox/model.h"
#include "shoebox/pool.h"

#include <stdlib.h>
#include <string.h>

enum { EMBED_BATCH = 16 };

static int clip_pre(void *user, const struct image *rgb, float *out, struct sb_err *err)
{
    struct cli_embedder *e = user;
    return clip_preprocess(e->model, rgb, out, err);
}

static int clip_emb(void *user, const float *in, int n, float *out, struct sb_err *err)
{
    struct cli_embedder *e = user;
    return clip_embed_images(e->ctx, in, n, out, err);
}

enum clip_precision cli_clip_precision(const struct cli_ctx *ctx)
{
    switch (ctx->precision) {
    case CLI_PRECISION_FP32:
        return CLIP_PRECISION_FP32;
    case CLI_PRECISION_BF16:
        return CLIP_PRECISION_BF16;
    case CLI_PRECISION_AUTO:
        break;
    }
    return CLIP_PRECISION_AUTO;
}

int cli_embedder_open(struct cli_ctx *ctx, int towers, struct cli_embedder *e, struct sb_err *err)
{
    memset(e, 0, sizeof(*e));
    struct clip_load_params lp = clip_load_default_params();
    lp.towers = towers;
    lp.precision = cli_clip_precision(ctx);
    lp.blas_threads = ctx->threads;
    int rc = clip_model_load(ctx->model_dir, &lp, &e->model, err);
    if (rc)
        return rc;
    /* The process pool runs the whole forward pass in fp32 (products split by columns, OpenBLAS
     * set to one thread): one threading runtime, measured 1.33x OpenBLAS's own threads. */
    rc = clip_ctx_new(e->model, EMBED_BATCH, cli_pool(ctx), &e->ctx, err);
    if (rc) {
        cli_embedder_close(e);
        return rc;
    }
    int size = clip_model_image_size(e->model);
    int min_short = size;
    clip_model_min_decode(e->model, &min_short);
    e->crawl.model_name = clip_model_id(e->model);
    e->crawl.dim = clip_model_dim(e->model);
    e->crawl.min_short = min_short;
    e->crawl.input_floats = (size_t)3 * (size_t)size * (size_t)size;
    e->crawl.max_batch = EMBED_BATCH;
    e->crawl.user = e;
    e->crawl.preprocess = clip_pre;
    e->crawl.embed = clip_emb;
    return SB_OK;
}

void cli_embedder_close(struct cli_embedder *e)
{
    clip_ctx_free(e->ctx);
    clip_model_free(e->model);
    memset(e, 0, sizeof(*e));
}
