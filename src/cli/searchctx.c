/* searchctx.c - shared set-up of search, similar and dupes (see searchctx.h). */
#include "searchctx.h"
#include "embedder.h"

#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/model.h"
#include "shoebox/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool valid_date(const char *d)
{
    /* YYYY-MM-DD, optionally followed by more of an ISO timestamp */
    if (strlen(d) < 10)
        return false;
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            if (d[i] != '-')
                return false;
        } else if (d[i] < '0' || d[i] > '9') {
            return false;
        }
    }
    int month = (d[5] - '0') * 10 + (d[6] - '0'), day = (d[8] - '0') * 10 + (d[9] - '0');
    if (month < 1 || month > 12 || day < 1 || day > 31)
        return false;
    return d[10] == '\0' || d[10] == 'T' || d[10] == ' ';
}

int cli_search_init(struct cli_search *s, struct cli_ctx *ctx, int argc, char **argv,
                    const char *help, char ***rest, int *nrest)
{
    memset(s, 0, sizeof(*s));
    s->ctx = ctx;
    s->min_score_default = true;
    s->threshold = 0.95f;
    *rest = calloc((size_t)argc + 1, sizeof(char *));
    *nrest = 0;
    if (!*rest) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    struct sb_err err;
    bool opts = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!opts || a[0] != '-' || strcmp(a, "-") == 0 || a[1] == '\0') {
            (*rest)[(*nrest)++] = argv[i];
        } else if (strcmp(a, "--") == 0) {
            opts = false;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(help, stdout);
            return -1;
        } else if ((v = cli_flag_value(argc, argv, &i, "--after")) ||
                   (v = cli_flag_value(argc, argv, &i, "--before"))) {
            if (!valid_date(v)) {
                cli_error("%s wants a date as YYYY-MM-DD, not '%s'", a, v);
                return CLI_EXIT_USAGE;
            }
            if (strncmp(a, "--after", 7) == 0)
                s->filter.after = v;
            else
                s->filter.before = v;
        } else if ((v = cli_flag_value(argc, argv, &i, "--in"))) {
            char *real = realpath(v, NULL);
            if (!real) {
                cli_error("--in '%s': no such folder", v);
                return CLI_EXIT_USAGE;
            }
            snprintf(s->cache_dir, sizeof(s->cache_dir), "%s", real); /* reused below */
            free(real);
            s->filter.folder = sb_strdup(s->cache_dir);
            s->cache_dir[0] = '\0';
        } else if ((v = cli_flag_value(argc, argv, &i, "--camera"))) {
            s->filter.camera = v;
        } else if ((v = cli_flag_value(argc, argv, &i, "--tag"))) {
            s->filter.tag = v;
        } else if ((v = cli_flag_value(argc, argv, &i, "--format"))) {
            s->filter.format = v;
        } else if (strcmp(a, "--has-gps") == 0) {
            s->filter.has_gps = true;
        } else if ((v = cli_flag_value(argc, argv, &i, "--min-score"))) {
            if (sb_parse_f32(v, -1.0f, 1.0f, &s->min_score, &err)) {
                cli_error("--min-score: %s", err.msg);
                return CLI_EXIT_USAGE;
            }
            s->min_score_default = false;
        } else if ((v = cli_flag_value(argc, argv, &i, "--threshold"))) {
            if (sb_parse_f32(v, 0.0f, 1.0f, &s->threshold, &err)) {
                cli_error("--threshold: %s", err.msg);
                return CLI_EXIT_USAGE;
            }
        } else if ((v = cli_flag_value(argc, argv, &i, "--sort"))) {
            if (strcmp(v, "date") == 0)
                s->sort_date = true;
            else if (strcmp(v, "score") != 0) {
                cli_error("--sort is score or date, not '%s'", v);
                return CLI_EXIT_USAGE;
            }
        } else if (strcmp(a, "--paths") == 0) {
            s->paths_only = true;
        } else if (strcmp(a, "--text") == 0) {
            s->text_only = true;
        } else if (a[0] == '-' && a[1] >= '0' && a[1] <= '9') {
            (*rest)[(*nrest)++] = argv[i]; /* a negative weight "-0.5:night": a term */
        } else {
            cli_error("unknown option '%s' (see --help)", a);
            return CLI_EXIT_USAGE;
        }
    }
    s->filtered = s->filter.after || s->filter.before || s->filter.folder || s->filter.camera ||
                  s->filter.tag || s->filter.format || s->filter.has_gps;
    if (access(ctx->db_path, F_OK) != 0) {
        cli_error("no catalog at '%s' yet: run `shoebox index PATH` first", ctx->db_path);
        return CLI_EXIT_FAIL;
    }
    if (catalog_open(ctx->db_path, true, &s->cat, &err)) {
        cli_error("%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    search_cache_dir(ctx->db_path, s->cache_dir, sizeof(s->cache_dir));
    return CLI_EXIT_OK;
}

static int load_tower(struct cli_search *s, int tower, struct clip_model **m, struct clip_ctx **c,
                      struct sb_err *err)
{
    struct clip_load_params lp = clip_load_default_params();
    lp.towers = tower;
    lp.precision = cli_clip_precision(s->ctx);
    /* One query, one process: converting the weights to bf16 and building oneDNN's kernels
     * costs far more than the fp32 pass over the mmapped weights (measured 2.0 s against
     * 0.97 s end to end at 100k photos). The vectors are comparable either way. */
    if (s->ctx->precision == CLI_PRECISION_AUTO)
        lp.precision = CLIP_PRECISION_FP32;
    /* A text query is ~10 rows: one BLAS thread beats waking (and spinning) a team of them. */
    lp.blas_threads = tower == CLIP_TOWER_TEXT ? 1 : s->ctx->threads;
    int rc = clip_model_load(s->model_dir, &lp, m, err);
    if (!rc)
        rc = clip_ctx_new(*m, 1, NULL, c, err);
    if (rc) {
        char msg[sizeof(err->msg)];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        return sb_fail(err, rc, "model '%s': %s", s->model_dir, msg);
    }
    return SB_OK;
}

int cli_search_open_store(struct cli_search *s, bool need_text)
{
    struct sb_err err;
    if (s->ctx->model_dir)
        snprintf(s->model_dir, sizeof(s->model_dir), "%s", s->ctx->model_dir);
    else if (catalog_setting_get(s->cat, "model_dir", s->model_dir, sizeof(s->model_dir), NULL))
        s->model_dir[0] = '\0';
    if (s->model_dir[0] && (need_text || s->ctx->model_dir)) {
        /* the text tower is small and fast to map: it also names the model */
        if (load_tower(s, CLIP_TOWER_TEXT, &s->text_model, &s->text_ctx, &err)) {
            cli_error("%s", err.msg);
            return CLI_EXIT_FAIL;
        }
        snprintf(s->model_name, sizeof(s->model_name), "%s", clip_model_id(s->text_model));
    } else if (need_text) {
        cli_error("searching by text needs the model: pass --model DIR (or set SHOEBOX_MODEL), "
                  "the one the photos were indexed with");
        return CLI_EXIT_USAGE;
    } else if (catalog_setting_get(s->cat, "model_name", s->model_name, sizeof(s->model_name),
                                   NULL)) {
        cli_error("no photo has been embedded yet: run `shoebox --model DIR index PATH`");
        return CLI_EXIT_FAIL;
    }
    if (vec_store_open(s->cat, s->model_name, s->cache_dir, &s->store, &err)) {
        if (err.code == SB_ENOENT)
            cli_error("no photo has vectors of model '%s' yet: run `shoebox --model %s index "
                      "PATH`",
                      s->model_name, s->model_dir[0] ? s->model_dir : "DIR");
        else
            cli_error("%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

static int embed_text(void *user, const char *text, float *out, int dim, struct sb_err *err)
{
    struct cli_search *s = user;
    (void)dim; /* the text tower names the model, so its dim is the store's */
    return clip_embed_text(s->text_ctx, text, out, NULL, NULL, err);
}

/* An image file the catalog does not know: loads the vision tower (once) and embeds it. */
static int embed_image(void *user, const char *path, float *out, int dim, struct sb_err *err)
{
    struct cli_search *s = user;
    (void)dim;
    if (!s->model_dir[0])
        return sb_fail(err, SB_EINVAL, "'%s' is not in the catalog; embedding it needs --model DIR",
                       path);
    if (!s->vision_model) {
        int rc = load_tower(s, CLIP_TOWER_VISION, &s->vision_model, &s->vision_ctx, err);
        if (rc)
            return rc;
        if (strcmp(clip_model_id(s->vision_model), s->model_name) != 0)
            return sb_fail(err, SB_EINVAL,
                           "model '%s' is not the one the catalog's vectors come from ('%s')",
                           s->model_dir, s->model_name);
    }
    struct image_decode_params dp = image_decode_default_params();
    int min_short = 0;
    clip_model_min_decode(s->vision_model, &min_short);
    dp.min_short = min_short;
    struct image *img = NULL;
    int S = clip_model_image_size(s->vision_model);
    float *px = malloc((size_t)3 * (size_t)S * (size_t)S * sizeof(float));
    int rc = px ? SB_OK : sb_fail(err, SB_ENOMEM, "out of memory");
    if (!rc)
        rc = image_decode_file(path, &dp, &img, NULL, err);
    if (!rc)
        rc = clip_preprocess(s->vision_model, img, px, err);
    if (!rc)
        rc = clip_embed_images(s->vision_ctx, px, 1, out, err);
    if (rc && err) {
        char msg[sizeof(err->msg)];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        rc = sb_fail(err, rc, "image '%s': %s", path, msg);
    }
    image_free(img);
    free(px);
    return rc;
}

int cli_search_term_vector(struct cli_search *s, const struct search_term *t, float *out,
                           int64_t *photo_id)
{
    struct sb_err err;
    struct search_embed emb = { s, embed_text, embed_image };
    int rc = search_term_vector(s->cat, vec_store_matrix(s->store), t, &emb, out, photo_id, &err);
    if (rc == SB_OK)
        return CLI_EXIT_OK;
    if (t->kind == SEARCH_TERM_ID)
        cli_error("photo id:%lld has no vector of model '%s'", (long long)t->id, s->model_name);
    else if (t->kind == SEARCH_TERM_TEXT)
        cli_error("text '%s': %s", t->text, err.msg);
    else
        cli_error("%s", err.msg);
    return rc == SB_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
}

int cli_search_mask(struct cli_search *s, unsigned char **mask)
{
    struct sb_err err;
    /* always filtered: only photos with a present file are answers */
    if (vec_store_mask(s->store, s->cat, &s->filter, mask, &err)) {
        cli_error("%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

void cli_search_release(struct cli_search *s)
{
    clip_ctx_free(s->text_ctx);
    clip_model_free(s->text_model);
    clip_ctx_free(s->vision_ctx);
    clip_model_free(s->vision_model);
    vec_store_close(s->store);
    catalog_close(s->cat);
    free((char *)(uintptr_t)s->filter.folder);
    memset(s, 0, sizeof(*s));
}
