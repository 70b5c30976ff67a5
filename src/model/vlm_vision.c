/* vlm_vision.c - the vision tower and projector of the vision-language models (vlm.h), as
 * transformers computes them:
 *   CLIP   (modeling_clip.py CLIPVisionTransformer): conv patches (no bias) + CLS, positions,
 *          pre_layrnorm, pre-LN encoder layers; LLaVA takes hidden_states[vision_feature_layer]
 *          (no post_layernorm) and drops CLS for "default".
 *   SigLIP (modeling_siglip.py / modeling_idefics3.py): conv patches with bias, positions (for
 *          a full Idefics3 image the bucketised position ids are 0..N-1), encoder layers;
 *          Idefics3 applies post_layernorm (last_hidden_state), LLaVA takes a hidden state.
 *   LLaVA projector  linear_1 -> act (projector_hidden_act) -> linear_2
 *   Idefics3 connector  pixel_shuffle(scale_factor) then modality_projection (no bias)
 * Weights stay in their file dtype: a product widens 64 weight rows at a time into the worker's
 * scratch and multiplies them with cblas_sgemm (the rows of a tower pass are many, so the
 * widening is cheap next to the product).
 *
 * Dimension legend: vlm_internal.h. Activations are row-major (L, C). Nothing in a forward pass
 * allocates, logs or does I/O. */
#include "vlm_internal.h"

#include "shoebox/err.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define VIT_CHUNK 64 /* weight rows per work item */

struct vlm_vscratch {
    const struct vlm_model *m;
    struct sb_pool *pool;
    int n_workers;
    float *x;               /* (L, C) residual stream */
    float *h;               /* (L, max(C, 3pp)) normed input / unfolded patches */
    float *q, *k, *v, *att; /* (L, C) */
    float *mlp;             /* (L, max(F, C*s*s, Ct)) */
    float *wbuf;            /* (n_workers, VIT_CHUNK * Kmax) widened weight rows */
    size_t wbuf_per_worker;
    float *scores; /* (n_workers, L * L) */
};

/* ------------------------------------------------------------------------------------------ */
/* Kernels */

static void act_inplace(float *x, size_t n, enum clip_act act)
{
    switch (act) {
    case CLIP_ACT_QUICK_GELU:
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
        break;
    case CLIP_ACT_GELU:
        for (size_t i = 0; i < n; i++)
            x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        break;
    case CLIP_ACT_GELU_TANH:
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            x[i] = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
        }
        break;
    }
}

/* out(T,N) = in(T,K) @ W^T + b (then act when act_on), W (N,K) row-major as nn.Linear stores
 * it, in its file dtype. residual: out += instead of out =. Work items are VIT_CHUNK weight
 * rows. */
struct lin_job {
    struct vlm_vscratch *s;
    float *out;
    const float *in;
    const struct lm_mat *W;
    int T;
    bool residual, act_on;
    enum clip_act act;
};

static void linear_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct lin_job *j = arg;
    const struct lm_mat *W = j->W;
    int N = W->n_out, K = W->n_in;
    for (size_t item = begin; item < end; item++) {
        int n0 = (int)item * VIT_CHUNK;
        int n1 = n0 + VIT_CHUNK < N ? n0 + VIT_CHUNK : N;
        const float *w = (const float *)W->w + (size_t)n0 * K;
        if (W->dt != ST_F32) {
            float *buf = j->s->wbuf + (size_t)worker * j->s->wbuf_per_worker;
            lm_widen_rows(buf, W->w, W->dt, K, n0, n1);
            w = buf;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, n1 - n0, K, 1.0f, j->in, K, w, K,
                    j->residual ? 1.0f : 0.0f, j->out + n0, N);
        for (int t = 0; t < j->T; t++) {
            float *o = j->out + (size_t)t * N;
            if (W->b)
                for (int n = n0; n < n1; n++)
                    o[n] += W->b[n];
            if (j->act_on)
                act_inplace(o + n0, (size_t)(n1 - n0), j->act);
        }
    }
}

static void linear(struct vlm_vscratch *s, float *out, const float *in, const struct lm_mat *W,
                   int T, bool residual)
{
    struct lin_job j = { s, out, in, W, T, residual, false, CLIP_ACT_GELU };
    sb_pool_for(s->pool, ((size_t)W->n_out + VIT_CHUNK - 1) / VIT_CHUNK, 1, linear_task, &j);
}

static void linear_act(struct vlm_vscratch *s, float *out, const float *in, const struct lm_mat *W,
                       int T, enum clip_act act)
{
    struct lin_job j = { s, out, in, W, T, false, true, act };
    sb_pool_for(s->pool, ((size_t)W->n_out + VIT_CHUNK - 1) / VIT_CHUNK, 1, linear_task, &j);
}

/* nn.LayerNorm per row of (T, C): biased variance, eps inside the sqrt; out may equal in. */
struct ln_job {
    float *out;
    const float *in, *w, *b;
    int C;
    float eps;
};

static void ln_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct ln_job *j = arg;
    (void)worker;
    for (size_t r = begin; r < end; r++) {
        const float *x = j->in + r * (size_t)j->C;
        float *o = j->out + r * (size_t)j->C;
        float mean = 0.0f;
        for (int i = 0; i < j->C; i++)
            mean += x[i];
        mean /= (float)j->C;
        float var = 0.0f;
        for (int i = 0; i < j->C; i++) {
            float d = x[i] - mean;
            var += d * d;
        }
        var /= (float)j->C;
        float inv = 1.0f / sqrtf(var + j->eps);
        for (int i = 0; i < j->C; i++)
            o[i] = (x[i] - mean) * inv * j->w[i] + j->b[i];
    }
}

static void layernorm(struct vlm_vscratch *s, float *out, const float *in, const float *w,
                      const float *b, int T)
{
    struct ln_job j = { out, in, w, b, s->m->vis.C, s->m->vis.eps };
    sb_pool_for(s->pool, (size_t)T, 8, ln_task, &j);
}

/* Bidirectional attention per head h: att[:, h*E..] = softmax(q_h k_h^T / sqrt(E)) v_h, with
 * q, k, v (L, C). One task = one head; two sgemm calls on the strided layout (lda = C). */
struct att_job {
    struct vlm_vscratch *s;
    int L;
};

static void attention_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct att_job *j = arg;
    const struct vlm_vision *v = &j->s->m->vis;
    int L = j->L, C = v->C, E = C / v->H;
    float scale = 1.0f / sqrtf((float)E);
    float *sc = j->s->scores + (size_t)worker * (size_t)L * (size_t)L;
    for (size_t h = begin; h < end; h++) {
        size_t col = h * (size_t)E;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, E, scale, j->s->q + col, C,
                    j->s->k + col, C, 0.0f, sc, L);
        for (int i = 0; i < L; i++) {
            float *r = sc + (size_t)i * L;
            float mx = -INFINITY;
            for (int t = 0; t < L; t++)
                mx = r[t] > mx ? r[t] : mx;
            float sum = 0.0f;
            for (int t = 0; t < L; t++) {
                r[t] = expf(r[t] - mx);
                sum += r[t];
            }
            float inv = 1.0f / sum;
            for (int t = 0; t < L; t++)
                r[t] *= inv;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, E, L, 1.0f, sc, L, j->s->v + col,
                    C, 0.0f, j->s->att + col, C);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Forward */

/* One pre-LN encoder layer (CLIPEncoderLayer / SiglipEncoderLayer) on x (L, C). */
static void encoder_layer(struct vlm_vscratch *s, const struct vlm_vit_layer *w, int L)
{
    const struct vlm_vision *v = &s->m->vis;
    layernorm(s, s->h, s->x, w->ln1_w, w->ln1_b, L);
    linear(s, s->q, s->h, &w->q, L, false);
    linear(s, s->k, s->h, &w->k, L, false);
    linear(s, s->v, s->h, &w->v, L, false);
    struct att_job aj = { s, L };
    sb_pool_for(s->pool, (size_t)v->H, 1, attention_task, &aj);
    linear(s, s->x, s->att, &w->o, L, true); /* x += out_proj(attn) */
    layernorm(s, s->h, s->x, w->ln2_w, w->ln2_b, L);
    linear_act(s, s->mlp, s->h, &w->fc1, L, v->act); /* (L, F) */
    linear(s, s->x, s->mlp, &w->fc2, L, true);       /* x += fc2(act(fc1)) */
}

/* pixels (3, S, S) -> patches (N, 3*p*p) ordered (channel, row, column) like the flattened
 * Conv2d kernel; pixels beyond G*p are dropped as the strided conv drops them. */
static void unfold_patches(float *patches, const float *pixels, int S, int p, int G)
{
    size_t K = 3 * (size_t)p * (size_t)p;
    for (int gy = 0; gy < G; gy++)
        for (int gx = 0; gx < G; gx++) {
            float *o = patches + ((size_t)gy * G + (size_t)gx) * K;
            for (int ch = 0; ch < 3; ch++)
                for (int y = 0; y < p; y++) {
                    const float *src =
                        pixels + ((size_t)ch * S + (size_t)gy * p + (size_t)y) * S + (size_t)gx * p;
                    memcpy(o, src, (size_t)p * sizeof(float));
                    o += p;
                }
        }
}

/* Idefics3Connector.pixel_shuffle for a G x G grid of rows x (G*G, C): output row
 * (h2 * G/s + w2) is the s x s block at (h2, w2), laid out [hs][ws][c] (the view / permute
 * sequence of modeling_idefics3.py works out to this order). */
static void pixel_shuffle(float *out, const float *x, int G, int C, int s)
{
    int g = G / s;
    for (int h2 = 0; h2 < g; h2++)
        for (int w2 = 0; w2 < g; w2++) {
            float *o = out + ((size_t)h2 * g + (size_t)w2) * (size_t)C * s * s;
            for (int hs = 0; hs < s; hs++)
                for (int ws = 0; ws < s; ws++) {
                    size_t src = (size_t)(h2 * s + hs) * G + (size_t)(w2 * s + ws);
                    memcpy(o, x + src * C, (size_t)C * sizeof(float));
                    o += C;
                }
        }
}

void vlm_image_rows(struct vlm_vscratch *s, const float *pixels, float *out)
{
    const struct vlm_model *m = s->m;
    const struct vlm_vision *v = &m->vis;
    int C = v->C, N = v->N, L = v->L;
    unfold_patches(s->h, pixels, v->S, v->p, v->G);
    linear(s, s->att, s->h, &v->patch, N, false); /* (N, C) patch embeddings */
    int off = v->cls ? 1 : 0;
    if (v->cls)
        memcpy(s->x, v->cls, (size_t)C * sizeof(float));
    memcpy(s->x + (size_t)off * C, s->att, (size_t)N * C * sizeof(float));
    for (size_t i = 0; i < (size_t)L * C; i++)
        s->x[i] += v->pos[i];
    if (v->pre_w)
        layernorm(s, s->x, s->x, v->pre_w, v->pre_b, L);
    for (int l = 0; l < v->run_layers; l++)
        encoder_layer(s, &v->layers[l], L);
    if (v->post_w)
        layernorm(s, s->x, s->x, v->post_w, v->post_b, L);
    const float *feats = s->x + (v->drop_cls ? (size_t)C : 0);
    int rows = v->drop_cls ? L - 1 : L;
    if (m->arch == VLM_ARCH_IDEFICS3) {
        pixel_shuffle(s->mlp, feats, v->G, C, m->scale);
        linear(s, out, s->mlp, &m->proj1, m->R, false);
    } else {
        linear_act(s, s->mlp, feats, &m->proj1, rows, m->proj_act);
        linear(s, out, s->mlp, &m->proj2, rows, false);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Scratch */

static float *alloc_f(size_t a, size_t b, bool *ok)
{
    size_t n;
    if (!*ok || !sb_mul3_size(a, b, sizeof(float), &n)) {
        *ok = false;
        return NULL;
    }
    float *p = calloc(1, n ? n : 1);
    if (!p)
        *ok = false;
    return p;
}

static size_t zmax(size_t a, size_t b)
{
    return a > b ? a : b;
}

int vlm_vscratch_new(const struct vlm_model *m, struct sb_pool *pool, struct vlm_vscratch **out,
                     struct sb_err *err)
{
    const struct vlm_vision *v = &m->vis;
    struct vlm_vscratch *s = calloc(1, sizeof(*s));
    if (!s)
        return sb_fail(err, SB_ENOMEM, "no memory for the vision scratch");
    s->m = m;
    s->pool = pool;
    s->n_workers = pool ? sb_pool_size(pool) + 1 : 1;
    size_t L = (size_t)v->L, C = (size_t)v->C, K = 3 * (size_t)v->p * (size_t)v->p;
    size_t Ct = (size_t)lm_model_hidden_size(m->lm);
    size_t wide = zmax(zmax((size_t)v->F, C * (size_t)m->scale * (size_t)m->scale), Ct);
    size_t kmax = zmax(zmax(K, C), zmax(wide, Ct));
    s->wbuf_per_worker = VIT_CHUNK * kmax;
    bool ok = true;
    s->x = alloc_f(L, C, &ok);
    s->h = alloc_f(L, zmax(C, K), &ok);
    s->q = alloc_f(L, C, &ok);
    s->k = alloc_f(L, C, &ok);
    s->v = alloc_f(L, C, &ok);
    s->att = alloc_f(L, C, &ok);
    s->mlp = alloc_f(L, wide, &ok);
    s->wbuf = alloc_f((size_t)s->n_workers, s->wbuf_per_worker, &ok);
    s->scores = alloc_f((size_t)s->n_workers, L * L, &ok);
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
    free(s->x);
    free(s->h);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->mlp);
    free(s->wbuf);
    free(s->scores);
    free(s);
}
