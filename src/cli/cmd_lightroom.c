/* cmd_lightroom.c - `shoebox lightroom import CATALOG.lrcat` and
 * `shoebox lightroom previews PREVIEWS.lrdata -o DIR`. */
#include "cli.h"
#include "output.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/lightroom.h"
#include "shoebox/progress.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: shoebox lightroom import [--map FROM=TO]... CATALOG.lrcat\n"
               "       shoebox lightroom previews [options] PREVIEWS.lrdata -o DIR\n\n"
               "import: reads a Lightroom Classic catalog (read-only: it is never locked or\n"
               "changed) and attaches keywords (tags, source 'lightroom'), ratings, pick flags,\n"
               "colour labels, titles, captions and collections to the photos shoebox has\n"
               "indexed, matched by path or by content. --map rewrites the originals' path\n"
               "prefix, for a catalog made on another machine.\n\n"
               "previews: rescues the JPEG previews (.lrprev) of a previews folder into DIR,\n"
               "named and foldered after their originals (from previews.db and the catalog\n"
               "beside the .lrdata, or --catalog), converted to sRGB and upright. Existing files\n"
               "are never overwritten.\n"
               "  -o, --out DIR     where to write (required)\n"
               "  --catalog FILE    the .lrcat (default: '<name>.lrcat' beside the .lrdata)\n"
               "  --level N         preview level N instead of the largest\n"
               "  --raw             write the stored JPEG bytes (ICC-tagged, not rotated)\n"
               "  --index           then index DIR, remembering each preview's original path\n"
               "  --json            a JSON summary on stdout\n");
}

/* ---- previews ------------------------------------------------------------------------------ */

struct rescued {
    char *path, *original;
};

struct previews_run {
    struct cli_ctx *ctx;
    cJSON *items; /* --json */
    struct rescued *v;
    size_t n, cap;
    bool keep; /* --index: remember (path, original) */
};

static int on_preview(void *user, const struct lr_preview_item *it)
{
    struct previews_run *r = user;
    if (it->error)
        fprintf(stderr, "shoebox: %s: %s\n", it->lrprev, it->error);
    if (r->items) {
        cJSON *o = cJSON_CreateObject();
        char *a = sb_utf8_clean(it->lrprev);
        char *b = it->out_path ? sb_utf8_clean(it->out_path) : NULL;
        char *c = it->original ? sb_utf8_clean(it->original) : NULL;
        cJSON_AddStringToObject(o, "lrprev", a ? a : "");
        if (b)
            cJSON_AddStringToObject(o, "path", b);
        if (c)
            cJSON_AddStringToObject(o, "original", c);
        if (it->image_id)
            cJSON_AddNumberToObject(o, "image_id", (double)it->image_id);
        cJSON_AddBoolToObject(o, "virtual_copy", it->virtual_copy);
        if (it->out_path) {
            cJSON_AddNumberToObject(o, "width", it->width);
            cJSON_AddNumberToObject(o, "height", it->height);
        }
        if (it->error)
            cJSON_AddStringToObject(o, "error", it->error);
        cJSON_AddItemToArray(r->items, o);
        free(a);
        free(b);
        free(c);
    } else if (it->out_path && !r->ctx->json) {
        printf("%s\t%s\n", it->out_path, it->original ? it->original : "-");
    }
    if (r->keep && it->out_path && it->original) {
        if (r->n == r->cap) {
            size_t ncap = r->cap ? r->cap * 2 : 64;
            void *p = realloc(r->v, ncap * sizeof(*r->v));
            if (!p)
                return SB_ENOMEM;
            r->v = p;
            r->cap = ncap;
        }
        r->v[r->n].path = realpath(it->out_path, NULL);
        r->v[r->n].original = sb_strdup(it->original);
        if (!r->v[r->n].path || !r->v[r->n].original) {
            free(r->v[r->n].path);
            free(r->v[r->n].original);
            return SB_ENOMEM;
        }
        r->n++;
    }
    return 0;
}

static int remember_originals(struct cli_ctx *ctx, const struct previews_run *r)
{
    struct catalog *cat = NULL;
    struct sb_err err;
    int rc = catalog_open(ctx->db_path, false, &cat, &err);
    if (!rc)
        rc = catalog_begin(cat, &err);
    for (size_t i = 0; !rc && i < r->n; i++)
        rc = catalog_original_set(cat, r->v[i].path, r->v[i].original, "lightroom-preview", &err);
    if (!rc)
        rc = catalog_commit(cat, &err);
    if (rc) {
        if (cat)
            catalog_rollback(cat);
        cli_error("%s", err.msg);
    }
    catalog_close(cat);
    return rc ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

static void on_progress(void *user, const char *stage, int64_t done, int64_t total)
{
    cli_progress_draw(user, stage, done, total);
}

static int cmd_previews(int argc, char **argv, struct cli_ctx *ctx)
{
    struct lr_previews_params p = lr_previews_default_params();
    struct previews_run run;
    memset(&run, 0, sizeof(run));
    run.ctx = ctx;
    bool do_index = false;
    int rc = CLI_EXIT_OK;
    struct sb_err err;
    sb_err_clear(&err);
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help(stdout);
            return CLI_EXIT_OK;
        } else if ((v = cli_flag_value(argc, argv, &i, "-o")) ||
                   (v = cli_flag_value(argc, argv, &i, "--out"))) {
            p.out_dir = v;
        } else if ((v = cli_flag_value(argc, argv, &i, "--catalog"))) {
            p.catalog = v;
        } else if ((v = cli_flag_value(argc, argv, &i, "--level"))) {
            int64_t n;
            if (sb_parse_i64(v, 1, 99, &n, &err)) {
                cli_error("--level: %s", err.msg);
                return CLI_EXIT_USAGE;
            }
            p.level = (int)n;
        } else if (strcmp(argv[i], "--raw") == 0) {
            p.convert = false;
        } else if (strcmp(argv[i], "--index") == 0) {
            do_index = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("lightroom previews: unknown option '%s'", argv[i]);
            return CLI_EXIT_USAGE;
        } else if (!p.lrdata) {
            p.lrdata = argv[i];
        } else {
            cli_error("lightroom previews: one previews folder at a time");
            return CLI_EXIT_USAGE;
        }
    }
    if (!p.lrdata || !p.out_dir || !*p.out_dir) {
        help(stderr);
        return CLI_EXIT_USAGE;
    }
    run.keep = do_index;
    if (ctx->json)
        run.items = cJSON_CreateArray();
    struct cli_progress bar = { .tty = ctx->tty };
    struct sb_progress prog = { on_progress, NULL, &bar };
    p.progress = &prog;
    struct lr_previews_stats st;
    int xrc = lr_previews_extract(&p, on_preview, &run, &st, &err);
    cli_progress_end(&bar);
    if (xrc) {
        cli_error("%s", xrc == SB_ENOMEM && !err.msg[0] ? "out of memory" : err.msg);
        rc = CLI_EXIT_FAIL;
    }
    fprintf(stderr,
            "%lld previews: %lld written (%lld named after their originals, %lld virtual "
            "copies), %lld failed%s%s\n",
            (long long)st.found, (long long)st.written, (long long)st.named,
            (long long)st.virtual_copies, (long long)st.failed,
            st.have_previews_db ? "" : "; no previews.db",
            st.have_catalog ? "" : "; no catalog (use --catalog)");
    if (run.items) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddNumberToObject(root, "found", (double)st.found);
        cJSON_AddNumberToObject(root, "written", (double)st.written);
        cJSON_AddNumberToObject(root, "named", (double)st.named);
        cJSON_AddNumberToObject(root, "virtual_copies", (double)st.virtual_copies);
        cJSON_AddNumberToObject(root, "failed", (double)st.failed);
        cJSON_AddBoolToObject(root, "previews_db", st.have_previews_db);
        cJSON_AddBoolToObject(root, "catalog", st.have_catalog);
        cJSON_AddItemToObject(root, "previews", run.items);
        run.items = NULL;
        if (cli_print_json(root) != CLI_EXIT_OK)
            rc = CLI_EXIT_FAIL;
        cJSON_Delete(root);
    }
    if (!rc && do_index) {
        rc = remember_originals(ctx, &run);
        if (!rc) {
            char name[] = "index";
            char *dir = sb_strdup(p.out_dir);
            char *args[] = { name, dir, NULL };
            bool json = ctx->json;
            ctx->json = false; /* one JSON document on stdout: the summary above */
            rc = dir ? cmd_index(2, args, ctx) : CLI_EXIT_FAIL;
            ctx->json = json;
            free(dir);
        }
    }
    cJSON_Delete(run.items);
    for (size_t i = 0; i < run.n; i++) {
        free(run.v[i].path);
        free(run.v[i].original);
    }
    free(run.v);
    return rc;
}

/* ---- import -------------------------------------------------------------------------------- */

static int cmd_import(int argc, char **argv, struct cli_ctx *ctx)
{
    struct lr_import_params p;
    memset(&p, 0, sizeof(p));
    const char **from = calloc((size_t)argc, sizeof(char *));
    const char **to = calloc((size_t)argc, sizeof(char *));
    char **owned = calloc((size_t)argc, sizeof(char *));
    struct catalog *cat = NULL;
    int rc = CLI_EXIT_OK;
    struct sb_err err;
    sb_err_clear(&err);
    if (!from || !to || !owned) {
        cli_error("out of memory");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help(stdout);
            goto out;
        } else if ((v = cli_flag_value(argc, argv, &i, "--map"))) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v) {
                cli_error("--map needs FROM=TO");
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            owned[p.nmap] = sb_strdup(v);
            if (!owned[p.nmap]) {
                rc = CLI_EXIT_FAIL;
                goto out;
            }
            owned[p.nmap][eq - v] = '\0';
            from[p.nmap] = owned[p.nmap];
            to[p.nmap] = owned[p.nmap] + (eq - v) + 1;
            p.nmap++;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("lightroom import: unknown option '%s'", argv[i]);
            rc = CLI_EXIT_USAGE;
            goto out;
        } else if (!p.lrcat) {
            p.lrcat = argv[i];
        } else {
            cli_error("lightroom import: one catalog at a time");
            rc = CLI_EXIT_USAGE;
            goto out;
        }
    }
    if (!p.lrcat) {
        help(stderr);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    p.map_from = from;
    p.map_to = to;
    if (catalog_open(ctx->db_path, false, &cat, &err)) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    struct lr_import_stats st;
    if (lr_catalog_import(cat, &p, &st, &err)) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    if (ctx->json) {
        printf("{\"images\":%lld,\"matched\":%lld,\"matched_by_hash\":%lld,\"unmatched\":%lld,"
               "\"keywords\":%lld,\"collections\":%lld}\n",
               (long long)st.images, (long long)st.matched, (long long)st.matched_by_hash,
               (long long)st.unmatched, (long long)st.keywords, (long long)st.collections);
    } else {
        printf("images       %lld\nmatched      %lld\n  by content %lld\nunmatched    "
               "%lld\nkeywords     %lld\ncollections  %lld\n",
               (long long)st.images, (long long)st.matched, (long long)st.matched_by_hash,
               (long long)st.unmatched, (long long)st.keywords, (long long)st.collections);
    }
out:
    catalog_close(cat);
    for (int i = 0; owned && i < p.nmap; i++)
        free(owned[i]);
    free(owned);
    free(from);
    free(to);
    return rc;
}

int cmd_lightroom(int argc, char **argv, struct cli_ctx *ctx)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        help(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "import") == 0)
        return cmd_import(argc - 1, argv + 1, ctx);
    if (strcmp(argv[1], "previews") == 0)
        return cmd_previews(argc - 1, argv + 1, ctx);
    cli_error("lightroom: unknown subcommand '%s' (import or previews)", argv[1]);
    return CLI_EXIT_USAGE;
}
