/* bench_stream.c - the floor under the 6-bit scan: how fast THREADS threads can merely read a
 * buffer the size of the 1M-row codes (AVX-512 loads and adds, nothing else), in 4 KiB pages
 * and in transparent huge pages (madvise), with and without software prefetch, each thread
 * taking chunks of CHUNK bytes off a shared counter as the scan does. Prints the best and median
 * of REPS passes as GB/s and ms, and the process CPU time per pass.
 * Usage: bench_stream [MIB] [THREADS] [REPS] (default 378 2 15) */
#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(int clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct job {
    const uint8_t *buf;
    size_t len, chunk;
    int prefetch; /* bytes ahead, 0 for none */
    _Atomic size_t next;
    _Atomic int64_t sink;
};

__attribute__((target("avx512f"))) static int64_t sum_range(const uint8_t *p, size_t n,
                                                            int prefetch)
{
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t o = 0; o + 256 <= n; o += 256) {
        if (prefetch) {
            _mm_prefetch((const char *)p + o + prefetch, _MM_HINT_T0);
            _mm_prefetch((const char *)p + o + prefetch + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)p + o + prefetch + 128, _MM_HINT_T0);
            _mm_prefetch((const char *)p + o + prefetch + 192, _MM_HINT_T0);
        }
        a0 = _mm512_add_epi64(a0, _mm512_loadu_si512((const void *)(p + o)));
        a1 = _mm512_add_epi64(a1, _mm512_loadu_si512((const void *)(p + o + 64)));
        a2 = _mm512_add_epi64(a2, _mm512_loadu_si512((const void *)(p + o + 128)));
        a3 = _mm512_add_epi64(a3, _mm512_loadu_si512((const void *)(p + o + 192)));
    }
    return _mm512_reduce_add_epi64(
        _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
}

static void *worker(void *arg)
{
    struct job *j = arg;
    int64_t s = 0;
    for (;;) {
        size_t c = atomic_fetch_add(&j->next, 1);
        size_t b = c * j->chunk;
        if (b >= j->len)
            break;
        size_t e = b + j->chunk < j->len ? b + j->chunk : j->len;
        s += sum_range(j->buf + b, e - b, j->prefetch);
    }
    atomic_fetch_add(&j->sink, s);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(const char *name, const uint8_t *buf, size_t len, int threads, size_t chunk,
                int prefetch, int reps)
{
    double t[64], cpu[64];
    for (int r = 0; r < reps; r++) {
        struct job j = { .buf = buf, .len = len, .chunk = chunk, .prefetch = prefetch };
        pthread_t th[16];
        double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
        for (int i = 1; i < threads; i++)
            pthread_create(&th[i], NULL, worker, &j);
        worker(&j);
        for (int i = 1; i < threads; i++)
            pthread_join(th[i], NULL);
        t[r] = (now(CLOCK_MONOTONIC) - t0) * 1e3;
        cpu[r] = (now(CLOCK_PROCESS_CPUTIME_ID) - c0) * 1e3;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    qsort(cpu, (size_t)reps, sizeof(double), cmp_double);
    printf("%-10s %d thr chunk %5zu KiB prefetch %4d: best %6.2f ms (%5.1f GB/s)  median %6.2f "
           "ms (%5.1f GB/s)  cpu median %6.2f ms\n",
           name, threads, chunk >> 10, prefetch, t[0], (double)len / t[0] * 1e-6, t[reps / 2],
           (double)len / t[reps / 2] * 1e-6, cpu[reps / 2]);
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 378;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    int reps = argc > 3 ? atoi(argv[3]) : 15;
    if (threads < 1 || threads > 16 || reps < 1 || reps > 64)
        return 2;
    size_t len = mib << 20;
    if (!__builtin_cpu_supports("avx512f")) {
        printf("bench_stream: no AVX-512 on this CPU, skipped\n");
        return 0;
    }
    for (int huge = 0; huge < 2; huge++) {
        uint8_t *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (buf == MAP_FAILED)
            return 1;
        madvise(buf, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
        for (size_t i = 0; i < len; i += 64)
            buf[i] = (uint8_t)i;
        const char *name = huge ? "huge" : "4k";
        for (int th = 1; th <= threads; th++) {
            run(name, buf, len, th, 48 << 10, 0, reps);
            run(name, buf, len, th, 48 << 10, 4096, reps);
            run(name, buf, len, th, 24 << 20, 0, reps);
        }
        munmap(buf, len);
    }
    return 0;
}
