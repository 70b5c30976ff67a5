/* test_model_vlm.c - captioning models (vlm.h) against tools/ref_vlm.py's torch float64
 * reference on the random models of tools/gen_vlm.py (tests/data/vlm/<name>/): llava-1.5
 * (CLIP tower, F16), Idefics3 / SmolVLM (SigLIP tower, pixel shuffle, F32) and
 * llava-interleave-qwen (SigLIP tower, Qwen2, BF16). For the same preprocessed pixels: the
 * prompt ids, the logits after prefill (max abs error <= 1e-3 of the logit range) and the greedy
 * tokens for 20 steps, with and without repetition penalty; the image processor from the photo
 * file against PIL's; threads give the same tokens; the vision tower and projector in bf16
 * against fp32 and the reference; Idefics3 image splitting (ref_split.json); caption cleanup;
 * failure paths; batched captions (vlm_caption_step) identical to one at a time. */
#include "check.h"
#include "model_fixture.h"

#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"
#include "shoebox/vlm.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_IDS 512

struct ref {
    cJSON *root;
    int32_t ids[MAX_IDS], greedy[64], greedy_pen[64];
    int n_ids, n_greedy, n_greedy_pen, image_id;
    float penalty;
    float *pixels, *logits;
    int n_pixels, V;
    const char *text;
};

static bool ref_load(const char *name, struct ref *r)
{
    char path[1024];
    unsigned char *buf = NULL;
    size_t len = 0;
    memset(r, 0, sizeof(*r));
    snprintf(path, sizeof(path), "%s/vlm/%s/ref.json", data_dir(), name);
    if (sb_read_file(path, 64 << 20, &buf, &len, NULL))
        return false;
    r->root = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    const cJSON *o = r->root;
    r->n_ids = ids_of(cJSON_GetObjectItem(o, "ids"), r->ids, MAX_IDS);
    r->n_greedy = ids_of(cJSON_GetObjectItem(o, "greedy"), r->greedy, 64);
    r->n_greedy_pen = ids_of(cJSON_GetObjectItem(o, "greedy_penalty"), r->greedy_pen, 64);
    r->image_id = cJSON_GetObjectItem(o, "image_id")->valueint;
    r->penalty = (float)cJSON_GetObjectItem(o, "penalty")->valuedouble;
    r->pixels = floats_of(cJSON_GetObjectItem(o, "pixels"), &r->n_pixels);
    r->logits = floats_of(cJSON_GetObjectItem(o, "logits"), &r->V);
    r->text = cJSON_GetObjectItem(o, "text")->valuestring;
    return true;
}

static void ref_release(struct ref *r)
{
    cJSON_Delete(r->root);
    free(r->pixels);
    free(r->logits);
}

static void model_dir(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/vlm/%s", data_dir(), name);
}

/* Greedy captions from the reference pixels, with the pool given. */
static void check_model(const char *name, struct sb_pool *pool)
{
    char dir[1024];
    struct ref r;
    struct sb_err err = { 0 };
    struct vlm_model *m = NULL;
    struct vlm_ctx *c = NULL;
    model_dir(dir, sizeof(dir), name);
    CHECK(ref_load(name, &r));
    int rc = vlm_model_load(dir, NULL, &m, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        goto out;
    }
    int S = vlm_model_image_size(m);
    CHECK_EQ_INT(3 * S * S, r.n_pixels);
    CHECK_EQ_INT(SB_OK, vlm_ctx_new(m, pool, &c, &err));
    struct vlm_params p = vlm_default_params();
    p.max_new_tokens = 20;
    p.repetition_penalty = 1.0f;
    p.cleanup = false;
    int32_t ids[VLM_MAX_NEW_TOKENS];
    int n = 0;
    struct sb_buf text;
    sb_buf_init(&text);
    rc = vlm_caption_pixels(c, r.pixels, &p, ids, &n, &text, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc)
        fprintf(stderr, "%s: %s\n", name, err.msg);
    /* the prompt, image rows marked */
    int np = 0;
    const int32_t *prompt = vlm_ctx_prompt(c, &np);
    CHECK_EQ_INT(r.n_ids, np);
    int bad = 0;
    for (int i = 0; i < np && i < r.n_ids; i++)
        bad += prompt[i] != (r.ids[i] == r.image_id ? -1 : r.ids[i]);
    CHECK_EQ_INT(0, bad);
    /* logits after prefill */
    int V = 0;
    const float *z = vlm_ctx_prefill_logits(c, &V);
    CHECK_EQ_INT(r.V, V);
    float lo = r.logits[0], hi = r.logits[0], maxd = 0.0f;
    for (int i = 0; i < V && i < r.V; i++) {
        lo = r.logits[i] < lo ? r.logits[i] : lo;
        hi = r.logits[i] > hi ? r.logits[i] : hi;
        float d = z[i] > r.logits[i] ? z[i] - r.logits[i] : r.logits[i] - z[i];
        maxd = d > maxd ? d : maxd;
    }
    fprintf(stderr,
            "%s (%s pool): prompt %d tokens (%d image rows), logits max abs diff %.3g of "
            "range %.3g\n",
            name, pool ? "with" : "no", np, vlm_model_image_tokens(m), (double)maxd,
            (double)(hi - lo));
    CHECK(maxd <= 1e-3f * (hi - lo));
    CHECK_EQ_INT(r.n_greedy, n);
    bad = 0;
    for (int i = 0; i < n && i < r.n_greedy; i++)
        bad += ids[i] != r.greedy[i];
    CHECK_EQ_INT(0, bad);
    CHECK_EQ_STR(r.text, text.data ? text.data : "");
    /* repetition penalty */
    p.repetition_penalty = r.penalty;
    CHECK_EQ_INT(SB_OK, vlm_caption_pixels(c, r.pixels, &p, ids, &n, NULL, &err));
    CHECK_EQ_INT(r.n_greedy_pen, n);
    bad = 0;
    for (int i = 0; i < n && i < r.n_greedy_pen; i++)
        bad += ids[i] != r.greedy_pen[i];
    CHECK_EQ_INT(0, bad);
    /* the image processor from the photo file, against PIL's pixels */
    char photo[1024];
    snprintf(photo, sizeof(photo), "%s/vlm/photo.png", data_dir());
    struct image *img = NULL;
    CHECK_EQ_INT(SB_OK, image_decode_file(photo, NULL, &img, NULL, &err));
    float *pix = calloc((size_t)3 * S * S, sizeof(float));
    if (img && pix) {
        CHECK_EQ_INT(SB_OK, vlm_preprocess(m, img, pix, &err));
        float pd = 0.0f;
        for (int i = 0; i < 3 * S * S && i < r.n_pixels; i++) {
            float d = pix[i] > r.pixels[i] ? pix[i] - r.pixels[i] : r.pixels[i] - pix[i];
            pd = d > pd ? d : pd;
        }
        fprintf(stderr, "%s: preprocessing max abs diff %.3g (PIL)\n", name, (double)pd);
        /* one 8-bit step is 1/255/std; allow one step */
        CHECK(pd <= 0.0151f);
        p.repetition_penalty = 1.0f;
        sb_buf_release(&text);
        sb_buf_init(&text);
        CHECK_EQ_INT(SB_OK, vlm_caption(c, img, &p, ids, &n, &text, &err));
        CHECK(n >= 1);
    }
    free(pix);
    image_free(img);
    sb_buf_release(&text);
out:
    vlm_ctx_free(c);
    vlm_model_free(m);
    ref_release(&r);
}

/* A synthetic photo w x h, its pattern varied by seed. */
static struct image *synthetic(int w, int h, int seed)
{
    struct image *img = image_new(w, h);
    for (int y = 0; img && y < h; y++)
        for (int x = 0; x < w; x++) {
            unsigned char *px = img->px + ((size_t)y * w + (size_t)x) * 3;
            px[0] = (unsigned char)(x * 255 / w + seed * 37);
            px[1] = (unsigned char)(y * 255 / h + seed * 11);
            px[2] = (unsigned char)(((x / (8 + seed) + y / 8) % 2) * 200);
        }
    return img;
}

/* Batched captions: NPH photos (the fixture photos and synthetic ones of other sizes and
 * aspects), each with its own prompt, cap and penalty, encoded on one ctx, then started on NPH
 * ctxs sharing pool and decoded in steps; the ids and text of each are vlm_caption()'s alone.
 * One start fails (a prompt with '<image>'): that photo gets its error, the others go on. */
#define NPH 5
static void check_batch(const char *name, bool split, struct sb_pool *pool)
{
    char dir[1024], path[1024];
    struct sb_err err = { 0 };
    struct vlm_model *m = NULL;
    struct vlm_ctx *enc = NULL, *cs[NPH] = { NULL };
    struct image *img[NPH] = { NULL };
    struct vlm_image *im[NPH] = { NULL };
    struct sb_buf want[NPH], got[NPH];
    model_dir(dir, sizeof(dir), name);
    struct vlm_load_params lp = vlm_load_default_params();
    lp.split_image = split;
    CHECK_EQ_INT(SB_OK, vlm_model_load(dir, &lp, &m, &err));
    if (!m)
        return;
    CHECK_EQ_INT(SB_OK, vlm_ctx_new(m, NULL, &enc, &err));
    for (int k = 0; k < NPH; k++)
        CHECK_EQ_INT(SB_OK, vlm_ctx_new(m, pool, &cs[k], &err));
    snprintf(path, sizeof(path), "%s/vlm/photo.png", data_dir());
    CHECK_EQ_INT(SB_OK, image_decode_file(path, NULL, &img[0], NULL, &err));
    snprintf(path, sizeof(path), "%s/vlm/idefics3/split.png", data_dir());
    CHECK_EQ_INT(SB_OK, image_decode_file(path, NULL, &img[1], NULL, &err));
    img[2] = synthetic(97, 61, 2);
    img[3] = synthetic(40, 300, 3);
    img[4] = synthetic(333, 333, 4);
    static const char *const prompts[NPH] = { NULL, "What is it?", "<image>",
                                              "Describe every object in this photo in detail.",
                                              "Caption." };
    static const int caps[NPH] = { 20, 7, 20, 1, 13 };
    struct vlm_params p[NPH];
    int32_t ids[VLM_MAX_NEW_TOKENS], want_ids[NPH][VLM_MAX_NEW_TOKENS];
    int n = 0, n_want[NPH], bad_rc = SB_OK;
    for (int k = 0; k < NPH; k++) {
        sb_buf_init(&want[k]);
        sb_buf_init(&got[k]);
        p[k] = vlm_default_params();
        p[k].prompt = prompts[k];
        p[k].max_new_tokens = caps[k];
        p[k].repetition_penalty = k % 2 ? 1.0f : 1.3f;
        n_want[k] = 0;
        if (!enc || !cs[k] || !img[k])
            goto out;
        int rc = vlm_caption(enc, img[k], &p[k], want_ids[k], &n_want[k], &want[k], &err);
        if (k == 2)
            bad_rc = rc;
        CHECK_EQ_INT(k == 2, rc != SB_OK);
        CHECK_EQ_INT(SB_OK, vlm_encode(enc, img[k], &im[k], &err));
    }
    int started = 0;
    for (int k = 0; k < NPH; k++) {
        int rc = vlm_caption_start(cs[k], im[k], &p[k], &err);
        CHECK_EQ_INT(k == 2 ? bad_rc : SB_OK, rc);
        CHECK(rc || !vlm_caption_done(cs[k]) || caps[k] == 1);
        started += rc == SB_OK;
    }
    CHECK(vlm_caption_done(cs[2]));
    int steps = 0;
    for (bool all = false; !all && steps < VLM_MAX_NEW_TOKENS; steps++) {
        CHECK_EQ_INT(SB_OK, vlm_caption_step(cs, NPH, &err));
        all = true;
        for (int k = 0; k < NPH; k++)
            all = all && vlm_caption_done(cs[k]);
    }
    int same = 0;
    for (int k = 0; k < NPH; k++) {
        int rc = vlm_caption_finish(cs[k], ids, &n, &got[k], &err);
        if (k == 2) {
            CHECK_EQ_INT(SB_EINVAL, rc);
            continue;
        }
        CHECK_EQ_INT(SB_OK, rc);
        int ok = n == n_want[k] && memcmp(ids, want_ids[k], (size_t)n * sizeof(*ids)) == 0 &&
                 strcmp(want[k].data ? want[k].data : "", got[k].data ? got[k].data : "") == 0;
        CHECK(ok);
        same += ok;
    }
    fprintf(stderr, "%s%s batched (%s pool): %d captions in %d steps, %d/%d as alone\n", name,
            split ? " split" : "", pool ? "with" : "no", started, steps, same, started);
    CHECK_EQ_INT(SB_EINVAL, vlm_caption_finish(cs[0], ids, &n, NULL, &err)); /* taken */
    struct vlm_ctx *twice[2] = { cs[0], cs[0] };
    CHECK_EQ_INT(SB_OK, vlm_caption_start(cs[0], im[0], &p[0], &err));
    CHECK_EQ_INT(SB_EINVAL, vlm_caption_step(twice, 2, &err));
out:
    for (int k = 0; k < NPH; k++) {
        vlm_ctx_free(cs[k]);
        image_free(img[k]);
        vlm_image_free(im[k]);
        sb_buf_release(&want[k]);
        sb_buf_release(&got[k]);
    }
    vlm_ctx_free(enc);
    vlm_model_free(m);
}

/* Captions the reference pixels with a model loaded in precision; the caption context is left
 * in *c for the caller's checks. */
static bool caption_in(const char *name, enum clip_precision precision, const struct ref *r,
                       struct vlm_model **m, struct vlm_ctx **c, int32_t *ids, int *n)
{
    char dir[1024];
    struct sb_err err = { 0 };
    struct vlm_load_params lp = vlm_load_default_params();
    lp.precision = precision;
    model_dir(dir, sizeof(dir), name);
    *m = NULL;
    *c = NULL;
    if (vlm_model_load(dir, &lp, m, &err) || vlm_ctx_new(*m, NULL, c, &err)) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return false;
    }
    struct vlm_params p = vlm_default_params();
    p.max_new_tokens = 20;
    p.repetition_penalty = 1.0f;
    if (vlm_caption_pixels(*c, r->pixels, &p, ids, n, NULL, &err)) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return false;
    }
    return true;
}

/* The vision tower, projector and decoder prefill in bf16 (the oneDNN path): the image rows against
 * fp32's (cosine of every row >= 0.999), the logits after prefill against the reference (within 1%
 * of the logit range) and the greedy tokens. Skipped when the build or CPU has no bf16. */
static void check_bf16(const char *name)
{
    struct ref r;
    struct vlm_model *m32 = NULL, *m16 = NULL;
    struct vlm_ctx *c32 = NULL, *c16 = NULL;
    int32_t ids32[VLM_MAX_NEW_TOKENS], ids16[VLM_MAX_NEW_TOKENS];
    int n32 = 0, n16 = 0;
    CHECK(ref_load(name, &r));
    bool ok32 = caption_in(name, CLIP_PRECISION_FP32, &r, &m32, &c32, ids32, &n32);
    CHECK(ok32);
    CHECK_EQ_INT(CLIP_PRECISION_FP32, m32 ? (int)vlm_model_precision(m32) : -1);
    bool ok16 = caption_in(name, CLIP_PRECISION_BF16, &r, &m16, &c16, ids16, &n16);
    CHECK(ok16);
    if (!ok32 || !ok16)
        goto out;
    if (vlm_model_precision(m16) != CLIP_PRECISION_BF16) {
        fprintf(stderr, "%s: bf16 is not available in this build/CPU: bf16 check skipped\n", name);
        goto out;
    }
    int R32, D32, R16, D16;
    const float *a = vlm_ctx_image_rows(c32, &R32, &D32);
    const float *b = vlm_ctx_image_rows(c16, &R16, &D16);
    CHECK_EQ_INT(R32, R16);
    CHECK_EQ_INT(D32, D16);
    double worst = 1.0, maxd_rows = 0.0;
    for (int i = 0; i < R32 && R32 == R16 && D32 == D16; i++) {
        double dot = 0.0, na = 0.0, nb = 0.0;
        for (int k = 0; k < D32; k++) {
            double x = (double)a[(size_t)i * D32 + k], y = (double)b[(size_t)i * D32 + k];
            dot += x * y;
            na += x * x;
            nb += y * y;
            maxd_rows = fabs(x - y) <= maxd_rows ? maxd_rows : fabs(x - y); /* NaN sticks */
        }
        double cs = dot / (sqrt(na * nb) + 1e-30);
        worst = cs >= worst ? worst : cs;
    }
    int V = 0;
    const float *z = vlm_ctx_prefill_logits(c16, &V);
    float lo = r.logits[0], hi = r.logits[0], maxd = 0.0f;
    for (int i = 0; i < V && i < r.V; i++) {
        lo = r.logits[i] < lo ? r.logits[i] : lo;
        hi = r.logits[i] > hi ? r.logits[i] : hi;
        float d = fabsf(z[i] - r.logits[i]);
        maxd = d <= maxd ? maxd : d; /* NaN sticks */
    }
    int same = 0;
    while (same < n16 && same < r.n_greedy && ids16[same] == r.greedy[same])
        same++;
    fprintf(stderr,
            "%s bf16: image rows worst cosine %.6f (max abs diff %.3g) vs fp32; logits max abs "
            "diff %.3g of range %.3g; greedy tokens %d/%d as the reference\n",
            name, worst, maxd_rows, (double)maxd, (double)(hi - lo), same, r.n_greedy);
    CHECK(worst >= 0.999);
    CHECK(maxd <= 1e-2f * (hi - lo));
    CHECK_EQ_INT(r.n_greedy, n16);
    CHECK_EQ_INT(r.n_greedy, same);
out:
    vlm_ctx_free(c32);
    vlm_ctx_free(c16);
    vlm_model_free(m32);
    vlm_model_free(m16);
    ref_release(&r);
}

/* Idefics3 with image splitting against ref_split.json: the crops and global image of the
 * image processor (C's from photo.png against PIL's, stored as split.png), then from PIL's
 * pixels the prompt (row / column tags, image rows marked), the logits after prefill and 20
 * greedy tokens. */
static void check_split(const char *name)
{
    char dir[1024], path[1200];
    unsigned char *buf = NULL;
    size_t len = 0;
    struct sb_err err = { 0 };
    struct vlm_model *m = NULL;
    struct vlm_ctx *c = NULL;
    struct image *strip = NULL, *photo = NULL;
    float *want = NULL, *got = NULL;
    cJSON *root = NULL;
    model_dir(dir, sizeof(dir), name);
    snprintf(path, sizeof(path), "%s/ref_split.json", dir);
    CHECK_EQ_INT(SB_OK, sb_read_file(path, 16 << 20, &buf, &len, &err));
    root = buf ? cJSON_ParseWithLength((const char *)buf, len) : NULL;
    free(buf);
    CHECK(root != NULL);
    if (!root)
        return;
    int rows = cJSON_GetObjectItem(root, "rows")->valueint;
    int cols = cJSON_GetObjectItem(root, "cols")->valueint;
    int images = cJSON_GetObjectItem(root, "images")->valueint;
    int image_id = cJSON_GetObjectItem(root, "image_id")->valueint;
    int32_t ref_ids[MAX_IDS], greedy[64];
    int n_ref = ids_of(cJSON_GetObjectItem(root, "ids"), ref_ids, MAX_IDS);
    int n_greedy = ids_of(cJSON_GetObjectItem(root, "greedy"), greedy, 64);
    int V_ref = 0;
    float *logits = floats_of(cJSON_GetObjectItem(root, "logits"), &V_ref);
    CHECK(rows > 1 && cols > 1 && images == rows * cols + 1);
    struct vlm_load_params lp = vlm_load_default_params();
    lp.split_image = true;
    int rc = vlm_model_load(dir, &lp, &m, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        goto out;
    }
    CHECK(vlm_model_max_images(m) >= images);
    int S = vlm_model_image_size(m);
    size_t plane = 3 * (size_t)S * (size_t)S;
    snprintf(path, sizeof(path), "%s/split.png", dir);
    CHECK_EQ_INT(SB_OK, image_decode_file(path, NULL, &strip, NULL, &err));
    snprintf(path, sizeof(path), "%s/vlm/photo.png", data_dir());
    CHECK_EQ_INT(SB_OK, image_decode_file(path, NULL, &photo, NULL, &err));
    want = calloc(plane * (size_t)vlm_model_max_images(m), sizeof(float));
    got = calloc(plane * (size_t)vlm_model_max_images(m), sizeof(float));
    if (!strip || !photo || !want || !got)
        goto out;
    CHECK_EQ_INT(S, strip->w);
    CHECK_EQ_INT(S * images, strip->h);
    /* PIL's 8-bit frames normalised as the fixture's preprocessor says (mean = std = 0.5) */
    for (int i = 0; i < images && strip->h == S * images; i++)
        for (int ch = 0; ch < 3; ch++)
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    unsigned char v = strip->px[((size_t)(i * S + y) * S + (size_t)x) * 3 + ch];
                    want[plane * i + ((size_t)ch * S + y) * S + x] =
                        ((float)v / 255.0f - 0.5f) / 0.5f;
                }
    int r = -1, k = -1;
    CHECK_EQ_INT(SB_OK, vlm_preprocess_split(m, photo, got, &r, &k, &err));
    CHECK_EQ_INT(rows, r);
    CHECK_EQ_INT(cols, k);
    float pd = 0.0f;
    for (size_t i = 0; i < plane * (size_t)images; i++) {
        float d = fabsf(got[i] - want[i]);
        pd = d <= pd ? pd : d;
    }
    fprintf(stderr, "%s split %dx%d: preprocessing max abs diff %.3g (PIL)\n", name, r, k,
            (double)pd);
    CHECK(pd <= 0.0151f);
    /* captions from PIL's pixels */
    CHECK_EQ_INT(SB_OK, vlm_ctx_new(m, NULL, &c, &err));
    if (!c)
        goto out;
    struct vlm_params p = vlm_default_params();
    p.max_new_tokens = 20;
    p.repetition_penalty = 1.0f;
    p.cleanup = false;
    int32_t ids[VLM_MAX_NEW_TOKENS];
    int n = 0;
    struct sb_buf text;
    sb_buf_init(&text);
    rc = vlm_caption_split(c, want, rows, cols, &p, ids, &n, &text, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc)
        fprintf(stderr, "%s split: %s\n", name, err.msg);
    int np = 0, bad = 0;
    const int32_t *prompt = vlm_ctx_prompt(c, &np);
    CHECK_EQ_INT(n_ref, np);
    for (int i = 0; i < np && i < n_ref; i++)
        bad += prompt[i] != (ref_ids[i] == image_id ? -1 : ref_ids[i]);
    CHECK_EQ_INT(0, bad);
    int V = 0, R = 0, D = 0;
    const float *z = vlm_ctx_prefill_logits(c, &V);
    vlm_ctx_image_rows(c, &R, &D);
    CHECK_EQ_INT(images * vlm_model_image_tokens(m), R);
    CHECK_EQ_INT(V_ref, V);
    float lo = logits[0], hi = logits[0], maxd = 0.0f;
    for (int i = 0; i < V && i < V_ref; i++) {
        lo = logits[i] < lo ? logits[i] : lo;
        hi = logits[i] > hi ? logits[i] : hi;
        float d = fabsf(z[i] - logits[i]);
        maxd = d <= maxd ? maxd : d;
    }
    fprintf(stderr,
            "%s split: prompt %d tokens (%d image rows), logits max abs diff %.3g of "
            "range %.3g\n",
            name, np, R, (double)maxd, (double)(hi - lo));
    CHECK(maxd <= 1e-3f * (hi - lo));
    CHECK_EQ_INT(n_greedy, n);
    bad = 0;
    for (int i = 0; i < n && i < n_greedy; i++)
        bad += ids[i] != greedy[i];
    CHECK_EQ_INT(0, bad);
    CHECK_EQ_STR(cJSON_GetObjectItem(root, "text")->valuestring, text.data ? text.data : "");
    sb_buf_release(&text);
    /* the whole path from the photo */
    CHECK_EQ_INT(SB_OK, vlm_caption(c, photo, &p, ids, &n, NULL, &err));
    CHECK(n >= 1);
    vlm_ctx_image_rows(c, &R, &D);
    CHECK_EQ_INT(images * vlm_model_image_tokens(m), R);
    /* a grid beyond the model's */
    CHECK_EQ_INT(SB_EINVAL,
                 vlm_caption_split(c, want, vlm_model_max_images(m), 1, &p, ids, &n, NULL, &err));
out:
    vlm_ctx_free(c);
    vlm_model_free(m);
    image_free(strip);
    image_free(photo);
    free(want);
    free(got);
    free(logits);
    cJSON_Delete(root);
}

static void test_cleanup(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        { "  A dog on a beach. It is sunny.", "A dog on a beach." },
        { "\"A cat\nsleeping   on a sofa\"", "A cat sleeping on a sofa" },
        { "Two people walking!  More text", "Two people walking!" },
        { "A photo of St. Mary's church at dusk.", "A photo of St. Mary's church at dusk." },
        { "A U.S. flag. Next", "A U.S. flag." },
        { "", "" },
        { "   ", "" },
        { "no end punctuation", "no end punctuation" },
        { "\x15"
          "a\x13"
          "b \xef\xbf\xbd c",
          "a b c" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", cases[i].in);
        vlm_clean_caption(buf);
        CHECK_EQ_STR(cases[i].out, buf);
    }
}

/* Writes a copy of a fixture with config.json replaced by cfg into SHOEBOX_TMP. */
static bool fixture_copy(const char *name, const char *from, const char *to, const char *cfg,
                         char *dir, size_t cap)
{
    const char *tmp = getenv("SHOEBOX_TMP");
    snprintf(dir, cap, "%s/vlm.%d_%s", tmp ? tmp : "/tmp", (int)getpid(), name);
    mkdir(dir, 0755);
    static const char *const files[] = { "model.safetensors", "tokenizer.json",
                                         "tokenizer_config.json", "preprocessor_config.json",
                                         "config.json" };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char src[1024], dst[1200];
        unsigned char *buf = NULL;
        size_t len = 0;
        snprintf(src, sizeof(src), "%s/vlm/%s/%s", data_dir(), from, files[i]);
        snprintf(dst, sizeof(dst), "%s/%s", dir, files[i]);
        if (sb_read_file(src, 64 << 20, &buf, &len, NULL))
            return false;
        char *edited = NULL;
        if (strcmp(files[i], "config.json") == 0 && to) {
            /* replace the first occurrence of `from_str` by `to` */
            char *hit = strstr((char *)buf, cfg);
            if (hit) {
                size_t a = (size_t)(hit - (char *)buf), nl = strlen(to), ol = strlen(cfg);
                edited = malloc(len - ol + nl + 1);
                memcpy(edited, buf, a);
                memcpy(edited + a, to, nl);
                memcpy(edited + a + nl, hit + ol, len - a - ol);
                len = len - ol + nl;
            }
        }
        int rc = sb_write_file_atomic(dst, edited ? edited : (char *)buf, len, NULL);
        free(edited);
        free(buf);
        if (rc)
            return false;
    }
    return true;
}

static void test_failures(void)
{
    struct sb_err err = { 0 };
    struct vlm_model *m = NULL;
    char dir[1024];
    CHECK(vlm_model_load("/nonexistent/vlm", NULL, &m, &err) != SB_OK);
    CHECK(m == NULL);
    static const struct {
        const char *from, *to;
        int code;
        const char *msg;
    } cases[] = {
        { "\"model_type\": \"llava\"", "\"model_type\": \"blip-2\"", SB_EMODEL, "blip-2" },
        { "\"hidden_size\": 32", "\"hidden_size\": 40", SB_EMODEL, "patch_embedding" },
        { "\"projector_hidden_act\": \"gelu\"", "\"projector_hidden_act\": \"relu6\"", SB_EMODEL,
          "relu6" },
        { "\"vision_feature_select_strategy\": \"default\"",
          "\"vision_feature_select_strategy\": \"cls\"", SB_EMODEL, "cls" },
        { "\"vision_feature_layer\": -2", "\"vision_feature_layer\": [-2, -1]", SB_EMODEL, "list" },
        /* far outside int: a clear error, not an undefined conversion (UBSan) */
        { "\"vision_feature_layer\": -2", "\"vision_feature_layer\": -2222222222222222222221",
          SB_EFORMAT, "vision_feature_layer" },
        { "\"vision_feature_layer\": -2", "\"vision_feature_layer\": 1e300", SB_EFORMAT,
          "vision_feature_layer" },
        { "\"vision_feature_layer\": -2", "\"vision_feature_layer\": -2.5", SB_EFORMAT,
          "vision_feature_layer" },
        { "\"image_token_index\": 593", "\"image_token_index\": 5", SB_EMODEL, "<image>" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK(fixture_copy("bad", "llava15", cases[i].to, cases[i].from, dir, sizeof(dir)));
        m = NULL;
        int rc = vlm_model_load(dir, NULL, &m, &err);
        CHECK_EQ_INT(cases[i].code, rc);
        CHECK(strstr(err.msg, cases[i].msg) != NULL);
        if (!strstr(err.msg, cases[i].msg))
            fprintf(stderr, "case %zu: %s\n", i, err.msg);
        vlm_model_free(m);
    }
    /* bad parameters */
    model_dir(dir, sizeof(dir), "llava15");
    CHECK_EQ_INT(SB_OK, vlm_model_load(dir, NULL, &m, &err));
    struct vlm_ctx *c = NULL;
    if (m && vlm_ctx_new(m, NULL, &c, &err) == SB_OK) {
        int S = vlm_model_image_size(m);
        float *pix = calloc((size_t)3 * S * S, sizeof(float));
        int32_t ids[VLM_MAX_NEW_TOKENS];
        int n;
        struct vlm_params p = vlm_default_params();
        p.max_new_tokens = 0;
        CHECK_EQ_INT(SB_EINVAL, vlm_caption_pixels(c, pix, &p, ids, &n, NULL, &err));
        p = vlm_default_params();
        p.prompt = "two images <image> in one prompt";
        CHECK_EQ_INT(SB_EINVAL, vlm_caption_pixels(c, pix, &p, ids, &n, NULL, &err));
        struct image empty = { 0, 0, NULL };
        CHECK_EQ_INT(SB_EINVAL, vlm_caption(c, &empty, NULL, ids, &n, NULL, &err));
        /* a split grid for a model loaded without splitting */
        CHECK_EQ_INT(SB_EINVAL, vlm_caption_split(c, pix, 1, 1, NULL, ids, &n, NULL, &err));
        free(pix);
    }
    vlm_ctx_free(c);
    vlm_model_free(m);
    /* image splitting is Idefics3's */
    struct vlm_load_params lp = vlm_load_default_params();
    lp.split_image = true;
    m = NULL;
    CHECK_EQ_INT(SB_EINVAL, vlm_model_load(dir, &lp, &m, &err));
    CHECK(strstr(err.msg, "Idefics3") != NULL);
    CHECK(m == NULL);
}

/* vlm_batch_slots: how many captions fit a memory budget. The tiny LLaVA's decoder has 2 layers
 * of 4 key/value heads of 12 dims; a caption fills K and V over its prompt (the image's rows
 * plus the 320 positions vlm.c keeps for the template) and its tokens, in floats. */
static void test_batch_slots(void)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/vlm/llava15", data_dir());
    struct vlm_model *m = NULL;
    struct sb_err err = { 0 };
    CHECK_EQ_INT(SB_OK, vlm_model_load(dir, NULL, &m, &err));
    if (!m)
        return;
    int R = vlm_model_image_tokens(m);
    CHECK_EQ_INT(25, R);
    size_t per = 2 * 2 * (size_t)(R + 320 + 40) * 4 * 12 * sizeof(float);
    CHECK_EQ_INT(1, vlm_batch_slots(m, 40, 0, 8));
    CHECK_EQ_INT(1, vlm_batch_slots(m, 40, per - 1, 8));
    CHECK_EQ_INT(2, vlm_batch_slots(m, 40, 3 * per - 1, 8));
    CHECK_EQ_INT(3, vlm_batch_slots(m, 40, 3 * per, 8));
    CHECK_EQ_INT(8, vlm_batch_slots(m, 40, (size_t)1 << 40, 8));
    CHECK_EQ_INT(5, vlm_batch_slots(m, 40, (size_t)1 << 40, 5));
    CHECK(vlm_batch_slots(m, 512, 3 * per, 8) < 3); /* longer captions take more */
    vlm_model_free(m);
}

int main(void)
{
    static const char *const models[] = { "llava15", "idefics3", "llava_qwen" };
    struct sb_pool *pool = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, sb_pool_new(2, &pool, &err));
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
        check_model(models[i], NULL);
        check_model(models[i], pool);
        check_bf16(models[i]);
        check_batch(models[i], false, pool);
    }
    check_batch("idefics3", false, NULL);
    check_batch("idefics3", true, pool);
    check_split("idefics3");
    test_cleanup();
    test_failures();
    test_batch_slots();
    sb_pool_free(pool);
    return check_exit();
}
