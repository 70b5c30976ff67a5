/* clip_embedder.c - the CLIP engine (src/model) behind the crawler's struct crawl_embedder,
 * for `shoebox index` and the web server's crawl alike. */
#include "shoebox/crawl.h"

#include "shoebox/err.h"
#include "shoebox/model.h"

#include <string.h>

enum { EMBED_BATCH = 16 };

static int clip_pre(void *user, const struct image *rgb, float *out, struct sb_err *err)
{
    struct crawl_clip_embedder *e = user;
    return clip_preprocess(e->model, rgb, out, err);
}

static int clip_size(void *user, int w, int h, int *out_w, int *out_h, enum image_filter *f)
{
    struct crawl_clip_embedder *e = user;
    return clip_preprocess_size(e->model, w, h, out_w, out_h, f);
}

static int clip_emb(void *user, const float *in, int n, float *out, struct sb_err *err)
{
    struct crawl_clip_embedder *e = user;
    return clip_embed_images(e->ctx, in, n, out, err);
}

int crawl_clip_embedder_open(const char *model_dir, const struct clip_load_params *lp,
                             struct sb_pool *pool, struct crawl_clip_embedder *e,
                             struct sb_err *err)
{
    memset(e, 0, sizeof(*e));
    int rc = clip_model_load(model_dir, lp, &e->model, err);
    if (rc)
        return rc;
    rc = clip_ctx_new(e->model, EMBED_BATCH, pool, &e->ctx, err);
    if (rc) {
        crawl_clip_embedder_close(e);
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
    e->crawl.input_size = clip_size;
    e->crawl.embed = clip_emb;
    return SB_OK;
}

void crawl_clip_embedder_close(struct crawl_clip_embedder *e)
{
    clip_ctx_free(e->ctx);
    clip_model_free(e->model);
    memset(e, 0, sizeof(*e));
}
