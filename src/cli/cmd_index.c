/* cmd_index.c - `shoebox index PATH...`: crawl, probe, thumbnail and embed. */
#include "caption_setup.h"
#include "cli.h"
#include "embedder.h"
#include "ocr_setup.h"
#include "output.h"

#include "shoebox/catalog.h"
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/model.h"
#include "shoebox/progress.h"
#include "shoebox/search.h"
#include "shoebox/tags.h"
#include "shoebox/takeout.h"
#include "shoebox/util.h"
#include "shoebox/xmp.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Set by the SIGINT/SIGTERM handler; polled between items. The one mutable global of the CLI:
 * a signal handler can reach nothing else. */
static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* After new embeddings: bring the near-duplicate pair cache up to date (only the new or changed
 * rows are compared with all), so that `dupes` and the web's Duplicates page answer at once
 * instead of doing it on first use. Interrupting it loses nothing: the file is replaced
 * atomically, and the next use redoes what is missing. */
static void refresh_near_pairs(struct cli_ctx *ctx, struct catalog *cat, const char *model_name)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    char dir[4096];
    search_cache_dir(ctx->db_path, dir, sizeof(dir));
    struct vec_store *vs = NULL;
    int64_t *group = NULL;
    struct sb_err err = { 0 };
    double t0 = sb_now();
    if (ctx->tty)
        fprintf(stderr, "finding near duplicates...\r");
    int rc = vec_store_open(cat, model_name, dir, &vs, &err);
    if (!rc) {
        size_t n = vec_store_matrix(vs)->n;
        group = malloc((n ? n : 1) * sizeof(*group));
        rc = group ? vec_store_near_groups(vs, NULL, SEARCH_NEAR_BASE, cli_pool(ctx), group, &err)
                   : sb_fail(&err, SB_ENOMEM, "out of memory");
    }
    if (ctx->tty)
        fprintf(stderr, "\033[K");
    if (rc)
        fprintf(stderr, "shoebox: near duplicates not precomputed (`dupes` will do it): %s\n",
                err.msg);
    else
        SB_LOG_I("near-duplicate pairs up to date in %.1fs", sb_now() - t0);
    free(group);
    vec_store_close(vs);
}

static bool stop_requested(void *user)
{
    (void)user;
    return stop_flag != 0;
}

static void on_progress(void *user, const char *stage, int64_t done, int64_t total)
{
    cli_progress_draw(user, stage, done, total);
}

static void help(FILE *f)
{
    fprintf(f,
            "usage: shoebox index [options] PATH...\n\n"
            "Catalogs every photo under the folders (or files) given: content hash, metadata,\n"
            "thumbnails, and an embedding per photo when a model is set (--model or\n"
            "$SHOEBOX_MODEL). Resumable: run it again after an interruption. Files that fail\n"
            "are recorded (see `shoebox errors`); the exit status is 0 when the run finished.\n\n"
            "options:\n"
            "  --max-pixels MP   refuse images above this many megapixels (default 200)\n"
            "  --retry           try failed files and stages again\n"
            "  --no-embed        do not embed even if a model is set\n"
            "  --tags            also tag photos with keywords from the model (zero-shot over\n"
            "                    a vocabulary of 1000+ concepts); remembered for later runs\n"
            "  --no-tags         stop automatic tagging (remembered)\n"
            "  --no-xmp          do not read XMP sidecars and embedded XMP keywords\n" CLI_OCR_HELP
                CLI_CAPTION_HELP "  --help            this help\n");
}

int cmd_index(int argc, char **argv, struct cli_ctx *ctx)
{
    struct crawl_params p = crawl_default_params();
    const char **roots = calloc((size_t)argc, sizeof(char *));
    int nroots = 0;
    bool no_embed = false, no_xmp = false;
    int want_tags = -1; /* -1: as the catalog's "auto_tags" setting says */
    struct tagger *tagger = NULL;
    struct crawl_plugin plugins[CRAWL_MAX_PLUGINS];
    int nplugins = 0;
    struct cli_ocr ocr = { .want = -1 };
    bool ocr_on = false;
    struct cli_caption cap = { .want = -1, .tiles = -1 };
    bool cap_on = false;
    int rc = CLI_EXIT_OK;
    struct catalog *cat = NULL;
    struct crawl_clip_embedder emb;
    bool have_emb = false;
    struct sb_err err;
    sb_err_clear(&err);
    if (!roots) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help(stdout);
            goto out;
        } else if (strcmp(argv[i], "--retry") == 0) {
            p.retry_failed = true;
        } else if (strcmp(argv[i], "--no-embed") == 0) {
            no_embed = true;
        } else if (strcmp(argv[i], "--tags") == 0 || strcmp(argv[i], "--no-tags") == 0) {
            want_tags = argv[i][2] == 't';
        } else if (strcmp(argv[i], "--no-xmp") == 0) {
            no_xmp = true;
        } else if ((rc = cli_caption_option(&cap, argc, argv, &i)) != 0) {
            if (rc < 0) {
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            rc = CLI_EXIT_OK;
        } else if ((rc = cli_ocr_option(&ocr, argc, argv, &i)) != 0) {
            if (rc < 0) {
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            rc = CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--max-pixels") == 0 && i + 1 < argc) {
            float mp;
            if (sb_parse_f32(argv[++i], 0.001f, 100000.0f, &mp, &err)) {
                cli_error("--max-pixels: %s", err.msg);
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            p.max_pixels = (uint64_t)((double)mp * 1e6);
        } else if (strcmp(argv[i], "--") == 0) {
            for (i++; i < argc; i++)
                roots[nroots++] = argv[i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("index: unknown option '%s' (see shoebox index --help)", argv[i]);
            rc = CLI_EXIT_USAGE;
            goto out;
        } else {
            roots[nroots++] = argv[i];
        }
    }
    if (nroots == 0) {
        help(stderr);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (catalog_open(ctx->db_path, false, &cat, &err)) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    bool tags_from_setting = false;
    if (want_tags < 0) {
        char v[8];
        want_tags = catalog_setting_get(cat, "auto_tags", v, sizeof(v), NULL) == SB_OK &&
                    strcmp(v, "1") == 0;
        tags_from_setting = want_tags;
    }
    if (want_tags && (!ctx->model_dir || no_embed)) {
        if (!tags_from_setting) {
            cli_error("index --tags needs a model (--model DIR or $SHOEBOX_MODEL)");
            rc = CLI_EXIT_USAGE;
            goto out;
        }
        want_tags = 0; /* remembered, but no model this time: tag on a later run */
    }
    if (ctx->model_dir && !no_embed) {
        if (cli_embedder_open(ctx, want_tags ? CLIP_TOWER_BOTH : CLIP_TOWER_VISION, &emb, &err)) {
            cli_error("model '%s': %s", ctx->model_dir, err.msg);
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        have_emb = true;
        p.embedder = &emb.crawl;
        /* remember the model, so that search finds it without --model */
        char *real = realpath(ctx->model_dir, NULL);
        if (catalog_begin(cat, &err) ||
            catalog_setting_set(cat, "model_dir", real ? real : ctx->model_dir, &err) ||
            catalog_setting_set(cat, "model_name", emb.crawl.model_name, &err) ||
            catalog_setting_set(cat, "auto_tags", want_tags ? "1" : "0", &err) ||
            catalog_commit(cat, &err)) {
            catalog_rollback(cat);
            free(real);
            cli_error("%s", err.msg);
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        free(real);
        if (want_tags) {
            size_t nvocab;
            const char *const *vocab = tags_builtin_vocab(&nvocab);
            if (tagger_new(vocab, nvocab, NULL, &tagger, &err) ||
                tagger_prepare(tagger, cat, emb.ctx, emb.crawl.model_name, emb.crawl.dim, &err) ||
                tagger_plugin(tagger, emb.crawl.model_name, &plugins[nplugins], &err)) {
                cli_error("tags: %s", err.msg);
                rc = CLI_EXIT_FAIL;
                goto out;
            }
            nplugins++;
        }
    } else if (!ctx->model_dir) {
        fprintf(stderr, "shoebox: no model set: cataloging without embeddings. For search by "
                        "meaning, get one with `shoebox model fetch "
                        "openai/clip-vit-base-patch32` and pass --model DIR (or set "
                        "SHOEBOX_MODEL).\n");
    }
    struct cli_progress bar = { .tty = ctx->tty };
    struct sb_progress prog = { on_progress, stop_requested, &bar };
    if (!no_xmp)
        xmp_plugin(&plugins[nplugins++]);
    /* Google Takeout sidecars: cheap (a few stat(2)s per new photo), so always on */
    takeout_plugin(&plugins[nplugins++]);
    rc = cli_ocr_setup(&ocr, ctx, cat, &plugins[nplugins], &ocr_on);
    if (rc)
        goto out;
    nplugins += ocr_on;
    /* captions last: the slowest stage, after everything that makes search work */
    rc = cli_caption_setup(&cap, ctx, cat, &plugins[nplugins], &cap_on);
    if (rc)
        goto out;
    nplugins += cap_on;
    p.plugins = plugins;
    p.nplugins = nplugins;
    p.roots = roots;
    p.nroots = nroots;
    p.pool = cli_pool(ctx);
    p.progress = &prog;
    stop_flag = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    double t0 = sb_now();
    struct crawl_stats st;
    int crc = crawl_index(cat, &p, &st, &err);
    cli_progress_end(&bar);
    double secs = sb_now() - t0;
    fprintf(stderr,
            "indexed in %.1fs: %lld files seen (%lld unchanged, %lld new or changed, %lld "
            "missing, %lld not images), %lld hashed, %lld new photos, %lld processed, %lld "
            "embedded, %lld failed\n",
            secs, (long long)st.seen, (long long)st.unchanged, (long long)st.touched,
            (long long)st.missing, (long long)st.ignored, (long long)st.hashed,
            (long long)st.new_photos, (long long)st.processed, (long long)st.embedded,
            (long long)st.failed);
    cli_ocr_report(&ocr, secs);
    cli_caption_report(&cap, secs);
    if (crc == SB_ECANCELED) {
        fprintf(stderr, "shoebox: interrupted; run the same command again to continue\n");
        rc = 130;
    } else if (crc) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_FAIL;
    } else if (st.failed) {
        fprintf(stderr, "shoebox: %lld files failed; see `shoebox errors`\n", (long long)st.failed);
    }
    if (!crc && have_emb && st.embedded > 0)
        refresh_near_pairs(ctx, cat, emb.crawl.model_name);
out:
    if (have_emb)
        crawl_clip_embedder_close(&emb);
    tagger_free(tagger);
    cli_ocr_release(&ocr);
    cli_caption_release(&cap);
    catalog_close(cat);
    free(roots);
    return rc;
}
