/* bench_search.c - the vector scan at scale: N random unit vectors of D dims as the fp16 store
 * holds them, Q random queries through search_topk (k = 20) on the given threads; prints p50
 * and p99 latency and the matrix's memory. With --catalog DB it also fills a shoebox catalog
 * with N photos and their vectors (for the end-to-end CLI timing in run.sh).
 * --clustered makes data shaped like CLIP image embeddings instead of isotropic Gaussians:
 * a shared mean direction plus one of 1000 cluster centres plus noise (unrelated photos at
 * cosine ~0.5, same-cluster ~0.75), queried by vectors near a cluster (top scores ~0.3-0.4
 * above a bulk at ~0.15, like text queries).
 * The matrix (codes, per-row terms and fp16 rows) is held in 2 MiB pages (transparent huge
 * pages, madvise), as the web server holds the store (vec_store_resident);
 * SHOEBOX_BENCH_PAGES=4k holds it in 4 KiB pages instead. The line says how much of the
 * process sat in huge pages.
 * With --store DB it times the scan on the matrix of that catalog's vector store, opened as
 * the CLI opens it (the cache file mapped) and then as the web server holds it (resident);
 * N and D are ignored.
 * Usage: bench_search N [D] [THREADS] [--clustered | --catalog DB MODEL_DIR | --store DB] */
#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/model.h"
#include "shoebox/pool.h"
#include "shoebox/search.h"
#include "shoebox/util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static uint64_t state = 0x9E3779B97F4A7C15ull;

static float gauss(void)
{
    /* Box-Muller on xorshift64* uniforms */
    double u[2];
    for (int i = 0; i < 2; i++) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        u[i] = ((double)((state * 2685821657736338717ull) >> 11) + 0.5) / (double)(1ull << 53);
    }
    return (float)(sqrt(-2.0 * log(u[0])) * cos(2.0 * M_PI * u[1]));
}

static void unit(float *v, int d)
{
    double n = 0;
    for (int i = 0; i < d; i++) {
        v[i] = gauss();
        n += (double)v[i] * (double)v[i];
    }
    for (int i = 0; i < d; i++)
        v[i] = (float)((double)v[i] / sqrt(n));
}

/* out = normalize(a * mu + b * centre + e * g), g a fresh Gaussian unit vector */
static void mix(float *out, const float *mu, const float *centre, float a, float b, float e,
                float *g, int d)
{
    unit(g, d);
    double n = 0;
    for (int i = 0; i < d; i++) {
        out[i] = a * mu[i] + b * centre[i] + e * g[i];
        n += (double)out[i] * (double)out[i];
    }
    for (int i = 0; i < d; i++)
        out[i] = (float)((double)out[i] / sqrt(n));
}

/* CPU time of the whole process (all threads), s: on a busy box it counts the work a query
 * did, not the time it waited for a core. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* len bytes of anonymous memory in huge pages (or 4 KiB pages when huge is false) */
static void *alloc_pages(size_t len, bool huge)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    return p;
}

/* the process's memory in transparent huge pages (anonymous and file-backed), MiB */
static double huge_mib(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof(line), f)) {
        long v;
        if (sscanf(line, "AnonHugePages: %ld", &v) == 1 ||
            sscanf(line, "FilePmdMapped: %ld", &v) == 1)
            kb += (double)v;
    }
    if (f)
        fclose(f);
    return kb / 1024.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int fill_catalog(const char *path, const char *model_dir, size_t n, int d)
{
    /* the catalog's vectors are filed under the model's id, as `index` would file them */
    struct clip_model *cm = NULL;
    struct clip_load_params lp = clip_load_default_params();
    lp.towers = CLIP_TOWER_TEXT;
    struct sb_err lerr;
    if (clip_model_load(model_dir, &lp, &cm, &lerr)) {
        fprintf(stderr, "%s\n", lerr.msg);
        return 1;
    }
    char model[256];
    snprintf(model, sizeof(model), "%s", clip_model_id(cm));
    d = clip_model_dim(cm);
    clip_model_free(cm);
    struct catalog *cat = NULL;
    struct sb_err err;
    if (catalog_open(path, false, &cat, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int64_t mid;
    float *v = malloc((size_t)d * sizeof(float));
    const char *stages[] = { NULL };
    catalog_begin(cat, &err);
    catalog_model_ensure(cat, model, d, &mid, &err);
    catalog_setting_set(cat, "model_name", model, &err);
    catalog_setting_set(cat, "model_dir", model_dir, &err);
    for (size_t i = 0; i < n; i++) {
        char p[64];
        snprintf(p, sizeof(p), "/bench/%03zu/IMG_%07zu.jpg", i % 997, i);
        struct catalog_stat st = { 1000, 1, 1, (int64_t)i, 1 };
        catalog_file_touch(cat, p, &st, &err);
        unsigned char h[16] = { 0 };
        memcpy(h, &i, sizeof(i));
        int64_t pid;
        /* the file just touched has the largest id */
        struct catalog_file *f = NULL;
        size_t nf = 0;
        (void)f;
        (void)nf;
        catalog_file_set_photo(cat, (int64_t)i + 1, h, 1000, "jpeg", stages, &pid, NULL, &err);
        unit(v, d);
        catalog_vector_put(cat, mid, pid, v, d, &err);
        if (i % 10000 == 9999) {
            catalog_commit(cat, &err);
            catalog_begin(cat, &err);
        }
    }
    int rc = catalog_commit(cat, &err);
    catalog_close(cat);
    free(v);
    return rc;
}

static void bench_matrix(const struct vec_matrix *m, struct sb_pool *pool, int threads,
                         const char *what);

/* The scan on the store of catalog db, with random unit queries. */
static int bench_store(const char *db, int threads)
{
    struct catalog *cat = NULL;
    struct vec_store *vs = NULL;
    struct sb_err err;
    char model[256], dir[4096];
    if (catalog_open(db, true, &cat, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    search_cache_dir(db, dir, sizeof(dir));
    if (catalog_setting_get(cat, "model_name", model, sizeof(model), &err) ||
        vec_store_open(cat, model, dir, &vs, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        catalog_close(cat);
        return 1;
    }
    struct sb_pool *pool = NULL;
    if (threads > 1)
        sb_pool_new(threads - 1, &pool, NULL);
    for (int resident = 0; resident < 2; resident++) {
        if (resident && vec_store_resident(vs, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            break;
        }
        bench_matrix(vec_store_matrix(vs), pool, threads,
                     resident ? "store (resident, as served)" : "store (cache file mapped)");
    }
    sb_pool_free(pool);
    vec_store_close(vs);
    catalog_close(cat);
    return 0;
}

/* Random unit queries on m: p50 and p99 latency. */
static void bench_matrix(const struct vec_matrix *m, struct sb_pool *pool, int threads,
                         const char *what)
{
    enum { Q = 60, K = 20 };
    double t[Q], cpu[Q];
    struct search_hit hits[K];
    float *v = malloc((size_t)m->dim * sizeof(float));
    for (int q = 0; q < Q + 3; q++) {
        unit(v, m->dim);
        size_t nh;
        double t0 = sb_now(), c0 = cpu_now();
        search_topk(m, v, NULL, -1.0f, K, pool, hits, &nh, NULL);
        if (q >= 3) {
            t[q - 3] = (sb_now() - t0) * 1e3;
            cpu[q - 3] = (cpu_now() - c0) * 1e3;
        }
    }
    qsort(t, Q, sizeof(double), cmp_double);
    qsort(cpu, Q, sizeof(double), cmp_double);
    printf("%8zu x %d %s %d threads: p50 %7.2f ms  p99 %7.2f ms  cpu p50 %7.2f ms  %.0f MiB in "
           "huge pages\n",
           m->n, m->dim, what, threads, t[Q / 2], t[Q * 99 / 100], cpu[Q / 2], huge_mib());
    free(v);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_search N [D] [THREADS] [--catalog DB MODEL_DIR]\n");
        return 2;
    }
    size_t n = (size_t)strtoull(argv[1], NULL, 10);
    int d = argc > 2 ? atoi(argv[2]) : 512;
    int threads = argc > 3 ? atoi(argv[3]) : 2;
    if (argc > 6 && strcmp(argv[4], "--catalog") == 0)
        return fill_catalog(argv[5], argv[6], n, d);
    if (argc > 5 && strcmp(argv[4], "--store") == 0)
        return bench_store(argv[5], threads);
    bool clustered = argc > 4 && strcmp(argv[4], "--clustered") == 0;
    enum { NC = 1000 };
    float *mu = malloc((size_t)d * sizeof(float)), *g = malloc((size_t)d * sizeof(float));
    float *centres = malloc((size_t)NC * d * sizeof(float));
    unit(mu, d);
    for (int c = 0; c < NC; c++)
        unit(centres + (size_t)c * d, d);
    const char *pages = getenv("SHOEBOX_BENCH_PAGES");
    bool huge = !pages || strcmp(pages, "4k") != 0;
    uint16_t *data = alloc_pages(n * (size_t)d * 2, huge);
    if (!data) {
        fprintf(stderr, "bench_search: out of memory\n");
        return 1;
    }
    int64_t *ids = malloc(n * 8);
    float *v = malloc((size_t)d * sizeof(float));
    for (size_t r = 0; r < n; r++) {
        if (clustered)
            mix(v, mu, centres + (r * 7919 % NC) * (size_t)d, 0.7f, 0.5f, 0.5f, g, d);
        else
            unit(v, d);
        for (int j = 0; j < d; j++)
            data[r * (size_t)d + j] = search_f32_to_f16(v[j]);
        ids[r] = (int64_t)r + 1;
    }
    struct vec_matrix m = { .data = data, .ids = ids, .n = n, .dim = d };
    uint8_t *codes = alloc_pages(n * search_code_bytes(d), huge);
    float *scales = alloc_pages(n * sizeof(float), huge),
          *resid = alloc_pages(n * sizeof(float), huge);
    float *cnorm = alloc_pages(n * sizeof(float), huge);
    if (!codes || !scales || !resid || !cnorm) {
        fprintf(stderr, "bench_search: out of memory\n");
        return 1;
    }
    search_quantize(&m, codes, scales, resid, cnorm);
    struct sb_pool *pool = NULL;
    if (threads > 1)
        sb_pool_new(threads - 1, &pool, NULL);
    enum { Q = 60, K = 20 };
    for (int mode = 0; mode < 2; mode++) {
        struct vec_matrix mm = m;
        if (mode == 1) {
            mm.codes = codes;
            mm.scales = scales;
            mm.resid = resid;
            mm.cnorm = cnorm;
        }
        double t[Q], cpu[Q];
        struct search_hit hits[K];
        state = 12345; /* the same queries for both modes */
        for (int q = 0; q < Q + 3; q++) {
            if (clustered)
                mix(v, mu, centres + (size_t)(q * 31 % NC) * d, 0.2f, 0.3f, 0.9f, g, d);
            else
                unit(v, d);
            size_t nh;
            double t0 = sb_now(), c0 = cpu_now();
            search_topk(&mm, v, NULL, -1.0f, K, pool, hits, &nh, NULL);
            if (q >= 3) { /* the first three warm the caches */
                t[q - 3] = (sb_now() - t0) * 1e3;
                cpu[q - 3] = (cpu_now() - c0) * 1e3;
            }
        }
        qsort(t, Q, sizeof(double), cmp_double);
        qsort(cpu, Q, sizeof(double), cmp_double);
        double bytes =
            mode ? (double)n * ((double)search_code_bytes(d) + 12) : (double)n * (d * 2 + 8);
        printf("%8zu x %d %-9s %-20s %d threads: p50 %7.2f ms  p99 %7.2f ms  cpu p50 %7.2f ms  "
               "scanned %5.0f MiB (%.1f GB/s)",
               n, d, clustered ? "clustered" : "gaussian", mode ? "6-bit + fp16 rescore" : "fp16",
               threads, t[Q / 2], t[Q * 99 / 100], cpu[Q / 2], bytes / 1048576.0,
               bytes / (t[Q / 2] * 1e-3) / 1e9);
        if (mode)
            printf("  %s pages, %.0f MiB in huge pages", huge ? "2 MiB" : "4 KiB", huge_mib());
        printf("\n");
    }
    munmap(codes, n * search_code_bytes(d));
    munmap(scales, n * sizeof(float));
    munmap(resid, n * sizeof(float));
    munmap(cnorm, n * sizeof(float));
    munmap(data, n * (size_t)d * 2);
    sb_pool_free(pool);
    free(ids);
    free(v);
    free(mu);
    free(g);
    free(centres);
    return 0;
}
