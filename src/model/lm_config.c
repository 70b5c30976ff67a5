/* lm_config.c - config.json of a decoder LM (transformers LlamaConfig, Qwen2Config) and
 * generation_config.json. Missing keys take the defaults of configuration_llama.py /
 * configuration_qwen2.py; rope_scaling follows modeling_rope_utils.py ("linear", "dynamic",
 * "llama3"; "type" is the legacy spelling of "rope_type"). */
#include "lm_internal.h"

#include "shoebox/err.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

/* Bounds far above any real decoder that keep every size product in range. */
#define MAX_HIDDEN 65536
#define MAX_LAYERS 1024
#define MAX_HEADS  1024
#define MAX_VOCAB  (1 << 22)
#define MAX_POS    (1 << 24)

static int get_int(const cJSON *o, const char *key, int lo, int hi, int *out, struct sb_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return SB_OK;
    double v = cJSON_IsNumber(j) ? j->valuedouble : (double)NAN;
    if (!(v >= (double)lo && v <= (double)hi) || v != floor(v))
        return sb_fail(err, SB_EFORMAT, "config.json: '%s' must be a whole number in [%d, %d]", key,
                       lo, hi);
    *out = (int)v;
    return SB_OK;
}

static int get_float(const cJSON *o, const char *key, float lo, float hi, float *out,
                     struct sb_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return SB_OK;
    double v = cJSON_IsNumber(j) ? j->valuedouble : (double)NAN;
    if (!(v >= (double)lo && v <= (double)hi))
        return sb_fail(err, SB_EFORMAT, "config.json: '%s' must be a number in [%g, %g]", key,
                       (double)lo, (double)hi);
    *out = (float)v;
    return SB_OK;
}

static int get_bool(const cJSON *o, const char *key, bool *out, struct sb_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return SB_OK;
    if (!cJSON_IsBool(j))
        return sb_fail(err, SB_EFORMAT, "config.json: '%s' must be true or false", key);
    *out = cJSON_IsTrue(j);
    return SB_OK;
}

static bool id_ok(const cJSON *e)
{
    return cJSON_IsNumber(e) && e->valuedouble >= 0.0 && e->valuedouble < (double)MAX_VOCAB &&
           e->valuedouble == floor(e->valuedouble);
}

/* eos_token_id: an int or a list of ints (Llama 3, Qwen2 generation configs). */
static int get_ids(const cJSON *o, const char *key, int32_t *ids, int *n, struct sb_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return SB_OK;
    if (cJSON_IsNumber(j)) {
        if (!id_ok(j))
            return sb_fail(err, SB_EFORMAT, "'%s': ids must be whole numbers in [0, %d)", key,
                           MAX_VOCAB);
        ids[0] = (int32_t)j->valuedouble;
        *n = 1;
        return SB_OK;
    }
    if (!cJSON_IsArray(j))
        return sb_fail(err, SB_EFORMAT, "'%s' must be an id or a list of ids", key);
    int k = 0;
    int32_t tmp[LM_MAX_STOP];
    const cJSON *e;
    cJSON_ArrayForEach(e, j)
    {
        if (!id_ok(e))
            return sb_fail(err, SB_EFORMAT, "'%s': ids must be whole numbers in [0, %d)", key,
                           MAX_VOCAB);
        if (k == LM_MAX_STOP)
            return sb_fail(err, SB_EFORMAT, "'%s': more than %d ids", key, LM_MAX_STOP);
        tmp[k++] = (int32_t)e->valuedouble;
    }
    memcpy(ids, tmp, (size_t)k * sizeof(*ids));
    *n = k;
    return SB_OK;
}

static int parse_rope_scaling(const cJSON *o, struct lm_config *c, struct sb_err *err)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "rope_scaling");
    if (!rs || cJSON_IsNull(rs))
        return SB_OK;
    if (!cJSON_IsObject(rs))
        return sb_fail(err, SB_EFORMAT, "config.json: 'rope_scaling' must be an object");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(t))
        t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    const char *type = cJSON_IsString(t) ? t->valuestring : "default";
    if (strcmp(type, "default") == 0)
        c->rope = LM_ROPE_DEFAULT;
    else if (strcmp(type, "linear") == 0)
        c->rope = LM_ROPE_LINEAR;
    else if (strcmp(type, "dynamic") == 0)
        c->rope = LM_ROPE_DYNAMIC;
    else if (strcmp(type, "llama3") == 0)
        c->rope = LM_ROPE_LLAMA3;
    else
        return sb_fail(err, SB_EMODEL, "config.json: rope_scaling type '%.40s' is not supported",
                       type);
    if (c->rope == LM_ROPE_DEFAULT)
        return SB_OK;
    c->rope_factor = 0.0f;
    int rc = get_float(rs, "factor", 1e-3f, 1e6f, &c->rope_factor, err);
    if (rc)
        return rc;
    if (c->rope_factor == 0.0f)
        return sb_fail(err, SB_EFORMAT, "config.json: rope_scaling '%s' needs a 'factor'", type);
    if (c->rope != LM_ROPE_LLAMA3)
        return SB_OK;
    c->rope_low = 1.0f;
    c->rope_high = 4.0f;
    c->rope_orig_max = 8192;
    rc = get_float(rs, "low_freq_factor", 1e-6f, 1e6f, &c->rope_low, err);
    if (!rc)
        rc = get_float(rs, "high_freq_factor", 1e-6f, 1e6f, &c->rope_high, err);
    if (!rc)
        rc = get_int(rs, "original_max_position_embeddings", 1, MAX_POS, &c->rope_orig_max, err);
    if (!rc && !(c->rope_high > c->rope_low))
        rc = sb_fail(err, SB_EFORMAT,
                     "config.json: llama3 rope needs high_freq_factor > "
                     "low_freq_factor");
    return rc;
}

static int parse_obj(const cJSON *o, struct lm_config *c, struct sb_err *err)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "model_type");
    const char *type = cJSON_IsString(mt) ? mt->valuestring : "";
    bool qwen = strcmp(type, "qwen2") == 0;
    if (!qwen && strcmp(type, "llama") != 0)
        return sb_fail(err, SB_EMODEL,
                       "config.json: model_type '%.40s' is not supported (llama, "
                       "qwen2)",
                       type);
    /* LlamaConfig / Qwen2Config defaults */
    memset(c, 0, sizeof(*c));
    c->arch = qwen ? LM_ARCH_QWEN2 : LM_ARCH_LLAMA;
    c->vocab = qwen ? 151936 : 32000;
    c->hidden = 4096;
    c->intermediate = qwen ? 22016 : 11008;
    c->layers = 32;
    c->heads = 32;
    c->kv_heads = -1;
    c->head_dim = -1;
    c->max_pos = qwen ? 32768 : 2048;
    c->rms_eps = 1e-6f;
    c->rope_theta = 10000.0f;
    c->rope = LM_ROPE_DEFAULT;
    c->tie_embeddings = false;
    c->bos = qwen ? -1 : 1;
    c->eos[0] = qwen ? -1 : 2;
    c->n_eos = qwen ? 0 : 1;
    bool attention_bias = false;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(o, "hidden_act");
    if (act && !cJSON_IsNull(act) &&
        !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
        return sb_fail(err, SB_EMODEL, "config.json: hidden_act '%.40s' is not supported (silu)",
                       cJSON_IsString(act) ? act->valuestring : "?");
    int bos = c->bos;
    int rc = get_int(o, "vocab_size", 1, MAX_VOCAB, &c->vocab, err);
    if (!rc)
        rc = get_int(o, "hidden_size", 1, MAX_HIDDEN, &c->hidden, err);
    if (!rc)
        rc = get_int(o, "intermediate_size", 1, 4 * MAX_HIDDEN, &c->intermediate, err);
    if (!rc)
        rc = get_int(o, "num_hidden_layers", 1, MAX_LAYERS, &c->layers, err);
    if (!rc)
        rc = get_int(o, "num_attention_heads", 1, MAX_HEADS, &c->heads, err);
    if (!rc)
        rc = get_int(o, "num_key_value_heads", 1, MAX_HEADS, &c->kv_heads, err);
    if (!rc)
        rc = get_int(o, "head_dim", 2, MAX_HIDDEN, &c->head_dim, err);
    if (!rc)
        rc = get_int(o, "max_position_embeddings", 1, MAX_POS, &c->max_pos, err);
    if (!rc)
        rc = get_float(o, "rms_norm_eps", 0.0f, 1.0f, &c->rms_eps, err);
    if (!rc)
        rc = get_float(o, "rope_theta", 1.0f, 1e12f, &c->rope_theta, err);
    if (!rc)
        rc = get_bool(o, "tie_word_embeddings", &c->tie_embeddings, err);
    if (!rc && !qwen)
        rc = get_bool(o, "attention_bias", &attention_bias, err);
    if (!rc && !qwen)
        rc = get_bool(o, "mlp_bias", &c->mlp_bias, err);
    if (!rc)
        rc = get_int(o, "bos_token_id", -1, MAX_VOCAB - 1, &bos, err);
    if (!rc)
        rc = get_ids(o, "eos_token_id", c->eos, &c->n_eos, err);
    if (!rc)
        rc = parse_rope_scaling(o, c, err);
    if (rc)
        return rc;
    c->bos = bos;
    if (c->kv_heads < 0)
        c->kv_heads = c->heads;
    if (c->head_dim < 0) {
        if (c->hidden % c->heads)
            return sb_fail(err, SB_EFORMAT,
                           "config.json: hidden_size %d is not a multiple of "
                           "num_attention_heads %d",
                           c->hidden, c->heads);
        c->head_dim = c->hidden / c->heads;
    }
    if (c->heads % c->kv_heads)
        return sb_fail(err, SB_EFORMAT,
                       "config.json: num_attention_heads %d is not a multiple "
                       "of num_key_value_heads %d",
                       c->heads, c->kv_heads);
    if (c->head_dim % 2)
        return sb_fail(err, SB_EFORMAT, "config.json: head_dim %d is odd", c->head_dim);
    if ((int64_t)c->heads * c->head_dim > MAX_HIDDEN)
        return sb_fail(err, SB_EFORMAT, "config.json: heads x head_dim is too large");
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos[i] >= c->vocab)
            return sb_fail(err, SB_EFORMAT, "config.json: eos_token_id %d >= vocab_size %d",
                           (int)c->eos[i], c->vocab);
    c->qkv_bias = qwen || attention_bias;
    c->o_bias = !qwen && attention_bias;
    return SB_OK;
}

int lm_config_parse(const char *json, size_t len, const char *key, struct lm_config *c,
                    struct sb_err *err)
{
    struct lm_config tmp;
    int rc = SB_OK;
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *o = root;
    if (!cJSON_IsObject(root)) {
        rc = sb_fail(err, SB_EFORMAT, "config.json: not a JSON object");
        goto out;
    }
    if (key) {
        o = cJSON_GetObjectItemCaseSensitive(root, key);
        if (!cJSON_IsObject(o)) {
            rc = sb_fail(err, SB_EFORMAT, "config.json: no '%.40s' object", key);
            goto out;
        }
    }
    rc = parse_obj(o, &tmp, err);
    if (!rc)
        *c = tmp;
out:
    cJSON_Delete(root);
    return rc;
}

int lm_generation_config_parse(const char *json, size_t len, struct lm_config *c,
                               struct sb_err *err)
{
    int rc = SB_OK;
    struct lm_config tmp = *c;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        rc = sb_fail(err, SB_EFORMAT, "generation_config.json: not a JSON object");
        goto out;
    }
    rc = get_ids(root, "eos_token_id", tmp.eos, &tmp.n_eos, err);
    if (!rc)
        rc = get_int(root, "bos_token_id", -1, MAX_VOCAB - 1, &tmp.bos, err);
    for (int i = 0; !rc && i < tmp.n_eos; i++)
        if (tmp.eos[i] >= tmp.vocab)
            rc = sb_fail(err, SB_EFORMAT, "generation_config.json: eos_token_id %d >= vocab %d",
                         (int)tmp.eos[i], tmp.vocab);
    if (!rc)
        *c = tmp;
out:
    cJSON_Delete(root);
    return rc;
}
