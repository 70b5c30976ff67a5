/* siglip.c - SigLIP forward passes, as transformers' modeling_siglip.py computes SiglipModel's
 * get_image_features / get_text_features, followed by L2 normalisation. The kernels are clip.c's
 * (SiglipEncoderLayer is CLIPEncoderLayer); what differs is around the encoder:
 *   vision: patch conv WITH bias, position embeddings for the N patches (no class token, no
 *           pre-layernorm), post_layernorm on every token, then the attention-pooling head.
 *   text:   ids padded to P = max_position_embeddings, NON-causal attention over all of them
 *           (no attention mask: the model was trained with pad tokens visible), final layer
 *           norm, pooled at the LAST position, then the `head` linear (with bias).
 *
 * Dimension legend (as clip.c): B images, S side, p patch, G = S/p (remainder dropped, as the
 * "valid" conv), N = G*G tokens per image, T = B*N rows, C hidden, F intermediate, H heads,
 * E = C/H head size, P text positions, D embedding size (= vision C). */
#include "internal.h"

#include "shoebox/bpe.h"
#include "shoebox/err.h"
#include "shoebox/pool.h"
#include "shoebox/spm.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Attention-pooling head */

/* The probe's attention over each image's tokens, per (image b, head h): s_j = q_h . k_jh *
 * E^-0.5, softmax, o_h = sum_j s_j v_jh. kv is (B*N, 2C) [k | v]; out (B, C) a product input. */
struct pool_job {
    void *out;
    bool bf16;
    const float *q; /* (C) the projected probe */
    const float *kv;
    float *scratch;
    size_t per_worker;
    int N, C, H;
};

static void pool_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct pool_job *j = arg;
    int N = j->N, C = j->C, E = C / j->H;
    float scale = 1.0f / sqrtf((float)E);
    float *s = j->scratch + (size_t)worker * j->per_worker; /* (N) */
    float *o = s + N;                                       /* (E) */
    for (size_t item = begin; item < end; item++) {
        size_t b = item / (size_t)j->H, h = item % (size_t)j->H;
        const float *k = j->kv + b * (size_t)N * 2 * C + h * (size_t)E;
        cblas_sgemv(CblasRowMajor, CblasNoTrans, N, E, scale, k, 2 * C, j->q + h * (size_t)E, 1,
                    0.0f, s, 1);
        float mx = -INFINITY, sum = 0.0f;
        for (int t = 0; t < N; t++)
            mx = s[t] > mx ? s[t] : mx;
        for (int t = 0; t < N; t++) {
            s[t] = expf(s[t] - mx);
            sum += s[t];
        }
        for (int t = 0; t < N; t++)
            s[t] /= sum;
        cblas_sgemv(CblasRowMajor, CblasTrans, N, E, 1.0f, k + C, 2 * C, s, 1, 0.0f, o, 1);
        clip_k_store_input(j->out, b * (size_t)C + h * (size_t)E, o, (size_t)E, j->bf16);
    }
}

/* SiglipMultiheadAttentionPoolingHead on x (B*N, C) (after post_layernorm) into out (B, C):
 *   h = MHA(probe, x, x); out = h + mlp(layernorm(h)) */
static void map_head(struct clip_ctx *c, const float *x, int B, int N, float *out)
{
    const struct clip_model *m = c->m;
    const struct siglip_head *hd = &m->vision.head;
    const struct clip_tower_config *tc = &m->cfg.vision;
    int C = tc->hidden;
    bool bf16 = c->bf16 != NULL;
    clip_k_store_input(c->a, 0, hd->probe, (size_t)C, bf16);
    clip_k_linear(c, c->qkv, c->a, &hd->q, 1, CLIP_EPI_STORE, tc->act); /* q (1, C) */
    memcpy(c->head_q, c->qkv, (size_t)C * sizeof(float));
    const void *in = x;
    if (bf16) {
        clip_k_store_input(c->a, 0, x, (size_t)B * N * C, true);
        in = c->a;
    }
    clip_k_linear(c, c->qkv, in, &hd->kv, B * N, CLIP_EPI_STORE, tc->act); /* (B*N, 2C) */
    size_t per = c->max_len * (c->max_len + c->max_e);
    struct pool_job j = { c->a, bf16, c->head_q, c->qkv, c->att, per, N, C, tc->heads };
    clip_k_for(c, (size_t)B * (size_t)tc->heads, 1, pool_task, &j);
    clip_k_linear(c, c->tmp, c->a, &hd->out, B, CLIP_EPI_STORE, tc->act); /* h (B, C) */
    clip_k_layernorm(c, c->a, true, c->tmp, hd->ln_w, hd->ln_b, B, C, tc->ln_eps);
    clip_k_linear(c, c->mlp, c->a, &hd->fc1, B, CLIP_EPI_ACT, tc->act);
    clip_k_linear(c, c->tmp, c->mlp, &hd->fc2, B, CLIP_EPI_RESIDUAL, tc->act); /* h += mlp */
    memcpy(out, c->tmp, (size_t)B * C * sizeof(float));
}

/* ------------------------------------------------------------------------------------------ */
/* Towers */

/* SiglipVisionEmbeddings + the first n_layers SiglipEncoderLayers (+ post_layernorm) on c->x,
 * (B*N, C). */
static void vision_tokens(struct clip_ctx *c, const float *pixels, int B, int n_layers,
                          bool post_ln)
{
    const struct clip_model *m = c->m;
    const struct clip_config *cfg = &m->cfg;
    const struct clip_vision_weights *w = &m->vision;
    const struct clip_tower_config *tc = &cfg->vision;
    int S = cfg->image_size, p = cfg->patch_size, G = S / p, N = G * G, C = tc->hidden;
    clip_k_unfold_patches(c->a, c->bf16 != NULL, pixels, B, S, p, G);
    clip_k_linear(c, c->x, c->a, &w->patch, B * N, CLIP_EPI_STORE, tc->act); /* conv + bias */
    for (int b = 0; b < B; b++)
        for (int i = 0; i < N; i++) {
            float *o = c->x + ((size_t)b * N + (size_t)i) * C;
            const float *pos = w->pos_emb + (size_t)i * C;
            for (int k = 0; k < C; k++)
                o[k] += pos[k];
        }
    for (int l = 0; l < n_layers; l++)
        clip_k_encoder_layer(c, &w->layers[l], tc, c->x, B, N, false);
    if (post_ln)
        clip_k_layernorm(c, c->x, false, c->x, w->post_ln_w, w->post_ln_b, B * N, C, tc->ln_eps);
}

void siglip_vision_states(struct clip_ctx *c, const float *pixels, int B, bool post_ln)
{
    vision_tokens(c, pixels, B, c->m->cfg.vision.layers, post_ln);
}

void siglip_vision_shape(const struct clip_model *m, int *n_tokens, int *hidden)
{
    int G = m->cfg.image_size / m->cfg.patch_size;
    *n_tokens = G * G;
    *hidden = m->cfg.vision.hidden;
}

int siglip_vision_forward(struct clip_ctx *c, const float *pixels, int B, int n_layers,
                          bool post_ln, float *tokens, float *pooled, struct sb_err *err)
{
    const struct clip_model *m = c->m;
    int L = m->cfg.vision.layers;
    if (m->cfg.family != CLIP_FAMILY_SIGLIP || !(m->towers & CLIP_TOWER_VISION))
        return sb_fail(err, SB_EMODEL, "siglip vision: not a SigLIP model with a vision tower");
    if (B < 1 || B > c->max_batch)
        return sb_fail(err, SB_EINVAL, "siglip vision: batch %d is not in [1, %d]", B,
                       c->max_batch);
    if (n_layers < 0)
        n_layers = L;
    if (n_layers > L)
        return sb_fail(err, SB_EINVAL, "siglip vision: %d layers of %d", n_layers, L);
    if (pooled && (!m->vision.has_head || n_layers != L || !post_ln))
        return sb_fail(err, SB_EMODEL,
                       "siglip vision: the pooled output needs the whole tower "
                       "and the attention-pooling head");
    int N, C;
    siglip_vision_shape(m, &N, &C);
    c->err = (struct sb_err){ 0 };
    vision_tokens(c, pixels, B, n_layers, post_ln);
    if (tokens)
        memcpy(tokens, c->x, (size_t)B * N * C * sizeof(float));
    if (pooled)
        map_head(c, c->x, B, N, pooled);
    return clip_pass_status(c, err);
}

int siglip_embed_images(struct clip_ctx *c, const float *pixels, int B, float *out,
                        struct sb_err *err)
{
    const struct clip_model *m = c->m;
    if (!m->vision.has_head)
        return sb_fail(err, SB_EMODEL,
                       "embed images: the SigLIP vision tower has no head "
                       "(vision_use_head false)");
    int rc = siglip_vision_forward(c, pixels, B, -1, true, NULL, out, err);
    if (rc)
        return rc;
    for (int b = 0; b < B; b++)
        clip_k_l2_normalize(out + (size_t)b * m->cfg.proj_dim, m->cfg.proj_dim);
    return SB_OK;
}

/* SiglipTextTransformer + head. ids[0..n) padded to P with the pad id; out (D). */
struct text_pass {
    const int32_t *ids;
    int n;
    int32_t pad;
    float *out;
};

struct embed_job {
    struct clip_ctx *c;
    const struct text_pass *p;
};

/* SiglipTextEmbeddings: token + position, positions [begin, end) (past n: the pad id). */
static void text_embed_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct embed_job *j = arg;
    const struct clip_text_weights *w = &j->c->m->text;
    size_t C = (size_t)j->c->m->cfg.text.hidden;
    (void)worker;
    for (size_t i = begin; i < end; i++) {
        int32_t id = (int)i < j->p->n ? j->p->ids[i] : j->p->pad;
        float *o = j->c->x + i * C;
        if (w->tok_emb)
            memcpy(o, w->tok_emb + (size_t)id * C, C * sizeof(float));
        else
            clip_tensor_row_f32(w->tok_emb_t, (size_t)id, C, o);
        const float *pe = w->pos_emb + i * C;
        for (size_t k = 0; k < C; k++)
            o[k] += pe[k];
    }
}

static void text_pass(struct clip_ctx *c, void *arg)
{
    const struct text_pass *p = arg;
    const struct clip_model *m = c->m;
    const struct clip_text_weights *w = &m->text;
    const struct clip_tower_config *tc = &m->cfg.text;
    int C = tc->hidden, P = m->cfg.max_pos, D = m->cfg.proj_dim;
    struct embed_job ej = { c, p };
    clip_k_for(c, (size_t)P, 1, text_embed_task, &ej);
    for (int l = 0; l < tc->layers; l++)
        clip_k_encoder_layer(c, &w->layers[l], tc, c->x, 1, P, false);
    /* pooled_output = final_layer_norm(last_hidden_state)[:, -1, :] */
    clip_k_layernorm(c, c->a, true, c->x + (size_t)(P - 1) * C, w->final_ln_w, w->final_ln_b, 1, C,
                     tc->ln_eps);
    clip_k_linear(c, c->qkv, c->a, &w->proj, 1, CLIP_EPI_STORE, tc->act);
    if (c->rank == 0) {
        memcpy(p->out, c->qkv, (size_t)D * sizeof(float));
        clip_k_l2_normalize(p->out, D);
    }
}

void siglip_text_forward(struct clip_ctx *c, const int32_t *ids, int n, float *out)
{
    const struct clip_model *m = c->m;
    int32_t pad = m->cfg.pad_token_id;
    if (m->spm)
        pad = spm_pad_id(m->spm);
    else if (m->bpe && bpe_token_id(m->bpe, "<pad>") >= 0)
        pad = bpe_token_id(m->bpe, "<pad>");
    struct text_pass p = { ids, n, pad, out };
    clip_k_team_run(c, text_pass, &p);
}
