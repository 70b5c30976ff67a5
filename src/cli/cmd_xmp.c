/* cmd_xmp.c - `shoebox xmp write PATH... [--dry-run]`: the catalog's keywords (user and
 * automatic tags by default) and captions, merged into XMP sidecars beside the photos.
 * Originals are never written; an existing sidecar keeps everything it had. */
#include "cli.h"
#include "output.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/util.h"
#include "shoebox/xmp.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void help(FILE *f)
{
    fprintf(f,
            "usage: shoebox xmp write [options] PATH...\n\n"
            "Writes the tags and caption of every cataloged photo under PATH (folders or files)\n"
            "into its XMP sidecar (IMG_0042.xmp, or IMG_0042.CR2.xmp when that exists), which\n"
            "Lightroom Classic, Capture One, digiKam and darktable read. An existing sidecar is\n"
            "merged into: keywords are added to dc:subject and lr:hierarchicalSubject, a\n"
            "caption to dc:description only when it has none; nothing is removed. Each sidecar\n"
            "is replaced atomically. Originals are never modified.\n\n"
            "options:\n"
            "  --dry-run          show what would change; write nothing\n"
            "  --source LIST      tag sources to write, comma-separated (default user,auto;\n"
            "                     also xmp, lightroom, takeout, apple, or all)\n"
            "  --min-score X      automatic tags need at least this probability (default 0)\n"
            "  --no-caption       do not write captions\n"
            "  --json             one JSON document: {\"sidecars\":[...]}\n");
}

struct file_ref {
    char *path;
    int64_t photo_id;
};

struct file_list {
    struct file_ref *v;
    size_t n, cap;
    bool oom;
};

static int on_file(void *user, const struct catalog_file *f)
{
    struct file_list *l = user;
    if (f->status != CATALOG_FILE_OK || f->photo_id <= 0)
        return 0;
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 64;
        struct file_ref *nv = realloc(l->v, nc * sizeof(*nv));
        if (!nv) {
            l->oom = true;
            return SB_ENOMEM;
        }
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n].path = sb_strdup(f->path);
    l->v[l->n].photo_id = f->photo_id;
    if (!l->v[l->n].path) {
        l->oom = true;
        return SB_ENOMEM;
    }
    l->n++;
    return 0;
}

struct tag_pick {
    const char *sources; /* comma-separated, or "all" */
    float min_score;
    char **tags;
    size_t n;
    bool oom;
};

static bool source_wanted(const char *list, const char *source)
{
    if (strcmp(list, "all") == 0)
        return true;
    size_t n = strlen(source);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncasecmp(p, source, n) == 0)
            return true;
        p += len + (comma ? 1 : 0);
    }
    return false;
}

static int on_tag(void *user, const char *tag, const char *source, double score)
{
    struct tag_pick *t = user;
    if (!source_wanted(t->sources, source))
        return 0;
    if (strcmp(source, CATALOG_TAG_AUTO) == 0 && !isnan(score) && score < (double)t->min_score)
        return 0;
    for (size_t i = 0; i < t->n; i++) {
        if (strcasecmp(t->tags[i], tag) == 0)
            return 0;
    }
    char **nv = realloc(t->tags, (t->n + 1) * sizeof(char *));
    if (!nv || !(nv[t->n] = sb_strdup(tag))) {
        if (nv)
            t->tags = nv;
        t->oom = true;
        return SB_ENOMEM;
    }
    t->tags = nv;
    t->n++;
    return 0;
}

static void pick_release(struct tag_pick *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->tags[i]);
    free(t->tags);
    t->tags = NULL;
    t->n = 0;
}

/* Prints lines of changes indented (human mode) or adds them to a JSON array. */
static void emit_changes(const char *text, cJSON *arr)
{
    const char *p = text;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (arr) {
            char *line = malloc(len + 1);
            if (line) {
                memcpy(line, p, len);
                line[len] = '\0';
                char *clean = sb_utf8_clean(line);
                cJSON_AddItemToArray(arr, cJSON_CreateString(clean ? clean : ""));
                free(clean);
                free(line);
            }
        } else {
            printf("    %.*s\n", (int)len, p);
        }
        p = nl ? nl + 1 : NULL;
    }
}

int cmd_xmp(int argc, char **argv, struct cli_ctx *ctx)
{
    const char **paths = calloc((size_t)argc + 1, sizeof(char *));
    int npaths = 0, rc = CLI_EXIT_OK;
    bool dry = false, caption = true, have_verb = false;
    const char *sources = "user,auto";
    float min_score = 0.0f;
    struct catalog *cat = NULL;
    struct file_list files = { 0 };
    cJSON *root = NULL, *arr = NULL;
    struct sb_err err;
    sb_err_clear(&err);
    if (!paths) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help(stdout);
            goto out;
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry = true;
        } else if (strcmp(argv[i], "--no-caption") == 0) {
            caption = false;
        } else if ((v = cli_flag_value(argc, argv, &i, "--source"))) {
            sources = v;
        } else if ((v = cli_flag_value(argc, argv, &i, "--min-score"))) {
            if (sb_parse_f32(v, 0.0f, 1.0f, &min_score, &err)) {
                cli_error("--min-score: %s", err.msg);
                rc = CLI_EXIT_USAGE;
                goto out;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("xmp: unknown option '%s' (see shoebox xmp --help)", argv[i]);
            rc = CLI_EXIT_USAGE;
            goto out;
        } else if (!have_verb) {
            if (strcmp(argv[i], "write") != 0) {
                cli_error("xmp: unknown action '%s' (xmp write PATH...)", argv[i]);
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            have_verb = true;
        } else {
            paths[npaths++] = argv[i];
        }
    }
    if (!have_verb || npaths == 0 || !*sources) {
        help(stderr);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (catalog_open(ctx->db_path, true, &cat, &err)) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    for (int i = 0; i < npaths; i++) {
        char *real = realpath(paths[i], NULL);
        if (!real) {
            cli_error("'%s': no such file or folder", paths[i]);
            rc = CLI_EXIT_FAIL;
            continue;
        }
        size_t before = files.n;
        int r = catalog_files_under(cat, real, on_file, &files, &err);
        free(real);
        if (r) {
            cli_error("%s", files.oom ? "out of memory" : err.msg);
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        if (files.n == before)
            fprintf(stderr, "shoebox: no cataloged photos under '%s' (run shoebox index)\n",
                    paths[i]);
    }
    if (ctx->json) {
        root = cJSON_CreateObject();
        arr = cJSON_AddArrayToObject(root, "sidecars");
        if (!root || !arr) {
            cli_error("out of memory");
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        cJSON_AddBoolToObject(root, "dry_run", dry);
    } else if (dry) {
        printf("dry run: nothing is written\n");
    }
    int64_t written = 0, created_n = 0, unchanged = 0, failed = 0;
    for (size_t i = 0; i < files.n; i++) {
        struct tag_pick tp = { sources, min_score, NULL, 0, false };
        char *cap = NULL, *sidecar = NULL;
        struct sb_buf changes;
        sb_buf_init(&changes);
        int r = catalog_photo_tags(cat, files.v[i].photo_id, on_tag, &tp, &err);
        if (!r && caption &&
            catalog_text_get(cat, files.v[i].photo_id, CATALOG_TEXT_CAPTION, &cap, NULL, NULL))
            cap = NULL;
        bool created = false;
        size_t nch = 0;
        if (!r && (tp.n || cap))
            r = xmp_write_sidecar(files.v[i].path, (const char *const *)tp.tags, tp.n, cap, dry,
                                  &sidecar, &created, &nch, &changes, &err);
        if (r) {
            failed++;
            rc = CLI_EXIT_FAIL;
            cli_error("%s", tp.oom ? "out of memory" : err.msg);
        } else if (nch == 0) {
            unchanged++;
        } else {
            written++;
            created_n += created;
            if (arr) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddItemToArray(arr, o);
                char *c1 = sb_utf8_clean(files.v[i].path), *c2 = sb_utf8_clean(sidecar);
                cJSON_AddStringToObject(o, "photo", c1 ? c1 : "");
                cJSON_AddStringToObject(o, "sidecar", c2 ? c2 : "");
                free(c1);
                free(c2);
                cJSON_AddBoolToObject(o, "created", created);
                cJSON_AddBoolToObject(o, "written", !dry);
                emit_changes(changes.data, cJSON_AddArrayToObject(o, "changes"));
            } else {
                printf("%s %s\n", created ? "new   " : "merge ", sidecar);
                emit_changes(changes.data, NULL);
            }
        }
        sb_buf_release(&changes);
        pick_release(&tp);
        free(cap);
        free(sidecar);
    }
    if (root && cli_print_json(root) != CLI_EXIT_OK)
        rc = CLI_EXIT_FAIL;
    fprintf(stderr, "%s%lld sidecars (%lld new), %lld already up to date, %lld failed\n",
            dry ? "would write " : "wrote ", (long long)written, (long long)created_n,
            (long long)unchanged, (long long)failed);
out:
    for (size_t i = 0; i < files.n; i++)
        free(files.v[i].path);
    free(files.v);
    cJSON_Delete(root);
    catalog_close(cat);
    free(paths);
    return rc;
}
