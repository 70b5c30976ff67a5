/* pool.h - a fixed thread pool. Tasks get the index of the worker that runs them, so each
 * worker can use its own scratch without locks. One pool per process, made by main(). */
#ifndef SHOEBOX_POOL_H
#define SHOEBOX_POOL_H

#include <stddef.h>

struct sb_err;
struct sb_pool;

typedef void (*sb_task_fn)(void *arg, int worker);
/* A parallel-for body: handles items [begin, end) on worker `worker`. */
typedef void (*sb_range_fn)(void *arg, size_t begin, size_t end, int worker);

/* Starts n worker threads (n >= 1). */
int sb_pool_new(int n, struct sb_pool **out, struct sb_err *err);
/* Waits for queued tasks, joins the threads, frees. NULL is a no-op. */
void sb_pool_free(struct sb_pool *pool);
int sb_pool_size(const struct sb_pool *pool);
/* Queues fn(arg, worker); never blocks for long. */
int sb_pool_submit(struct sb_pool *pool, sb_task_fn fn, void *arg, struct sb_err *err);
/* Blocks until every task submitted so far has finished. */
void sb_pool_wait(struct sb_pool *pool);
/* Splits [0, n) into chunks of at least `grain` and runs them on the pool and the calling thread;
 * returns when all are done. The caller's chunk has worker index sb_pool_size(pool).
 * pool NULL runs everything on the caller with worker 0. */
void sb_pool_for(struct sb_pool *pool, size_t n, size_t grain, sb_range_fn fn, void *arg);
/* Like sb_pool_for, but the pool's threads and the caller take the items one at a time as
 * they get free (fn sees ranges of one item), in order: for items that each take long and
 * not always alike (photos), so that no thread idles while another still has a queue. */
void sb_pool_for_each(struct sb_pool *pool, size_t n, sb_range_fn fn, void *arg);

/* Number of online CPUs (at least 1). */
int sb_cpu_count(void);

#endif
