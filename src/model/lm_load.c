/* lm_load.c - loading a decoder LM folder: config.json, generation_config.json (optional),
 * model.safetensors or model.safetensors.index.json and its shards. Tensor names and shapes
 * follow transformers' LlamaForCausalLM / Qwen2ForCausalLM state dicts under a configurable
 * prefix (lm.h). Matrices stay where they lie in the mapped files, in their dtype; norm
 * weights and biases are widened into f32 vectors the model owns. */
#include "lm_internal.h"

#include "shoebox/err.h"
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

#define MAX_JSON_FILE ((size_t)16 << 20)
#define MAX_SHARDS    1024

struct lm_load_params lm_load_default_params(void)
{
    return (struct lm_load_params){
        .prefix = "model.", .lm_head = "lm_head.weight", .config_key = NULL, .blas_threads = 0
    };
}

/* ------------------------------------------------------------------------------------------ */
/* Files */

/* ------------------------------------------------------------------------------------------ */
/* Tensors */

static void *own_alloc(struct lm_model *m, size_t bytes)
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

/* The tensor prefix+name, checked for a float dtype and shape (d0) or (d0, d1). */
static int get_tensor(const struct lm_model *m, const char *prefix, const char *name, int ndim,
                      int64_t d0, int64_t d1, const struct st_tensor **out, struct sb_err *err)
{
    char full[512];
    int len = snprintf(full, sizeof(full), "%s%s", prefix, name);
    if (len < 0 || (size_t)len >= sizeof(full))
        return sb_fail(err, SB_EINVAL, "tensor name '%s%s' is too long", prefix, name);
    const struct st_tensor *t = st_weights_find(&m->weights, full);
    if (!t)
        return sb_fail(err, SB_EMODEL, "tensor '%s' is missing", full);
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return sb_fail(err, SB_EMODEL, "tensor '%s': dtype %s is not supported (F32, F16, BF16)",
                       full, st_dtype_name(t->dtype));
    bool same = t->ndim == ndim && t->shape[0] == d0 && (ndim == 1 || t->shape[1] == d1);
    if (!same) {
        if (ndim == 1)
            return sb_fail(err, SB_EMODEL, "tensor '%s' has %d dims (first %lld), expected (%lld)",
                           full, t->ndim, t->ndim ? (long long)t->shape[0] : 0LL, (long long)d0);
        return sb_fail(err, SB_EMODEL,
                       "tensor '%s' has %d dims (%lld, %lld), expected (%lld, %lld)", full, t->ndim,
                       t->ndim ? (long long)t->shape[0] : 0LL,
                       t->ndim > 1 ? (long long)t->shape[1] : 0LL, (long long)d0, (long long)d1);
    }
    /* 16-bit and f32 data must be aligned for the kernels' element loads */
    if ((uintptr_t)t->data % st_dtype_size(t->dtype))
        return sb_fail(err, SB_EMODEL, "tensor '%s' is misaligned in its file", full);
    *out = t;
    return SB_OK;
}

static float widen1(const unsigned char *p, enum st_dtype dt, size_t i)
{
    float f;
    if (dt == ST_F32) {
        memcpy(&f, p + 4 * i, sizeof(f));
        return f;
    }
    lm_widen_rows(&f, p + 2 * i, dt, 1, 0, 1);
    return f;
}

/* A (d0) vector widened into f32 the model owns. */
static int get_vector(struct lm_model *m, const char *prefix, const char *name, int64_t d0,
                      const float **out, struct sb_err *err)
{
    const struct st_tensor *t;
    int rc = get_tensor(m, prefix, name, 1, d0, 0, &t, err);
    if (rc)
        return rc;
    float *v = own_alloc(m, (size_t)d0 * sizeof(float));
    if (!v)
        return sb_fail(err, SB_ENOMEM, "no memory for tensor '%s%s'", prefix, name);
    for (size_t i = 0; i < (size_t)d0; i++)
        v[i] = widen1(t->data, t->dtype, i);
    *out = v;
    return SB_OK;
}

/* A linear layer: name.weight (n_out, n_in) used in place, name.bias widened when wanted. */
static int get_linear(struct lm_model *m, const char *prefix, const char *name, int n_out, int n_in,
                      bool bias, struct lm_mat *l, struct sb_err *err)
{
    char wname[300], bname[300];
    int wl = snprintf(wname, sizeof(wname), "%.256s.weight", name);
    int bl = snprintf(bname, sizeof(bname), "%.256s.bias", name);
    if (wl < 0 || bl < 0 || strlen(name) > 256)
        return sb_fail(err, SB_EINVAL, "tensor name '%.60s' is too long", name);
    const struct st_tensor *t;
    int rc = get_tensor(m, prefix, wname, 2, n_out, n_in, &t, err);
    if (rc)
        return rc;
    l->w = t->data;
    l->dt = t->dtype;
    l->n_out = n_out;
    l->n_in = n_in;
    l->b = NULL;
    if (bias)
        rc = get_vector(m, prefix, bname, n_out, &l->b, err);
    return rc;
}

void *lm_own_alloc(struct lm_model *m, size_t bytes)
{
    return own_alloc(m, bytes);
}

int lm_load_vector(struct lm_model *m, const char *name, int64_t d0, const float **out,
                   struct sb_err *err)
{
    return get_vector(m, "", name, d0, out, err);
}

int lm_load_linear(struct lm_model *m, const char *name, int n_out, int n_in, bool bias,
                   struct lm_mat *l, struct sb_err *err)
{
    return get_linear(m, "", name, n_out, n_in, bias, l, err);
}

static int load_weights(struct lm_model *m, const struct lm_load_params *p, struct sb_err *err)
{
    const struct lm_config *c = &m->cfg;
    int C = c->hidden, F = c->intermediate, HD = c->heads * c->head_dim;
    int GD = c->kv_heads * c->head_dim;
    const char *pre = p->prefix;
    int rc = get_linear(m, pre, "embed_tokens", c->vocab, C, false, &m->embed, err);
    if (rc)
        return rc;
    m->layers = own_alloc(m, (size_t)c->layers * sizeof(*m->layers));
    if (!m->layers)
        return sb_fail(err, SB_ENOMEM, "no memory for %d layers", c->layers);
    for (int i = 0; i < c->layers && !rc; i++) {
        struct lm_layer *L = &m->layers[i];
        char n[128];
#define LIN(field, sub, no, ni, bias)                                                              \
    do {                                                                                           \
        snprintf(n, sizeof(n), "layers.%d.%s", i, sub);                                            \
        if (!rc)                                                                                   \
            rc = get_linear(m, pre, n, no, ni, bias, &L->field, err);                              \
    } while (0)
        snprintf(n, sizeof(n), "layers.%d.input_layernorm.weight", i);
        rc = get_vector(m, pre, n, C, &L->attn_norm, err);
        LIN(q, "self_attn.q_proj", HD, C, c->qkv_bias);
        LIN(k, "self_attn.k_proj", GD, C, c->qkv_bias);
        LIN(v, "self_attn.v_proj", GD, C, c->qkv_bias);
        LIN(o, "self_attn.o_proj", C, HD, c->o_bias);
        snprintf(n, sizeof(n), "layers.%d.post_attention_layernorm.weight", i);
        if (!rc)
            rc = get_vector(m, pre, n, C, &L->mlp_norm, err);
        LIN(gate, "mlp.gate_proj", F, C, c->mlp_bias);
        LIN(up, "mlp.up_proj", F, C, c->mlp_bias);
        LIN(down, "mlp.down_proj", C, F, c->mlp_bias);
#undef LIN
    }
    if (!rc)
        rc = get_vector(m, pre, "norm.weight", C, &m->norm, err);
    if (rc)
        return rc;
    if (c->tie_embeddings) {
        m->head = m->embed;
        return SB_OK;
    }
    /* lm_head sits outside the decoder prefix: its full name comes from the params */
    const char *head = p->lm_head;
    size_t hl = strlen(head);
    if (hl < 7 || strcmp(head + hl - 7, ".weight") != 0)
        return sb_fail(err, SB_EINVAL, "lm_head name '%s' must end in '.weight'", head);
    char hname[256];
    snprintf(hname, sizeof(hname), "%.*s", (int)(hl - 7), head);
    return get_linear(m, "", hname, c->vocab, C, false, &m->head, err);
}

/* Rotary inverse frequencies (modeling_rope_utils.py): theta^(-2i/D), then the static part
 * of rope_scaling (linear divides by factor; llama3 scales by wavelength band). "dynamic"
 * depends on the sequence length and is applied per forward pass (lm.c). */
static int make_inv_freq(struct lm_model *m, struct sb_err *err)
{
    const struct lm_config *c = &m->cfg;
    int half = c->head_dim / 2;
    m->inv_freq = own_alloc(m, (size_t)half * sizeof(float));
    if (!m->inv_freq)
        return sb_fail(err, SB_ENOMEM, "no memory for rotary frequencies");
    for (int i = 0; i < half; i++) {
        /* torch: 1 / base ** (arange(0, D, 2).float() / D), in float32 */
        float inv = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)c->head_dim);
        if (c->rope == LM_ROPE_LINEAR) {
            inv /= c->rope_factor;
        } else if (c->rope == LM_ROPE_LLAMA3) {
            float low_wl = (float)c->rope_orig_max / c->rope_low;
            float high_wl = (float)c->rope_orig_max / c->rope_high;
            float wl = 2.0f * (float)M_PI / inv;
            if (wl > low_wl) {
                inv /= c->rope_factor;
            } else if (wl >= high_wl) { /* medium band: smooth between the two */
                float s =
                    ((float)c->rope_orig_max / wl - c->rope_low) / (c->rope_high - c->rope_low);
                inv = (1.0f - s) * inv / c->rope_factor + s * inv;
            }
        }
        m->inv_freq[i] = inv;
    }
    return SB_OK;
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

int lm_model_load(const char *dir, const struct lm_load_params *params, struct lm_model **out,
                  struct sb_err *err)
{
    struct lm_load_params p = params ? *params : lm_load_default_params();
    if (!p.prefix)
        p.prefix = "model.";
    if (!p.lm_head)
        p.lm_head = "lm_head.weight";
    unsigned char *buf = NULL;
    size_t len = 0;
    struct lm_model *m = calloc(1, sizeof(*m));
    if (!m)
        return sb_fail(err, SB_ENOMEM, "no memory for a model");
    int rc = read_json(dir, "config.json", false, &buf, &len, err);
    if (!rc)
        rc = lm_config_parse((const char *)buf, len, p.config_key, &m->cfg, err);
    free(buf);
    buf = NULL;
    if (!rc)
        rc = read_json(dir, "generation_config.json", true, &buf, &len, err);
    if (!rc && buf)
        rc = lm_generation_config_parse((const char *)buf, len, &m->cfg, err);
    free(buf);
    if (!rc)
        rc = st_weights_open(&m->weights, dir, err);
    if (!rc)
        rc = load_weights(m, &p, err);
    if (!rc)
        rc = make_inv_freq(m, err);
    if (rc) {
        lm_model_free(m);
        return rc;
    }
    if (p.blas_threads > 0)
        openblas_set_num_threads(p.blas_threads);
    *out = m;
    return SB_OK;
}

void lm_model_free(struct lm_model *m)
{
    if (!m)
        return;
    clip_bf16_free(m->bf16);
    st_weights_close(&m->weights);
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m);
}

int lm_model_vocab_size(const struct lm_model *m)
{
    return m->cfg.vocab;
}

int lm_model_hidden_size(const struct lm_model *m)
{
    return m->cfg.hidden;
}

int lm_model_max_positions(const struct lm_model *m)
{
    return m->cfg.max_pos;
}

size_t lm_model_kv_bytes(const struct lm_model *m, int positions)
{
    if (positions <= 0)
        return 0;
    return 2 * (size_t)m->cfg.layers * (size_t)positions * (size_t)m->cfg.kv_heads *
           (size_t)m->cfg.head_dim * sizeof(float);
}

int lm_model_eos_ids(const struct lm_model *m, int32_t *ids, int cap)
{
    for (int i = 0; i < m->cfg.n_eos && i < cap; i++)
        ids[i] = m->cfg.eos[i];
    return m->cfg.n_eos;
}
