/* util.c - checked arithmetic, parsing, file helpers, string buffers (see util.h). */
#include "shoebox/util.h"
#include "shoebox/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

bool sb_mul_size(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

bool sb_mul3_size(size_t a, size_t b, size_t c, size_t *out)
{
    size_t ab;
    return sb_mul_size(a, b, &ab) && sb_mul_size(ab, c, out);
}

bool sb_add_size(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_add_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

int sb_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out, struct sb_err *err)
{
    if (!s || !*s)
        return sb_fail(err, SB_EINVAL, "expected a number, got an empty string");
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s)
        return sb_fail(err, SB_EINVAL, "'%s' is not a whole number", s);
    if (v < lo || v > hi)
        return sb_fail(err, SB_EINVAL, "%lld is out of range [%lld, %lld]", v, (long long)lo,
                       (long long)hi);
    *out = v;
    return SB_OK;
}

int sb_parse_f32(const char *s, float lo, float hi, float *out, struct sb_err *err)
{
    if (!s || !*s)
        return sb_fail(err, SB_EINVAL, "expected a number, got an empty string");
    errno = 0;
    char *end = NULL;
    float v = strtof(s, &end);
    if (errno || *end || end == s || !isfinite(v))
        return sb_fail(err, SB_EINVAL, "'%s' is not a number", s);
    if (v < lo || v > hi)
        return sb_fail(err, SB_EINVAL, "'%s' is out of range [%g, %g]", s, (double)lo, (double)hi);
    *out = v;
    return SB_OK;
}

int sb_read_some(int fd, void *buf, size_t n, size_t *got, const char *path, struct sb_err *err)
{
    for (;;) {
        ssize_t r = read(fd, buf, n);
        if (r >= 0) {
            *got = (size_t)r;
            return SB_OK;
        }
        if (errno != EINTR) {
            int e = errno;
            *got = 0;
            return sb_fail(err, sb_code_from_errno(e), "read '%s': %s", path, strerror(e));
        }
    }
}

int sb_fd_size(int fd, const char *path, size_t max, size_t *size, struct sb_err *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        return sb_fail(err, sb_code_from_errno(e), "stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode))
        return sb_fail(err, SB_EINVAL, "read '%s': not a regular file", path);
    if ((uint64_t)st.st_size > max)
        return sb_fail(err, SB_ETOOBIG, "read '%s': %lld bytes is over the limit of %zu", path,
                       (long long)st.st_size, max);
    *size = (size_t)st.st_size;
    return SB_OK;
}

uint64_t sb_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (f) {
        char line[256];
        unsigned long long kb;
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
                fclose(f);
                return (uint64_t)kb * 1024;
            }
        fclose(f);
    }
    long pages = sysconf(_SC_AVPHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

int sb_read_file(const char *path, size_t max, unsigned char **out, size_t *len, struct sb_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return sb_fail(err, sb_code_from_errno(e), "open '%s': %s", path, strerror(e));
    }
    unsigned char *buf = NULL;
    size_t want = 0;
    int rc = sb_fd_size(fd, path, max, &want, err);
    if (rc)
        goto out;
    buf = malloc(want + 1);
    if (!buf) {
        rc = sb_fail(err, SB_ENOMEM, "read '%s': out of memory", path);
        goto out;
    }
    size_t got = 0;
    while (got < want) {
        size_t n = 0;
        rc = sb_read_some(fd, buf + got, want - got, &n, path, err);
        if (rc)
            goto out;
        if (n == 0)
            break; /* the file shrank under us: use what is there */
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

int sb_write_file_atomic(const char *path, const void *data, size_t len, struct sb_err *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp)
        return sb_fail(err, SB_ENOMEM, "write '%s': out of memory", path);
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int rc = SB_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "create '%s': %s", tmp, strerror(e));
        goto out;
    }
    const unsigned char *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            rc = sb_fail(err, sb_code_from_errno(e), "write '%s': %s", tmp, strerror(e));
            break;
        }
        done += (size_t)n;
    }
    if (close(fd) != 0 && rc == SB_OK) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "close '%s': %s", tmp, strerror(e));
    }
    if (rc == SB_OK && rename(tmp, path) != 0) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "rename to '%s': %s", path, strerror(e));
    }
    if (rc != SB_OK)
        unlink(tmp);
out:
    free(tmp);
    return rc;
}

int sb_mkdirs(const char *path, struct sb_err *err)
{
    size_t n = strlen(path);
    if (n == 0)
        return SB_OK;
    char *p = malloc(n + 1);
    if (!p)
        return sb_fail(err, SB_ENOMEM, "mkdir '%s': out of memory", path);
    memcpy(p, path, n + 1);
    int rc = SB_OK;
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            rc = sb_fail(err, sb_code_from_errno(e), "mkdir '%s': %s", p, strerror(e));
            break;
        }
        p[i] = c;
    }
    free(p);
    return rc;
}

double sb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define SB_BUF_MAX ((size_t)64 << 20)

void sb_buf_init(struct sb_buf *b)
{
    memset(b, 0, sizeof(*b));
}

void sb_buf_release(struct sb_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void sb_buf_append(struct sb_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > SB_BUF_MAX) {
            b->failed = true;
            return;
        }
        char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = true;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void sb_buf_puts(struct sb_buf *b, const char *s)
{
    sb_buf_append(b, s, strlen(s));
}

void sb_buf_printf(struct sb_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        sb_buf_append(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_buf_append(b, big, (size_t)n);
    free(big);
}

char *sb_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

char *sb_utf8_clean(const char *s)
{
    struct sb_buf b;
    sb_buf_init(&b);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = 0;
        if (p[0] < 0x80)
            n = 1;
        else if ((p[0] & 0xE0) == 0xC0 && p[0] >= 0xC2 && (p[1] & 0xC0) == 0x80)
            n = 2;
        else if ((p[0] & 0xF0) == 0xE0 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 &&
                 !(p[0] == 0xE0 && p[1] < 0xA0) && !(p[0] == 0xED && p[1] >= 0xA0))
            n = 3;
        else if ((p[0] & 0xF8) == 0xF0 && p[0] <= 0xF4 && (p[1] & 0xC0) == 0x80 &&
                 (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80 && !(p[0] == 0xF0 && p[1] < 0x90) &&
                 !(p[0] == 0xF4 && p[1] >= 0x90))
            n = 4;
        if (n) {
            sb_buf_append(&b, (const char *)p, n);
            p += n;
        } else {
            sb_buf_append(&b, "\xEF\xBF\xBD", 3); /* U+FFFD for a byte that is not UTF-8 */
            p++;
        }
    }
    if (!b.data)
        sb_buf_append(&b, "", 0);
    if (b.failed) {
        sb_buf_release(&b);
        return NULL;
    }
    return b.data;
}

enum sb_isa sb_isa_max(void)
{
    static int cap = -1; /* a race here writes the same value */
    if (cap < 0) {
        const char *v = getenv("SHOEBOX_MAX_ISA");
        cap = v && strcmp(v, "c") == 0      ? SB_ISA_C
              : v && strcmp(v, "avx2") == 0 ? SB_ISA_AVX2
                                            : SB_ISA_AVX512;
    }
    return (enum sb_isa)cap;
}
