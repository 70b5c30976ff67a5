/* cmd_dupes.c - `shoebox dupes`: exact duplicates (one content, several files) and near
 * duplicates (resized, recompressed, cropped copies, bursts: embedding cosine >= --threshold),
 * with the best copy of each group marked. Read-only: nothing is moved or deleted. */
#include "cli.h"
#include "output.h"
#include "searchctx.h"

#include "shoebox/err.h"
#include "shoebox/search.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char dupes_help[] =
    "usage: shoebox dupes [options]\n\n"
    "Groups of exact duplicates (the same content in several files) and of near duplicates\n"
    "(resized, recompressed or slightly cropped copies, burst shots: photos whose embeddings\n"
    "have cosine >= the threshold). In each group the best copy is marked: most pixels, then\n"
    "an original camera format (raw, heif, jpeg over png, webp, gif), then EXIF, then size.\n"
    "Read-only: nothing is moved or deleted.\n\n"
    "options:\n"
    "  --threshold X   near-duplicate cosine threshold (default 0.95)\n"
    "  --exact         exact duplicates only (no model needed)\n"
    "  --json          {\"exact\":[...],\"near\":[...]}\n"
    "  and the filters of `shoebox search` (--in, --after, --before, --camera, ...)\n";

static int format_rank(const char *f)
{
    static const char *const order[] = { "raw", "heif", "avif", "jpeg", "tiff",
                                         "png", "webp", "gif",  NULL };
    for (int i = 0; f && order[i]; i++) {
        if (strcmp(f, order[i]) == 0)
            return 100 - i;
    }
    return 0;
}

/* a is a better copy than b */
static bool better(const struct catalog_photo *a, const struct catalog_photo *b)
{
    int64_t pa = (int64_t)a->width * a->height, pb = (int64_t)b->width * b->height;
    if (pa != pb)
        return pa > pb;
    int fa = format_rank(a->format), fb = format_rank(b->format);
    if (fa != fb)
        return fa > fb;
    if (a->has_exif != b->has_exif)
        return a->has_exif;
    return a->size > b->size;
}

static cJSON *photo_json(const struct catalog_photo *p, bool best)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)p->id);
    char *c = sb_utf8_clean(p->npaths ? p->paths[0] : "");
    cJSON_AddStringToObject(o, "path", c ? c : "");
    free(c);
    cJSON_AddItemToObject(o, "paths", cli_json_strings(p->paths, p->npaths));
    cJSON_AddNumberToObject(o, "width", p->width);
    cJSON_AddNumberToObject(o, "height", p->height);
    cJSON_AddStringToObject(o, "format", p->format ? p->format : "");
    cJSON_AddBoolToObject(o, "has_exif", p->has_exif);
    cJSON_AddNumberToObject(o, "size", (double)p->size);
    cJSON_AddBoolToObject(o, "best", best);
    return o;
}

static void print_photo(const struct catalog_photo *p, bool best)
{
    char desc[64];
    snprintf(desc, sizeof(desc), "%dx%d %s%s", p->width, p->height, p->format ? p->format : "?",
             p->has_exif ? " exif" : "");
    printf("  %s %-24s %s\n", best ? "*" : " ", desc, p->npaths ? p->paths[0] : "");
    for (int i = 1; i < p->npaths; i++)
        printf("    %-24s %s\n", "", p->paths[i]);
}

/* exact: one photo, several paths; the first (oldest) path is kept as "best" */
static int exact_groups(struct cli_search *s, cJSON *out, int64_t *ngroups)
{
    struct sb_err err;
    int64_t *ids = NULL;
    size_t n = 0;
    if (catalog_exact_dupes(s->cat, &ids, &n, &err)) {
        cli_error("%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    /* apply the filters */
    int64_t *keep = NULL;
    size_t nkeep = 0;
    if (s->filtered && catalog_filter_photos(s->cat, &s->filter, &keep, &nkeep, &err)) {
        cli_error("%s", err.msg);
        free(ids);
        return CLI_EXIT_FAIL;
    }
    if (!out && n)
        printf("exact duplicates (same content):\n");
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s->filtered) {
            while (j < nkeep && keep[j] < ids[i])
                j++;
            if (j >= nkeep || keep[j] != ids[i])
                continue;
        }
        struct catalog_photo p;
        if (catalog_photo_get(s->cat, ids[i], &p, &err))
            continue;
        (*ngroups)++;
        if (out) {
            cJSON *g = cJSON_CreateObject();
            cJSON_AddNumberToObject(g, "id", (double)p.id);
            cJSON_AddItemToObject(g, "paths", cli_json_strings(p.paths, p.npaths));
            cJSON_AddItemToArray(out, g);
        } else {
            printf("  * %s\n", p.paths[0]);
            for (int k = 1; k < p.npaths; k++)
                printf("    %s\n", p.paths[k]);
        }
        catalog_photo_release(&p);
    }
    free(ids);
    free(keep);
    return CLI_EXIT_OK;
}

static int near_groups(struct cli_search *s, cJSON *out, int64_t *ngroups)
{
    struct sb_err err;
    const struct vec_matrix *m = vec_store_matrix(s->store);
    unsigned char *mask = NULL;
    int rc = cli_search_mask(s, &mask);
    if (rc)
        return rc;
    int64_t *group = malloc((m->n ? m->n : 1) * sizeof(*group));
    if (!group) {
        free(mask);
        return CLI_EXIT_FAIL;
    }
    if (vec_store_near_groups(s->store, mask, s->threshold, cli_pool(s->ctx), group, &err)) {
        cli_error("%s", err.msg);
        free(mask);
        free(group);
        return CLI_EXIT_FAIL;
    }
    if (!out)
        printf("%snear duplicates (cosine >= %.2f):\n", *ngroups ? "\n" : "", (double)s->threshold);
    int64_t found = 0;
    for (size_t root = 0; root < m->n; root++) {
        if (group[root] != (int64_t)root)
            continue;
        /* the members of this group, and the best one */
        size_t nmem = 0, best = root;
        struct catalog_photo bp;
        bool have_best = false;
        for (size_t r = root; r < m->n; r++) {
            if (group[r] != (int64_t)root)
                continue;
            nmem++;
            struct catalog_photo p;
            if (catalog_photo_get(s->cat, m->ids[r], &p, NULL))
                continue;
            if (!have_best || better(&p, &bp)) {
                if (have_best)
                    catalog_photo_release(&bp);
                bp = p;
                best = r;
                have_best = true;
            } else {
                catalog_photo_release(&p);
            }
        }
        if (have_best)
            catalog_photo_release(&bp);
        if (nmem < 2)
            continue;
        found++;
        cJSON *members = NULL;
        if (out) {
            cJSON *g = cJSON_CreateObject();
            members = cJSON_AddArrayToObject(g, "members");
            cJSON_AddItemToArray(out, g);
        } else {
            printf("%s", found > 1 ? "\n" : "");
        }
        float *qv = malloc((size_t)m->dim * sizeof(float));
        if (qv)
            search_row(m, best, qv);
        for (size_t r = root; r < m->n; r++) {
            if (group[r] != (int64_t)root)
                continue;
            struct catalog_photo p;
            if (catalog_photo_get(s->cat, m->ids[r], &p, NULL))
                continue;
            if (members) {
                cJSON *o = photo_json(&p, r == best);
                if (qv)
                    cJSON_AddNumberToObject(o, "score", (double)search_score_row(m, qv, r));
                cJSON_AddItemToArray(members, o);
            } else {
                print_photo(&p, r == best);
            }
            catalog_photo_release(&p);
        }
        free(qv);
    }
    *ngroups += found;
    free(mask);
    free(group);
    return CLI_EXIT_OK;
}

int cmd_dupes(int argc, char **argv, struct cli_ctx *ctx)
{
    struct cli_search s;
    char **rest = NULL;
    int nrest = 0;
    bool exact_only = false;
    /* --exact is ours; the rest are the search options */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--exact") == 0) {
            exact_only = true;
            memmove(&argv[i], &argv[i + 1], (size_t)(argc - i - 1) * sizeof(char *));
            argc--;
            i--;
        }
    }
    int rc = cli_search_init(&s, ctx, argc, argv, dupes_help, &rest, &nrest);
    if (!rc && nrest) {
        cli_error("dupes: unexpected argument '%s'", rest[0]);
        rc = CLI_EXIT_USAGE;
    }
    if (rc) {
        cli_search_release(&s);
        free(rest);
        return rc == -1 ? CLI_EXIT_OK : rc;
    }
    cJSON *root = ctx->json ? cJSON_CreateObject() : NULL;
    cJSON *exact = root ? cJSON_AddArrayToObject(root, "exact") : NULL;
    int64_t nexact = 0, nnear = 0;
    rc = exact_groups(&s, exact, &nexact);
    if (!rc && !exact_only) {
        if (s.ctx->model_dir || catalog_setting_get(s.cat, "model_name", s.model_name,
                                                    sizeof(s.model_name), NULL) == SB_OK) {
            rc = cli_search_open_store(&s, false);
            if (!rc) {
                cJSON *near = root ? cJSON_AddArrayToObject(root, "near") : NULL;
                if (root)
                    cJSON_AddNumberToObject(root, "threshold", (double)s.threshold);
                rc = near_groups(&s, near, &nnear);
            }
        } else if (!root) {
            fprintf(stderr, "near duplicates need embeddings: index with --model DIR\n");
        }
    }
    if (root) {
        char *o = cJSON_PrintUnformatted(root);
        if (o)
            puts(o);
        cJSON_free(o);
        cJSON_Delete(root);
    } else if (!rc && nexact + nnear == 0) {
        fprintf(stderr, "no duplicates found\n");
    }
    cli_search_release(&s);
    free(rest);
    return rc;
}
