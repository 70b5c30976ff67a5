/* test_model_moondream.c - Moondream 2 captions (vlm.h, src/model/moondream*.c) against
 * tools/ref_moondream.py's torch float64 reference on the random model of
 * tools/gen_moondream.py (tests/data/vlm/moondream/, the 2025 HF layout). Per case (a 700x500
 * photo tiled 2 x 4 by the overlap-crop rule, a 44x30 one tiled 1 x 1, and a query prompt):
 * the prompt ([BOS, image rows, template]), the logits after prefill (max abs error <= 1e-3 of
 * the logit range) and 20 greedy tokens, with and without repetition penalty, and the decoded
 * text; with and without a thread pool. vlm_caption_pixels() on the global crop equals the
 * 1 x 1 case. In bf16 (the decoder prefill on packed weights) the tiled photo within 1e-2 of the
 * range with the same tokens and text. Hostile configs and a missing tensor fail with a clear
 * error. */
#include "check.h"
#include "model_fixture.h"

#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"
#include "shoebox/vlm.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_IDS  1024
#define SB_E_ANY (-1000) /* any failure */

static char *find_bytes(unsigned char *buf, size_t len, const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0; i + n <= len; i++)
        if (memcmp(buf + i, s, n) == 0)
            return (char *)buf + i;
    return NULL;
}

static cJSON *ref_load(void)
{
    char path[1024];
    unsigned char *buf = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/vlm/moondream/ref.json", data_dir());
    if (sb_read_file(path, 64 << 20, &buf, &len, NULL))
        return NULL;
    cJSON *root = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    return root;
}

/* Max abs difference of z against the reference logits, and their range. */
static void logit_error(const cJSON *ref, const float *z, int V, float *maxd, float *range)
{
    float lo = 0.0f, hi = 0.0f, md = 0.0f;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, ref)
    {
        float r = (float)e->valuedouble;
        if (i == 0 || r < lo)
            lo = r;
        if (i == 0 || r > hi)
            hi = r;
        if (i < V) {
            float d = z[i] > r ? z[i] - r : r - z[i];
            md = d > md ? d : md;
        }
        i++;
    }
    CHECK_EQ_INT(i, V);
    *maxd = md;
    *range = hi - lo;
}

static int same_ids(const int32_t *a, int na, const cJSON *ref)
{
    int32_t r[MAX_IDS];
    int nr = ids_of(ref, r, MAX_IDS), bad = na != nr;
    for (int i = 0; i < na && i < nr; i++)
        bad += a[i] != r[i];
    return bad;
}

static void check_case(struct vlm_model *m, struct vlm_ctx *c, const cJSON *cs, const char *tag,
                       float tol)
{
    struct sb_err err = { 0 };
    const char *photo = cJSON_GetObjectItem(cs, "photo")->valuestring;
    const cJSON *q = cJSON_GetObjectItem(cs, "question");
    char path[1024];
    snprintf(path, sizeof(path), "%s/vlm/%s", data_dir(), photo);
    struct image *img = NULL;
    CHECK_EQ_INT(SB_OK, image_decode_file(path, NULL, &img, NULL, &err));
    if (!img)
        return;
    struct vlm_params p = vlm_default_params();
    p.prompt = cJSON_IsString(q) ? q->valuestring : NULL;
    p.max_new_tokens = 20;
    p.repetition_penalty = 1.0f;
    p.cleanup = false;
    int32_t ids[VLM_MAX_NEW_TOKENS];
    int n = 0;
    struct sb_buf text;
    sb_buf_init(&text);
    int rc = vlm_caption(c, img, &p, ids, &n, &text, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc)
        fprintf(stderr, "%s: %s\n", photo, err.msg);
    int np = 0;
    const int32_t *prompt = vlm_ctx_prompt(c, &np);
    CHECK_EQ_INT(0, same_ids(prompt, np, cJSON_GetObjectItem(cs, "prompt")));
    int V = 0;
    const float *z = vlm_ctx_prefill_logits(c, &V);
    float maxd, range;
    logit_error(cJSON_GetObjectItem(cs, "logits"), z, V, &maxd, &range);
    fprintf(stderr, "moondream %s %s (%s): prompt %d, logits max abs diff %.3g of range %.3g\n",
            photo, p.prompt ? "query" : "caption", tag, np, (double)maxd, (double)range);
    CHECK(maxd <= tol * range);
    CHECK_EQ_INT(0, same_ids(ids, n, cJSON_GetObjectItem(cs, "greedy")));
    CHECK_EQ_STR(cJSON_GetObjectItem(cs, "text")->valuestring, text.data ? text.data : "");
    p.repetition_penalty = 1.3f;
    CHECK_EQ_INT(SB_OK, vlm_caption(c, img, &p, ids, &n, NULL, &err));
    CHECK_EQ_INT(0, same_ids(ids, n, cJSON_GetObjectItem(cs, "greedy_penalty")));
    /* a 1 x 1 tiling: the global crop alone gives the same rows */
    const cJSON *tiling = cJSON_GetObjectItem(cs, "tiling");
    if (cJSON_GetArrayItem(tiling, 0)->valueint == 1 &&
        cJSON_GetArrayItem(tiling, 1)->valueint == 1) {
        int S = vlm_model_image_size(m);
        float *pix = calloc((size_t)3 * S * S, sizeof(float));
        CHECK(pix != NULL);
        if (pix) {
            CHECK_EQ_INT(SB_OK, vlm_preprocess(m, img, pix, &err));
            p.repetition_penalty = 1.0f;
            CHECK_EQ_INT(SB_OK, vlm_caption_pixels(c, pix, &p, ids, &n, NULL, &err));
            z = vlm_ctx_prefill_logits(c, &V);
            logit_error(cJSON_GetObjectItem(cs, "logits"), z, V, &maxd, &range);
            CHECK(maxd <= tol * range);
            CHECK_EQ_INT(0, same_ids(ids, n, cJSON_GetObjectItem(cs, "greedy")));
        }
        free(pix);
    }
    sb_buf_release(&text);
    image_free(img);
}

/* fp32: logits within 1e-3 of the range. bf16 (the decoder's prefill on packed bf16 weights):
 * within 1e-2, the same tokens and text; skipped when the build or CPU has no bf16. */
static void test_reference(struct sb_pool *pool, enum clip_precision precision)
{
    struct sb_err err = { 0 };
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/vlm/moondream", data_dir());
    cJSON *ref = ref_load();
    CHECK(ref != NULL);
    struct vlm_model *m = NULL;
    struct vlm_ctx *c = NULL;
    struct vlm_load_params lp = vlm_load_default_params();
    lp.precision = precision;
    int rc = vlm_model_load(dir, &lp, &m, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc) {
        fprintf(stderr, "moondream: %s\n", err.msg);
        goto out;
    }
    if ((int)vlm_model_precision(m) != (int)precision) {
        fprintf(stderr, "moondream: bf16 is not available in this build/CPU: bf16 check skipped\n");
        goto out;
    }
    bool bf16 = precision == CLIP_PRECISION_BF16;
    CHECK_EQ_STR("moondream", vlm_model_arch(m));
    CHECK_EQ_INT(729, vlm_model_image_tokens(m));
    CHECK_EQ_INT(378, vlm_model_image_size(m));
    CHECK(strncmp(vlm_model_id(m), "moondream@", 10) == 0);
    CHECK_EQ_INT(SB_OK, vlm_ctx_new(m, pool, &c, &err));
    const cJSON *cs;
    int k = 0;
    cJSON_ArrayForEach(cs, cJSON_GetObjectItem(ref, "cases"))
    {
        if (c && (!pool || k == 0)) /* with threads: the tiled photo only (test time) */
            check_case(m, c, cs, bf16 ? "bf16" : pool ? "pool" : "no pool", bf16 ? 1e-2f : 1e-3f);
        k++;
    }
out:
    vlm_ctx_free(c);
    vlm_model_free(m);
    cJSON_Delete(ref);
}

/* A copy of the fixture in SHOEBOX_TMP with the first `from` in file `which` replaced by `to`. */
static bool fixture_copy(const char *which, const char *from, const char *to, char *dir, size_t cap)
{
    const char *tmp = getenv("SHOEBOX_TMP");
    snprintf(dir, cap, "%s/moondream_bad.%d", tmp ? tmp : "/tmp", (int)getpid());
    mkdir(dir, 0755);
    static const char *const files[] = { "model.safetensors", "tokenizer.json", "config.json" };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char src[1024], dst[1200];
        unsigned char *buf = NULL;
        size_t len = 0;
        snprintf(src, sizeof(src), "%s/vlm/moondream/%s", data_dir(), files[i]);
        snprintf(dst, sizeof(dst), "%s/%s", dir, files[i]);
        if (sb_read_file(src, 64 << 20, &buf, &len, NULL))
            return false;
        char *out = (char *)buf;
        size_t out_len = len;
        char *edited = NULL;
        if (strcmp(files[i], which) == 0) {
            char *hit = find_bytes(buf, len, from);
            if (!hit) {
                free(buf);
                return false;
            }
            size_t a = (size_t)(hit - (char *)buf), nl = strlen(to), ol = strlen(from);
            edited = malloc(len - ol + nl + 1);
            memcpy(edited, buf, a);
            memcpy(edited + a, to, nl);
            memcpy(edited + a + nl, hit + ol, len - a - ol);
            out = edited;
            out_len = len - ol + nl;
        }
        int rc = sb_write_file_atomic(dst, out, out_len, NULL);
        free(edited);
        free(buf);
        if (rc)
            return false;
    }
    return true;
}

static void test_failures(void)
{
    static const struct {
        const char *file, *from, *to;
        int code;
        const char *msg;
    } cases[] = {
        /* a tensor renamed (same length, the header stays valid): named as missing */
        { "model.safetensors", "model.vision.post_ln.bias", "model.vision.post_ln.bia5", SB_EMODEL,
          "model.vision.post_ln.bias" },
        { "model.safetensors", "model.text.blocks.1.attn.qkv.weight",
          "model.text.blocks.1.attn.qkv.weighT", SB_EMODEL, "model.text.blocks.1.attn.qkv" },
        /* sizes that disagree with the tensors */
        { "config.json", "\"enc_dim\": 32", "\"enc_dim\": 48", SB_EMODEL, "model.vision" },
        { "config.json", "\"dim\": 64", "\"dim\": 128", SB_E_ANY, "" },
        /* hostile values */
        { "config.json", "\"n_heads\": 4", "\"n_heads\": 0", SB_EFORMAT, "n_heads" },
        { "config.json", "\"n_heads\": 4", "\"n_heads\": 3", SB_EFORMAT, "heads" },
        { "config.json", "\"n_heads\": 4", "\"n_heads\": 4, \"n_kv_heads\": 2", SB_EMODEL,
          "n_kv_heads" },
        { "config.json", "\"n_heads\": 4", "\"n_heads\": 4, \"ff_dim\": 200", SB_EMODEL,
          "model.text.blocks.0.mlp.fc1" },
        /* the tokenizer section gone: the GPT-2 era ids do not fit this vocabulary */
        { "config.json", "\"tokenizer\": {", "\"tokenizer_x\": {", SB_EFORMAT, "bos_id" },
        { "config.json", "\"enc_n_heads\": 2", "\"enc_n_heads\": 5", SB_EFORMAT, "enc_dim" },
        { "config.json", "\"prefix_attn\": 730", "\"prefix_attn\": 5", SB_EFORMAT, "prefix_attn" },
        { "config.json", "\"crop_size\": 378", "\"crop_size\": 100", SB_EFORMAT, "crop_size" },
        { "config.json", "\"vocab_size\": 512", "\"vocab_size\": 1e300", SB_EFORMAT, "vocab_size" },
        { "config.json", "\"max_context\": 2048", "\"max_context\": 700", SB_EFORMAT,
          "max_context" },
        { "config.json", "\"bos_id\": 506", "\"bos_id\": 9999", SB_EFORMAT, "bos_id" },
        { "config.json", "\"normal\": [", "\"normal\": [100000, ", SB_EFORMAT, "template" },
        { "config.json", "\"text\": {", "\"text\": {\"n_experts\": 64, ", SB_EMODEL,
          "Moondream 3" },
        { "config.json", "\"config\": {", "\"config\": 7, \"x\": {", SB_EFORMAT, "config" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char dir[1024];
        struct sb_err err = { 0 };
        struct vlm_model *m = NULL;
        bool made = fixture_copy(cases[i].file, cases[i].from, cases[i].to, dir, sizeof(dir));
        CHECK(made);
        if (!made) {
            fprintf(stderr, "case %zu: '%s' not found in %s\n", i, cases[i].from, cases[i].file);
            continue;
        }
        int rc = vlm_model_load(dir, NULL, &m, &err);
        if (cases[i].code == SB_E_ANY)
            CHECK(rc != SB_OK);
        else
            CHECK_EQ_INT(cases[i].code, rc);
        CHECK(m == NULL);
        CHECK(strstr(err.msg, cases[i].msg) != NULL);
        if (rc == SB_OK || !strstr(err.msg, cases[i].msg))
            fprintf(stderr, "case %zu: rc %d: %s\n", i, rc, err.msg);
        vlm_model_free(m);
    }
    /* an empty image */
    char dir[1024];
    struct sb_err err = { 0 };
    struct vlm_model *m = NULL;
    struct vlm_ctx *c = NULL;
    snprintf(dir, sizeof(dir), "%s/vlm/moondream", data_dir());
    CHECK_EQ_INT(SB_OK, vlm_model_load(dir, NULL, &m, &err));
    if (m && vlm_ctx_new(m, NULL, &c, &err) == SB_OK) {
        int32_t ids[VLM_MAX_NEW_TOKENS];
        int n;
        struct image empty = { 0, 0, NULL };
        CHECK_EQ_INT(SB_EINVAL, vlm_caption(c, &empty, NULL, ids, &n, NULL, &err));
    }
    vlm_ctx_free(c);
    vlm_model_free(m);
}

/* A starmie-era folder (2025-06-21 on: the code loads moondream/starmie-v1) whose
 * tokenizer.json is another one is refused; an earlier dated revision loads. */
static void test_starmie_guard(void)
{
    static const struct {
        const char *file, *text;
        int code;
    } cases[] = {
        { "shoebox-model.json",
          "{\"repo\": \"vikhyatk/moondream2\", \"revision\": \"main\", \"files\": []}", SB_EMODEL },
        { "shoebox-model.json",
          "{\"repo\": \"vikhyatk/moondream2\", \"revision\": \"2025-06-21\", \"files\": []}",
          SB_EMODEL },
        { "shoebox-model.json",
          "{\"repo\": \"vikhyatk/moondream2\", \"revision\": \"2025-01-09\", \"files\": []}",
          SB_OK },
        { "moondream.py", "self.tokenizer = Tokenizer.from_pretrained(\"moondream/starmie-v1\")\n",
          SB_EMODEL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char dir[1024], path[1200];
        struct sb_err err = { 0 };
        struct vlm_model *m = NULL;
        CHECK(fixture_copy("", "", "", dir, sizeof(dir)));
        snprintf(path, sizeof(path), "%s/%s", dir, cases[i].file);
        CHECK_EQ_INT(SB_OK, sb_write_file_atomic(path, cases[i].text, strlen(cases[i].text), NULL));
        int rc = vlm_model_load(dir, NULL, &m, &err);
        CHECK_EQ_INT(cases[i].code, rc);
        if (cases[i].code != SB_OK)
            CHECK(strstr(err.msg, "starmie") != NULL);
        vlm_model_free(m);
        remove(path);
    }
}

/* Batched captions (vlm_caption_step): the reference photos with the caption and a question
 * prompt, and different caps, decoded side by side on the pool (the Phi decoder, its image
 * prefix prefilled per photo): each caption's ids and text are vlm_caption()'s alone. */
#define NPH 4
static void test_batch(struct sb_pool *pool)
{
    struct sb_err err = { 0 };
    char dir[1024], path[1024];
    snprintf(dir, sizeof(dir), "%s/vlm/moondream", data_dir());
    struct vlm_model *m = NULL;
    struct vlm_ctx *enc = NULL, *cs[NPH] = { NULL };
    struct image *img[2] = { NULL };
    struct vlm_image *im[2] = { NULL };
    CHECK_EQ_INT(SB_OK, vlm_model_load(dir, NULL, &m, &err));
    if (!m)
        return;
    CHECK_EQ_INT(SB_OK, vlm_ctx_new(m, NULL, &enc, &err));
    for (int k = 0; k < NPH; k++)
        CHECK_EQ_INT(SB_OK, vlm_ctx_new(m, pool, &cs[k], &err));
    static const char *const photos[2] = { "moondream_photo.png", "photo.png" };
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/vlm/%s", data_dir(), photos[i]);
        CHECK_EQ_INT(SB_OK, image_decode_file(path, NULL, &img[i], NULL, &err));
        if (enc && img[i])
            CHECK_EQ_INT(SB_OK, vlm_encode(enc, img[i], &im[i], &err));
    }
    struct vlm_params p[NPH];
    int32_t want[NPH][VLM_MAX_NEW_TOKENS], ids[VLM_MAX_NEW_TOKENS];
    int n_want[NPH], n = 0, same = 0;
    for (int k = 0; k < NPH; k++) {
        p[k] = vlm_default_params();
        p[k].prompt = k % 2 ? "How many?" : NULL;
        p[k].max_new_tokens = 6 + 5 * k;
        p[k].repetition_penalty = 1.0f;
        n_want[k] = 0;
        if (!im[0] || !im[1] || !cs[k])
            goto out;
        CHECK_EQ_INT(SB_OK, vlm_caption(enc, img[k / 2], &p[k], want[k], &n_want[k], NULL, &err));
        CHECK_EQ_INT(SB_OK, vlm_caption_start(cs[k], im[k / 2], &p[k], &err));
    }
    for (int s = 0; s < VLM_MAX_NEW_TOKENS; s++) {
        bool all = true;
        for (int k = 0; k < NPH; k++)
            all = all && vlm_caption_done(cs[k]);
        if (all)
            break;
        CHECK_EQ_INT(SB_OK, vlm_caption_step(cs, NPH, &err));
    }
    for (int k = 0; k < NPH; k++) {
        CHECK_EQ_INT(SB_OK, vlm_caption_finish(cs[k], ids, &n, NULL, &err));
        same += n == n_want[k] && memcmp(ids, want[k], (size_t)n * sizeof(*ids)) == 0;
    }
    fprintf(stderr, "moondream batched (%s pool): %d/%d captions as alone\n", pool ? "with" : "no",
            same, NPH);
    CHECK_EQ_INT(NPH, same);
out:
    for (int k = 0; k < NPH; k++)
        vlm_ctx_free(cs[k]);
    for (int i = 0; i < 2; i++) {
        image_free(img[i]);
        vlm_image_free(im[i]);
    }
    vlm_ctx_free(enc);
    vlm_model_free(m);
}

int main(void)
{
    struct sb_pool *pool = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, sb_pool_new(2, &pool, &err));
    test_reference(NULL, CLIP_PRECISION_FP32);
    test_reference(pool, CLIP_PRECISION_FP32);
    test_reference(pool, CLIP_PRECISION_BF16);
    test_batch(pool);
    test_failures();
    test_starmie_guard();
    sb_pool_free(pool);
    return check_exit();
}
