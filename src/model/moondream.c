/* moondream.c - Moondream 2 loading (config, weights, tokenizer), the global crop and the
 * prompt; the vision forward is moondream_vision.c, the text model runs in lm.c as
 * LM_ARCH_PHI. What is supported and how it computes: moondream.h. */
#include "moondream.h"

#include "shoebox/bpe.h"
#include "shoebox/err.h"
#include "shoebox/hub.h"
#include "shoebox/image.h"
#include "shoebox/util.h"
#include "shoebox/vlm.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* config.py defaults (TextConfig, VisionConfig, TokenizerConfig of the 2025 revisions) */
#define MD_TEXT_DIM     2048
#define MD_TEXT_LAYERS  24
#define MD_TEXT_VOCAB   51200
#define MD_TEXT_CONTEXT 2048
#define MD_TEXT_HEADS   32
#define MD_PREFIX_ATTN  730
#define MD_ENC_DIM      1152
#define MD_ENC_PATCH    14
#define MD_ENC_LAYERS   27
#define MD_ENC_FF       4304
#define MD_ENC_HEADS    16
#define MD_PROJ_OUT     2048
#define MD_PROJ_INNER   8192
#define MD_CROP         378
#define MD_MAX_CROPS    12
#define MD_OVERLAP      4
/* Token ids by tokenizer era: revisions up to 2025-04-14 use the GPT-2 / CodeGen tokenizer
 * their folder ships ("<|endoftext|>" = 50256); from 2025-06-21 the code loads
 * moondream/starmie-v1 ("<|endoftext|>" = 0) and the folder's tokenizer.json is a stale GPT-2
 * one. The ids follow the folder's tokenizer.json; md_load refuses a starmie-era folder that
 * still holds another tokenizer. */
#define MD_GPT2_EOT     50256
#define MD_STARMIE_EOT  0
#define MD_ROPE_THETA   10000.0f
#define MD_LN_EPS       1e-5f
#define MD_MAX_QUESTION 4096

static const int32_t gpt2_caption[] = { 198, 198, 24334, 1159, 25 };
static const int32_t gpt2_q_prefix[] = { 198, 198, 24361, 25 };
static const int32_t gpt2_q_suffix[] = { 198, 198, 33706, 25 };
static const int32_t starmie_caption[] = { 1, 32708, 2, 6382, 3 };
static const int32_t starmie_q_prefix[] = { 1, 15381, 2 };
static const int32_t starmie_q_suffix[] = { 3 };

bool md_is_moondream(const cJSON *root)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (cJSON_IsString(mt) &&
        (strcmp(mt->valuestring, "moondream1") == 0 || strcmp(mt->valuestring, "moondream2") == 0))
        return true;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "architectures"), *e;
    cJSON_ArrayForEach(e, a)
    {
        if (cJSON_IsString(e) && strcmp(e->valuestring, "HfMoondream") == 0)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Config */

static int get_int(const cJSON *o, const char *sec, const char *key, int def, int lo, int hi,
                   int *out, struct sb_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return SB_OK;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < lo ||
        j->valuedouble > hi)
        return sb_fail(err, SB_EFORMAT, "config.json: config.%s.%s is not an integer in [%d, %d]",
                       sec, key, lo, hi);
    *out = (int)j->valuedouble;
    return SB_OK;
}

/* An id list (a template); absent: def. */
static int get_ids(const cJSON *o, const char *what, const int32_t *def, int n_def, int32_t *out,
                   int *n, struct sb_err *err)
{
    if (!o || cJSON_IsNull(o)) {
        memcpy(out, def, (size_t)n_def * sizeof(*out));
        *n = n_def;
        return SB_OK;
    }
    if (!cJSON_IsArray(o) || cJSON_GetArraySize(o) > MD_MAX_TEMPLATE)
        return sb_fail(err, SB_EFORMAT, "config.json: template %s is not a list of up to %d ids",
                       what, MD_MAX_TEMPLATE);
    int k = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, o)
    {
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
            e->valuedouble >= (1 << 30))
            return sb_fail(err, SB_EFORMAT, "config.json: template %s holds a bad id", what);
        out[k++] = (int32_t)e->valuedouble;
    }
    *n = k;
    return SB_OK;
}

struct md_sizes {
    int dim, layers, vocab, context, heads, kv_heads, ff, prefix;
};

/* starmie: the folder's tokenizer is moondream/starmie-v1 (the defaults follow it). */
static int parse_config(const cJSON *root, bool starmie, struct md_model *m, struct md_sizes *t,
                        struct sb_err *err)
{
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(root, "config");
    if (cfg && !cJSON_IsObject(cfg))
        return sb_fail(err, SB_EFORMAT, "config.json: 'config' is not an object");
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(cfg, "text");
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(cfg, "vision");
    const cJSON *kc = cJSON_GetObjectItemCaseSensitive(cfg, "tokenizer");
    if ((tc && !cJSON_IsObject(tc)) || (vc && !cJSON_IsObject(vc)) || (kc && !cJSON_IsObject(kc)))
        return sb_fail(err, SB_EFORMAT, "config.json: config.text/vision/tokenizer not objects");
    if (cJSON_GetObjectItemCaseSensitive(tc, "moe") ||
        cJSON_GetObjectItemCaseSensitive(tc, "n_experts"))
        return sb_fail(err, SB_EMODEL, "Moondream 3 (mixture of experts) is not supported");
    int ch = 3, rc = SB_OK;
#define TI(key, def, lo, hi, dst)                                                                  \
    if (!rc)                                                                                       \
    rc = get_int(tc, "text", key, def, lo, hi, dst, err)
#define VI(key, def, lo, hi, dst)                                                                  \
    if (!rc)                                                                                       \
    rc = get_int(vc, "vision", key, def, lo, hi, dst, err)
    TI("dim", MD_TEXT_DIM, 8, 1 << 16, &t->dim);
    TI("n_layers", MD_TEXT_LAYERS, 1, 1024, &t->layers);
    TI("vocab_size", MD_TEXT_VOCAB, 2, 1 << 22, &t->vocab);
    TI("max_context", MD_TEXT_CONTEXT, 16, 1 << 20, &t->context);
    TI("n_heads", MD_TEXT_HEADS, 1, 1024, &t->heads);
    TI("n_kv_heads", 0, 0, 1024, &t->kv_heads);
    TI("ff_dim", 0, 0, 1 << 20, &t->ff);
    TI("prefix_attn", MD_PREFIX_ATTN, 0, 1 << 20, &t->prefix);
    VI("enc_dim", MD_ENC_DIM, 4, 1 << 16, &m->C);
    VI("enc_patch_size", MD_ENC_PATCH, 1, 256, &m->p);
    VI("enc_n_layers", MD_ENC_LAYERS, 1, 1024, &m->n_layers);
    VI("enc_ff_dim", MD_ENC_FF, 1, 1 << 18, &m->F);
    VI("enc_n_heads", MD_ENC_HEADS, 1, 1024, &m->H);
    VI("proj_out_dim", MD_PROJ_OUT, 1, 1 << 16, &m->Ct);
    VI("proj_inner_dim", MD_PROJ_INNER, 1, 1 << 18, &m->inner);
    VI("crop_size", MD_CROP, 1, 4096, &m->S);
    VI("in_channels", 3, 1, 16, &ch);
    VI("max_crops", MD_MAX_CROPS, 1, 64, &m->max_crops);
    VI("overlap_margin", MD_OVERLAP, 0, 256, &m->margin);
#undef TI
#undef VI
    if (!rc)
        rc = get_int(kc, "tokenizer", "bos_id", starmie ? MD_STARMIE_EOT : MD_GPT2_EOT, 0,
                     t->vocab - 1, &m->bos, err);
    if (!rc)
        rc = get_int(kc, "tokenizer", "eos_id", starmie ? MD_STARMIE_EOT : MD_GPT2_EOT, 0,
                     t->vocab - 1, &m->eos, err);
    if (rc)
        return rc;
    if (m->bos >= t->vocab || m->eos >= t->vocab) /* the defaults are not range-checked above */
        return sb_fail(err, SB_EFORMAT, "config.json: bos_id %d / eos_id %d outside vocab %d",
                       (int)m->bos, (int)m->eos, t->vocab);
    if (t->kv_heads == 0)
        t->kv_heads = t->heads;
    if (t->kv_heads != t->heads) /* Moondream 2 releases are all multi-head */
        return sb_fail(err, SB_EMODEL, "config.json: n_kv_heads %d != n_heads %d is not supported",
                       t->kv_heads, t->heads);
    if (ch != 3)
        return sb_fail(err, SB_EMODEL, "config.json: in_channels %d (only RGB, 3)", ch);
    if (t->dim % t->heads || (t->dim / t->heads) % 4)
        return sb_fail(err, SB_EFORMAT,
                       "config.json: text dim %d is not heads %d x a multiple of 4", t->dim,
                       t->heads);
    if (m->C % m->H)
        return sb_fail(err, SB_EFORMAT, "config.json: enc_dim %d is not a multiple of %d heads",
                       m->C, m->H);
    if (m->Ct != t->dim)
        return sb_fail(err, SB_EFORMAT, "config.json: proj_out_dim %d != text dim %d", m->Ct,
                       t->dim);
    m->G = m->S / m->p;
    if (m->G * m->p != m->S || m->G <= 2 * m->margin)
        return sb_fail(err, SB_EFORMAT,
                       "config.json: crop_size %d is not a multiple of patch %d with room for "
                       "margins of %d",
                       m->S, m->p, m->margin);
    m->N = m->G * m->G;
    /* the image prefix is [BOS, N rows]; text.py's prefix_attn must cover exactly that */
    if (t->prefix != 0 && t->prefix != m->N + 1)
        return sb_fail(err, SB_EFORMAT, "config.json: prefix_attn %d is not 1 + %d image rows",
                       t->prefix, m->N);
    if (m->N + 1 + 64 > t->context)
        return sb_fail(err, SB_EFORMAT, "config.json: max_context %d leaves no room after %d rows",
                       t->context, m->N + 1);
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(kc, "templates");
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(tpl, "caption");
    const cJSON *qry = cJSON_GetObjectItemCaseSensitive(tpl, "query");
    if (tpl && cap && cJSON_IsNull(cap))
        return sb_fail(err, SB_EMODEL, "config.json: the model has no caption template");
    rc = get_ids(cJSON_GetObjectItemCaseSensitive(cap, "normal"), "caption.normal",
                 starmie ? starmie_caption : gpt2_caption, 5, m->caption, &m->n_caption, err);
    if (!rc)
        rc = get_ids(cJSON_GetObjectItemCaseSensitive(qry, "prefix"), "query.prefix",
                     starmie ? starmie_q_prefix : gpt2_q_prefix, starmie ? 3 : 4, m->q_prefix,
                     &m->n_q_prefix, err);
    if (!rc)
        rc = get_ids(cJSON_GetObjectItemCaseSensitive(qry, "suffix"), "query.suffix",
                     starmie ? starmie_q_suffix : gpt2_q_suffix, starmie ? 1 : 4, m->q_suffix,
                     &m->n_q_suffix, err);
    if (rc)
        return rc;
    const int32_t *lists[3] = { m->caption, m->q_prefix, m->q_suffix };
    int ns[3] = { m->n_caption, m->n_q_prefix, m->n_q_suffix };
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < ns[l]; i++)
            if (lists[l][i] >= t->vocab)
                return sb_fail(err, SB_EFORMAT, "config.json: template id %d >= vocab %d",
                               (int)lists[l][i], t->vocab);
    return SB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Weights */

/* The text model as an lm_model (LM_ARCH_PHI): fused qkv rows sliced into q, k, v. */
static int load_text(struct lm_model *lm, const struct md_sizes *t, struct sb_err *err)
{
    struct lm_config *c = &lm->cfg;
    c->arch = LM_ARCH_PHI;
    c->hidden = t->dim;
    c->intermediate = 4 * t->dim;
    c->layers = t->layers;
    c->heads = t->heads;
    c->kv_heads = t->kv_heads;
    c->head_dim = t->dim / t->heads;
    c->vocab = t->vocab;
    c->max_pos = t->context;
    c->rms_eps = MD_LN_EPS;
    c->rope_theta = MD_ROPE_THETA;
    c->rope = LM_ROPE_DEFAULT;
    c->rot_dim = c->head_dim / 2; /* rope.py: freqs over dim // (2 * n_heads), rot_dim 32 */
    c->prefix = t->prefix;
    c->bos = -1;
    c->n_eos = 0;
    int C = c->hidden, rc;
    if (t->ff) /* later config.py: ff_dim; before: 4 * dim */
        c->intermediate = t->ff;
    int F = c->intermediate, KV = c->kv_heads * c->head_dim;
    const struct st_tensor *wte;
    int64_t wshape[2] = { c->vocab, C };
    rc = st_weights_check(&lm->weights, "model.text.wte", 2, wshape, &wte, err);
    if (rc)
        return rc;
    lm->embed = (struct lm_mat){ .w = wte->data, .dt = wte->dtype, .n_out = c->vocab, .n_in = C };
    lm->layers = lm_own_alloc(lm, (size_t)c->layers * sizeof(*lm->layers));
    if (!lm->layers)
        return sb_fail(err, SB_ENOMEM, "no memory for %d layers", c->layers);
    for (int i = 0; i < c->layers; i++) {
        struct lm_layer *L = &lm->layers[i];
        char n[160];
        struct lm_mat qkv;
        snprintf(n, sizeof(n), "model.text.blocks.%d.ln.weight", i);
        rc = lm_load_vector(lm, n, C, &L->attn_norm, err);
        snprintf(n, sizeof(n), "model.text.blocks.%d.ln.bias", i);
        if (!rc)
            rc = lm_load_vector(lm, n, C, &L->attn_norm_b, err);
        snprintf(n, sizeof(n), "model.text.blocks.%d.attn.qkv", i);
        if (!rc)
            rc = lm_load_linear(lm, n, C + 2 * KV, C, true, &qkv, err);
        snprintf(n, sizeof(n), "model.text.blocks.%d.attn.proj", i);
        if (!rc)
            rc = lm_load_linear(lm, n, C, C, true, &L->o, err);
        snprintf(n, sizeof(n), "model.text.blocks.%d.mlp.fc1", i);
        if (!rc)
            rc = lm_load_linear(lm, n, F, C, true, &L->gate, err);
        snprintf(n, sizeof(n), "model.text.blocks.%d.mlp.fc2", i);
        if (!rc)
            rc = lm_load_linear(lm, n, C, F, true, &L->down, err);
        if (rc)
            return rc;
        /* rows: q (C), k (KV), v (KV), as text.py slices the qkv output */
        size_t es = st_dtype_size(qkv.dt), qb = (size_t)C * C * es, kb = (size_t)KV * C * es;
        const unsigned char *w = qkv.w;
        L->q = (struct lm_mat){ .w = w, .dt = qkv.dt, .b = qkv.b, .n_out = C, .n_in = C };
        L->k = (struct lm_mat){ .w = w + qb, .dt = qkv.dt, .b = qkv.b + C, .n_out = KV, .n_in = C };
        L->v = (struct lm_mat){
            .w = w + qb + kb, .dt = qkv.dt, .b = qkv.b + C + KV, .n_out = KV, .n_in = C
        };
    }
    rc = lm_load_vector(lm, "model.text.post_ln.weight", C, &lm->norm, err);
    if (!rc)
        rc = lm_load_vector(lm, "model.text.post_ln.bias", C, &lm->norm_b, err);
    if (!rc)
        rc = lm_load_linear(lm, "model.text.lm_head", c->vocab, C, true, &lm->head, err);
    if (rc)
        return rc;
    int half = c->rot_dim / 2;
    float *inv = lm_own_alloc(lm, (size_t)half * sizeof(float));
    if (!inv)
        return sb_fail(err, SB_ENOMEM, "no memory for rotary frequencies");
    for (int i = 0; i < half; i++) /* 1 / theta ** (arange(0, rot, 2) / rot), float32 */
        inv[i] = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->rot_dim);
    lm->inv_freq = inv;
    return SB_OK;
}

static int load_vision(struct lm_model *lm, struct md_model *m, struct sb_err *err)
{
    int C = m->C, F = m->F, pp = 3 * m->p * m->p;
    int rc = lm_load_linear(lm, "model.vision.patch_emb", C, pp, true, &m->patch, err);
    if (rc)
        return rc;
    const struct st_tensor *pos;
    int64_t pshape[3] = { 1, m->N, C };
    rc = st_weights_check(&lm->weights, "model.vision.pos_emb", 3, pshape, &pos, err);
    if (rc)
        return rc;
    float *p = lm_own_alloc(lm, (size_t)m->N * (size_t)C * sizeof(float));
    if (!p)
        return sb_fail(err, SB_ENOMEM, "no memory for pos_emb");
    if ((uintptr_t)pos->data % st_dtype_size(pos->dtype))
        return sb_fail(err, SB_EMODEL, "tensor 'model.vision.pos_emb' is misaligned in its file");
    lm_widen_rows(p, pos->data, pos->dtype, m->N * C, 0, 1);
    m->pos = p;
    m->layers = lm_own_alloc(lm, (size_t)m->n_layers * sizeof(*m->layers));
    if (!m->layers)
        return sb_fail(err, SB_ENOMEM, "no memory for %d vision layers", m->n_layers);
    for (int i = 0; i < m->n_layers && !rc; i++) {
        struct md_vit_layer *L = &m->layers[i];
        char n[160];
#define VEC(field, sub)                                                                            \
    snprintf(n, sizeof(n), "model.vision.blocks.%d.%s", i, sub);                                   \
    if (!rc)                                                                                       \
    rc = lm_load_vector(lm, n, C, &L->field, err)
#define LIN(field, sub, no, ni)                                                                    \
    snprintf(n, sizeof(n), "model.vision.blocks.%d.%s", i, sub);                                   \
    if (!rc)                                                                                       \
    rc = lm_load_linear(lm, n, no, ni, true, &L->field, err)
        VEC(ln1_w, "ln1.weight");
        VEC(ln1_b, "ln1.bias");
        LIN(qkv, "attn.qkv", 3 * C, C);
        LIN(proj, "attn.proj", C, C);
        VEC(ln2_w, "ln2.weight");
        VEC(ln2_b, "ln2.bias");
        LIN(fc1, "mlp.fc1", F, C);
        LIN(fc2, "mlp.fc2", C, F);
#undef VEC
#undef LIN
    }
    if (!rc)
        rc = lm_load_vector(lm, "model.vision.post_ln.weight", C, &m->post_w, err);
    if (!rc)
        rc = lm_load_vector(lm, "model.vision.post_ln.bias", C, &m->post_b, err);
    if (!rc)
        rc = lm_load_linear(lm, "model.vision.proj_mlp.fc1", m->inner, 2 * C, true, &m->proj1, err);
    if (!rc)
        rc = lm_load_linear(lm, "model.vision.proj_mlp.fc2", m->Ct, m->inner, true, &m->proj2, err);
    return rc;
}

/* Whether the folder says its weights are of the starmie era: a shoebox hub manifest naming
 * a moondream2 repo at "main" (the 2025-06-21 release) or a dated revision >= 2025-06-21, or
 * the remote code a snapshot download keeps (moondream.py, config.py) naming starmie. */
static bool folder_wants_starmie(const char *dir)
{
    static const char *const files[] = { "moondream.py", "config.py" };
    char path[4096];
    unsigned char *buf = NULL;
    size_t len = 0;
    bool yes = false;
    for (size_t i = 0; i < 2 && !yes; i++) {
        int n = snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        if (n < 0 || (size_t)n >= sizeof(path) || sb_read_file(path, 4 << 20, &buf, &len, NULL))
            continue;
        for (size_t k = 0; k + 7 <= len && !yes; k++)
            yes = memcmp(buf + k, "starmie", 7) == 0;
        free(buf);
        buf = NULL;
    }
    int n = snprintf(path, sizeof(path), "%s/%s", dir, HUB_MANIFEST);
    if (yes || n < 0 || (size_t)n >= sizeof(path) || sb_read_file(path, 4 << 20, &buf, &len, NULL))
        return yes;
    cJSON *man = cJSON_ParseWithLength((const char *)buf, len);
    free(buf);
    const cJSON *repo = cJSON_GetObjectItemCaseSensitive(man, "repo");
    const cJSON *rev = cJSON_GetObjectItemCaseSensitive(man, "revision");
    if (cJSON_IsString(repo) && cJSON_IsString(rev) && strstr(repo->valuestring, "moondream2")) {
        const char *r = rev->valuestring;
        bool dated = strlen(r) == 10 && r[4] == '-' && r[7] == '-';
        yes = strcmp(r, "main") == 0 || (dated && strcmp(r, "2025-06-21") >= 0);
    }
    cJSON_Delete(man);
    return yes;
}

int md_load(const char *dir, const cJSON *root, int blas_threads, struct lm_model **lm_out,
            struct bpe_tokenizer **tok_out, struct md_model **out, struct sb_err *err)
{
    struct md_model *m = calloc(1, sizeof(*m));
    struct lm_model *lm = calloc(1, sizeof(*lm));
    struct bpe_tokenizer *tok = NULL;
    struct md_sizes t = { 0 };
    int rc = SB_OK;
    if (!m || !lm) {
        rc = sb_fail(err, SB_ENOMEM, "no memory for the model");
        goto fail;
    }
    rc = bpe_load(dir, &tok, err);
    if (rc)
        goto fail;
    bool starmie = bpe_token_id(tok, "<|endoftext|>") == MD_STARMIE_EOT;
    if (!starmie && folder_wants_starmie(dir)) {
        rc = sb_fail(err, SB_EMODEL,
                     "this Moondream 2 revision (2025-06-21 or later) uses the "
                     "moondream/starmie-v1 tokenizer, and the folder's tokenizer.json is not it "
                     "(the release ships a stale GPT-2 one): copy tokenizer.json from "
                     "moondream/starmie-v1 into the folder, or fetch revision 2025-01-09");
        goto fail;
    }
    rc = parse_config(root, starmie, m, &t, err);
    if (!rc)
        rc = st_weights_open(&lm->weights, dir, err);
    if (rc)
        goto fail;
    if (st_weights_find(&lm->weights, "text_model.transformer.h.0.ln.weight") ||
        st_weights_find(&lm->weights, "vision_encoder.encoder.model.visual.pos_embed")) {
        rc = sb_fail(err, SB_EMODEL,
                     "a 2024 Moondream 2 revision (text_model.transformer.* layout); "
                     "use a 2025 revision (e.g. 2025-01-09)");
        goto fail;
    }
    rc = load_text(lm, &t, err);
    if (!rc)
        rc = load_vision(lm, m, err);
    if (rc)
        goto fail;
    lm->cfg.eos[0] = m->eos;
    lm->cfg.n_eos = 1;
    if (blas_threads > 0)
        openblas_set_num_threads(blas_threads);
    *lm_out = lm;
    *tok_out = tok;
    *out = m;
    return SB_OK;
fail:
    bpe_free(tok);
    lm_model_free(lm);
    free(m);
    return rc;
}

void md_free(struct md_model *m)
{
    free(m); /* its vectors belong to the lm_model */
}

/* ------------------------------------------------------------------------------------------ */
/* Prompt and global crop */

int md_build_prompt(const struct md_model *m, const struct bpe_tokenizer *tok, const char *prompt,
                    const float *rows, int32_t *ids, float *embeds, int cap, int *n,
                    struct sb_err *err)
{
    int k = 0, R = m->N, Ct = m->Ct;
    if (cap < 1 + R + m->n_caption + 1)
        return sb_fail(err, SB_ETOOBIG, "caption: no room for the image rows");
    ids[k++] = m->bos;
    for (int i = 0; i < R; i++) {
        ids[k] = LM_EMBED_ROW;
        memcpy(embeds + (size_t)k * Ct, rows + (size_t)i * Ct, (size_t)Ct * sizeof(float));
        k++;
    }
    if (!prompt || strcmp(prompt, VLM_DEFAULT_PROMPT) == 0) {
        memcpy(ids + k, m->caption, (size_t)m->n_caption * sizeof(*ids));
        *n = k + m->n_caption;
        return SB_OK;
    }
    /* query(): templates["query"]["prefix"] + tokenizer.encode(question) + ["suffix"] */
    if (k + m->n_q_prefix + m->n_q_suffix + 2 > cap)
        return sb_fail(err, SB_ETOOBIG, "caption: the prompt leaves no room to generate");
    memcpy(ids + k, m->q_prefix, (size_t)m->n_q_prefix * sizeof(*ids));
    k += m->n_q_prefix;
    size_t nq = 0, room = (size_t)(cap - k - m->n_q_suffix - 1);
    int rc = bpe_encode(tok, prompt, strlen(prompt), false, ids + k, room, &nq, err);
    if (rc)
        return rc == SB_ETOOBIG ? sb_fail(err, SB_ETOOBIG, "caption: the prompt is too long") : rc;
    k += (int)nq;
    memcpy(ids + k, m->q_suffix, (size_t)m->n_q_suffix * sizeof(*ids));
    *n = k + m->n_q_suffix;
    return SB_OK;
}

int md_global_crop(const struct md_model *m, const struct image *rgb, float *out,
                   struct sb_err *err)
{
    int S = m->S;
    struct image *a = NULL;
    const struct image *img = rgb;
    if (rgb->w != S || rgb->h != S) {
        a = image_resize(rgb, S, S, IMAGE_FILTER_LANCZOS);
        if (!a)
            return sb_fail(err, SB_ENOMEM, "preprocess: resize to %dx%d failed", S, S);
        img = a;
    }
    size_t SS = (size_t)S * (size_t)S;
    for (int ch = 0; ch < 3; ch++)
        for (size_t i = 0; i < SS; i++)
            out[(size_t)ch * SS + i] = ((float)img->px[i * 3 + (size_t)ch] / 255.0f - 0.5f) / 0.5f;
    image_free(a);
    return SB_OK;
}
