/* err.h - error codes and the error buffer every fallible function fills.
 * A fallible function returns 0 (SB_OK) or an SB_* code and takes `struct sb_err *err`
 * (may be NULL) last. The message says what failed, the subject in quotes, and why. */
#ifndef SHOEBOX_ERR_H
#define SHOEBOX_ERR_H

#include <stddef.h>

#define SB_CODES(X)                                                                                \
    X(OK, "ok")                                                                                    \
    X(ENOMEM, "out of memory")                                                                     \
    X(EIO, "input/output error")                                                                   \
    X(ENOENT, "no such file")                                                                      \
    X(EACCES, "permission denied")                                                                 \
    X(EINVAL, "invalid argument")                                                                  \
    X(EFORMAT, "unsupported or unrecognised format")                                               \
    X(ECORRUPT, "corrupt or truncated data")                                                       \
    X(ETOOBIG, "too large")                                                                        \
    X(EDB, "catalog database error")                                                               \
    X(EMODEL, "model error")                                                                       \
    X(ENET, "network error")                                                                       \
    X(ECANCELED, "canceled")                                                                       \
    X(EINTERNAL, "internal error")

enum sb_code {
#define SB_X_ENUM(name, text) SB_##name,
    SB_CODES(SB_X_ENUM)
#undef SB_X_ENUM
        SB_NCODES
};

struct sb_err {
    int code;
    char msg[256];
};

/* The fixed text for a code ("out of memory"); never NULL. */
const char *sb_code_str(int code);

/* Fills err (when not NULL) with code and a printf-style message; returns code so that
 * `return sb_fail(err, SB_EINVAL, "bad '%s'", x);` reads naturally. */
int sb_fail(struct sb_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Maps an errno value to an SB_* code (ENOENT -> SB_ENOENT, EACCES/EPERM -> SB_EACCES, ...). */
int sb_code_from_errno(int e);

/* Resets err to SB_OK with an empty message. NULL is a no-op. */
void sb_err_clear(struct sb_err *err);

#endif
