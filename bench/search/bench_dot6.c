/* bench_dot6.c - the 6-bit pass-1 kernels alone, one thread: ns per 512-d row (two-part
 * query, as the scan calls them in batches of 64 rows) for rows that sit in the L2 cache and
 * for rows streamed from memory, held in 4 KiB pages and in 2 MiB pages (transparent huge
 * pages, as the kernel maps the cache file), so a scan's time can be split into compute and
 * waiting.
 * Usage: bench_dot6 [STREAM_ROWS] (default 1000000) */
#include "../../src/search/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* best of reps passes over n rows, ns per row */
static double time_rows(search_dot6_fn fn, const uint8_t *codes, size_t n, const int8_t *q,
                        size_t nb, int32_t *out, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (size_t i = 0; i < n; i += 64)
            fn(codes + i * nb * SEARCH_C6_BYTES, n - i < 64 ? n - i : 64, q, nb, out);
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    return best * 1e9 / (double)n;
}

int main(int argc, char **argv)
{
    const size_t nb = 8, warm = 2048; /* 512 dims; 2048 rows = 768 KiB */
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    if (n < warm)
        n = warm;
    size_t len = n * nb * SEARCH_C6_BYTES;
    int8_t q[2 * 8 * SEARCH_C6_DIMS];
    int32_t out[128];
    for (size_t j = 0; j < sizeof(q); j++)
        q[j] = (int8_t)((int)(j * 37 % 255) - 127);
    struct search_dot6_kernel ks[4];
    size_t nk = search_dot6_kernels(ks, 4);
    double hot[4], cold[2][4];
    for (int huge = 0; huge < 2; huge++) {
        uint8_t *codes =
            mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (codes == MAP_FAILED)
            return 1;
        madvise(codes, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        uint64_t x = 0x9E3779B97F4A7C15ull;
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            codes[i] = (uint8_t)x;
        }
        for (size_t i = 0; i < nk; i++) {
            if (!huge)
                hot[i] = time_rows(ks[i].fn, codes, warm, q, nb, out, 200);
            cold[huge][i] = time_rows(ks[i].fn, codes, n, q, nb, out, 3);
        }
        munmap(codes, len);
    }
    for (size_t i = 0; i < nk; i++)
        printf("dot6 %-10s 512-d rows: %6.2f ns/row in cache; streamed (%zu rows): %6.2f ns/row "
               "in 4 KiB pages (%.1f GB/s), %6.2f in 2 MiB pages (%.1f GB/s)\n",
               ks[i].name, hot[i], n, cold[0][i], (double)(nb * SEARCH_C6_BYTES) / cold[0][i],
               cold[1][i], (double)(nb * SEARCH_C6_BYTES) / cold[1][i]);
    return 0;
}
