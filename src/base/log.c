/* log.c - the log sink. The only mutable globals in shoebox: set by main() before threads. */
#include "shoebox/log.h"

#include <stdarg.h>
#include <stdio.h>

static sb_log_fn log_fn;
static void *log_user;
static enum sb_log_level log_level = SB_LOG_WARN;

void sb_log_set(sb_log_fn fn, void *user, enum sb_log_level level)
{
    log_fn = fn;
    log_user = user;
    log_level = level;
}

enum sb_log_level sb_log_level(void)
{
    return log_level;
}

void sb_log_write(enum sb_log_level level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (log_fn) {
        log_fn(level, msg, log_user);
        return;
    }
    static const char *const names[] = { "error", "warning", "info", "debug" };
    fprintf(stderr, "shoebox: %s: %s\n", names[level], msg);
}
