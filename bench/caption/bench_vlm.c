/* bench_vlm.c - seconds per caption of a vision-language model folder (vlm.h), for
 * bench/caption/run_vlm.sh.
 * usage: bench_vlm MODEL_DIR THREADS [new_tokens [OPTION...]]
 *   THREADS  compute threads: the caller plus THREADS-1 pool workers, OpenBLAS single-threaded
 *            (bf16 products run on the same pool)
 *   OPTION   fp32|bf16|auto: the vision tower's and projector's precision (default fp32);
 *            tiles: Idefics3 image splitting (the 640x480 photo becomes 4x3 crops + the global
 *            image); WIDTHxHEIGHT: the photo's size (default 640x480; Moondream tiles by size);
 *            batch=B: also caption B photos together (vlm_encode each, vlm_caption_start each,
 *            then decode steps for all at once), and the same path with one photo, best of 3
 *            each, interleaved
 * Captions a synthetic photo (the image processor included) with greedy decoding and no stop id
 * in reach of a random model, N new tokens (default 30) and 1 new token, best of 3; prints the
 * image encode (tower + projector), prefill (generation of the 1-token run), the decode rate
 * ((N - 1) tokens over the difference of the two runs' generation) and seconds per caption
 * (image processor included). With batch=B, per batch size: seconds per caption (wall time of
 * the batch over B), and per photo its encode and prefill, and the decode rate of all rows
 * together (B * (N - 1) tokens over the decode steps' time), and the CPU seconds per caption
 * (all threads, user + system: what a caption costs in cores on a box shared with others). */
#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"
#include "shoebox/vlm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* CPU seconds of the process so far (every thread, user + system). */
static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static int die(const struct sb_err *err)
{
    fprintf(stderr, "bench_vlm: %s\n", err->msg);
    return 1;
}

/* Best of 3 captions of n tokens: total seconds, the least encode (tower + projector) and
 * generate (prefill + decode) seconds. */
static int run(struct vlm_ctx *c, const struct image *img, int n, double *total, double *encode,
               double *generate, int *got, struct sb_err *err)
{
    struct vlm_params p = vlm_default_params();
    p.max_new_tokens = n;
    p.repetition_penalty = 1.0f;
    int32_t ids[VLM_MAX_NEW_TOKENS];
    *total = *encode = *generate = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = sb_now();
        if (vlm_caption(c, img, &p, ids, got, NULL, err))
            return 1;
        double t = sb_now() - t0, enc, gen;
        vlm_ctx_timing(c, &enc, &gen);
        *total = t < *total ? t : *total;
        *encode = enc < *encode ? enc : *encode;
        *generate = gen < *generate ? gen : *generate;
    }
    return 0;
}

/* B captions of n tokens of img decoded together on cs (sharing the pool): best of 3 per
 * caption seconds (wall / B), encode and prefill per photo, decode tokens/s of all rows. */
static int run_batch(struct vlm_ctx **cs, int B, const struct image *img, int n, double *caption,
                     double *encode, double *prefill, double *rate, double *cpu, struct sb_err *err)
{
    struct vlm_params p = vlm_default_params();
    p.max_new_tokens = n;
    p.repetition_penalty = 1.0f;
    int32_t ids[VLM_MAX_NEW_TOKENS];
    struct vlm_image *im[64] = { NULL };
    *caption = *encode = *prefill = *cpu = 1e30;
    *rate = 0.0;
    int rc = 0;
    for (int r = 0; r < 3 && !rc; r++) {
        double t0 = sb_now(), c0 = cpu_now();
        for (int k = 0; k < B && !rc; k++)
            rc = vlm_encode(cs[k], img, &im[k], err);
        double t1 = sb_now();
        for (int k = 0; k < B && !rc; k++)
            rc = vlm_caption_start(cs[k], im[k], &p, err);
        double t2 = sb_now();
        bool all = false;
        while (!rc && !all) {
            rc = vlm_caption_step(cs, B, err);
            all = true;
            for (int k = 0; k < B; k++)
                all = all && vlm_caption_done(cs[k]);
        }
        double t3 = sb_now(), cu = (cpu_now() - c0) / B;
        int tokens = 0, got = 0;
        for (int k = 0; k < B && !rc; k++) {
            rc = vlm_caption_finish(cs[k], ids, &got, NULL, err);
            tokens += got - 1;
        }
        for (int k = 0; k < B; k++) {
            vlm_image_free(im[k]);
            im[k] = NULL;
        }
        if (rc)
            break;
        double c = (t3 - t0) / B, e = (t1 - t0) / B, pf = (t2 - t1) / B;
        double rt = (double)tokens / (t3 - t2);
        *caption = c < *caption ? c : *caption;
        *encode = e < *encode ? e : *encode;
        *prefill = pf < *prefill ? pf : *prefill;
        *rate = rt > *rate ? rt : *rate;
        *cpu = cu < *cpu ? cu : *cpu;
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_vlm MODEL_DIR THREADS [new_tokens [fp32|bf16|auto] "
                        "[tiles] [WIDTHxHEIGHT]]\n");
        return 2;
    }
    int64_t threads = 1, N = 30;
    struct sb_err err = { 0 };
    if (sb_parse_i64(argv[2], 1, 256, &threads, &err) ||
        (argc > 3 && sb_parse_i64(argv[3], 2, VLM_MAX_NEW_TOKENS, &N, &err)))
        return die(&err);
    int W = 640, H = 480, batch = 0;
    struct vlm_load_params lp = vlm_load_default_params();
    lp.blas_threads = 1;
    for (int a = 4; a < argc; a++) {
        if (strcmp(argv[a], "bf16") == 0) {
            lp.precision = CLIP_PRECISION_BF16;
        } else if (strcmp(argv[a], "auto") == 0) {
            lp.precision = CLIP_PRECISION_AUTO;
        } else if (strcmp(argv[a], "fp32") == 0) {
            lp.precision = CLIP_PRECISION_FP32;
        } else if (strcmp(argv[a], "tiles") == 0) {
            lp.split_image = true;
        } else if (strncmp(argv[a], "batch=", 6) == 0) {
            int64_t b = 0;
            if (sb_parse_i64(argv[a] + 6, 1, 64, &b, &err))
                return die(&err);
            batch = (int)b;
        } else if (sscanf(argv[a], "%dx%d", &W, &H) != 2 || W < 1 || H < 1 || W > 8192 ||
                   H > 8192) {
            fprintf(stderr,
                    "bench_vlm: '%s' is not fp32, bf16, auto, tiles, batch=B or WIDTHxHEIGHT\n",
                    argv[a]);
            return 2;
        }
    }
    struct vlm_model *m = NULL;
    struct vlm_ctx *c = NULL;
    struct sb_pool *pool = NULL;
    double t0 = sb_now();
    if (vlm_model_load(argv[1], &lp, &m, &err))
        return die(&err);
    printf("load %.2f s (%s, %d image rows per image, up to %d images, vision tower %s)\n",
           sb_now() - t0, vlm_model_arch(m), vlm_model_image_tokens(m), vlm_model_max_images(m),
           vlm_model_precision(m) == CLIP_PRECISION_BF16 ? "bf16" : "fp32");
    if (threads > 1 && sb_pool_new((int)threads - 1, &pool, &err))
        return die(&err);
    if (vlm_ctx_new(m, pool, &c, &err))
        return die(&err);
    struct image *img = image_new(W, H);
    if (!img)
        return 1;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            unsigned char *px = img->px + ((size_t)y * W + (size_t)x) * 3;
            px[0] = (unsigned char)(x * 255 / (W > 1 ? W - 1 : 1));
            px[1] = (unsigned char)(y * 255 / (H > 1 ? H - 1 : 1));
            px[2] = (unsigned char)(((x / 40 + y / 40) % 2) * 200);
        }
    double t1, e1, p1, tn, en, gn_s;
    int g1 = 0, gn = 0;
    if (run(c, img, 1, &t1, &e1, &p1, &g1, &err) || run(c, img, (int)N, &tn, &en, &gn_s, &gn, &err))
        return die(&err);
    int np = 0;
    vlm_ctx_prompt(c, &np);
    double enc = e1 < en ? e1 : en;
    printf("encode %.3f s\n", enc);
    printf("prefill %d %.3f s\n", np, p1);
    printf("decode %d %.1f tokens/s\n", gn - 1, (double)(gn - 1) / (gn_s - p1));
    printf("caption %d tokens %.3f s (best total)\n", gn, tn);
    if (batch > 0) {
        struct vlm_ctx *cs[64] = { NULL };
        cs[0] = c;
        for (int k = 1; k < batch; k++)
            if (vlm_ctx_new(m, pool, &cs[k], &err))
                return die(&err);
        int sizes[2] = { 1, batch };
        double cap[2][2], e[2][2], pf[2][2], rt[2][2], cu[2][2];
        for (int r = 0; r < 2; r++) /* interleaved: 1, B, 1, B */
            for (int i = 0; i < 2; i++)
                if (run_batch(cs, sizes[i], img, (int)N, &cap[r][i], &e[r][i], &pf[r][i], &rt[r][i],
                              &cu[r][i], &err))
                    return die(&err);
        for (int i = 0; i < 2; i++) {
            double bc = cap[0][i] < cap[1][i] ? cap[0][i] : cap[1][i];
            double be = e[0][i] < e[1][i] ? e[0][i] : e[1][i];
            double bp = pf[0][i] < pf[1][i] ? pf[0][i] : pf[1][i];
            double br = rt[0][i] > rt[1][i] ? rt[0][i] : rt[1][i];
            double bu = cu[0][i] < cu[1][i] ? cu[0][i] : cu[1][i];
            printf("batch %d: %.3f s per caption (encode %.3f s, prefill %.3f s per photo; "
                   "decode %.1f tokens/s over the batch; %.3f CPU s per caption)\n",
                   sizes[i], bc, be, bp, br, bu);
        }
        for (int k = 1; k < batch; k++)
            vlm_ctx_free(cs[k]);
    }
    image_free(img);
    vlm_ctx_free(c);
    sb_pool_free(pool);
    vlm_model_free(m);
    return 0;
}
