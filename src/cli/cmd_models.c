/* cmd_models.c - `shoebox models`: the models that have vectors in the catalog (name, dimension,
 * how many photos, and which one search uses: the remembered setting model_name). Switching is
 * `--model DIR` on index / search, remembered per catalog. */
#include "cli.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char models_help[] =
    "usage: shoebox models [--json]\n\n"
    "Lists the models whose embeddings the catalog holds: name (model id), dimension, number\n"
    "of photos with a vector, and the one search uses (marked *: the model the catalog\n"
    "remembers from the last `index --model DIR`). To switch, index with another model\n"
    "(`shoebox --model DIR index PATH...`); vectors of every model are kept.\n";

int cmd_models(int argc, char **argv, struct cli_ctx *ctx)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(models_help, stdout);
            return CLI_EXIT_OK;
        }
        cli_error("models: unexpected argument '%s'", argv[i]);
        return CLI_EXIT_USAGE;
    }
    struct catalog *cat = NULL;
    struct catalog_model_info *list = NULL;
    size_t n = 0;
    char current[128] = "", dir[4096] = "";
    struct sb_err err;
    int rc = CLI_EXIT_OK;
    if (access(ctx->db_path, F_OK) == 0) {
        if (catalog_open(ctx->db_path, true, &cat, &err) ||
            catalog_models_list(cat, &list, &n, &err)) {
            cli_error("%s", err.msg);
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        if (catalog_setting_get(cat, "model_name", current, sizeof(current), NULL))
            current[0] = '\0';
        if (catalog_setting_get(cat, "model_dir", dir, sizeof(dir), NULL))
            dir[0] = '\0';
    }
    if (ctx->json) {
        cJSON *root = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(root, "models");
        for (size_t i = 0; i < n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", list[i].name);
            cJSON_AddNumberToObject(o, "dim", list[i].dim);
            cJSON_AddNumberToObject(o, "vectors", (double)list[i].vectors);
            cJSON_AddBoolToObject(o, "current", strcmp(list[i].name, current) == 0);
            cJSON_AddItemToArray(arr, o);
        }
        if (current[0])
            cJSON_AddStringToObject(root, "current", current);
        if (dir[0])
            cJSON_AddStringToObject(root, "model_dir", dir);
        rc = cli_print_json(root);
        cJSON_Delete(root);
        goto out;
    }
    if (n == 0) {
        printf("no model has vectors in the catalog yet: run `shoebox --model DIR index PATH`\n");
        goto out;
    }
    printf("  %-48s %6s %10s\n", "model", "dim", "photos");
    for (size_t i = 0; i < n; i++)
        printf("%c %-48s %6d %10lld\n", strcmp(list[i].name, current) == 0 ? '*' : ' ',
               list[i].name, list[i].dim, (long long)list[i].vectors);
    if (dir[0])
        printf("\n* used by search (model folder %s)\n", dir);
out:
    free(list);
    catalog_close(cat);
    return rc;
}
