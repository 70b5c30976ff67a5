/* bench_embed.c - speed of the CLIP engine on one model folder, for bench/embed/run.sh.
 * usage: bench_embed MODEL_DIR PRECISION THREADS MODE [batch] [seconds]
 *   PRECISION fp32 | bf16 | auto
 *   THREADS   compute threads (the caller plus THREADS-1 pool workers)
 *   MODE      pool: every op shared out over an sb_pool, OpenBLAS / oneDNN single-threaded
 *             (the engine's design); lib: no pool, THREADS OpenBLAS / OpenMP threads inside
 *             the products, small ops on the caller
 * Prints one line per measurement: "images B <images/s> <CPU ms/image>" and
 * "text <median ms> <p90 ms>". */
#include "shoebox/err.h"
#include "shoebox/model.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int die(const struct sb_err *err)
{
    fprintf(stderr, "bench_embed: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: bench_embed MODEL_DIR fp32|bf16|auto THREADS pool|lib [batch] "
                        "[seconds]\n");
        return 2;
    }
    int64_t threads = 1, batch = 16;
    double seconds = 3.0;
    struct sb_err err = { 0 };
    if (sb_parse_i64(argv[3], 1, 256, &threads, &err) ||
        (argc > 5 && sb_parse_i64(argv[5], 0, 256, &batch, &err)))
        return die(&err);
    if (argc > 6) {
        float s;
        if (sb_parse_f32(argv[6], 0.1f, 600.0f, &s, &err))
            return die(&err);
        seconds = (double)s;
    }
    bool use_pool = strcmp(argv[4], "pool") == 0;
    struct clip_load_params p = clip_load_default_params();
    p.fast_text = true; /* fp32 text as the web server runs it (model.h); bf16 ignores it */
    p.precision = strcmp(argv[2], "bf16") == 0   ? CLIP_PRECISION_BF16
                  : strcmp(argv[2], "auto") == 0 ? CLIP_PRECISION_AUTO
                                                 : CLIP_PRECISION_FP32;
    p.blas_threads = use_pool ? 1 : (int)threads;
    p.towers = batch > 0 ? CLIP_TOWER_BOTH : CLIP_TOWER_TEXT;
    struct clip_model *m = NULL;
    struct clip_ctx *c = NULL;
    struct sb_pool *pool = NULL;
    double t0 = sb_now();
    if (clip_model_load(argv[1], &p, &m, &err))
        return die(&err);
    printf("load %.3f s precision %s\n", sb_now() - t0,
           clip_model_precision(m) == CLIP_PRECISION_BF16 ? "bf16" : "fp32");
    if (use_pool && threads > 1 && sb_pool_new((int)threads - 1, &pool, &err))
        return die(&err);
    if (clip_ctx_new(m, batch > 0 ? (int)batch : 1, pool, &c, &err))
        return die(&err);
    int S = clip_model_image_size(m), D = clip_model_dim(m);
    if (batch > 0) {
        size_t n = (size_t)batch * 3 * S * S;
        float *px = malloc(n * sizeof(float)), *out = malloc((size_t)batch * D * sizeof(float));
        for (size_t i = 0; i < n; i++)
            px[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
        if (clip_embed_images(c, px, (int)batch, out, &err)) /* warm-up: kernels, page-in */
            return die(&err);
        int iters = 0;
        double cpu0 = cpu_seconds();
        t0 = sb_now();
        double dt;
        do {
            clip_embed_images(c, px, (int)batch, out, &err);
            iters++;
            dt = sb_now() - t0;
        } while (dt < seconds);
        /* third field: images/s (wall); fourth: process CPU ms per image, which other jobs on
         * a shared box inflate far less (nothing here spins while it waits) */
        printf("images %d %.2f %.2f\n", (int)batch, (double)batch * iters / dt,
               1000.0 * (cpu_seconds() - cpu0) / ((double)batch * iters));
        free(px);
        free(out);
    } else {
        float out[4096];
        enum { RUNS = 200 };
        double ms[RUNS];
        const char *q = "a photo of a cat sitting on a red sofa";
        if (clip_embed_text(c, q, out, NULL, NULL, &err))
            return die(&err);
        int runs = 0;
        t0 = sb_now();
        while (runs < RUNS && (runs < 20 || sb_now() - t0 < seconds)) {
            double t = sb_now();
            clip_embed_text(c, q, out, NULL, NULL, &err);
            ms[runs++] = 1000.0 * (sb_now() - t);
        }
        qsort(ms, (size_t)runs, sizeof(ms[0]), cmp_double);
        printf("text %.3f %.3f\n", ms[runs / 2], ms[runs * 9 / 10]);
    }
    clip_ctx_free(c);
    sb_pool_free(pool);
    clip_model_free(m);
    return 0;
}
