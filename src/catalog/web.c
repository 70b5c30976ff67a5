/* web.c - catalog queries for the web UI: facet counts (months, folders, cameras, tags,
 * formats), tags of a photo, "on this day", capture times for the rediscover sample. */
#include "internal.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Present photos: at least one file with status OK. */
#define PRESENT "EXISTS (SELECT 1 FROM files f WHERE f.photo_id = p.id AND f.status = 1)"

int catalog_facet_counts(struct catalog *cat, enum catalog_facet facet, catalog_count_fn fn,
                         void *user, struct sb_err *err)
{
    const char *sql = NULL;
    switch (facet) {
    case CATALOG_FACET_MONTH:
        sql = "SELECT coalesce(substr(p.taken_at, 1, 7), ''), count(*) FROM photos p"
              " WHERE " PRESENT " GROUP BY 1 ORDER BY 1 = '', 1 DESC";
        break;
    case CATALOG_FACET_FOLDER:
        /* rtrim(path, <every character but '/'>) cuts the file name: the folder with its
         * trailing slash */
        sql = "SELECT rtrim(path, replace(path, '/', '')) AS dir, count(DISTINCT photo_id)"
              " FROM files WHERE status = 1 AND photo_id IS NOT NULL GROUP BY dir ORDER BY dir";
        break;
    case CATALOG_FACET_CAMERA:
        sql = "SELECT trim(coalesce(nullif(p.model, ''), p.make)) AS c, count(*) FROM photos p"
              " WHERE " PRESENT " AND c IS NOT NULL AND c != '' GROUP BY c ORDER BY 2 DESC, c";
        break;
    case CATALOG_FACET_TAG:
        sql = "SELECT t.tag, count(DISTINCT t.photo_id) FROM tags t JOIN photos p"
              " ON p.id = t.photo_id WHERE " PRESENT " GROUP BY t.tag ORDER BY 2 DESC, 1";
        break;
    case CATALOG_FACET_FORMAT:
        sql = "SELECT p.format, count(*) FROM photos p WHERE " PRESENT
              " AND p.format IS NOT NULL GROUP BY p.format ORDER BY 2 DESC, 1";
        break;
    }
    if (!sql)
        return sb_fail(err, SB_EINVAL, "catalog: unknown facet %d", (int)facet);
    sqlite3_stmt *st = catalog_prep(cat, sql, err);
    if (!st)
        return SB_EDB;
    int rc = SB_OK, s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        char *folder = NULL;
        if (facet == CATALOG_FACET_FOLDER && key) {
            /* drop the trailing slash, except for the root itself */
            size_t len = strlen(key);
            folder = malloc(len + 1);
            if (!folder) {
                rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
                break;
            }
            memcpy(folder, key, len + 1);
            if (len > 1 && folder[len - 1] == '/')
                folder[len - 1] = '\0';
            key = folder;
        }
        rc = fn(user, key ? key : "", sqlite3_column_int64(st, 1));
        free(folder);
        if (rc)
            break;
    }
    if (!rc && s != SQLITE_DONE)
        rc = catalog_db_fail(cat, err, "count photos");
    sqlite3_finalize(st);
    return rc;
}

int catalog_photo_hash(struct catalog *cat, int64_t id, unsigned char hash[16], char *format,
                       size_t cap, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat, "SELECT hash, format FROM photos WHERE id = ?1", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, id);
    int rc = SB_OK, s = sqlite3_step(st);
    if (s == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 16) {
        memcpy(hash, sqlite3_column_blob(st, 0), 16);
        if (format && cap) {
            const char *f = (const char *)sqlite3_column_text(st, 1);
            size_t len = f ? strlen(f) : 0;
            if (len >= cap)
                len = cap - 1;
            if (len)
                memcpy(format, f, len);
            format[len] = '\0';
        }
    } else if (s == SQLITE_ROW || s == SQLITE_DONE) {
        rc = sb_fail(err, SB_ENOENT, "no photo with id %lld", (long long)id);
    } else {
        rc = catalog_db_fail(cat, err, "read photo");
    }
    sqlite3_finalize(st);
    return rc;
}

int catalog_photo_tags(struct catalog *cat, int64_t id, catalog_tag_fn fn, void *user,
                       struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(
        cat, "SELECT tag, source, score FROM tags WHERE photo_id = ?1 ORDER BY tag, source", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, id);
    int rc = SB_OK, s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        double score =
            sqlite3_column_type(st, 2) == SQLITE_NULL ? (double)NAN : sqlite3_column_double(st, 2);
        rc = fn(user, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1), score);
        if (rc)
            break;
    }
    if (!rc && s != SQLITE_DONE)
        rc = catalog_db_fail(cat, err, "read tags");
    sqlite3_finalize(st);
    return rc;
}

static int collect(struct catalog *cat, sqlite3_stmt *st, int64_t **ids, int64_t **times, size_t *n,
                   struct sb_err *err)
{
    size_t cap = 256, count = 0;
    int64_t *v = malloc(cap * sizeof(*v));
    int64_t *t = times ? malloc(cap * sizeof(*t)) : NULL;
    int rc = SB_OK, s;
    if (!v || (times && !t)) {
        rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
        goto out;
    }
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t nc = cap * 2;
            int64_t *nv = realloc(v, nc * sizeof(*v));
            if (nv)
                v = nv;
            int64_t *nt = times && nv ? realloc(t, nc * sizeof(*t)) : NULL;
            if (nt)
                t = nt;
            if (!nv || (times && !nt)) {
                rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
                goto out;
            }
            cap = nc;
        }
        v[count] = sqlite3_column_int64(st, 0);
        if (t)
            t[count] = sqlite3_column_int64(st, 1);
        count++;
    }
    if (s != SQLITE_DONE)
        rc = catalog_db_fail(cat, err, "select photos");
out:
    if (rc) {
        free(v);
        free(t);
        return rc;
    }
    *ids = v;
    if (times)
        *times = t;
    *n = count;
    return SB_OK;
}

int catalog_on_this_day(struct catalog *cat, const char *mmdd, const char *year, size_t max,
                        int64_t **ids, size_t *n, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat,
                                    "SELECT p.id FROM photos p WHERE substr(p.taken_at, 6, 5) = ?1"
                                    " AND substr(p.taken_at, 1, 4) < ?2 AND " PRESENT
                                    " ORDER BY p.taken_at DESC, p.id LIMIT ?3",
                                    err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, mmdd, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, year, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, max ? (int64_t)max : -1);
    int rc = collect(cat, st, ids, NULL, n, err);
    sqlite3_finalize(st);
    return rc;
}

int catalog_photo_times(struct catalog *cat, int64_t **ids, int64_t **times, size_t *n,
                        struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat,
                                    "SELECT p.id, p.taken_unix FROM photos p WHERE p.taken_unix"
                                    " IS NOT NULL AND " PRESENT " ORDER BY p.taken_unix, p.id",
                                    err);
    if (!st)
        return SB_EDB;
    int rc = collect(cat, st, ids, times, n, err);
    sqlite3_finalize(st);
    return rc;
}
