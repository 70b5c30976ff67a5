/* lightroom_util.c - helpers of the Lightroom, Takeout and Apple importers (see
 * lightroom_internal.h). */
#include "lightroom_internal.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

int interop_sqlite_open_ro(const char *path, sqlite3 **out, struct sb_err *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        return sb_fail(err, sb_code_from_errno(e), "open '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode))
        return sb_fail(err, SB_EINVAL, "open '%s': not a file", path);
    struct sb_buf uri;
    sb_buf_init(&uri);
    sb_buf_puts(&uri, "file:");
    /* RFC 3986 unreserved characters and '/' stay; the rest (spaces, '?', '#', '%') are
     * percent-encoded, as SQLite's URI filenames require */
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("/-._~", *p))
            sb_buf_append(&uri, (const char *)p, 1);
        else
            sb_buf_printf(&uri, "%%%02X", *p);
    }
    sb_buf_puts(&uri, "?mode=ro");
    if (uri.failed) {
        sb_buf_release(&uri);
        return sb_fail(err, SB_ENOMEM, "open '%s': out of memory", path);
    }
    sqlite3 *db = NULL;
    int rc = SB_OK;
    if (sqlite3_open_v2(uri.data, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
        rc = sb_fail(err, SB_EFORMAT, "open '%s': %s", path,
                     db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, 2000);
    /* opening is lazy: read the schema now so that a non-database fails here */
    if (sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK) {
        rc = sb_fail(err, SB_EFORMAT, "open '%s': %s", path, sqlite3_errmsg(db));
        goto out;
    }
    *out = db;
    db = NULL;
out:
    sqlite3_close(db);
    sb_buf_release(&uri);
    return rc;
}

bool interop_has_column(sqlite3 *db, const char *table, const char *column)
{
    sqlite3_stmt *st = NULL;
    bool found = false;
    if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1)", -1, &st, NULL) !=
        SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        if (!column || (name && strcasecmp(name, column) == 0)) {
            found = true;
            break;
        }
    }
    sqlite3_finalize(st);
    return found;
}

void interop_safe_component(const char *in, size_t n, char *out, size_t cap)
{
    size_t j = 0;
    if (cap == 0)
        return;
    for (size_t i = 0; i < n && in[i] && j + 1 < cap; i++)
        out[j++] = in[i] == '/' || in[i] == '\\' ? '_' : in[i];
    out[j] = '\0';
    if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0 || j == 0) {
        out[0] = '_';
        out[cap > 1 ? 1 : 0] = '\0';
    }
}

int interop_hash_file(const char *path, unsigned char hash[16], struct sb_err *err)
{
    int rc = SB_OK;
    unsigned char *buf = NULL;
    XXH3_state_t *state = XXH3_createState();
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "open '%s': %s", path, strerror(e));
        goto out;
    }
    buf = malloc(1 << 20);
    if (!state || !buf) {
        rc = sb_fail(err, SB_ENOMEM, "hash '%s': out of memory", path);
        goto out;
    }
    XXH3_128bits_reset(state);
    for (;;) {
        size_t n = 0;
        rc = sb_read_some(fd, buf, 1 << 20, &n, path, err);
        if (rc)
            goto out;
        if (n == 0)
            break;
        XXH3_128bits_update(state, buf, (size_t)n);
    }
    XXH128_hash_t h = XXH3_128bits_digest(state);
    for (int i = 0; i < 8; i++) {
        hash[i] = (unsigned char)(h.high64 >> (56 - 8 * i));
        hash[8 + i] = (unsigned char)(h.low64 >> (56 - 8 * i));
    }
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    XXH3_freeState(state);
    return rc;
}

int interop_match_photo(struct catalog *cat, const char *path, int64_t *photo, bool *by_hash,
                        struct sb_err *err)
{
    struct sb_err e;
    *photo = 0;
    *by_hash = false;
    int rc = catalog_photo_by_path(cat, path, photo, &e);
    if (rc == SB_OK)
        return SB_OK;
    if (rc != SB_ENOENT)
        return sb_fail(err, rc, "%s", e.msg);
    char *real = realpath(path, NULL); /* the same file under another spelling */
    if (real && strcmp(real, path) != 0 && catalog_photo_by_path(cat, real, photo, &e) == 0) {
        free(real);
        return SB_OK;
    }
    struct stat sb;
    unsigned char hash[16];
    if (real && stat(real, &sb) == 0 && S_ISREG(sb.st_mode) &&
        interop_hash_file(real, hash, &e) == SB_OK) {
        rc = catalog_photo_by_hash(cat, hash, photo, &e);
        if (rc == SB_OK)
            *by_hash = true;
        else if (rc != SB_ENOENT) {
            free(real);
            return sb_fail(err, rc, "%s", e.msg);
        }
    }
    free(real);
    *photo = *by_hash ? *photo : 0;
    return SB_OK;
}
