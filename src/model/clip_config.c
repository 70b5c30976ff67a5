/* clip_config.c - config.json (transformers CLIPConfig / CLIPTextConfig / CLIPVisionConfig, or
 * SiglipConfig / SiglipTextConfig / SiglipVisionConfig when model_type is "siglip") and
 * preprocessor_config.json (CLIPImageProcessor / SiglipImageProcessor) parsing. Missing keys take
 * the defaults of transformers' configuration_clip.py / configuration_siglip.py and
 * image_processing_clip.py / image_processing_siglip.py. */
#include "internal.h"

#include "shoebox/err.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

/* Upper bounds far above any real CLIP (ViT-bigG: 1664 wide, 48 layers) that keep every
 * size product in range. */
#define MAX_HIDDEN 16384
#define MAX_LAYERS 256
#define MAX_VOCAB  (1 << 22)
#define MAX_POS    65536
#define MAX_IMAGE  8192

/* Reads key as a whole number in [lo, hi]; absent (or null) leaves *out as it is. */
static int get_int(const cJSON *o, const char *key, int lo, int hi, int *out, const char *where,
                   struct sb_err *err)
{
    const cJSON *j = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!j || cJSON_IsNull(j))
        return SB_OK;
    double v = cJSON_IsNumber(j) ? j->valuedouble : (double)NAN;
    if (!(v >= (double)lo && v <= (double)hi) || v != floor(v))
        return sb_fail(err, SB_EFORMAT, "%s: '%s' must be a whole number in [%d, %d]", where, key,
                       lo, hi);
    *out = (int)v;
    return SB_OK;
}

static int get_float(const cJSON *o, const char *key, float lo, float hi, float *out,
                     const char *where, struct sb_err *err)
{
    const cJSON *j = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!j || cJSON_IsNull(j))
        return SB_OK;
    double v = cJSON_IsNumber(j) ? j->valuedouble : (double)NAN;
    if (!(v >= (double)lo && v <= (double)hi))
        return sb_fail(err, SB_EFORMAT, "%s: '%s' must be a number in [%g, %g]", where, key,
                       (double)lo, (double)hi);
    *out = (float)v;
    return SB_OK;
}

static int get_bool(const cJSON *o, const char *key, bool *out, const char *where,
                    struct sb_err *err)
{
    const cJSON *j = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!j || cJSON_IsNull(j))
        return SB_OK;
    if (!cJSON_IsBool(j))
        return sb_fail(err, SB_EFORMAT, "%s: '%s' must be true or false", where, key);
    *out = cJSON_IsTrue(j);
    return SB_OK;
}

/* transformers.activations ACT2FN names that CLIP checkpoints use. */
static int get_act(const cJSON *o, enum clip_act *out, const char *where, struct sb_err *err)
{
    const cJSON *j = o ? cJSON_GetObjectItemCaseSensitive(o, "hidden_act") : NULL;
    if (!j || cJSON_IsNull(j))
        return SB_OK;
    const char *s = cJSON_IsString(j) ? j->valuestring : "";
    if (strcmp(s, "quick_gelu") == 0)
        *out = CLIP_ACT_QUICK_GELU;
    else if (strcmp(s, "gelu") == 0)
        *out = CLIP_ACT_GELU;
    else if (strcmp(s, "gelu_new") == 0 || strcmp(s, "gelu_pytorch_tanh") == 0)
        *out = CLIP_ACT_GELU_TANH;
    else
        return sb_fail(err, SB_EMODEL, "%s: hidden_act '%.40s' is not supported", where, s);
    return SB_OK;
}

static int parse_tower(const cJSON *o, struct clip_tower_config *t, const char *where,
                       struct sb_err *err)
{
    int rc = get_int(o, "hidden_size", 1, MAX_HIDDEN, &t->hidden, where, err);
    if (!rc)
        rc = get_int(o, "intermediate_size", 1, 4 * MAX_HIDDEN, &t->intermediate, where, err);
    if (!rc)
        rc = get_int(o, "num_hidden_layers", 0, MAX_LAYERS, &t->layers, where, err);
    if (!rc)
        rc = get_int(o, "num_attention_heads", 1, MAX_HIDDEN, &t->heads, where, err);
    if (!rc)
        rc = get_act(o, &t->act, where, err);
    if (!rc)
        rc = get_float(o, "layer_norm_eps", 0.0f, 1.0f, &t->ln_eps, where, err);
    if (!rc && t->hidden % t->heads != 0)
        rc = sb_fail(err, SB_EMODEL, "%s: hidden_size %d is not a multiple of %d heads", where,
                     t->hidden, t->heads);
    return rc;
}

/* The sub-config: the legacy *_config_dict, when present, wins over *_config entirely
 * (CLIPConfig.__init__ rebuilds it with defaults and overwrites every key). */
static const cJSON *sub_config(const cJSON *root, const char *key, const char *legacy)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, legacy);
    if (cJSON_IsObject(j))
        return j;
    j = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsObject(j) ? j : NULL;
}

/* SiglipTextConfig / SiglipVisionConfig defaults (transformers configuration_siglip.py, the
 * google/siglip-base-patch16-224 shapes). */
static void siglip_defaults(struct clip_config *r)
{
    r->family = CLIP_FAMILY_SIGLIP;
    r->text = (struct clip_tower_config){ 768, 3072, 12, 12, CLIP_ACT_GELU_TANH, 1e-6f };
    r->vision = (struct clip_tower_config){ 768, 3072, 12, 12, CLIP_ACT_GELU_TANH, 1e-6f };
    r->vocab_size = 32000;
    r->max_pos = 64;
    r->pad_token_id = 1;
    r->eos_token_id = 2; /* SiglipTextConfig: unused by the model (it pools at the last token) */
    r->image_size = 224;
    r->patch_size = 16;
    r->vision_use_head = true;
}

/* model_type "siglip" (SiglipModel, and SigLIP 2's fixed-resolution checkpoints, which keep
 * SiglipModel's layout); "siglip2" is Siglip2Model (NaFlex), refused. */
static int parse_family(const cJSON *root, struct clip_config *r, struct sb_err *err)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *s = cJSON_IsString(mt) ? mt->valuestring : "clip";
    if (strcmp(s, "siglip") == 0) {
        siglip_defaults(r);
        return SB_OK;
    }
    if (strcmp(s, "siglip2") == 0)
        return sb_fail(err, SB_EMODEL,
                       "config.json: model_type 'siglip2' (NaFlex, variable resolution) is not "
                       "supported; SigLIP 2 fixed-resolution checkpoints (model_type 'siglip') "
                       "are");
    return SB_OK; /* clip, clip_vision_model, or absent: CLIP */
}

int clip_config_parse(const char *json, size_t len, struct clip_config *c, struct sb_err *err)
{
    struct clip_config r = {
        .family = CLIP_FAMILY_CLIP,
        .pad_token_id = 1,
        .text = { 512, 2048, 12, 8, CLIP_ACT_QUICK_GELU, 1e-5f },
        .vision = { 768, 3072, 12, 12, CLIP_ACT_QUICK_GELU, 1e-5f },
        .vocab_size = 49408,
        .max_pos = 77,
        .eos_token_id = 49407,
        .image_size = 224,
        .patch_size = 32,
        .num_channels = 3,
        .proj_dim = 512,
        .logit_scale_init = 2.6592f,
    };
    int rc = SB_OK;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        rc = sb_fail(err, SB_EFORMAT, "config.json: not a JSON object");
        goto out;
    }
    rc = parse_family(root, &r, err);
    if (rc)
        goto out;
    const cJSON *tc = sub_config(root, "text_config", "text_config_dict");
    const cJSON *vc = sub_config(root, "vision_config", "vision_config_dict");
    rc = parse_tower(tc, &r.text, "config.json text_config", err);
    if (!rc)
        rc = parse_tower(vc, &r.vision, "config.json vision_config", err);
    if (!rc)
        rc = get_int(tc, "vocab_size", 1, MAX_VOCAB, &r.vocab_size, "config.json text_config", err);
    if (!rc)
        rc = get_int(tc, "max_position_embeddings", 1, MAX_POS, &r.max_pos,
                     "config.json text_config", err);
    if (!rc)
        rc = get_int(tc, "eos_token_id", 0, MAX_VOCAB, &r.eos_token_id, "config.json text_config",
                     err);
    if (!rc)
        rc = get_int(vc, "image_size", 1, MAX_IMAGE, &r.image_size, "config.json vision_config",
                     err);
    if (!rc)
        rc = get_int(vc, "patch_size", 1, MAX_IMAGE, &r.patch_size, "config.json vision_config",
                     err);
    if (!rc)
        rc = get_int(vc, "num_channels", 3, 3, &r.num_channels, "config.json vision_config", err);
    if (!rc)
        rc = get_int(tc, "pad_token_id", 0, MAX_VOCAB, &r.pad_token_id, "config.json text_config",
                     err);
    if (!rc && r.family == CLIP_FAMILY_CLIP)
        rc = get_int(root, "projection_dim", 1, MAX_HIDDEN, &r.proj_dim, "config.json", err);
    if (!rc && r.family == CLIP_FAMILY_SIGLIP) {
        /* SigLIP has no projections: the image embedding is the attention-pooling head's output
         * (vision hidden_size); the text head maps to projection_size (default: text
         * hidden_size), which must match it for the two to share one space. */
        r.text_proj = r.text.hidden;
        rc = get_int(tc, "projection_size", 1, MAX_HIDDEN, &r.text_proj, "config.json text_config",
                     err);
        if (!rc)
            rc = get_bool(vc, "vision_use_head", &r.vision_use_head, "config.json vision_config",
                          err);
        r.proj_dim = r.vision.hidden;
        if (!rc && r.text_proj != r.vision.hidden)
            rc = sb_fail(err, SB_EMODEL,
                         "config.json: text projection_size %d differs from the vision "
                         "hidden_size %d",
                         r.text_proj, r.vision.hidden);
    }
    if (!rc)
        rc = get_float(root, "logit_scale_init_value", -100.0f, 100.0f, &r.logit_scale_init,
                       "config.json", err);
    if (rc)
        goto out;
    if (r.patch_size > r.image_size) {
        rc = sb_fail(err, SB_EMODEL, "config.json: patch_size %d is larger than image_size %d",
                     r.patch_size, r.image_size);
        goto out;
    }
    const cJSON *np = cJSON_GetObjectItemCaseSensitive(root, "_name_or_path");
    const char *name = r.family == CLIP_FAMILY_SIGLIP ? "siglip" : "clip";
    if (cJSON_IsString(np) && np->valuestring[0]) {
        const char *slash = strrchr(np->valuestring, '/');
        name = slash && slash[1] ? slash + 1 : np->valuestring;
    }
    size_t k = 0;
    for (; name[k] && k + 1 < sizeof(r.name); k++) {
        char ch = name[k];
        /* the id goes into the catalog and filenames: keep it to a safe alphabet */
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
        r.name[k] = ok ? ch : '_';
    }
    r.name[k] = '\0';
    *c = r;
out:
    cJSON_Delete(root);
    return rc;
}

/* size / crop_size: an int (legacy) or a dict, as transformers' get_size_dict reads them. */
static int get_size(const cJSON *o, const char *key, bool crop, struct clip_preproc_config *p,
                    struct sb_err *err)
{
    const char *where = "preprocessor_config.json";
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return SB_OK;
    int v = 0, h = 0, w = 0;
    if (cJSON_IsNumber(j)) {
        int rc = get_int(o, key, 1, MAX_IMAGE, &v, where, err);
        if (rc)
            return rc;
        if (crop) { /* get_size_dict(default_to_square=True) */
            p->crop_h = p->crop_w = v;
        } else { /* get_size_dict(default_to_square=False) */
            p->size_is_shortest_edge = true;
            p->size_short = v;
        }
        return SB_OK;
    }
    if (!cJSON_IsObject(j))
        return sb_fail(err, SB_EFORMAT, "%s: '%s' must be a number or an object", where, key);
    int rc = get_int(j, "shortest_edge", 1, MAX_IMAGE, &v, where, err);
    if (!rc)
        rc = get_int(j, "height", 1, MAX_IMAGE, &h, where, err);
    if (!rc)
        rc = get_int(j, "width", 1, MAX_IMAGE, &w, where, err);
    if (rc)
        return rc;
    if (h && w) {
        if (crop) {
            p->crop_h = h;
            p->crop_w = w;
        } else {
            p->size_is_shortest_edge = false;
            p->size_h = h;
            p->size_w = w;
        }
    } else if (v && !crop) {
        p->size_is_shortest_edge = true;
        p->size_short = v;
    } else {
        return sb_fail(err, SB_EFORMAT, "%s: '%s' needs height and width%s", where, key,
                       crop ? "" : " or shortest_edge");
    }
    return SB_OK;
}

static int get_triple(const cJSON *o, const char *key, float *out, struct sb_err *err)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j || cJSON_IsNull(j))
        return SB_OK;
    float tmp[3];
    if (cJSON_IsNumber(j)) {
        tmp[0] = tmp[1] = tmp[2] = (float)j->valuedouble;
    } else if (cJSON_IsArray(j) && cJSON_GetArraySize(j) == 3) {
        for (int i = 0; i < 3; i++) {
            const cJSON *e = cJSON_GetArrayItem(j, i);
            if (!cJSON_IsNumber(e))
                return sb_fail(err, SB_EFORMAT, "preprocessor_config.json: '%s' is not numeric",
                               key);
            tmp[i] = (float)e->valuedouble;
        }
    } else {
        return sb_fail(err, SB_EFORMAT, "preprocessor_config.json: '%s' must be 3 numbers", key);
    }
    for (int i = 0; i < 3; i++)
        if (!isfinite(tmp[i]) || fabsf(tmp[i]) > 1e6f)
            return sb_fail(err, SB_EFORMAT, "preprocessor_config.json: '%s' is out of range", key);
    memcpy(out, tmp, sizeof(tmp));
    return SB_OK;
}

int clip_preproc_parse(const char *json, size_t len, int image_size, struct clip_preproc_config *p,
                       struct sb_err *err)
{
    return clip_preproc_parse_family(json, len, image_size, CLIP_FAMILY_CLIP, p, err);
}

int clip_preproc_parse_family(const char *json, size_t len, int image_size, enum clip_family family,
                              struct clip_preproc_config *p, struct sb_err *err)
{
    /* CLIPImageProcessor.__init__ defaults (OPENAI_CLIP_MEAN / OPENAI_CLIP_STD). */
    struct clip_preproc_config r = {
        .do_resize = true,
        .do_center_crop = true,
        .do_rescale = true,
        .do_normalize = true,
        .size_is_shortest_edge = true,
        .size_short = 224,
        .crop_h = 224,
        .crop_w = 224,
        .resample = 3,
        .rescale = 1.0f / 255.0f,
        .mean = { 0.48145466f, 0.4578275f, 0.40821073f },
        .std = { 0.26862954f, 0.26130258f, 0.27577711f },
    };
    if (family == CLIP_FAMILY_SIGLIP) {
        /* SiglipImageProcessor: resize to a square (no crop), IMAGENET_STANDARD mean/std 0.5 */
        r.do_center_crop = false;
        r.size_is_shortest_edge = false;
        r.size_h = r.size_w = image_size;
        for (int i = 0; i < 3; i++)
            r.mean[i] = r.std[i] = 0.5f;
    }
    const char *where = "preprocessor_config.json";
    int rc = SB_OK;
    cJSON *root = NULL;
    if (!json) { /* no file: fit the model */
        r.size_short = r.crop_h = r.crop_w = image_size;
        r.size_h = r.size_w = image_size;
        *p = r;
        return SB_OK;
    }
    root = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(root)) {
        rc = sb_fail(err, SB_EFORMAT, "%s: not a JSON object", where);
        goto out;
    }
    rc = get_bool(root, "do_resize", &r.do_resize, where, err);
    if (!rc)
        rc = get_bool(root, "do_center_crop", &r.do_center_crop, where, err);
    if (!rc)
        rc = get_bool(root, "do_rescale", &r.do_rescale, where, err);
    if (!rc)
        rc = get_bool(root, "do_normalize", &r.do_normalize, where, err);
    if (!rc)
        rc = get_size(root, "size", false, &r, err);
    if (!rc)
        rc = get_size(root, "crop_size", true, &r, err);
    if (!rc)
        rc = get_int(root, "resample", 0, 5, &r.resample, where, err);
    if (!rc)
        rc = get_float(root, "rescale_factor", 0.0f, 1.0f, &r.rescale, where, err);
    if (!rc)
        rc = get_triple(root, "image_mean", r.mean, err);
    if (!rc)
        rc = get_triple(root, "image_std", r.std, err);
    if (rc)
        goto out;
    for (int i = 0; i < 3; i++)
        if (r.std[i] == 0.0f) {
            rc = sb_fail(err, SB_EFORMAT, "%s: image_std has a zero", where);
            goto out;
        }
    if (r.resample != 1 && r.resample != 2 && r.resample != 3) {
        rc = sb_fail(err, SB_EMODEL, "%s: resample %d is not supported (1, 2 or 3)", where,
                     r.resample);
        goto out;
    }
    /* The pixels that reach the model must be image_size x image_size. */
    int out_h, out_w;
    if (r.do_center_crop) {
        out_h = r.crop_h;
        out_w = r.crop_w;
    } else if (r.do_resize && !r.size_is_shortest_edge) {
        out_h = r.size_h;
        out_w = r.size_w;
    } else {
        rc = sb_fail(err, SB_EMODEL, "%s: without do_center_crop the output is not square", where);
        goto out;
    }
    if (out_h != image_size || out_w != image_size) {
        rc = sb_fail(err, SB_EMODEL, "%s: output %dx%d does not match the model's image_size %d",
                     where, out_w, out_h, image_size);
        goto out;
    }
    *p = r;
out:
    cJSON_Delete(root);
    return rc;
}
