/* clip_load.c - loading a Hugging Face CLIPModel folder: config.json, preprocessor_config.json,
 * model.safetensors (or model.safetensors.index.json and its shards), tokenizer files.
 * Tensor names and shapes follow transformers' modeling_clip.py (CLIPModel state dict). */
#include "internal.h"

#include "shoebox/bpe.h"
#include "shoebox/err.h"
#include "shoebox/spm.h"
#include "shoebox/tokenizer.h"
#include "shoebox/util.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_JSON_FILE ((size_t)16 << 20) /* config.json, preprocessor_config.json, index */
#define MAX_SHARDS    1024

struct clip_load_params clip_load_default_params(void)
{
    return (struct clip_load_params){ .towers = CLIP_TOWER_BOTH,
                                      .precision = CLIP_PRECISION_FP32,
                                      .blas_threads = 0,
                                      .fast_text = false };
}

/* ------------------------------------------------------------------------------------------ */
/* Files */

/* ------------------------------------------------------------------------------------------ */
/* Tensors */

static const struct st_tensor *find_tensor(const struct clip_model *m, const char *name)
{
    return st_weights_find(&m->weights, name);
}

static void *own_alloc(struct clip_model *m, size_t bytes)
{
    if (m->n_owned == m->cap_owned) {
        size_t cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **grown = realloc(m->owned, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        m->owned = grown;
        m->cap_owned = cap;
    }
    void *p = calloc(1, bytes ? bytes : 1);
    if (p)
        m->owned[m->n_owned++] = p;
    return p;
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) { /* inf / nan */
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: renormalise */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

/* Checks that tensor name exists with the given shape and a float dtype. */
static int check_tensor(const struct clip_model *m, const char *name, int ndim,
                        const int64_t *shape, const struct st_tensor **out, struct sb_err *err)
{
    return st_weights_check(&m->weights, name, ndim, shape, out, err);
}

/* Writes tensor t as f32 into dst (t->numel floats). */
static void convert_into(float *dst, const struct st_tensor *t)
{
    const unsigned char *src = t->data;
    if (t->dtype == ST_F32) {
        memcpy(dst, src, t->numel * sizeof(float));
    } else if (t->dtype == ST_F16) {
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = f16_to_f32(h);
        }
    } else { /* BF16: the top half of an f32 */
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, sizeof(float));
        }
    }
}

/* *out = tensor name as f32 with the given shape: in place when it is aligned F32, else a
 * converted copy the model owns. */
static int get_f32(struct clip_model *m, const char *name, int ndim, const int64_t *shape,
                   const float **out, struct sb_err *err)
{
    const struct st_tensor *t;
    int rc = check_tensor(m, name, ndim, shape, &t, err);
    if (rc)
        return rc;
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = (const float *)(const void *)t->data;
        return SB_OK;
    }
    float *dst = own_alloc(m, t->numel * sizeof(float));
    if (!dst)
        return sb_fail(err, SB_ENOMEM, "tensor '%s': no memory", name);
    convert_into(dst, t);
    *out = dst;
    return SB_OK;
}

#define SHAPE(...) ((const int64_t[]){ __VA_ARGS__ })

static int get1(struct clip_model *m, const char *name, int64_t n0, const float **out,
                struct sb_err *err)
{
    return get_f32(m, name, 1, SHAPE(n0), out, err);
}

static int get2(struct clip_model *m, const char *name, int64_t n0, int64_t n1, const float **out,
                struct sb_err *err)
{
    return get_f32(m, name, 2, SHAPE(n0, n1), out, err);
}

/* "<prefix>.<suffix>" into buf (our own names: far below cap; "" if ever cut). */
static const char *tname(char *buf, size_t cap, const char *prefix, const char *suffix)
{
    int n = snprintf(buf, cap, "%s.%s", prefix, suffix);
    if (n < 0 || (size_t)n >= cap)
        buf[0] = '\0';
    return buf;
}

static int get_linear(struct clip_model *m, const char *prefix, int n_out, int n_in, bool bias,
                      struct clip_linear *l, struct sb_err *err)
{
    char name[256];
    l->n_out = n_out;
    l->n_in = n_in;
    l->b = NULL;
    int rc = get2(m, tname(name, sizeof(name), prefix, "weight"), n_out, n_in, &l->w, err);
    if (!rc && bias)
        rc = get1(m, tname(name, sizeof(name), prefix, "bias"), n_out, &l->b, err);
    return rc;
}

/* q_proj, k_proj, v_proj of one layer fused into one (3C, C) matrix and (3C) bias. */
static int get_qkv(struct clip_model *m, const char *prefix, int C, struct clip_linear *l,
                   struct sb_err *err)
{
    static const char *const parts[3] = { "q_proj", "k_proj", "v_proj" };
    size_t cc = (size_t)C * (size_t)C;
    float *w = own_alloc(m, 3 * cc * sizeof(float));
    float *b = own_alloc(m, 3 * (size_t)C * sizeof(float));
    if (!w || !b)
        return sb_fail(err, SB_ENOMEM, "'%s': no memory for q/k/v", prefix);
    for (int i = 0; i < 3; i++) {
        char name[320];
        const struct st_tensor *t;
        snprintf(name, sizeof(name), "%s.%s.weight", prefix, parts[i]);
        int rc = check_tensor(m, name, 2, SHAPE(C, C), &t, err);
        if (rc)
            return rc;
        convert_into(w + (size_t)i * cc, t);
        snprintf(name, sizeof(name), "%s.%s.bias", prefix, parts[i]);
        rc = check_tensor(m, name, 1, SHAPE(C), &t, err);
        if (rc)
            return rc;
        convert_into(b + (size_t)i * (size_t)C, t);
    }
    *l = (struct clip_linear){ .w = w, .b = b, .n_out = 3 * C, .n_in = C };
    return SB_OK;
}

static int get_layers(struct clip_model *m, const char *tower, const struct clip_tower_config *tc,
                      struct clip_layer **out, struct sb_err *err)
{
    int C = tc->hidden, F = tc->intermediate;
    struct clip_layer *layers = own_alloc(m, (size_t)tc->layers * sizeof(*layers));
    if (!layers)
        return sb_fail(err, SB_ENOMEM, "no memory for %d layers", tc->layers);
    for (int i = 0; i < tc->layers; i++) {
        struct clip_layer *L = &layers[i];
        char p[192], q[256], name[320];
        snprintf(p, sizeof(p), "%s.encoder.layers.%d", tower, i);
        int rc = get1(m, tname(name, sizeof(name), p, "layer_norm1.weight"), C, &L->ln1_w, err);
        if (!rc)
            rc = get1(m, tname(name, sizeof(name), p, "layer_norm1.bias"), C, &L->ln1_b, err);
        if (!rc)
            rc = get_qkv(m, tname(q, sizeof(q), p, "self_attn"), C, &L->qkv, err);
        if (!rc)
            rc = get_linear(m, tname(q, sizeof(q), p, "self_attn.out_proj"), C, C, true, &L->out,
                            err);
        if (!rc)
            rc = get1(m, tname(name, sizeof(name), p, "layer_norm2.weight"), C, &L->ln2_w, err);
        if (!rc)
            rc = get1(m, tname(name, sizeof(name), p, "layer_norm2.bias"), C, &L->ln2_b, err);
        if (!rc)
            rc = get_linear(m, tname(q, sizeof(q), p, "mlp.fc1"), F, C, true, &L->fc1, err);
        if (!rc)
            rc = get_linear(m, tname(q, sizeof(q), p, "mlp.fc2"), C, F, true, &L->fc2, err);
        if (rc)
            return rc;
    }
    *out = layers;
    return SB_OK;
}

/* Older checkpoints store position_ids (int64, arange): we compute them, but a present one
 * must at least have the right size. */
static int check_position_ids(const struct clip_model *m, const char *name, int64_t n,
                              struct sb_err *err)
{
    const struct st_tensor *t = find_tensor(m, name);
    if (!t)
        return SB_OK;
    if ((t->dtype != ST_I64 && t->dtype != ST_I32) || t->numel != (size_t)n)
        return sb_fail(err, SB_EMODEL, "tensor '%s': expected %lld integer positions, found %zu %s",
                       name, (long long)n, t->numel, st_dtype_name(t->dtype));
    return SB_OK;
}

static int load_text(struct clip_model *m, struct sb_err *err)
{
    const struct clip_config *c = &m->cfg;
    struct clip_text_weights *w = &m->text;
    int C = c->text.hidden;
    int rc =
        get2(m, "text_model.embeddings.token_embedding.weight", c->vocab_size, C, &w->tok_emb, err);
    if (!rc)
        rc = get2(m, "text_model.embeddings.position_embedding.weight", c->max_pos, C, &w->pos_emb,
                  err);
    if (!rc)
        rc = check_position_ids(m, "text_model.embeddings.position_ids", c->max_pos, err);
    if (!rc)
        rc = get_layers(m, "text_model", &c->text, &w->layers, err);
    if (!rc)
        rc = get1(m, "text_model.final_layer_norm.weight", C, &w->final_ln_w, err);
    if (!rc)
        rc = get1(m, "text_model.final_layer_norm.bias", C, &w->final_ln_b, err);
    if (!rc)
        rc = get_linear(m, "text_projection", c->proj_dim, C, false, &w->proj, err);
    return rc;
}

static int load_vision(struct clip_model *m, struct sb_err *err)
{
    const struct clip_config *c = &m->cfg;
    struct clip_vision_weights *w = &m->vision;
    int C = c->vision.hidden, p = c->patch_size;
    int64_t G = c->image_size / p;
    const float *conv;
    /* Conv2d(3, C, kernel p, stride p, bias=False): (C, 3, p, p) is already the (C, 3*p*p)
     * matrix that multiplies unfolded patches ordered (channel, row, column). */
    int rc = get_f32(m, "vision_model.embeddings.patch_embedding.weight", 4,
                     SHAPE(C, c->num_channels, p, p), &conv, err);
    if (rc)
        return rc;
    w->patch = (struct clip_linear){ .w = conv, .b = NULL, .n_out = C, .n_in = 3 * p * p };
    rc = get1(m, "vision_model.embeddings.class_embedding", C, &w->class_emb, err);
    if (!rc)
        rc = get2(m, "vision_model.embeddings.position_embedding.weight", G * G + 1, C, &w->pos_emb,
                  err);
    if (!rc)
        rc = check_position_ids(m, "vision_model.embeddings.position_ids", G * G + 1, err);
    if (!rc)
        rc = get1(m, "vision_model.pre_layrnorm.weight", C, &w->pre_ln_w, err);
    if (!rc)
        rc = get1(m, "vision_model.pre_layrnorm.bias", C, &w->pre_ln_b, err);
    if (!rc)
        rc = get_layers(m, "vision_model", &c->vision, &w->layers, err);
    if (!rc)
        rc = get1(m, "vision_model.post_layernorm.weight", C, &w->post_ln_w, err);
    if (!rc)
        rc = get1(m, "vision_model.post_layernorm.bias", C, &w->post_ln_b, err);
    if (!rc)
        rc = get_linear(m, "visual_projection", c->proj_dim, C, false, &w->proj, err);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* SigLIP (transformers modeling_siglip.py, SiglipModel state dict) */

void clip_tensor_row_f32(const struct st_tensor *t, size_t row, size_t C, float *dst)
{
    const unsigned char *src = t->data + row * C * st_dtype_size(t->dtype);
    for (size_t i = 0; i < C; i++) {
        if (t->dtype == ST_F32) {
            memcpy(&dst[i], src + 4 * i, sizeof(float));
        } else {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            if (t->dtype == ST_F16) {
                dst[i] = f16_to_f32(h);
            } else {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&dst[i], &bits, sizeof(float));
            }
        }
    }
}

static int load_siglip_text(struct clip_model *m, struct sb_err *err)
{
    const struct clip_config *c = &m->cfg;
    struct clip_text_weights *w = &m->text;
    int C = c->text.hidden;
    const char *te = "text_model.embeddings.token_embedding.weight";
    const struct st_tensor *t;
    int rc = check_tensor(m, te, 2, SHAPE(c->vocab_size, C), &t, err);
    if (rc)
        return rc;
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0)
        w->tok_emb = (const float *)(const void *)t->data;
    else
        w->tok_emb_t = t; /* rows converted as they are used */
    rc =
        get2(m, "text_model.embeddings.position_embedding.weight", c->max_pos, C, &w->pos_emb, err);
    if (!rc)
        rc = check_position_ids(m, "text_model.embeddings.position_ids", c->max_pos, err);
    if (!rc)
        rc = get_layers(m, "text_model", &c->text, &w->layers, err);
    if (!rc)
        rc = get1(m, "text_model.final_layer_norm.weight", C, &w->final_ln_w, err);
    if (!rc)
        rc = get1(m, "text_model.final_layer_norm.bias", C, &w->final_ln_b, err);
    if (!rc)
        rc = get_linear(m, "text_model.head", c->text_proj, C, true, &w->proj, err);
    return rc;
}

static int load_siglip_head(struct clip_model *m, struct sb_err *err)
{
    const struct clip_config *c = &m->cfg;
    struct siglip_head *h = &m->vision.head;
    int C = c->vision.hidden, F = c->vision.intermediate;
    const float *in_w, *in_b;
    int rc = get_f32(m, "vision_model.head.probe", 3, SHAPE(1, 1, C), &h->probe, err);
    if (!rc)
        rc = get2(m, "vision_model.head.attention.in_proj_weight", 3 * (int64_t)C, C, &in_w, err);
    if (!rc)
        rc = get1(m, "vision_model.head.attention.in_proj_bias", 3 * (int64_t)C, &in_b, err);
    if (rc)
        return rc;
    /* nn.MultiheadAttention packs q, k, v as row blocks of in_proj: k and v stay together */
    size_t cc = (size_t)C * (size_t)C;
    h->q = (struct clip_linear){ .w = in_w, .b = in_b, .n_out = C, .n_in = C };
    h->kv = (struct clip_linear){ .w = in_w + cc, .b = in_b + C, .n_out = 2 * C, .n_in = C };
    rc = get_linear(m, "vision_model.head.attention.out_proj", C, C, true, &h->out, err);
    if (!rc)
        rc = get1(m, "vision_model.head.layernorm.weight", C, &h->ln_w, err);
    if (!rc)
        rc = get1(m, "vision_model.head.layernorm.bias", C, &h->ln_b, err);
    if (!rc)
        rc = get_linear(m, "vision_model.head.mlp.fc1", F, C, true, &h->fc1, err);
    if (!rc)
        rc = get_linear(m, "vision_model.head.mlp.fc2", C, F, true, &h->fc2, err);
    return rc;
}

static int load_siglip_vision(struct clip_model *m, struct sb_err *err)
{
    const struct clip_config *c = &m->cfg;
    struct clip_vision_weights *w = &m->vision;
    int C = c->vision.hidden, p = c->patch_size;
    int64_t G = c->image_size / p;
    const float *conv, *bias;
    /* Conv2d(3, C, kernel p, stride p, padding "valid") with a bias */
    int rc = get_f32(m, "vision_model.embeddings.patch_embedding.weight", 4,
                     SHAPE(C, c->num_channels, p, p), &conv, err);
    if (!rc)
        rc = get1(m, "vision_model.embeddings.patch_embedding.bias", C, &bias, err);
    if (rc)
        return rc;
    w->patch = (struct clip_linear){ .w = conv, .b = bias, .n_out = C, .n_in = 3 * p * p };
    rc = get2(m, "vision_model.embeddings.position_embedding.weight", G * G, C, &w->pos_emb, err);
    if (!rc)
        rc = check_position_ids(m, "vision_model.embeddings.position_ids", G * G, err);
    if (!rc)
        rc = get_layers(m, "vision_model", &c->vision, &w->layers, err);
    if (!rc)
        rc = get1(m, "vision_model.post_layernorm.weight", C, &w->post_ln_w, err);
    if (!rc)
        rc = get1(m, "vision_model.post_layernorm.bias", C, &w->post_ln_b, err);
    if (!rc && c->vision_use_head) {
        rc = load_siglip_head(m, err);
        w->has_head = rc == SB_OK;
    }
    return rc;
}

/* logit_scale / logit_bias: (1) tensors; absent ones keep the config's initial values. */
static int load_logits(struct clip_model *m, struct sb_err *err)
{
    const char *names[2] = { "logit_scale", "logit_bias" };
    float v[2] = { m->cfg.logit_scale_init, 0.0f };
    for (int i = 0; i < 2; i++) {
        const struct st_tensor *t = find_tensor(m, names[i]);
        if (!t)
            continue;
        const float *f;
        int rc = get_f32(m, names[i], t->ndim == 0 ? 0 : 1, SHAPE(1), &f, err);
        if (rc)
            return rc;
        v[i] = f[0];
    }
    m->logit_scale = expf(v[0]);
    m->logit_bias = v[1];
    return SB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Precision */

/* AUTO: bf16 where it is native and compiled in. An explicit BF16 without the backend runs fp32
 * (the header promises it; clip_model_precision() reports it). */
static enum clip_precision resolve_precision(enum clip_precision want)
{
    if (!clip_bf16_compiled())
        return CLIP_PRECISION_FP32;
    if (want == CLIP_PRECISION_AUTO)
        return clip_cpu_native_bf16() ? CLIP_PRECISION_BF16 : CLIP_PRECISION_FP32;
    return want == CLIP_PRECISION_BF16 ? CLIP_PRECISION_BF16 : CLIP_PRECISION_FP32;
}

/* The MLP as C x C parts (struct clip_layer), when F is a small multiple of C. */
static int pack_mlp_parts(struct clip_model *m, struct clip_layer *L, struct sb_err *err)
{
    int C = L->fc1.n_in, F = L->fc1.n_out, parts = F / C, rc = SB_OK;
    for (int p = 0; p < parts && !rc; p++) {
        size_t at = (size_t)p * (size_t)C;
        L->fc1_parts[p] = (struct clip_linear){ .w = L->fc1.w + at * (size_t)C,
                                                .b = L->fc1.b ? L->fc1.b + at : NULL,
                                                .n_out = C,
                                                .n_in = C };
        L->fc2_parts[p] = (struct clip_linear){
            .w = L->fc2.w + at, .b = p == 0 ? L->fc2.b : NULL, .n_out = C, .n_in = C
        };
        rc = clip_bf16_pack(m->bf16, &L->fc1_parts[p], err);
        if (!rc)
            rc = clip_bf16_pack_ld(m->bf16, &L->fc2_parts[p], (size_t)F, err);
    }
    if (!rc)
        L->mlp_parts = parts;
    return rc;
}

static int pack_layers(struct clip_model *m, struct clip_layer *layers, int n, struct sb_err *err)
{
    int rc = SB_OK;
    for (int i = 0; i < n && !rc; i++) {
        struct clip_layer *L = &layers[i];
        int C = L->fc1.n_in, F = L->fc1.n_out;
        bool split = F > C && F % C == 0 && F / C <= CLIP_MLP_PARTS;
        struct clip_linear *ls[3] = { &L->out, &L->fc1, &L->fc2 };
        for (int k = 0; k < (split ? 1 : 3) && !rc; k++)
            rc = clip_bf16_pack(m->bf16, ls[k], err);
        for (int p = 0; p < 3 && !rc; p++) { /* q, k, v */
            size_t at = (size_t)p * (size_t)C;
            L->qkv_parts[p] = (struct clip_linear){ .w = L->qkv.w + at * (size_t)C,
                                                    .b = L->qkv.b ? L->qkv.b + at : NULL,
                                                    .n_out = C,
                                                    .n_in = C };
            rc = clip_bf16_pack(m->bf16, &L->qkv_parts[p], err);
        }
        if (!rc)
            L->qkv_split = true;
        if (!rc && split)
            rc = pack_mlp_parts(m, L, err);
    }
    return rc;
}

/* Converts every product's weights to the bf16 backend's packed layout, once. */
static int pack_bf16(struct clip_model *m, struct sb_err *err)
{
    int rc = clip_bf16_new(&m->bf16, err);
    if (!rc && (m->towers & CLIP_TOWER_TEXT))
        rc = pack_layers(m, m->text.layers, m->cfg.text.layers, err);
    if (!rc && (m->towers & CLIP_TOWER_TEXT))
        rc = clip_bf16_pack(m->bf16, &m->text.proj, err);
    if (!rc && (m->towers & CLIP_TOWER_VISION))
        rc = clip_bf16_pack(m->bf16, &m->vision.patch, err);
    if (!rc && (m->towers & CLIP_TOWER_VISION))
        rc = pack_layers(m, m->vision.layers, m->cfg.vision.layers, err);
    if (!rc && (m->towers & CLIP_TOWER_VISION) && m->cfg.family == CLIP_FAMILY_CLIP)
        rc = clip_bf16_pack(m->bf16, &m->vision.proj, err);
    if (!rc && (m->towers & CLIP_TOWER_VISION) && m->vision.has_head) {
        struct siglip_head *h = &m->vision.head;
        struct clip_linear *ls[5] = { &h->q, &h->kv, &h->out, &h->fc1, &h->fc2 };
        for (int k = 0; k < 5 && !rc; k++)
            rc = clip_bf16_pack(m->bf16, ls[k], err);
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* A vision tower inside another model's files (vlm.c) */

/* The tower's tensors under prefix: CLIPVisionEmbeddings (conv without bias, class token, N+1
 * positions) + pre_layrnorm, or SiglipVisionEmbeddings (conv with bias, N positions); the
 * encoder layers; post_layernorm when post_ln. */
static int load_tower(struct clip_model *m, const char *prefix, bool post_ln, struct sb_err *err)
{
    const struct clip_config *c = &m->cfg;
    struct clip_vision_weights *w = &m->vision;
    bool siglip = c->family == CLIP_FAMILY_SIGLIP;
    int C = c->vision.hidden, p = c->patch_size;
    int64_t G = c->image_size / p, L = G * G + (siglip ? 0 : 1);
    char name[320];
    const float *conv;
    int rc = get_f32(m, tname(name, sizeof(name), prefix, "embeddings.patch_embedding.weight"), 4,
                     SHAPE(C, c->num_channels, p, p), &conv, err);
    if (rc)
        return rc;
    w->patch = (struct clip_linear){ .w = conv, .b = NULL, .n_out = C, .n_in = 3 * p * p };
    if (siglip)
        rc = get1(m, tname(name, sizeof(name), prefix, "embeddings.patch_embedding.bias"), C,
                  &w->patch.b, err);
    else
        rc = get1(m, tname(name, sizeof(name), prefix, "embeddings.class_embedding"), C,
                  &w->class_emb, err);
    if (!rc)
        rc = get2(m, tname(name, sizeof(name), prefix, "embeddings.position_embedding.weight"), L,
                  C, &w->pos_emb, err);
    if (!rc)
        rc = check_position_ids(m, tname(name, sizeof(name), prefix, "embeddings.position_ids"), L,
                                err);
    if (!rc && !siglip)
        rc =
            get1(m, tname(name, sizeof(name), prefix, "pre_layrnorm.weight"), C, &w->pre_ln_w, err);
    if (!rc && !siglip)
        rc = get1(m, tname(name, sizeof(name), prefix, "pre_layrnorm.bias"), C, &w->pre_ln_b, err);
    if (!rc)
        rc = get_layers(m, prefix, &c->vision, &w->layers, err);
    if (!rc && post_ln)
        rc = get1(m, tname(name, sizeof(name), prefix, "post_layernorm.weight"), C, &w->post_ln_w,
                  err);
    if (!rc && post_ln)
        rc = get1(m, tname(name, sizeof(name), prefix, "post_layernorm.bias"), C, &w->post_ln_b,
                  err);
    return rc;
}

/* Frees p if the model owns it (converted or fused weights): true then; mapped tensors stay. */
static bool own_drop(struct clip_model *m, const void *p)
{
    for (size_t i = 0; i < m->n_owned; i++)
        if (m->owned[i] == p) {
            free(m->owned[i]);
            m->owned[i] = m->owned[--m->n_owned];
            return true;
        }
    return false;
}

/* Packs l and drops its f32 weights: a bf16 product reads only the packed copy and the bias. */
static int pack_drop(struct clip_model *m, struct clip_linear *l, struct sb_err *err)
{
    int rc = clip_bf16_pack(m->bf16, l, err);
    if (rc)
        return rc;
    own_drop(m, l->w);
    l->w = NULL;
    return SB_OK;
}

/* After pack_layers(): the layer's f32 weights, which its bf16 products no longer read. */
static void drop_packed_f32(struct clip_model *m, struct clip_layer *L)
{
    for (int p = 0; p < 3; p++)
        L->qkv_parts[p].w = NULL;
    for (int p = 0; p < L->mlp_parts; p++)
        L->fc1_parts[p].w = L->fc2_parts[p].w = NULL;
    struct clip_linear *ls[4] = { &L->qkv, &L->out, &L->fc1, &L->fc2 };
    for (int k = 0; k < 4; k++) {
        own_drop(m, ls[k]->w);
        ls[k]->w = NULL;
    }
}

/* One linear of pack_f32_text: its panels, and its f32 weights dropped when the model owns them. */
static int pack_f32_linear(struct clip_model *m, struct clip_linear *l, int np, struct sb_err *err)
{
    float *p = own_alloc(m, clip_f32_packed_size(l->n_in, l->n_out, np) * sizeof(float));
    if (!p)
        return sb_fail(err, SB_ENOMEM, "no memory for the text tower's packed weights");
    clip_f32_pack(p, l->w, (size_t)l->n_in, l->n_in, l->n_out, np);
    l->f32p = p;
    l->f32_np = np;
    if (own_drop(m, l->w))
        l->w = NULL;
    return SB_OK;
}

/* fp32: the text tower's products on gemm_f32.c's column panels (a query has at most max_pos
 * rows), where the CPU has a kernel for them. A copy the model owns (the fused q/k/v, weights
 * converted from 16 bits) is dropped for its panels; weights mapped from the file stay mapped. */
static int pack_f32_text(struct clip_model *m, struct sb_err *err)
{
    int np = clip_f32_panel();
    if (!np || m->cfg.max_pos > CLIP_F32_MAX_ROWS)
        return SB_OK;
    int rc = pack_f32_linear(m, &m->text.proj, np, err);
    for (int i = 0; i < m->cfg.text.layers && !rc; i++) {
        struct clip_layer *L = &m->text.layers[i];
        struct clip_linear *ls[4] = { &L->qkv, &L->out, &L->fc1, &L->fc2 };
        for (int k = 0; k < 4 && !rc; k++)
            rc = pack_f32_linear(m, ls[k], np, err);
    }
    return rc;
}

int clip_vision_tower_load(const struct st_weights *w, const char *prefix,
                           const struct clip_config *cfg, bool post_ln,
                           enum clip_precision precision, struct clip_model **out,
                           struct sb_err *err)
{
    struct clip_model *m = calloc(1, sizeof(*m));
    if (!m)
        return sb_fail(err, SB_ENOMEM, "no memory for the vision tower");
    m->cfg = *cfg;
    m->towers = CLIP_TOWER_VISION;
    m->precision = resolve_precision(precision);
    m->weights = *w;
    m->weights_borrowed = true;
    m->logit_scale = 1.0f;
    int rc = load_tower(m, prefix, post_ln, err);
    if (!rc && m->precision == CLIP_PRECISION_BF16) { /* no head, no projection here */
        rc = clip_bf16_new(&m->bf16, err);
        if (!rc)
            rc = pack_drop(m, &m->vision.patch, err);
        /* as the image models' towers: q, k, v as three C x C products whose bf16 panels the
         * bf16 attention reads (the fused qkv product left attention in f32: ~40% of a
         * SmolVLM encode), the MLP in C-wide parts; then the f32 copies go */
        if (!rc)
            rc = pack_layers(m, m->vision.layers, m->cfg.vision.layers, err);
        for (int i = 0; i < m->cfg.vision.layers && !rc; i++)
            drop_packed_f32(m, &m->vision.layers[i]);
    }
    if (rc) {
        clip_model_free(m);
        return rc;
    }
    snprintf(m->id, sizeof(m->id), "%s", "vision tower");
    *out = m;
    return SB_OK;
}

int clip_model_pack_linear(struct clip_model *m, struct clip_linear *l, struct sb_err *err)
{
    if (m->precision != CLIP_PRECISION_BF16)
        return SB_OK;
    return clip_bf16_pack(m->bf16, l, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Model id */

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int read_json(const char *dir, const char *name, bool optional, unsigned char **buf,
                     size_t *len, struct sb_err *err)
{
    char path[4096];
    int rc = st_join_path(path, sizeof(path), dir, name, err);
    if (rc)
        return rc;
    if (optional && !st_file_exists(path)) {
        *buf = NULL;
        *len = 0;
        return SB_OK;
    }
    return sb_read_file(path, MAX_JSON_FILE, buf, len, err);
}

/* SigLIP's tokenizer: spiece.model (SiglipTokenizer), else tokenizer.json (SigLIP 2's
 * GemmaTokenizerFast). Neither is fine (clip_embed_tokens still works). */
static int load_siglip_tokenizer(struct clip_model *m, const char *dir, struct sb_err *err)
{
    char path[4096];
    int rc = st_join_path(path, sizeof(path), dir, "spiece.model", err);
    if (rc)
        return rc;
    if (st_file_exists(path)) {
        rc = spm_load_file(path, &m->spm, err);
        if (!rc)
            rc = spm_set_siglip(m->spm, dir, err);
        return rc;
    }
    rc = st_join_path(path, sizeof(path), dir, "tokenizer.json", err);
    if (rc || !st_file_exists(path))
        return rc;
    struct sb_err terr = { 0 };
    rc = bpe_load(dir, &m->bpe, &terr);
    if (rc)
        return sb_fail(err, rc, "tokenizer: %s", terr.msg);
    /* SigLIP 2 was trained on lower-cased text (big_vision; the model card; transformers'
     * Siglip2Tokenizer lower-cases), while the shipped tokenizer.json is Gemma's as is */
    bpe_set_lowercase(m->bpe);
    return SB_OK;
}

int clip_model_load(const char *dir, const struct clip_load_params *params, struct clip_model **out,
                    struct sb_err *err)
{
    struct clip_load_params p = params ? *params : clip_load_default_params();
    unsigned char *cfg_buf = NULL, *pre_buf = NULL;
    size_t cfg_len = 0, pre_len = 0;
    struct clip_model *m = calloc(1, sizeof(*m));
    int rc = SB_OK;
    if (!m) {
        rc = sb_fail(err, SB_ENOMEM, "no memory for the model");
        goto out;
    }
    if (!(p.towers & CLIP_TOWER_BOTH)) {
        rc = sb_fail(err, SB_EINVAL, "load '%s': no tower requested", dir);
        goto out;
    }
    m->towers = p.towers & CLIP_TOWER_BOTH;
    m->precision = resolve_precision(p.precision);
    if (p.blas_threads > 0)
        openblas_set_num_threads(p.blas_threads);
    rc = read_json(dir, "config.json", false, &cfg_buf, &cfg_len, err);
    if (!rc)
        rc = clip_config_parse((const char *)cfg_buf, cfg_len, &m->cfg, err);
    if (!rc)
        rc = read_json(dir, "preprocessor_config.json", true, &pre_buf, &pre_len, err);
    if (!rc)
        rc = clip_preproc_parse_family((const char *)pre_buf, pre_len, m->cfg.image_size,
                                       m->cfg.family, &m->pre, err);
    if (!rc)
        rc = st_weights_open(&m->weights, dir, err);
    bool siglip = m->cfg.family == CLIP_FAMILY_SIGLIP;
    if (!rc && (m->towers & CLIP_TOWER_TEXT))
        rc = siglip ? load_siglip_text(m, err) : load_text(m, err);
    if (!rc && (m->towers & CLIP_TOWER_VISION))
        rc = siglip ? load_siglip_vision(m, err) : load_vision(m, err);
    if (!rc)
        rc = load_logits(m, err);
    if (!rc && m->precision == CLIP_PRECISION_BF16)
        rc = pack_bf16(m, err);
    if (!rc && m->precision == CLIP_PRECISION_FP32 && (m->towers & CLIP_TOWER_TEXT) && p.fast_text)
        rc = pack_f32_text(m, err);
    if (rc)
        goto out;
    if ((m->towers & CLIP_TOWER_TEXT) && siglip) {
        rc = load_siglip_tokenizer(m, dir, err);
        if (rc)
            goto out;
    } else if (m->towers & CLIP_TOWER_TEXT) {
        struct sb_err terr = { 0 };
        int trc = clip_tokenizer_load(dir, &m->tok, &terr);
        if (trc && trc != SB_ENOENT) { /* no tokenizer at all is fine for clip_embed_tokens */
            rc = sb_fail(err, trc, "tokenizer: %s", terr.msg);
            goto out;
        }
    }
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a(h, cfg_buf, cfg_len);
    h = fnv1a(h, "\0", 1);
    if (pre_buf)
        h = fnv1a(h, pre_buf, pre_len);
    for (size_t i = 0; i < m->weights.n_files; i++) {
        h = fnv1a(h, "\0", 1);
        h = fnv1a(h, m->weights.files[i].header, m->weights.files[i].header_len);
    }
    snprintf(m->id, sizeof(m->id), "%s@%016llx", m->cfg.name, (unsigned long long)h);
    *out = m;
    m = NULL;
out:
    if (rc && err && dir) {
        /* name the folder once, at the outermost level */
        char msg[sizeof(err->msg)];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        sb_fail(err, rc, "model '%s': %s", dir, msg);
    }
    clip_model_free(m);
    free(cfg_buf);
    free(pre_buf);
    return rc;
}

void clip_model_free(struct clip_model *m)
{
    if (!m)
        return;
    clip_tokenizer_free(m->tok);
    spm_free(m->spm);
    bpe_free(m->bpe);
    clip_bf16_free(m->bf16);
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    if (!m->weights_borrowed)
        st_weights_close(&m->weights);
    free(m);
}

enum clip_family clip_model_family(const struct clip_model *m)
{
    return m->cfg.family;
}

const char *clip_family_name(enum clip_family f)
{
    return f == CLIP_FAMILY_SIGLIP ? "siglip" : "clip";
}

float clip_model_logit_scale(const struct clip_model *m)
{
    return m->logit_scale;
}

float clip_model_logit_bias(const struct clip_model *m)
{
    return m->logit_bias;
}

float clip_model_probability(const struct clip_model *m, float cosine)
{
    if (m->cfg.family != CLIP_FAMILY_SIGLIP)
        return NAN;
    return 1.0f / (1.0f + expf(-(cosine * m->logit_scale + m->logit_bias)));
}

float clip_model_cosine_for_probability(const struct clip_model *m, float p)
{
    if (m->cfg.family != CLIP_FAMILY_SIGLIP || !(p > 0.0f && p < 1.0f) || !(m->logit_scale > 0.0f))
        return NAN;
    float cos = (logf(p / (1.0f - p)) - m->logit_bias) / m->logit_scale;
    return cos < -1.0f ? -1.0f : cos > 1.0f ? 1.0f : cos;
}

float clip_model_text_min_score(const struct clip_model *m)
{
    float c = clip_model_cosine_for_probability(m, CLIP_SIGLIP_MIN_PROB);
    return isnan(c) ? CLIP_TEXT_MIN_SCORE : c;
}

const char *clip_model_id(const struct clip_model *m)
{
    return m->id;
}

int clip_model_dim(const struct clip_model *m)
{
    return m->cfg.proj_dim;
}

int clip_model_image_size(const struct clip_model *m)
{
    return m->cfg.image_size;
}

int clip_model_max_text(const struct clip_model *m)
{
    return m->cfg.max_pos;
}

int clip_model_towers(const struct clip_model *m)
{
    return m->towers;
}

enum clip_precision clip_model_precision(const struct clip_model *m)
{
    return m->precision;
}

void clip_model_min_decode(const struct clip_model *m, int *min_short)
{
    const struct clip_preproc_config *p = &m->pre;
    int s;
    if (!p->do_resize)
        s = p->crop_h > p->crop_w ? p->crop_h : p->crop_w;
    else if (p->size_is_shortest_edge)
        s = p->size_short;
    else
        s = p->size_h > p->size_w ? p->size_h : p->size_w;
    *min_short = s;
}
