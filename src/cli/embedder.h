/* embedder.h - the CLI's settings for the CLIP engine and the crawler's CLIP embedder. */
#ifndef SHOEBOX_CLI_EMBEDDER_H
#define SHOEBOX_CLI_EMBEDDER_H

#include "cli.h"
#include "shoebox/crawl.h"
#include "shoebox/model.h"

struct clip_model;
struct clip_ctx;
struct sb_err;

/* --precision as the engine's enum (auto: bf16 where the CPU computes it natively). */
enum clip_precision cli_clip_precision(const struct cli_ctx *ctx);

/* Loads ctx->model_dir (towers: enum clip_towers bits) as the crawler's embedder, on the CLI's
 * pool. Close with crawl_clip_embedder_close(). */
int cli_embedder_open(struct cli_ctx *ctx, int towers, struct crawl_clip_embedder *e,
                      struct sb_err *err);

#endif
