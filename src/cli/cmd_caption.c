/* cmd_caption.c - `shoebox caption IMG...`: one sentence per image from a vision-language model
 * (vlm.h: LLaVA, SmolVLM / Idefics3, Moondream 2). Human output is "PATH<TAB>CAPTION" per image;
 * with --json one object per line, {"input":..,"caption":..,"tokens":[generated ids]}. A failing
 * image is reported on stderr and the others still run; the exit code is 1 when any failed. */
#include "caption_setup.h"
#include "cli.h"

#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"
#include "shoebox/vlm.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: shoebox caption [options] IMG...\n"
    "Writes one sentence about each image with a captioning model (a Hugging Face folder of\n"
    "LlavaForConditionalGeneration, e.g. llava-hf/llava-1.5-7b-hf or\n"
    "llava-hf/llava-interleave-qwen-0.5b-hf, Idefics3ForConditionalGeneration, e.g.\n"
    "HuggingFaceTB/SmolVLM-256M-Instruct, or Moondream 2, vikhyatk/moondream2 at a 2025\n"
    "revision such as 2025-01-09: the default prompt uses its caption template, another\n"
    "prompt its question template).\n\n"
    "options:\n"
    "  --model DIR, --caption-model DIR   the model folder\n"
    "  --prompt TEXT              the instruction (default \"" VLM_DEFAULT_PROMPT "\")\n"
    "  --max-new-tokens N         length cap (default 40)\n"
    "  --repetition-penalty X     HF repetition penalty (default 1.1; 1 = off)\n"
    "  --raw                      print the model's text as is (no first-sentence cleanup)\n"
    "  --tiles                    Idefics3 / SmolVLM: image splitting as its processor does it\n"
    "                             (crops of the vision size plus the global image: more detail,\n"
    "                             several times slower); default: the global image alone\n"
    "  --json                     one JSON object per image: {\"input\",\"caption\",\"tokens\"}\n"
    "The global --precision (fp32, bf16, auto) sets the vision tower's and projector's\n"
    "arithmetic; the decoder keeps the checkpoint's 16-bit weights either way.\n";

static void print_json(const char *input, const char *caption, const int32_t *ids, int n)
{
    cJSON *o = cJSON_CreateObject();
    char *ci = sb_utf8_clean(input), *cc = sb_utf8_clean(caption);
    cJSON_AddStringToObject(o, "input", ci ? ci : "");
    cJSON_AddStringToObject(o, "caption", cc ? cc : "");
    cJSON *t = cJSON_AddArrayToObject(o, "tokens");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(t, cJSON_CreateNumber(ids[i]));
    char *s = cJSON_PrintUnformatted(o);
    if (s)
        printf("%s\n", s);
    else
        cli_error("out of memory printing '%s'", input);
    fflush(stdout);
    cJSON_free(s);
    cJSON_Delete(o);
    free(ci);
    free(cc);
}

int cmd_caption(int argc, char **argv, struct cli_ctx *ctx)
{
    struct vlm_params p = vlm_default_params();
    const char *dir = ctx->model_dir;
    const char **inputs = calloc((size_t)argc + 1, sizeof(*inputs));
    struct vlm_model *m = NULL;
    struct vlm_ctx *c = NULL;
    struct sb_err err = { 0 };
    int n = 0, failed = 0, rc = CLI_EXIT_OK;
    bool tiles = false;
    if (!inputs) {
        cli_error("out of memory");
        return CLI_EXIT_FAIL;
    }
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            goto out;
        } else if ((v = cli_flag_value(argc, argv, &i, "--caption-model")) ||
                   (v = cli_flag_value(argc, argv, &i, "--model"))) {
            if (!*v) {
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            dir = v;
        } else if ((v = cli_flag_value(argc, argv, &i, "--prompt"))) {
            if (!*v) {
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            p.prompt = v;
        } else if ((v = cli_flag_value(argc, argv, &i, "--max-new-tokens"))) {
            int64_t k;
            if (sb_parse_i64(v, 1, VLM_MAX_NEW_TOKENS, &k, &err)) {
                cli_error("--max-new-tokens: %s", err.msg);
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            p.max_new_tokens = (int)k;
        } else if ((v = cli_flag_value(argc, argv, &i, "--repetition-penalty"))) {
            if (sb_parse_f32(v, 0.01f, 100.0f, &p.repetition_penalty, &err)) {
                cli_error("--repetition-penalty: %s", err.msg);
                rc = CLI_EXIT_USAGE;
                goto out;
            }
        } else if (strcmp(argv[i], "--raw") == 0) {
            p.cleanup = false;
        } else if (strcmp(argv[i], "--tiles") == 0) {
            tiles = true;
        } else if (strcmp(argv[i], "--") == 0) {
            for (i++; i < argc; i++)
                inputs[n++] = argv[i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            cli_error("caption: unknown option '%s' (see shoebox caption --help)", argv[i]);
            rc = CLI_EXIT_USAGE;
            goto out;
        } else {
            inputs[n++] = argv[i];
        }
    }
    if (n == 0) {
        fputs(usage, stderr);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (!dir) {
        cli_error("no captioning model: pass --caption-model DIR (or --model DIR)");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    struct sb_pool *pool = cli_pool(ctx);
    rc = cli_caption_load(ctx, dir, pool ? sb_pool_size(pool) + 1 : 1, tiles, &m);
    if (rc)
        goto out;
    if (vlm_ctx_new(m, pool, &c, &err)) {
        cli_error("%s", err.msg);
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    struct image_decode_params dp = image_decode_default_params();
    vlm_model_min_decode(m, &dp.min_long, &dp.min_short);
    for (int i = 0; i < n; i++) {
        struct image *img = NULL;
        int32_t ids[VLM_MAX_NEW_TOKENS];
        int n_ids = 0;
        struct sb_buf text;
        sb_buf_init(&text);
        int e = image_decode_file(inputs[i], &dp, &img, NULL, &err);
        if (!e)
            e = vlm_caption(c, img, &p, ids, &n_ids, &text, &err);
        if (e) {
            cli_error("caption '%s': %s", inputs[i], err.msg);
            failed++;
        } else if (ctx->json) {
            print_json(inputs[i], text.data ? text.data : "", ids, n_ids);
        } else {
            char *cc = sb_utf8_clean(text.data ? text.data : "");
            printf("%s\t%s\n", inputs[i], cc ? cc : "");
            fflush(stdout);
            free(cc);
        }
        sb_buf_release(&text);
        image_free(img);
    }
    rc = failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
    vlm_ctx_free(c);
    vlm_model_free(m);
    free(inputs);
    return rc;
}
