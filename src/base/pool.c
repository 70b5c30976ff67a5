/* pool.c - fixed thread pool with worker indices (see pool.h).
 * One mutex guards the task queue, the pending count and the stop flag; there is no other
 * lock in this file, so there is no lock order to keep. */
#include "shoebox/pool.h"
#include "shoebox/err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct task {
    sb_task_fn fn;
    void *arg;
    struct task *next;
};

struct worker_arg {
    struct sb_pool *pool;
    int index;
};

struct sb_pool {
    pthread_mutex_t mu;      /* guards head, tail, pending, stop */
    pthread_cond_t has_work; /* signalled when a task is queued or stop is set */
    pthread_cond_t idle;     /* signalled when pending drops to zero */
    struct task *head, *tail;
    size_t pending; /* queued + running */
    bool stop;
    int n;
    pthread_t *threads;
    struct worker_arg *args;
};

static void *worker_main(void *p)
{
    struct worker_arg *wa = p;
    struct sb_pool *pool = wa->pool;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->head && !pool->stop)
            pthread_cond_wait(&pool->has_work, &pool->mu);
        if (!pool->head)
            break; /* stop requested and the queue is drained */
        struct task *t = pool->head;
        pool->head = t->next;
        if (!pool->head)
            pool->tail = NULL;
        pthread_mutex_unlock(&pool->mu);
        t->fn(t->arg, wa->index);
        free(t);
        pthread_mutex_lock(&pool->mu);
        if (--pool->pending == 0)
            pthread_cond_broadcast(&pool->idle);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

int sb_pool_new(int n, struct sb_pool **out, struct sb_err *err)
{
    if (n < 1)
        n = 1;
    struct sb_pool *pool = calloc(1, sizeof(*pool));
    if (!pool)
        return sb_fail(err, SB_ENOMEM, "thread pool: out of memory");
    pool->threads = calloc((size_t)n, sizeof(*pool->threads));
    pool->args = calloc((size_t)n, sizeof(*pool->args));
    if (!pool->threads || !pool->args) {
        free(pool->threads);
        free(pool->args);
        free(pool);
        return sb_fail(err, SB_ENOMEM, "thread pool: out of memory");
    }
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->has_work, NULL);
    pthread_cond_init(&pool->idle, NULL);
    for (int i = 0; i < n; i++) {
        pool->args[i].pool = pool;
        pool->args[i].index = i;
        if (pthread_create(&pool->threads[i], NULL, worker_main, &pool->args[i]) != 0) {
            pool->n = i;
            sb_pool_free(pool);
            return sb_fail(err, SB_EINTERNAL, "thread pool: cannot start thread %d", i);
        }
    }
    pool->n = n;
    *out = pool;
    return SB_OK;
}

void sb_pool_free(struct sb_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->stop = true;
    pthread_cond_broadcast(&pool->has_work);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < pool->n; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->has_work);
    pthread_cond_destroy(&pool->idle);
    free(pool->threads);
    free(pool->args);
    free(pool);
}

int sb_pool_size(const struct sb_pool *pool)
{
    return pool ? pool->n : 0;
}

int sb_pool_submit(struct sb_pool *pool, sb_task_fn fn, void *arg, struct sb_err *err)
{
    struct task *t = malloc(sizeof(*t));
    if (!t)
        return sb_fail(err, SB_ENOMEM, "thread pool: out of memory");
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    pthread_mutex_lock(&pool->mu);
    if (pool->tail)
        pool->tail->next = t;
    else
        pool->head = t;
    pool->tail = t;
    pool->pending++;
    pthread_cond_signal(&pool->has_work);
    pthread_mutex_unlock(&pool->mu);
    return SB_OK;
}

void sb_pool_wait(struct sb_pool *pool)
{
    pthread_mutex_lock(&pool->mu);
    while (pool->pending)
        pthread_cond_wait(&pool->idle, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
}

struct range_job {
    sb_range_fn fn;
    void *arg;
    size_t begin, end;
    pthread_mutex_t *mu; /* guards *left */
    pthread_cond_t *done;
    int *left;
};

static void range_task(void *p, int worker)
{
    struct range_job *j = p;
    j->fn(j->arg, j->begin, j->end, worker);
    pthread_mutex_lock(j->mu);
    if (--*j->left == 0)
        pthread_cond_signal(j->done);
    pthread_mutex_unlock(j->mu);
}

void sb_pool_for(struct sb_pool *pool, size_t n, size_t grain, sb_range_fn fn, void *arg)
{
    if (n == 0)
        return;
    if (grain == 0)
        grain = 1;
    int workers = pool ? pool->n : 0;
    size_t parts = (size_t)workers + 1;
    if (parts > (n + grain - 1) / grain)
        parts = (n + grain - 1) / grain;
    if (!pool || parts <= 1) {
        fn(arg, 0, n, pool ? pool->n : 0);
        return;
    }
    /* parts <= workers + 1, small: keep the jobs on the stack-free heap path only if needed */
    struct range_job jobs[64];
    if (parts > 64)
        parts = 64;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t done = PTHREAD_COND_INITIALIZER;
    int left = (int)parts - 1;
    size_t chunk = n / parts, extra = n % parts, at = 0;
    for (size_t i = 0; i < parts; i++) {
        size_t len = chunk + (i < extra ? 1 : 0);
        jobs[i] = (struct range_job){ fn, arg, at, at + len, &mu, &done, &left };
        at += len;
    }
    int submitted = 0;
    for (size_t i = 1; i < parts; i++) {
        if (sb_pool_submit(pool, range_task, &jobs[i], NULL) != SB_OK) {
            /* out of memory: do it here instead */
            fn(arg, jobs[i].begin, jobs[i].end, pool->n);
            pthread_mutex_lock(&mu);
            left--;
            pthread_mutex_unlock(&mu);
            continue;
        }
        submitted++;
    }
    fn(arg, jobs[0].begin, jobs[0].end, pool->n);
    pthread_mutex_lock(&mu);
    while (left > 0)
        pthread_cond_wait(&done, &mu);
    pthread_mutex_unlock(&mu);
    (void)submitted;
    pthread_mutex_destroy(&mu);
    pthread_cond_destroy(&done);
}

struct each_job {
    sb_range_fn fn;
    void *arg;
    size_t n;
    atomic_size_t next; /* the next item nobody has taken */
    pthread_mutex_t mu; /* guards left */
    pthread_cond_t done;
    int left; /* pool tasks still running */
};

static void each_run(struct each_job *j, int worker)
{
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n)
            return;
        j->fn(j->arg, i, i + 1, worker);
    }
}

static void each_task(void *p, int worker)
{
    struct each_job *j = p;
    each_run(j, worker);
    pthread_mutex_lock(&j->mu);
    if (--j->left == 0)
        pthread_cond_signal(&j->done);
    pthread_mutex_unlock(&j->mu);
}

void sb_pool_for_each(struct sb_pool *pool, size_t n, sb_range_fn fn, void *arg)
{
    if (n == 0)
        return;
    if (!pool || n == 1) {
        for (size_t i = 0; i < n; i++)
            fn(arg, i, i + 1, pool ? pool->n : 0);
        return;
    }
    struct each_job j = { .fn = fn, .arg = arg, .n = n };
    atomic_init(&j.next, 0);
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.done, NULL);
    /* no more helpers than items beyond the caller's first */
    size_t helpers = (size_t)pool->n < n - 1 ? (size_t)pool->n : n - 1;
    for (size_t i = 0; i < helpers; i++) {
        pthread_mutex_lock(&j.mu);
        j.left++;
        pthread_mutex_unlock(&j.mu);
        if (sb_pool_submit(pool, each_task, &j, NULL) != SB_OK) {
            pthread_mutex_lock(&j.mu); /* out of memory: fewer helpers */
            j.left--;
            pthread_mutex_unlock(&j.mu);
            break;
        }
    }
    each_run(&j, pool->n);
    pthread_mutex_lock(&j.mu);
    while (j.left > 0)
        pthread_cond_wait(&j.done, &j.mu);
    pthread_mutex_unlock(&j.mu);
    pthread_mutex_destroy(&j.mu);
    pthread_cond_destroy(&j.done);
}

int sb_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}
