/* cmd_tag.c - `shoebox tag add|remove TAG FILE...`, `shoebox tag list FILE...` and
 * `shoebox tags FILE...` (= list): the user's tags, beside the automatic and imported ones. */
#include "cli.h"
#include "output.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void help(FILE *f)
{
    fprintf(f, "usage: shoebox tag add TAG FILE...      add a user tag to photos\n"
               "       shoebox tag remove TAG FILE...   remove a tag (every source; --source S: "
               "only S)\n"
               "       shoebox tag list FILE...         the tags of photos\n"
               "       shoebox tags FILE...             same as tag list\n\n"
               "FILE is a cataloged photo file or id:N. Tags come from sources: user (these),\n"
               "auto (index --tags), xmp (sidecars), lightroom, takeout, apple. Automatic\n"
               "tagging never replaces user tags. Options: --json, --source S (remove).\n");
}

/* The photo id of a FILE argument: "id:N", else the catalog file at its real path. */
static int resolve(struct catalog *cat, const char *arg, int64_t *id, struct sb_err *err)
{
    if (strncmp(arg, "id:", 3) == 0)
        return sb_parse_i64(arg + 3, 1, INT64_MAX, id, err);
    char *real = realpath(arg, NULL);
    if (!real)
        return sb_fail(err, SB_ENOENT, "'%s': no such file", arg);
    int rc = catalog_photo_by_path(cat, real, id, err);
    if (rc == SB_ENOENT)
        rc = sb_fail(err, SB_ENOENT, "'%s' is not in the catalog (run shoebox index first)", arg);
    free(real);
    return rc;
}

struct list_ctx {
    cJSON *arr; /* JSON mode */
    int count;
};

static int on_tag(void *user, const char *tag, const char *source, double score)
{
    struct list_ctx *l = user;
    l->count++;
    if (l->arr) {
        cJSON *o = cJSON_CreateObject();
        if (!o)
            return SB_ENOMEM;
        cJSON_AddItemToArray(l->arr, o);
        cJSON_AddStringToObject(o, "tag", tag);
        cJSON_AddStringToObject(o, "source", source);
        if (isnan(score))
            cJSON_AddNullToObject(o, "score");
        else
            cJSON_AddNumberToObject(o, "score", round(score * 1e4) / 1e4);
        return SB_OK;
    }
    if (isnan(score))
        printf("  %-32s %-10s\n", tag, source);
    else
        printf("  %-32s %-10s %.3f\n", tag, source, score);
    return SB_OK;
}

int cmd_tag(int argc, char **argv, struct cli_ctx *ctx)
{
    const char *verb = NULL, *tag = NULL, *source = NULL;
    const char **files = calloc((size_t)argc + 1, sizeof(char *));
    int nfiles = 0, rc = CLI_EXIT_OK;
    struct catalog *cat = NULL;
    cJSON *root = NULL, *photos = NULL;
    struct sb_err err;
    sb_err_clear(&err);
    if (!files) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    bool dashdash = false;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!dashdash && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
            help(stdout);
            goto out;
        } else if (!dashdash && strcmp(argv[i], "--") == 0) {
            dashdash = true;
        } else if (!dashdash && (v = cli_flag_value(argc, argv, &i, "--source"))) {
            source = v;
        } else if (!dashdash && argv[i][0] == '-' && argv[i][1]) {
            cli_error("tag: unknown option '%s' (see shoebox tag --help)", argv[i]);
            rc = CLI_EXIT_USAGE;
            goto out;
        } else if (!verb && (strcmp(argv[i], "add") == 0 || strcmp(argv[i], "remove") == 0 ||
                             strcmp(argv[i], "rm") == 0 || strcmp(argv[i], "list") == 0)) {
            verb = argv[i];
        } else if (verb && strcmp(verb, "list") != 0 && !tag) {
            tag = argv[i];
        } else {
            files[nfiles++] = argv[i];
        }
    }
    if (!verb)
        verb = "list"; /* `shoebox tags FILE...` */
    bool listing = strcmp(verb, "list") == 0;
    if (nfiles == 0 || (!listing && !tag) || (source && !*source)) {
        help(stderr);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (catalog_open(ctx->db_path, listing, &cat, &err)) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    if (ctx->json) {
        root = cJSON_CreateObject();
        photos = cJSON_AddArrayToObject(root, "photos");
        if (!root || !photos) {
            cli_error("out of memory");
            rc = CLI_EXIT_FAIL;
            goto out;
        }
    }
    if (!listing && catalog_begin(cat, &err)) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    for (int i = 0; i < nfiles; i++) {
        int64_t id;
        if (resolve(cat, files[i], &id, &err)) {
            cli_error("%s", err.msg);
            rc = CLI_EXIT_FAIL;
            continue;
        }
        cJSON *obj = NULL;
        if (photos) {
            obj = cJSON_CreateObject();
            cJSON_AddItemToArray(photos, obj);
            char *clean = sb_utf8_clean(files[i]);
            cJSON_AddStringToObject(obj, "file", clean ? clean : "");
            free(clean);
            cJSON_AddNumberToObject(obj, "id", (double)id);
        }
        int r = SB_OK;
        if (strcmp(verb, "add") == 0) {
            r = catalog_tag_add(cat, id, tag, CATALOG_TAG_USER, (double)NAN, &err);
            if (obj)
                cJSON_AddBoolToObject(obj, "added", r == SB_OK);
        } else if (!listing) {
            int64_t removed = 0;
            r = catalog_tag_remove(cat, id, tag, source, &removed, &err);
            if (!r && removed == 0 && !ctx->json)
                fprintf(stderr, "shoebox: '%s' has no tag '%s'%s%s\n", files[i], tag,
                        source ? " from " : "", source ? source : "");
            if (obj)
                cJSON_AddNumberToObject(obj, "removed", (double)removed);
        } else {
            struct list_ctx l = { obj ? cJSON_AddArrayToObject(obj, "tags") : NULL, 0 };
            if (!obj)
                printf("%s\n", files[i]);
            r = catalog_photo_tags(cat, id, on_tag, &l, &err);
            if (!r && !obj && l.count == 0)
                printf("  (no tags)\n");
        }
        if (r) {
            cli_error("%s", err.msg);
            rc = CLI_EXIT_FAIL;
            if (r == SB_EDB)
                break;
        }
    }
    if (!listing) {
        if (rc == CLI_EXIT_OK && catalog_commit(cat, &err)) {
            cli_error("%s", err.msg);
            rc = CLI_EXIT_FAIL;
        }
        if (rc != CLI_EXIT_OK)
            catalog_rollback(cat); /* all or nothing: a typo in one FILE changes none */
    }
    if (root && rc == CLI_EXIT_OK)
        rc = cli_print_json(root);
out:
    cJSON_Delete(root);
    catalog_close(cat);
    free(files);
    return rc;
}
