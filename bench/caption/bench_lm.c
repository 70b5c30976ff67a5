/* bench_lm.c - speed of the decoder LM runtime (lm.h) on one model folder, for
 * bench/caption/run.sh.
 * usage: bench_lm MODEL_DIR THREADS [prefill_tokens] [decode_tokens]
 *   THREADS  compute threads: the caller plus THREADS-1 pool workers, OpenBLAS single-threaded
 * Prints "prefill T <best ms>" (best of 3) and "decode N <tokens/s>" (N steps after a prefill
 * of T tokens, the median of 3 runs), and the matrix-vector kernel in use. */
#include "shoebox/err.h"
#include "shoebox/lm.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"

#include <stdio.h>
#include <stdlib.h>

static int die(const struct sb_err *err)
{
    fprintf(stderr, "bench_lm: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_lm MODEL_DIR THREADS [prefill_tokens] [decode_tokens]\n");
        return 2;
    }
    int64_t threads = 1, T = 100, N = 32;
    struct sb_err err = { 0 };
    if (sb_parse_i64(argv[2], 1, 256, &threads, &err) ||
        (argc > 3 && sb_parse_i64(argv[3], 1, 4096, &T, &err)) ||
        (argc > 4 && sb_parse_i64(argv[4], 1, 4096, &N, &err)))
        return die(&err);
    struct lm_load_params p = lm_load_default_params();
    p.blas_threads = 1;
    struct lm_model *m = NULL;
    struct lm_ctx *c = NULL;
    struct sb_pool *pool = NULL;
    if (lm_model_load(argv[1], &p, &m, &err))
        return die(&err);
    if (threads > 1 && sb_pool_new((int)threads - 1, &pool, &err))
        return die(&err);
    if (lm_ctx_new(m, pool, (int)(T + N + 1), (int)T, &c, &err))
        return die(&err);
    int32_t *ids = calloc((size_t)(T + N), sizeof(*ids));
    int V = lm_model_vocab_size(m);
    for (int64_t i = 0; i < T + N; i++)
        ids[i] = (int32_t)((i * 7919 + 13) % V);
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        lm_ctx_reset(c);
        double t0 = sb_now();
        if (lm_prefill(c, ids, NULL, (int)T, &err))
            return die(&err);
        double ms = (sb_now() - t0) * 1e3;
        best = ms < best ? ms : best;
    }
    printf("prefill %d %.1f ms\n", (int)T, best);
    double rates[3];
    for (int r = 0; r < 3; r++) {
        lm_ctx_reset(c);
        if (lm_prefill(c, ids, NULL, (int)T, &err))
            return die(&err);
        double t0 = sb_now();
        for (int64_t i = 0; i < N; i++)
            if (lm_prefill(c, &ids[T + i], NULL, 1, &err))
                return die(&err);
        rates[r] = (double)N / (sb_now() - t0);
    }
    double lo = rates[0] < rates[1] ? rates[0] : rates[1],
           hi = rates[0] < rates[1] ? rates[1] : rates[0];
    double med = rates[2] < lo ? lo : rates[2] > hi ? hi : rates[2];
    printf("decode %d %.1f tokens/s\n", (int)N, med);
    free(ids);
    lm_ctx_free(c);
    sb_pool_free(pool);
    lm_model_free(m);
    return 0;
}
