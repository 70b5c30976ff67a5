/* progress.h - progress reporting and cancellation for long work. NULL means silent. */
#ifndef SHOEBOX_PROGRESS_H
#define SHOEBOX_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct sb_progress {
    /* stage: short name ("scan", "probe", "embed"); done/total: items (total 0 = unknown). */
    void (*update)(void *user, const char *stage, int64_t done, int64_t total);
    /* Polled between items; true asks the work to stop at the next safe point. */
    bool (*stop_requested)(void *user);
    void *user;
};

static inline void sb_progress_update(const struct sb_progress *p, const char *stage, int64_t done,
                                      int64_t total)
{
    if (p && p->update)
        p->update(p->user, stage, done, total);
}

static inline bool sb_progress_stop(const struct sb_progress *p)
{
    return p && p->stop_requested && p->stop_requested(p->user);
}

#endif
