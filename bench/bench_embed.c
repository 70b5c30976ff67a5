/* bench_embed.c - images/s of clip_embed_images on a model folder, and model load time.
 * usage: bench_embed MODEL_DIR [batch=16] [iters=5] [blas_threads=0] [pool_workers=0]
 * Make a ViT-B/32-shaped random model with: /usr/bin/python3 tools/gen_clip.py --bench DIR
 * Not built by default (bench/ has no CMakeLists yet); see the comment in the report. */
#include "shoebox/err.h"
#include "shoebox/model.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"

#include <stdio.h>
#include <stdlib.h>

static int arg(int argc, char **argv, int i, int def)
{
    int64_t v = def;
    if (argc > i && sb_parse_i64(argv[i], 0, 4096, &v, NULL) != SB_OK)
        v = def;
    return (int)v;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_embed MODEL_DIR [batch] [iters] [blas_threads] [pool]\n");
        return 2;
    }
    int B = arg(argc, argv, 2, 16), iters = arg(argc, argv, 3, 5);
    int blas = arg(argc, argv, 4, 0), workers = arg(argc, argv, 5, 0);
    struct sb_err err = { 0 };
    struct clip_model *m = NULL;
    struct clip_ctx *c = NULL;
    struct sb_pool *pool = NULL;
    struct clip_load_params p = clip_load_default_params();
    p.towers = CLIP_TOWER_VISION;
    p.blas_threads = blas;
    double t0 = sb_now();
    if (clip_model_load(argv[1], &p, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t_load = sb_now() - t0;
    if (workers > 0 && sb_pool_new(workers, &pool, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (clip_ctx_new(m, B, pool, &c, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int S = clip_model_image_size(m), D = clip_model_dim(m);
    size_t n = (size_t)B * 3 * S * S;
    float *px = malloc(n * sizeof(float)), *out = malloc((size_t)B * D * sizeof(float));
    for (size_t i = 0; i < n; i++)
        px[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    clip_embed_images(c, px, B, out, &err); /* warm-up */
    t0 = sb_now();
    for (int i = 0; i < iters; i++)
        clip_embed_images(c, px, B, out, &err);
    double dt = sb_now() - t0;
    printf("%s: load %.3f s, batch %d: %.1f images/s (%.1f ms/image), blas_threads %d, pool %d\n",
           clip_model_id(m), t_load, B, (double)B * iters / dt, 1000.0 * dt / ((double)B * iters),
           blas, workers);
    free(px);
    free(out);
    clip_ctx_free(c);
    sb_pool_free(pool);
    clip_model_free(m);
    return 0;
}
