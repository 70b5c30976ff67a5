/* log.h - leveled logging to a sink set once by main() before threads start. */
#ifndef SHOEBOX_LOG_H
#define SHOEBOX_LOG_H

enum sb_log_level { SB_LOG_ERROR = 0, SB_LOG_WARN, SB_LOG_INFO, SB_LOG_DEBUG };

typedef void (*sb_log_fn)(enum sb_log_level level, const char *msg, void *user);

/* Sets the sink and the level; call before any thread starts. fn NULL means stderr. */
void sb_log_set(sb_log_fn fn, void *user, enum sb_log_level level);
enum sb_log_level sb_log_level(void);
void sb_log_write(enum sb_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define SB_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= sb_log_level())                                                             \
            sb_log_write((level), __VA_ARGS__);                                                    \
    } while (0)
#define SB_LOG_E(...) SB_LOG(SB_LOG_ERROR, __VA_ARGS__)
#define SB_LOG_W(...) SB_LOG(SB_LOG_WARN, __VA_ARGS__)
#define SB_LOG_I(...) SB_LOG(SB_LOG_INFO, __VA_ARGS__)
#define SB_LOG_D(...) SB_LOG(SB_LOG_DEBUG, __VA_ARGS__)

#endif
