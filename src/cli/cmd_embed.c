/* cmd_embed.c - `shoebox embed-image IMG...` and `shoebox embed-text TEXT...`: one JSON object
 * per input per line on stdout, {"input":..,"embedding":[..]} (L2-normalised), embed-text adds
 * "tokens":[..]. A failing input is reported on stderr and the others still run; the exit code
 * is 1 when any failed. */
#include "cli.h"
#include "embedder.h"
#include "output.h"

#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/model.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_image[] =
    "usage: shoebox embed-image --model DIR IMG...\n"
    "Prints one line of JSON per image: {\"input\":PATH,\"embedding\":[...]}, the CLIP image\n"
    "embedding (L2-normalised) as the model folder's CLIPModel computes it.\n";
static const char usage_text[] =
    "usage: shoebox embed-text --model DIR TEXT...\n"
    "Prints one line of JSON per text: {\"input\":TEXT,\"embedding\":[...],\"tokens\":[...]},\n"
    "the CLIP text embedding (L2-normalised) and the token ids it was computed from.\n";

/* Splits argv into inputs; returns -1 for --help, -2 for a bad option, else the count. */
static int parse_args(int argc, char **argv, char ***inputs)
{
    int n = 0;
    bool opts = true;
    *inputs = calloc((size_t)argc + 1, sizeof(**inputs));
    if (!*inputs)
        return -2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opts && strcmp(a, "--") == 0) {
            opts = false;
        } else if (opts && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            return -1;
        } else if (opts && a[0] == '-' && a[1] == '-') {
            cli_error("unknown option '%s'", a);
            return -2;
        } else {
            (*inputs)[n++] = argv[i];
        }
    }
    return n;
}

/* Writes {"input":..,"embedding":[..](,"tokens":[..])} and a newline to stdout. */
static void print_line(const char *input, const float *emb, int D, const int32_t *ids, int n_ids)
{
    struct sb_buf b;
    sb_buf_init(&b);
    char *clean = sb_utf8_clean(input);
    cJSON *s = cJSON_CreateString(clean ? clean : "");
    char *quoted = s ? cJSON_PrintUnformatted(s) : NULL;
    sb_buf_puts(&b, "{\"input\":");
    sb_buf_puts(&b, quoted ? quoted : "\"\"");
    sb_buf_puts(&b, ",\"embedding\":[");
    for (int i = 0; i < D; i++)
        sb_buf_printf(&b, "%s%.9g", i ? "," : "", (double)emb[i]);
    sb_buf_puts(&b, "]");
    if (ids) {
        sb_buf_puts(&b, ",\"tokens\":[");
        for (int i = 0; i < n_ids; i++)
            sb_buf_printf(&b, "%s%d", i ? "," : "", (int)ids[i]);
        sb_buf_puts(&b, "]");
    }
    sb_buf_puts(&b, "}\n");
    if (!b.failed)
        fputs(b.data, stdout);
    else
        cli_error("out of memory printing '%s'", input);
    fflush(stdout);
    cJSON_free(quoted);
    cJSON_Delete(s);
    free(clean);
    sb_buf_release(&b);
}

static int load(struct cli_ctx *ctx, int towers, struct clip_model **m, struct clip_ctx **c)
{
    struct sb_err err = { 0 };
    if (!ctx->model_dir) {
        cli_error("no model: pass --model DIR or set SHOEBOX_MODEL");
        return CLI_EXIT_USAGE;
    }
    struct clip_load_params lp = clip_load_default_params();
    lp.towers = towers;
    lp.precision = cli_clip_precision(ctx);
    lp.blas_threads = ctx->threads;
    int rc = clip_model_load(ctx->model_dir, &lp, m, &err);
    if (!rc)
        rc = clip_ctx_new(*m, 1, cli_pool(ctx), c, &err);
    if (rc) {
        cli_error("%s", err.msg);
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

int cmd_embed_image(int argc, char **argv, struct cli_ctx *ctx)
{
    char **inputs = NULL;
    struct clip_model *m = NULL;
    struct clip_ctx *c = NULL;
    float *px = NULL, *emb = NULL;
    int failed = 0;
    int n = parse_args(argc, argv, &inputs);
    int rc = CLI_EXIT_OK;
    if (n == -1 || n == 0) {
        fputs(usage_image, n == -1 ? stdout : stderr);
        rc = n == -1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
        goto out;
    }
    if (n < 0) {
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    rc = load(ctx, CLIP_TOWER_VISION, &m, &c);
    if (rc)
        goto out;
    int S = clip_model_image_size(m), D = clip_model_dim(m);
    px = malloc((size_t)3 * S * S * sizeof(float));
    emb = malloc((size_t)D * sizeof(float));
    if (!px || !emb) {
        cli_error("out of memory");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    /* The exact path on purpose: RGB decode and clip_preprocess()'s Pillow-exact resize, the
     * fidelity reference the tests hold against PIL. `index` makes JPEG model inputs from the
     * thumbnails' planes with the fast resizer instead (image_jpeg_planes), close to this but
     * not bit-exact. */
    struct image_decode_params dp = image_decode_default_params();
    clip_model_min_decode(m, &dp.min_short);
    dp.apply_orientation = 1;
    for (int i = 0; i < n; i++) {
        struct sb_err err = { 0 };
        struct image *img = NULL;
        int e = image_decode_file(inputs[i], &dp, &img, NULL, &err);
        if (!e)
            e = clip_preprocess(m, img, px, &err);
        if (!e)
            e = clip_embed_images(c, px, 1, emb, &err);
        image_free(img);
        if (e) {
            cli_error("%s: %s", inputs[i], err.msg);
            failed++;
            continue;
        }
        print_line(inputs[i], emb, D, NULL, 0);
    }
    rc = failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
    free(emb);
    free(px);
    clip_ctx_free(c);
    clip_model_free(m);
    free(inputs);
    return rc;
}

int cmd_embed_text(int argc, char **argv, struct cli_ctx *ctx)
{
    char **inputs = NULL;
    struct clip_model *m = NULL;
    struct clip_ctx *c = NULL;
    float *emb = NULL;
    int32_t *ids = NULL;
    int failed = 0;
    int n = parse_args(argc, argv, &inputs);
    int rc = CLI_EXIT_OK;
    if (n == -1 || n == 0) {
        fputs(usage_text, n == -1 ? stdout : stderr);
        rc = n == -1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
        goto out;
    }
    if (n < 0) {
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    rc = load(ctx, CLIP_TOWER_TEXT, &m, &c);
    if (rc)
        goto out;
    int D = clip_model_dim(m);
    emb = malloc((size_t)D * sizeof(float));
    ids = malloc((size_t)clip_model_max_text(m) * sizeof(*ids));
    if (!emb || !ids) {
        cli_error("out of memory");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        struct sb_err err = { 0 };
        int n_ids = 0;
        if (clip_embed_text(c, inputs[i], emb, ids, &n_ids, &err)) {
            cli_error("'%s': %s", inputs[i], err.msg);
            failed++;
            continue;
        }
        print_line(inputs[i], emb, D, ids, n_ids);
    }
    rc = failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
    free(ids);
    free(emb);
    clip_ctx_free(c);
    clip_model_free(m);
    free(inputs);
    return rc;
}
