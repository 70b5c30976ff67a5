/* cmd_search.c - `shoebox search TERM [+|- TERM]...` and `shoebox similar FILE|ID`.
 *
 * The query vector comes from the terms (text through the text tower, image files through the
 * vision tower, or their stored vectors when the file is in the catalog, id:N from the store),
 * the scan from the model's vector store, filters from the catalog. Scores are cosines.
 * Default cutoffs (--min-score): for CLIP, a text query's matching photos score about
 * 0.25-0.35 and unrelated ones 0.10-0.20, so text queries cut at 0.20; photo-to-photo cosines
 * are higher across the board (unrelated photos ~0.4-0.6), so image-only queries and `similar`
 * cut at 0.50. */
#include "cli.h"
#include "output.h"
#include "searchctx.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/model.h"
#include "shoebox/search.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Text queries are ranked by pixels and words together: search_hybrid() (src/search/hybrid.c,
 * README "Words in photos") adds the photos' text and tag matches to the cosine. */
#define TEXT_MAX_HITS 5000 /* text matches considered per query (--text) */
#define EXCERPT_CHARS 72

static const char search_help[] =
    "usage: shoebox search [options] TERM [(+|-) TERM]...\n\n"
    "Finds photos by meaning. A TERM is text (\"poodle on a beach\"), the path of an image\n"
    "file (its embedding; it need not be in the catalog), or id:N (a cataloged photo). Terms\n"
    "are added (+) or subtracted (-), each optionally weighted as W:TERM (\"2:golden retriever\"\n"
    "+ ./pool.jpg - night). Without terms, lists the photos that pass the filters, newest "
    "first.\n\n"
    "options:\n"
    "  --after DATE       taken on or after DATE (YYYY-MM-DD)\n"
    "  --before DATE      taken before DATE\n"
    "  --in FOLDER        only photos under FOLDER\n"
    "  --camera TEXT      camera make or model contains TEXT\n"
    "  --tag TAG          has the tag TAG\n"
    "  --has-gps          has GPS coordinates\n"
    "  --format FMT       jpeg, png, heif, avif, webp, tiff, gif, raw\n"
    "  --min-score X      relevance cutoff (default 0.20 for text, 0.50 for image queries;\n"
    "                     SigLIP text: the cosine where its probability is 0.1)\n"
    "  --sort score|date  order of the results (default score)\n"
    "  --paths            print only paths, one per line (for xargs)\n"
    "  --text             search only the words in photos (OCR of `index --ocr`), no model\n"
    "                     needed; all words must match (else any word does)\n"
    "  -n N               at most N results (default 20)\n"
    "  --json             {\"results\":[{\"id\",\"path\",\"paths\",\"score\",\"taken_at\",\n"
    "                     \"text\":{\"ocr\":...}}...]}\n\n"
    "Text queries also match the words read in photos (`index --ocr`) and tags: a meme or a\n"
    "document showing the query's words comes first. Without a model, search uses those\n"
    "words only.\n";

static const char similar_help[] =
    "usage: shoebox similar [options] FILE|ID\n\n"
    "The photos most like FILE (an image file, in the catalog or not) or the cataloged photo\n"
    "ID (or id:N). The photo itself and its exact copies are not results; they are listed as\n"
    "its duplicates. Options: --min-score X (default 0.50), -n N, --paths, --json, and the\n"
    "filters of `shoebox search`.\n";

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- output ------------------------------------------------------------------------------- */

struct result {
    int64_t id;
    float score;
    bool has_score;
};

/* ---- words in photos ---------------------------------------------------------------------- */

struct texts_out {
    cJSON *obj;                        /* JSON: {"ocr": "..."} */
    char first[EXCERPT_CHARS * 4 + 8]; /* human: the first text, one line, shortened */
};

static int collect_text(void *user, const char *source, const char *text, double confidence)
{
    (void)confidence;
    struct texts_out *t = user;
    if (t->obj) {
        char *c = sb_utf8_clean(text);
        cJSON_AddStringToObject(t->obj, source, c ? c : "");
        free(c);
    }
    if (!t->first[0] && *text) {
        size_t k = 0, chars = 0;
        bool space = false;
        for (const char *p = text; *p && k + 8 < sizeof(t->first); p++) {
            unsigned char c = (unsigned char)*p;
            if (c == '\n' || c == '\t' || c == '\r' || c == ' ') {
                space = k > 0;
                continue;
            }
            if ((c & 0xC0) != 0x80 && chars++ >= EXCERPT_CHARS) {
                memcpy(t->first + k, "...", 3);
                k += 3;
                break;
            }
            if (space)
                t->first[k++] = ' ';
            space = false;
            t->first[k++] = (char)(c < 0x20 ? '?' : c);
        }
        t->first[k] = '\0';
    }
    return 0;
}

static cJSON *paths_json(const struct catalog_photo *p)
{
    return cli_json_strings(p->paths, p->npaths);
}

static int print_results(struct cli_search *s, const struct result *r, size_t n, bool paths_only,
                         cJSON *extra)
{
    struct sb_err err;
    cJSON *root = NULL, *list = NULL;
    if (s->ctx->json) {
        root = cJSON_CreateObject();
        list = cJSON_AddArrayToObject(root, "results");
    } else if (!paths_only && n) {
        printf("%-7s %-10s %s\n", "score", "date", "path");
    }
    for (size_t i = 0; i < n; i++) {
        struct catalog_photo p;
        if (catalog_photo_get(s->cat, r[i].id, &p, &err)) {
            cli_error("%s", err.msg);
            continue;
        }
        const char *path = p.npaths ? p.paths[0] : "";
        if (root) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "id", (double)p.id);
            char *c = sb_utf8_clean(path);
            cJSON_AddStringToObject(o, "path", c ? c : "");
            free(c);
            cJSON_AddItemToObject(o, "paths", paths_json(&p));
            if (r[i].has_score)
                cJSON_AddNumberToObject(o, "score", round((double)r[i].score * 1e6) / 1e6);
            else
                cJSON_AddNullToObject(o, "score");
            if (p.taken_at)
                cJSON_AddStringToObject(o, "taken_at", p.taken_at);
            else
                cJSON_AddNullToObject(o, "taken_at");
            struct texts_out t = { cJSON_CreateObject(), "" };
            catalog_photo_texts(s->cat, p.id, collect_text, &t, NULL);
            if (t.obj && t.obj->child)
                cJSON_AddItemToObject(o, "text", t.obj);
            else
                cJSON_Delete(t.obj);
            cJSON_AddItemToArray(list, o);
        } else if (paths_only) {
            printf("%s\n", path);
        } else {
            char score[16] = "-";
            if (r[i].has_score)
                snprintf(score, sizeof(score), "%.3f", (double)r[i].score);
            char date[11] = "-";
            if (p.taken_at)
                snprintf(date, sizeof(date), "%.10s", p.taken_at);
            if (p.npaths > 1)
                printf("%-7s %-10s %s (+%d %s)\n", score, date, path, p.npaths - 1,
                       p.npaths == 2 ? "copy" : "copies");
            else
                printf("%-7s %-10s %s\n", score, date, path);
            struct texts_out t = { NULL, "" };
            catalog_photo_texts(s->cat, p.id, collect_text, &t, NULL);
            if (t.first[0]) {
                char *c = sb_utf8_clean(t.first);
                printf("%-18s \"%s\"\n", "", c ? c : t.first);
                free(c);
            }
        }
        catalog_photo_release(&p);
    }
    if (root) {
        if (extra) {
            cJSON *child = extra->child;
            while (child) {
                cJSON *next = child->next;
                cJSON_AddItemToObject(root, child->string,
                                      cJSON_DetachItemViaPointer(extra, child));
                child = next;
            }
        }
        char *out = cJSON_PrintUnformatted(root);
        if (out)
            puts(out);
        cJSON_free(out);
        cJSON_Delete(root);
    } else if (!paths_only && n == 0) {
        fprintf(stderr, "no photo matches well enough%s\n",
                s->min_score_default ? " (lower --min-score to see weaker matches)" : "");
    }
    cJSON_Delete(extra);
    return CLI_EXIT_OK;
}

/* ---- search ----------------------------------------------------------------------------- */

static int run_query(struct cli_search *s, const float *q, const int64_t *exclude, size_t nexclude,
                     struct result **out, size_t *nout)
{
    struct sb_err err;
    const struct vec_matrix *m = vec_store_matrix(s->store);
    unsigned char *mask = NULL;
    int rc = cli_search_mask(s, &mask);
    if (rc)
        return rc;
    for (size_t i = 0; i < nexclude; i++) {
        int64_t row = search_find_row(m, exclude[i]);
        if (row >= 0)
            mask[row] = 0;
    }
    size_t k = s->ctx->n > 0 ? (size_t)s->ctx->n : 20;
    struct search_hit *hits = malloc(k * sizeof(*hits));
    struct result *res = malloc(k * sizeof(*res));
    size_t nh = 0;
    if (!hits || !res) {
        free(hits);
        free(res);
        free(mask);
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    if (search_topk(m, q, mask, s->min_score, k, cli_pool(s->ctx), hits, &nh, &err)) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_FAIL;
    }
    for (size_t i = 0; i < nh; i++)
        res[i] = (struct result){ hits[i].photo_id, hits[i].score, true };
    free(hits);
    free(mask);
    *out = res;
    *nout = rc ? 0 : nh;
    return rc;
}

static int sort_by_date(struct cli_search *s, struct result *r, size_t n)
{
    /* the results are few (-n): fetch each date and insertion-sort, newest first */
    char **dates = calloc(n ? n : 1, sizeof(char *));
    if (!dates)
        return CLI_EXIT_FAIL;
    for (size_t i = 0; i < n; i++) {
        struct catalog_photo p;
        if (catalog_photo_get(s->cat, r[i].id, &p, NULL) == SB_OK) {
            dates[i] = p.taken_at ? sb_strdup(p.taken_at) : NULL;
            catalog_photo_release(&p);
        }
    }
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0; j--) {
            const char *a = dates[j - 1] ? dates[j - 1] : "", *b = dates[j] ? dates[j] : "";
            if (strcmp(a, b) >= 0)
                break;
            struct result t = r[j];
            r[j] = r[j - 1];
            r[j - 1] = t;
            char *d = dates[j];
            dates[j] = dates[j - 1];
            dates[j - 1] = d;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(dates[i]);
    free(dates);
    return CLI_EXIT_OK;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* `search --text`: the photos whose texts have every word (else any word), best bm25 first;
 * score is bm25 relative to the best hit (1.0 for the best). */
static int run_text_query(struct cli_search *s, const char *words, struct result **out,
                          size_t *nout)
{
    struct sb_err err;
    struct catalog_text_hit *hits = NULL;
    size_t nh = 0, k = s->ctx->n > 0 ? (size_t)s->ctx->n : 20;
    int64_t *ids = NULL;
    size_t nids = 0;
    int rc = catalog_text_search(s->cat, words, true, NULL, TEXT_MAX_HITS, &hits, &nh, &err);
    if (!rc && nh == 0) {
        free(hits);
        hits = NULL;
        rc = catalog_text_search(s->cat, words, false, NULL, TEXT_MAX_HITS, &hits, &nh, &err);
    }
    if (!rc && s->filtered)
        rc = catalog_filter_photos(s->cat, &s->filter, &ids, &nids, &err);
    if (rc) {
        cli_error("%s", err.msg);
        free(hits);
        return err.code == SB_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    struct result *res = calloc(k, sizeof(*res));
    size_t m = 0;
    for (size_t i = 0; res && i < nh && m < k; i++) {
        if (s->filtered && !bsearch(&hits[i].photo_id, ids, nids, sizeof(*ids), cmp_id))
            continue;
        res[m++] =
            (struct result){ hits[i].photo_id, (float)(hits[i].score / hits[0].score), true };
    }
    free(ids);
    free(hits);
    if (!res) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    *out = res;
    *nout = m;
    return CLI_EXIT_OK;
}

/* Re-ranks the cosine results res (computed with a deeper k) with the text and tag matches
 * (src/search/hybrid.c has the formula). */
static int hybrid_rank(struct cli_search *s, const float *q, const char *words, struct result **res,
                       size_t *nres)
{
    struct sb_err err;
    const struct vec_matrix *m = vec_store_matrix(s->store);
    size_t k = s->ctx->n > 0 ? (size_t)s->ctx->n : 20;
    unsigned char *mask = NULL;
    int rc = cli_search_mask(s, &mask);
    if (rc)
        return rc;
    struct search_hit *hits = malloc((*nres ? *nres : 1) * sizeof(*hits));
    struct search_hit *out = NULL;
    size_t nout = 0;
    if (!hits) {
        free(mask);
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    for (size_t i = 0; i < *nres; i++) {
        int64_t row = search_find_row(m, (*res)[i].id);
        hits[i] = (struct search_hit){ (*res)[i].id, row < 0 ? 0 : (size_t)row, (*res)[i].score };
    }
    if (search_hybrid(s->cat, &s->filter, m, mask, q, words, hits, *nres, k, &out, &nout, &err)) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_FAIL;
    } else {
        struct result *r = realloc(*res, (nout ? nout : 1) * sizeof(*r));
        if (!r) {
            rc = CLI_EXIT_FAIL;
        } else {
            for (size_t i = 0; i < nout; i++)
                r[i] = (struct result){ out[i].photo_id, out[i].score, true };
            *res = r;
            *nres = nout;
        }
    }
    free(out);
    free(hits);
    free(mask);
    return rc;
}

int cmd_search(int argc, char **argv, struct cli_ctx *ctx)
{
    struct cli_search s;
    char **terms_argv = NULL;
    int nterms = 0;
    int rc = cli_search_init(&s, ctx, argc, argv, search_help, &terms_argv, &nterms);
    if (rc) {
        cli_search_release(&s);
        free(terms_argv);
        return rc == -1 ? CLI_EXIT_OK : rc;
    }
    struct search_term *terms = NULL;
    size_t n = 0;
    struct sb_err err;
    struct result *res = NULL;
    size_t nres = 0;
    float *vecs = NULL, *weights = NULL, *q = NULL;
    char *words = NULL;
    if (s.text_only) {
        /* the words as typed: no term algebra, no model */
        struct sb_buf b;
        sb_buf_init(&b);
        for (int i = 0; i < nterms; i++) {
            if (b.len)
                sb_buf_puts(&b, " ");
            sb_buf_puts(&b, terms_argv[i]);
        }
        if (!b.len) {
            sb_buf_release(&b);
            cli_error("search --text needs words to look for");
            rc = CLI_EXIT_USAGE;
            goto out;
        }
        rc = b.failed ? CLI_EXIT_FAIL : run_text_query(&s, b.data, &res, &nres);
        sb_buf_release(&b);
        if (!rc) {
            cJSON *extra = cJSON_CreateObject();
            cJSON_AddStringToObject(extra, "mode", "text");
            rc = print_results(&s, res, nres, s.paths_only, extra);
        }
        goto out;
    }
    if (search_parse_terms(nterms, terms_argv, is_file, &terms, &n, &err)) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (n == 0) {
        /* filters only: newest first */
        int64_t *ids = NULL;
        size_t nids = 0;
        size_t k = ctx->n > 0 ? (size_t)ctx->n : 20;
        if (catalog_photos_by_date(s.cat, &s.filter, 0, k, &ids, &nids, &err)) {
            cli_error("%s", err.msg);
            rc = CLI_EXIT_FAIL;
            goto out;
        }
        res = calloc(nids ? nids : 1, sizeof(*res));
        for (size_t i = 0; res && i < nids; i++)
            res[i] = (struct result){ ids[i], 0.0f, false };
        free(ids);
        rc = print_results(&s, res, res ? nids : 0, s.paths_only, NULL);
        goto out;
    }
    bool any_text = false, any_image = false;
    for (size_t i = 0; i < n; i++) {
        any_text |= terms[i].kind == SEARCH_TERM_TEXT;
        any_image |= terms[i].kind != SEARCH_TERM_TEXT;
    }
    if (s.min_score_default)
        s.min_score = any_text ? SEARCH_TEXT_MIN_SCORE : SEARCH_IMAGE_MIN_SCORE;
    words = search_query_words(terms, n);
    char setting[8];
    if (words && !any_image && !ctx->model_dir &&
        catalog_setting_get(s.cat, "model_dir", s.model_dir, sizeof(s.model_dir), NULL) != SB_OK &&
        (catalog_setting_get(s.cat, "ocr", setting, sizeof(setting), NULL) == SB_OK ||
         catalog_setting_get(s.cat, "captions", setting, sizeof(setting), NULL) == SB_OK)) {
        /* no model, but words read in photos or captions: search those */
        fprintf(stderr, "shoebox: no model: searching the words in photos only (as --text)\n");
        s.model_dir[0] = '\0';
        rc = run_text_query(&s, words, &res, &nres);
        if (!rc) {
            cJSON *extra = cJSON_CreateObject();
            cJSON_AddStringToObject(extra, "mode", "text");
            rc = print_results(&s, res, nres, s.paths_only, extra);
        }
        goto out;
    }
    s.model_dir[0] = '\0';
    rc = cli_search_open_store(&s, any_text);
    if (rc)
        goto out;
    if (s.min_score_default && any_text && s.text_model) /* SigLIP: probability >= 0.1 */
        s.min_score = clip_model_text_min_score(s.text_model);
    int dim = vec_store_matrix(s.store)->dim;
    vecs = malloc(n * (size_t)dim * sizeof(float));
    weights = malloc(n * sizeof(float));
    q = malloc((size_t)dim * sizeof(float));
    if (!vecs || !weights || !q) {
        cli_error("out of memory");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        weights[i] = terms[i].weight;
        rc = cli_search_term_vector(&s, &terms[i], vecs + i * (size_t)dim, NULL);
        if (rc)
            goto out;
    }
    if (search_combine(vecs, weights, n, dim, q, &err)) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (words) {
        /* deeper, so that the text bonus can lift photos from below the first k */
        int64_t n0 = ctx->n;
        ctx->n = (n0 > 0 ? n0 : 20) + 100;
        rc = run_query(&s, q, NULL, 0, &res, &nres);
        ctx->n = n0;
        if (!rc)
            rc = hybrid_rank(&s, q, words, &res, &nres);
    } else {
        rc = run_query(&s, q, NULL, 0, &res, &nres);
    }
    if (!rc && s.sort_date)
        rc = sort_by_date(&s, res, nres);
    if (!rc) {
        cJSON *extra = cJSON_CreateObject();
        cJSON_AddStringToObject(extra, "model", s.model_name);
        cJSON_AddNumberToObject(extra, "min_score", (double)s.min_score);
        rc = print_results(&s, res, nres, s.paths_only, extra);
    }
out:
    free(words);
    free(vecs);
    free(weights);
    free(q);
    free(res);
    search_terms_free(terms, n);
    cli_search_release(&s);
    free(terms_argv);
    return rc;
}

int cmd_similar(int argc, char **argv, struct cli_ctx *ctx)
{
    struct cli_search s;
    char **args = NULL;
    int nargs = 0;
    int rc = cli_search_init(&s, ctx, argc, argv, similar_help, &args, &nargs);
    if (rc) {
        cli_search_release(&s);
        free(args);
        return rc == -1 ? CLI_EXIT_OK : rc;
    }
    struct result *res = NULL;
    size_t nres = 0;
    float *q = NULL;
    struct catalog_photo self;
    memset(&self, 0, sizeof(self));
    if (nargs != 1) {
        cli_error("similar takes one FILE or ID (see shoebox similar --help)");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (s.min_score_default)
        s.min_score = SEARCH_IMAGE_MIN_SCORE;
    rc = cli_search_open_store(&s, false);
    if (rc)
        goto out;
    struct search_term t = { SEARCH_TERM_IMAGE, 1.0f, args[0], 0 };
    int64_t id;
    const char *a = args[0];
    if (!is_file(a) &&
        sb_parse_i64(strncmp(a, "id:", 3) == 0 ? a + 3 : a, 1, INT64_MAX, &id, NULL) == SB_OK) {
        t.kind = SEARCH_TERM_ID;
        t.id = id;
    } else if (!is_file(a)) {
        cli_error("'%s' is neither an image file nor a photo id", a);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    int dim = vec_store_matrix(s.store)->dim;
    q = malloc((size_t)dim * sizeof(float));
    if (!q) {
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    int64_t self_id = 0;
    rc = cli_search_term_vector(&s, &t, q, &self_id);
    if (rc)
        goto out;
    rc = run_query(&s, q, self_id ? &self_id : NULL, self_id ? 1 : 0, &res, &nres);
    if (rc)
        goto out;
    cJSON *extra = cJSON_CreateObject();
    cJSON_AddStringToObject(extra, "model", s.model_name);
    cJSON_AddNumberToObject(extra, "min_score", (double)s.min_score);
    if (self_id && catalog_photo_get(s.cat, self_id, &self, NULL) == SB_OK) {
        cJSON_AddNumberToObject(extra, "query_id", (double)self_id);
        cJSON_AddItemToObject(extra, "duplicates", paths_json(&self));
        if (!ctx->json && !s.paths_only && self.npaths > 1) {
            printf("the photo itself, %d copies:\n", self.npaths);
            for (int i = 0; i < self.npaths; i++)
                printf("  %s\n", self.paths[i]);
            printf("\n");
        }
    }
    rc = print_results(&s, res, nres, s.paths_only, extra);
out:
    catalog_photo_release(&self);
    free(q);
    free(res);
    cli_search_release(&s);
    free(args);
    return rc;
}
