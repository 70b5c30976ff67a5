/* lm_bf16.c - bf16 precision of the decoder (lm_model_set_precision) and the bf16 product
 * runner that lm.c's prefill and Moondream's vision tower (moondream_vision.c) share: the
 * clip_bf16 backend of clip.c (oneDNN, packed weights) driven like clip.c's linear(): row
 * chunks of the activations, a multiple of 16 rows each and at most LM_BF16_ROWS, one
 * single-threaded oneDNN call per pool worker; each worker converts its f32 rows to bf16. */
#include "lm_internal.h"

#include "shoebox/err.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* bf16 precision */

int lm_pack_mat(struct lm_model *m, struct lm_mat *l, float *buf, struct sb_err *err)
{
    if (!l->w)
        return SB_OK; /* LM_ARCH_PHI has no up */
    lm_widen_rows(buf, l->w, l->dt, l->n_in, 0, l->n_out);
    l->bf = (struct clip_linear){ .w = buf, .b = l->b, .n_out = l->n_out, .n_in = l->n_in };
    int rc = clip_bf16_pack(m->bf16, &l->bf, err);
    l->bf.w = NULL;
    if (rc)
        l->bf.packed = NULL;
    else
        m->bf16_bytes += (size_t)l->n_out * (size_t)l->n_in * sizeof(uint16_t);
    return rc;
}

int lm_model_set_precision(struct lm_model *m, enum clip_precision want, struct sb_err *err)
{
    if (!clip_bf16_compiled() || want == CLIP_PRECISION_FP32 ||
        (want == CLIP_PRECISION_AUTO && !clip_cpu_native_bf16()) || m->bf16)
        return SB_OK;
    size_t most = 0;
    for (int i = 0; i < m->cfg.layers; i++) {
        const struct lm_layer *L = &m->layers[i];
        const struct lm_mat *all[7] = { &L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down };
        for (int j = 0; j < 7; j++) {
            size_t n = (size_t)all[j]->n_out * (size_t)all[j]->n_in;
            most = n > most ? n : most;
        }
    }
    float *buf = malloc((most ? most : 1) * sizeof(float));
    if (!buf)
        return sb_fail(err, SB_ENOMEM, "no memory to pack the decoder in bf16");
    int rc = clip_bf16_new(&m->bf16, err);
    for (int i = 0; i < m->cfg.layers && !rc; i++) {
        struct lm_layer *L = &m->layers[i];
        struct lm_mat *all[7] = { &L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down };
        for (int j = 0; j < 7 && !rc; j++)
            rc = lm_pack_mat(m, all[j], buf, err);
    }
    free(buf);
    if (rc) { /* back to fp32 whole: no half-packed model */
        for (int i = 0; i < m->cfg.layers; i++) {
            struct lm_layer *L = &m->layers[i];
            struct lm_mat *all[7] = { &L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down };
            for (int j = 0; j < 7; j++)
                all[j]->bf = (struct clip_linear){ 0 };
        }
        clip_bf16_free(m->bf16);
        m->bf16 = NULL;
        m->bf16_bytes = 0;
    }
    return rc;
}

enum clip_precision lm_model_precision(const struct lm_model *m)
{
    return m->bf16 ? CLIP_PRECISION_BF16 : CLIP_PRECISION_FP32;
}

/* ------------------------------------------------------------------------------------------ */
/* Runner */

int lm_bf16_exec_init(struct lm_bf16_exec *x, struct clip_bf16 *b, struct sb_pool *pool,
                      size_t rows, size_t width, struct sb_err *err)
{
    memset(x, 0, sizeof(*x));
    x->pool = pool;
    x->n_workers = pool ? sb_pool_size(pool) + 1 : 1;
    size_t n;
    rows = (rows + 15) / 16 * 16;
    if (!sb_mul3_size(rows, width, sizeof(uint16_t), &n) || !(x->in16 = calloc(1, n ? n : 1)))
        return sb_fail(err, SB_ENOMEM, "no memory for bf16 product inputs");
    int rc = clip_bf16_ctx_new(b, x->n_workers, &x->ctx, err);
    if (rc)
        lm_bf16_exec_release(x);
    return rc;
}

void lm_bf16_exec_release(struct lm_bf16_exec *x)
{
    free(x->in16);
    clip_bf16_ctx_free(x->ctx);
    memset(x, 0, sizeof(*x));
}

struct lin16_job {
    struct lm_bf16_exec *x;
    void *out;
    const float *in;      /* f32 input, converted per chunk into x->in16; or NULL: */
    const uint16_t *in16; /* the bf16 input */
    const struct clip_linear *l;
    int T, chunk;
    size_t osize;
    const struct clip_bf16_op *op[2]; /* for a full chunk, for the last one */
};

static void linear_task(void *arg, size_t begin, size_t end, int worker)
{
    const struct lin16_job *j = arg;
    size_t K = (size_t)j->l->n_in, N = (size_t)j->l->n_out;
    for (size_t i = begin; i < end; i++) {
        int r0 = (int)i * j->chunk, rows = r0 + j->chunk < j->T ? j->chunk : j->T - r0;
        const uint16_t *in = j->in16 + (size_t)r0 * K;
        if (j->in) {
            uint16_t *dst = j->x->in16 + (size_t)r0 * K;
            clip_k_store_input(dst, 0, j->in + (size_t)r0 * K, (size_t)rows * K, true);
            in = dst;
        }
        if (!clip_bf16_run(j->x->ctx, r0 + j->chunk < j->T ? j->op[0] : j->op[1], j->l, worker,
                           (char *)j->out + (size_t)r0 * N * j->osize, in))
            atomic_store(&j->x->failed, true);
    }
}

void lm_bf16_linear(struct lm_bf16_exec *x, void *out, const float *in, const uint16_t *in16,
                    const struct clip_linear *l, int T, enum clip_epi epi, enum clip_act act)
{
    if (atomic_load(&x->failed))
        return;
    struct lin16_job j = { x, out, in, in ? x->in16 : in16, l, T, 0, sizeof(float), { NULL } };
    if (epi == CLIP_EPI_ACT || epi == CLIP_EPI_BF16)
        j.osize = sizeof(uint16_t);
    int per = (T + x->n_workers - 1) / x->n_workers;
    j.chunk = (per + 15) / 16 * 16;
    j.chunk = j.chunk < LM_BF16_ROWS ? j.chunk : LM_BF16_ROWS;
    int n = (T + j.chunk - 1) / j.chunk, last = T - (n - 1) * j.chunk;
    last = (last + 15) / 16 * 16; /* the padding rows are in the buffers (rows rounded to 16) */
    if (clip_bf16_op(x->ctx, l, j.chunk, epi, act, &j.op[0], &x->err) != SB_OK ||
        clip_bf16_op(x->ctx, l, last, epi, act, &j.op[1], &x->err) != SB_OK) {
        atomic_store(&x->failed, true);
        return;
    }
    sb_pool_for(x->pool, (size_t)n, 1, linear_task, &j);
}

int lm_bf16_status(struct lm_bf16_exec *x, const char *what, struct sb_err *err)
{
    if (!atomic_load(&x->failed))
        return SB_OK;
    atomic_store(&x->failed, false);
    struct sb_err why = x->err;
    x->err = (struct sb_err){ 0 };
    if (why.code)
        return sb_fail(err, why.code, "%s: %s", what, why.msg);
    return sb_fail(err, SB_EINTERNAL, "%s: a bf16 product failed", what);
}
