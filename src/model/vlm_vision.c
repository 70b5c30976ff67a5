/* vlm_vision.c - the vision tower and projector of the vision-language models (vlm.h), as
 * transformers computes them:
 *   CLIP   (modeling_clip.py CLIPVisionTransformer): LLaVA takes hidden_states[vision_feature_
 *          layer] (no post_layernorm) and drops CLS for "default".
 *   SigLIP (modeling_siglip.py / modeling_idefics3.py): Idefics3 applies post_layernorm
 *          (last_hidden_state; for a full image the bucketised position ids are 0..N-1), LLaVA
 *          takes a hidden state.
 *   LLaVA projector  linear_1 -> act (projector_hidden_act) -> linear_2
 *   Idefics3 connector  pixel_shuffle(scale_factor) then modality_projection (no bias)
 * The tower is clip.c's engine on a struct clip_model that borrows the decoder's mapped files
 * (clip_vision_tower_load): the same kernels as the search models, in fp32 or bf16. The
 * projector's products go through the same clip_k_linear().
 *
 * Dimension legend: vlm_internal.h. Activations are row-major (L, C). Nothing in a forward pass
 * logs or does I/O. */
#include "vlm_internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <stdlib.h>
#include <string.h>

struct vlm_vscratch {
    const struct vlm_model *m;
    struct clip_ctx *cc; /* the tower's activations, one image at a time */
    bool bf16;           /* product inputs hold bf16 */
    void *in;            /* (rows, max(C, C*s*s)) product input: features for the projector */
    void *mid;           /* (rows, Ct) product input: LLaVA linear_1 + activation */
    float *out;          /* (rows, Ct) projector output */
};

/* Idefics3Connector.pixel_shuffle for a G x G grid of rows x (G*G, C) into the product input
 * out: output row (h2 * G/s + w2) is the s x s block at (h2, w2), laid out [hs][ws][c] (the
 * view / permute sequence of modeling_idefics3.py works out to this order). */
static void pixel_shuffle(void *out, bool bf16, const float *x, int G, int C, int s)
{
    int g = G / s;
    size_t at = 0;
    for (int h2 = 0; h2 < g; h2++)
        for (int w2 = 0; w2 < g; w2++)
            for (int hs = 0; hs < s; hs++)
                for (int ws = 0; ws < s; ws++) {
                    size_t src = (size_t)(h2 * s + hs) * G + (size_t)(w2 * s + ws);
                    clip_k_store_input(out, at, x + src * C, (size_t)C, bf16);
                    at += (size_t)C;
                }
}

int vlm_image_rows(struct vlm_vscratch *s, const float *pixels, float *out, struct sb_err *err)
{
    const struct vlm_model *m = s->m;
    const struct vlm_vision *v = &m->vis;
    struct clip_ctx *cc = s->cc;
    int C = v->C, Ct = lm_model_hidden_size(m->lm);
    int rc = clip_vision_states(cc, pixels, 1, v->post_ln, err); /* (L, C) in cc->x */
    if (rc)
        return rc;
    const float *feats = cc->x + (v->drop_cls ? (size_t)C : 0);
    if (m->arch == VLM_ARCH_IDEFICS3) {
        pixel_shuffle(s->in, s->bf16, feats, v->G, C, m->scale);
        clip_k_linear(cc, s->out, s->in, &m->proj1, m->R, CLIP_EPI_STORE, m->proj_act);
    } else {
        clip_k_store_input(s->in, 0, feats, (size_t)m->R * C, s->bf16);
        clip_k_linear(cc, s->mid, s->in, &m->proj1, m->R, CLIP_EPI_ACT, m->proj_act);
        clip_k_linear(cc, s->out, s->mid, &m->proj2, m->R, CLIP_EPI_STORE, m->proj_act);
    }
    rc = clip_pass_status(cc, err);
    if (!rc)
        memcpy(out, s->out, (size_t)m->R * Ct * sizeof(float));
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Scratch */

static void *alloc_rows(size_t a, size_t b, size_t esize, bool *ok)
{
    size_t n;
    if (!*ok || !sb_mul3_size(a, b, esize, &n)) {
        *ok = false;
        return NULL;
    }
    void *p = calloc(1, n ? n : 1); /* zeroed: padded product rows are read, never used */
    if (!p)
        *ok = false;
    return p;
}

int vlm_vscratch_new(const struct vlm_model *m, struct sb_pool *pool, struct vlm_vscratch **out,
                     struct sb_err *err)
{
    const struct vlm_vision *v = &m->vis;
    struct vlm_vscratch *s = calloc(1, sizeof(*s));
    if (!s)
        return sb_fail(err, SB_ENOMEM, "no memory for the vision scratch");
    s->m = m;
    int rc = clip_ctx_new(v->enc, 1, pool, &s->cc, err);
    if (rc) {
        vlm_vscratch_free(s);
        return rc;
    }
    s->bf16 = clip_model_precision(v->enc) == CLIP_PRECISION_BF16;
    size_t esize = s->bf16 ? sizeof(uint16_t) : sizeof(float);
    size_t rows = (size_t)clip_bf16_rows(m->R), C = (size_t)v->C, s2 = (size_t)m->scale;
    size_t Ct = (size_t)lm_model_hidden_size(m->lm);
    size_t width = m->arch == VLM_ARCH_IDEFICS3 ? C * s2 * s2 : C;
    bool ok = true;
    s->in = alloc_rows(rows, width, esize, &ok);
    s->mid = alloc_rows(rows, Ct, esize, &ok);
    s->out = alloc_rows(rows, Ct, sizeof(float), &ok);
    if (!ok) {
        vlm_vscratch_free(s);
        return sb_fail(err, SB_ENOMEM, "no memory for the vision tower's activations");
    }
    *out = s;
    return SB_OK;
}

void vlm_vscratch_free(struct vlm_vscratch *s)
{
    if (!s)
        return;
    clip_ctx_free(s->cc);
    free(s->in);
    free(s->mid);
    free(s->out);
    free(s);
}
