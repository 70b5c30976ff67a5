/* cmd_caption.c - `shoebox caption IMG...`: one sentence per image from a vision-language model
 * (vlm.h: LLaVA, SmolVLM / Idefics3, Moondream 2). Human output is "PATH<TAB>CAPTION" per image;
 * with --json one object per line, {"input":..,"caption":..,"tokens":[generated ids]}. A failing
 * image is reported on stderr and the others still run; the exit code is 1 when any failed.
 * Several images are captioned CAPTION_BATCH at a time (vlm_caption_step: each decode step
 * reads the decoder's weights once for all of them), each caption exactly what it is alone;
 * the output keeps the order of the inputs. */
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

/* One input's caption (or error), kept until the inputs before it are printed. */
struct cap_out {
    bool done;
    int rc;
    struct sb_err err;
    int32_t *ids;
    int n_ids;
    char *text;
};

static void out_clear(struct cap_out *o)
{
    free(o->ids);
    free(o->text);
    o->ids = NULL;
    o->text = NULL;
}

struct caption_run {
    const struct vlm_model *m;
    struct sb_pool *pool;
    bool json;
    const struct vlm_params *p;
    const char **inputs;
    int n;
    struct cap_out *outs;
    struct vlm_ctx *cs[CAPTION_BATCH]; /* decoder slots, made as needed (sharing the pool) */
    int slot_input[CAPTION_BATCH];     /* the input in each slot, or -1 */
    int printed, failed;
};

/* Prints the finished captions that have no unfinished one before them. */
static void print_ready(struct caption_run *r, bool json)
{
    while (r->printed < r->n && r->outs[r->printed].done) {
        struct cap_out *o = &r->outs[r->printed];
        const char *in = r->inputs[r->printed];
        if (o->rc) {
            cli_error("caption '%s': %s", in, o->err.msg);
            r->failed++;
        } else if (json) {
            print_json(in, o->text, o->ids, o->n_ids);
        } else {
            char *cc = sb_utf8_clean(o->text);
            printf("%s\t%s\n", in, cc ? cc : "");
            fflush(stdout);
            free(cc);
        }
        out_clear(o);
        r->printed++;
    }
}

static void slot_done(struct caption_run *r, int k)
{
    struct cap_out *o = &r->outs[r->slot_input[k]];
    int32_t ids[VLM_MAX_NEW_TOKENS];
    struct sb_buf text;
    sb_buf_init(&text);
    o->rc = vlm_caption_finish(r->cs[k], ids, &o->n_ids, &text, &o->err);
    if (!o->rc) {
        o->text = text.data ? text.data : sb_strdup("");
        o->ids = malloc((size_t)(o->n_ids > 0 ? o->n_ids : 1) * sizeof(*ids));
        if (!o->text || !o->ids)
            o->rc = sb_fail(&o->err, SB_ENOMEM, "no memory for a caption");
        else
            memcpy(o->ids, ids, (size_t)o->n_ids * sizeof(*ids));
    } else {
        sb_buf_release(&text);
    }
    o->done = true;
    r->slot_input[k] = -1;
}

/* Input i into free slot k: decode, encode, prefill and first token. Returns 1 when the slot
 * holds a caption in progress, 0 when the input is finished already (an error, or a caption of
 * one token). */
static int slot_start(struct caption_run *r, int k, int i, const struct image_decode_params *dp)
{
    struct cap_out *o = &r->outs[i];
    struct image *img = NULL;
    struct vlm_image *im = NULL;
    o->rc = r->cs[k] ? SB_OK : vlm_ctx_new(r->m, r->pool, &r->cs[k], &o->err);
    if (!o->rc)
        o->rc = image_decode_file(r->inputs[i], dp, &img, NULL, &o->err);
    if (!o->rc)
        o->rc = vlm_encode(r->cs[k], img, &im, &o->err);
    image_free(img);
    if (!o->rc)
        o->rc = vlm_caption_start(r->cs[k], im, r->p, &o->err);
    vlm_image_free(im);
    if (o->rc) {
        o->done = true;
        return 0;
    }
    r->slot_input[k] = i;
    if (vlm_caption_done(r->cs[k])) {
        slot_done(r, k);
        return 0;
    }
    return 1;
}

/* Free slots take the next inputs, then one decode step for every slot in use, until all are
 * done; captions are printed as soon as the ones before them are. */
static void caption_all(struct caption_run *r)
{
    const bool json = r->json;
    struct image_decode_params dp = image_decode_default_params();
    vlm_model_min_decode(r->m, &dp.min_long, &dp.min_short);
    int slots = cli_caption_slots(r->m, r->p->max_new_tokens, 1), next = 0;
    if (slots > r->n)
        slots = r->n;
    for (int k = 0; k < CAPTION_BATCH; k++)
        r->slot_input[k] = -1;
    for (;;) {
        for (int k = 0; k < slots; k++)
            while (r->slot_input[k] < 0 && next < r->n && !slot_start(r, k, next++, &dp))
                print_ready(r, json);
        int ended[CAPTION_BATCH], ne, nl;
        struct sb_err e = { 0 };
        int rc = cli_caption_step(r->cs, r->slot_input, slots, ended, &ne, &nl, &e);
        if (nl == 0)
            break;
        for (int s = 0; s < ne; s++) {
            int k = ended[s];
            if (rc) { /* our bug: fail these inputs, go on with the rest */
                struct cap_out *o = &r->outs[r->slot_input[k]];
                o->rc = rc;
                o->err = e;
                o->done = true;
                r->slot_input[k] = -1;
            } else {
                slot_done(r, k);
            }
        }
        print_ready(r, json);
    }
    print_ready(r, json);
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
    struct cap_out *outs = NULL;
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
    outs = calloc((size_t)n, sizeof(*outs));
    if (!outs) {
        cli_error("out of memory");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    struct caption_run r = {
        .m = m, .pool = pool, .json = ctx->json, .p = &p, .inputs = inputs, .n = n, .outs = outs
    };
    r.cs[0] = c; /* the others are made as needed */
    caption_all(&r);
    for (int k = 1; k < CAPTION_BATCH; k++)
        vlm_ctx_free(r.cs[k]);
    failed = r.failed;
    rc = failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
out:
    if (outs)
        for (int i = 0; i < n; i++)
            out_clear(&outs[i]);
    free(outs);
    vlm_ctx_free(c);
    vlm_model_free(m);
    free(inputs);
    return rc;
}
