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
 * Threads (model.h has the measurements): image batches are split by images over the ctx's
 * sb_pool (vision_forward: each worker runs the tower on its group through a view of the ctx);
 * a text query or a single image in bf16 on the AMX kernel runs as a team (clip_k_team_run:
 * every worker runs the pass, each op split by static shares and a barrier); otherwise every
 * op is shared out over the pool. fp32 products run on single-threaded OpenBLAS (a text query
 * loaded with fast_text: on gemm_f32.c's panels), bf16 ones on gemm_amx.c's kernel (AMX CPUs)
 * or single-threaded oneDNN calls. Nothing in a forward pass
 * logs or does I/O; it allocates only with oneDNN the first time a row count is seen
 * (primitives, cached in the ctx, and a worker's scratchpad).
 *
 * bf16 layer shapes: q, k, v and the MLP run as C x C products (struct clip_layer's parts),
 * which oneDNN 2.6 runs faster per flop than the (3C, C), (F, C) and (C, F) ones and which keep
 * an MLP's activations in cache between fc1 and fc2; q, k, v come out as bf16 panels for the
 * AVX512-BF16 attention kernel (clip_avx512.c). */
#include "internal.h"

#include "shoebox/bpe.h"
#include "shoebox/err.h"
#include "shoebox/pool.h"
#include "shoebox/spm.h"
#include "shoebox/tokenizer.h"
#include "shoebox/util.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Teams: every worker runs a whole pass, sharing each operation out by static shares */

struct clip_team {
    int n;
    atomic_int arrived;
    atomic_uint gen; /* barriers completed */
};

/* Waits until every member has arrived: a short spin, then yielding the core (the box may
 * have more runnable threads than cores). */
static void team_barrier(struct clip_team *t)
{
    unsigned gen = atomic_load(&t->gen);
    if (atomic_fetch_add(&t->arrived, 1) == t->n - 1) {
        atomic_store(&t->arrived, 0);
        atomic_fetch_add(&t->gen, 1);
        return;
    }
    for (int spin = 0; atomic_load(&t->gen) == gen; spin++) {
        if (spin < 200) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            sched_yield();
        }
    }
}

void clip_k_barrier(struct clip_ctx *c)
{
    if (c->team)
        team_barrier(c->team);
}

void clip_k_for(struct clip_ctx *c, size_t n, size_t grain, sb_range_fn fn, void *arg)
{
    if (!c->team) {
        sb_pool_for(c->pool, n, grain, fn, arg);
        return;
    }
    /* shares in units of grain items, as sb_pool_for's chunks */
    size_t g = grain ? grain : 1, units = (n + g - 1) / g, nw = (size_t)c->n_workers;
    size_t b = units * (size_t)c->rank / nw * g, e = units * ((size_t)c->rank + 1) / nw * g;
    e = e < n ? e : n;
    if (b < e)
        fn(arg, b, e, c->rank);
    team_barrier(c->team);
}

struct team_job {
    struct clip_team team;
    struct clip_ctx views[64];
    void (*body)(struct clip_ctx *v, void *arg);
    void *arg;
};

static void team_task(void *arg, size_t begin, size_t end, int worker)
{
    struct team_job *j = arg;
    (void)worker;
    for (size_t i = begin; i < end; i++)
        j->body(&j->views[i], j->arg);
}

void clip_k_team_run(struct clip_ctx *c, void (*body)(struct clip_ctx *v, void *arg), void *arg)
{
    /* bf16 on the AMX kernel only: oneDNN's products can fail on one member, which would
     * leave the others waiting; fp32's products are long enough that per-operation hand-offs
     * cost little, and on a loaded box its members spun more than they gained (text query
     * 88 against 75 ms, same run) */
    bool safe = c->bf16 && (c->m->text.proj.packed ? clip_bf16_amx(&c->m->text.proj)
                                                   : clip_bf16_amx(&c->m->vision.patch));
    if (!c->pool || c->team || c->n_workers < 2 || c->n_workers > 64 || !safe) {
        body(c, arg);
        return;
    }
    /* One team at a time in the process: its members need pool threads at the same time, and
     * two teams each holding some threads while waiting for more could wait forever. */
    static pthread_mutex_t one_team = PTHREAD_MUTEX_INITIALIZER;
    if (pthread_mutex_trylock(&one_team) != 0) { /* the pool way, a hand-off per operation */
        body(c, arg);
        return;
    }
    struct team_job job, *j = &job;
    j->team.n = c->n_workers;
    atomic_init(&j->team.arrived, 0);
    atomic_init(&j->team.gen, 0u);
    j->body = body;
    j->arg = arg;
    for (int r = 0; r < c->n_workers; r++) {
        struct clip_ctx *v = &j->views[r];
        *v = (struct clip_ctx){ .m = c->m,
                                .pool = c->pool,
                                .bf16 = c->bf16,
                                .max_batch = c->max_batch,
                                .n_workers = c->n_workers,
                                .worker0 = c->worker0,
                                .max_len = c->max_len,
                                .max_e = c->max_e,
                                .x = c->x,
                                .qkv = c->qkv,
                                .tmp = c->tmp,
                                .a = c->a,
                                .mlp = c->mlp,
                                .att = c->att,
                                .ids = c->ids,
                                .head_q = c->head_q,
                                .team = &j->team,
                                .rank = r };
        atomic_init(&v->failed, false);
    }
    sb_pool_for(c->pool, (size_t)c->n_workers, 1, team_task, j);
    pthread_mutex_unlock(&one_team);
}

/* ------------------------------------------------------------------------------------------ */
/* Kernels */

/* f32 -> bf16, rounding to nearest even as torch and oneDNN do; NaN stays NaN. */
static uint16_t bf16_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Writes n floats at element offset `at` of a product input: f32, or bf16 when bf16. */
void clip_k_store_input(void *dst, size_t at, const float *v, size_t n, bool bf16)
{
    if (!bf16) {
        memcpy((float *)dst + at, v, n * sizeof(float));
        return;
    }
    uint16_t *o = (uint16_t *)dst + at;
    if (clip_avx512()) {
        clip_avx512_to_bf16(o, v, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        o[i] = bf16_from_f32(v[i]);
}

/* Activations (transformers.activations): quick_gelu x*sigmoid(1.702x) (CLIP's original),
 * gelu with the exact erf, and the tanh approximation (gelu_new / gelu_pytorch_tanh). The
 * switch is outside the element loops. */
void clip_k_act(float *x, size_t n, enum clip_act act)
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

void clip_k_bias_act(float *o, const float *b, size_t n, bool act, enum clip_act kind)
{
    if (clip_avx512() ? clip_avx512_bias_act(o, b, n, act, kind)
                      : clip_avx2() && clip_avx2_bias_act(o, b, n, act, kind))
        return;
    if (b) /* no SIMD body here, or the erf gelu */
        for (size_t i = 0; i < n; i++)
            o[i] += b[i];
    if (act)
        clip_k_act(o, n, kind);
}

/* out(T,N) = in(T,K) @ W^T + b, then the epilogue: STORE writes out, RESIDUAL adds to it (out
 * is the residual stream: the add is fused), ACT applies the activation (out is the next
 * product's input). W is (N,K) row-major, as PyTorch's nn.Linear stores it. This is the one
 * place a matrix product with weights happens. fp32 shares the work out by output columns
 * (cblas_sgemm on a column range, ldc = N, then bias and activation on those columns while
 * they are in cache); bf16 by row chunks on the backend's packed weights (internal.h). */
struct lin_job {
    struct clip_ctx *c;
    const struct clip_linear *l;
    void *out;
    const void *in;
    int T;
    enum clip_epi epi;
    enum clip_act act;
    int chunk;                        /* bf16: rows per work item (a multiple of 16) */
    const struct clip_bf16_op *op[2]; /* bf16: for a full chunk, for the last one */
};

#define LIN_COLS 16 /* fp32: columns per work item */

static void linear_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct lin_job *j = arg;
    const struct clip_linear *l = j->l;
    int N = l->n_out, K = l->n_in;
    (void)worker;
    int n0 = (int)begin * LIN_COLS, n1 = (int)end * LIN_COLS < N ? (int)end * LIN_COLS : N;
    float *out = j->out;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->T, n1 - n0, K, 1.0f, j->in, K,
                l->w + (size_t)n0 * K, K, j->epi == CLIP_EPI_RESIDUAL ? 1.0f : 0.0f, out + n0, N);
    for (int t = 0; t < j->T; t++)
        clip_k_bias_act(out + (size_t)t * N + n0, l->b ? l->b + n0 : NULL, (size_t)(n1 - n0),
                        j->epi == CLIP_EPI_ACT, j->act);
}

/* fp32 on gemm_f32.c's panels: work items are panels. */
static void f32_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct lin_job *j = arg;
    const struct clip_linear *l = j->l;
    int np = l->f32_np;
    (void)worker;
    clip_f32_gemm(j->out, (size_t)l->n_out, j->in, (size_t)l->n_in, j->T, l->f32p, np, l->b,
                  l->n_in, l->n_out, (int)begin * np, (int)end * np, j->epi, j->act);
}

/* bf16: work items are row chunks, each one single-threaded oneDNN call on this worker's
 * stream and scratchpad; the weights are read whole by every worker (they sit in L3). */
static void linear_bf16_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct lin_job *j = arg;
    size_t osize =
        j->epi == CLIP_EPI_ACT || j->epi == CLIP_EPI_BF16 ? sizeof(uint16_t) : sizeof(float);
    for (size_t i = begin; i < end; i++) {
        size_t r0 = i * (size_t)j->chunk;
        const struct clip_bf16_op *op = (int)r0 + j->chunk < j->T ? j->op[0] : j->op[1];
        if (!clip_bf16_run(j->c->bf16, op, j->l, j->c->worker0 + worker,
                           (char *)j->out + r0 * (size_t)j->l->n_out * osize,
                           (const uint16_t *)j->in + r0 * (size_t)j->l->n_in))
            atomic_store(&j->c->failed, true);
    }
}

/* bf16 row chunks: one per worker, a multiple of 16 rows (clip_bf16_rows' contract). */
static int bf16_chunk(const struct clip_ctx *c, int T)
{
    int per = (T + c->n_workers - 1) / c->n_workers;
    return (per + 15) / 16 * 16;
}

/* bf16 on gemm_amx.c's kernel (clip_bf16_amx): a product is shared out by row chunks (a
 * multiple of 32 rows, one per worker) when there are many rows, else by 32-column blocks:
 * a text query's few rows then still use every core, and each worker streams only its part
 * of the weights (which come from memory, not cache, for a query). One job may hold several
 * products of the same rows (q, k and v; an MLP's parts), so they cost one hand-off. */
#define AMX_ROWS_PER_WORKER 128 /* row chunks from this many rows per worker on */
#define AMX_MAX_PRODUCTS    CLIP_MLP_PARTS

struct amx_job {
    int n; /* products */
    const struct clip_linear *l[AMX_MAX_PRODUCTS];
    void *out[AMX_MAX_PRODUCTS];
    const void *in[AMX_MAX_PRODUCTS];
    int T, chunk; /* chunk: rows per work item, or 0: items are column blocks */
    bool chain;   /* column blocks of one output that every product adds into, in order */
    enum clip_epi epi;
    enum clip_act act;
};

static int amx_blocks(const struct clip_linear *l)
{
    return (l->n_out + CLIP_AMX_COLS - 1) / CLIP_AMX_COLS;
}

static void amx_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct amx_job *j = arg;
    (void)worker;
    if (!j->chunk) { /* column blocks [begin, end) of the products laid end to end */
        int at = 0;
        for (int p = 0; p < j->n; p++) {
            int nb = amx_blocks(j->l[p]), b0 = (int)begin - at, b1 = (int)end - at;
            if (j->chain) {
                b0 = (int)begin;
                b1 = (int)end;
            } else {
                at += nb;
            }
            b0 = b0 < 0 ? 0 : b0;
            b1 = b1 > nb ? nb : b1;
            if (b0 < b1)
                clip_bf16_gemm(j->l[p], j->T, j->out[p], j->in[p], b0 * CLIP_AMX_COLS,
                               b1 * CLIP_AMX_COLS, j->epi, j->act);
        }
        return;
    }
    size_t osize =
        j->epi == CLIP_EPI_ACT || j->epi == CLIP_EPI_BF16 ? sizeof(uint16_t) : sizeof(float);
    for (size_t i = begin; i < end; i++) {
        int r0 = (int)i * j->chunk, rows = j->T - r0 < j->chunk ? j->T - r0 : j->chunk;
        for (int p = 0; p < j->n; p++) {
            const struct clip_linear *l = j->l[p];
            clip_bf16_gemm(l, rows, (char *)j->out[p] + (size_t)r0 * (size_t)l->n_out * osize,
                           (const uint16_t *)j->in[p] + (size_t)r0 * (size_t)l->n_in, 0, l->n_out,
                           j->epi, j->act);
        }
    }
}

/* Rows per work item for T rows, or 0 for column blocks. */
static int amx_chunk(const struct clip_ctx *c, int T)
{
    if (c->n_workers == 1 || (!c->pool && !c->team))
        return T;
    if (T < AMX_ROWS_PER_WORKER * c->n_workers)
        return 0;
    int per = (T + c->n_workers - 1) / c->n_workers;
    return (per + 31) / 32 * 32;
}

static void amx_run(struct clip_ctx *c, struct amx_job *j)
{
    j->chunk = amx_chunk(c, j->T);
    size_t n = 0;
    if (j->chunk)
        n = (size_t)((j->T + j->chunk - 1) / j->chunk);
    else if (j->chain)
        n = (size_t)amx_blocks(j->l[0]);
    else
        for (int p = 0; p < j->n; p++)
            n += (size_t)amx_blocks(j->l[p]);
    clip_k_for(c, n, 1, amx_task, j);
}

static void amx_linear(struct clip_ctx *c, void *out, const void *in, const struct clip_linear *l,
                       int T, enum clip_epi epi, enum clip_act act)
{
    struct amx_job j = {
        .n = 1, .l = { l }, .out = { out }, .in = { in }, .T = T, .epi = epi, .act = act
    };
    amx_run(c, &j);
}

void clip_k_linear(struct clip_ctx *c, void *out, const void *in, const struct clip_linear *l,
                   int T, enum clip_epi epi, enum clip_act act)
{
    struct lin_job j = { c, l, out, in, T, epi, act, 0, { NULL, NULL } };
    if (atomic_load(&c->failed))
        return;
    if (c->bf16 && clip_bf16_amx(l)) {
        amx_linear(c, out, in, l, T, epi, act);
        return;
    }
    if (c->bf16) {
        if (!l->packed) { /* e.g. an MLP half packed as parts: clip_k_mlp runs those */
            c->err = (struct sb_err){ 0 };
            sb_fail(&c->err, SB_EINTERNAL, "bf16: a product without packed weights");
            atomic_store(&c->failed, true);
            return;
        }
        /* the primitives are made here, on the calling thread; the chunks run on the pool */
        j.chunk = bf16_chunk(c, T);
        int n = (T + j.chunk - 1) / j.chunk, last = T - (n - 1) * j.chunk;
        if (clip_bf16_op(c->bf16, l, j.chunk, epi, act, &j.op[0], &c->err) != SB_OK ||
            clip_bf16_op(c->bf16, l, last, epi, act, &j.op[1], &c->err) != SB_OK) {
            atomic_store(&c->failed, true);
            return;
        }
        clip_k_for(c, (size_t)n, 1, linear_bf16_task, &j);
        return;
    }
    if (l->f32p && T <= CLIP_F32_MAX_ROWS) { /* few rows on the packed panels */
        size_t panels = ((size_t)l->n_out + (size_t)l->f32_np - 1) / (size_t)l->f32_np;
        clip_k_for(c, panels, 1, f32_task, &j);
        return;
    }
    if (!l->w) { /* only the panels were kept (pack_f32_text: never more rows than those) */
        c->err = (struct sb_err){ 0 };
        sb_fail(&c->err, SB_EINTERNAL, "fp32: %d rows for a product kept as panels only", T);
        atomic_store(&c->failed, true);
        return;
    }
    size_t items = ((size_t)l->n_out + LIN_COLS - 1) / LIN_COLS;
    clip_k_for(c, items, 1, linear_task, &j);
}

/* bf16 MLP in C-wide parts (clip_k_mlp). ops[0..2] for a full chunk, ops[3..5] for the last:
 * fc1 part, fc2 part 0 (with the bias), fc2 part p > 0. */
struct mlp_job {
    struct clip_ctx *c;
    const struct clip_layer *w;
    float *x;
    const uint16_t *in;
    uint16_t *h; /* (T, C) the activations of one part, each chunk in its own rows */
    int T, C, chunk;
    const struct clip_bf16_op *ops[6];
    int amx; /* -1: oneDNN ops, else gemm_amx.c with this activation (enum clip_act) */
};

static void mlp_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct mlp_job *j = arg;
    size_t C = (size_t)j->C;
    for (size_t i = begin; i < end; i++) {
        size_t r0 = i * (size_t)j->chunk;
        const struct clip_bf16_op *const *op = j->ops + ((int)r0 + j->chunk < j->T ? 0 : 3);
        uint16_t *h = j->h + r0 * C;
        bool ok = true;
        if (j->amx >= 0) {
            int rows = j->T - (int)r0 < j->chunk ? j->T - (int)r0 : j->chunk;
            for (int p = 0; p < j->w->mlp_parts; p++) {
                clip_bf16_gemm(&j->w->fc1_parts[p], rows, h, j->in + r0 * C, 0, j->C, CLIP_EPI_ACT,
                               (enum clip_act)j->amx);
                clip_bf16_gemm(&j->w->fc2_parts[p], rows, j->x + r0 * C, h, 0, j->C,
                               CLIP_EPI_RESIDUAL, (enum clip_act)j->amx);
            }
            continue;
        }
        for (int p = 0; p < j->w->mlp_parts && ok; p++) {
            ok = clip_bf16_run(j->c->bf16, op[0], &j->w->fc1_parts[p], j->c->worker0 + worker, h,
                               j->in + r0 * C);
            if (ok)
                ok = clip_bf16_run(j->c->bf16, op[p == 0 ? 1 : 2], &j->w->fc2_parts[p],
                                   j->c->worker0 + worker, j->x + r0 * C, h);
        }
        if (!ok)
            atomic_store(&j->c->failed, true);
    }
}

void clip_k_mlp(struct clip_ctx *c, float *x, const void *in, const struct clip_layer *w, int T,
                enum clip_act act)
{
    if (!c->bf16 || !w->mlp_parts) {
        clip_k_linear(c, c->mlp, in, &w->fc1, T, CLIP_EPI_ACT, act);     /* (T, F), activated */
        clip_k_linear(c, x, c->mlp, &w->fc2, T, CLIP_EPI_RESIDUAL, act); /* x += fc2(mlp) */
        return;
    }
    if (atomic_load(&c->failed))
        return;
    if (clip_bf16_amx(&w->fc1_parts[0])) {
        int chunk = amx_chunk(c, T);
        if (!chunk) { /* few rows: column blocks of every fc1 part, then of x through fc2's */
            size_t C = (size_t)w->fc1_parts[0].n_out;
            struct amx_job f1 = { .n = w->mlp_parts, .T = T, .epi = CLIP_EPI_ACT, .act = act };
            struct amx_job f2 = {
                .n = w->mlp_parts, .T = T, .chain = true, .epi = CLIP_EPI_RESIDUAL, .act = act
            };
            for (int p = 0; p < w->mlp_parts; p++) {
                void *h = (uint16_t *)c->mlp + (size_t)p * (size_t)T * C; /* (T, C) each */
                f1.l[p] = &w->fc1_parts[p];
                f1.in[p] = in;
                f1.out[p] = h;
                f2.l[p] = &w->fc2_parts[p];
                f2.in[p] = h;
                f2.out[p] = x;
            }
            amx_run(c, &f1);
            amx_run(c, &f2);
            return;
        }
        struct mlp_job j = { c, w, x, in, c->mlp, T, w->fc1_parts[0].n_in, chunk, { 0 }, (int)act };
        clip_k_for(c, (size_t)((T + chunk - 1) / chunk), 1, mlp_task, &j);
        return;
    }
    struct mlp_job j = {
        c, w, x, in, c->mlp, T, w->fc1_parts[0].n_in, bf16_chunk(c, T), { 0 }, -1
    };
    int n = (T + j.chunk - 1) / j.chunk, last = T - (n - 1) * j.chunk;
    for (int k = 0; k < 2; k++) {
        int M = k ? last : j.chunk;
        if (clip_bf16_op(c->bf16, &w->fc1_parts[0], M, CLIP_EPI_ACT, act, &j.ops[3 * k], &c->err) !=
                SB_OK ||
            clip_bf16_op(c->bf16, &w->fc2_parts[0], M, CLIP_EPI_RESIDUAL, act, &j.ops[3 * k + 1],
                         &c->err) != SB_OK ||
            clip_bf16_op(c->bf16, &w->fc2_parts[w->mlp_parts > 1 ? 1 : 0], M, CLIP_EPI_RESIDUAL,
                         act, &j.ops[3 * k + 2], &c->err) != SB_OK) {
            atomic_store(&c->failed, true);
            return;
        }
    }
    clip_k_for(c, (size_t)n, 1, mlp_task, &j);
}

/* nn.LayerNorm over rows [r0, r1) of (T, C): biased variance, eps inside the sqrt. out is f32
 * (may equal in) or, when bf16, a bf16 product input. */
static void layernorm_rows(void *out, bool bf16, const float *in, const float *w, const float *b,
                           int C, float eps, size_t r0, size_t r1)
{
    if (clip_avx512()) {
        size_t osize = bf16 ? sizeof(uint16_t) : sizeof(float);
        for (size_t r = r0; r < r1; r++)
            clip_avx512_layernorm_row((char *)out + r * (size_t)C * osize, bf16, in + r * (size_t)C,
                                      w, b, C, eps);
        return;
    }
    for (size_t r = r0; r < r1; r++) {
        const float *x = in + r * (size_t)C;
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
        if (bf16) {
            uint16_t *o = (uint16_t *)out + r * (size_t)C;
            for (int i = 0; i < C; i++)
                o[i] = bf16_from_f32((x[i] - mean) * inv * w[i] + b[i]);
        } else {
            float *o = (float *)out + r * (size_t)C;
            for (int i = 0; i < C; i++)
                o[i] = (x[i] - mean) * inv * w[i] + b[i];
        }
    }
}

struct ln_job {
    void *out;
    bool bf16;
    const float *in, *w, *b;
    int C;
    float eps;
};

static void ln_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct ln_job *j = arg;
    (void)worker;
    layernorm_rows(j->out, j->bf16, j->in, j->w, j->b, j->C, j->eps, begin, end);
}

/* out: a product input when to_input (bf16 in bf16 mode), else f32. */
void clip_k_layernorm(struct clip_ctx *c, void *out, bool to_input, const float *in, const float *w,
                      const float *b, int T, int C, float eps)
{
    struct ln_job j = { out, to_input && c->bf16, in, w, b, C, eps };
    clip_k_for(c, (size_t)T, 16, ln_task, &j);
}

/* Multi-head self-attention core (CLIPAttention between the projections): for each sequence
 * b and head h, out_i = sum_j softmax_j(q_i . k_j * E^-0.5) v_j, with j <= i when causal.
 * qkv is (B*L, 3C) laid out [q | k | v], head h at columns h*E of each; out (B*L, C) is a
 * product input. Two sgemm calls per (b, h) on the strided layout (lda = 3C): no transposes.
 * Scores, softmax and the weighted sum stay fp32 in both precisions. One task = one (b, h). */
struct att_job {
    void *out;
    bool bf16;
    bool in_bf16;          /* q, k, v are bf16 (the avx512bf16 kernel) */
    const void *q, *k, *v; /* row stride ld */
    size_t ld;
    float *scratch; /* (n_workers, att_per_worker(max_len, max_e)) */
    size_t per_worker;
    int L, C, H;
    bool causal;
};

/* Row-wise softmax of s (n, n) in place; causal rows i keep columns <= i (the rest become 0). */
static void softmax_rows(float *s, int n, bool causal)
{
    for (int i = 0; i < n; i++) {
        float *r = s + (size_t)i * n;
        int m = causal ? i + 1 : n;
        float mx = -INFINITY;
        for (int t = 0; t < m; t++)
            mx = r[t] > mx ? r[t] : mx;
        float sum = 0.0f;
        for (int t = 0; t < m; t++) {
            r[t] = expf(r[t] - mx);
            sum += r[t];
        }
        float inv = 1.0f / sum;
        for (int t = 0; t < m; t++)
            r[t] *= inv;
        for (int t = m; t < n; t++)
            r[t] = 0.0f;
    }
}

static void attention_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct att_job *j = arg;
    int L = j->L, C = j->C, E = C / j->H, row = (int)j->ld;
    float scale = 1.0f / sqrtf((float)E);
    float *s = j->scratch + (size_t)worker * j->per_worker; /* (L, L) */
    float *o = s + (size_t)L * L;                           /* (L, E) when bf16 */
    bool avx512 = clip_avx512();
    for (size_t item = begin; item < end; item++) {
        size_t b = item / (size_t)j->H, h = item % (size_t)j->H;
        size_t in_at = b * (size_t)L * j->ld + h * (size_t)E;
        if (j->in_bf16) {
            size_t at = b * (size_t)L * C + h * (size_t)E;
            (clip_amx() && E % 32 == 0 ? clip_amx_attention_head_bf16
                                       : clip_avx512_attention_head_bf16)(
                s, (const uint16_t *)j->q + in_at, (const uint16_t *)j->k + in_at,
                (const uint16_t *)j->v + in_at, j->ld, L, E, scale, j->causal,
                (uint16_t *)j->out + at, (size_t)C);
            continue;
        }
        const float *q = (const float *)j->q + in_at, *k = (const float *)j->k + in_at,
                    *v = (const float *)j->v + in_at;
        if (avx512) {
            size_t at = b * (size_t)L * C + h * (size_t)E;
            void *dst =
                j->bf16 ? (void *)((uint16_t *)j->out + at) : (void *)((float *)j->out + at);
            clip_avx512_attention_head(s, q, k, v, j->ld, L, E, scale, j->causal, dst, (size_t)C,
                                       j->bf16);
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, E, scale, q, row, k, row, 0.0f,
                    s, L);
        softmax_rows(s, L, j->causal);
        size_t at = b * (size_t)L * C + h * (size_t)E; /* out[b*L, h*E] */
        if (!j->bf16) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, E, L, 1.0f, s, L, v, row,
                        0.0f, (float *)j->out + at, C);
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, E, L, 1.0f, s, L, v, row, 0.0f, o,
                    E);
        for (int i = 0; i < L; i++)
            clip_k_store_input(j->out, at + (size_t)i * C, o + (size_t)i * E, (size_t)E, true);
    }
}

/* Floats of attention scratch per worker: the C path's or the AVX-512 kernel's. */
static size_t att_per_worker(size_t L, size_t E)
{
    size_t portable = L * (L + E), simd = clip_avx512_attention_scratch(L, E);
    return portable > simd ? portable : simd;
}

/* The core on q, k, v each (B*L, C) with row stride ld. */
static void attention_run(struct clip_ctx *c, void *out, bool in_bf16, const void *q, const void *k,
                          const void *v, size_t ld, int B, int L, int C, int H, bool causal)
{
    size_t per = att_per_worker(c->max_len, c->max_e);
    struct att_job j = { out, c->bf16 != NULL, in_bf16, q, k, v, ld, c->att, per, L, C, H, causal };
    clip_k_for(c, (size_t)B * (size_t)H, 1, attention_task, &j);
}

void clip_k_attention(struct clip_ctx *c, void *out, const float *qkv, int B, int L, int C, int H,
                      bool causal)
{
    attention_run(c, out, false, qkv, qkv + C, qkv + 2 * (size_t)C, 3 * (size_t)C, B, L, C, H,
                  causal);
}

void clip_k_l2_normalize(float *x, int D)
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

/* One pre-LN block, as HF CLIPEncoderLayer computes it. x is (T, C), updated in place; the
 * residual adds happen inside the out_proj and fc2 products. */
void clip_k_encoder_layer(struct clip_ctx *c, const struct clip_layer *w,
                          const struct clip_tower_config *tc, float *x, int B, int L, bool causal)
{
    int T = B * L, C = tc->hidden;
    clip_k_layernorm(c, c->a, true, x, w->ln1_w, w->ln1_b, T, C, tc->ln_eps);
    if (w->qkv_split) {
        /* bf16: q, k, v as C x C products into panels T + 16 rows apart; bf16 panels and the
         * bf16 head kernel where the CPU has AVX512-BF16, else f32 */
        size_t panel = ((size_t)T + 16) * (size_t)C;
        bool in_bf16 = clip_avx512_bf16() && (C / tc->heads) % 16 == 0;
        void *qkv[3];
        enum clip_epi epi = in_bf16 ? CLIP_EPI_BF16 : CLIP_EPI_STORE;
        struct amx_job j = { .n = 3, .T = T, .epi = epi, .act = tc->act };
        for (int p = 0; p < 3; p++) {
            qkv[p] =
                in_bf16 ? (void *)((uint16_t *)c->qkv + p * panel) : (void *)(c->qkv + p * panel);
            j.l[p] = &w->qkv_parts[p];
            j.out[p] = qkv[p];
            j.in[p] = c->a;
        }
        if (clip_bf16_amx(&w->qkv_parts[0]))
            amx_run(c, &j); /* the three in one hand-off */
        else
            for (int p = 0; p < 3; p++)
                clip_k_linear(c, qkv[p], c->a, &w->qkv_parts[p], T, epi, tc->act);
        attention_run(c, c->a, in_bf16, qkv[0], qkv[1], qkv[2], (size_t)C, B, L, C, tc->heads,
                      causal);
    } else {
        clip_k_linear(c, c->qkv, c->a, &w->qkv, T, CLIP_EPI_STORE, tc->act); /* (T, 3C) */
        clip_k_attention(c, c->a, c->qkv, B, L, C, tc->heads, causal);
    }
    clip_k_linear(c, x, c->a, &w->out, T, CLIP_EPI_RESIDUAL, tc->act); /* x += out_proj(attn) */
    clip_k_layernorm(c, c->a, true, x, w->ln2_w, w->ln2_b, T, C, tc->ln_eps);
    clip_k_mlp(c, x, c->a, w, T, tc->act); /* x += fc2(act(fc1(a))) */
}

/* pixels (B, 3, S, S) -> patches (B*N, 3*p*p), a product input, each row ordered (channel,
 * row, column) like the flattened Conv2d kernel; pixels right of / below G*p are dropped, as
 * the strided conv drops them. */
void clip_k_unfold_patches(void *patches, bool bf16, const float *pixels, int B, int S, int p,
                           int G)
{
    size_t K = 3 * (size_t)p * (size_t)p;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++) {
                size_t at = ((size_t)b * G * G + (size_t)gy * G + (size_t)gx) * K;
                for (int ch = 0; ch < 3; ch++)
                    for (int y = 0; y < p; y++) {
                        const float *src =
                            pixels +
                            (((size_t)b * 3 + (size_t)ch) * S + (size_t)gy * p + (size_t)y) * S +
                            (size_t)gx * p;
                        clip_k_store_input(patches, at, src, (size_t)p, bf16);
                        at += (size_t)p;
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

/* CLIPVisionEmbeddings, pre_layrnorm and the encoder layers into c->x (B*L, C). */
static void vision_states(struct clip_ctx *c, const float *pixels, int B)
{
    const struct clip_model *m = c->m;
    const struct clip_config *cfg = &m->cfg;
    const struct clip_vision_weights *w = &m->vision;
    const struct clip_tower_config *tc = &cfg->vision;
    int S = cfg->image_size, p = cfg->patch_size, G = S / p, N = G * G, L = N + 1;
    int C = tc->hidden;
    if (c->rank == 0) /* a team's serial parts: its first member, then a barrier */
        clip_k_unfold_patches(c->a, c->bf16 != NULL, pixels, B, S, p, G);
    clip_k_barrier(c);
    clip_k_linear(c, c->tmp, c->a, &w->patch, B * N, CLIP_EPI_STORE, tc->act); /* (B*N, C) */
    if (c->rank == 0)
        vision_embed(c->x, c->tmp, w->class_emb, w->pos_emb, B, N, C);
    clip_k_barrier(c);
    clip_k_layernorm(c, c->x, false, c->x, w->pre_ln_w, w->pre_ln_b, B * L, C, tc->ln_eps);
    for (int l = 0; l < tc->layers; l++)
        clip_k_encoder_layer(c, &w->layers[l], tc, c->x, B, L, false);
}

/* CLIPVisionTransformer + visual_projection. out (B, D). */
static void vision_forward_all(struct clip_ctx *c, const float *pixels, int B, float *out)
{
    const struct clip_model *m = c->m;
    const struct clip_config *cfg = &m->cfg;
    const struct clip_vision_weights *w = &m->vision;
    const struct clip_tower_config *tc = &cfg->vision;
    int S = cfg->image_size, p = cfg->patch_size, G = S / p, L = G * G + 1;
    int C = tc->hidden, D = cfg->proj_dim;
    vision_states(c, pixels, B);
    for (int b = 0; b < B && c->rank == 0; b++) /* pooled_output = last_hidden_state[:, 0, :] */
        memcpy(c->tmp + (size_t)b * C, c->x + (size_t)b * L * C, (size_t)C * sizeof(float));
    clip_k_barrier(c);
    clip_k_layernorm(c, c->a, true, c->tmp, w->post_ln_w, w->post_ln_b, B, C, tc->ln_eps);
    /* into scratch: a bf16 product writes clip_bf16_rows(B) rows */
    clip_k_linear(c, c->qkv, c->a, &w->proj, B, CLIP_EPI_STORE, tc->act);
    if (c->rank != 0)
        return;
    memcpy(out, c->qkv, (size_t)B * D * sizeof(float));
    for (int b = 0; b < B; b++)
        clip_k_l2_normalize(out + (size_t)b * D, D);
}

struct image_pass {
    const float *pixels;
    int B;
    float *out;
};

static void image_pass(struct clip_ctx *v, void *arg)
{
    const struct image_pass *p = arg;
    vision_forward_all(v, p->pixels, p->B, p->out);
}

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Batches split by images: each worker runs the whole tower on its group of images, alone, in
 * its own rows of the scratch (a view of the ctx: no pool, worker index and buffers offset), so
 * a layer costs no hand-offs between threads and each worker's rows stay in its cache. */
struct group_job {
    struct clip_ctx *c;
    struct clip_ctx views[64];
    const float *pixels;
    float *out;
    int B, per; /* images, images per group */
};

static void group_task(void *arg, size_t begin, size_t end, int worker)
{
    struct group_job *j = arg;
    (void)worker;
    const struct clip_config *cfg = &j->c->m->cfg;
    size_t S = (size_t)cfg->image_size, D = (size_t)cfg->proj_dim;
    for (size_t g = begin; g < end; g++) {
        int b0 = (int)g * j->per, n = j->B - b0 < j->per ? j->B - b0 : j->per;
        vision_forward_all(&j->views[g], j->pixels + (size_t)b0 * 3 * S * S, n,
                           j->out + (size_t)b0 * D);
    }
}

/* The view of c for group g starting at image b0: rows from b0 * L + 16 g on in every buffer
 * (16 rows apart: a bf16 product may write up to 15 rows past a group's last, clip_bf16_rows;
 * clip_ctx_new allocates 16 spare rows per worker). */
static void group_view(struct clip_ctx *v, const struct clip_ctx *c, int g, int b0)
{
    const struct clip_config *cfg = &c->m->cfg;
    const struct clip_tower_config *tc = &cfg->vision;
    size_t G = (size_t)(cfg->image_size / cfg->patch_size), L = G * G + 1,
           r0 = (size_t)b0 * L + 16 * (size_t)g;
    size_t C = (size_t)tc->hidden, K = 3 * (size_t)cfg->patch_size * (size_t)cfg->patch_size;
    size_t in_size = c->bf16 ? sizeof(uint16_t) : sizeof(float);
    *v = (struct clip_ctx){ .m = c->m, .bf16 = c->bf16, .max_batch = c->max_batch };
    atomic_init(&v->failed, false);
    v->n_workers = 1;
    v->worker0 = c->worker0 + g;
    v->max_len = c->max_len;
    v->max_e = c->max_e;
    v->x = c->x + r0 * C;
    v->qkv = c->qkv + r0 * max_sz(3 * C, (size_t)cfg->proj_dim);
    v->tmp = c->tmp + r0 * C;
    v->a = (char *)c->a + r0 * max_sz(C, K) * in_size;
    v->mlp = (char *)c->mlp + r0 * (size_t)tc->intermediate * in_size;
    v->att = c->att + (size_t)g * att_per_worker(c->max_len, c->max_e);
    v->ids = c->ids;
    v->head_q = c->head_q;
}

static void vision_forward(struct clip_ctx *c, const float *pixels, int B, float *out)
{
    int per = (B + c->n_workers - 1) / c->n_workers, groups = (B + per - 1) / per;
    /* groups only when every worker gets images */
    if (!c->pool || c->n_workers > 64 || groups < c->n_workers) {
        struct image_pass p = { pixels, B, out }; /* every worker on every image: a team */
        clip_k_team_run(c, image_pass, &p);
        return;
    }
    struct group_job job, *j = &job;
    j->c = c;
    j->pixels = pixels;
    j->out = out;
    j->B = B;
    j->per = per;
    for (int g = 0; g < groups; g++)
        group_view(&j->views[g], c, g, g * per);
    sb_pool_for(c->pool, (size_t)groups, 1, group_task, j);
    for (int g = 0; g < groups; g++)
        if (atomic_load(&j->views[g].failed)) {
            if (!c->err.code)
                c->err = j->views[g].err;
            atomic_store(&c->failed, true);
        }
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
struct text_pass {
    int pos;
    float *out;
};

/* CLIPTextEmbeddings: token + position, rows [begin, end). */
static void text_embed_task(void *arg, size_t begin, size_t end, int worker)
{
    struct clip_ctx *c = arg;
    const struct clip_text_weights *w = &c->m->text;
    size_t C = (size_t)c->m->cfg.text.hidden;
    (void)worker;
    for (size_t i = begin; i < end; i++) {
        const float *te = w->tok_emb + (size_t)c->ids[i] * C, *pe = w->pos_emb + i * C;
        float *o = c->x + i * C;
        for (size_t k = 0; k < C; k++)
            o[k] = te[k] + pe[k];
    }
}

static void text_pass(struct clip_ctx *c, void *arg)
{
    const struct text_pass *p = arg;
    const struct clip_model *m = c->m;
    const struct clip_text_weights *w = &m->text;
    const struct clip_tower_config *tc = &m->cfg.text;
    int C = tc->hidden, n = p->pos + 1;
    clip_k_for(c, (size_t)n, 1, text_embed_task, c);
    for (int l = 0; l < tc->layers; l++)
        clip_k_encoder_layer(c, &w->layers[l], tc, c->x, 1, n, true);
    clip_k_layernorm(c, c->a, true, c->x + (size_t)p->pos * C, w->final_ln_w, w->final_ln_b, 1, C,
                     tc->ln_eps);
    clip_k_linear(c, c->qkv, c->a, &w->proj, 1, CLIP_EPI_STORE, tc->act);
    if (c->rank == 0) {
        memcpy(p->out, c->qkv, (size_t)m->cfg.proj_dim * sizeof(float));
        clip_k_l2_normalize(p->out, m->cfg.proj_dim);
    }
}

/* ids are in c->ids */
static void text_forward(struct clip_ctx *c, int pos, float *out)
{
    struct text_pass p = { pos, out };
    clip_k_team_run(c, text_pass, &p);
}

/* ------------------------------------------------------------------------------------------ */
/* Public API */

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
    atomic_init(&c->failed, false);
    size_t rows = 1, C = 1, F = 1, L = 1, K = 1, E = 1;
    if (m->towers & CLIP_TOWER_VISION) {
        size_t G = (size_t)(cfg->image_size / cfg->patch_size);
        L = G * G + 1;
        rows = (size_t)max_batch * L; /* no overflow: each factor is capped at parse time */
        C = (size_t)cfg->vision.hidden;
        F = (size_t)cfg->vision.intermediate;
        K = 3 * (size_t)cfg->patch_size * (size_t)cfg->patch_size;
        E = C / (size_t)cfg->vision.heads;
    }
    if (m->towers & CLIP_TOWER_TEXT) {
        rows = max_sz(rows, (size_t)cfg->max_pos);
        L = max_sz(L, (size_t)cfg->max_pos);
        C = max_sz(C, (size_t)cfg->text.hidden);
        F = max_sz(F, (size_t)cfg->text.intermediate);
        E = max_sz(E, (size_t)(cfg->text.hidden / cfg->text.heads));
    }
    /* clip_bf16_rows() rounds small products up to 16 rows: 16 spare rows after the batch, and
     * after each worker's group of images (vision_forward) */
    rows += 16 * (size_t)c->n_workers;
    c->max_len = L;
    c->max_e = E;
    size_t in_size = m->precision == CLIP_PRECISION_BF16 ? sizeof(uint16_t) : sizeof(float);
    bool ok = true;
    c->x = alloc_rows(rows, C, sizeof(float), &ok);
    c->qkv = alloc_rows(rows, max_sz(3 * C, (size_t)cfg->proj_dim), sizeof(float), &ok);
    c->tmp = alloc_rows(rows, C, sizeof(float), &ok);
    c->a = alloc_rows(rows, max_sz(C, K), in_size, &ok);
    c->mlp = alloc_rows(rows, F, in_size, &ok);
    c->att = alloc_rows((size_t)c->n_workers, att_per_worker(L, E), sizeof(float), &ok);
    c->ids = alloc_rows((size_t)cfg->max_pos, 1, sizeof(*c->ids), &ok);
    c->head_q = alloc_rows(C, 1, sizeof(float), &ok);
    if (!ok) {
        clip_ctx_free(c);
        return sb_fail(err, SB_ENOMEM, "no memory for a batch of %d", max_batch);
    }
    if (m->precision == CLIP_PRECISION_BF16) {
        int rc = clip_bf16_ctx_new(m->bf16, c->n_workers, &c->bf16, err);
        if (rc) {
            clip_ctx_free(c);
            return rc;
        }
    }
    /* One threading runtime: with a pool, every product is shared out by our workers, so
     * OpenBLAS must not start its own threads (process-wide setting; see model.h). */
    if (pool)
        openblas_set_num_threads(1);
    *out = c;
    return SB_OK;
}

void clip_ctx_free(struct clip_ctx *c)
{
    if (!c)
        return;
    clip_bf16_ctx_free(c->bf16);
    free(c->x);
    free(c->qkv);
    free(c->tmp);
    free(c->a);
    free(c->mlp);
    free(c->att);
    free(c->ids);
    free(c->head_q);
    free(c);
}

/* A bf16 product that failed is reported once the pass is over (workers cannot fail it). */
int clip_pass_status(struct clip_ctx *c, struct sb_err *err)
{
    if (!atomic_load(&c->failed))
        return SB_OK;
    atomic_store(&c->failed, false);
    if (c->err.code)
        return sb_fail(err, c->err.code, "%s", c->err.msg);
    return sb_fail(err, SB_EINTERNAL, "onednn: a bf16 matmul failed");
}

int clip_embed_images(struct clip_ctx *c, const float *pixels, int B, float *out,
                      struct sb_err *err)
{
    if (!(c->m->towers & CLIP_TOWER_VISION))
        return sb_fail(err, SB_EMODEL, "embed images: the vision tower is not loaded");
    if (B < 1 || B > c->max_batch)
        return sb_fail(err, SB_EINVAL, "embed images: batch %d is not in [1, %d]", B, c->max_batch);
    if (c->m->cfg.family == CLIP_FAMILY_SIGLIP)
        return siglip_embed_images(c, pixels, B, out, err);
    c->err = (struct sb_err){ 0 };
    vision_forward(c, pixels, B, out);
    return clip_pass_status(c, err);
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
    c->err = (struct sb_err){ 0 };
    if (cfg->family == CLIP_FAMILY_SIGLIP) {
        int32_t pad = c->m->spm ? spm_pad_id(c->m->spm) : cfg->pad_token_id;
        if (pad < 0 || pad >= cfg->vocab_size)
            return sb_fail(err, SB_EMODEL, "embed text: pad id %d is outside the vocabulary",
                           (int)pad);
        siglip_text_forward(c, ids, n, out);
        return clip_pass_status(c, err);
    }
    if (ids != c->ids)
        memcpy(c->ids, ids, (size_t)n * sizeof(*ids));
    text_forward(c, eos_position(ids, n, cfg->eos_token_id), out);
    return clip_pass_status(c, err);
}

int clip_embed_text(struct clip_ctx *c, const char *text, float *out, int32_t *ids_out, int *n_ids,
                    struct sb_err *err)
{
    const struct clip_model *m = c->m;
    size_t n = 0, P = (size_t)m->cfg.max_pos;
    int rc;
    if (m->spm) {
        rc = spm_tokenize_siglip(m->spm, text, c->ids, P, &n, err);
    } else if (m->bpe) {
        /* SigLIP 2's GemmaTokenizerFast (add_eos_token: the post-processor appends <eos>),
         * truncation=True with max_length=64 keeping the <eos> */
        size_t len = strlen(text);
        rc = len > BPE_MAX_INPUT
                 ? sb_fail(err, SB_ETOOBIG, "embed text: %zu bytes of text is too long", len)
                 : bpe_encode_truncated(m->bpe, text, len, true, P, c->ids, &n, err);
    } else if (m->tok) {
        rc = clip_tokenize(m->tok, text, c->ids, P, &n, err);
    } else {
        return sb_fail(err, SB_EMODEL, "embed text: the model folder has no tokenizer files");
    }
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

int clip_vision_states(struct clip_ctx *c, const float *pixels, int B, bool post_ln,
                       struct sb_err *err)
{
    const struct clip_model *m = c->m;
    if (!(m->towers & CLIP_TOWER_VISION))
        return sb_fail(err, SB_EMODEL, "vision states: the vision tower is not loaded");
    if (B < 1 || B > c->max_batch)
        return sb_fail(err, SB_EINVAL, "vision states: batch %d is not in [1, %d]", B,
                       c->max_batch);
    if (post_ln && (m->cfg.family != CLIP_FAMILY_SIGLIP || !m->vision.post_ln_w))
        return sb_fail(err, SB_EINVAL, "vision states: no post_layernorm for every token");
    c->err = (struct sb_err){ 0 };
    if (m->cfg.family == CLIP_FAMILY_SIGLIP)
        siglip_vision_states(c, pixels, B, post_ln);
    else
        vision_states(c, pixels, B);
    return clip_pass_status(c, err);
}
