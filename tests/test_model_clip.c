/* test_model_clip.c - the CLIP engine against tools/ref_clip.py's independent reference on the
 * random models of tools/gen_clip.py (tests/data/models), plus hostile weight files and
 * config defaults. Tolerances: fixed pixels / token ids cosine >= 0.99999 (fp32); photo files
 * through decode + resize + preprocess cosine >= 0.999. */
#include "check.h"
#include "index_input.h"

#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/model.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"

#include "../src/model/internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *testdata;
static const char *tmpdir;
static double min_cos = 0.99999; /* fp32 vs the reference; test_model() lowers it for bf16 */

static const char *const models[] = { "tiny_b32", "gelu_odd", "f16",    "bf16",
                                      "sharded",  "legacy",   "b32_224" };

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

/* Compares got with the JSON array want; returns the cosine and prints it with the max diff. */
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

static void model_path(char *buf, size_t cap, const char *model, const char *file)
{
    snprintf(buf, cap, "%s/models/%s%s%s", testdata, model, file ? "/" : "", file ? file : "");
}

static void check_pixels(struct clip_ctx *ctx, const char *name, const cJSON *ref, int D, int S)
{
    char path[1024];
    const cJSON *px = cJSON_GetObjectItem(ref, "pixels");
    int B = cJSON_GetObjectItem(px, "batch")->valueint;
    model_path(path, sizeof(path), name, "pixels.f32");
    unsigned char *buf = NULL;
    size_t len = 0;
    CHECK_EQ_INT(SB_OK, sb_read_file(path, 64u << 20, &buf, &len, NULL));
    CHECK_EQ_INT((size_t)B * 3 * S * S * sizeof(float), len);
    float *out = calloc((size_t)B * D, sizeof(float));
    struct sb_err err = { 0 };
    int rc = clip_embed_images(ctx, (const float *)(void *)buf, B, out, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    const cJSON *embs = cJSON_GetObjectItem(px, "embeddings");
    for (int b = 0; b < B && !rc; b++) {
        char what[96];
        snprintf(what, sizeof(what), "%s pixels[%d]", name, b);
        CHECK(compare(what, out + (size_t)b * D, cJSON_GetArrayItem(embs, b), D) >= min_cos);
    }
    free(out);
    free(buf);
}

static void check_tokens(struct clip_ctx *ctx, const char *name, const cJSON *ref, int D)
{
    const cJSON *c;
    float *out = calloc((size_t)D, sizeof(float));
    int k = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "token_cases"))
    {
        const cJSON *ids = cJSON_GetObjectItem(c, "ids");
        int n = cJSON_GetArraySize(ids);
        int32_t tok[512];
        for (int i = 0; i < n && i < 512; i++)
            tok[i] = cJSON_GetArrayItem(ids, i)->valueint;
        struct sb_err err = { 0 };
        int rc = clip_embed_tokens(ctx, tok, n, out, &err);
        CHECK_EQ_INT(SB_OK, rc);
        char what[96];
        snprintf(what, sizeof(what), "%s tokens[%d] (n=%d)", name, k++, n);
        if (!rc)
            CHECK(compare(what, out, cJSON_GetObjectItem(c, "embedding"), D) >= min_cos);
    }
    free(out);
}

static void check_texts(struct clip_ctx *ctx, const char *name, const cJSON *ref, int D, int P)
{
    const cJSON *c;
    float *out = calloc((size_t)D, sizeof(float));
    int32_t *ids = calloc((size_t)P, sizeof(*ids));
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "text_cases"))
    {
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(c, "ids");
        int n = 0;
        struct sb_err err = { 0 };
        int rc = clip_embed_text(ctx, text, out, ids, &n, &err);
        CHECK_EQ_INT(SB_OK, rc);
        if (rc) {
            fprintf(stderr, "%s\n", err.msg);
            continue;
        }
        CHECK_EQ_INT(cJSON_GetArraySize(want), n);
        bool same = cJSON_GetArraySize(want) == n;
        for (int i = 0; same && i < n; i++)
            same = cJSON_GetArrayItem(want, i)->valueint == ids[i];
        CHECK(same);
        char what[96];
        snprintf(what, sizeof(what), "%s text '%.24s'", name, text);
        CHECK(compare(what, out, cJSON_GetObjectItem(c, "embedding"), D) >= min_cos);
    }
    free(ids);
    free(out);
}

enum file_path { FILE_FULL, FILE_SCALED, FILE_INDEX };

/* The path from a photo file: decode (oriented), resize, crop, normalise, embed. With
 * full-size decoding the only difference from the PIL reference is rounding (strict); with
 * the DCT-scaled decode the CLI and crawler use (short edge >= clip_model_min_decode), libjpeg's
 * scaled IDCT replaces part of PIL's antialiased resize: 0.999 is required where the
 * model input is a realistic 224, and tiny 32-64 px models, which magnify the difference, get
 * 0.98 (the figures are printed). FILE_INDEX is the indexer's path (index_input: JPEGs from
 * their planes with the fast resizer, not bit-exact), held to the same bounds. */
static void check_files(const struct clip_model *m, struct clip_ctx *ctx, const char *name,
                        const cJSON *ref, int D, int S, enum file_path how)
{
    static const char *const how_name[] = { "full", "scaled", "index" };
    const cJSON *c;
    float *px = calloc((size_t)3 * S * S, sizeof(float));
    float *out = calloc((size_t)D, sizeof(float));
    int min_short = 0, nplanar = 0, nfiles = 0;
    if (how != FILE_FULL)
        clip_model_min_decode(m, &min_short);
    double want = how == FILE_FULL ? 0.9999 : S >= 224 ? 0.999 : 0.98;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(ref, "image_files"))
    {
        char path[1024];
        const char *file = cJSON_GetObjectItem(c, "file")->valuestring;
        model_path(path, sizeof(path), name, file);
        struct sb_err err = { 0 };
        int rc =
            file_embedding(m, ctx, path, min_short, how == FILE_INDEX, &nplanar, px, out, &err);
        nfiles++;
        CHECK_EQ_INT(SB_OK, rc);
        if (rc)
            fprintf(stderr, "%s: %s\n", file, err.msg);
        char what[96];
        snprintf(what, sizeof(what), "%s %s %s", name, how_name[how], file + 10);
        if (!rc)
            CHECK(compare(what, out, cJSON_GetObjectItem(c, "embedding"), D) >= want);
    }
    if (how == FILE_INDEX) /* every JPEG (all but one PNG) took the planes path */
        CHECK(nfiles == 0 || nplanar == nfiles - 1);
    free(out);
    free(px);
}

/* precision BF16 checks the same cases against the fp32 reference at cosine >= 0.999 (the
 * photo-file cases stay fp32-only: their tolerance is about resizing, not arithmetic). */
static void test_model(const char *name, struct sb_pool *pool, enum clip_precision precision)
{
    char path[1024];
    struct clip_model *m = NULL;
    struct clip_ctx *ctx = NULL;
    struct sb_err err = { 0 };
    model_path(path, sizeof(path), name, "ref.json");
    cJSON *ref = read_json(path);
    CHECK(ref != NULL);
    model_path(path, sizeof(path), name, NULL);
    struct clip_load_params lp = clip_load_default_params();
    lp.precision = precision;
    lp.fast_text = pool != NULL; /* fp32: the text tower on gemm_f32.c's panels with a pool */
    int rc = clip_model_load(path, &lp, &m, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc || !ref) {
        fprintf(stderr, "%s\n", err.msg);
        goto out;
    }
    int D = clip_model_dim(m), S = clip_model_image_size(m);
    CHECK_EQ_INT(cJSON_GetObjectItem(ref, "dim")->valueint, D);
    CHECK_EQ_INT(cJSON_GetObjectItem(ref, "image_size")->valueint, S);
    bool bf16 = clip_model_precision(m) == CLIP_PRECISION_BF16;
    fprintf(stderr, "%s: id %s, %s%s\n", name, clip_model_id(m), bf16 ? "bf16" : "fp32",
            pool ? ", pool" : "");
    if (precision == CLIP_PRECISION_BF16 && !bf16) { /* no oneDNN in this build */
        fprintf(stderr, "%s: bf16 not available, skipped\n", name);
        goto out;
    }
    CHECK_EQ_INT(SB_OK, clip_ctx_new(m, 4, pool, &ctx, &err));
    min_cos = bf16 ? 0.999 : 0.99999;
    check_pixels(ctx, name, ref, D, S);
    check_tokens(ctx, name, ref, D);
    check_texts(ctx, name, ref, D, clip_model_max_text(m));
    if (!bf16) {
        check_files(m, ctx, name, ref, D, S, FILE_FULL);
        check_files(m, ctx, name, ref, D, S, FILE_SCALED);
        check_files(m, ctx, name, ref, D, S, FILE_INDEX);
    }
    min_cos = 0.99999;
out:
    clip_ctx_free(ctx);
    clip_model_free(m);
    cJSON_Delete(ref);
}

/* AUTO is bf16 exactly when the build has oneDNN and the CPU multiplies bf16 natively; the
 * CPU check agrees with the compiler's own CPUID reading; FP32 stays FP32. */
static void test_precision_auto(void)
{
    char path[1024];
    struct clip_model *m = NULL;
    struct sb_err err = { 0 };
    model_path(path, sizeof(path), "tiny_b32", NULL);
    struct clip_load_params p = clip_load_default_params();
    p.precision = CLIP_PRECISION_AUTO;
    CHECK_EQ_INT(SB_OK, clip_model_load(path, &p, &m, &err));
    bool native = clip_cpu_native_bf16();
    if (clip_bf16_compiled() && __builtin_cpu_supports("avx512bf16") &&
        sb_isa_max() == SB_ISA_AVX512) /* SHOEBOX_MAX_ISA below: as a CPU without it */
        CHECK(native);
    if (sb_isa_max() < SB_ISA_AVX512)
        CHECK(!native);
    enum clip_precision want =
        clip_bf16_compiled() && native ? CLIP_PRECISION_BF16 : CLIP_PRECISION_FP32;
    if (m)
        CHECK_EQ_INT(want, clip_model_precision(m));
    fprintf(stderr, "auto precision: %s (oneDNN %d, native bf16 %d)\n",
            want == CLIP_PRECISION_BF16 ? "bf16" : "fp32", clip_bf16_compiled(), native);
    clip_model_free(m);
    m = NULL;
    CHECK_EQ_INT(SB_OK, clip_model_load(path, NULL, &m, &err));
    if (m)
        CHECK_EQ_INT(CLIP_PRECISION_FP32, clip_model_precision(m));
    clip_model_free(m);
}

/* A text-only load gives the same text embeddings, refuses images, and has the same id. */
static void test_text_only(void)
{
    char path[1024];
    struct clip_model *both = NULL, *text = NULL;
    struct clip_ctx *ctx = NULL;
    struct sb_err err = { 0 };
    model_path(path, sizeof(path), "tiny_b32", NULL);
    struct clip_load_params p = clip_load_default_params();
    p.towers = CLIP_TOWER_TEXT;
    CHECK_EQ_INT(SB_OK, clip_model_load(path, &p, &text, &err));
    CHECK_EQ_INT(SB_OK, clip_model_load(path, NULL, &both, &err));
    if (!text || !both)
        goto out;
    CHECK_EQ_STR(clip_model_id(both), clip_model_id(text));
    CHECK(strncmp(clip_model_id(text), "clip-tiny-b32@", 14) == 0);
    CHECK_EQ_INT(14 + 16, strlen(clip_model_id(text)));
    CHECK_EQ_INT(CLIP_TOWER_TEXT, clip_model_towers(text));
    CHECK_EQ_INT(SB_OK, clip_ctx_new(text, 2, NULL, &ctx, &err));
    float px[3 * 64 * 64] = { 0 }, out[24];
    CHECK_EQ_INT(SB_EMODEL, clip_embed_images(ctx, px, 1, out, &err));
    struct image *img = image_new(8, 8);
    CHECK_EQ_INT(SB_EMODEL, clip_preprocess(text, img, px, &err));
    image_free(img);
    model_path(path, sizeof(path), "tiny_b32", "ref.json");
    cJSON *ref = read_json(path);
    check_texts(ctx, "tiny_b32 (text only)", ref, 24, 77);
    cJSON_Delete(ref);
    int32_t bad[3] = { 49406, 49408, 49407 };
    CHECK_EQ_INT(SB_EINVAL, clip_embed_tokens(ctx, bad, 3, out, &err));
    CHECK_EQ_INT(SB_EINVAL, clip_embed_tokens(ctx, bad, 0, out, &err));
out:
    clip_ctx_free(ctx);
    clip_model_free(text);
    clip_model_free(both);
}

/* ------------------------------------------------------------------------------------------ */
/* Hostile files: mutated copies of the bf16 model. */

enum mutation {
    MUT_NONE,
    MUT_DELETE,    /* remove tensor key */
    MUT_SHAPE,     /* transpose key's 2-D shape (same byte size) */
    MUT_OVERLAP,   /* give key the data_offsets of arg */
    MUT_DTYPE,     /* set key's dtype to arg (shape adjusted to keep the byte size) */
    MUT_BAD_DTYPE, /* set key's dtype to arg, unknown */
    MUT_TRUNCATE,  /* cut the file to `cut` bytes */
    MUT_HLEN,      /* header length field = hlen */
    MUT_NOT_JSON,  /* header starts with garbage */
    MUT_NO_SHARD,  /* (index) a shard file missing */
};

struct hostile {
    const char *label;
    enum mutation mut;
    const char *key, *arg;
    long long n;
    const char *expect; /* substring of the error */
};

static const struct hostile hostile_cases[] = {
    { "missing tensor", MUT_DELETE, "text_projection.weight", NULL, 0,
      "'text_projection.weight' is missing" },
    { "missing layer tensor", MUT_DELETE, "vision_model.encoder.layers.2.mlp.fc1.bias", NULL, 0,
      "vision_model.encoder.layers.2.mlp.fc1.bias" },
    { "wrong shape", MUT_SHAPE, "visual_projection.weight", NULL, 0,
      "'visual_projection.weight' has shape (16,12), expected (12,16)" },
    { "overlapping tensors", MUT_OVERLAP, "vision_model.post_layernorm.bias",
      "vision_model.post_layernorm.weight", 0, "overlap" },
    { "unsupported dtype", MUT_DTYPE, "text_model.final_layer_norm.weight", "F8_E5M2", 0,
      "'text_model.final_layer_norm.weight': dtype F8_E5M2 is not supported" },
    { "unknown dtype", MUT_BAD_DTYPE, "text_model.final_layer_norm.bias", "Q4_K", 0,
      "'text_model.final_layer_norm.bias' has unknown dtype" },
    { "truncated data", MUT_TRUNCATE, NULL, NULL, -10, "past the end" },
    { "truncated to 5 bytes", MUT_TRUNCATE, NULL, NULL, 5, "too short" },
    { "header length past the end", MUT_HLEN, NULL, NULL, 1000000, "past the end of the file" },
    { "header over the cap", MUT_HLEN, NULL, NULL, 200LL << 20, "cap" },
    { "header length ~2^64", MUT_HLEN, NULL, NULL, -1, "cap" },
    { "non-JSON header", MUT_NOT_JSON, NULL, NULL, 0, "not a JSON object" },
};

static int copy_file(const char *from, const char *to)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = sb_read_file(from, 64u << 20, &buf, &len, NULL);
    if (!rc)
        rc = sb_write_file_atomic(to, buf, len, NULL);
    free(buf);
    return rc;
}

static unsigned char *mutate(const unsigned char *buf, size_t len, const struct hostile *h,
                             size_t *out_len)
{
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    const unsigned char *data = buf + 8 + hlen;
    size_t data_len = len - 8 - hlen;
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, hlen);
    cJSON *t = h->key ? cJSON_GetObjectItem(root, h->key) : NULL;
    switch (h->mut) {
    case MUT_DELETE:
        cJSON_DeleteItemFromObject(root, h->key);
        break;
    case MUT_SHAPE: {
        cJSON *shape = cJSON_GetObjectItem(t, "shape");
        int a = cJSON_GetArrayItem(shape, 0)->valueint, b = cJSON_GetArrayItem(shape, 1)->valueint;
        cJSON_ReplaceItemInArray(shape, 0, cJSON_CreateNumber(b));
        cJSON_ReplaceItemInArray(shape, 1, cJSON_CreateNumber(a));
        break;
    }
    case MUT_OVERLAP: {
        cJSON *other = cJSON_GetObjectItem(cJSON_GetObjectItem(root, h->arg), "data_offsets");
        cJSON_ReplaceItemInObject(t, "data_offsets", cJSON_Duplicate(other, 1));
        break;
    }
    case MUT_DTYPE: { /* BF16 (2 bytes) -> 1-byte dtype: double the element count */
        cJSON *shape = cJSON_GetObjectItem(t, "shape");
        int a = cJSON_GetArrayItem(shape, 0)->valueint;
        cJSON_ReplaceItemInArray(shape, 0, cJSON_CreateNumber(2 * a));
        cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString(h->arg));
        break;
    }
    case MUT_BAD_DTYPE:
        cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString(h->arg));
        break;
    default:
        break;
    }
    char *hdr = cJSON_PrintUnformatted(root);
    size_t n = strlen(hdr), padded = (n + 7) / 8 * 8;
    size_t total = 8 + padded + data_len;
    unsigned char *out = malloc(total);
    memset(out + 8, ' ', padded);
    memcpy(out + 8, hdr, n);
    memcpy(out + 8 + padded, data, data_len);
    uint64_t field = padded;
    if (h->mut == MUT_HLEN)
        field = (uint64_t)h->n;
    if (h->mut == MUT_NOT_JSON)
        out[8] = 'x';
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(field >> (8 * i));
    if (h->mut == MUT_TRUNCATE)
        total = h->n < 0 ? total - (size_t)(-h->n) : (size_t)h->n;
    free(hdr);
    cJSON_Delete(root);
    *out_len = total;
    return out;
}

static void test_hostile(void)
{
    char src[1024], dir[1024], path[1100];
    snprintf(dir, sizeof(dir), "%s/clip_hostile.%d", tmpdir, (int)getpid());
    CHECK_EQ_INT(SB_OK, sb_mkdirs(dir, NULL));
    static const char *const keep[] = { "config.json", "preprocessor_config.json" };
    for (int i = 0; i < 2; i++) {
        model_path(src, sizeof(src), "bf16", keep[i]);
        snprintf(path, sizeof(path), "%s/%s", dir, keep[i]);
        CHECK_EQ_INT(SB_OK, copy_file(src, path));
    }
    model_path(src, sizeof(src), "bf16", "model.safetensors");
    unsigned char *good = NULL;
    size_t good_len = 0;
    CHECK_EQ_INT(SB_OK, sb_read_file(src, 64u << 20, &good, &good_len, NULL));
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    /* the unmutated round trip loads */
    struct hostile none = { "none", MUT_NONE, NULL, NULL, 0, NULL };
    for (size_t k = 0; k <= sizeof(hostile_cases) / sizeof(hostile_cases[0]); k++) {
        const struct hostile *h = k == 0 ? &none : &hostile_cases[k - 1];
        size_t len = 0;
        unsigned char *bad = mutate(good, good_len, h, &len);
        CHECK_EQ_INT(SB_OK, sb_write_file_atomic(path, bad, len, NULL));
        free(bad);
        struct clip_model *m = NULL;
        struct sb_err err = { 0 };
        int rc = clip_model_load(dir, NULL, &m, &err);
        fprintf(stderr, "  hostile %-28s rc %d: %s\n", h->label, rc, err.msg);
        if (!h->expect) {
            CHECK_EQ_INT(SB_OK, rc);
        } else {
            CHECK(rc != SB_OK);
            CHECK(strstr(err.msg, h->expect) != NULL);
        }
        clip_model_free(m);
    }
    free(good);
    /* no weights at all */
    remove(path);
    struct clip_model *m = NULL;
    struct sb_err err = { 0 };
    CHECK_EQ_INT(SB_ENOENT, clip_model_load(dir, NULL, &m, &err));
    CHECK(strstr(err.msg, "no model.safetensors") != NULL);
    /* a missing shard of an index */
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    const char *idx = "{\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\"}}";
    CHECK_EQ_INT(SB_OK, sb_write_file_atomic(path, idx, strlen(idx), NULL));
    CHECK_EQ_INT(SB_ENOENT, clip_model_load(dir, NULL, &m, &err));
    const char *evil = "{\"weight_map\":{\"a\":\"../../etc/passwd\"}}";
    CHECK_EQ_INT(SB_OK, sb_write_file_atomic(path, evil, strlen(evil), NULL));
    CHECK_EQ_INT(SB_ECORRUPT, clip_model_load(dir, NULL, &m, &err));
    CHECK(strstr(err.msg, "bad shard name") != NULL);
    remove(path);
}

/* ------------------------------------------------------------------------------------------ */
/* Config parsing */

static void test_config(void)
{
    struct clip_config c;
    struct sb_err err = { 0 };
    CHECK_EQ_INT(SB_OK, clip_config_parse("{}", 2, &c, &err));
    /* CLIPConfig() defaults: ViT-B/32 */
    CHECK_EQ_INT(512, c.text.hidden);
    CHECK_EQ_INT(2048, c.text.intermediate);
    CHECK_EQ_INT(8, c.text.heads);
    CHECK_EQ_INT(12, c.text.layers);
    CHECK_EQ_INT(768, c.vision.hidden);
    CHECK_EQ_INT(12, c.vision.heads);
    CHECK_EQ_INT(224, c.image_size);
    CHECK_EQ_INT(32, c.patch_size);
    CHECK_EQ_INT(512, c.proj_dim);
    CHECK_EQ_INT(49408, c.vocab_size);
    CHECK_EQ_INT(77, c.max_pos);
    CHECK_EQ_INT(49407, c.eos_token_id);
    CHECK_EQ_INT(CLIP_ACT_QUICK_GELU, c.text.act);
    CHECK_NEAR(1e-5, c.vision.ln_eps, 1e-12);
    CHECK_EQ_STR("clip", c.name);
    const char *l14 = "{\"_name_or_path\":\"openai/clip-vit-large-patch14\",\"projection_dim\":768,"
                      "\"text_config\":{\"hidden_size\":768,\"num_attention_heads\":12,"
                      "\"hidden_act\":\"gelu\",\"eos_token_id\":2},"
                      "\"vision_config\":{\"hidden_size\":1024,\"num_hidden_layers\":24,"
                      "\"num_attention_heads\":16,\"patch_size\":14,\"intermediate_size\":4096,"
                      "\"image_size\":336}}";
    CHECK_EQ_INT(SB_OK, clip_config_parse(l14, strlen(l14), &c, &err));
    CHECK_EQ_STR("clip-vit-large-patch14", c.name);
    CHECK_EQ_INT(CLIP_ACT_GELU, c.text.act);
    CHECK_EQ_INT(CLIP_ACT_QUICK_GELU, c.vision.act);
    CHECK_EQ_INT(2, c.eos_token_id);
    CHECK_EQ_INT(14, c.patch_size);
    CHECK_EQ_INT(336, c.image_size);
    static const struct {
        const char *json;
        const char *expect;
    } bad[] = {
        { "[]", "not a JSON object" },
        { "{\"projection_dim\":0}", "projection_dim" },
        { "{\"projection_dim\":1.5}", "projection_dim" },
        { "{\"text_config\":{\"hidden_size\":30,\"num_attention_heads\":7}}", "multiple" },
        { "{\"vision_config\":{\"hidden_act\":\"relu6\"}}", "relu6" },
        { "{\"vision_config\":{\"num_hidden_layers\":1e9}}", "num_hidden_layers" },
        { "{\"vision_config\":{\"patch_size\":300}}", "patch_size" },
        { "{\"text_config\":{\"hidden_size\":\"512\"}}", "hidden_size" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.msg[0] = '\0';
        CHECK(clip_config_parse(bad[i].json, strlen(bad[i].json), &c, &err) != SB_OK);
        CHECK(strstr(err.msg, bad[i].expect) != NULL);
    }
    struct clip_preproc_config p;
    CHECK_EQ_INT(SB_OK, clip_preproc_parse(NULL, 0, 64, &p, &err));
    CHECK_EQ_INT(64, p.size_short);
    const char *hw = "{\"size\":{\"height\":224,\"width\":224},\"crop_size\":224,"
                     "\"do_center_crop\":false}";
    CHECK_EQ_INT(SB_OK, clip_preproc_parse(hw, strlen(hw), 224, &p, &err));
    CHECK(!p.size_is_shortest_edge);
    CHECK_NEAR(0.48145466, p.mean[0], 1e-7);
    const char *mismatch = "{\"size\":{\"shortest_edge\":224},\"crop_size\":{\"height\":224,"
                           "\"width\":224}}";
    CHECK_EQ_INT(SB_EMODEL, clip_preproc_parse(mismatch, strlen(mismatch), 336, &p, &err));
    CHECK(strstr(err.msg, "336") != NULL);
    const char *zero_std = "{\"image_std\":[1,0,1]}";
    CHECK(clip_preproc_parse(zero_std, strlen(zero_std), 224, &p, &err) != SB_OK);
}

/* Parser edge cases straight on bytes: header + `extra` data bytes. */
static int parse_hdr(const char *hdr, size_t extra, struct st_file *f, struct sb_err *err)
{
    unsigned char buf[512] = { 0 };
    size_t n = strlen(hdr);
    buf[0] = (unsigned char)n;
    memcpy(buf + 8, hdr, n);
    return st_parse(buf, 8 + n + extra, "x", f, err);
}

static void test_st_parse(void)
{
    struct st_file f;
    struct sb_err err = { 0 };
    const char *scalar = "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}";
    CHECK_EQ_INT(SB_OK, parse_hdr(scalar, 4, &f, &err));
    CHECK_EQ_INT(1, f.n);
    CHECK_EQ_INT(1, f.t[0].numel);
    st_file_release(&f);
    CHECK(parse_hdr(scalar, 3, &f, &err) != SB_OK); /* data one byte short */
    static const char *const bad[] = {
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}",
        ("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
         "\"data_offsets\":[0,4]}}"),
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,4]}}",
        "{\"a\":[1,2]}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1e300]}}",
        "{\"a\":{\"dtype\":\"F32\",",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse_hdr(bad[i], 16, &f, &err);
        CHECK(rc != SB_OK);
        if (rc == SB_OK)
            st_file_release(&f);
    }
    CHECK_EQ_INT(SB_OK, parse_hdr("{\"__metadata__\":{\"format\":\"pt\"}}", 0, &f, &err));
    CHECK_EQ_INT(0, f.n);
    st_file_release(&f);
}

/* The attention head kernels (clip_avx512.c) against a double-precision softmax(q k^T / sqrt E) v
 * on the same bf16-rounded inputs: the f32 kernel, the AVX512-BF16 one and the AMX one, each
 * where the CPU has it (the models above have head sizes the AMX kernel does not take). */
static float bf16_round(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* The SIMD bias + activation bodies against clip_k_act's C loops (libm's expf and tanhf):
 * within rounding over the whole range, tails of every length, with and without the bias. */
static void test_act_kernels(void)
{
    /* the ctest variants that cap the ISA (tests/CMakeLists.txt) really run the other paths */
    const char *isa = getenv("SHOEBOX_MAX_ISA");
    if (isa && (strcmp(isa, "avx2") == 0 || strcmp(isa, "c") == 0))
        CHECK(!clip_avx512() && !clip_avx512_bf16() && !clip_amx());
    if (isa && strcmp(isa, "c") == 0)
        CHECK(!clip_avx2());
    typedef bool (*bias_act_fn)(float *, const float *, size_t, bool, enum clip_act);
    struct {
        const char *name;
        bool have;
        bias_act_fn fn;
    } kernels[] = { { "avx2", clip_avx2(), clip_avx2_bias_act },
                    { "avx512", clip_avx512(), clip_avx512_bias_act } };
    static const enum clip_act acts[] = { CLIP_ACT_QUICK_GELU, CLIP_ACT_GELU_TANH };
    enum { N = 203 };
    float x[N], b[N], got[N], want[N];
    uint32_t s = 99u;
    for (int i = 0; i < N; i++) {
        s = s * 1664525u + 1013904223u;
        float u = (float)(s >> 8) / 16777216.0f; /* [0, 1) */
        /* mostly where the activations bend, some far out (exp's clamps), exact zeros */
        x[i] = i % 17 == 0 ? 0.0f : i % 11 == 0 ? (u - 0.5f) * 400.0f : (u - 0.5f) * 12.0f;
        b[i] = (float)(i % 7) * 0.25f - 0.75f;
    }
    for (size_t k = 0; k < sizeof(kernels) / sizeof(kernels[0]); k++) {
        if (!kernels[k].have)
            continue;
        float z[4] = { 1, 2, 3, 4 };
        CHECK(!kernels[k].fn(z, NULL, 4, true, CLIP_ACT_GELU)); /* erf: left to the C loop */
        for (size_t a = 0; a < 2; a++)
            for (int bias = 0; bias < 2; bias++)
                for (size_t n = 1; n <= N; n += n < 20 ? 1 : 61) {
                    for (size_t i = 0; i < n; i++) {
                        got[i] = x[i];
                        want[i] = x[i] + (bias ? b[i] : 0.0f);
                    }
                    if (n < N)
                        got[n] = 12345.0f; /* past n: untouched */
                    CHECK(kernels[k].fn(got, bias ? b : NULL, n, true, acts[a]));
                    clip_k_act(want, n, acts[a]);
                    double worst = 0;
                    for (size_t i = 0; i < n; i++) {
                        double in = (double)x[i] + (bias ? (double)b[i] : 0.0);
                        double e = fabs((double)got[i] - (double)want[i]) / (1.0 + fabs(in));
                        worst = e > worst ? e : worst;
                    }
                    if (n < N)
                        CHECK(got[n] == 12345.0f);
                    if (worst > 1e-6)
                        fprintf(stderr, "%s act %d bias %d n %zu: error %g\n", kernels[k].name,
                                (int)acts[a], bias, n, worst);
                    CHECK(worst <= 1e-6);
                }
    }
}

static void test_attention_kernels(void)
{
    if (!clip_avx512())
        return;
    static const int Ls[] = { 1, 17, 50, 197 }, Es[] = { 32, 64 };
    size_t ld = 3 * 64 + 16; /* wider rows than E, as the q/k/v panels of a layer are */
    for (size_t li = 0; li < sizeof(Ls) / sizeof(Ls[0]); li++)
        for (size_t ei = 0; ei < sizeof(Es) / sizeof(Es[0]); ei++)
            for (int causal = 0; causal < 2; causal++) {
                int L = Ls[li], E = Es[ei];
                size_t n = ((size_t)L + 16) * ld; /* 16 spare rows, as a panel has */
                float *qf = calloc(3 * n, sizeof(float)),
                      *ref = calloc((size_t)L * E, sizeof(float));
                uint16_t *qb = calloc(3 * n, sizeof(uint16_t)), *ob = calloc((size_t)L * E, 2);
                float *of = calloc((size_t)L * E, sizeof(float));
                float *scratch = calloc(clip_avx512_attention_scratch((size_t)L, (size_t)E) +
                                            (size_t)L * ((size_t)L + (size_t)E),
                                        sizeof(float));
                CHECK(qf && ref && qb && ob && of && scratch);
                uint32_t seed = 12345u + (uint32_t)(L * 7 + E + causal);
                for (size_t i = 0; i < 3 * n; i++) {
                    seed = seed * 1664525u + 1013904223u;
                    qf[i] = bf16_round(((float)(seed >> 8) / 16777216.0f - 0.5f) * 4.0f);
                    uint32_t u;
                    memcpy(&u, &qf[i], sizeof(u));
                    qb[i] = (uint16_t)(u >> 16);
                }
                const float *q = qf, *k = qf + n, *v = qf + 2 * n;
                double scale = 1.0 / sqrt((double)E), *p = calloc((size_t)L, sizeof(double));
                for (int i = 0; i < L; i++) {
                    int m = causal ? i + 1 : L;
                    double mx = -(double)INFINITY, sum = 0.0;
                    for (int j = 0; j < m; j++) {
                        double d = 0.0;
                        for (int e = 0; e < E; e++)
                            d += (double)q[(size_t)i * ld + (size_t)e] *
                                 (double)k[(size_t)j * ld + (size_t)e];
                        p[j] = d * scale;
                        mx = p[j] > mx ? p[j] : mx;
                    }
                    for (int j = 0; j < m; j++)
                        sum += p[j] = exp(p[j] - mx);
                    for (int e = 0; e < E; e++) {
                        double o = 0.0;
                        for (int j = 0; j < m; j++)
                            o += p[j] * (double)v[(size_t)j * ld + (size_t)e];
                        ref[(size_t)i * E + (size_t)e] = (float)(o / sum);
                    }
                }
                free(p);
                /* f32: tight; bf16 products round p to bf16 and the output to bf16 */
                clip_avx512_attention_head(scratch, q, k, v, ld, L, E, (float)scale, causal, of,
                                           (size_t)E, false);
                double worst = 0.0;
                for (size_t i = 0; i < (size_t)L * E; i++)
                    worst = fmax(worst, fabs((double)of[i] - (double)ref[i]));
                CHECK(worst < 1e-5);
                for (int kind = 0; kind < 2; kind++) {
                    if (kind == 0 ? !clip_avx512_bf16() : !clip_amx())
                        continue;
                    memset(ob, 0xff, (size_t)L * E * 2);
                    (kind == 0 ? clip_avx512_attention_head_bf16 : clip_amx_attention_head_bf16)(
                        scratch, qb, qb + n, qb + 2 * n, ld, L, E, (float)scale, causal, ob,
                        (size_t)E);
                    worst = 0.0;
                    for (size_t i = 0; i < (size_t)L * E; i++) {
                        uint32_t u = (uint32_t)ob[i] << 16;
                        float f;
                        memcpy(&f, &u, sizeof(f));
                        worst = fmax(worst, fabs((double)f - (double)ref[i]));
                    }
                    if (!(worst < 0.03))
                        fprintf(stderr, "attention kind %d L %d E %d causal %d: max diff %g\n",
                                kind, L, E, causal, worst);
                    CHECK(worst < 0.03);
                }
                free(qf);
                free(ref);
                free(qb);
                free(ob);
                free(of);
                free(scratch);
            }
}

/* A uniform value in [-scale/2, scale/2) from an LCG: the products' test data. */
static float lcg_sym(uint32_t *seed, float scale)
{
    *seed = *seed * 1664525u + 1013904223u;
    return ((float)(*seed >> 8) / 16777216.0f - 0.5f) * scale;
}

static void fill_sym(float *x, size_t n, float scale, uint32_t *seed)
{
    for (size_t i = 0; i < n; i++)
        x[i] = lcg_sym(seed, scale);
}

/* dot (M, N) = in (M, K) @ W^T in double, mag the sums of |terms| (the error scale), res
 * (M, N) random values in [0, 1) for the residual epilogue. W rows ldw apart. */
static void ref_products(const float *in, const float *w, size_t ldw, int M, int K, int N,
                         double *dot, double *mag, float *res, uint32_t *seed)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double d = 0.0, a = 0.0;
            for (int k = 0; k < K; k++) {
                double x =
                    (double)in[(size_t)m * K + (size_t)k] * (double)w[(size_t)n * ldw + (size_t)k];
                d += x;
                a += fabs(x);
            }
            dot[(size_t)m * N + (size_t)n] = d;
            mag[(size_t)m * N + (size_t)n] = a;
            res[(size_t)m * N + (size_t)n] = lcg_sym(seed, 1.0f) + 0.5f;
        }
}

/* gemm_amx.c's product against a double-precision reference on the same bf16-rounded inputs,
 * on shapes that are not multiples of the tiles (M of 16/32, K of 32, N of 32), every epilogue,
 * with and without bias, and shared out by column blocks: rows past M of the input hold NaN
 * (must not be read), outputs outside the rows and columns asked for must stay untouched. */
static double act_ref(double x, enum clip_act act)
{
    switch (act) {
    case CLIP_ACT_QUICK_GELU:
        return x / (1.0 + exp(-1.702 * x));
    case CLIP_ACT_GELU:
        return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case CLIP_ACT_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(0.79788456080286536 * (x + 0.044715 * x * x * x)));
    }
    return x;
}

static float bf16_value(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

static void test_amx_gemm_shape(int M, int K, int N, uint32_t seed)
{
    size_t ldw = (size_t)K + 3; /* W rows wider than K, as a part of fc2 is */
    float *w = malloc((size_t)N * ldw * sizeof(float)), *bias = malloc((size_t)N * sizeof(float));
    uint16_t *in = malloc(((size_t)M + 16) * (size_t)K * sizeof(uint16_t));
    uint16_t *wp = aligned_alloc(64, (clip_amx_packed_size(K, N) * 2 + 63) / 64 * 64);
    uint16_t *row = malloc((size_t)K * sizeof(uint16_t));
    double *dot = malloc((size_t)M * (size_t)N * sizeof(double)),
           *mag = malloc((size_t)M * (size_t)N * sizeof(double));
    float *res = malloc((size_t)M * (size_t)N * sizeof(float)),
          *outf = malloc(((size_t)M + 1) * (size_t)N * sizeof(float));
    uint16_t *outh = malloc(((size_t)M + 1) * (size_t)N * sizeof(uint16_t));
    CHECK(w && bias && in && wp && row && dot && mag && res && outf && outh);
    fill_sym(w, (size_t)N * ldw, 2.0f, &seed);
    fill_sym(bias, (size_t)N, 1.0f, &seed);
    for (size_t i = 0; i < ((size_t)M + 16) * (size_t)K; i++) {
        float f = lcg_sym(&seed, 4.0f);
        f = i < (size_t)M * K ? f : NAN;
        clip_k_store_input(in, i, &f, 1, true);
    }
    clip_amx_pack(wp, w, ldw, K, N, row);
    /* the reference on the values the kernel multiplies: both sides rounded to bf16 */
    float *inr = malloc((size_t)M * (size_t)K * sizeof(float) + 1),
          *wr = malloc((size_t)N * ldw * sizeof(float));
    CHECK(inr && wr);
    for (size_t i = 0; i < (size_t)M * K; i++)
        inr[i] = bf16_value(in[i]);
    for (size_t i = 0; i < (size_t)N * ldw; i++)
        wr[i] = bf16_round(w[i]);
    ref_products(inr, wr, ldw, M, K, N, dot, mag, res, &seed);
    free(inr);
    free(wr);
    /* column split: [0, n0) and [n0, N) in two calls, n0 a multiple of CLIP_AMX_COLS */
    int n0 = N > CLIP_AMX_COLS ? CLIP_AMX_COLS * ((N / CLIP_AMX_COLS + 1) / 2) : N;
    static const enum clip_epi epis[] = { CLIP_EPI_STORE, CLIP_EPI_RESIDUAL, CLIP_EPI_BF16,
                                          CLIP_EPI_ACT,   CLIP_EPI_ACT,      CLIP_EPI_ACT };
    static const enum clip_act acts[] = { CLIP_ACT_GELU,       CLIP_ACT_GELU, CLIP_ACT_GELU,
                                          CLIP_ACT_QUICK_GELU, CLIP_ACT_GELU, CLIP_ACT_GELU_TANH };
    for (size_t e = 0; e < sizeof(epis) / sizeof(epis[0]); e++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            enum clip_epi epi = epis[e];
            bool half = epi == CLIP_EPI_ACT || epi == CLIP_EPI_BF16;
            const float *b = with_bias ? bias : NULL;
            for (size_t i = 0; i < ((size_t)M + 1) * (size_t)N; i++) { /* sentinels */
                outf[i] = i < (size_t)M * N && epi == CLIP_EPI_RESIDUAL ? res[i] : 7.0f;
                outh[i] = 0x4321;
            }
            void *out = half ? (void *)outh : (void *)outf;
            clip_amx_gemm(out, (size_t)N, in, (size_t)K, M, wp, b, K, N, 0, n0, epi, acts[e]);
            if (n0 < N)
                clip_amx_gemm(out, (size_t)N, in, (size_t)K, M, wp, b, K, N, n0, N, epi, acts[e]);
            double worst = 0.0; /* error / allowed */
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    size_t i = (size_t)m * N + (size_t)n;
                    double want = dot[i] + (b ? (double)b[n] : 0.0), tol = 2e-6 * mag[i] + 1e-6;
                    if (epi == CLIP_EPI_RESIDUAL)
                        want += (double)res[i];
                    if (epi == CLIP_EPI_ACT)
                        want = act_ref(want, acts[e]), tol += 2e-6 * fabs(want);
                    if (half)
                        tol += fabs(want) / 256.0;
                    double got = half ? (double)bf16_value(outh[i]) : (double)outf[i];
                    worst = fmax(worst, fabs(got - want) / tol);
                    if (!(fabs(got - want) <= tol))
                        worst = fmax(worst, 1e9); /* NaN too */
                }
            bool untouched = true; /* the row past M */
            for (int n = 0; n < N; n++)
                untouched = untouched && (half ? outh[(size_t)M * N + (size_t)n] == 0x4321
                                               : outf[(size_t)M * N + (size_t)n] == 7.0f);
            if (!(worst <= 1.0) || !untouched)
                fprintf(stderr,
                        "amx gemm M %d K %d N %d epi %d act %d bias %d: error %g of the "
                        "tolerance, row past M %s\n",
                        M, K, N, (int)epi, (int)acts[e], with_bias, worst,
                        untouched ? "untouched" : "written");
            CHECK(worst <= 1.0);
            CHECK(untouched);
        }
    free(w);
    free(bias);
    free(in);
    free(wp);
    free(row);
    free(dot);
    free(mag);
    free(res);
    free(outf);
    free(outh);
}

/* gemm_f32.c's panels against a double-precision reference, for each panel width this CPU
 * has a kernel for (64: AVX-512, 16: AVX2): shapes around the 6-row blocks and the panel width,
 * every epilogue, with and without bias, shared out by panels. Rows past M hold NaN (must not be
 * read); outputs outside the rows and columns asked for must stay untouched. */
static void test_f32_gemm_shape(int np, int M, int K, int N, uint32_t seed)
{
    size_t ldw = (size_t)K + 5;
    float *w = malloc((size_t)N * ldw * sizeof(float)), *bias = malloc((size_t)N * sizeof(float));
    float *in = malloc(((size_t)M + 6) * (size_t)K * sizeof(float));
    float *wp = malloc(clip_f32_packed_size(K, N, np) * sizeof(float));
    double *dot = malloc((size_t)M * (size_t)N * sizeof(double)),
           *mag = malloc((size_t)M * (size_t)N * sizeof(double));
    float *res = malloc((size_t)M * (size_t)N * sizeof(float)),
          *out = malloc(((size_t)M + 1) * (size_t)N * sizeof(float));
    CHECK(w && bias && in && wp && dot && mag && res && out);
    fill_sym(w, (size_t)N * ldw, 2.0f, &seed);
    fill_sym(bias, (size_t)N, 1.0f, &seed);
    fill_sym(in, ((size_t)M + 6) * (size_t)K, 4.0f, &seed);
    for (size_t i = (size_t)M * K; i < ((size_t)M + 6) * (size_t)K; i++)
        in[i] = NAN; /* rows past M: never read */
    clip_f32_pack(wp, w, ldw, K, N, np);
    ref_products(in, w, ldw, M, K, N, dot, mag, res, &seed);
    static const enum clip_epi epis[] = { CLIP_EPI_STORE, CLIP_EPI_RESIDUAL, CLIP_EPI_ACT,
                                          CLIP_EPI_ACT, CLIP_EPI_ACT };
    static const enum clip_act acts[] = { CLIP_ACT_QUICK_GELU, CLIP_ACT_QUICK_GELU,
                                          CLIP_ACT_QUICK_GELU, CLIP_ACT_GELU, CLIP_ACT_GELU_TANH };
    int split = N > np ? np : 0; /* two workers' panels: [0, split), [split, N) */
    for (size_t e = 0; e < sizeof(epis) / sizeof(epis[0]); e++)
        for (int hb = 0; hb < 2; hb++) {
            const float *b = hb ? bias : NULL;
            for (size_t i = 0; i < ((size_t)M + 1) * (size_t)N; i++)
                out[i] = i < (size_t)M * N && epis[e] == CLIP_EPI_RESIDUAL ? res[i] : -7.0f;
            if (split)
                clip_f32_gemm(out, (size_t)N, in, (size_t)K, M, wp, np, b, K, N, 0, split, epis[e],
                              acts[e]);
            clip_f32_gemm(out, (size_t)N, in, (size_t)K, M, wp, np, b, K, N, split, N, epis[e],
                          acts[e]);
            double worst = 0.0;
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    size_t i = (size_t)m * N + (size_t)n;
                    double v = dot[i] + (b ? (double)b[n] : 0.0), want = v;
                    if (epis[e] == CLIP_EPI_RESIDUAL)
                        want = (double)res[i] + v;
                    else if (epis[e] == CLIP_EPI_ACT)
                        want = act_ref(v, acts[e]);
                    double err = fabs((double)out[i] - want) / (1.0 + mag[i]);
                    worst = err > worst ? err : worst;
                }
            for (int n = 0; n < N; n++)
                CHECK(out[(size_t)M * N + (size_t)n] == -7.0f); /* the row past M */
            if (!(worst < 2e-6))
                fprintf(stderr, "f32 gemm np %d M %d K %d N %d epi %d act %d bias %d: error %g\n",
                        np, M, K, N, (int)epis[e], (int)acts[e], hb, worst);
            CHECK(worst < 2e-6);
        }
    free(w);
    free(bias);
    free(in);
    free(wp);
    free(dot);
    free(mag);
    free(res);
    free(out);
}

static void test_f32_gemm(void)
{
    static const int shapes[][3] = { { 1, 1, 1 },     { 5, 7, 3 },     { 6, 64, 64 },
                                     { 7, 33, 65 },   { 13, 100, 17 }, { 64, 96, 200 },
                                     { 77, 31, 130 }, { 128, 129, 64 } };
    int nps[2] = { clip_avx2() ? 16 : 0, clip_avx512() ? 64 : 0 };
    for (int p = 0; p < 2; p++) {
        if (!nps[p])
            continue;
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
            test_f32_gemm_shape(nps[p], shapes[i][0], shapes[i][1], shapes[i][2],
                                4242u + (uint32_t)i);
    }
    CHECK(clip_f32_panel() == (clip_avx512() ? 64 : clip_avx2() ? 16 : 0));
}

static void test_amx_gemm(void)
{
    if (!clip_amx()) {
        fprintf(stderr, "amx gemm: the CPU has no AMX-BF16, skipped\n");
        return;
    }
    /* the last three: few rows (column blocks outside) with a K tail, a partial last row
     * block and several column blocks */
    static const int shapes[][3] = { { 1, 1, 1 },     { 7, 45, 33 },    { 16, 32, 32 },
                                     { 17, 31, 64 },  { 31, 33, 65 },   { 33, 64, 100 },
                                     { 50, 97, 17 },  { 64, 96, 96 },   { 129, 773, 70 },
                                     { 100, 45, 70 }, { 128, 200, 96 }, { 65, 40, 64 } };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        test_amx_gemm_shape(shapes[i][0], shapes[i][1], shapes[i][2], 777u + (uint32_t)i);
}

int main(void)
{
    testdata = getenv("SHOEBOX_TESTDATA");
    tmpdir = getenv("SHOEBOX_TMP");
    if (!testdata || !tmpdir) {
        fprintf(stderr, "SHOEBOX_TESTDATA and SHOEBOX_TMP must be set (ctest does)\n");
        return 1;
    }
    test_config();
    test_st_parse();
    test_act_kernels();
    test_attention_kernels();
    test_amx_gemm();
    test_f32_gemm();
    test_precision_auto();
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
        test_model(models[i], NULL, CLIP_PRECISION_FP32);
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
        test_model(models[i], NULL, CLIP_PRECISION_BF16);
    struct sb_pool *pool = NULL;
    CHECK_EQ_INT(SB_OK, sb_pool_new(2, &pool, NULL));
    /* the same numbers with every op shared out over a pool */
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
        test_model(models[i], pool, CLIP_PRECISION_FP32);
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++)
        test_model(models[i], pool, CLIP_PRECISION_BF16);
    sb_pool_free(pool);
    test_text_only();
    test_hostile();
    return check_exit();
}
