/* linear_nodnnl.c - the bf16 backend when the build has no oneDNN (see internal.h and
 * linear_dnnl.c): nothing is compiled in, so the loader resolves every precision to fp32 and
 * the functions below are never reached past clip_bf16_compiled(). */
#if !SHOEBOX_HAVE_DNNL

#include "internal.h"

#include "shoebox/err.h"

bool clip_bf16_compiled(void)
{
    return false;
}

bool clip_cpu_native_bf16(void)
{
    return false;
}

int clip_bf16_new(struct clip_bf16 **out, struct sb_err *err)
{
    (void)out;
    return sb_fail(err, SB_EINTERNAL, "built without oneDNN: no bf16 backend");
}

void clip_bf16_free(struct clip_bf16 *b)
{
    (void)b;
}

int clip_bf16_pack(struct clip_bf16 *b, struct clip_linear *l, struct sb_err *err)
{
    (void)b;
    (void)l;
    return sb_fail(err, SB_EINTERNAL, "built without oneDNN: no bf16 backend");
}

int clip_bf16_pack_ld(struct clip_bf16 *b, struct clip_linear *l, size_t ld, struct sb_err *err)
{
    (void)ld;
    return clip_bf16_pack(b, l, err);
}

int clip_bf16_ctx_new(struct clip_bf16 *b, int n_workers, struct clip_bf16_ctx **out,
                      struct sb_err *err)
{
    (void)b;
    (void)n_workers;
    (void)out;
    return sb_fail(err, SB_EINTERNAL, "built without oneDNN: no bf16 backend");
}

void clip_bf16_ctx_free(struct clip_bf16_ctx *c)
{
    (void)c;
}

int clip_bf16_rows(int M)
{
    return M;
}

int clip_bf16_op(struct clip_bf16_ctx *c, const struct clip_linear *l, int M, enum clip_epi epi,
                 enum clip_act act, const struct clip_bf16_op **out, struct sb_err *err)
{
    (void)c;
    (void)l;
    (void)M;
    (void)epi;
    (void)act;
    (void)out;
    return sb_fail(err, SB_EINTERNAL, "built without oneDNN: no bf16 backend");
}

bool clip_bf16_run(struct clip_bf16_ctx *c, const struct clip_bf16_op *op,
                   const struct clip_linear *l, int worker, void *out, const uint16_t *in)
{
    (void)c;
    (void)op;
    (void)l;
    (void)worker;
    (void)out;
    (void)in;
    return false;
}

bool clip_bf16_amx(const struct clip_linear *l)
{
    (void)l;
    return false;
}

void clip_bf16_gemm(const struct clip_linear *l, int M, void *out, const uint16_t *in, int n0,
                    int n1, enum clip_epi epi, enum clip_act act)
{
    (void)l;
    (void)M;
    (void)out;
    (void)in;
    (void)n0;
    (void)n1;
    (void)epi;
    (void)act;
}

#else
typedef int sb_linear_nodnnl_unused; /* built with oneDNN: see linear_dnnl.c */
#endif
