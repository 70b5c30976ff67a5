/* text.c - texts about photos (OCR, later captions and XMP titles) and their full-text index.
 *
 * texts holds one row per (photo, source); texts_fts is an external-content FTS5 index over
 * texts.text kept in step by the triggers of migration 4, so a text and its index entry change
 * in the same transaction. User input never reaches MATCH raw: catalog_text_fts_query() quotes
 * every word. */
#include "internal.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_QUERY_WORDS 32 /* more words add nothing but cost */

int catalog_text_set(struct catalog *cat, int64_t photo_id, const char *source, const char *text,
                     double confidence, const char *model, struct sb_err *err)
{
    if (!source || !*source)
        return sb_fail(err, SB_EINVAL, "catalog: text without a source");
    sqlite3_stmt *st = NULL;
    if (!text || !*text) {
        st = catalog_prep(cat, "DELETE FROM texts WHERE photo_id = ?1 AND source = ?2", err);
        if (!st)
            return SB_EDB;
        sqlite3_bind_int64(st, 1, photo_id);
        sqlite3_bind_text(st, 2, source, -1, SQLITE_STATIC);
        return catalog_step_done(cat, st, "delete text", err);
    }
    size_t len = strlen(text);
    if (len > CATALOG_TEXT_MAX) {
        len = CATALOG_TEXT_MAX;
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--; /* do not cut a UTF-8 sequence */
    }
    st = catalog_prep(cat,
                      "INSERT INTO texts(photo_id, source, text, confidence, model)"
                      " SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM photos WHERE id = ?1)"
                      " ON CONFLICT(photo_id, source) DO UPDATE SET text = excluded.text,"
                      " confidence = excluded.confidence, model = excluded.model,"
                      " updated_at = unixepoch()",
                      err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    sqlite3_bind_text(st, 2, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, text, (int)len, SQLITE_STATIC);
    if (isnan(confidence))
        sqlite3_bind_null(st, 4);
    else
        sqlite3_bind_double(st, 4, confidence);
    if (model)
        sqlite3_bind_text(st, 5, model, -1, SQLITE_STATIC);
    int rc = catalog_step_done(cat, st, "store text", err);
    if (!rc && sqlite3_changes(cat->db) == 0)
        rc = sb_fail(err, SB_ENOENT, "catalog: no photo with id %lld", (long long)photo_id);
    return rc;
}

int catalog_text_get(struct catalog *cat, int64_t photo_id, const char *source, char **text,
                     double *confidence, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(
        cat, "SELECT text, confidence FROM texts WHERE photo_id = ?1 AND source = ?2", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    sqlite3_bind_text(st, 2, source, -1, SQLITE_STATIC);
    int rc = SB_OK, s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        char *copy = sb_strdup(t ? t : "");
        if (!copy) {
            rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
        } else {
            *text = copy;
            if (confidence)
                *confidence = sqlite3_column_type(st, 1) == SQLITE_NULL
                                  ? (double)NAN
                                  : sqlite3_column_double(st, 1);
        }
    } else if (s == SQLITE_DONE) {
        rc = sb_fail(err, SB_ENOENT, "photo %lld has no '%s' text", (long long)photo_id, source);
    } else {
        rc = catalog_db_fail(cat, err, "read text");
    }
    sqlite3_finalize(st);
    return rc;
}

int catalog_photo_texts(struct catalog *cat, int64_t photo_id, catalog_text_fn fn, void *user,
                        struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(
        cat, "SELECT source, text, confidence FROM texts WHERE photo_id = ?1 ORDER BY source", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    int rc = SB_OK, s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *src = (const char *)sqlite3_column_text(st, 0);
        const char *t = (const char *)sqlite3_column_text(st, 1);
        double c =
            sqlite3_column_type(st, 2) == SQLITE_NULL ? (double)NAN : sqlite3_column_double(st, 2);
        rc = fn(user, src ? src : "", t ? t : "", c);
        if (rc)
            break;
    }
    if (!rc && s != SQLITE_DONE)
        rc = catalog_db_fail(cat, err, "read texts");
    sqlite3_finalize(st);
    return rc;
}

/* ---- full-text queries -------------------------------------------------------------------- */

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* A word is worth a query term when it has a letter or digit: ASCII alnum, or any non-ASCII
 * byte (the tokenizer decides for letters like "é" or "ß"). */
static bool has_word_char(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
            return true;
    }
    return false;
}

int catalog_text_fts_query(const char *user_query, bool match_all, char **out, struct sb_err *err)
{
    struct sb_buf b;
    sb_buf_init(&b);
    int words = 0;
    const char *p = user_query ? user_query : "";
    while (*p && words < MAX_QUERY_WORDS) {
        while (*p && is_space((unsigned char)*p))
            p++;
        const char *start = p;
        while (*p && !is_space((unsigned char)*p))
            p++;
        size_t n = (size_t)(p - start);
        if (n == 0 || !has_word_char(start, n))
            continue;
        if (words++)
            sb_buf_puts(&b, match_all ? " AND " : " OR ");
        /* an FTS5 string: "..." with " written as "" - everything inside is text, which the
         * tokenizer splits as it split the indexed text (so "stock-companies" is a phrase) */
        sb_buf_puts(&b, "\"");
        for (size_t i = 0; i < n; i++) {
            if (start[i] == '"')
                sb_buf_puts(&b, "\"\"");
            else
                sb_buf_append(&b, start + i, 1);
        }
        sb_buf_puts(&b, "\"");
    }
    if (b.failed) {
        sb_buf_release(&b);
        return sb_fail(err, SB_ENOMEM, "catalog: out of memory");
    }
    if (words == 0) {
        sb_buf_release(&b);
        return sb_fail(err, SB_EINVAL, "text query '%s' has no words",
                       user_query ? user_query : "");
    }
    *out = b.data;
    return SB_OK;
}

int catalog_text_search(struct catalog *cat, const char *user_query, bool match_all,
                        const char *source, size_t max, struct catalog_text_hit **hits, size_t *n,
                        struct sb_err *err)
{
    char *q = NULL;
    struct catalog_text_hit *v = NULL;
    sqlite3_stmt *st = NULL;
    size_t count = 0, cap = 0;
    int rc = catalog_text_fts_query(user_query, match_all, &q, err);
    if (rc)
        goto out;
    /* bm25 (FTS5's default rank) is only defined in the FTS query itself: rank there (the LIMIT
     * keeps SQLite from flattening it into the grouping), group by photo outside */
    st = catalog_prep(cat,
                      "SELECT h.photo_id, MIN(h.r) FROM ("
                      "  SELECT t.photo_id AS photo_id, m.r AS r FROM"
                      "   (SELECT rowid AS id, rank AS r FROM texts_fts WHERE texts_fts MATCH ?1"
                      "    ORDER BY rank LIMIT -1) m"
                      "  JOIN texts t ON t.id = m.id WHERE (?2 IS NULL OR t.source = ?2)) h"
                      " WHERE EXISTS (SELECT 1 FROM files f WHERE f.photo_id = h.photo_id"
                      "               AND f.status = 1)"
                      " GROUP BY h.photo_id ORDER BY 2, h.photo_id LIMIT ?3",
                      err);
    if (!st) {
        rc = SB_EDB;
        goto out;
    }
    sqlite3_bind_text(st, 1, q, -1, SQLITE_STATIC);
    if (source)
        sqlite3_bind_text(st, 2, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, max > (size_t)INT64_MAX ? INT64_MAX : (int64_t)max);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct catalog_text_hit *nv = realloc(v, ncap * sizeof(*v));
            if (!nv) {
                rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
                goto out;
            }
            v = nv;
            cap = ncap;
        }
        v[count].photo_id = sqlite3_column_int64(st, 0);
        v[count].score = -sqlite3_column_double(st, 1);
        count++;
    }
    if (s != SQLITE_DONE) {
        rc = catalog_db_fail(cat, err, "text search");
        goto out;
    }
    *hits = v;
    *n = count;
    v = NULL;
out:
    sqlite3_finalize(st);
    free(v);
    free(q);
    return rc;
}
