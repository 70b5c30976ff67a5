/* embedder.h - the CLIP engine behind the crawler's embedder interface. */
#ifndef SHOEBOX_CLI_EMBEDDER_H
#define SHOEBOX_CLI_EMBEDDER_H

#include "cli.h"
#include "shoebox/crawl.h"
#include "shoebox/model.h"

struct clip_model;
struct clip_ctx;
struct sb_err;

struct cli_embedder {
    struct clip_model *model;
    struct clip_ctx *ctx;
    struct crawl_embedder crawl;
};

/* --precision as the engine's enum (auto: bf16 where the CPU computes it natively). */
enum clip_precision cli_clip_precision(const struct cli_ctx *ctx);

/* Loads ctx->model_dir (towers: enum clip_towers bits). */
int cli_embedder_open(struct cli_ctx *ctx, int towers, struct cli_embedder *e, struct sb_err *err);
void cli_embedder_close(struct cli_embedder *e);

#endif
