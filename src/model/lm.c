/* lm.c - the decoder forward pass and greedy generation, as transformers' modeling_llama.py
 * (LlamaForCausalLM) and modeling_qwen2.py (Qwen2ForCausalLM) compute them: token embedding,
 * then per layer RMSNorm -> q/k/v projections (+ biases in Qwen2) -> rotary embedding
 * (rotate_half form) -> grouped-query causal attention over the KV cache -> o_proj ->
 * residual add -> RMSNorm -> down(silu(gate) * up) -> residual add; final RMSNorm; lm_head.
 * LM_ARCH_PHI (Moondream 2's text model, moondream/torch/text.py): LayerNorm with bias, then
 * x + proj(attn(h)) + fc2(gelu_tanh(fc1(h))) on the same h, rotary on the first rot_dim dims,
 * a bidirectional prefix (the image), final LayerNorm, lm_head with bias.
 *
 * Dimension legend (as in lm_internal.h):
 *   T  rows in this call (new positions)   P  positions already cached
 *   C  hidden size    F  intermediate size    H  query heads    G  key/value heads
 *   D  head size      V  vocab                S  cache length (max context)
 * Activations are row-major (T, C); the KV cache is (layers, S, G*D) for keys and values.
 *
 * Threads: every product, the attention and the norms are split over the ctx's sb_pool
 * (row chunks of the weights for products, (row, head) pairs for attention). A product of T
 * rows reads each weight row once: T <= LM_GEMV_MAX_T and decode steps use the 16-bit
 * matrix-vector kernels (lm_gemv.c), larger T widens a chunk of weight rows to f32 in the
 * worker's scratch and calls cblas_sgemm on it. In bf16 precision (lm_model_set_precision)
 * larger T runs the block's linears on their packed bf16 copies instead (the clip_bf16
 * backend, as clip.c: row chunks of the activations, one single-threaded oneDNN call per
 * worker, each chunk converted to bf16 by its worker); norms, rotary, attention, the lm_head
 * and every decode step stay fp32. Nothing in a forward pass allocates, logs or does I/O (but
 * the first bf16 pass at a new row count makes the backend's primitives).
 *
 * Batched decoding (lm_gen_step): one forward pass whose row t is the next position of
 * context t, each with its own KV cache, position, logits and generation state; the pass runs
 * on the first context's activations and pool. Weights are read once per step for all rows,
 * and every row goes through the per-row kernels (the gemv ones, per-row attention), so a
 * context's tokens are the same whether it decodes alone or beside others. */
#include "lm_internal.h"

#include "shoebox/err.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LM_GEMV_MAX_T 4  /* rows up to which a product streams 16-bit weights per row */
#define LM_ATT_ROWS   32 /* query rows per attention work item of a long prefill */
#define LM_CHUNK      64 /* weight rows per work item */
/* bf16: most activation rows per oneDNN call; every call's row count is a multiple of 16 up
 * to this, so a ctx makes at most LM_BF16_ROWS / 16 primitives per weight shape whatever the
 * prompt lengths (the backend caches a bounded number) */
#define LM_BF16_ROWS    256
#define LM_MAX_CTX_AUTO 8192
#define LM_MAX_CACHE    ((size_t)16 << 30)

struct lm_ctx {
    const struct lm_model *m;
    struct sb_pool *pool;
    int n_workers;            /* sb_pool_size(pool) + 1: the caller takes part */
    int S, B;                 /* cache length, largest T of one forward call */
    int P;                    /* positions cached */
    float *k_cache, *v_cache; /* (layers, S, G*D) keys after rotation, values */
    float *x;                 /* (B, C) residual stream */
    float *h;                 /* (B, C) normed input of a block; block output */
    float *q;                 /* (B, H*D) */
    float *k, *v;             /* (B, G*D) */
    float *att;               /* (B, H*D) attention output */
    float *gate, *up;         /* (B, F) */
    float *logits;            /* (V) of the last row */
    float *pen;               /* (V) logits after the repetition penalty */
    float *first;             /* (V) logits after lm_generate()'s prefill */
    unsigned char *seen;      /* (V) ids present in prompt + output (repetition penalty) */
    float *wbuf;              /* (n_workers, LM_CHUNK * max(C, F, H*D)) widened weights */
    float *scores;            /* (n_workers, LM_ATT_ROWS * S) attention scores */
    float *cos, *sin;         /* (B, D/2) rotary tables of this call's positions */
    float *inv_freq;          /* (D/2) this call's frequencies (dynamic NTK scaling) */
    size_t wbuf_per_worker;
    struct lm_bf16_exec bf; /* bf16 precision: the product runner (bf.ctx NULL in fp32) */
    uint16_t *gate16;       /* bf16, LM_ARCH_PHI: (B, F) fc1's gelu output feeding fc2 */
    /* greedy generation (lm_gen_start / lm_gen_step) */
    struct lm_gen_params gen;
    int32_t *gen_ids; /* (S) generated ids */
    int gen_n;
    bool gen_done; /* nothing to generate: finished, failed or never started */
};

/* The rows of one forward pass: T new positions of c from its position P on (a prefill or
 * one step of one context), or with batch the next position of each of the T contexts
 * batch[t] (a batched decode step). c's activations and pool serve every row. rowwise: the
 * per-row kernels whatever T (decode steps; a prefill uses them for T <= LM_GEMV_MAX_T). */
struct pass {
    struct lm_ctx *c;
    struct lm_ctx *const *batch;
    int T;
    bool rowwise;
};

static struct lm_ctx *row_ctx(const struct pass *ps, int t)
{
    return ps->batch ? ps->batch[t] : ps->c;
}

static int row_pos(const struct pass *ps, int t)
{
    return ps->batch ? ps->batch[t]->P : ps->c->P + t;
}

/* ------------------------------------------------------------------------------------------ */
/* Kernels */

/* out(T,N) = in(T,K) @ W^T + b, W (N,K) row-major as nn.Linear stores it (f32/f16/bf16).
 * The one place a product with weights happens. Work items are chunks of LM_CHUNK weight
 * rows, so each weight byte is read once per call whatever T is. */
struct lin_job {
    struct lm_ctx *c;
    float *out;
    float *const *outs; /* or row t's output at outs[t] (rowwise only) */
    const float *in;
    const struct lm_mat *W;
    int T;
    bool rowwise;
};

#define LM_ROWS_PER_CALL 16 /* input rows per lm_gemv_rows_n() call */

static void linear_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct lin_job *j = arg;
    const struct lm_mat *W = j->W;
    int N = W->n_out, K = W->n_in;
    for (size_t item = begin; item < end; item++) {
        int n0 = (int)item * LM_CHUNK;
        int n1 = n0 + LM_CHUNK < N ? n0 + LM_CHUNK : N;
        if (j->rowwise) {
            for (int t0 = 0; t0 < j->T; t0 += LM_ROWS_PER_CALL) {
                int tb = j->T - t0 < LM_ROWS_PER_CALL ? j->T - t0 : LM_ROWS_PER_CALL;
                float *ys[LM_ROWS_PER_CALL];
                for (int i = 0; i < tb; i++)
                    ys[i] = j->outs ? j->outs[t0 + i] : j->out + (size_t)(t0 + i) * N;
                lm_gemv_rows_n(ys, j->in + (size_t)t0 * K, (size_t)K, tb, W->w, W->dt, K, n0, n1);
                if (W->b)
                    for (int i = 0; i < tb; i++)
                        for (int n = n0; n < n1; n++)
                            ys[i][n] += W->b[n];
            }
            continue;
        }
        lm_sgemm_rows(W, j->in, j->T, n0, n1, 0.0f, j->out,
                      j->c->wbuf + (size_t)worker * j->c->wbuf_per_worker);
        if (W->b)
            for (int t = 0; t < j->T; t++)
                for (int n = n0; n < n1; n++)
                    j->out[(size_t)t * N + n] += W->b[n];
    }
}

/* bf16 precision, not rowwise: on the packed copy (lm_bf16.c); true when it ran there */
static bool linear_bf16(struct lm_ctx *c, float *out, const float *in, const struct lm_mat *W,
                        int T, bool rowwise)
{
    if (!c->bf.ctx || !W->bf.packed || rowwise)
        return false;
    lm_bf16_linear(&c->bf, out, in, NULL, &W->bf, T, CLIP_EPI_STORE, CLIP_ACT_GELU);
    return true;
}

/* out (T, n_out) = in (T, n_in) @ W^T + b; with outs (rowwise only) row t goes to outs[t]. */
static void linear_to(struct lm_ctx *c, float *out, float *const *outs, const float *in,
                      const struct lm_mat *W, int T, bool rowwise)
{
    if (linear_bf16(c, out, in, W, T, rowwise))
        return;
    struct lin_job j = { c, out, outs, in, W, T, rowwise };
    size_t items = ((size_t)W->n_out + LM_CHUNK - 1) / LM_CHUNK;
    sb_pool_for(c->pool, items, 1, linear_task, &j);
}

static void linear(const struct pass *ps, float *out, const float *in, const struct lm_mat *W)
{
    linear_to(ps->c, out, NULL, in, W, ps->T, ps->rowwise);
}

/* LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * w, per row of (T, C). */
struct norm_job {
    float *out;
    const float *in, *w, *b; /* b: LayerNorm bias (LM_ARCH_PHI) */
    int C;
    float eps;
};

static void rmsnorm_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct norm_job *j = arg;
    (void)worker;
    for (size_t r = begin; r < end; r++) {
        const float *x = j->in + r * (size_t)j->C;
        float *o = j->out + r * (size_t)j->C;
        float ss = 0.0f;
        for (int i = 0; i < j->C; i++)
            ss += x[i] * x[i];
        float inv = 1.0f / sqrtf(ss / (float)j->C + j->eps);
        for (int i = 0; i < j->C; i++)
            o[i] = j->w[i] * (x[i] * inv);
    }
}

static void rmsnorm(struct lm_ctx *c, float *out, const float *in, const float *w, int T)
{
    struct norm_job j = { out, in, w, NULL, c->m->cfg.hidden, c->m->cfg.rms_eps };
    sb_pool_for(c->pool, (size_t)T, 4, rmsnorm_task, &j);
}

void lm_layernorm_row(float *o, const float *x, const float *w, const float *b, int C, float eps)
{
    float mean = 0.0f, var = 0.0f;
    for (int i = 0; i < C; i++)
        mean += x[i];
    mean /= (float)C;
    for (int i = 0; i < C; i++)
        var += (x[i] - mean) * (x[i] - mean);
    float inv = 1.0f / sqrtf(var / (float)C + eps);
    for (int i = 0; i < C; i++)
        o[i] = (x[i] - mean) * inv * w[i] + b[i];
}

/* LM_ARCH_PHI: nn.LayerNorm per row of (T, C). */
static void layernorm_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct norm_job *j = arg;
    (void)worker;
    for (size_t r = begin; r < end; r++)
        lm_layernorm_row(j->out + r * (size_t)j->C, j->in + r * (size_t)j->C, j->w, j->b, j->C,
                         j->eps);
}

static void layernorm(struct lm_ctx *c, float *out, const float *in, const float *w, const float *b,
                      int T)
{
    struct norm_job j = { out, in, w, b, c->m->cfg.hidden, c->m->cfg.rms_eps };
    sb_pool_for(c->pool, (size_t)T, 4, layernorm_task, &j);
}

/* The block's and the final norm: RMSNorm, or LayerNorm with bias in LM_ARCH_PHI. */
static void norm(struct lm_ctx *c, float *out, const float *in, const float *w, const float *b,
                 int T)
{
    if (c->m->cfg.arch == LM_ARCH_PHI)
        layernorm(c, out, in, w, b, T);
    else
        rmsnorm(c, out, in, w, T);
}

/* gelu with the tanh approximation (F.gelu(approximate="tanh")), in place. */
static void gelu_tanh(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    }
}

static void add_inplace(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}

/* SiLU(gate) * up in place in gate (LlamaMLP's act_fn(gate_proj(x)) * up_proj(x)). */
static void swiglu(float *gate, const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* cos/sin (T, D/2) of each row's position (LlamaRotaryEmbedding; emb = cat(freqs, freqs), so
 * half a table suffices). Dynamic NTK scaling recomputes the base when the sequence (the
 * positions up to the pass's last one of that context) outgrows max_position_embeddings
 * (modeling_rope_utils._compute_dynamic_ntk_parameters). */
static void rope_tables(const struct pass *ps)
{
    struct lm_ctx *c = ps->c;
    const struct lm_config *cfg = &c->m->cfg;
    int half = (cfg->rot_dim ? cfg->rot_dim : cfg->head_dim) / 2;
    int done = -1; /* seq of the frequencies in c->inv_freq */
    for (int t = 0; t < ps->T; t++) {
        int pos = row_pos(ps, t), seq = ps->batch ? pos + 1 : c->P + ps->T;
        const float *inv = c->m->inv_freq;
        if (cfg->rope == LM_ROPE_DYNAMIC && seq > cfg->max_pos) {
            if (seq != done) {
                float D = (float)cfg->head_dim;
                float base =
                    cfg->rope_theta * powf(cfg->rope_factor * (float)seq / (float)cfg->max_pos -
                                               (cfg->rope_factor - 1.0f),
                                           D / (D - 2.0f));
                for (int i = 0; i < half; i++)
                    c->inv_freq[i] = 1.0f / powf(base, (float)(2 * i) / D);
                done = seq;
            }
            inv = c->inv_freq;
        }
        for (int i = 0; i < half; i++) {
            float a = (float)pos * inv[i];
            c->cos[(size_t)t * half + i] = cosf(a);
            c->sin[(size_t)t * half + i] = sinf(a);
        }
    }
}

/* apply_rotary_pos_emb on n_heads heads of each row of x (T, n_heads*D): rotate_half pairs
 * element i with i + rot/2 within the first rot dims (rot = D but in LM_ARCH_PHI's partial
 * rotary). */
static void rope_apply(float *x, const float *cs, const float *sn, int T, int n_heads, int D,
                       int rot)
{
    int half = rot / 2;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * n_heads + h) * D;
            const float *ct = cs + (size_t)t * half, *st = sn + (size_t)t * half;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * ct[i] - b * st[i];
                v[i + half] = b * ct[i] + a * st[i];
            }
        }
}

/* Causal grouped-query attention of the T new rows over the P + T cached positions:
 * out_{t,h} = sum_{j <= P+t} softmax_j(q_{t,h} . k_{j,g} / sqrt(D)) v_{j,g}, g = h / (H/G)
 * (repeat_kv). One task = one (row, head) pair. */
struct att_job {
    const struct pass *ps;
    struct lm_ctx *c;
    int l;                /* layer */
    const float *kc, *vc; /* (S, G*D) this layer's cache of c (attention_block_task) */
    int T;
};

/* Layer l's keys (or values, v) of row t's context. */
static float *layer_cache(const struct pass *ps, int t, int l, bool v)
{
    const struct lm_ctx *rc = row_ctx(ps, t);
    size_t GD = (size_t)rc->m->cfg.kv_heads * (size_t)rc->m->cfg.head_dim;
    return (v ? rc->v_cache : rc->k_cache) + (size_t)l * (size_t)rc->S * GD;
}

static void attention_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct att_job *j = arg;
    const struct lm_config *cfg = &j->c->m->cfg;
    int H = cfg->heads, G = cfg->kv_heads, D = cfg->head_dim, GD = G * D;
    float scale = 1.0f / sqrtf((float)D);
    for (size_t item = begin; item < end; item++) {
        int t = (int)(item / (size_t)H), h = (int)(item % (size_t)H);
        int g = h / (H / G);
        const struct lm_ctx *rc = row_ctx(j->ps, t);
        const float *kc = layer_cache(j->ps, t, j->l, false);
        const float *vc = layer_cache(j->ps, t, j->l, true);
        float *s = rc->scores + (size_t)worker * (size_t)rc->S;
        int pos = row_pos(j->ps, t);
        int n = pos + 1; /* positions this row sees */
        if (pos < cfg->prefix)
            n = cfg->prefix; /* bidirectional prefix (lm_prefill checked it is cached) */
        const float *q = j->c->q + ((size_t)t * H + h) * D;
        float mx = -INFINITY;
        for (int p = 0; p < n; p++) {
            const float *k = kc + (size_t)p * GD + (size_t)g * D;
            float d = 0.0f;
            for (int i = 0; i < D; i++)
                d += q[i] * k[i];
            s[p] = d * scale;
            mx = s[p] > mx ? s[p] : mx;
        }
        float sum = 0.0f;
        for (int p = 0; p < n; p++) {
            s[p] = expf(s[p] - mx);
            sum += s[p];
        }
        float inv = 1.0f / sum;
        float *o = j->c->att + ((size_t)t * H + h) * D;
        memset(o, 0, (size_t)D * sizeof(*o));
        for (int p = 0; p < n; p++) {
            const float *v = vc + (size_t)p * GD + (size_t)g * D;
            float w = s[p] * inv;
            for (int i = 0; i < D; i++)
                o[i] += w * v[i];
        }
    }
}

/* The same attention for a long prefill (T > LM_GEMV_MAX_T): one task = LM_ATT_ROWS query rows
 * of one head; scores of the block against every position the block's last row sees come from
 * one sgemm, the positions a row must not see are masked to -inf before its softmax, and the
 * output is one more sgemm with the values. */
static void attention_block_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct att_job *j = arg;
    const struct lm_ctx *c = j->c;
    const struct lm_config *cfg = &c->m->cfg;
    int H = cfg->heads, G = cfg->kv_heads, D = cfg->head_dim, GD = G * D, HD = H * D;
    int nb = (j->T + LM_ATT_ROWS - 1) / LM_ATT_ROWS;
    float *s = c->scores + (size_t)worker * LM_ATT_ROWS * (size_t)c->S;
    for (size_t item = begin; item < end; item++) {
        int h = (int)(item / (size_t)nb), b = (int)(item % (size_t)nb);
        int g = h / (H / G), t0 = b * LM_ATT_ROWS;
        int t1 = t0 + LM_ATT_ROWS < j->T ? t0 + LM_ATT_ROWS : j->T, rows = t1 - t0;
        int n = c->P + t1; /* positions the last row sees */
        if (c->P + t0 < cfg->prefix && n < cfg->prefix)
            n = cfg->prefix;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, D, 1.0f / sqrtf((float)D),
                    c->q + (size_t)t0 * HD + (size_t)h * D, HD, j->kc + (size_t)g * D, GD, 0.0f, s,
                    n);
        for (int r = 0; r < rows; r++) {
            float *row = s + (size_t)r * n;
            int see = c->P + t0 + r + 1;
            if (c->P + t0 + r < cfg->prefix)
                see = cfg->prefix;
            float mx = -INFINITY, sum = 0.0f;
            for (int p = 0; p < see; p++)
                mx = row[p] > mx ? row[p] : mx;
            for (int p = 0; p < see; p++) {
                row[p] = expf(row[p] - mx);
                sum += row[p];
            }
            float inv = 1.0f / sum;
            for (int p = 0; p < see; p++)
                row[p] *= inv;
            for (int p = see; p < n; p++)
                row[p] = 0.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, D, n, 1.0f, s, n,
                    j->vc + (size_t)g * D, GD, 0.0f, c->att + (size_t)t0 * HD + (size_t)h * D, HD);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Forward */

/* One LlamaDecoderLayer / Qwen2DecoderLayer on x (T, C), updated in place; layer l's cache
 * gets the T new keys and values at positions P..P+T-1. */
static void decoder_layer(const struct pass *ps, int l)
{
    struct lm_ctx *c = ps->c;
    int T = ps->T;
    const struct lm_config *cfg = &c->m->cfg;
    const struct lm_layer *w = &c->m->layers[l];
    int C = cfg->hidden, H = cfg->heads, G = cfg->kv_heads, D = cfg->head_dim;
    size_t GD = (size_t)G * D;
    float *kc = c->k_cache + (size_t)l * c->S * GD;
    float *vc = c->v_cache + (size_t)l * c->S * GD;

    int rot = cfg->rot_dim ? cfg->rot_dim : D;
    norm(c, c->h, c->x, w->attn_norm, w->attn_norm_b, T);
    linear(ps, c->q, c->h, &w->q); /* (T, H*D) */
    linear(ps, c->k, c->h, &w->k); /* (T, G*D) */
    linear(ps, c->v, c->h, &w->v); /* (T, G*D) */
    rope_apply(c->q, c->cos, c->sin, T, H, D, rot);
    rope_apply(c->k, c->cos, c->sin, T, G, D, rot);
    if (ps->batch) {
        for (int t = 0; t < T; t++) {
            size_t at = (size_t)row_pos(ps, t) * GD;
            memcpy(layer_cache(ps, t, l, false) + at, c->k + (size_t)t * GD, GD * sizeof(float));
            memcpy(layer_cache(ps, t, l, true) + at, c->v + (size_t)t * GD, GD * sizeof(float));
        }
    } else {
        memcpy(kc + (size_t)c->P * GD, c->k, (size_t)T * GD * sizeof(float));
        memcpy(vc + (size_t)c->P * GD, c->v, (size_t)T * GD * sizeof(float));
    }
    struct att_job aj = { ps, c, l, kc, vc, T };
    if (!ps->rowwise)
        sb_pool_for(c->pool, (size_t)H * ((T + LM_ATT_ROWS - 1) / LM_ATT_ROWS), 1,
                    attention_block_task, &aj);
    else
        sb_pool_for(c->pool, (size_t)T * H, 1, attention_task, &aj);
    if (cfg->arch == LM_ARCH_PHI && c->gate16 && w->gate.bf.packed && w->down.bf.packed &&
        w->o.bf.packed && !ps->rowwise) {
        /* the same in bf16 with the gelu and the residual adds fused into the products */
        lm_bf16_linear(&c->bf, c->gate16, c->h, NULL, &w->gate.bf, T, CLIP_EPI_ACT,
                       CLIP_ACT_GELU_TANH);
        lm_bf16_linear(&c->bf, c->x, NULL, c->gate16, &w->down.bf, T, CLIP_EPI_RESIDUAL,
                       CLIP_ACT_GELU);
        lm_bf16_linear(&c->bf, c->x, c->att, NULL, &w->o.bf, T, CLIP_EPI_RESIDUAL, CLIP_ACT_GELU);
        return;
    }
    if (cfg->arch == LM_ARCH_PHI) {
        /* parallel block: x + proj(attn(ln(x))) + fc2(gelu(fc1(ln(x)))), both on c->h */
        linear(ps, c->gate, c->h, &w->gate); /* (T, F) fc1 */
        gelu_tanh(c->gate, (size_t)T * cfg->intermediate);
        linear(ps, c->h, c->gate, &w->down); /* (T, C) fc2 */
        add_inplace(c->x, c->h, (size_t)T * C);
        linear(ps, c->h, c->att, &w->o); /* (T, C) proj */
        add_inplace(c->x, c->h, (size_t)T * C);
        return;
    }
    linear(ps, c->h, c->att, &w->o); /* (T, C) */
    add_inplace(c->x, c->h, (size_t)T * C);

    rmsnorm(c, c->h, c->x, w->mlp_norm, T);
    linear(ps, c->gate, c->h, &w->gate); /* (T, F) */
    linear(ps, c->up, c->h, &w->up);     /* (T, F) */
    swiglu(c->gate, c->up, (size_t)T * cfg->intermediate);
    linear(ps, c->h, c->gate, &w->down); /* (T, C) */
    add_inplace(c->x, c->h, (size_t)T * C);
}

/* T <= B rows: embeddings, layers, final norm and lm_head on the last row (a batch: on every
 * row, into each context's logits; outs has room for T pointers). */
static void forward(const struct pass *ps, const int32_t *ids, const float *embeds, float **outs)
{
    struct lm_ctx *c = ps->c;
    const struct lm_model *m = c->m;
    int C = m->cfg.hidden, T = ps->T;
    for (int t = 0; t < T; t++) {
        float *row = c->x + (size_t)t * C;
        if (ids[t] == LM_EMBED_ROW)
            memcpy(row, embeds + (size_t)t * C, (size_t)C * sizeof(float));
        else
            lm_widen_rows(row, m->embed.w, m->embed.dt, C, ids[t], ids[t] + 1);
    }
    rope_tables(ps);
    for (int l = 0; l < m->cfg.layers; l++)
        decoder_layer(ps, l);
    if (ps->batch) {
        for (int t = 0; t < T; t++) {
            ps->batch[t]->P++;
            outs[t] = ps->batch[t]->logits;
        }
        norm(c, c->h, c->x, m->norm, m->norm_b, T);
        linear_to(c, NULL, outs, c->h, &m->head, T, true); /* (T, V) */
        return;
    }
    c->P += T;
    const float *last = c->x + (size_t)(T - 1) * C;
    norm(c, c->h, last, m->norm, m->norm_b, 1);
    linear_to(c, c->logits, NULL, c->h, &m->head, 1, true); /* (V) */
}

static int prefill(struct lm_ctx *c, const int32_t *ids, const float *embeds, int n,
                   struct sb_err *err)
{
    if (!c || !ids || n < 1)
        return sb_fail(err, SB_EINVAL, "lm prefill: no input");
    int V = c->m->cfg.vocab;
    for (int i = 0; i < n; i++) {
        if (ids[i] == LM_EMBED_ROW && !embeds)
            return sb_fail(err, SB_EINVAL, "lm prefill: row %d wants an embedding, none given", i);
        if (ids[i] != LM_EMBED_ROW && (ids[i] < 0 || ids[i] >= V))
            return sb_fail(err, SB_EINVAL, "lm prefill: token id %d is outside [0, %d)",
                           (int)ids[i], V);
    }
    if (n > c->S - c->P)
        return sb_fail(err, SB_ETOOBIG, "lm prefill: %d positions after %d exceed the context %d",
                       n, c->P, c->S);
    int pre = c->m->cfg.prefix;
    if (c->P < pre && (c->P != 0 || n < pre || c->B < pre))
        return sb_fail(err, SB_EINVAL,
                       "lm prefill: the %d bidirectional prefix positions must come in one call "
                       "of at most %d rows at position 0",
                       pre, c->B);
    int C = c->m->cfg.hidden;
    for (int i = 0; i < n; i += c->B) {
        int T = n - i < c->B ? n - i : c->B;
        struct pass ps = { c, NULL, T, T <= LM_GEMV_MAX_T };
        forward(&ps, ids + i, embeds ? embeds + (size_t)i * C : NULL, NULL);
        int rc = c->bf.ctx ? lm_bf16_status(&c->bf, "lm prefill", err) : SB_OK;
        if (rc) { /* the cache holds garbage */
            c->P = 0;
            return rc;
        }
    }
    return SB_OK;
}

int lm_prefill(struct lm_ctx *c, const int32_t *ids, const float *embeds, int n, struct sb_err *err)
{
    if (c)
        c->gen_done = true; /* the positions are no longer a generation's */
    return prefill(c, ids, embeds, n, err);
}

const float *lm_ctx_logits(const struct lm_ctx *c)
{
    return c->logits;
}

const float *lm_ctx_prefill_logits(const struct lm_ctx *c)
{
    return c->first;
}

/* ------------------------------------------------------------------------------------------ */
/* Context */

static float *alloc_floats(size_t a, size_t b, bool *ok)
{
    size_t n;
    if (!sb_mul_size(a, b, &n) || !sb_mul_size(n, sizeof(float), &n)) {
        *ok = false;
        return NULL;
    }
    float *p = calloc(1, n ? n : 1);
    if (!p)
        *ok = false;
    return p;
}

int lm_ctx_new(const struct lm_model *m, struct sb_pool *pool, int max_ctx, int max_batch,
               struct lm_ctx **out, struct sb_err *err)
{
    const struct lm_config *cfg = &m->cfg;
    if (max_ctx < 0 || max_batch < 0)
        return sb_fail(err, SB_EINVAL, "lm ctx: negative sizes");
    if (max_ctx == 0)
        max_ctx = cfg->max_pos < LM_MAX_CTX_AUTO ? cfg->max_pos : LM_MAX_CTX_AUTO;
    if (max_batch == 0)
        max_batch = 256;
    if (max_batch > max_ctx)
        max_batch = max_ctx;
    size_t GD = (size_t)cfg->kv_heads * cfg->head_dim, HD = (size_t)cfg->heads * cfg->head_dim;
    size_t cache;
    if (!sb_mul3_size((size_t)cfg->layers, (size_t)max_ctx, GD, &cache) ||
        cache > LM_MAX_CACHE / (2 * sizeof(float)))
        return sb_fail(err, SB_ETOOBIG, "lm ctx: a KV cache of %d positions is too large", max_ctx);
    struct lm_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return sb_fail(err, SB_ENOMEM, "no memory for an lm ctx");
    c->m = m;
    c->pool = pool;
    c->n_workers = pool ? sb_pool_size(pool) + 1 : 1;
    c->S = max_ctx;
    c->B = max_batch;
    /* rows rounded to 16: a bf16 product reads and writes whole 16-row blocks */
    size_t B = ((size_t)max_batch + 15) / 16 * 16, C = (size_t)cfg->hidden,
           F = (size_t)cfg->intermediate;
    size_t widest = C > F ? C : F;
    widest = widest > HD ? widest : HD;
    c->wbuf_per_worker = (size_t)LM_CHUNK * widest;
    bool ok = true;
    c->k_cache = alloc_floats(cache, 1, &ok);
    c->v_cache = alloc_floats(cache, 1, &ok);
    c->x = alloc_floats(B, C, &ok);
    c->h = alloc_floats(B, C, &ok);
    c->q = alloc_floats(B, HD, &ok);
    c->k = alloc_floats(B, GD, &ok);
    c->v = alloc_floats(B, GD, &ok);
    c->att = alloc_floats(B, HD, &ok);
    c->gate = alloc_floats(B, F, &ok);
    c->up = alloc_floats(B, F, &ok);
    c->logits = alloc_floats((size_t)cfg->vocab, 1, &ok);
    c->pen = alloc_floats((size_t)cfg->vocab, 1, &ok);
    c->first = alloc_floats((size_t)cfg->vocab, 1, &ok);
    c->seen = calloc((size_t)cfg->vocab, 1);
    c->wbuf = alloc_floats((size_t)c->n_workers, c->wbuf_per_worker, &ok);
    c->scores = alloc_floats((size_t)c->n_workers * LM_ATT_ROWS, (size_t)max_ctx, &ok);
    c->cos = alloc_floats(B, (size_t)cfg->head_dim / 2, &ok);
    c->sin = alloc_floats(B, (size_t)cfg->head_dim / 2, &ok);
    c->inv_freq = alloc_floats((size_t)cfg->head_dim / 2, 1, &ok);
    c->gen_ids = calloc((size_t)max_ctx, sizeof(int32_t));
    c->gen_done = true;
    if (!ok || !c->seen || !c->gen_ids) {
        lm_ctx_free(c);
        return sb_fail(err, SB_ENOMEM, "no memory for an lm ctx of %d positions", max_ctx);
    }
    if (m->bf16 && cfg->arch == LM_ARCH_PHI && !(c->gate16 = calloc(B * F, sizeof(uint16_t)))) {
        lm_ctx_free(c);
        return sb_fail(err, SB_ENOMEM, "no memory for an lm ctx of %d positions", max_ctx);
    }
    if (m->bf16) {
        int rc = lm_bf16_exec_init(&c->bf, m->bf16, pool, B, widest, err);
        if (rc) {
            lm_ctx_free(c);
            return rc;
        }
    }
    *out = c;
    return SB_OK;
}

void lm_ctx_free(struct lm_ctx *c)
{
    if (!c)
        return;
    free(c->k_cache);
    free(c->v_cache);
    free(c->x);
    free(c->h);
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->att);
    free(c->gate);
    free(c->up);
    free(c->logits);
    free(c->pen);
    free(c->first);
    free(c->seen);
    free(c->wbuf);
    free(c->scores);
    free(c->cos);
    free(c->sin);
    free(c->inv_freq);
    free(c->gen_ids);
    lm_bf16_exec_release(&c->bf);
    free(c->gate16);
    free(c);
}

void lm_ctx_reset(struct lm_ctx *c)
{
    c->P = 0;
    c->gen_n = 0;
    c->gen_done = true;
}

int lm_ctx_position(const struct lm_ctx *c)
{
    return c->P;
}

/* ------------------------------------------------------------------------------------------ */
/* Generation */

struct lm_gen_params lm_gen_default_params(void)
{
    return (struct lm_gen_params){ .max_new_tokens = 64, .repetition_penalty = 1.0f, .n_stop = 0 };
}

/* argmax of logits after RepetitionPenaltyLogitsProcessor over the ids marked in seen; the
 * first index wins a tie, as torch.argmax. */
static int32_t pick(struct lm_ctx *c, float penalty)
{
    int V = c->m->cfg.vocab;
    const float *z = c->logits;
    int32_t best = 0;
    float bv = -INFINITY;
    for (int i = 0; i < V; i++) {
        float v = z[i];
        if (penalty != 1.0f && c->seen[i])
            v = v < 0.0f ? v * penalty : v / penalty;
        c->pen[i] = v;
        if (v > bv) {
            bv = v;
            best = i;
        }
    }
    return best;
}

/* The generation's next token from c's logits: appended, and whether it ends the generation. */
static void gen_take(struct lm_ctx *c)
{
    int32_t tok = pick(c, c->gen.repetition_penalty);
    c->gen_ids[c->gen_n++] = tok;
    c->seen[tok] = 1;
    bool stop = false;
    for (int i = 0; i < c->gen.n_stop; i++)
        stop = stop || tok == c->gen.stop_ids[i];
    c->gen_done = stop || c->gen_n == c->gen.max_new_tokens || c->P == c->S;
}

int lm_gen_start(struct lm_ctx *c, const int32_t *ids, const float *embeds, int n_prompt,
                 const struct lm_gen_params *params, struct sb_err *err)
{
    struct lm_gen_params p = params ? *params : lm_gen_default_params();
    if (!c)
        return sb_fail(err, SB_EINVAL, "lm generate: no context");
    lm_ctx_reset(c);
    if (p.n_stop == 0)
        p.n_stop = lm_model_eos_ids(c->m, p.stop_ids, LM_MAX_STOP);
    if (p.n_stop > LM_MAX_STOP)
        p.n_stop = LM_MAX_STOP;
    if (p.max_new_tokens < 1 || !(p.repetition_penalty > 0.0f) || p.n_stop < 0)
        return sb_fail(err, SB_EINVAL,
                       "lm generate: bad parameters (max_new_tokens %d, repetition_penalty %g)",
                       p.max_new_tokens, (double)p.repetition_penalty);
    int rc = prefill(c, ids, embeds, n_prompt, err);
    if (rc)
        return rc;
    c->gen = p;
    memcpy(c->first, c->logits, (size_t)c->m->cfg.vocab * sizeof(float));
    memset(c->seen, 0, (size_t)c->m->cfg.vocab);
    for (int i = 0; i < n_prompt; i++)
        if (ids[i] >= 0)
            c->seen[ids[i]] = 1;
    gen_take(c);
    return SB_OK;
}

bool lm_gen_done(const struct lm_ctx *c)
{
    return c->gen_done;
}

const int32_t *lm_gen_ids(const struct lm_ctx *c, int *n)
{
    *n = c->gen_n;
    return c->gen_ids;
}

#define LM_STEP_ROWS 64 /* most contexts in one forward pass of lm_gen_step() */

int lm_gen_step(struct lm_ctx *const *cs, int n, struct sb_err *err)
{
    if (n < 0 || (n > 0 && !cs))
        return sb_fail(err, SB_EINVAL, "lm step: no contexts");
    for (int i = 0; i < n; i++) {
        if (!cs[i])
            return sb_fail(err, SB_EINVAL, "lm step: context %d is NULL", i);
        if (cs[i]->m != cs[0]->m || cs[i]->pool != cs[0]->pool)
            return sb_fail(err, SB_EINVAL, "lm step: contexts of different models or pools");
        for (int k = 0; k < i; k++)
            if (cs[k] == cs[i])
                return sb_fail(err, SB_EINVAL, "lm step: context %d appears twice", i);
    }
    struct lm_ctx *rows[LM_STEP_ROWS];
    int32_t ids[LM_STEP_ROWS];
    float *outs[LM_STEP_ROWS];
    int i = 0;
    for (;;) {
        int T = 0;
        for (; i < n && T < LM_STEP_ROWS && (T == 0 || T < rows[0]->B); i++) {
            if (cs[i]->gen_done)
                continue;
            rows[T] = cs[i];
            ids[T] = cs[i]->gen_ids[cs[i]->gen_n - 1];
            T++;
        }
        if (T == 0)
            return SB_OK;
        struct pass ps = { rows[0], rows, T, true };
        forward(&ps, ids, NULL, outs);
        for (int t = 0; t < T; t++)
            gen_take(rows[t]);
    }
}

int lm_generate(struct lm_ctx *c, const int32_t *ids, const float *embeds, int n_prompt,
                const struct lm_gen_params *params, int32_t *out, int cap, int *n_out,
                struct sb_err *err)
{
    struct lm_gen_params p = params ? *params : lm_gen_default_params();
    if (p.max_new_tokens < 1 || cap < p.max_new_tokens || !out || !n_out ||
        !(p.repetition_penalty > 0.0f) || p.n_stop < 0)
        return sb_fail(err, SB_EINVAL,
                       "lm generate: bad parameters (max_new_tokens %d, cap %d, "
                       "repetition_penalty %g)",
                       p.max_new_tokens, cap, (double)p.repetition_penalty);
    int rc = lm_gen_start(c, ids, embeds, n_prompt, &p, err);
    while (!rc && !c->gen_done)
        rc = lm_gen_step(&c, 1, err);
    if (!rc) {
        memcpy(out, c->gen_ids, (size_t)c->gen_n * sizeof(*out));
        *n_out = c->gen_n;
    }
    return rc;
}
