/* vlm.c - vision-language models for captions (vlm.h): loading a LlavaForConditionalGeneration
 * or Idefics3ForConditionalGeneration folder, the image processors, the prompt as the HF
 * processors build it, and greedy captioning.
 *
 * Sources of the behaviour (transformers):
 *   configuration_llava.py   vision_feature_layer -2, vision_feature_select_strategy "default",
 *                            projector_hidden_act "gelu", image_token_index 32000, a CLIP
 *                            ViT-L/14-336 vision_config when none is given
 *   processing_llava.py      <image> becomes num_image_tokens copies: (S/p)^2 patches, + 1 for
 *                            CLIP's CLS, - 1 for "default"
 *   configuration_idefics3.py / processing_idefics3.py   scale_factor 2, image_seq_len =
 *                            (S/p)^2 / s^2; a non-split image is
 *                            <fake_token_around_image><global-img><image>*R<fake_token_around_image>
 *   image_processing_idefics3.py   longest edge -> size["longest_edge"] (short edge rounded
 *                            up to even); without splitting then squared to max_image_size;
 *                            with splitting (resize_for_vision_encoder, split_image) sides up
 *                            to multiples of max_image_size, crops row-major + the global image
 *   processing_idefics3.py   a split image is <fake_token_around_image><row_i_col_j><image>*R
 *                            per crop, "\n" per row, then "\n" and the global image as above
 * Tensors are looked up in the decoder's mapped files (struct lm_model keeps the mappings).
 *
 * Dimension legend: vlm_internal.h. */
#include "vlm_internal.h"

#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/util.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_JSON     ((size_t)16 << 20)
#define MAX_PROMPT   1024 /* bytes of the user's instruction */
#define PROMPT_SLACK 320  /* decoder positions for the template + instruction tokens */
#define TILE_SLACK   16   /* decoder positions for one crop's tags */

struct vlm_load_params vlm_load_default_params(void)
{
    return (struct vlm_load_params){ .precision = CLIP_PRECISION_FP32,
                                     .split_image = false,
                                     .blas_threads = 0 };
}

struct vlm_params vlm_default_params(void)
{
    return (struct vlm_params){
        .prompt = NULL, .max_new_tokens = 40, .repetition_penalty = 1.1f, .cleanup = true
    };
}

/* ------------------------------------------------------------------------------------------ */
/* Config */

static int cfg_int(const cJSON *o, const char *key, int def, int lo, int hi, int *out,
                   struct sb_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return SB_OK;
    }
    /* the range first: converting a double outside int's range to int is undefined (found by
     * fuzz_vlm_config: -2.2e21) */
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= lo && j->valuedouble <= hi) ||
        j->valuedouble != (double)(int)j->valuedouble)
        return sb_fail(err, SB_EFORMAT, "config.json: '%s' is not an integer in [%d, %d]", key, lo,
                       hi);
    *out = (int)j->valuedouble;
    return SB_OK;
}

static int cfg_float(const cJSON *o, const char *key, float def, float *out, struct sb_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return SB_OK;
    }
    if (!cJSON_IsNumber(j) || !(j->valuedouble > 0.0) || j->valuedouble > 1.0)
        return sb_fail(err, SB_EFORMAT, "config.json: '%s' is not a number in (0, 1]", key);
    *out = (float)j->valuedouble;
    return SB_OK;
}

static const char *cfg_str(const cJSON *o, const char *key, const char *def)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(j) ? j->valuestring : def;
}

static int parse_act(const char *s, enum clip_act *out, const char *what, struct sb_err *err)
{
    if (strcmp(s, "quick_gelu") == 0)
        *out = CLIP_ACT_QUICK_GELU;
    else if (strcmp(s, "gelu") == 0)
        *out = CLIP_ACT_GELU;
    else if (strcmp(s, "gelu_pytorch_tanh") == 0 || strcmp(s, "gelu_new") == 0)
        *out = CLIP_ACT_GELU_TANH;
    else
        return sb_fail(err, SB_EMODEL,
                       "%s '%.40s' is not supported (quick_gelu, gelu, "
                       "gelu_pytorch_tanh)",
                       what, s);
    return SB_OK;
}

/* vision_config with the defaults of CLIPVisionConfig / SiglipVisionConfig /
 * Idefics3VisionConfig (LlavaConfig without a vision_config: CLIP ViT-L/14-336). */
static int vision_config(struct vlm_model *m, const cJSON *root, struct sb_err *err)
{
    struct vlm_vision *v = &m->vis;
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(root, "vision_config");
    const char *mt = cfg_str(vc, "model_type", vc ? "clip_vision_model" : "");
    int C = 768, F = 3072, layers = 12, H = 12, S = 224, p = 32;
    const char *act = "quick_gelu";
    float eps = 1e-5f;
    if (m->arch == VLM_ARCH_IDEFICS3) {
        v->tower = VLM_TOWER_SIGLIP;
        C = 1152, H = 16, act = "gelu_pytorch_tanh", eps = 1e-6f;
    } else if (!vc) {
        v->tower = VLM_TOWER_CLIP;
        C = 1024, F = 4096, layers = 24, H = 16, S = 336, p = 14;
    } else if (strcmp(mt, "clip_vision_model") == 0) {
        v->tower = VLM_TOWER_CLIP;
    } else if (strcmp(mt, "siglip_vision_model") == 0) {
        v->tower = VLM_TOWER_SIGLIP;
        p = 16, act = "gelu_pytorch_tanh", eps = 1e-6f;
    } else {
        return sb_fail(err, SB_EMODEL,
                       "vision_config model_type '%.40s' is not supported "
                       "(clip_vision_model, siglip_vision_model)",
                       mt);
    }
    int rc = cfg_int(vc, "hidden_size", C, 1, 16384, &v->C, err);
    if (!rc)
        rc = cfg_int(vc, "intermediate_size", F, 1, 65536, &v->F, err);
    if (!rc)
        rc = cfg_int(vc, "num_hidden_layers", layers, 1, 256, &v->n_layers, err);
    if (!rc)
        rc = cfg_int(vc, "num_attention_heads", H, 1, 1024, &v->H, err);
    if (!rc)
        rc = cfg_int(vc, "image_size", S, 1, 4096, &v->S, err);
    if (!rc)
        rc = cfg_int(vc, "patch_size", p, 1, 1024, &v->p, err);
    if (!rc)
        rc = cfg_float(vc, "layer_norm_eps", eps, &v->eps, err);
    if (!rc)
        rc = parse_act(cfg_str(vc, "hidden_act", act), &v->act, "vision hidden_act", err);
    if (rc)
        return rc;
    if (v->C % v->H)
        return sb_fail(err, SB_EMODEL, "vision hidden_size %d is not a multiple of %d heads", v->C,
                       v->H);
    v->G = v->S / v->p;
    if (v->G < 1)
        return sb_fail(err, SB_EMODEL, "vision image_size %d is smaller than patch_size %d", v->S,
                       v->p);
    v->N = v->G * v->G;
    v->L = v->N + (v->tower == VLM_TOWER_CLIP ? 1 : 0);
    return SB_OK;
}

/* LLaVA: which hidden state, which rows, which projector activation, how many image tokens. */
static int llava_config(struct vlm_model *m, const cJSON *root, struct sb_err *err)
{
    struct vlm_vision *v = &m->vis;
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(root, "vision_feature_layer");
    if (cJSON_IsArray(fl))
        return sb_fail(err, SB_EMODEL,
                       "vision_feature_layer as a list (concatenated layers) is "
                       "not supported");
    int k = 0;
    int rc = cfg_int(root, "vision_feature_layer", -2, -(v->n_layers + 1), v->n_layers, &k, err);
    if (rc)
        return rc;
    /* hidden_states has n_layers + 1 entries: the embeddings, then each layer's output */
    v->run_layers = k < 0 ? v->n_layers + 1 + k : k;
    const char *sel = cfg_str(root, "vision_feature_select_strategy", "default");
    if (strcmp(sel, "default") == 0)
        v->drop_cls = true;
    else if (strcmp(sel, "full") != 0)
        return sb_fail(err, SB_EMODEL,
                       "vision_feature_select_strategy '%.40s' is not supported "
                       "(default, full)",
                       sel);
    /* "default" drops the first row: CLIP's CLS, or a SigLIP patch (as HF does, blindly) */
    m->R = v->L - (v->drop_cls ? 1 : 0);
    if (m->R < 1)
        return sb_fail(err, SB_EMODEL, "the vision tower gives no image rows");
    return parse_act(cfg_str(root, "projector_hidden_act", "gelu"), &m->proj_act,
                     "projector_hidden_act", err);
}

static int idefics3_config(struct vlm_model *m, const cJSON *root, struct sb_err *err)
{
    struct vlm_vision *v = &m->vis;
    int rc = cfg_int(root, "scale_factor", 2, 1, 64, &m->scale, err);
    if (rc)
        return rc;
    if (v->G % m->scale)
        return sb_fail(err, SB_EMODEL, "scale_factor %d does not divide %d patches per side",
                       m->scale, v->G);
    v->run_layers = v->n_layers;
    m->R = v->N / (m->scale * m->scale);
    return SB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Preprocessor config */

static int json_triple(const cJSON *root, const char *key, float *out, struct sb_err *err)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!a)
        return SB_OK;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3)
        return sb_fail(err, SB_EFORMAT, "preprocessor_config.json: '%s' is not 3 numbers", key);
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(x))
            return sb_fail(err, SB_EFORMAT, "preprocessor_config.json: '%s' is not 3 numbers", key);
        out[i] = (float)x->valuedouble;
    }
    return SB_OK;
}

static int longest_edge(const cJSON *root, const char *key, int def, int *out, struct sb_err *err)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, key);
    return cfg_int(o, "longest_edge", def, 1, 16384, out, err);
}

/* Idefics3ImageProcessor's keys: size / max_image_size {"longest_edge"}, resample (LANCZOS),
 * rescale_factor, image_mean / image_std (0.5). SiglipImageProcessor's: size {"height",
 * "width"} (a square resize, no crop), resample (BICUBIC), the same normalisation keys. */
static int square_preproc(struct vlm_preproc_cfg *p, enum vlm_preproc kind, const char *json,
                          size_t len, int S, struct sb_err *err)
{
    p->kind = kind;
    p->longest_edge = kind == VLM_PRE_IDEFICS3 ? 4 * S : S;
    p->max_edge = S;
    p->resample = kind == VLM_PRE_IDEFICS3 ? 1 : 3;
    p->rescale = 1.0f / 255.0f;
    for (int i = 0; i < 3; i++)
        p->mean[i] = p->std[i] = 0.5f;
    if (!json)
        return SB_OK;
    cJSON *root = cJSON_ParseWithLength(json, len);
    int rc = SB_OK;
    if (!cJSON_IsObject(root)) {
        rc = sb_fail(err, SB_EFORMAT, "preprocessor_config.json is not a JSON object");
        goto out;
    }
    /* do_image_splitting is not followed: splitting is the caller's choice (split_image) */
    if (kind == VLM_PRE_IDEFICS3) {
        rc = longest_edge(root, "size", p->longest_edge, &p->longest_edge, err);
        if (!rc)
            rc = longest_edge(root, "max_image_size", p->max_edge, &p->max_edge, err);
    } else {
        const cJSON *size = cJSON_GetObjectItemCaseSensitive(root, "size");
        int sh, sw;
        rc = cfg_int(size, "height", S, 1, 16384, &sh, err);
        if (!rc)
            rc = cfg_int(size, "width", S, 1, 16384, &sw, err);
        if (!rc && (sh != S || sw != S))
            rc = sb_fail(err, SB_EMODEL, "preprocessor size %dx%d differs from image_size %d", sw,
                         sh, S);
    }
    if (!rc)
        rc = cfg_int(root, "resample", p->resample, 0, 5, &p->resample, err);
    if (!rc)
        rc = json_triple(root, "image_mean", p->mean, err);
    if (!rc)
        rc = json_triple(root, "image_std", p->std, err);
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(root, "rescale_factor");
    if (!rc && cJSON_IsNumber(rf))
        p->rescale = (float)rf->valuedouble;
    if (!rc && p->resample != 1 && p->resample != 2 && p->resample != 3)
        rc = sb_fail(err, SB_EMODEL, "resample %d is not supported (1, 2 or 3)", p->resample);
    if (!rc && p->max_edge != S)
        rc = sb_fail(err, SB_EMODEL, "max_image_size %d differs from the vision image_size %d",
                     p->max_edge, S);
    for (int i = 0; !rc && i < 3; i++)
        if (!(p->std[i] > 0.0f))
            rc = sb_fail(err, SB_EFORMAT, "preprocessor_config.json: image_std must be > 0");
out:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Tensors (in the decoder's mapped files) */

static void *own_alloc(struct vlm_model *m, size_t bytes)
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

/* prefix+name with a float dtype, the given shape (ndim <= 4) and aligned data. */
static int tensor(const struct vlm_model *m, const char *prefix, const char *name, int ndim,
                  const int64_t *shape, const struct st_tensor **out, struct sb_err *err)
{
    char full[512];
    int len = snprintf(full, sizeof(full), "%s%s", prefix, name);
    if (len < 0 || (size_t)len >= sizeof(full))
        return sb_fail(err, SB_EINVAL, "tensor name '%.100s%.100s' is too long", prefix, name);
    const struct st_tensor *t = NULL;
    int rc = st_weights_check(&m->lm->weights, full, ndim, shape, &t, err);
    if (rc)
        return rc;
    if ((uintptr_t)t->data % st_dtype_size(t->dtype))
        return sb_fail(err, SB_EMODEL, "tensor '%s' is misaligned in its file", full);
    *out = t;
    return SB_OK;
}

#define SHAPE(...) ((const int64_t[]){ __VA_ARGS__ })

/* A tensor of n floats (any shape given) widened into f32 the model owns. */
static int vec(struct vlm_model *m, const char *prefix, const char *name, int ndim,
               const int64_t *shape, const float **out, struct sb_err *err)
{
    const struct st_tensor *t;
    int rc = tensor(m, prefix, name, ndim, shape, &t, err);
    if (rc)
        return rc;
    float *v = own_alloc(m, t->numel * sizeof(float));
    if (!v)
        return sb_fail(err, SB_ENOMEM, "no memory for tensor '%s%s'", prefix, name);
    if (t->dtype == ST_F32)
        memcpy(v, t->data, t->numel * sizeof(float));
    else
        lm_widen_rows(v, t->data, t->dtype, (int)t->numel, 0, 1);
    *out = v;
    return SB_OK;
}

static int vec1(struct vlm_model *m, const char *prefix, const char *name, int64_t n,
                const float **out, struct sb_err *err)
{
    return vec(m, prefix, name, 1, SHAPE(n), out, err);
}

/* name.weight (n_out, n_in) and, when bias, name.bias as f32 (used where they lie when aligned
 * F32, else widened into memory the model owns), ready for clip_k_linear() on the tower's
 * engine (packed in bf16 mode). */
static int linear(struct vlm_model *m, const char *name, int n_out, int n_in, bool bias,
                  struct clip_linear *l, struct sb_err *err)
{
    char w[300], b[300];
    snprintf(w, sizeof(w), "%.250s.weight", name);
    snprintf(b, sizeof(b), "%.250s.bias", name);
    const struct st_tensor *t = NULL;
    int rc = tensor(m, "", w, 2, SHAPE(n_out, n_in), &t, err);
    if (rc)
        return rc;
    *l = (struct clip_linear){ .w = NULL, .b = NULL, .n_out = n_out, .n_in = n_in };
    if (t->dtype == ST_F32) {
        l->w = (const float *)(const void *)t->data;
    } else {
        float *f = own_alloc(m, t->numel * sizeof(float));
        if (!f)
            return sb_fail(err, SB_ENOMEM, "no memory for tensor '%s'", w);
        lm_widen_rows(f, t->data, t->dtype, n_in, 0, n_out);
        l->w = f;
    }
    if (bias)
        rc = vec1(m, "", b, n_out, &l->b, err);
    if (!rc)
        rc = clip_model_pack_linear(m->vis.enc, l, err);
    return rc;
}

/* The tower on clip.c's engine, from the tensors under prefix ("...vision_model"): the layers
 * the features come from (llava-1.5 skips the last one), post_layernorm for Idefics3. */
static int load_vision(struct vlm_model *m, const char *prefix, enum clip_precision precision,
                       struct sb_err *err)
{
    const struct vlm_vision *v = &m->vis;
    struct clip_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.family = v->tower == VLM_TOWER_SIGLIP ? CLIP_FAMILY_SIGLIP : CLIP_FAMILY_CLIP;
    cfg.vision = (struct clip_tower_config){ .hidden = v->C,
                                             .intermediate = v->F,
                                             .layers = v->run_layers,
                                             .heads = v->H,
                                             .act = v->act,
                                             .ln_eps = v->eps };
    cfg.image_size = v->S;
    cfg.patch_size = v->p;
    cfg.num_channels = 3;
    cfg.proj_dim = v->C;
    snprintf(cfg.name, sizeof(cfg.name), "vision_tower");
    return clip_vision_tower_load(&m->lm->weights, prefix, &cfg, v->post_ln, precision, &m->vis.enc,
                                  err);
}

/* ------------------------------------------------------------------------------------------ */
/* Loading */

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static int read_optional(const char *dir, const char *name, unsigned char **buf, size_t *len,
                         struct sb_err *err)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return sb_fail(err, SB_EINVAL, "path '%s/%s' is too long", dir, name);
    int rc = sb_read_file(path, MAX_JSON, buf, len, err);
    if (rc == SB_ENOENT) {
        *buf = NULL;
        *len = 0;
        return SB_OK;
    }
    return rc;
}

/* The decoder under the layout's prefix: LLaVA checkpoints saved before transformers 4.52 use
 * language_model.model.* + language_model.lm_head, later ones model.language_model.* + lm_head. */
static int load_decoder(struct vlm_model *m, const char *dir, int blas_threads, struct sb_err *err)
{
    struct lm_load_params lp = lm_load_default_params();
    lp.config_key = "text_config";
    lp.blas_threads = blas_threads;
    if (m->arch == VLM_ARCH_IDEFICS3) {
        lp.prefix = "model.text_model.";
        lp.lm_head = "lm_head.weight";
        return lm_model_load(dir, &lp, &m->lm, err);
    }
    lp.prefix = "language_model.model.";
    lp.lm_head = "language_model.lm_head.weight";
    struct sb_err first = { 0 };
    int rc = lm_model_load(dir, &lp, &m->lm, &first);
    if (rc != SB_EMODEL) {
        if (rc)
            sb_fail(err, rc, "%s", first.msg);
        return rc;
    }
    lp.prefix = "model.language_model.";
    lp.lm_head = "lm_head.weight";
    if (lm_model_load(dir, &lp, &m->lm, NULL) == SB_OK)
        return SB_OK;
    return sb_fail(err, rc, "%s", first.msg);
}

static void add_stop(struct vlm_model *m, int32_t id)
{
    if (id < 0)
        return;
    for (int i = 0; i < m->n_stop; i++)
        if (m->stop[i] == id)
            return;
    if (m->n_stop < LM_MAX_STOP)
        m->stop[m->n_stop++] = id;
}

static int load_tokens(struct vlm_model *m, const char *dir, const cJSON *root, struct sb_err *err)
{
    int rc = bpe_load(dir, &m->tok, err);
    if (rc)
        return rc;
    enum bpe_chat_kind kind;
    rc = bpe_chat_kind(m->tok, &kind, err);
    if (rc)
        return rc;
    m->image_id = bpe_token_id(m->tok, "<image>");
    if (m->image_id < 0)
        return sb_fail(err, SB_EMODEL, "the tokenizer has no '<image>' token");
    int cfg_id;
    const char *key = m->arch == VLM_ARCH_IDEFICS3 ? "image_token_id" : "image_token_index";
    if (!cJSON_GetObjectItemCaseSensitive(root, key))
        key = "image_token_id";
    rc = cfg_int(root, key, m->arch == VLM_ARCH_LLAVA ? 32000 : m->image_id, 0, 1 << 30, &cfg_id,
                 err);
    if (rc)
        return rc;
    if (cfg_id != m->image_id)
        return sb_fail(err, SB_EMODEL,
                       "config.json's image token %d is not the tokenizer's "
                       "'<image>' (%d)",
                       cfg_id, (int)m->image_id);
    if (m->image_id >= lm_model_vocab_size(m->lm))
        return sb_fail(err, SB_EMODEL, "image token %d is outside the vocabulary",
                       (int)m->image_id);
    if (m->arch == VLM_ARCH_IDEFICS3) {
        m->fake_id = bpe_token_id(m->tok, "<fake_token_around_image>");
        m->global_id = bpe_token_id(m->tok, "<global-img>");
        if (m->fake_id < 0 || m->global_id < 0)
            return sb_fail(err, SB_EMODEL,
                           "the tokenizer lacks <fake_token_around_image> or "
                           "<global-img>");
    }
    int32_t ids[LM_MAX_STOP];
    int n = bpe_chat_stop_ids(m->tok, ids, LM_MAX_STOP);
    for (int i = 0; i < n && i < LM_MAX_STOP; i++)
        add_stop(m, ids[i]);
    n = lm_model_eos_ids(m->lm, ids, LM_MAX_STOP);
    for (int i = 0; i < n && i < LM_MAX_STOP; i++)
        add_stop(m, ids[i]);
    return SB_OK;
}

int vlm_model_load(const char *dir, const struct vlm_load_params *params, struct vlm_model **out,
                   struct sb_err *err)
{
    struct vlm_load_params p = params ? *params : vlm_load_default_params();
    unsigned char *cfg_buf = NULL, *pre_buf = NULL;
    size_t cfg_len = 0, pre_len = 0;
    cJSON *root = NULL;
    struct vlm_model *m = calloc(1, sizeof(*m));
    int rc = SB_OK;
    if (!m) {
        rc = sb_fail(err, SB_ENOMEM, "no memory for the model");
        goto out;
    }
    rc = read_optional(dir, "config.json", &cfg_buf, &cfg_len, err);
    if (!rc && !cfg_buf)
        rc = sb_fail(err, SB_ENOENT, "no config.json");
    if (rc)
        goto out;
    root = cJSON_ParseWithLength((const char *)cfg_buf, cfg_len);
    if (!cJSON_IsObject(root)) {
        rc = sb_fail(err, SB_EFORMAT, "config.json is not a JSON object");
        goto out;
    }
    const char *mt = cfg_str(root, "model_type", "");
    if (md_is_moondream(root)) { /* Moondream 2: moondream.c loads everything */
        m->arch = VLM_ARCH_MOONDREAM;
        rc = md_load(dir, root, p.blas_threads, &m->lm, &m->tok, &m->md, err);
        if (!rc)
            rc = lm_model_set_precision(m->lm, p.precision, err);
        if (!rc)
            rc = md_set_precision(m->md, m->lm, err);
        if (rc)
            goto out;
        m->R = m->md->N;
        m->vis.S = m->md->S;
        m->stop[0] = m->md->eos;
        m->n_stop = 1;
        m->max_images = 1; /* its crops are its own business (moondream.c) */
        if (p.split_image) {
            rc = sb_fail(err, SB_EINVAL,
                         "image splitting is for Idefics3 models only (Moondream tiles itself)");
            goto out;
        }
        goto ident;
    }
    if (strcmp(mt, "llava") == 0) {
        m->arch = VLM_ARCH_LLAVA;
    } else if (strcmp(mt, "idefics3") == 0) {
        m->arch = VLM_ARCH_IDEFICS3;
    } else {
        rc = sb_fail(err, SB_EMODEL,
                     "model_type '%.40s' is not a supported captioning model "
                     "(llava, idefics3, moondream1)",
                     mt);
        goto out;
    }
    rc = vision_config(m, root, err);
    if (!rc)
        rc = m->arch == VLM_ARCH_LLAVA ? llava_config(m, root, err) : idefics3_config(m, root, err);
    if (!rc)
        rc = load_decoder(m, dir, p.blas_threads, err);
    if (!rc)
        rc = lm_model_set_precision(m->lm, p.precision, err);
    if (rc)
        goto out;
    int Ct = lm_model_hidden_size(m->lm), C = m->vis.C, s = m->scale;
    if (m->arch == VLM_ARCH_IDEFICS3) {
        m->vis.post_ln = true; /* last_hidden_state */
        rc = load_vision(m, "model.vision_model", p.precision, err);
        if (!rc)
            rc = linear(m, "model.connector.modality_projection.proj", Ct, C * s * s, false,
                        &m->proj1, err);
    } else {
        const char *vp = "vision_tower.vision_model", *pp = "multi_modal_projector.";
        if (!st_weights_find(&m->lm->weights, "vision_tower.vision_model.embeddings."
                                              "patch_embedding.weight")) {
            vp = "model.vision_tower.vision_model"; /* transformers >= 4.52 layout */
            pp = "model.multi_modal_projector.";
        }
        char n1[64], n2[64];
        snprintf(n1, sizeof(n1), "%slinear_1", pp);
        snprintf(n2, sizeof(n2), "%slinear_2", pp);
        rc = load_vision(m, vp, p.precision, err);
        if (!rc)
            rc = linear(m, n1, Ct, C, true, &m->proj1, err);
        if (!rc)
            rc = linear(m, n2, Ct, Ct, true, &m->proj2, err);
    }
    if (!rc)
        rc = load_tokens(m, dir, root, err);
    if (!rc)
        rc = read_optional(dir, "preprocessor_config.json", &pre_buf, &pre_len, err);
    if (rc)
        goto out;
    if (m->arch == VLM_ARCH_IDEFICS3 || m->vis.tower == VLM_TOWER_SIGLIP) {
        rc = square_preproc(&m->pre,
                            m->arch == VLM_ARCH_IDEFICS3 ? VLM_PRE_IDEFICS3 : VLM_PRE_SIGLIP,
                            (const char *)pre_buf, pre_len, m->vis.S, err);
    } else {
        m->pre.kind = VLM_PRE_CLIP;
        rc = clip_preproc_parse((const char *)pre_buf, pre_len, m->vis.S, &m->pre.clip, err);
    }
    if (!rc && p.split_image && m->arch != VLM_ARCH_IDEFICS3)
        rc = sb_fail(err, SB_EINVAL, "image splitting is for Idefics3 models only, not %s",
                     vlm_model_arch(m));
    if (rc)
        goto out;
    m->split = p.split_image;
    m->max_grid = (m->pre.longest_edge + m->vis.S - 1) / m->vis.S;
    m->max_images = m->split ? m->max_grid * m->max_grid + 1 : 1;
ident:;
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    uint64_t h = fnv1a(0xcbf29ce484222325ull, cfg_buf, cfg_len);
    for (size_t i = 0; i < m->lm->weights.n_files; i++)
        h = fnv1a(h, m->lm->weights.files[i].header, m->lm->weights.files[i].header_len);
    snprintf(m->id, sizeof(m->id), "%.120s@%016llx", base, (unsigned long long)h);
    *out = m;
    m = NULL;
out:
    if (rc && err && dir) {
        char msg[sizeof(err->msg)];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        sb_fail(err, rc, "model '%s': %s", dir, msg);
    }
    vlm_model_free(m);
    cJSON_Delete(root);
    free(cfg_buf);
    free(pre_buf);
    return rc;
}

void vlm_model_free(struct vlm_model *m)
{
    if (!m)
        return;
    bpe_free(m->tok);
    clip_model_free(m->vis.enc); /* borrows the decoder's files: first */
    lm_model_free(m->lm);
    md_free(m->md);
    for (size_t i = 0; i < m->n_owned; i++)
        free(m->owned[i]);
    free(m->owned);
    free(m);
}

const char *vlm_model_id(const struct vlm_model *m)
{
    return m->id;
}

const char *vlm_model_arch(const struct vlm_model *m)
{
    if (m->arch == VLM_ARCH_MOONDREAM)
        return "moondream";
    return m->arch == VLM_ARCH_IDEFICS3 ? "idefics3" : "llava";
}

enum clip_precision vlm_model_precision(const struct vlm_model *m)
{
    return m->vis.enc ? clip_model_precision(m->vis.enc) : lm_model_precision(m->lm);
}

int vlm_model_image_size(const struct vlm_model *m)
{
    return m->vis.S;
}

int vlm_model_image_tokens(const struct vlm_model *m)
{
    return m->R;
}

int vlm_model_max_images(const struct vlm_model *m)
{
    return m->max_images;
}

void vlm_model_min_decode(const struct vlm_model *m, int *min_long, int *min_short)
{
    if (m->md) { /* Moondream tiles by the photo's own size: decode it whole */
        *min_long = 1 << 20;
        *min_short = 1 << 20;
    } else if (m->split) { /* the long edge goes to size["longest_edge"] before the crops */
        *min_long = m->pre.longest_edge;
        *min_short = 0;
    } else if (m->pre.kind != VLM_PRE_CLIP) { /* a square resize: the long edge must cover S */
        *min_long = m->pre.max_edge;
        *min_short = 0;
    } else if (m->pre.clip.size_is_shortest_edge) {
        *min_long = 0;
        *min_short = m->pre.clip.size_short;
    } else {
        *min_long = 0;
        *min_short = m->vis.S;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Preprocessing */

static enum image_filter pil_filter(int resample)
{
    return resample == 1 ? IMAGE_FILTER_LANCZOS
                         : (resample == 2 ? IMAGE_FILTER_BILINEAR : IMAGE_FILTER_BICUBIC);
}

/* image_processing_idefics3._resize_output_size_rescale_to_max_len (min_len 1). */
static void rescale_to_max_len(int w, int h, int max_len, int *ow, int *oh)
{
    double ar = (double)w / (double)h;
    if (w >= h) {
        w = max_len;
        h = (int)((double)w / ar);
        h += h % 2;
    } else {
        h = max_len;
        w = (int)((double)h * ar);
        w += w % 2;
    }
    *ow = w > 1 ? w : 1;
    *oh = h > 1 ? h : 1;
}

/* Rescale and normalise the S x S region of img at (x0, y0) into out (3, S, S). */
static void normalize_region(const struct vlm_preproc_cfg *p, const struct image *img, int x0,
                             int y0, int S, float *out)
{
    for (int ch = 0; ch < 3; ch++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                size_t at = ((size_t)(y0 + y) * img->w + (size_t)(x0 + x)) * 3 + (size_t)ch;
                out[((size_t)ch * S + (size_t)y) * S + (size_t)x] =
                    ((float)img->px[at] * p->rescale - p->mean[ch]) / p->std[ch];
            }
}

/* *out = img resized to w x h (a copy is not made: *out = img when the size is already right,
 * as PIL's resize returns an equal image); *owned gets what the caller frees. */
static int resize_to(const struct image *img, int w, int h, int resample, const struct image **out,
                     struct image **owned, struct sb_err *err)
{
    *owned = NULL;
    *out = img;
    if (img->w == w && img->h == h)
        return SB_OK;
    *owned = image_resize(img, w, h, pil_filter(resample));
    if (!*owned)
        return sb_fail(err, SB_ENOMEM, "preprocess: resize to %dx%d failed", w, h);
    *out = *owned;
    return SB_OK;
}

/* Idefics3 with do_image_splitting (image_processing_idefics3.py): the longest edge to
 * size["longest_edge"] (rescale_to_max_len), then resize_for_vision_encoder (each side up to a
 * multiple of S: the long side first, the short one from the aspect ratio), then split_image:
 * rows x cols crops of S x S, row-major, and the global image (that picture squared to S), last.
 * An image that is S x S after the second resize is not split (*rows = *cols = 0, one image). */
static int preprocess_split(const struct vlm_model *m, const struct image *rgb, float *out,
                            int *rows, int *cols, struct sb_err *err)
{
    const struct vlm_preproc_cfg *p = &m->pre;
    const struct image *a = NULL, *b = NULL, *g = NULL;
    struct image *oa = NULL, *ob = NULL, *og = NULL;
    int S = p->max_edge, w, h;
    rescale_to_max_len(rgb->w, rgb->h, p->longest_edge, &w, &h);
    int rc = resize_to(rgb, w, h, p->resample, &a, &oa, err);
    if (rc)
        goto out;
    double ar = (double)w / (double)h;
    int W, H;
    if (w >= h) {
        W = (w + S - 1) / S * S;
        H = (int)((double)W / ar);
        H = (H + S - 1) / S * S;
    } else {
        H = (h + S - 1) / S * S;
        W = (int)((double)H * ar);
        W = (W + S - 1) / S * S;
    }
    W = W > S ? W : S; /* a sliver rounds to 0 rows: keep one */
    H = H > S ? H : S;
    if (W / S > m->max_grid || H / S > m->max_grid) {
        rc = sb_fail(err, SB_EINTERNAL, "preprocess: %dx%d crops exceed %d per side", W / S, H / S,
                     m->max_grid);
        goto out;
    }
    rc = resize_to(a, W, H, p->resample, &b, &ob, err);
    if (rc)
        goto out;
    size_t plane = 3 * (size_t)S * (size_t)S, k = 0;
    if (W == S && H == S) {
        *rows = *cols = 0;
        normalize_region(p, b, 0, 0, S, out);
        goto out;
    }
    for (int r = 0; r < H / S; r++)
        for (int c = 0; c < W / S; c++)
            normalize_region(p, b, c * S, r * S, S, out + plane * k++);
    rc = resize_to(b, S, S, p->resample, &g, &og, err);
    if (rc)
        goto out;
    normalize_region(p, g, 0, 0, S, out + plane * k);
    *rows = H / S;
    *cols = W / S;
out:
    image_free(oa);
    image_free(ob);
    image_free(og);
    return rc;
}

/* Idefics3 (longest edge, then square) and SigLIP (square) resizes, rescale, normalise. */
static int preprocess_square(const struct vlm_model *m, const struct image *rgb, float *out,
                             struct sb_err *err)
{
    const struct vlm_preproc_cfg *p = &m->pre;
    struct image *a = NULL, *b = NULL;
    const struct image *img = rgb;
    int w = rgb->w, h = rgb->h, S = p->max_edge, rc = SB_OK;
    if (p->kind == VLM_PRE_IDEFICS3)
        rescale_to_max_len(rgb->w, rgb->h, p->longest_edge, &w, &h);
    if (w != img->w || h != img->h) {
        a = image_resize(img, w, h, pil_filter(p->resample));
        if (!a) {
            rc = sb_fail(err, SB_ENOMEM, "preprocess: resize to %dx%d failed", w, h);
            goto out;
        }
        img = a;
    }
    if (img->w != S || img->h != S) { /* "We square the images to max_image_size" */
        b = image_resize(img, S, S, pil_filter(p->resample));
        if (!b) {
            rc = sb_fail(err, SB_ENOMEM, "preprocess: resize to %dx%d failed", S, S);
            goto out;
        }
        img = b;
    }
    for (int ch = 0; ch < 3; ch++)
        for (size_t i = 0; i < (size_t)S * S; i++)
            out[(size_t)ch * S * S + i] =
                ((float)img->px[i * 3 + (size_t)ch] * p->rescale - p->mean[ch]) / p->std[ch];
out:
    image_free(a);
    image_free(b);
    return rc;
}

int vlm_preprocess_split(const struct vlm_model *m, const struct image *rgb, float *out, int *rows,
                         int *cols, struct sb_err *err)
{
    if (!m->split) {
        *rows = *cols = 0;
        return vlm_preprocess(m, rgb, out, err);
    }
    if (!rgb || rgb->w < 1 || rgb->h < 1 || !rgb->px)
        return sb_fail(err, SB_EINVAL, "preprocess: empty image");
    return preprocess_split(m, rgb, out, rows, cols, err);
}

int vlm_preprocess(const struct vlm_model *m, const struct image *rgb, float *out,
                   struct sb_err *err)
{
    if (!rgb || rgb->w < 1 || rgb->h < 1 || !rgb->px)
        return sb_fail(err, SB_EINVAL, "preprocess: empty image");
    if (m->md)
        return md_global_crop(m->md, rgb, out, err);
    if (m->pre.kind != VLM_PRE_CLIP)
        return preprocess_square(m, rgb, out, err);
    /* CLIPImageProcessor: clip_preprocess() reads only these fields */
    struct clip_model cm;
    memset(&cm, 0, sizeof(cm));
    cm.towers = CLIP_TOWER_VISION;
    cm.pre = m->pre.clip;
    cm.cfg.image_size = m->vis.S;
    return clip_preprocess(&cm, rgb, out, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Captioning */

struct vlm_ctx {
    const struct vlm_model *m;
    struct lm_ctx *lm;
    struct vlm_vscratch *vs;
    struct md_vscratch *mdv; /* VLM_ARCH_MOONDREAM instead of vs */
    float *pixels;           /* (3, S, S) */
    float *rows;             /* (R, Ct) image rows */
    float *embeds;           /* (max_prompt, Ct) decoder input rows */
    int32_t *ids;            /* (max_prompt) prompt ids, LM_EMBED_ROW for image rows */
    int n_ids, max_prompt;
    int n_images;                /* of the last caption: crops + the global image, or 1 */
    int grid_rows, grid_cols;    /* of the last caption: its split, 0 x 0 for one image */
    int32_t *out;                /* (VLM_MAX_NEW_TOKENS) */
    double encode_s, generate_s; /* of the last caption */
    double gen_t0;               /* when its generation started */
    struct vlm_params params;    /* of the caption being generated */
    bool started;                /* vlm_caption_start() succeeded, vlm_caption_finish() not yet */
};

/* A photo's image rows (vlm_encode). */
struct vlm_image {
    const struct vlm_model *m;
    float *rows; /* (n_images * R, Ct) */
    int n_images, grid_rows, grid_cols;
    double encode_s;
};

int vlm_batch_slots(const struct vlm_model *m, int max_new_tokens, size_t budget, int max_slots)
{
    int positions = m->max_images * (m->R + (m->split ? TILE_SLACK : 0)) + PROMPT_SLACK +
                    (max_new_tokens > 0 ? max_new_tokens : VLM_MAX_NEW_TOKENS);
    size_t per = lm_model_kv_bytes(m->lm, positions);
    size_t n = per ? budget / per : (size_t)max_slots;
    if (n > (size_t)max_slots)
        n = (size_t)max_slots;
    return n < 1 ? 1 : (int)n;
}

int vlm_ctx_new(const struct vlm_model *m, struct sb_pool *pool, struct vlm_ctx **out,
                struct sb_err *err)
{
    struct vlm_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return sb_fail(err, SB_ENOMEM, "no memory for a caption context");
    c->m = m;
    int Ct = lm_model_hidden_size(m->lm), S = m->vis.S;
    /* splitting: per crop <fake_token_around_image><row_i_col_j> (a few tokens when the
     * tokenizer does not know the row tag) and a newline per row */
    int max_ctx =
        m->max_images * (m->R + (m->split ? TILE_SLACK : 0)) + PROMPT_SLACK + VLM_MAX_NEW_TOKENS;
    if (max_ctx > lm_model_max_positions(m->lm))
        max_ctx = lm_model_max_positions(m->lm);
    c->max_prompt = max_ctx;
    /* Moondream's bidirectional image prefix must be prefilled in one batch */
    int batch = m->md ? m->R + 1 + PROMPT_SLACK : 0;
    int rc = lm_ctx_new(m->lm, pool, max_ctx, batch, &c->lm, err);
    if (!rc)
        rc = m->md ? md_vscratch_new(m->md, pool, &c->mdv, err)
                   : vlm_vscratch_new(m, pool, &c->vs, err);
    if (rc)
        goto fail;
    size_t n_pix = 3 * (size_t)S * (size_t)S * (size_t)m->max_images, n_rows, n_emb;
    if (!sb_mul3_size((size_t)m->max_images, (size_t)m->R, (size_t)Ct, &n_rows) ||
        !sb_mul_size((size_t)max_ctx, (size_t)Ct, &n_emb)) {
        rc = sb_fail(err, SB_ETOOBIG, "caption context too large");
        goto fail;
    }
    c->pixels = calloc(n_pix, sizeof(float));
    c->rows = calloc(n_rows, sizeof(float));
    c->embeds = calloc(n_emb, sizeof(float));
    c->ids = calloc((size_t)max_ctx, sizeof(int32_t));
    c->out = calloc(VLM_MAX_NEW_TOKENS, sizeof(int32_t));
    if (!c->pixels || !c->rows || !c->embeds || !c->ids || !c->out) {
        rc = sb_fail(err, SB_ENOMEM, "no memory for a caption context");
        goto fail;
    }
    *out = c;
    return SB_OK;
fail:
    vlm_ctx_free(c);
    return rc;
}

void vlm_ctx_free(struct vlm_ctx *c)
{
    if (!c)
        return;
    lm_ctx_free(c->lm);
    vlm_vscratch_free(c->vs);
    md_vscratch_free(c->mdv);
    free(c->pixels);
    free(c->rows);
    free(c->embeds);
    free(c->ids);
    free(c->out);
    free(c);
}

/* The prompt ids as the HF processor makes them: the chat template with one image, <image>
 * expanded to the image rows (Idefics3 wraps them in <fake_token_around_image><global-img> ...
 * <fake_token_around_image>), tokenized with the special tokens (Llama's <s>). */
static void put_image(struct sb_buf *text, int R)
{
    for (int i = 0; i < R; i++)
        sb_buf_puts(text, "<image>");
}

/* processing_idefics3.py's image string: a split image is, row by row,
 * <fake_token_around_image><row_i_col_j><image>*R per crop and "\n" after each row, then
 * "\n<fake_token_around_image><global-img><image>*R<fake_token_around_image>"; a whole one
 * <fake_token_around_image><global-img><image>*R<fake_token_around_image>. */
static void put_idefics3_image(struct sb_buf *text, int R, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            char tag[64];
            snprintf(tag, sizeof(tag), "<fake_token_around_image><row_%d_col_%d>", r + 1, c + 1);
            sb_buf_puts(text, tag);
            put_image(text, R);
        }
        sb_buf_puts(text, "\n");
    }
    sb_buf_puts(text, rows ? "\n<fake_token_around_image><global-img>"
                           : "<fake_token_around_image><global-img>");
    put_image(text, R);
    sb_buf_puts(text, "<fake_token_around_image>");
}

static int build_prompt(struct vlm_ctx *c, const char *prompt, int rows, int cols,
                        struct sb_err *err)
{
    const struct vlm_model *m = c->m;
    struct sb_buf chat, text;
    sb_buf_init(&chat);
    sb_buf_init(&text);
    struct bpe_chat_msg msg = { "user", prompt, 1 };
    int rc = bpe_chat_apply(m->tok, &msg, 1, true, &chat, err);
    if (rc)
        goto out;
    for (const char *s = chat.data; *s;) {
        const char *hit = strstr(s, "<image>");
        if (!hit) {
            sb_buf_puts(&text, s);
            break;
        }
        sb_buf_append(&text, s, (size_t)(hit - s));
        if (m->arch == VLM_ARCH_IDEFICS3)
            put_idefics3_image(&text, m->R, rows, cols);
        else
            put_image(&text, m->R);
        s = hit + strlen("<image>");
    }
    if (text.failed) {
        rc = sb_fail(err, SB_ENOMEM, "no memory for the prompt");
        goto out;
    }
    size_t n = 0;
    rc = bpe_encode(m->tok, text.data, text.len, true, c->ids, (size_t)c->max_prompt, &n, err);
    if (rc)
        goto out;
    int Ct = lm_model_hidden_size(m->lm), k = 0, want = c->n_images * m->R;
    for (size_t i = 0; i < n; i++) {
        if (c->ids[i] != m->image_id)
            continue;
        if (k == want) {
            rc = sb_fail(err, SB_EINVAL, "the prompt may not contain '<image>'");
            goto out;
        }
        c->ids[i] = LM_EMBED_ROW;
        memcpy(c->embeds + i * (size_t)Ct, c->rows + (size_t)k * Ct, (size_t)Ct * sizeof(float));
        k++;
    }
    if (k != want) {
        rc = sb_fail(err, SB_EINTERNAL, "prompt has %d image tokens, expected %d", k, want);
        goto out;
    }
    if ((int)n + 1 > c->max_prompt) {
        rc = sb_fail(err, SB_ETOOBIG, "the prompt (%zu tokens) leaves no room to generate", n);
        goto out;
    }
    c->n_ids = (int)n;
out:
    sb_buf_release(&chat);
    sb_buf_release(&text);
    return rc;
}

static int check_params(const struct vlm_params *p, struct sb_err *err)
{
    if (p->max_new_tokens < 1 || p->max_new_tokens > VLM_MAX_NEW_TOKENS ||
        !(p->repetition_penalty > 0.0f))
        return sb_fail(err, SB_EINVAL,
                       "caption: max_new_tokens %d is not in [1, %d] or bad "
                       "repetition_penalty",
                       p->max_new_tokens, VLM_MAX_NEW_TOKENS);
    if (p->prompt && strlen(p->prompt) > MAX_PROMPT)
        return sb_fail(err, SB_ETOOBIG, "caption: the prompt is longer than %d bytes", MAX_PROMPT);
    return SB_OK;
}

/* The image rows into c->rows from pixels (rows x cols crops then the global image, or the
 * global image alone for 0 x 0), or for Moondream from rgb when given (its own crops). */
static int encode_impl(struct vlm_ctx *c, const float *pixels, const struct image *rgb, int rows,
                       int cols, struct sb_err *err)
{
    const struct vlm_model *m = c->m;
    bool whole = rows == 0 && cols == 0;
    if (!whole && (!m->split || rows < 1 || cols < 1 || rows > m->max_grid || cols > m->max_grid))
        return sb_fail(err, SB_EINVAL,
                       "caption: a %dx%d split is not in [1, %d]^2 or the model was "
                       "loaded without image splitting",
                       rows, cols, m->max_grid);
    c->started = false;
    c->n_ids = 0;
    c->n_images = whole ? 1 : rows * cols + 1;
    c->grid_rows = rows;
    c->grid_cols = cols;
    double t0 = sb_now();
    int Ct = lm_model_hidden_size(m->lm), S = m->vis.S, rc = SB_OK;
    if (m->md && rgb)
        rc = md_image_rows(c->mdv, rgb, c->rows, NULL, err);
    else if (m->md)
        rc = md_pixel_rows(c->mdv, pixels, c->rows, err);
    else
        for (int i = 0; i < c->n_images && !rc; i++) /* crops row-major, then the global image */
            rc = vlm_image_rows(c->vs, pixels + (size_t)i * 3 * S * S,
                                c->rows + (size_t)i * m->R * Ct, err);
    c->encode_s = sb_now() - t0;
    return rc;
}

/* The prompt around c->rows, its prefill and the first token. */
static int start_impl(struct vlm_ctx *c, const struct vlm_params *p, struct sb_err *err)
{
    const struct vlm_model *m = c->m;
    c->started = false;
    c->gen_t0 = sb_now();
    int rc = check_params(p, err);
    if (rc)
        return rc;
    c->params = *p;
    if (m->md)
        rc = md_build_prompt(m->md, m->tok, p->prompt, c->rows, c->ids, c->embeds, c->max_prompt,
                             &c->n_ids, err);
    else
        rc = build_prompt(c, p->prompt ? p->prompt : VLM_DEFAULT_PROMPT, c->grid_rows, c->grid_cols,
                          err);
    if (rc)
        return rc;
    struct lm_gen_params gp = lm_gen_default_params();
    gp.max_new_tokens = p->max_new_tokens;
    gp.repetition_penalty = p->repetition_penalty;
    memcpy(gp.stop_ids, m->stop, sizeof(gp.stop_ids));
    gp.n_stop = m->n_stop;
    rc = lm_gen_start(c->lm, c->ids, c->embeds, c->n_ids, &gp, err);
    c->started = rc == SB_OK;
    return rc;
}

int vlm_caption_finish(struct vlm_ctx *c, int32_t *ids, int *n_ids, struct sb_buf *text,
                       struct sb_err *err)
{
    const struct vlm_model *m = c->m;
    if (!c->started || !lm_gen_done(c->lm) || !ids || !n_ids)
        return sb_fail(err, SB_EINVAL, "caption: no finished caption to take");
    c->started = false;
    c->generate_s = sb_now() - c->gen_t0;
    int n = 0;
    const int32_t *got = lm_gen_ids(c->lm, &n);
    memcpy(c->out, got, (size_t)n * sizeof(*c->out));
    memcpy(ids, c->out, (size_t)n * sizeof(*ids));
    *n_ids = n;
    if (!text)
        return SB_OK;
    /* ids past the tokenizer (padded embedding rows, e.g. llava-1.5's 32064) decode to nothing;
     * a stop id ends the text */
    int32_t vocab = (int32_t)bpe_vocab_size(m->tok), keep = 0;
    for (int i = 0; i < n; i++) {
        bool stop = false;
        for (int k = 0; k < m->n_stop; k++)
            stop = stop || c->out[i] == m->stop[k];
        if (stop)
            break;
        if (c->out[i] < vocab && bpe_token_str(m->tok, c->out[i]))
            c->out[keep++] = c->out[i];
    }
    size_t start = text->len;
    int rc = bpe_decode(m->tok, c->out, (size_t)keep, true, text, err);
    if (!rc && c->params.cleanup && !text->failed) {
        vlm_clean_caption(text->data + start);
        text->len = start + strlen(text->data + start);
    }
    if (!rc && text->failed)
        rc = sb_fail(err, SB_ENOMEM, "no memory for the caption");
    return rc;
}

/* The image rows, then the prompt, generation and text. */
static int caption_impl(struct vlm_ctx *c, const float *pixels, const struct image *rgb, int rows,
                        int cols, const struct vlm_params *params, int32_t *ids, int *n_ids,
                        struct sb_buf *text, struct sb_err *err)
{
    struct vlm_params p = params ? *params : vlm_default_params();
    int rc = check_params(&p, err);
    if (!rc && (!ids || !n_ids))
        rc = sb_fail(err, SB_EINVAL, "caption: no room for the ids");
    if (!rc)
        rc = encode_impl(c, pixels, rgb, rows, cols, err);
    if (!rc)
        rc = start_impl(c, &p, err);
    while (!rc && !lm_gen_done(c->lm))
        rc = lm_gen_step(&c->lm, 1, err);
    if (!rc)
        rc = vlm_caption_finish(c, ids, n_ids, text, err);
    c->started = false;
    return rc;
}

int vlm_caption_pixels(struct vlm_ctx *c, const float *pixels, const struct vlm_params *p,
                       int32_t *ids, int *n_ids, struct sb_buf *text, struct sb_err *err)
{
    return caption_impl(c, pixels, NULL, 0, 0, p, ids, n_ids, text, err);
}

int vlm_caption_split(struct vlm_ctx *c, const float *pixels, int rows, int cols,
                      const struct vlm_params *params, int32_t *ids, int *n_ids,
                      struct sb_buf *text, struct sb_err *err)
{
    return caption_impl(c, pixels, NULL, rows, cols, params, ids, n_ids, text, err);
}

int vlm_caption(struct vlm_ctx *c, const struct image *rgb, const struct vlm_params *p,
                int32_t *ids, int *n_ids, struct sb_buf *text, struct sb_err *err)
{
    if (c->m->md) { /* Moondream: global + overlapping local crops of the photo */
        if (!rgb || rgb->w < 1 || rgb->h < 1 || !rgb->px)
            return sb_fail(err, SB_EINVAL, "preprocess: empty image");
        return caption_impl(c, NULL, rgb, 0, 0, p, ids, n_ids, text, err);
    }
    int rows = 0, cols = 0;
    int rc = vlm_preprocess_split(c->m, rgb, c->pixels, &rows, &cols, err);
    if (rc)
        return rc;
    return caption_impl(c, c->pixels, NULL, rows, cols, p, ids, n_ids, text, err);
}

int vlm_encode(struct vlm_ctx *c, const struct image *rgb, struct vlm_image **out,
               struct sb_err *err)
{
    const struct vlm_model *m = c->m;
    int rc;
    if (m->md) {
        if (!rgb || rgb->w < 1 || rgb->h < 1 || !rgb->px)
            return sb_fail(err, SB_EINVAL, "preprocess: empty image");
        rc = encode_impl(c, NULL, rgb, 0, 0, err);
    } else {
        int rows = 0, cols = 0;
        rc = vlm_preprocess_split(m, rgb, c->pixels, &rows, &cols, err);
        if (!rc)
            rc = encode_impl(c, c->pixels, NULL, rows, cols, err);
    }
    if (rc)
        return rc;
    size_t n = (size_t)c->n_images * (size_t)m->R * (size_t)lm_model_hidden_size(m->lm);
    struct vlm_image *im = calloc(1, sizeof(*im));
    float *rows = malloc(n * sizeof(float));
    if (!im || !rows) {
        free(im);
        free(rows);
        return sb_fail(err, SB_ENOMEM, "no memory for image rows");
    }
    memcpy(rows, c->rows, n * sizeof(float));
    *im = (struct vlm_image){ m, rows, c->n_images, c->grid_rows, c->grid_cols, c->encode_s };
    *out = im;
    return SB_OK;
}

void vlm_image_free(struct vlm_image *im)
{
    if (!im)
        return;
    free(im->rows);
    free(im);
}

int vlm_caption_start(struct vlm_ctx *c, const struct vlm_image *im, const struct vlm_params *p,
                      struct sb_err *err)
{
    const struct vlm_model *m = c->m;
    c->started = false;
    if (!im || im->m != m)
        return sb_fail(err, SB_EINVAL, "caption: image rows of another model");
    size_t n = (size_t)im->n_images * (size_t)m->R * (size_t)lm_model_hidden_size(m->lm);
    memcpy(c->rows, im->rows, n * sizeof(float));
    c->n_images = im->n_images;
    c->grid_rows = im->grid_rows;
    c->grid_cols = im->grid_cols;
    c->encode_s = im->encode_s;
    struct vlm_params dp = vlm_default_params();
    return start_impl(c, p ? p : &dp, err);
}

#define VLM_STEP_CTXS 64 /* contexts per lm_gen_step() call */

int vlm_caption_step(struct vlm_ctx *const *cs, int n, struct sb_err *err)
{
    struct lm_ctx *lms[VLM_STEP_CTXS];
    if (n < 0 || (n > 0 && !cs))
        return sb_fail(err, SB_EINVAL, "caption step: no contexts");
    for (int i = 0; i < n; i += VLM_STEP_CTXS) {
        int k = 0;
        for (; k < VLM_STEP_CTXS && i + k < n; k++) {
            if (!cs[i + k] || cs[i + k]->m != cs[0]->m)
                return sb_fail(err, SB_EINVAL, "caption step: a context of another model");
            lms[k] = cs[i + k]->lm;
        }
        int rc = lm_gen_step(lms, k, err);
        if (rc)
            return rc;
    }
    return SB_OK;
}

bool vlm_caption_done(const struct vlm_ctx *c)
{
    return !c->started || lm_gen_done(c->lm);
}

const int32_t *vlm_ctx_prompt(const struct vlm_ctx *c, int *n)
{
    *n = c->n_ids;
    return c->ids;
}

void vlm_ctx_timing(const struct vlm_ctx *c, double *encode_s, double *generate_s)
{
    *encode_s = c->encode_s;
    *generate_s = c->generate_s;
}

const float *vlm_ctx_image_rows(const struct vlm_ctx *c, int *rows, int *dim)
{
    *rows = c->n_images * c->m->R;
    *dim = lm_model_hidden_size(c->m->lm);
    return c->rows;
}

const float *vlm_ctx_prefill_logits(const struct vlm_ctx *c, int *V)
{
    *V = lm_model_vocab_size(c->m->lm);
    return lm_ctx_prefill_logits(c->lm);
}

/* ------------------------------------------------------------------------------------------ */
/* Cleanup */

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Whether the word ending at s[i] (a '.') is an abbreviation. */
static bool abbreviation(const char *s, size_t i)
{
    static const char *const words[] = { "Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Mt", "vs" };
    size_t b = i;
    while (b > 0 && isalpha((unsigned char)s[b - 1]))
        b--;
    if (i - b == 1)
        return true;
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
        if (strlen(words[w]) == i - b && strncmp(s + b, words[w], i - b) == 0)
            return true;
    return false;
}

void vlm_clean_caption(char *s)
{
    size_t k = 0;
    bool space = false;
    /* collapse white space, drop leading white space and quotes */
    for (const char *p = s; *p; p++) {
        /* control characters (byte-fallback debris) count as space; U+FFFD is dropped */
        if (is_space(*p) || (unsigned char)*p < 0x20 || *p == 0x7f) {
            space = k > 0;
            continue;
        }
        if ((unsigned char)p[0] == 0xef && (unsigned char)p[1] == 0xbf &&
            (unsigned char)p[2] == 0xbd) {
            p += 2;
            continue;
        }
        if (k == 0 && (*p == '"' || *p == '\'' || *p == '*'))
            continue;
        if (space)
            s[k++] = ' ';
        space = false;
        s[k++] = *p;
    }
    s[k] = '\0';
    /* the first sentence: up to a '.', '!' or '?' followed by a space, not after an
     * abbreviation (one letter as in "U.S.", or a title such as "St.") */
    for (size_t i = 0; i < k; i++) {
        if ((s[i] == '.' || s[i] == '!' || s[i] == '?') && s[i + 1] == ' ' &&
            !(s[i] == '.' && abbreviation(s, i))) {
            s[i + 1] = '\0';
            k = i + 1;
            break;
        }
    }
    while (k > 0 && (is_space(s[k - 1]) || s[k - 1] == '"' || s[k - 1] == '*'))
        s[--k] = '\0';
}
