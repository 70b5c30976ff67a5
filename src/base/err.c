/* err.c - error codes and messages (see err.h). */
#include "shoebox/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

static const char *const code_text[] = {
#define SB_X_TEXT(name, text) text,
    SB_CODES(SB_X_TEXT)
#undef SB_X_TEXT
};

const char *sb_code_str(int code)
{
    if (code < 0 || code >= SB_NCODES)
        return "unknown error";
    return code_text[code];
}

int sb_fail(struct sb_err *err, int code, const char *fmt, ...)
{
    if (!err)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

int sb_code_from_errno(int e)
{
    switch (e) {
    case 0:
        return SB_OK;
    case ENOENT:
    case ENOTDIR:
        return SB_ENOENT;
    case EACCES:
    case EPERM:
        return SB_EACCES;
    case ENOMEM:
        return SB_ENOMEM;
    case EFBIG:
    case ENAMETOOLONG:
        return SB_ETOOBIG;
    case EINVAL:
        return SB_EINVAL;
    default:
        return SB_EIO;
    }
}

void sb_err_clear(struct sb_err *err)
{
    if (!err)
        return;
    err->code = SB_OK;
    err->msg[0] = '\0';
}
