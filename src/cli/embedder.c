/* embedder.c - the CLI's options (--precision, --threads, the pool) for the CLIP engine and
 * for the crawler's CLIP embedder (src/crawl/clip_embedder.c). */
#include "embedder.h"

#include "shoebox/err.h"
#include "shoebox/model.h"
#include "shoebox/pool.h"

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

int cli_embedder_open(struct cli_ctx *ctx, int towers, struct crawl_clip_embedder *e,
                      struct sb_err *err)
{
    struct clip_load_params lp = clip_load_default_params();
    lp.towers = towers;
    lp.precision = cli_clip_precision(ctx);
    lp.blas_threads = ctx->threads;
    lp.fast_text = true; /* the text tower, when asked for, embeds every tag's prompts */
    /* The process pool runs the whole forward pass in fp32 (products split by columns, OpenBLAS
     * set to one thread): one threading runtime, measured 1.33x OpenBLAS's own threads. */
    return crawl_clip_embedder_open(ctx->model_dir, &lp, cli_pool(ctx), e, err);
}
