/* linear_dnnl.c - the bf16 backend of clip.c's linear(): on CPUs with AMX, gemm_amx.c's kernel
 * (weights packed in its tile layout; no primitives; SHOEBOX_BF16_GEMM=onednn keeps oneDNN);
 * elsewhere oneDNN matmul primitives (AVX512-BF16 brgemm kernels) on weights packed once at
 * load, as below. See internal.h for the contract;
 * linear_nodnnl.c is the variant built without oneDNN (the whole file below is compiled only
 * when the build found oneDNN, which defines SHOEBOX_HAVE_DNNL).
 *
 * Layout: a linear's W (N, K) row-major is, to oneDNN, the (K, N) weights of dst = src @ W^T
 * with strides (1, K). It is reordered once (f32 -> bf16, rounding to nearest even) into the
 * blocked layout the matmul primitive asks for ("any" at creation; the same for every row
 * count). A primitive depends on the row count, so the ctx caches one per (row bucket, K, N,
 * epilogue). Workers share a product out by rows: oneDNN 2.6's brgemm kernels want dense
 * output rows (a column slice with a wider row stride falls back to a slow gemm), and row
 * chunks keep each worker's weights stream whole.
 *
 * Threads: Debian's libdnnl runs its kernels on OpenMP (libgomp). A ctx with one worker runs
 * each product from the calling thread with oneDNN's own team. With several workers (clip.c
 * with a pool: row chunks, one per worker) every call is made single-threaded by setting the
 * calling thread's OpenMP thread count to 1 around primitive creation and execution (a
 * per-thread setting, found with dlsym since libgomp comes in only as libdnnl's dependency).
 * The packed layout is kept with the weights: asking oneDNN again under another thread count
 * can give another blocking, and weights read in the wrong one give garbage. */
#if SHOEBOX_HAVE_DNNL

#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <cpuid.h>
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_OPS 256 /* cached primitives per ctx: ~6 per row bucket */

struct clip_packed {
    void *data;            /* bf16 weights in the primitive's blocked layout, or gemm_amx.c's */
    dnnl_memory_desc_t md; /* that layout: the query depends on OpenMP's thread count */
    bool amx;              /* data is in gemm_amx.c's tile layout (no primitive) */
};

struct clip_bf16 {
    dnnl_engine_t engine;
    dnnl_stream_t stream;     /* for the reorders at load */
    struct clip_packed **all; /* every packed linear, to free */
    size_t n, cap;
    bool amx; /* products on gemm_amx.c's kernel instead of oneDNN */
};

/* Per worker: memory objects whose data handles are set on each run. */
struct bf16_mem {
    dnnl_memory_t src, wei, bias, dst, pad;
};

struct bf16_prim {
    dnnl_primitive_t prim;
    struct bf16_mem *mem; /* (n_workers) */
};

struct clip_bf16_op {
    int M, K, N;    /* M is the row bucket */
    size_t scratch; /* bytes of scratchpad it needs */
    enum clip_epi epi;
    enum clip_act act;
    bool bias;
    bool amx; /* gemm_amx.c's kernel: no primitive */
    struct bf16_prim p;
};

struct clip_bf16_ctx {
    struct clip_bf16 *b;
    int n_workers;
    dnnl_stream_t *streams; /* (n_workers) */
    void **scratch;         /* (n_workers) user scratchpads of scratch_size[i] bytes */
    size_t *scratch_size;   /* (n_workers); each grown by its own worker in clip_bf16_run */
    pthread_mutex_t mu;     /* guards ops / n_ops: workers may look primitives up at once */
    struct clip_bf16_op *ops[MAX_OPS];
    int n_ops;
    void (*omp_set_num_threads)(int); /* libgomp's, or NULL */
    int (*omp_get_max_threads)(void);
};

/* ------------------------------------------------------------------------------------------ */
/* CPU */

bool clip_bf16_compiled(void)
{
    return true;
}

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

bool clip_cpu_native_bf16(void)
{
    if (sb_isa_max() < SB_ISA_AVX512) /* SHOEBOX_MAX_ISA: as a CPU without either */
        return false;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE: xgetbv works */
        return false;
    uint64_t xcr0 = xgetbv0();
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return false;
    bool amx = (d & (1u << 22)) && (d & (1u << 24)); /* AMX-BF16, AMX-TILE */
    /* XTILECFG and XTILEDATA enabled, and (Linux >= 5.16) permission for this process */
    if (amx && (xcr0 & (3ull << 17)) == (3ull << 17) &&
        syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0)
        return true;
    unsigned a1, b1, c1, d1;
    bool avx512_bf16 = __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 & (1u << 5));
    return avx512_bf16 && (xcr0 & 0xe6) == 0xe6; /* SSE, AVX, opmask, ZMM state */
}

/* ------------------------------------------------------------------------------------------ */
/* Descriptors */

static int dnnl_fail(struct sb_err *err, const char *what, dnnl_status_t st)
{
    if (st == dnnl_out_of_memory)
        return sb_fail(err, SB_ENOMEM, "onednn: %s: out of memory", what);
    return sb_fail(err, SB_EINTERNAL, "onednn: %s failed (status %d)", what, (int)st);
}

/* The matmul (M, K) bf16 @ (K, w) -> (M, w) with output row stride ldo; weights `wmd`, or
 * "any" when wmd is NULL. Scratchpad is ours (per worker), so execution never allocates. */
static dnnl_status_t matmul_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng, int M, int K, int w,
                               int ldo, enum clip_epi epi, enum clip_act act, bool bias,
                               const dnnl_memory_desc_t *wmd)
{
    dnnl_memory_desc_t src, wei, dst, bmd;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_matmul_desc_t md;
    dnnl_status_t st =
        dnnl_memory_desc_init_by_tag(&src, 2, (dnnl_dims_t){ M, K }, dnnl_bf16, dnnl_ab);
    if (st == dnnl_success && wmd)
        wei = *wmd;
    else if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&wei, 2, (dnnl_dims_t){ K, w }, dnnl_bf16,
                                          dnnl_format_tag_any);
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_strides(
            &dst, 2, (dnnl_dims_t){ M, w },
            epi == CLIP_EPI_ACT || epi == CLIP_EPI_BF16 ? dnnl_bf16 : dnnl_f32,
            (dnnl_dims_t){ ldo, 1 });
    if (st == dnnl_success)
        st = dnnl_memory_desc_init_by_tag(&bmd, 2, (dnnl_dims_t){ 1, w }, dnnl_f32, dnnl_ab);
    if (st == dnnl_success)
        st = dnnl_matmul_desc_init(&md, &src, &wei, bias ? &bmd : NULL, &dst);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_create(&attr);
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (st == dnnl_success)
        st = dnnl_post_ops_create(&po);
    if (st == dnnl_success && epi == CLIP_EPI_RESIDUAL)
        st = dnnl_post_ops_append_sum(po, 1.0f);
    if (st == dnnl_success && epi == CLIP_EPI_ACT) {
        /* transformers.activations: quick_gelu x*sigmoid(1.702x) is oneDNN's swish(1.702) */
        dnnl_alg_kind_t alg = act == CLIP_ACT_QUICK_GELU ? dnnl_eltwise_swish
                              : act == CLIP_ACT_GELU     ? dnnl_eltwise_gelu_erf
                                                         : dnnl_eltwise_gelu_tanh;
        st = dnnl_post_ops_append_eltwise(po, 1.0f, alg, act == CLIP_ACT_QUICK_GELU ? 1.702f : 0.0f,
                                          0.0f);
    }
    if (st == dnnl_success)
        st = dnnl_primitive_attr_set_post_ops(attr, po);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(pd, &md, attr, eng, NULL);
    dnnl_post_ops_destroy(po);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Model: engine and packed weights */

int clip_bf16_new(struct clip_bf16 **out, struct sb_err *err)
{
    struct clip_bf16 *b = calloc(1, sizeof(*b));
    if (!b)
        return sb_fail(err, SB_ENOMEM, "no memory for the bf16 backend");
    /* SHOEBOX_BF16_GEMM=onednn keeps oneDNN on AMX CPUs too (to compare the two) */
    const char *pick = getenv("SHOEBOX_BF16_GEMM");
    b->amx = clip_amx() && !(pick && strcmp(pick, "onednn") == 0);
    dnnl_status_t st = dnnl_engine_create(&b->engine, dnnl_cpu, 0);
    if (st == dnnl_success)
        st = dnnl_stream_create(&b->stream, b->engine, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        clip_bf16_free(b);
        return dnnl_fail(err, "engine", st);
    }
    *out = b;
    return SB_OK;
}

static void packed_free(struct clip_packed *p)
{
    if (!p)
        return;
    free(p->data);
    free(p);
}

void clip_bf16_free(struct clip_bf16 *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        packed_free(b->all[i]);
    free(b->all);
    if (b->stream)
        dnnl_stream_destroy(b->stream);
    if (b->engine)
        dnnl_engine_destroy(b->engine);
    free(b);
}

/* The blocked layout the matmul kernels want for (K, N) bf16 weights. */
static dnnl_status_t packed_md(dnnl_memory_desc_t *md, dnnl_engine_t eng, int K, int N)
{
    dnnl_primitive_desc_t pd = NULL;
    /* 64 rows: the layout does not depend on M (each op names it explicitly, see prim_init) */
    dnnl_status_t st = matmul_pd(&pd, eng, 64, K, N, N, CLIP_EPI_STORE, CLIP_ACT_GELU, false, NULL);
    if (st == dnnl_success)
        *md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_destroy(pd);
    return st;
}

/* Reorders f32 W (N, K) row-major with rows ld apart, seen as (K, N) strides (1, ld), into the
 * packed bf16 md. */
static dnnl_status_t pack_into(struct clip_bf16 *b, const dnnl_memory_desc_t *to_md, const float *w,
                               int K, int N, size_t ld, void *dst)
{
    dnnl_memory_desc_t from_md;
    dnnl_primitive_desc_t rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t from = NULL, to = NULL;
    dnnl_status_t st = dnnl_memory_desc_init_by_strides(
        &from_md, 2, (dnnl_dims_t){ K, N }, dnnl_f32, (dnnl_dims_t){ 1, (dnnl_dim_t)ld });
    if (st == dnnl_success)
        st = dnnl_reorder_primitive_desc_create(&rpd, &from_md, b->engine, to_md, b->engine, NULL);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&reorder, rpd);
    /* oneDNN takes a non-const handle; the reorder only reads it */
    if (st == dnnl_success)
        st = dnnl_memory_create(&from, &from_md, b->engine, (void *)(uintptr_t)w);
    if (st == dnnl_success)
        st = dnnl_memory_create(&to, to_md, b->engine, dst);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[2] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };
        st = dnnl_primitive_execute(reorder, b->stream, 2, args);
    }
    if (st == dnnl_success)
        st = dnnl_stream_wait(b->stream);
    dnnl_memory_destroy(from);
    dnnl_memory_destroy(to);
    if (reorder)
        dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    return st;
}

int clip_bf16_pack(struct clip_bf16 *b, struct clip_linear *l, struct sb_err *err)
{
    return clip_bf16_pack_ld(b, l, (size_t)l->n_in, err);
}

/* gemm_amx.c's layout (b->all has room for one more). */
static int pack_amx(struct clip_bf16 *b, struct clip_linear *l, size_t ld, struct sb_err *err)
{
    size_t bytes = clip_amx_packed_size(l->n_in, l->n_out) * sizeof(uint16_t);
    struct clip_packed *p = calloc(1, sizeof(*p));
    uint16_t *row = malloc((size_t)l->n_in * sizeof(uint16_t));
    if (p)
        p->data = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p || !p->data || !row) {
        if (p)
            free(p->data);
        free(p);
        free(row);
        return sb_fail(err, SB_ENOMEM, "no memory for packed weights");
    }
    clip_amx_pack(p->data, l->w, ld, l->n_in, l->n_out, row);
    free(row);
    p->amx = true;
    b->all[b->n++] = p;
    l->packed = p;
    return SB_OK;
}

int clip_bf16_pack_ld(struct clip_bf16 *b, struct clip_linear *l, size_t ld, struct sb_err *err)
{
    int N = l->n_out, K = l->n_in;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        struct clip_packed **grown = realloc(b->all, cap * sizeof(*grown));
        if (!grown)
            return sb_fail(err, SB_ENOMEM, "no memory for packed weights");
        b->all = grown;
        b->cap = cap;
    }
    if (b->amx)
        return pack_amx(b, l, ld, err);
    dnnl_memory_desc_t md;
    dnnl_status_t st = packed_md(&md, b->engine, K, N);
    if (st != dnnl_success)
        return dnnl_fail(err, "packed weights layout", st);
    size_t bytes = dnnl_memory_desc_get_size(&md);
    struct clip_packed *p = calloc(1, sizeof(*p));
    if (p)
        p->data = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p || !p->data) {
        free(p);
        return sb_fail(err, SB_ENOMEM, "no memory for packed weights");
    }
    p->md = md;
    b->all[b->n++] = p; /* freed with b from here on */
    st = pack_into(b, &md, l->w, K, N, ld, p->data);
    if (st != dnnl_success)
        return dnnl_fail(err, "pack weights", st);
    l->packed = p;
    return SB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Context: streams, scratchpads, cached primitives */

int clip_bf16_ctx_new(struct clip_bf16 *b, int n_workers, struct clip_bf16_ctx **out,
                      struct sb_err *err)
{
    struct clip_bf16_ctx *c = calloc(1, sizeof(*c));
    if (!c)
        return sb_fail(err, SB_ENOMEM, "no memory for the bf16 context");
    c->b = b;
    c->n_workers = n_workers;
    c->streams = calloc((size_t)n_workers, sizeof(*c->streams));
    c->scratch = calloc((size_t)n_workers, sizeof(*c->scratch));
    c->scratch_size = calloc((size_t)n_workers, sizeof(*c->scratch_size));
    pthread_mutex_init(&c->mu, NULL);
    if (!c->streams || !c->scratch || !c->scratch_size) {
        clip_bf16_ctx_free(c);
        return sb_fail(err, SB_ENOMEM, "no memory for the bf16 context");
    }
    for (int i = 0; i < n_workers; i++) {
        dnnl_status_t st = dnnl_stream_create(&c->streams[i], b->engine, dnnl_stream_default_flags);
        if (st != dnnl_success) {
            clip_bf16_ctx_free(c);
            return dnnl_fail(err, "stream", st);
        }
    }
    /* libgomp is loaded already (libdnnl needs it): this only finds it */
    void *gomp = dlopen("libgomp.so.1", RTLD_LAZY);
    if (gomp) {
        void *set = dlsym(gomp, "omp_set_num_threads"), *get = dlsym(gomp, "omp_get_max_threads");
        if (set && get) { /* POSIX allows object to function pointer through memcpy */
            memcpy(&c->omp_set_num_threads, &set, sizeof(set));
            memcpy(&c->omp_get_max_threads, &get, sizeof(get));
        }
        dlclose(gomp);
    }
    *out = c;
    return SB_OK;
}

static void prim_release(struct bf16_prim *p, int n_workers)
{
    if (p->mem)
        for (int i = 0; i < n_workers; i++) {
            struct bf16_mem *m = &p->mem[i];
            dnnl_memory_destroy(m->src);
            dnnl_memory_destroy(m->wei);
            dnnl_memory_destroy(m->bias);
            dnnl_memory_destroy(m->dst);
            dnnl_memory_destroy(m->pad);
        }
    free(p->mem);
    if (p->prim)
        dnnl_primitive_destroy(p->prim);
}

void clip_bf16_ctx_free(struct clip_bf16_ctx *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n_ops; i++) {
        prim_release(&c->ops[i]->p, c->n_workers);
        free(c->ops[i]);
    }
    for (int i = 0; c->streams && i < c->n_workers; i++)
        if (c->streams[i])
            dnnl_stream_destroy(c->streams[i]);
    for (int i = 0; c->scratch && i < c->n_workers; i++)
        free(c->scratch[i]);
    free(c->streams);
    free(c->scratch);
    free(c->scratch_size);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* With pool workers, oneDNN must plan (at primitive creation) and run (at execution) on one
 * thread: OpenMP's thread count is per thread, so set it around each call and restore it. */
static int omp_single_begin(const struct clip_bf16_ctx *c)
{
    if (c->n_workers == 1 || !c->omp_set_num_threads)
        return 0;
    int prev = c->omp_get_max_threads();
    c->omp_set_num_threads(1);
    return prev;
}

static void omp_single_end(const struct clip_bf16_ctx *c, int prev)
{
    if (prev > 0)
        c->omp_set_num_threads(prev);
}

int clip_bf16_rows(int M)
{
    return M <= 128 ? (M + 15) / 16 * 16 : M;
}

/* op's primitive and its memory objects (handles set at run time). */
static dnnl_status_t prim_init(struct clip_bf16_ctx *c, struct bf16_prim *p,
                               const struct clip_bf16_op *op, const struct clip_packed *w,
                               size_t *scratch)
{
    dnnl_primitive_desc_t pd = NULL;
    /* the layout the weights were packed in: asking again could give another one (the
     * kernels' blocking depends on the thread count, which differs between load and here) */
    dnnl_status_t st = matmul_pd(&pd, c->b->engine, op->M, op->K, op->N, op->N, op->epi, op->act,
                                 op->bias, &w->md);
    if (st == dnnl_success)
        st = dnnl_primitive_create(&p->prim, pd);
    if (st == dnnl_success) {
        p->mem = calloc((size_t)c->n_workers, sizeof(*p->mem));
        if (!p->mem)
            st = dnnl_out_of_memory;
    }
    static const int args[5] = { DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_BIAS, DNNL_ARG_DST,
                                 DNNL_ARG_SCRATCHPAD };
    for (int i = 0; i < c->n_workers && st == dnnl_success; i++) {
        dnnl_memory_t *mem[5] = { &p->mem[i].src, &p->mem[i].wei, &p->mem[i].bias, &p->mem[i].dst,
                                  &p->mem[i].pad };
        for (int a = 0; a < 5 && st == dnnl_success; a++) {
            if (args[a] == DNNL_ARG_BIAS && !op->bias)
                continue;
            const dnnl_memory_desc_t *md =
                dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, args[a]);
            st = dnnl_memory_create(mem[a], md, c->b->engine, DNNL_MEMORY_NONE);
        }
    }
    if (st == dnnl_success)
        *scratch = dnnl_memory_desc_get_size(
            dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    dnnl_primitive_desc_destroy(pd);
    return st;
}

static int op_find_or_make(struct clip_bf16_ctx *c, const struct clip_linear *l, int M,
                           enum clip_epi epi, enum clip_act act, const struct clip_bf16_op **out,
                           struct sb_err *err)
{
    int Mb = clip_bf16_rows(M);
    bool bias = l->b != NULL;
    if (epi != CLIP_EPI_ACT)
        act = CLIP_ACT_GELU; /* not part of the key */
    for (int i = 0; i < c->n_ops; i++) {
        const struct clip_bf16_op *op = c->ops[i];
        if (op->M == Mb && op->K == l->n_in && op->N == l->n_out && op->epi == epi &&
            op->act == act && op->bias == bias) {
            *out = op;
            return SB_OK;
        }
    }
    if (c->n_ops == MAX_OPS)
        return sb_fail(err, SB_ETOOBIG, "bf16: more than %d matmul shapes", MAX_OPS);
    struct clip_bf16_op *op = calloc(1, sizeof(*op));
    if (!op)
        return sb_fail(err, SB_ENOMEM, "no memory for a bf16 matmul");
    *op = (struct clip_bf16_op){
        .M = Mb, .K = l->n_in, .N = l->n_out, .epi = epi, .act = act, .bias = bias
    };
    c->ops[c->n_ops++] = op; /* freed with c from here on */
    if (l->packed->amx) {
        op->amx = true;
        *out = op;
        return SB_OK;
    }
    int omp = omp_single_begin(c);
    dnnl_status_t st = prim_init(c, &op->p, op, l->packed, &op->scratch);
    omp_single_end(c, omp);
    if (st != dnnl_success)
        return dnnl_fail(err, "matmul primitive", st);
    *out = op;
    return SB_OK;
}

int clip_bf16_op(struct clip_bf16_ctx *c, const struct clip_linear *l, int M, enum clip_epi epi,
                 enum clip_act act, const struct clip_bf16_op **out, struct sb_err *err)
{
    pthread_mutex_lock(&c->mu);
    int rc = op_find_or_make(c, l, M, epi, act, out, err);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

bool clip_bf16_run(struct clip_bf16_ctx *c, const struct clip_bf16_op *op,
                   const struct clip_linear *l, int worker, void *out, const uint16_t *in)
{
    if (op->amx) {
        clip_amx_gemm(out, (size_t)op->N, in, (size_t)op->K, op->M, l->packed->data,
                      op->bias ? l->b : NULL, op->K, op->N, 0, op->N, op->epi, op->act);
        return true;
    }
    if (op->scratch > c->scratch_size[worker]) { /* first run of a larger primitive here */
        free(c->scratch[worker]);
        c->scratch_size[worker] = 0;
        c->scratch[worker] = aligned_alloc(64, (op->scratch + 63) / 64 * 64);
        if (!c->scratch[worker])
            return false;
        c->scratch_size[worker] = op->scratch;
    }
    int omp = omp_single_begin(c);
    const struct bf16_mem *m = &op->p.mem[worker];
    dnnl_status_t st = dnnl_memory_set_data_handle(m->src, (void *)(uintptr_t)in);
    if (st == dnnl_success)
        st = dnnl_memory_set_data_handle(m->wei, l->packed->data);
    if (st == dnnl_success && op->bias)
        st = dnnl_memory_set_data_handle(m->bias, (void *)(uintptr_t)l->b);
    if (st == dnnl_success)
        st = dnnl_memory_set_data_handle(m->dst, out);
    if (st == dnnl_success)
        st = dnnl_memory_set_data_handle(m->pad, c->scratch[worker]);
    dnnl_exec_arg_t args[5] = { { DNNL_ARG_SRC, m->src },
                                { DNNL_ARG_WEIGHTS, m->wei },
                                { DNNL_ARG_DST, m->dst },
                                { DNNL_ARG_SCRATCHPAD, m->pad },
                                { DNNL_ARG_BIAS, m->bias } };
    if (st == dnnl_success)
        st = dnnl_primitive_execute(op->p.prim, c->streams[worker], op->bias ? 5 : 4, args);
    if (st == dnnl_success)
        st = dnnl_stream_wait(c->streams[worker]);
    omp_single_end(c, omp);
    return st == dnnl_success;
}

bool clip_bf16_amx(const struct clip_linear *l)
{
    return l->packed && l->packed->amx;
}

void clip_bf16_gemm(const struct clip_linear *l, int M, void *out, const uint16_t *in, int n0,
                    int n1, enum clip_epi epi, enum clip_act act)
{
    clip_amx_gemm(out, (size_t)l->n_out, in, (size_t)l->n_in, M, l->packed->data, l->b, l->n_in,
                  l->n_out, n0, n1, epi, act);
}

#else
typedef int sb_linear_dnnl_unused; /* built without oneDNN: see linear_nodnnl.c */
#endif
