/* caption_setup.h - captions: the model loading shared by `shoebox caption` and the captions
 * stage of `index --captions` (a crawl plugin that stores one sentence per photo in the
 * catalog's texts, source "caption", so that search finds photos by their captions). */
#ifndef SHOEBOX_CLI_CAPTION_SETUP_H
#define SHOEBOX_CLI_CAPTION_SETUP_H

#include "cli.h"

#include <stdbool.h>
#include <stdint.h>

struct catalog;
struct crawl_plugin;
struct vlm_model;
struct vlm_ctx;
struct sb_err;

/* Captions each worker of the index's captions stage decodes together (each decode step then
 * reads the decoder's weights once for this many photos). */
#define CAPTION_BATCH 8

struct sb_pool;
struct cli_caption_group; /* caption_setup.c */
struct cli_caption {
    int want;              /* 1 --captions, 0 --no-captions, -1 as the "captions" setting */
    const char *model_dir; /* --caption-model, or NULL: the setting "caption_model" */
    int tiles;             /* 1 --caption-tiles, 0 --no-caption-tiles, -1 as "caption_tiles" */
    int max_new_tokens;    /* 0: the default */
    struct vlm_model *m;
    struct vlm_ctx **ctxs; /* one per pool worker (the vision tower), made on first use */
    int n_ctxs;
    struct sb_pool *pool;             /* the index's */
    struct cli_caption_group *groups; /* decoder slots per pool worker (finish()) */
    int n_groups;
    int64_t captioned;
    char stage[200]; /* "caption:<model id>" */
    char dir_buf[4096];
};

/* Loads the captioning model of dir for n_threads concurrent users (OpenBLAS single-threaded
 * when n_threads > 1), its vision tower in ctx's --precision, Idefics3 image splitting when
 * split_image. Prints the error; returns an exit code. */
int cli_caption_load(const struct cli_ctx *ctx, const char *dir, int n_threads, bool split_image,
                     struct vlm_model **out);

/* Handles argv[*i] when it is a caption option of index (advancing *i past a value); returns
 * 1 when it was one, 0 when not, or -1 (message printed) for a bad value. */
int cli_caption_option(struct cli_caption *o, int argc, char **argv, int *i);
/* Resolves the options against the catalog's settings ("captions", "caption_model"), stores
 * them back, and when captions are on loads the model and fills *pl. Returns 0 with *enabled
 * set, or an exit code. */
int cli_caption_setup(struct cli_caption *o, struct cli_ctx *ctx, struct catalog *cat,
                      struct crawl_plugin *pl, bool *enabled);
/* Decoder slots (captions in progress at once, at most CAPTION_BATCH) for each of users
 * groups: as many as half the memory the system has available holds (vlm_batch_slots). */
int cli_caption_slots(const struct vlm_model *m, int max_new_tokens, int users);
/* One decode step (vlm_caption_step) for the slots k < n in use (item[k] >= 0) of dec: *n_live
 * of them (0: none, nothing run). ended[0..*n_ended) are the slots whose caption is now done,
 * or, when the step failed (the return value, with err), every slot in use. */
int cli_caption_step(struct vlm_ctx *const *dec, const int *item, int n, int *ended, int *n_ended,
                     int *n_live, struct sb_err *err);
/* One line on stderr about what the stage did this run (nothing when it was off). */
void cli_caption_report(const struct cli_caption *o, double secs);
void cli_caption_release(struct cli_caption *o);

#define CLI_CAPTION_HELP                                                                           \
    "  --captions        also write a one-sentence caption per photo with a vision-language\n"     \
    "                    model (LLaVA, SmolVLM/Idefics3; slow: runs last); remembered\n"           \
    "  --caption-model DIR  the captioning model folder (remembered)\n"                            \
    "  --no-captions     stop captioning (remembered)\n"                                           \
    "  --caption-tiles   SmolVLM / Idefics3: caption the crops plus the global image, as its\n"    \
    "                    processor splits images (more detail, several times slower);\n"           \
    "                    --no-caption-tiles: the global image alone (default; remembered)\n"

#endif
