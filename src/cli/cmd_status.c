/* cmd_status.c - `shoebox status` and `shoebox errors`. */
#include "cli.h"
#include "output.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Opens the catalog read-only; a catalog that does not exist yet is an empty one. */
static int open_catalog(struct cli_ctx *ctx, struct catalog **cat)
{
    struct sb_err err;
    if (access(ctx->db_path, F_OK) != 0) {
        *cat = NULL;
        return CLI_EXIT_OK;
    }
    if (catalog_open(ctx->db_path, true, cat, &err)) {
        cli_error("%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static bool wants_help(int argc, char **argv, const char *text)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(text, stdout);
            return true;
        }
    }
    return false;
}

static int print_json(cJSON *root)
{
    int rc = cli_print_json(root);
    cJSON_Delete(root);
    return rc;
}

int cmd_status(int argc, char **argv, struct cli_ctx *ctx)
{
    if (wants_help(argc, argv,
                   "usage: shoebox status [--json]\n\n"
                   "Counts: files, unique photos, duplicate copies, failures, and for each\n"
                   "stage (hash, probe, thumb, embed:<model>) how many are done, pending and\n"
                   "failed.\n"))
        return CLI_EXIT_OK;
    if (argc > 1) {
        cli_error("status: unexpected argument '%s'", argv[1]);
        return CLI_EXIT_USAGE;
    }
    struct catalog *cat = NULL;
    int rc = open_catalog(ctx, &cat);
    if (rc)
        return rc;
    struct catalog_status s;
    memset(&s, 0, sizeof(s));
    struct sb_err err;
    if (cat && catalog_status(cat, &s, &err)) {
        cli_error("%s", err.msg);
        catalog_close(cat);
        return CLI_EXIT_FAIL;
    }
    catalog_close(cat);
    if (ctx->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddNumberToObject(root, "files", (double)s.files);
        cJSON_AddNumberToObject(root, "photos", (double)s.photos);
        cJSON_AddNumberToObject(root, "duplicates", (double)s.duplicates);
        cJSON_AddNumberToObject(root, "failed", (double)s.failed);
        cJSON_AddNumberToObject(root, "missing", (double)s.missing);
        cJSON_AddNumberToObject(root, "ignored", (double)s.ignored);
        cJSON *stages = cJSON_AddObjectToObject(root, "stages");
        for (int i = 0; i < s.nstages; i++) {
            cJSON *o = cJSON_AddObjectToObject(stages, s.stages[i].name);
            cJSON_AddNumberToObject(o, "done", (double)s.stages[i].done);
            cJSON_AddNumberToObject(o, "pending", (double)s.stages[i].pending);
            cJSON_AddNumberToObject(o, "failed", (double)s.stages[i].failed);
        }
        cJSON_AddStringToObject(root, "catalog", ctx->db_path);
        return print_json(root);
    }
    printf("catalog     %s\n", ctx->db_path);
    printf("files       %lld\n", (long long)s.files);
    printf("photos      %lld\n", (long long)s.photos);
    printf("duplicates  %lld\n", (long long)s.duplicates);
    printf("failed      %lld\n", (long long)s.failed);
    printf("missing     %lld\n", (long long)s.missing);
    printf("not images  %lld\n\n", (long long)s.ignored);
    printf("%-40s %10s %10s %10s\n", "stage", "done", "pending", "failed");
    for (int i = 0; i < s.nstages; i++)
        printf("%-40s %10lld %10lld %10lld\n", s.stages[i].name, (long long)s.stages[i].done,
               (long long)s.stages[i].pending, (long long)s.stages[i].failed);
    return CLI_EXIT_OK;
}

struct errors_out {
    cJSON *list; /* NULL: print a table */
    int64_t count;
};

static int on_error(void *user, const char *path, const char *stage, const char *error)
{
    struct errors_out *o = user;
    o->count++;
    char *p = sb_utf8_clean(path);
    char *e = sb_utf8_clean(error);
    if (!p || !e) {
        free(p);
        free(e);
        return SB_ENOMEM;
    }
    if (o->list) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "path", p);
        cJSON_AddStringToObject(item, "stage", stage);
        cJSON_AddStringToObject(item, "error", e);
        cJSON_AddItemToArray(o->list, item);
    } else {
        printf("%-12s %s\n             %s\n", stage, p, e);
    }
    free(p);
    free(e);
    return SB_OK;
}

int cmd_errors(int argc, char **argv, struct cli_ctx *ctx)
{
    if (wants_help(argc, argv,
                   "usage: shoebox errors [--json]\n\n"
                   "Lists the files that could not be cataloged and why (stage and error).\n"
                   "`shoebox index --retry PATH` tries them again.\n"))
        return CLI_EXIT_OK;
    if (argc > 1) {
        cli_error("errors: unexpected argument '%s'", argv[1]);
        return CLI_EXIT_USAGE;
    }
    struct catalog *cat = NULL;
    int rc = open_catalog(ctx, &cat);
    if (rc)
        return rc;
    struct errors_out o = { ctx->json ? cJSON_CreateArray() : NULL, 0 };
    struct sb_err err;
    if (cat && catalog_errors(cat, on_error, &o, &err)) {
        cli_error("%s", err.msg);
        cJSON_Delete(o.list);
        catalog_close(cat);
        return CLI_EXIT_FAIL;
    }
    catalog_close(cat);
    if (ctx->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddItemToObject(root, "errors", o.list);
        return print_json(root);
    }
    if (o.count == 0)
        fprintf(stderr, "no errors\n");
    return CLI_EXIT_OK;
}
