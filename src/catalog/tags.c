/* tags.c - catalog SQL for tags (user, auto, imported), XMP properties and the blob cache.
 *
 * A tag row is (photo, tag, source): the same word may come from several sources, and each
 * source's rows are replaced on their own, so re-running auto-tagging (source 'auto') never
 * touches what the user or an imported sidecar said. */
#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int check_tag(const char *tag, struct sb_err *err)
{
    size_t n = tag ? strlen(tag) : 0;
    if (n == 0)
        return sb_fail(err, SB_EINVAL, "tag: empty tag");
    if (n > CATALOG_TAG_MAX)
        return sb_fail(err, SB_EINVAL, "tag '%.40s...': longer than %d bytes", tag,
                       CATALOG_TAG_MAX);
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)tag[i] < 0x20)
            return sb_fail(err, SB_EINVAL, "tag '%s': control character", tag);
    }
    return SB_OK;
}

int catalog_tag_add(struct catalog *cat, int64_t photo_id, const char *tag, const char *source,
                    double score, struct sb_err *err)
{
    int rc = check_tag(tag, err);
    if (rc)
        return rc;
    sqlite3_stmt *st = catalog_prep(cat,
                                    "INSERT INTO tags(photo_id, tag, source, score) "
                                    "SELECT ?1, ?2, ?3, ?4 WHERE EXISTS "
                                    "(SELECT 1 FROM photos WHERE id = ?1) "
                                    "ON CONFLICT(photo_id, tag, source) DO UPDATE SET score = ?4",
                                    err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    sqlite3_bind_text(st, 2, tag, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    if (!isnan(score))
        sqlite3_bind_double(st, 4, score);
    rc = catalog_step_done(cat, st, "add tag", err);
    if (!rc && sqlite3_changes(cat->db) == 0)
        rc = sb_fail(err, SB_ENOENT, "tag: no photo %lld", (long long)photo_id);
    return rc;
}

int catalog_tag_remove(struct catalog *cat, int64_t photo_id, const char *tag, const char *source,
                       int64_t *removed, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat,
                                    "DELETE FROM tags WHERE photo_id = ?1 AND tag = ?2 "
                                    "AND (?3 IS NULL OR source = ?3)",
                                    err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    sqlite3_bind_text(st, 2, tag, -1, SQLITE_STATIC);
    if (source)
        sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    int rc = catalog_step_done(cat, st, "remove tag", err);
    if (!rc && removed)
        *removed = sqlite3_changes(cat->db);
    return rc;
}

int catalog_tags_replace(struct catalog *cat, int64_t photo_id, const char *source,
                         const char *const *tags, const float *scores, size_t n, struct sb_err *err)
{
    sqlite3_stmt *st =
        catalog_prep(cat, "DELETE FROM tags WHERE photo_id = ?1 AND source = ?2", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    sqlite3_bind_text(st, 2, source, -1, SQLITE_STATIC);
    int rc = catalog_step_done(cat, st, "replace tags", err);
    for (size_t i = 0; !rc && i < n; i++) {
        /* a bad word from a sidecar is skipped, not a reason to lose the others */
        if (check_tag(tags[i], NULL))
            continue;
        rc = catalog_tag_add(cat, photo_id, tags[i], source,
                             scores ? (double)scores[i] : (double)NAN, err);
    }
    return rc;
}

/* ---- XMP properties ------------------------------------------------------------------------ */

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s && *s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

int catalog_xmp_set(struct catalog *cat, int64_t photo_id, const struct catalog_xmp *x,
                    struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(
        cat,
        "INSERT OR REPLACE INTO photo_xmp(photo_id, rating, label, title, description) "
        "VALUES (?1, ?2, ?3, ?4, ?5)",
        err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    if (x->rating != CATALOG_XMP_NO_RATING)
        sqlite3_bind_int(st, 2, x->rating);
    bind_text_or_null(st, 3, x->label);
    bind_text_or_null(st, 4, x->title);
    bind_text_or_null(st, 5, x->description);
    return catalog_step_done(cat, st, "store xmp", err);
}

static int dup_col(sqlite3_stmt *st, int col, char **out)
{
    const char *s = (const char *)sqlite3_column_text(st, col);
    *out = NULL;
    if (!s)
        return SB_OK;
    *out = sb_strdup(s);
    return *out ? SB_OK : SB_ENOMEM;
}

int catalog_xmp_get(struct catalog *cat, int64_t photo_id, struct catalog_xmp *x,
                    struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(
        cat, "SELECT rating, label, title, description FROM photo_xmp WHERE photo_id = ?1", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    struct catalog_xmp r = { CATALOG_XMP_NO_RATING, NULL, NULL, NULL };
    int rc = SB_OK;
    int s = sqlite3_step(st);
    if (s == SQLITE_DONE) {
        rc = sb_fail(err, SB_ENOENT, "xmp: no properties for photo %lld", (long long)photo_id);
        goto out;
    }
    if (s != SQLITE_ROW) {
        rc = catalog_db_fail(cat, err, "read xmp");
        goto out;
    }
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
        r.rating = sqlite3_column_int(st, 0);
    if (dup_col(st, 1, &r.label) || dup_col(st, 2, &r.title) || dup_col(st, 3, &r.description)) {
        catalog_xmp_release(&r);
        rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
        goto out;
    }
    *x = r;
out:
    sqlite3_finalize(st);
    return rc;
}

void catalog_xmp_release(struct catalog_xmp *x)
{
    if (!x)
        return;
    free(x->label);
    free(x->title);
    free(x->description);
    x->label = x->title = x->description = NULL;
}

/* ---- blob cache ---------------------------------------------------------------------------- */

int catalog_cache_get(struct catalog *cat, const char *key, void **data, size_t *len,
                      struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat, "SELECT data FROM blob_cache WHERE key = ?1", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = SB_OK;
    int s = sqlite3_step(st);
    if (s == SQLITE_DONE) {
        rc = sb_fail(err, SB_ENOENT, "cache: no entry '%s'", key);
        goto out;
    }
    if (s != SQLITE_ROW) {
        rc = catalog_db_fail(cat, err, "read cache");
        goto out;
    }
    size_t n = (size_t)sqlite3_column_bytes(st, 0);
    void *buf = malloc(n ? n : 1);
    if (!buf) {
        rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
        goto out;
    }
    if (n)
        memcpy(buf, sqlite3_column_blob(st, 0), n);
    *data = buf;
    *len = n;
out:
    sqlite3_finalize(st);
    return rc;
}

int catalog_cache_put(struct catalog *cat, const char *key, const void *data, size_t len,
                      struct sb_err *err)
{
    if (len > INT_MAX)
        return sb_fail(err, SB_ETOOBIG, "cache '%s': %zu bytes", key, len);
    sqlite3_stmt *st = catalog_prep(
        cat, "INSERT OR REPLACE INTO blob_cache(key, data, added_at) VALUES (?1, ?2, unixepoch())",
        err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, data, (int)len, SQLITE_STATIC);
    return catalog_step_done(cat, st, "write cache", err);
}

int catalog_jobs_reset_stem(struct catalog *cat, const char *stage, const char *stem, int64_t *n,
                            struct sb_err *err)
{
    /* paths are compared as bytes: ["stem.", "stem/") is every path that starts with "stem."
     * ('.' and '/' are neighbours in ASCII), found through the files(path) index */
    sqlite3_stmt *st = catalog_prep(
        cat,
        "UPDATE jobs SET state = 0, error = NULL WHERE stage = ?1 AND state <> 0 AND photo_id IN"
        " (SELECT photo_id FROM files WHERE photo_id IS NOT NULL AND status = 1 AND"
        "  (path = ?2 OR (path >= ?2 || '.' AND path < ?2 || '/')))",
        err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, stage, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, stem, -1, SQLITE_STATIC);
    int rc = catalog_step_done(cat, st, "reset jobs of a sidecar's photos", err);
    if (!rc && n)
        *n = sqlite3_changes(cat->db);
    return rc;
}
