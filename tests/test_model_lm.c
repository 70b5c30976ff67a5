/* test_model_lm.c - the decoder LM runtime (lm.h) against tools/ref_lm.py's torch float64
 * reference on the random models of tools/gen_lm.py (tests/data/lm/<name>/): last-position
 * logits after prefill (max abs error <= 1e-3 of the logit range), greedy tokens for 20 steps
 * with and without repetition penalty, embedding-row input, chunked prefill, threads, and the
 * failure paths (missing files, bad config, wrong shapes, bad arguments). bf16 precision: the
 * prefill's products on packed bf16 weights, logits within 1% of the logit range and the same
 * greedy tokens, and not bit-identical to fp32 (the bf16 path ran). Batched decoding
 * (lm_gen_step): prompts of different lengths, parameters and stop times decoded side by side
 * give each exactly its tokens and last logits decoded alone. */
#include "check.h"
#include "model_fixture.h"

#include "../src/model/lm_internal.h"

#include "shoebox/err.h"
#include "shoebox/lm.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_IDS 64

struct ref {
    cJSON *root;
    int32_t prompt[MAX_IDS], greedy[MAX_IDS], greedy_pen[MAX_IDS], stop[LM_MAX_STOP];
    int32_t embed_ids[MAX_IDS], embed_greedy[MAX_IDS];
    int n_prompt, n_greedy, n_greedy_pen, n_stop, n_embed_greedy;
    float penalty;
    float *logits, *embed_logits, *embeds; /* (V), (V), (n_prompt, C) */
    int V;
};

static bool ref_load(const char *name, int C, struct ref *r)
{
    char path[1024];
    unsigned char *buf = NULL;
    size_t len = 0;
    memset(r, 0, sizeof(*r));
    snprintf(path, sizeof(path), "%s/lm/%s/ref.json", data_dir(), name);
    if (sb_read_file(path, 64 << 20, &buf, &len, NULL))
        return false;
    r->root = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    const cJSON *o = r->root;
    r->n_prompt = ids_of(cJSON_GetObjectItem(o, "prompt"), r->prompt, MAX_IDS);
    r->n_greedy = ids_of(cJSON_GetObjectItem(o, "greedy"), r->greedy, MAX_IDS);
    r->n_greedy_pen = ids_of(cJSON_GetObjectItem(o, "greedy_penalty"), r->greedy_pen, MAX_IDS);
    r->n_stop = ids_of(cJSON_GetObjectItem(o, "stop"), r->stop, LM_MAX_STOP);
    ids_of(cJSON_GetObjectItem(o, "embed_ids"), r->embed_ids, MAX_IDS);
    r->n_embed_greedy = ids_of(cJSON_GetObjectItem(o, "embed_greedy"), r->embed_greedy, MAX_IDS);
    r->penalty = (float)cJSON_GetObjectItem(o, "penalty")->valuedouble;
    int n;
    r->logits = floats_of(cJSON_GetObjectItem(o, "logits"), &r->V);
    r->embed_logits = floats_of(cJSON_GetObjectItem(o, "embed_logits"), &n);
    /* "embeds" lists only the embedding rows; spread them to (n_prompt, C) */
    r->embeds = calloc((size_t)r->n_prompt * C, sizeof(float));
    const cJSON *rows = cJSON_GetObjectItem(o, "embeds");
    int k = 0;
    for (int t = 0; t < r->n_prompt; t++) {
        if (r->embed_ids[t] != LM_EMBED_ROW)
            continue;
        const cJSON *row = cJSON_GetArrayItem(rows, k++);
        int i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, row)
        {
            if (i < C)
                r->embeds[(size_t)t * C + i] = (float)e->valuedouble;
            i++;
        }
    }
    return true;
}

static void ref_release(struct ref *r)
{
    cJSON_Delete(r->root);
    free(r->logits);
    free(r->embed_logits);
    free(r->embeds);
}

/* max |a - b| / (max(b) - min(b)) over V logits */
static double rel_err(const float *a, const float *b, int V)
{
    float lo = b[0], hi = b[0];
    double mx = 0.0;
    for (int i = 0; i < V; i++) {
        lo = b[i] < lo ? b[i] : lo;
        hi = b[i] > hi ? b[i] : hi;
        double d = fabs((double)a[i] - (double)b[i]);
        mx = d > mx ? d : mx;
    }
    return mx / (double)(hi - lo);
}

static void check_ids(const char *what, const int32_t *want, int n_want, const int32_t *got,
                      int n_got)
{
    int same = 0;
    while (same < n_want && same < n_got && want[same] == got[same])
        same++;
    fprintf(stderr, "  %-14s %d/%d tokens identical\n", what, same, n_want);
    CHECK_EQ_INT(n_want, n_got);
    CHECK_EQ_INT(n_want, same);
}

static void test_model(const char *name, struct sb_pool *pool, int max_batch)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/lm/%s", data_dir(), name);
    struct sb_err err = { 0 };
    struct lm_model *m = NULL;
    struct lm_ctx *c = NULL;
    struct ref r;
    int rc = lm_model_load(dir, NULL, &m, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc) {
        fprintf(stderr, "load %s: %s\n", name, err.msg);
        return;
    }
    int C = lm_model_hidden_size(m), V = lm_model_vocab_size(m);
    bool have = ref_load(name, C, &r);
    CHECK(have);
    if (!have)
        goto out;
    CHECK_EQ_INT(r.V, V);
    rc = lm_ctx_new(m, pool, 64, max_batch, &c, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc)
        goto out;

    /* eos ids as config.json / generation_config.json give them */
    int32_t eos[LM_MAX_STOP];
    int n_eos = lm_model_eos_ids(m, eos, LM_MAX_STOP);
    CHECK_EQ_INT(r.n_stop, n_eos);
    for (int i = 0; i < n_eos && i < r.n_stop; i++)
        CHECK_EQ_INT(r.stop[i], eos[i]);

    /* logits after prefill */
    rc = lm_prefill(c, r.prompt, NULL, r.n_prompt, &err);
    CHECK_EQ_INT(SB_OK, rc);
    double e = rel_err(lm_ctx_logits(c), r.logits, V);
    fprintf(stderr, "%s (pool %s, batch %d): logits max abs err / range = %.3g\n", name,
            pool ? "yes" : "no", max_batch, e);
    CHECK(e <= 1e-3);
    CHECK_EQ_INT(r.n_prompt, lm_ctx_position(c));

    /* greedy decoding: plain, with repetition penalty, with embedding rows */
    int32_t out[MAX_IDS];
    int n_out = 0;
    struct lm_gen_params gp = lm_gen_default_params();
    gp.max_new_tokens = 20;
    rc = lm_generate(c, r.prompt, NULL, r.n_prompt, &gp, out, MAX_IDS, &n_out, &err);
    CHECK_EQ_INT(SB_OK, rc);
    check_ids("greedy", r.greedy, r.n_greedy, out, n_out);
    gp.repetition_penalty = r.penalty;
    rc = lm_generate(c, r.prompt, NULL, r.n_prompt, &gp, out, MAX_IDS, &n_out, &err);
    CHECK_EQ_INT(SB_OK, rc);
    check_ids("penalty", r.greedy_pen, r.n_greedy_pen, out, n_out);
    gp.repetition_penalty = 1.0f;
    rc = lm_generate(c, r.embed_ids, r.embeds, r.n_prompt, &gp, out, MAX_IDS, &n_out, &err);
    CHECK_EQ_INT(SB_OK, rc);
    check_ids("embed rows", r.embed_greedy, r.n_embed_greedy, out, n_out);
    lm_ctx_reset(c);
    rc = lm_prefill(c, r.embed_ids, r.embeds, r.n_prompt, &err);
    CHECK_EQ_INT(SB_OK, rc);
    e = rel_err(lm_ctx_logits(c), r.embed_logits, V);
    fprintf(stderr, "  embed rows logits err / range = %.3g\n", e);
    CHECK(e <= 1e-3);

    /* bad arguments leave the cache as it was */
    int pos = lm_ctx_position(c);
    int32_t bad[2] = { 1, V };
    CHECK_EQ_INT(SB_EINVAL, lm_prefill(c, bad, NULL, 2, &err));
    bad[1] = LM_EMBED_ROW;
    CHECK_EQ_INT(SB_EINVAL, lm_prefill(c, bad, NULL, 2, &err));
    int32_t many[MAX_IDS] = { 0 };
    CHECK_EQ_INT(SB_ETOOBIG, lm_prefill(c, many, NULL, 64 - pos + 1, &err));
    CHECK_EQ_INT(pos, lm_ctx_position(c));
    gp.max_new_tokens = 0;
    CHECK_EQ_INT(SB_EINVAL,
                 lm_generate(c, r.prompt, NULL, r.n_prompt, &gp, out, MAX_IDS, &n_out, &err));
out:
    if (have)
        ref_release(&r);
    lm_ctx_free(c);
    lm_model_free(m);
}

/* bf16 precision (lm_model_set_precision): the prompt's rows go through the packed bf16
 * products (T > LM_GEMV_MAX_T); logits after prefill within 1% of the reference's range, unlike
 * the fp32 model's bit for bit, and the greedy tokens of the reference (plain and with
 * embedding rows). Skipped when the build or CPU has no bf16. */
static void test_bf16(const char *name, struct sb_pool *pool, int max_batch)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/lm/%s", data_dir(), name);
    struct sb_err err = { 0 };
    struct lm_model *m32 = NULL, *m16 = NULL;
    struct lm_ctx *c32 = NULL, *c16 = NULL;
    struct ref r;
    bool have = false;
    CHECK_EQ_INT(SB_OK, lm_model_load(dir, NULL, &m32, &err));
    CHECK_EQ_INT(SB_OK, lm_model_load(dir, NULL, &m16, &err));
    if (!m32 || !m16)
        goto out;
    CHECK_EQ_INT(CLIP_PRECISION_FP32, (int)lm_model_precision(m16));
    CHECK_EQ_INT(SB_OK, lm_model_set_precision(m16, CLIP_PRECISION_BF16, &err));
    if (lm_model_precision(m16) != CLIP_PRECISION_BF16) {
        fprintf(stderr, "%s: bf16 is not available in this build/CPU: bf16 check skipped\n", name);
        goto out;
    }
    CHECK(m16->bf16_bytes > 0);
    int C = lm_model_hidden_size(m16), V = lm_model_vocab_size(m16);
    have = ref_load(name, C, &r);
    CHECK(have);
    if (!have)
        goto out;
    CHECK_EQ_INT(SB_OK, lm_ctx_new(m32, pool, 64, max_batch, &c32, &err));
    CHECK_EQ_INT(SB_OK, lm_ctx_new(m16, pool, 64, max_batch, &c16, &err));
    if (!c32 || !c16)
        goto out;
    CHECK(r.n_prompt > 4); /* more rows than the gemv path takes */
    CHECK_EQ_INT(SB_OK, lm_prefill(c32, r.prompt, NULL, r.n_prompt, &err));
    CHECK_EQ_INT(SB_OK, lm_prefill(c16, r.prompt, NULL, r.n_prompt, &err));
    double e = rel_err(lm_ctx_logits(c16), r.logits, V);
    int differ = 0;
    for (int i = 0; i < V; i++)
        differ += lm_ctx_logits(c16)[i] != lm_ctx_logits(c32)[i];
    fprintf(stderr,
            "%s bf16 (pool %s, batch %d): logits max abs err / range = %.3g, %d/%d differ "
            "from fp32\n",
            name, pool ? "yes" : "no", max_batch, e, differ, V);
    CHECK(e <= 1e-2);
    CHECK(differ > 0);
    int32_t out[MAX_IDS];
    int n_out = 0;
    struct lm_gen_params gp = lm_gen_default_params();
    gp.max_new_tokens = 20;
    CHECK_EQ_INT(SB_OK,
                 lm_generate(c16, r.prompt, NULL, r.n_prompt, &gp, out, MAX_IDS, &n_out, &err));
    check_ids("bf16 greedy", r.greedy, r.n_greedy, out, n_out);
    CHECK_EQ_INT(SB_OK, lm_generate(c16, r.embed_ids, r.embeds, r.n_prompt, &gp, out, MAX_IDS,
                                    &n_out, &err));
    /* embedding rows: the prefill logits as closely; the tokens of the random model drift
     * apart late (near-ties after many steps), so only the first half must agree */
    int same = 0;
    while (same < n_out && same < r.n_embed_greedy && out[same] == r.embed_greedy[same])
        same++;
    lm_ctx_reset(c16);
    CHECK_EQ_INT(SB_OK, lm_prefill(c16, r.embed_ids, r.embeds, r.n_prompt, &err));
    e = rel_err(lm_ctx_logits(c16), r.embed_logits, V);
    fprintf(stderr, "  bf16 embed rows: logits err / range = %.3g, %d/%d tokens identical\n", e,
            same, r.n_embed_greedy);
    CHECK(e <= 1e-2);
    CHECK(2 * same >= r.n_embed_greedy);
out:
    if (have)
        ref_release(&r);
    lm_ctx_free(c32);
    lm_ctx_free(c16);
    lm_model_free(m32);
    lm_model_free(m16);
}

/* Batched decoding against one at a time: NB contexts, prompt k the reference's prompt without
 * its last k ids (the embedding-row prompt for one), with its own cap, repetition penalty and
 * stop id (one that the lone run emits midway), decoded in steps of every context (the pass
 * split by max_batch rows); tokens and the last step's logits bit for bit the lone run's. */
#define NB 6
static void test_batch(const char *name, struct sb_pool *pool, int max_batch, bool bf16)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/lm/%s", data_dir(), name);
    struct sb_err err = { 0 };
    struct lm_model *m = NULL;
    struct lm_ctx *solo = NULL, *cs[NB] = { NULL };
    struct ref r;
    bool have = false;
    CHECK_EQ_INT(SB_OK, lm_model_load(dir, NULL, &m, &err));
    if (!m)
        return;
    if (bf16)
        CHECK_EQ_INT(SB_OK, lm_model_set_precision(m, CLIP_PRECISION_BF16, &err));
    int C = lm_model_hidden_size(m), V = lm_model_vocab_size(m);
    have = ref_load(name, C, &r);
    CHECK(have);
    CHECK_EQ_INT(SB_OK, lm_ctx_new(m, pool, 64, max_batch, &solo, &err));
    for (int k = 0; k < NB; k++)
        CHECK_EQ_INT(SB_OK, lm_ctx_new(m, pool, 64, max_batch, &cs[k], &err));
    if (!have || !solo || !cs[NB - 1])
        goto out;
    struct lm_gen_params gp[NB];
    const int32_t *ids[NB];
    const float *emb[NB];
    int n_prompt[NB];
    int32_t want[NB][MAX_IDS];
    float *want_logits = calloc((size_t)NB * V, sizeof(float));
    int n_want[NB];
    static const int caps[NB] = { 20, 3, 12, 1, 20, 16 };
    for (int k = 0; k < NB; k++) {
        gp[k] = lm_gen_default_params();
        gp[k].max_new_tokens = caps[k];
        gp[k].repetition_penalty = k % 2 ? r.penalty : 1.0f;
        n_prompt[k] = r.n_prompt - k > 1 ? r.n_prompt - k : 1;
        ids[k] = k == 4 ? r.embed_ids : r.prompt;
        emb[k] = k == 4 ? r.embeds : NULL;
        if (k == 4)
            n_prompt[k] = r.n_prompt;
        CHECK_EQ_INT(SB_OK, lm_generate(solo, ids[k], emb[k], n_prompt[k], &gp[k], want[k], MAX_IDS,
                                        &n_want[k], &err));
        if (k == 5 && n_want[k] > 8) { /* stop at the id the lone run emits 7th */
            gp[k].stop_ids[0] = want[k][6];
            gp[k].n_stop = 1;
            CHECK_EQ_INT(SB_OK, lm_generate(solo, ids[k], emb[k], n_prompt[k], &gp[k], want[k],
                                            MAX_IDS, &n_want[k], &err));
            CHECK(n_want[k] <= 7);
        }
        memcpy(want_logits + (size_t)k * V, lm_ctx_logits(solo), (size_t)V * sizeof(float));
    }
    for (int k = 0; k < NB; k++)
        CHECK_EQ_INT(SB_OK, lm_gen_start(cs[k], ids[k], emb[k], n_prompt[k], &gp[k], &err));
    int steps = 0;
    for (bool all = false; !all && steps < MAX_IDS; steps++) {
        CHECK_EQ_INT(SB_OK, lm_gen_step(cs, NB, &err));
        all = true;
        for (int k = 0; k < NB; k++)
            all = all && lm_gen_done(cs[k]);
    }
    int same_logits = 0;
    for (int k = 0; k < NB; k++) {
        int n = 0;
        const int32_t *got = lm_gen_ids(cs[k], &n);
        char what[32];
        snprintf(what, sizeof(what), "batch row %d", k);
        check_ids(what, want[k], n_want[k], got, n);
        same_logits += memcmp(lm_ctx_logits(cs[k]), want_logits + (size_t)k * V,
                              (size_t)V * sizeof(float)) == 0;
    }
    fprintf(stderr, "%s batched (pool %s, max_batch %d%s): %d steps, %d/%d last logits identical\n",
            name, pool ? "yes" : "no", max_batch, bf16 ? ", bf16" : "", steps, same_logits, NB);
    CHECK_EQ_INT(NB, same_logits);
    free(want_logits);
    /* bad batches run nothing */
    struct lm_ctx *twice[2] = { cs[0], cs[0] };
    CHECK_EQ_INT(SB_EINVAL, lm_gen_step(twice, 2, &err));
    twice[1] = NULL;
    CHECK_EQ_INT(SB_EINVAL, lm_gen_step(twice, 2, &err));
    CHECK_EQ_INT(SB_OK, lm_gen_step(cs, 0, &err));
    /* a prefill ends a generation */
    CHECK_EQ_INT(SB_OK, lm_gen_start(cs[0], r.prompt, NULL, r.n_prompt, &gp[0], &err));
    CHECK(!lm_gen_done(cs[0]));
    CHECK_EQ_INT(SB_OK, lm_prefill(cs[0], r.prompt, NULL, 1, &err));
    CHECK(lm_gen_done(cs[0]));
out:
    if (have)
        ref_release(&r);
    for (int k = 0; k < NB; k++)
        lm_ctx_free(cs[k]);
    lm_ctx_free(solo);
    lm_model_free(m);
}

/* The matrix-vector kernels of each ISA this CPU has, on f32 / f16 / bf16 weights with and
 * without column tails: T rows at once give each row bit for bit what it gets alone, and
 * that is the double-precision product within rounding. */
static void test_gemv_kernels(void)
{
    static const char *const isas[] = { "portable", "avx2+f16c", "avx512f" };
    static const enum st_dtype dts[] = { ST_F32, ST_F16, ST_BF16 };
    enum { N = 37, KMAX = 203, TMAX = 11 };
    static const int Ks[] = { 1, 7, 16, 40, 203 };
    void *W = malloc((size_t)N * KMAX * sizeof(float));
    float *x = malloc((size_t)TMAX * KMAX * sizeof(float));
    float *y1 = malloc((size_t)N * sizeof(float)), *yn = malloc((size_t)TMAX * N * sizeof(float));
    float *rows[TMAX];
    for (int t = 0; t < TMAX; t++)
        rows[t] = yn + (size_t)t * N;
    for (int i = 0; i < TMAX * KMAX; i++)
        x[i] = (float)((i * 7919) % 201 - 100) / 64.0f;
    int ran = 0, bad_same = 0, bad_ref = 0;
    for (int a = 0; a < 3; a++) {
        if (!lm_gemv_limit(isas[a]))
            continue;
        ran++;
        for (int d = 0; d < 3; d++)
            for (int ki = 0; ki < 5; ki++) {
                int K = Ks[ki];
                for (int i = 0; i < N * K; i++) {
                    uint16_t h = (uint16_t)(0x3800 + (i * 2654435761u >> 20) % 0x0800);
                    if (dts[d] == ST_F32)
                        ((float *)W)[i] = (float)((i * 31) % 97 - 48) / 32.0f;
                    else if (dts[d] == ST_F16)
                        ((uint16_t *)W)[i] = (uint16_t)(h | (i % 3 == 0 ? 0x8000 : 0));
                    else
                        ((uint16_t *)W)[i] = (uint16_t)(0x3f00 + (i * 40503u >> 4) % 0x100 +
                                                        (i % 3 == 0 ? 0x8000 : 0));
                }
                for (int T = 1; T <= TMAX; T += 3) {
                    lm_gemv_rows_n(rows, x, KMAX, T, W, dts[d], K, 3, N);
                    for (int t = 0; t < T; t++) {
                        lm_gemv_rows(y1, W, dts[d], x + (size_t)t * KMAX, K, 3, N);
                        for (int n = 3; n < N; n++) {
                            bad_same += memcmp(&y1[n], &rows[t][n], sizeof(float)) != 0;
                            float wv;
                            double ref = 0.0, mag = 0.0;
                            for (int k = 0; k < K; k++) {
                                size_t at = (size_t)n * K + k;
                                lm_widen_rows(&wv, (const char *)W + at * st_dtype_size(dts[d]),
                                              dts[d], 1, 0, 1);
                                ref += (double)wv * (double)x[(size_t)t * KMAX + k];
                                mag += fabs((double)wv * (double)x[(size_t)t * KMAX + k]);
                            }
                            bad_ref += fabs((double)y1[n] - ref) > 1e-5 * mag + 1e-30;
                        }
                    }
                }
            }
    }
    lm_gemv_limit(NULL);
    fprintf(stderr, "gemv kernels: %d ISAs, %d rows differ batched, %d off the reference\n", ran,
            bad_same, bad_ref);
    CHECK(ran >= 1);
    CHECK_EQ_INT(0, bad_same);
    CHECK_EQ_INT(0, bad_ref);
    CHECK(!lm_gemv_limit("avx9000"));
    free(W);
    free(x);
    free(y1);
    free(yn);
}

/* A model folder in SHOEBOX_TMP made from a fixture with config.json replaced. */
static void make_variant(const char *dst, const char *src_name, const char *config)
{
    char src[1024], path[1200];
    unsigned char *buf = NULL;
    size_t len = 0;
    snprintf(src, sizeof(src), "%s/lm/%s/model.safetensors", data_dir(), src_name);
    CHECK_EQ_INT(SB_OK, sb_mkdirs(dst, NULL));
    CHECK_EQ_INT(SB_OK, sb_read_file(src, 64 << 20, &buf, &len, NULL));
    snprintf(path, sizeof(path), "%s/model.safetensors", dst);
    CHECK_EQ_INT(SB_OK, sb_write_file_atomic(path, buf, len, NULL));
    free(buf);
    snprintf(path, sizeof(path), "%s/config.json", dst);
    CHECK_EQ_INT(SB_OK, sb_write_file_atomic(path, config, strlen(config), NULL));
}

static void test_failures(void)
{
    const char *tmp = getenv("SHOEBOX_TMP");
    char dir[1024];
    struct lm_model *m = NULL;
    struct sb_err err = { 0 };
    static const struct {
        const char *config;
        int code;
        const char *msg; /* a part of the message */
    } cases[] = {
        { "{", SB_EFORMAT, "not a JSON object" },
        { "{\"model_type\":\"gpt2\"}", SB_EMODEL, "model_type 'gpt2'" },
        { "{\"model_type\":\"llama\",\"hidden_act\":\"gelu\"}", SB_EMODEL, "hidden_act" },
        { "{\"model_type\":\"llama\",\"rope_scaling\":{\"type\":\"yarn\",\"factor\":2}}", SB_EMODEL,
          "yarn" },
        { "{\"model_type\":\"llama\",\"num_attention_heads\":4,\"num_key_value_heads\":3}",
          SB_EFORMAT, "multiple" },
        { "{\"model_type\":\"llama\",\"hidden_size\":-4}", SB_EFORMAT, "hidden_size" },
        /* right keys, wrong sizes: the shapes of the tensors disagree */
        { "{\"model_type\":\"llama\",\"vocab_size\":200,\"hidden_size\":32,\"intermediate_size\":"
          "48,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":4}",
          SB_EMODEL, "k_proj.weight' has" },
        { "{\"model_type\":\"llama\",\"vocab_size\":200,\"hidden_size\":32,\"intermediate_size\":"
          "48,\"num_hidden_layers\":3,\"num_attention_heads\":4,\"num_key_value_heads\":2}",
          SB_EMODEL, "missing" },
        { "{\"model_type\":\"qwen2\",\"vocab_size\":200,\"hidden_size\":32,\"intermediate_size\":"
          "48,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2}",
          SB_EMODEL, "q_proj.bias' is missing" },
    };
    if (!tmp)
        tmp = "/tmp";
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(dir, sizeof(dir), "%s/lm_bad.%d_%zu", tmp, (int)getpid(), i);
        make_variant(dir, "llama_dynamic", cases[i].config);
        int rc = lm_model_load(dir, NULL, &m, &err);
        CHECK_EQ_INT(cases[i].code, rc);
        if (!strstr(err.msg, cases[i].msg))
            fprintf(stderr, "case %zu: message '%s' lacks '%s'\n", i, err.msg, cases[i].msg);
        CHECK(strstr(err.msg, cases[i].msg) != NULL);
        if (!rc)
            lm_model_free(m);
    }
    CHECK_EQ_INT(SB_ENOENT, lm_model_load("/nonexistent/lm", NULL, &m, &err));
}

int main(void)
{
    static const char *models[] = { "llama_smol", "qwen2_bf16", "llama_ms_f16", "llama3_rope",
                                    "llama_dynamic" };
    struct sb_pool *pool = NULL;
    CHECK_EQ_INT(SB_OK, sb_pool_new(2, &pool, NULL));
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
        test_model(models[i], NULL, 0);
        test_model(models[i], pool, 5); /* prefill in chunks of 5 rows, on 3 threads */
        test_bf16(models[i], NULL, 0);
        test_bf16(models[i], pool, 0);
        test_bf16(models[i], pool, 5);
        test_batch(models[i], NULL, 0, false);
        test_batch(models[i], pool, 4, false); /* passes of at most 4 rows */
        test_batch(models[i], pool, 0, true);
    }
    sb_pool_free(pool);
    test_gemv_kernels();
    test_failures();
    return check_exit();
}
