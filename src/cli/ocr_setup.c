/* ocr_setup.c - `index --ocr` (see ocr_setup.h). The settings "ocr" ("1"/"0") and "ocr_lang"
 * make later `index` runs keep reading words without the flag. */
#include "ocr_setup.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/ocr.h"
#include "shoebox/pool.h"

#include <stdio.h>
#include <string.h>

int cli_ocr_option(struct cli_ocr *o, int argc, char **argv, int *i)
{
    const char *v;
    if (strcmp(argv[*i], "--ocr") == 0) {
        o->want = 1;
    } else if (strcmp(argv[*i], "--no-ocr") == 0) {
        o->want = 0;
    } else if (strcmp(argv[*i], "--ocr-no-gate") == 0) {
        o->no_gate = true;
    } else if ((v = cli_flag_value(argc, argv, i, "--ocr-lang"))) {
        if (!*v)
            return -1;
        o->lang = v;
    } else {
        return 0;
    }
    return 1;
}

int cli_ocr_setup(struct cli_ocr *o, struct cli_ctx *ctx, struct catalog *cat,
                  struct crawl_plugin *pl, bool *enabled)
{
    struct sb_err err;
    char want[8], lang[128];
    *enabled = false;
    if (o->want < 0)
        o->want = catalog_setting_get(cat, "ocr", want, sizeof(want), NULL) == SB_OK &&
                  strcmp(want, "1") == 0;
    if (!o->lang) {
        if (catalog_setting_get(cat, "ocr_lang", lang, sizeof(lang), NULL) == SB_OK && *lang)
            o->lang = lang;
        else
            o->lang = OCR_DEFAULT_LANG;
    }
    if (o->want) {
        if (ocr_check_lang(o->lang, NULL, &err)) {
            cli_error("--ocr-lang: %s", err.msg);
            return err.code == SB_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
        }
        struct ocr_params p = ocr_default_params();
        p.lang = o->lang;
        p.gate = !o->no_gate;
        struct sb_pool *pool = cli_pool(ctx);
        int workers = pool ? sb_pool_size(pool) + 1 : 1;
        if (ocr_engine_new(&p, workers, &o->engine, &err)) {
            cli_error("%s", err.msg);
            return CLI_EXIT_FAIL;
        }
        *pl = ocr_crawl_plugin(o->engine);
        *enabled = true;
    }
    /* remembered only once the engine works: a typo in --ocr-lang is not saved */
    if (catalog_begin(cat, &err) || catalog_setting_set(cat, "ocr", o->want ? "1" : "0", &err) ||
        (o->want && catalog_setting_set(cat, "ocr_lang", o->lang, &err)) ||
        catalog_commit(cat, &err)) {
        catalog_rollback(cat);
        cli_error("%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    o->lang = NULL; /* may point into this frame's buffer */
    return CLI_EXIT_OK;
}

void cli_ocr_report(const struct cli_ocr *o, double secs)
{
    if (!o->engine)
        return;
    struct ocr_stats st;
    ocr_engine_stats(o->engine, &st);
    if (st.images == 0)
        return;
    fprintf(stderr,
            "ocr (%s): %lld photos, %lld skipped by the text gate, %lld with text (%lld read "
            "turned), %.2f photos/s overall\n",
            ocr_engine_model(o->engine), (long long)st.images, (long long)st.gated,
            (long long)st.with_text, (long long)st.rotated,
            secs > 0 ? (double)st.images / secs : 0.0);
}

void cli_ocr_release(struct cli_ocr *o)
{
    ocr_engine_free(o->engine);
    o->engine = NULL;
}
