/* test_model_siglip.c - SigLIP behind the clip_* API and the SentencePiece tokenizer, against
 * tools/ref_siglip.py's independent reference (torch float64 from transformers'
 * modeling_siglip.py; token ids from the sentencepiece package with SiglipTokenizer's pipeline)
 * on the random models of tools/gen_siglip.py (tests/data/siglip). Tolerances as for CLIP:
 * fixed pixels / token ids cosine >= 0.99999 (fp32), >= 0.999 (bf16); photo files through
 * decode + square resize + normalise >= 0.999 (full-size decode). Also hostile spiece.model
 * bytes and config defaults. */
#include "check.h"
#include "index_input.h"

#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/model.h"
#include "shoebox/spm.h"
#include "shoebox/util.h"

#include "../src/model/internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *testdata;
static double min_cos = 0.99999;

static const char *const models[] = { "tiny", "odd_f16", "bf16", "siglip2" };

static cJSON *read_json(const char *path)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    struct sb_err err = { 0 };
    if (sb_read_file(path, 64u << 20, &buf, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    cJSON *j = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    return j;
}

static double compare(const char *what, const float *got, const cJSON *want, int D)
{
    double dot = 0, ng = 0, nw = 0, maxdiff = 0;
    if (cJSON_GetArraySize(want) != D) {
        fprintf(stderr, "%s: reference has %d values, model gives %d\n", what,
                cJSON_GetArraySize(want), D);
        return -1;
    }
    for (int i = 0; i < D; i++) {
        double w = cJSON_GetArrayItem(want, i)->valuedouble, g = (double)got[i];
        dot += w * g;
        ng += g * g;
        nw += w * w;
        maxdiff = fabs(w - g) > maxdiff ? fabs(w - g) : maxdiff;
    }
    double cos = dot / sqrt(ng * nw);
    fprintf(stderr, "  %-48s cos %.9f  maxdiff %.3g\n", what, cos, maxdiff);
    return cos;
}

static void path_of(char *buf, size_t cap, const char *model, const char *file)
{
    snprintf(buf, cap, "%s/siglip/%s%s%s", testdata, model, file ? "/" : "", file ? file : "");
}

static bool same_ids(const cJSON *want, const int32_t *ids, size_t n)
{
    if ((size_t)cJSON_GetArraySize(want) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (cJSON_GetArrayItem(want, (int)i)->valueint != ids[i])
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* SentencePiece */

static void test_spiece(void)
{
    char path[1024];
    path_of(path, sizeof(path), "spiece", "cases.json");
    cJSON *cases = read_json(path);
    CHECK(cases != NULL);
    static const char *const files[] = { "spiece.model", "spiece_bytes.model" };
    for (int f = 0; f < 2 && cases; f++) {
        const cJSON *c = cJSON_GetObjectItem(cases, files[f]);
        struct spm_tokenizer *tok = NULL;
        struct sb_err err = { 0 };
        path_of(path, sizeof(path), "spiece", files[f]);
        int rc = spm_load_file(path, &tok, &err);
        CHECK_EQ_INT(SB_OK, rc);
        if (rc) {
            fprintf(stderr, "%s\n", err.msg);
            continue;
        }
        CHECK_EQ_INT(cJSON_GetObjectItem(c, "size")->valueint, (int)spm_size(tok));
        CHECK_EQ_INT(cJSON_GetObjectItem(c, "unk")->valueint, spm_unk_id(tok));
        CHECK_EQ_INT(cJSON_GetObjectItem(c, "eos")->valueint, spm_eos_id(tok));
        CHECK_EQ_INT(cJSON_GetObjectItem(c, "pad")->valueint, spm_pad_id(tok));
        int32_t ids[1024];
        size_t n = 0;
        const cJSON *e;
        int k = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "plain"))
        {
            const char *text = cJSON_GetObjectItem(e, "text")->valuestring;
            rc = spm_encode(tok, text, strlen(text), -1, ids, 1024, &n, &err);
            CHECK_EQ_INT(SB_OK, rc);
            bool ok = !rc && same_ids(cJSON_GetObjectItem(e, "ids"), ids, n);
            if (!ok)
                fprintf(stderr, "%s plain[%d] '%s': ids differ\n", files[f], k, text);
            CHECK(ok);
            k++;
        }
        CHECK_EQ_INT(SB_OK, spm_set_siglip(tok, NULL, &err));
        k = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "siglip"))
        {
            const char *text = cJSON_GetObjectItem(e, "text")->valuestring;
            rc = spm_tokenize_siglip(tok, text, ids, 64, &n, &err);
            CHECK_EQ_INT(SB_OK, rc);
            bool ok = !rc && same_ids(cJSON_GetObjectItem(e, "ids"), ids, n);
            if (!ok) {
                fprintf(stderr, "%s siglip[%d] '%s': ids differ:", files[f], k, text);
                for (size_t i = 0; i < n; i++)
                    fprintf(stderr, " %d", (int)ids[i]);
                fprintf(stderr, "\n");
            }
            CHECK(ok);
            k++;
        }
        CHECK(spm_piece_id(tok, "</s>") == spm_eos_id(tok));
        CHECK(spm_piece(tok, (int32_t)spm_size(tok)) == NULL);
        spm_free(tok);
    }
    cJSON_Delete(cases);
}

/* Truncated and corrupted ModelProto bytes: an error code or a tokenizer, never a crash (ASan
 * in CI); every tokenizer that loads must encode. */
static void test_spiece_hostile(void)
{
    char path[1024];
    path_of(path, sizeof(path), "spiece", "spiece_bytes.model");
    unsigned char *buf = NULL;
    size_t len = 0;
    CHECK_EQ_INT(SB_OK, sb_read_file(path, 64u << 20, &buf, &len, NULL));
    if (!buf)
        return;
    static const size_t cuts[] = { 0, 1, 2, 5, 17, 100, 1000, 5000 };
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        struct spm_tokenizer *tok = NULL;
        struct sb_err err = { 0 };
        int rc = spm_load_mem(buf, cuts[i] < len ? cuts[i] : len, &tok, &err);
        CHECK(rc != SB_OK); /* the pieces come first: any cut loses the unk piece or more */
        spm_free(tok);
    }
    unsigned seed = 7;
    unsigned char *copy = malloc(len);
    for (int round = 0; copy && round < 300; round++) {
        memcpy(copy, buf, len);
        for (int k = 0; k < 4; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            copy[at] = (unsigned char)(seed >> 16);
        }
        struct spm_tokenizer *tok = NULL;
        struct sb_err err = { 0 };
        if (spm_load_mem(copy, len, &tok, &err) == SB_OK) {
            int32_t ids[256];
            size_t n = 0;
            spm_encode(tok, "a photo of a cat ①漢", 23, -1, ids, 256, &n, &err);
            spm_free(tok);
        }
    }
    free(copy);
    struct spm_tokenizer *tok = NULL;
    struct sb_err err = { 0 };
    static const unsigned char bpe_type[] = { 0x12, 0x02, 0x18, 0x02 }; /* trainer: BPE */
    CHECK_EQ_INT(SB_EFORMAT, spm_load_mem(bpe_type, sizeof(bpe_type), &tok, &err));
    static const unsigned char group[] = { 0x0b, 0x0c };
    CHECK_EQ_INT(SB_ECORRUPT, spm_load_mem(group, sizeof(group), &tok, &err));
    free(buf);
}

/* ------------------------------------------------------------------------------------------ */
/* Models */

static void check_model(const char *name, enum clip_precision precision, bool fast_text)
{
    char path[1024];
    struct clip_model *m = NULL;
    struct clip_ctx *ctx = NULL;
    struct sb_err err = { 0 };
    float *out = NULL, *px = NULL, *tokens = NULL;
    unsigned char *pix = NULL;
    path_of(path, sizeof(path), name, "ref.json");
    cJSON *ref = read_json(path);
    CHECK(ref != NULL);
    path_of(path, sizeof(path), name, NULL);
    struct clip_load_params lp = clip_load_default_params();
    lp.precision = precision;
    lp.fast_text = fast_text;
    int rc = clip_model_load(path, &lp, &m, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc || !ref) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    bool bf16 = clip_model_precision(m) == CLIP_PRECISION_BF16;
    if (precision == CLIP_PRECISION_BF16 && !bf16) {
        fprintf(stderr, "%s: bf16 not available, skipped\n", name);
        goto out;
    }
    fprintf(stderr, "%s: id %s, %s\n", name, clip_model_id(m), bf16 ? "bf16" : "fp32");
    min_cos = bf16 ? 0.999 : 0.99999;
    int D = clip_model_dim(m), S = clip_model_image_size(m);
    CHECK_EQ_INT(CLIP_FAMILY_SIGLIP, clip_model_family(m));
    CHECK(strcmp(clip_family_name(clip_model_family(m)), "siglip") == 0);
    CHECK_EQ_INT(cJSON_GetObjectItem(ref, "dim")->valueint, D);
    CHECK_EQ_INT(cJSON_GetObjectItem(ref, "image_size")->valueint, S);
    CHECK_NEAR(cJSON_GetObjectItem(ref, "logit_scale")->valuedouble,
               (double)clip_model_logit_scale(m), 1e-4);
    CHECK_NEAR(cJSON_GetObjectItem(ref, "logit_bias")->valuedouble,
               (double)clip_model_logit_bias(m), 1e-6);
    rc = clip_ctx_new(m, 4, NULL, &ctx, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc)
        goto out;
    /* fixed pixels */
    const cJSON *pj = cJSON_GetObjectItem(ref, "pixels");
    int B = cJSON_GetObjectItem(pj, "batch")->valueint;
    size_t len = 0;
    path_of(path, sizeof(path), name, "pixels.f32");
    CHECK_EQ_INT(SB_OK, sb_read_file(path, 64u << 20, &pix, &len, NULL));
    out = calloc((size_t)B * D, sizeof(float));
    rc = clip_embed_images(ctx, (const float *)(void *)pix, B, out, &err);
    CHECK_EQ_INT(SB_OK, rc);
    for (int b = 0; b < B && !rc; b++) {
        char what[96];
        snprintf(what, sizeof(what), "%s pixels[%d]", name, b);
        CHECK(compare(what, out + (size_t)b * D,
                      cJSON_GetArrayItem(cJSON_GetObjectItem(pj, "embeddings"), b), D) >= min_cos);
    }
    /* the tokens API gives the same pooled output and N x C hidden states */
    int N = 0, C = 0;
    siglip_vision_shape(m, &N, &C);
    tokens = calloc((size_t)N * C, sizeof(float));
    float *pooled = calloc((size_t)C, sizeof(float));
    rc = siglip_vision_forward(ctx, (const float *)(void *)pix, 1, -1, true, tokens, pooled, &err);
    CHECK_EQ_INT(SB_OK, rc);
    float nrm = 0.0f;
    for (int i = 0; i < C; i++)
        nrm += pooled[i] * pooled[i];
    for (int i = 0; i < C && nrm > 0.0f; i++)
        pooled[i] /= sqrtf(nrm);
    CHECK(compare("tokens API pooled", pooled,
                  cJSON_GetArrayItem(cJSON_GetObjectItem(pj, "embeddings"), 0), D) >= min_cos);
    CHECK_EQ_INT(SB_EINVAL, siglip_vision_forward(ctx, (const float *)(void *)pix, 1, 99, true,
                                                  tokens, NULL, &err));
    free(pooled);
    /* token ids */
    const cJSON *c;
    int k = 0;
    float *te = calloc((size_t)D, sizeof(float));
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "token_cases"))
    {
        const cJSON *ids = cJSON_GetObjectItem(c, "ids");
        int n = cJSON_GetArraySize(ids);
        int32_t tok[512];
        for (int i = 0; i < n && i < 512; i++)
            tok[i] = cJSON_GetArrayItem(ids, i)->valueint;
        rc = clip_embed_tokens(ctx, tok, n, te, &err);
        CHECK_EQ_INT(SB_OK, rc);
        char what[96];
        snprintf(what, sizeof(what), "%s tokens[%d] (n=%d)", name, k++, n);
        if (!rc)
            CHECK(compare(what, te, cJSON_GetObjectItem(c, "embedding"), D) >= min_cos);
    }
    /* texts: ids, embeddings and the sigmoid probability against the fixed pixels */
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "text_cases"))
    {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        int32_t ids[64];
        int n = 0;
        rc = clip_embed_text(ctx, text, te, ids, &n, &err);
        CHECK_EQ_INT(SB_OK, rc);
        if (rc) {
            fprintf(stderr, "%s\n", err.msg);
            continue;
        }
        CHECK(same_ids(cJSON_GetObjectItem(c, "ids"), ids, (size_t)n));
        char what[96];
        snprintf(what, sizeof(what), "%s text '%.24s'", name, text);
        CHECK(compare(what, te, cJSON_GetObjectItem(c, "embedding"), D) >= min_cos);
        for (int b = 0; b < B; b++) {
            float dot = 0.0f;
            for (int i = 0; i < D; i++)
                dot += te[i] * out[(size_t)b * D + i];
            double want = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "probability"), b)->valuedouble;
            CHECK_NEAR(want, (double)clip_model_probability(m, dot), bf16 ? 2e-2 : 1e-4);
        }
    }
    free(te);
    /* photo files: full-size decode, square resize (no crop), normalise; then as `shoebox
     * index` makes the model input (JPEGs from the planes of their thumbnails, the fast
     * resizer: index_input), held to the same bound */
    px = calloc((size_t)3 * S * S, sizeof(float));
    for (int how = 0; how < 2; how++) {
        int nplanar = 0, nfiles = 0;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, bf16 ? "none" : "image_files"))
        {
            const char *file = cJSON_GetObjectItem(c, "file")->valuestring;
            path_of(path, sizeof(path), name, file);
            int min_short = 0; /* full size, or the indexer's decode */
            if (how)
                clip_model_min_decode(m, &min_short);
            rc = file_embedding(m, ctx, path, min_short, how, &nplanar, px, out, &err);
            nfiles++;
            CHECK_EQ_INT(SB_OK, rc);
            char what[96];
            snprintf(what, sizeof(what), "%s %s %s", name, how ? "index" : "file",
                     strrchr(file, '/') + 1);
            if (!rc)
                CHECK(compare(what, out, cJSON_GetObjectItem(c, "embedding"), D) >= 0.999);
        }
        if (how) /* every JPEG (all but one PNG) took the planes path */
            CHECK(nfiles == 0 || nplanar == nfiles - 1);
    }
    min_cos = 0.99999;
out:
    free(px);
    free(tokens);
    free(out);
    free(pix);
    clip_ctx_free(ctx);
    clip_model_free(m);
    cJSON_Delete(ref);
}

static void test_config(void)
{
    struct clip_config c;
    struct clip_preproc_config p;
    struct sb_err err = { 0 };
    const char *def = "{\"model_type\":\"siglip\"}";
    CHECK_EQ_INT(SB_OK, clip_config_parse(def, strlen(def), &c, &err));
    CHECK_EQ_INT(CLIP_FAMILY_SIGLIP, c.family);
    CHECK_EQ_INT(32000, c.vocab_size);
    CHECK_EQ_INT(64, c.max_pos);
    CHECK_EQ_INT(16, c.patch_size);
    CHECK_EQ_INT(768, c.proj_dim);
    CHECK_EQ_INT(CLIP_ACT_GELU_TANH, c.text.act);
    CHECK_NEAR(1e-6, (double)c.vision.ln_eps, 1e-12);
    CHECK(c.vision_use_head);
    CHECK(strcmp(c.name, "siglip") == 0);
    const char *v2 = "{\"model_type\":\"siglip2\"}";
    CHECK_EQ_INT(SB_EMODEL, clip_config_parse(v2, strlen(v2), &c, &err));
    const char *mism = "{\"model_type\":\"siglip\",\"text_config\":{\"projection_size\":512}}";
    CHECK_EQ_INT(SB_EMODEL, clip_config_parse(mism, strlen(mism), &c, &err));
    /* SiglipImageProcessor defaults: square resize, no crop, 0.5 / 0.5 */
    CHECK_EQ_INT(SB_OK, clip_preproc_parse_family(NULL, 0, 384, CLIP_FAMILY_SIGLIP, &p, &err));
    CHECK(!p.do_center_crop && !p.size_is_shortest_edge && p.size_h == 384 && p.size_w == 384);
    CHECK_NEAR(0.5, (double)p.mean[1], 0);
    const char *pre = "{\"size\":{\"height\":224,\"width\":224},\"image_mean\":[0.5,0.5,0.5]}";
    CHECK_EQ_INT(SB_OK,
                 clip_preproc_parse_family(pre, strlen(pre), 224, CLIP_FAMILY_SIGLIP, &p, &err));
    CHECK_EQ_INT(SB_EMODEL,
                 clip_preproc_parse_family(pre, strlen(pre), 256, CLIP_FAMILY_SIGLIP, &p, &err));
}

int main(void)
{
    testdata = getenv("SHOEBOX_TESTDATA");
    if (!testdata)
        testdata = "tests/data";
    test_config();
    test_spiece();
    test_spiece_hostile();
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
        check_model(models[i], CLIP_PRECISION_FP32, false);
    /* the text tower on gemm_f32.c's panels (the web server's way) */
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
        check_model(models[i], CLIP_PRECISION_FP32, true);
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
        check_model(models[i], CLIP_PRECISION_BF16, false);
    return check_exit();
}
