/* clip.c - CLIP forward passes, as transformers' modeling_clip.py computes CLIPModel's
 * get_image_features / get_text_features, followed by L2 normalisation.
 *
 * Dimension legend:
 *   B  images in a batch          S  image side (pixels)     p  patch side
 *   G  patches per side = S / p (the conv drops any remainder)
 *   N  patches per image = G*G    L  tokens per sequence (N+1 for images: CLS + patches)
 *   T  rows of activations = B*L  C  hidden size             F  MLP intermediate size
 *   H  attention heads            E  head size = C / H       D  projection_dim
 * Activations are row-major (T, C): row b*L + i is token i of sequence b.
 *
 * Threads: cblas_sgemm (OpenBLAS, its own threads) does the matrix products; attention,
 * layer norms and activations are split over the ctx's sb_pool. They alternate and never
 * overlap. Nothing in a forward pass allocates, logs or does I/O. */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/pool.h"
#include "shoebox/tokenizer.h"
#include "shoebox/util.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Scratch for one thread's forward passes, allocated once for the largest batch. */
struct clip_ctx {
    const struct clip_model *m;
    struct sb_pool *pool;
    int max_batch;
    int n_workers;  /* sb_pool_size(pool) + 1: the caller takes part too */
    size_t max_len; /* longest sequence (L or P) */
    float *x;       /* (T, C) the residual stream */
    float *h;       /* (T, C) layer-norm output, then attention output */
    float *qkv;     /* (T, 3C) */
    float *tmp;     /* (T, C) sublayer output before the residual add; patch embeddings */
    float *mlp;     /* (T, F) */
    float *patches; /* (B*N, 3*p*p) unfolded image patches */
    float *pooled;  /* (B, C) CLS rows / EOS row */
    float *scores;  /* (n_workers, max_len) attention probabilities, one row per worker */
    int32_t *ids;   /* (P) token ids of the last text */
};

/* ------------------------------------------------------------------------------------------ */
/* Kernels */

/* out(T,N) = in(T,K) @ W^T + b. W is (N,K) row-major, as PyTorch's nn.Linear stores it.
 * This is the one place a matrix product happens: the precision switch (bf16 via oneDNN)
 * belongs here. Today every precision computes in fp32. */
static void linear(float *out, const float *in, const struct clip_linear *l, int T)
{
    int N = l->n_out, K = l->n_in;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K, 1.0f, in, K, l->w, K, 0.0f, out,
                N);
    if (!l->b)
        return;
    for (int t = 0; t < T; t++) {
        float *o = out + (size_t)t * N;
        for (int n = 0; n < N; n++)
            o[n] += l->b[n];
    }
}

static void add_inplace(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}

/* Eight independent partial sums so the compiler can vectorise without -ffast-math. */
static float dot(const float *a, const float *b, int n)
{
    float s[8] = { 0 };
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            s[k] += a[i + k] * b[i + k];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++)
        r += a[i] * b[i];
    return r;
}

/* nn.LayerNorm over rows [r0, r1) of (T, C): biased variance, eps inside the sqrt.
 * out may equal in. */
static void layernorm_rows(float *out, const float *in, const float *w, const float *b, int C,
                           float eps, size_t r0, size_t r1)
{
    for (size_t r = r0; r < r1; r++) {
        const float *x = in + r * (size_t)C;
        float *o = out + r * (size_t)C;
        float mean = 0.0f;
        for (int i = 0; i < C; i++)
            mean += x[i];
        mean /= (float)C;
        float var = 0.0f;
        for (int i = 0; i < C; i++) {
            float d = x[i] - mean;
            var += d * d;
        }
        var /= (float)C;
        float inv = 1.0f / sqrtf(var + eps);
        for (int i = 0; i < C; i++)
            o[i] = (x[i] - mean) * inv * w[i] + b[i];
    }
}

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
    layernorm_rows(j->out, j->in, j->w, j->b, j->C, j->eps, begin, end);
}

static void layernorm(struct clip_ctx *c, float *out, const float *in, const float *w,
                      const float *b, int T, int C, float eps)
{
    struct ln_job j = { out, in, w, b, C, eps };
    sb_pool_for(c->pool, (size_t)T, 16, ln_task, &j);
}

/* Activations (transformers.activations): quick_gelu x*sigmoid(1.702x) (CLIP's original),
 * gelu with the exact erf, and the tanh approximation (gelu_new / gelu_pytorch_tanh). The
 * switch is outside the element loops. */
static void act_range(float *x, size_t n, enum clip_act act)
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

struct act_job {
    float *x;
    size_t row;
    enum clip_act act;
};

static void act_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct act_job *j = arg;
    (void)worker;
    act_range(j->x + begin * j->row, (end - begin) * j->row, j->act);
}

static void activation(struct clip_ctx *c, float *x, int T, int F, enum clip_act act)
{
    struct act_job j = { x, (size_t)F, act };
    sb_pool_for(c->pool, (size_t)T, 8, act_task, &j);
}

/* Multi-head self-attention core (CLIPAttention between the projections): for each sequence
 * b and head h, out_i = sum_j softmax_j(q_i . k_j * E^-0.5) v_j, with j <= i when causal.
 * qkv is (B*L, 3C) laid out [q | k | v], head h at columns h*E of each; out is (B*L, C).
 * Works on the strided layout directly: no transposes. One task = one (b, h) pair. */
struct att_job {
    float *out;
    const float *qkv;
    float *scores; /* (n_workers, max_len) */
    size_t max_len;
    int L, C, H;
    bool causal;
};

static void attention_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct att_job *j = arg;
    int L = j->L, C = j->C, E = C / j->H;
    size_t row = 3 * (size_t)C;
    float scale = 1.0f / sqrtf((float)E);
    float *s = j->scores + (size_t)worker * j->max_len;
    for (size_t item = begin; item < end; item++) {
        size_t b = item / (size_t)j->H, h = item % (size_t)j->H;
        const float *base = j->qkv + b * (size_t)L * row + h * (size_t)E;
        for (int i = 0; i < L; i++) {
            const float *q = base + (size_t)i * row;
            int n = j->causal ? i + 1 : L;
            float mx = -INFINITY;
            for (int t = 0; t < n; t++) {
                s[t] = dot(q, base + (size_t)t * row + C, E) * scale;
                mx = s[t] > mx ? s[t] : mx;
            }
            float sum = 0.0f;
            for (int t = 0; t < n; t++) {
                s[t] = expf(s[t] - mx);
                sum += s[t];
            }
            float inv = 1.0f / sum;
            float *o = j->out + (b * (size_t)L + (size_t)i) * (size_t)C + h * (size_t)E;
            memset(o, 0, (size_t)E * sizeof(float));
            for (int t = 0; t < n; t++) {
                const float *v = base + (size_t)t * row + 2 * (size_t)C;
                float pt = s[t] * inv;
                for (int e = 0; e < E; e++)
                    o[e] += pt * v[e];
            }
        }
    }
}

static void attention(struct clip_ctx *c, float *out, const float *qkv, int B, int L, int C, int H,
                      bool causal)
{
    struct att_job j = { out, qkv, c->scores, c->max_len, L, C, H, causal };
    sb_pool_for(c->pool, (size_t)B * (size_t)H, 1, attention_task, &j);
}

static void l2_normalize(float *x, int D)
{
    float ss = 0.0f;
    for (int i = 0; i < D; i++)
        ss += x[i] * x[i];
    float inv = ss > 0.0f ? 1.0f / sqrtf(ss) : 0.0f;
    for (int i = 0; i < D; i++)
        x[i] *= inv;
}

/* ------------------------------------------------------------------------------------------ */
/* Transformer */

/* One pre-LN block, as HF CLIPEncoderLayer computes it. x is (T, C), updated in place. */
static void encoder_layer(struct clip_ctx *c, const struct clip_layer *w,
                          const struct clip_tower_config *tc, float *x, int B, int L, bool causal)
{
    int T = B * L, C = tc->hidden, F = tc->intermediate;
    layernorm(c, c->h, x, w->ln1_w, w->ln1_b, T, C, tc->ln_eps);
    linear(c->qkv, c->h, &w->qkv, T); /* (T, 3C) */
    attention(c, c->h, c->qkv, B, L, C, tc->heads, causal);
    linear(c->tmp, c->h, &w->out, T);
    add_inplace(x, c->tmp, (size_t)T * C);
    layernorm(c, c->h, x, w->ln2_w, w->ln2_b, T, C, tc->ln_eps);
    linear(c->mlp, c->h, &w->fc1, T); /* (T, F) */
    activation(c, c->mlp, T, F, tc->act);
    linear(c->tmp, c->mlp, &w->fc2, T);
    add_inplace(x, c->tmp, (size_t)T * C);
}

/* pixels (B, 3, S, S) -> patches (B*N, 3*p*p), each row ordered (channel, row, column) like
 * the flattened Conv2d kernel; pixels right of / below G*p are dropped, as the strided conv
 * drops them. */
static void unfold_patches(float *patches, const float *pixels, int B, int S, int p, int G)
{
    size_t K = 3 * (size_t)p * (size_t)p;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++) {
                float *dst = patches + ((size_t)b * G * G + (size_t)gy * G + (size_t)gx) * K;
                for (int ch = 0; ch < 3; ch++)
                    for (int y = 0; y < p; y++) {
                        const float *src =
                            pixels +
                            (((size_t)b * 3 + (size_t)ch) * S + (size_t)gy * p + (size_t)y) * S +
                            (size_t)gx * p;
                        memcpy(dst, src, (size_t)p * sizeof(float));
                        dst += p;
                    }
            }
}

/* CLIPVisionEmbeddings: x[b, 0] = class_embedding + pos[0]; x[b, 1+n] = patch[b, n] + pos[1+n]. */
static void vision_embed(float *x, const float *patch_emb, const float *class_emb,
                         const float *pos_emb, int B, int N, int C)
{
    int L = N + 1;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < L; i++) {
            float *o = x + ((size_t)b * L + (size_t)i) * C;
            const float *src = i == 0 ? class_emb : patch_emb + ((size_t)b * N + i - 1) * C;
            const float *pos = pos_emb + (size_t)i * C;
            for (int k = 0; k < C; k++)
                o[k] = src[k] + pos[k];
        }
}

/* CLIPVisionTransformer + visual_projection. out (B, D). */
static void vision_forward(struct clip_ctx *c, const float *pixels, int B, float *out)
{
    const struct clip_model *m = c->m;
    const struct clip_config *cfg = &m->cfg;
    const struct clip_vision_weights *w = &m->vision;
    const struct clip_tower_config *tc = &cfg->vision;
    int S = cfg->image_size, p = cfg->patch_size, G = S / p, N = G * G, L = N + 1;
    int C = tc->hidden, D = cfg->proj_dim;
    unfold_patches(c->patches, pixels, B, S, p, G);
    linear(c->tmp, c->patches, &w->patch, B * N); /* (B*N, C) */
    vision_embed(c->x, c->tmp, w->class_emb, w->pos_emb, B, N, C);
    layernorm(c, c->x, c->x, w->pre_ln_w, w->pre_ln_b, B * L, C, tc->ln_eps);
    for (int l = 0; l < tc->layers; l++)
        encoder_layer(c, &w->layers[l], tc, c->x, B, L, false);
    for (int b = 0; b < B; b++) /* pooled_output = last_hidden_state[:, 0, :] */
        memcpy(c->pooled + (size_t)b * C, c->x + (size_t)b * L * C, (size_t)C * sizeof(float));
    layernorm(c, c->pooled, c->pooled, w->post_ln_w, w->post_ln_b, B, C, tc->ln_eps);
    linear(out, c->pooled, &w->proj, B);
    for (int b = 0; b < B; b++)
        l2_normalize(out + (size_t)b * D, D);
}

/* The position CLIPTextTransformer pools at: legacy configs (eos_token_id == 2) take the
 * argmax of the ids (the EOS id is the largest); others the first id == eos_token_id
 * (position 0 when there is none, as torch's argmax of an all-false mask gives). */
static int eos_position(const int32_t *ids, int n, int eos_token_id)
{
    int best = 0;
    for (int i = 0; i < n; i++) {
        if (eos_token_id == 2) {
            if (ids[i] > ids[best])
                best = i;
        } else if (ids[i] == eos_token_id) {
            return i;
        }
    }
    return best;
}

/* CLIPTextTransformer + text_projection for one sequence, computed only up to the pooled
 * position (causal: later tokens cannot change it). out (D). */
static void text_forward(struct clip_ctx *c, const int32_t *ids, int pos, float *out)
{
    const struct clip_model *m = c->m;
    const struct clip_text_weights *w = &m->text;
    const struct clip_tower_config *tc = &m->cfg.text;
    int C = tc->hidden, n = pos + 1;
    for (int i = 0; i < n; i++) { /* CLIPTextEmbeddings: token + position */
        const float *te = w->tok_emb + (size_t)ids[i] * C;
        const float *pe = w->pos_emb + (size_t)i * C;
        float *o = c->x + (size_t)i * C;
        for (int k = 0; k < C; k++)
            o[k] = te[k] + pe[k];
    }
    for (int l = 0; l < tc->layers; l++)
        encoder_layer(c, &w->layers[l], tc, c->x, 1, n, true);
    layernorm_rows(c->pooled, c->x + (size_t)pos * C, w->final_ln_w, w->final_ln_b, C, tc->ln_eps,
                   0, 1);
    linear(out, c->pooled, &w->proj, 1);
    l2_normalize(out, m->cfg.proj_dim);
}

/* ------------------------------------------------------------------------------------------ */
/* Public API */

static float *alloc_floats(size_t a, size_t b, bool *ok)
{
    size_t n;
    if (!*ok || !sb_mul3_size(a, b, sizeof(float), &n)) {
        *ok = false;
        return NULL;
    }
    float *p = malloc(n ? n : 1);
    if (!p)
        *ok = false;
    return p;
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

int clip_ctx_new(const struct clip_model *m, int max_batch, struct sb_pool *pool,
                 struct clip_ctx **out, struct sb_err *err)
{
    if (max_batch < 1 || max_batch > 4096)
        return sb_fail(err, SB_EINVAL, "clip_ctx_new: max_batch %d is not in [1, 4096]", max_batch);
    struct clip_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return sb_fail(err, SB_ENOMEM, "no memory for the model context");
    const struct clip_config *cfg = &m->cfg;
    c->m = m;
    c->pool = pool;
    c->max_batch = max_batch;
    c->n_workers = pool ? sb_pool_size(pool) + 1 : 1;
    size_t rows = 1, C = 1, F = 1, L = 1, patches = 1, K = 1, pooled = 1;
    if (m->towers & CLIP_TOWER_VISION) {
        size_t G = (size_t)(cfg->image_size / cfg->patch_size);
        L = G * G + 1;
        rows = (size_t)max_batch * L; /* no overflow: each factor is capped at parse time */
        C = (size_t)cfg->vision.hidden;
        F = (size_t)cfg->vision.intermediate;
        patches = (size_t)max_batch * G * G;
        K = 3 * (size_t)cfg->patch_size * (size_t)cfg->patch_size;
        pooled = (size_t)max_batch;
    }
    if (m->towers & CLIP_TOWER_TEXT) {
        rows = max_sz(rows, (size_t)cfg->max_pos);
        L = max_sz(L, (size_t)cfg->max_pos);
        C = max_sz(C, (size_t)cfg->text.hidden);
        F = max_sz(F, (size_t)cfg->text.intermediate);
    }
    c->max_len = L;
    bool ok = true;
    c->x = alloc_floats(rows, C, &ok);
    c->h = alloc_floats(rows, C, &ok);
    c->qkv = alloc_floats(rows, 3 * C, &ok);
    c->tmp = alloc_floats(max_sz(rows, patches), C, &ok);
    c->mlp = alloc_floats(rows, F, &ok);
    c->patches = alloc_floats(patches, K, &ok);
    c->pooled = alloc_floats(pooled, C, &ok);
    c->scores = alloc_floats((size_t)c->n_workers, L, &ok);
    c->ids = ok ? calloc((size_t)cfg->max_pos, sizeof(*c->ids)) : NULL;
    if (!ok || !c->ids) {
        clip_ctx_free(c);
        return sb_fail(err, SB_ENOMEM, "no memory for a batch of %d", max_batch);
    }
    *out = c;
    return SB_OK;
}

void clip_ctx_free(struct clip_ctx *c)
{
    if (!c)
        return;
    free(c->x);
    free(c->h);
    free(c->qkv);
    free(c->tmp);
    free(c->mlp);
    free(c->patches);
    free(c->pooled);
    free(c->scores);
    free(c->ids);
    free(c);
}

int clip_embed_images(struct clip_ctx *c, const float *pixels, int B, float *out,
                      struct sb_err *err)
{
    if (!(c->m->towers & CLIP_TOWER_VISION))
        return sb_fail(err, SB_EMODEL, "embed images: the vision tower is not loaded");
    if (B < 1 || B > c->max_batch)
        return sb_fail(err, SB_EINVAL, "embed images: batch %d is not in [1, %d]", B, c->max_batch);
    vision_forward(c, pixels, B, out);
    return SB_OK;
}

int clip_embed_tokens(struct clip_ctx *c, const int32_t *ids, int n, float *out, struct sb_err *err)
{
    const struct clip_config *cfg = &c->m->cfg;
    if (!(c->m->towers & CLIP_TOWER_TEXT))
        return sb_fail(err, SB_EMODEL, "embed text: the text tower is not loaded");
    if (n < 1 || n > cfg->max_pos)
        return sb_fail(err, SB_EINVAL, "embed text: %d tokens is not in [1, %d]", n, cfg->max_pos);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= cfg->vocab_size)
            return sb_fail(err, SB_EINVAL, "embed text: token id %d is outside the vocabulary",
                           (int)ids[i]);
    text_forward(c, ids, eos_position(ids, n, cfg->eos_token_id), out);
    return SB_OK;
}

int clip_embed_text(struct clip_ctx *c, const char *text, float *out, int32_t *ids_out, int *n_ids,
                    struct sb_err *err)
{
    const struct clip_model *m = c->m;
    if (!m->tok)
        return sb_fail(err, SB_EMODEL, "embed text: the model folder has no tokenizer files");
    size_t n = 0;
    int rc = clip_tokenize(m->tok, text, c->ids, (size_t)m->cfg.max_pos, &n, err);
    if (rc)
        return rc;
    rc = clip_embed_tokens(c, c->ids, (int)n, out, err);
    if (rc)
        return rc;
    if (ids_out)
        memcpy(ids_out, c->ids, n * sizeof(*ids_out));
    if (n_ids)
        *n_ids = (int)n;
    return SB_OK;
}
