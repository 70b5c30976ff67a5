/* catalog.c - the SQLite catalog (see catalog.h). Every statement of shoebox is here. */
#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/util.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema.sql.h"

#include "internal.h"

#define NMIGRATIONS ((int)(sizeof(catalog_migrations) / sizeof(catalog_migrations[0])))

int catalog_db_fail(struct catalog *cat, struct sb_err *err, const char *what)
{
    return sb_fail(err, SB_EDB, "catalog: %s: %s", what, sqlite3_errmsg(cat->db));
}

int catalog_exec(struct catalog *cat, const char *sql, struct sb_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(cat->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = sb_fail(err, SB_EDB, "catalog: %s", msg ? msg : sqlite3_errmsg(cat->db));
        sqlite3_free(msg);
        return rc;
    }
    return SB_OK;
}

/* Prepares sql; on failure fills err. Statements are prepared per call: SQLite's prepare is
 * cheap next to the work each statement stands for here (one per file or per batch). */
sqlite3_stmt *catalog_prep(struct catalog *cat, const char *sql, struct sb_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(cat->db, sql, -1, &st, NULL) != SQLITE_OK) {
        catalog_db_fail(cat, err, "prepare");
        return NULL;
    }
    return st;
}

/* Steps a statement that returns no rows, then finalizes it. */
int catalog_step_done(struct catalog *cat, sqlite3_stmt *st, const char *what, struct sb_err *err)
{
    int rc = SB_OK;
    if (sqlite3_step(st) != SQLITE_DONE)
        rc = catalog_db_fail(cat, err, what);
    sqlite3_finalize(st);
    return rc;
}

static int schema_version(struct catalog *cat)
{
    sqlite3_stmt *st = catalog_prep(cat, "PRAGMA user_version", NULL);
    int v = 0;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int migrate(struct catalog *cat, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat, "PRAGMA user_version", err);
    if (!st)
        return SB_EDB;
    int version = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (version > NMIGRATIONS)
        return sb_fail(err, SB_EDB,
                       "catalog: schema version %d is newer than this shoebox knows (%d)", version,
                       NMIGRATIONS);
    for (int v = version; v < NMIGRATIONS; v++) {
        int rc = catalog_exec(cat, "BEGIN IMMEDIATE", err);
        if (rc)
            return rc;
        rc = catalog_exec(cat, catalog_migrations[v], err);
        if (!rc) {
            char sql[64];
            snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
            rc = catalog_exec(cat, sql, err);
        }
        if (!rc)
            rc = catalog_exec(cat, "COMMIT", err);
        if (rc) {
            sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
    }
    return SB_OK;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return sb_strdup(".");
    size_t n = (size_t)(slash - path);
    if (n == 0)
        n = 1;
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

int catalog_open(const char *path, bool readonly, struct catalog **out, struct sb_err *err)
{
    int rc = SB_OK;
    char *dir = dir_of(path);
    struct catalog *cat = calloc(1, sizeof(*cat));
    if (!dir || !cat) {
        rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
        goto out;
    }
    if (!readonly) {
        rc = sb_mkdirs(dir, err);
        if (rc)
            goto out;
    }
    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    flags |= SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &cat->db, flags, NULL) != SQLITE_OK) {
        rc = sb_fail(err, SB_EDB, "open catalog '%s': %s", path,
                     cat->db ? sqlite3_errmsg(cat->db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(cat->db, 10000);
    sqlite3_extended_result_codes(cat->db, 1);
    if (!readonly) {
        /* WAL: readers (search, the web server) never block the indexer; synchronous=NORMAL
         * keeps every committed batch across a process kill (only an OS crash may lose the
         * last few, and never corrupts). */
        rc = catalog_exec(cat, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err);
        if (rc)
            goto out;
    }
    rc = catalog_exec(cat, "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;", err);
    if (rc)
        goto out;
    if (!readonly) {
        rc = migrate(cat, err);
        if (rc)
            goto out;
    } else if (schema_version(cat) < NMIGRATIONS) {
        /* A catalog written by an older shoebox: bring it up to date once through a
         * read-write connection (when the file is writable), then read as asked. */
        struct catalog *rw = NULL;
        struct sb_err rw_err = { 0 };
        if (catalog_open(path, false, &rw, &rw_err) == SB_OK)
            catalog_close(rw);
        int v = schema_version(cat);
        if (v < NMIGRATIONS) {
            rc = sb_fail(err, SB_EDB,
                         "catalog '%s' was written by an older shoebox (schema %d, this one "
                         "needs %d) and could not be upgraded: %s",
                         path, v, NMIGRATIONS, rw_err.msg[0] ? rw_err.msg : "not writable");
            goto out;
        }
    }
    size_t n = strlen(dir) + 8;
    cat->thumb_dir = malloc(n);
    if (!cat->thumb_dir) {
        rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
        goto out;
    }
    snprintf(cat->thumb_dir, n, "%s/thumbs", dir);
    *out = cat;
    cat = NULL;
out:
    catalog_close(cat);
    free(dir);
    return rc;
}

void catalog_close(struct catalog *cat)
{
    if (!cat)
        return;
    if (cat->db) {
        if (cat->in_tx)
            sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(cat->db);
    }
    free(cat->thumb_dir);
    free(cat);
}

const char *catalog_thumb_dir(const struct catalog *cat)
{
    return cat->thumb_dir;
}

int catalog_begin(struct catalog *cat, struct sb_err *err)
{
    int rc = catalog_exec(cat, "BEGIN IMMEDIATE", err);
    if (!rc)
        cat->in_tx = true;
    return rc;
}

int catalog_commit(struct catalog *cat, struct sb_err *err)
{
    int rc = catalog_exec(cat, "COMMIT", err);
    if (!rc)
        cat->in_tx = false;
    return rc;
}

void catalog_rollback(struct catalog *cat)
{
    if (cat->in_tx)
        sqlite3_exec(cat->db, "ROLLBACK", NULL, NULL, NULL);
    cat->in_tx = false;
}

/* ---- files ---------------------------------------------------------------------------------- */

static void read_stat(sqlite3_stmt *st, int col, struct catalog_stat *s)
{
    s->size = sqlite3_column_int64(st, col);
    s->mtime_ns = sqlite3_column_int64(st, col + 1);
    s->ctime_ns = sqlite3_column_int64(st, col + 2);
    s->inode = sqlite3_column_int64(st, col + 3);
    s->dev = sqlite3_column_int64(st, col + 4);
}

/* Binds the half-open range of paths under folder prefix: [prefix "/", prefix "0"), since '0'
 * follows '/' in byte order. An empty prefix matches everything. */
void catalog_bind_prefix(sqlite3_stmt *st, int i, const char *prefix, char *lo, char *hi,
                         size_t cap)
{
    size_t n = strlen(prefix);
    while (n > 1 && prefix[n - 1] == '/')
        n--;
    if (n == 0 || n + 2 > cap) {
        sqlite3_bind_text(st, i, "", 0, SQLITE_STATIC);
        sqlite3_bind_text(st, i + 1, "\xff\xff\xff\xff", 4, SQLITE_STATIC);
        return;
    }
    memcpy(lo, prefix, n);
    memcpy(hi, prefix, n);
    if (n == 1 && prefix[0] == '/') {
        lo[0] = '/';
        lo[1] = '\0';
        hi[0] = '0';
        hi[1] = '\0';
    } else {
        lo[n] = '/';
        hi[n] = '0';
        lo[n + 1] = hi[n + 1] = '\0';
    }
    sqlite3_bind_text(st, i, lo, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, i + 1, hi, -1, SQLITE_STATIC);
}

int catalog_files_under(struct catalog *cat, const char *prefix, catalog_file_fn fn, void *user,
                        struct sb_err *err)
{
    sqlite3_stmt *st =
        catalog_prep(cat,
                     "SELECT id, path, size, mtime_ns, ctime_ns, inode, dev, status, "
                     "coalesce(photo_id, 0) FROM files "
                     "WHERE (path >= ?1 AND path < ?2) OR path = ?3",
                     err);
    if (!st)
        return SB_EDB;
    size_t cap = strlen(prefix) + 4;
    char *lo = malloc(cap), *hi = malloc(cap);
    int rc = SB_OK;
    if (!lo || !hi) {
        rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
        goto out;
    }
    catalog_bind_prefix(st, 1, prefix, lo, hi, cap);
    sqlite3_bind_text(st, 3, prefix, -1, SQLITE_STATIC);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        struct catalog_file f = { 0 };
        f.id = sqlite3_column_int64(st, 0);
        f.path = (char *)(uintptr_t)sqlite3_column_text(st, 1); /* borrowed for the callback */
        read_stat(st, 2, &f.st);
        f.status = sqlite3_column_int(st, 7);
        f.photo_id = sqlite3_column_int64(st, 8);
        rc = fn(user, &f);
        if (rc)
            goto out;
    }
    if (s != SQLITE_DONE)
        rc = catalog_db_fail(cat, err, "list files");
out:
    free(lo);
    free(hi);
    sqlite3_finalize(st);
    return rc;
}

static void bind_stat(sqlite3_stmt *st, int i, const struct catalog_stat *s)
{
    sqlite3_bind_int64(st, i, s->size);
    sqlite3_bind_int64(st, i + 1, s->mtime_ns);
    sqlite3_bind_int64(st, i + 2, s->ctime_ns);
    sqlite3_bind_int64(st, i + 3, s->inode);
    sqlite3_bind_int64(st, i + 4, s->dev);
}

int catalog_file_touch(struct catalog *cat, const char *path, const struct catalog_stat *s,
                       struct sb_err *err)
{
    sqlite3_stmt *st =
        catalog_prep(cat,
                     "INSERT INTO files(path, size, mtime_ns, ctime_ns, inode, dev, status) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0) "
                     "ON CONFLICT(path) DO UPDATE SET size = ?2, mtime_ns = ?3, "
                     "ctime_ns = ?4, inode = ?5, dev = ?6, status = 0, error = NULL, "
                     "seen_at = unixepoch()",
                     err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    bind_stat(st, 2, s);
    return catalog_step_done(cat, st, "record file", err);
}

static int file_set_status(struct catalog *cat, int64_t id, int status, const char *error,
                           struct sb_err *err)
{
    sqlite3_stmt *st =
        catalog_prep(cat, "UPDATE files SET status = ?2, error = ?3 WHERE id = ?1", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, status);
    if (error)
        sqlite3_bind_text(st, 3, error, -1, SQLITE_TRANSIENT);
    return catalog_step_done(cat, st, "update file", err);
}

int catalog_file_set_missing(struct catalog *cat, int64_t file_id, struct sb_err *err)
{
    return file_set_status(cat, file_id, CATALOG_FILE_MISSING, NULL, err);
}

int catalog_file_set_failed(struct catalog *cat, int64_t file_id, const char *error,
                            struct sb_err *err)
{
    return file_set_status(cat, file_id, CATALOG_FILE_FAILED, error, err);
}

int catalog_file_set_ignored(struct catalog *cat, int64_t file_id, struct sb_err *err)
{
    return file_set_status(cat, file_id, CATALOG_FILE_IGNORED, NULL, err);
}

int catalog_files_pending(struct catalog *cat, size_t max, struct catalog_file **out, size_t *n,
                          struct sb_err *err)
{
    sqlite3_stmt *st =
        catalog_prep(cat,
                     "SELECT id, path, size, mtime_ns, ctime_ns, inode, dev FROM files "
                     "WHERE status = 0 ORDER BY id LIMIT ?1",
                     err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, (int64_t)max);
    struct catalog_file *files = calloc(max ? max : 1, sizeof(*files));
    size_t count = 0;
    int rc = SB_OK;
    if (!files) {
        rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
        goto out;
    }
    int s;
    while (count < max && (s = sqlite3_step(st)) == SQLITE_ROW) {
        struct catalog_file *f = &files[count];
        f->id = sqlite3_column_int64(st, 0);
        f->path = sb_strdup((const char *)sqlite3_column_text(st, 1));
        read_stat(st, 2, &f->st);
        f->status = CATALOG_FILE_PENDING;
        count++;
        if (!f->path) {
            rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
            goto out;
        }
    }
    *out = files;
    *n = count;
    files = NULL;
out:
    if (files)
        catalog_files_free(files, count);
    sqlite3_finalize(st);
    return rc;
}

void catalog_files_free(struct catalog_file *files, size_t n)
{
    if (!files)
        return;
    for (size_t i = 0; i < n; i++)
        free(files[i].path);
    free(files);
}

int catalog_file_set_photo(struct catalog *cat, int64_t file_id, const unsigned char hash[16],
                           int64_t size, const char *format, const char *const *stages,
                           int64_t *photo_id, bool *created, struct sb_err *err)
{
    int rc = SB_OK;
    bool made = false;
    int64_t pid = 0;
    sqlite3_stmt *st = catalog_prep(cat, "SELECT id FROM photos WHERE hash = ?1", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_blob(st, 1, hash, 16, SQLITE_STATIC);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        pid = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE)
        return catalog_db_fail(cat, err, "find photo");
    if (!pid) {
        st = catalog_prep(cat, "INSERT INTO photos(hash, size, format) VALUES (?1, ?2, ?3)", err);
        if (!st)
            return SB_EDB;
        sqlite3_bind_blob(st, 1, hash, 16, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, size);
        sqlite3_bind_text(st, 3, format, -1, SQLITE_STATIC);
        rc = catalog_step_done(cat, st, "add photo", err);
        if (rc)
            return rc;
        pid = sqlite3_last_insert_rowid(cat->db);
        made = true;
        for (int i = 0; stages && stages[i]; i++) {
            rc = catalog_job_set(cat, pid, stages[i], CATALOG_JOB_PENDING, NULL, err);
            if (rc)
                return rc;
        }
    }
    st = catalog_prep(cat, "UPDATE files SET status = 1, error = NULL, photo_id = ?2 WHERE id = ?1",
                      err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, file_id);
    sqlite3_bind_int64(st, 2, pid);
    rc = catalog_step_done(cat, st, "attach file", err);
    if (rc)
        return rc;
    *photo_id = pid;
    if (created)
        *created = made;
    return SB_OK;
}

/* ---- jobs ----------------------------------------------------------------------------------- */

int catalog_jobs_ensure(struct catalog *cat, const char *stage, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat,
                                    "INSERT OR IGNORE INTO jobs(photo_id, stage, state) "
                                    "SELECT id, ?1, 0 FROM photos",
                                    err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, stage, -1, SQLITE_STATIC);
    return catalog_step_done(cat, st, "add jobs", err);
}

int catalog_jobs_retry(struct catalog *cat, const char *stage, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat,
                                    "UPDATE jobs SET state = 0, error = NULL "
                                    "WHERE state = 2 AND (?1 IS NULL OR stage = ?1)",
                                    err);
    if (!st)
        return SB_EDB;
    if (stage)
        sqlite3_bind_text(st, 1, stage, -1, SQLITE_STATIC);
    int rc = catalog_step_done(cat, st, "retry jobs", err);
    if (rc)
        return rc;
    return catalog_exec(cat, "UPDATE files SET status = 0, error = NULL WHERE status = 2", err);
}

int catalog_job_set(struct catalog *cat, int64_t photo_id, const char *stage, int state,
                    const char *error, struct sb_err *err)
{
    sqlite3_stmt *st =
        catalog_prep(cat,
                     "INSERT INTO jobs(photo_id, stage, state, error) VALUES (?1, ?2, ?3, ?4) "
                     "ON CONFLICT(photo_id, stage) DO UPDATE SET state = ?3, error = ?4",
                     err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    sqlite3_bind_text(st, 2, stage, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, state);
    if (error)
        sqlite3_bind_text(st, 4, error, -1, SQLITE_TRANSIENT);
    return catalog_step_done(cat, st, "update job", err);
}

int catalog_work_pending(struct catalog *cat, const char *const *stages, int nstages,
                         int64_t after_id, size_t max, struct catalog_work **out, size_t *n,
                         struct sb_err *err)
{
    if (nstages < 1 || nstages > 16)
        return sb_fail(err, SB_EINVAL, "catalog: %d stages requested (1..16)", nstages);
    /* The pending jobs of the requested stages, grouped by photo, each with one present file
     * (the lowest file id, so a photo's work always reads the same copy). */
    struct sb_buf sql;
    sb_buf_init(&sql);
    sb_buf_puts(&sql, "SELECT j.photo_id, p.hash, group_concat(j.stage, char(10)), "
                      "f.path, f.size, f.mtime_ns, f.ctime_ns, f.inode, f.dev "
                      "FROM jobs j JOIN photos p ON p.id = j.photo_id "
                      "JOIN files f ON f.id = (SELECT min(id) FROM files "
                      "  WHERE photo_id = j.photo_id AND status = 1) "
                      "WHERE j.state = 0 AND j.photo_id > ?1 AND j.stage IN (");
    for (int i = 0; i < nstages; i++)
        sb_buf_printf(&sql, "%s?%d", i ? "," : "", i + 3);
    sb_buf_puts(&sql, ") GROUP BY j.photo_id ORDER BY j.photo_id LIMIT ?2");
    if (sql.failed) {
        sb_buf_release(&sql);
        return sb_fail(err, SB_ENOMEM, "catalog: out of memory");
    }
    sqlite3_stmt *st = catalog_prep(cat, sql.data, err);
    sb_buf_release(&sql);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, after_id);
    sqlite3_bind_int64(st, 2, (int64_t)max);
    for (int i = 0; i < nstages; i++)
        sqlite3_bind_text(st, i + 3, stages[i], -1, SQLITE_STATIC);
    struct catalog_work *w = calloc(max ? max : 1, sizeof(*w));
    size_t count = 0;
    int rc = SB_OK;
    if (!w) {
        rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
        goto out;
    }
    int s;
    while (count < max && (s = sqlite3_step(st)) == SQLITE_ROW) {
        struct catalog_work *x = &w[count];
        x->photo_id = sqlite3_column_int64(st, 0);
        if (sqlite3_column_bytes(st, 1) == 16)
            memcpy(x->hash, sqlite3_column_blob(st, 1), 16);
        const char *names = (const char *)sqlite3_column_text(st, 2);
        for (int i = 0; i < nstages && names; i++) {
            size_t len = strlen(stages[i]);
            for (const char *p = names; *p;) {
                const char *nl = strchr(p, '\n');
                size_t plen = nl ? (size_t)(nl - p) : strlen(p);
                if (plen == len && memcmp(p, stages[i], len) == 0)
                    x->stages_mask |= 1u << i;
                p += plen + (nl ? 1 : 0);
            }
        }
        x->path = sb_strdup((const char *)sqlite3_column_text(st, 3));
        read_stat(st, 4, &x->st);
        count++;
        if (!x->path) {
            rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
            goto out;
        }
    }
    *out = w;
    *n = count;
    w = NULL;
out:
    if (w)
        catalog_work_free(w, count);
    sqlite3_finalize(st);
    return rc;
}

void catalog_work_free(struct catalog_work *w, size_t n)
{
    if (!w)
        return;
    for (size_t i = 0; i < n; i++)
        free(w[i].path);
    free(w);
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s && *s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void bind_real_or_null(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v))
        sqlite3_bind_double(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

int catalog_photo_set_meta(struct catalog *cat, int64_t photo_id, const struct photo_meta *m,
                           const char *format, int width, int height, const char *time_source,
                           struct sb_err *err)
{
    sqlite3_stmt *st =
        catalog_prep(cat,
                     "UPDATE photos SET format = ?2, width = ?3, height = ?4, "
                     "taken_at = ?5, tz_offset = ?6, taken_unix = ?7, time_source = ?8, "
                     "make = ?9, model = ?10, lens = ?11, software = ?12, focal_mm = ?13, "
                     "focal35_mm = ?14, fnumber = ?15, exposure_s = ?16, iso = ?17, "
                     "gps_lat = ?18, gps_lon = ?19, gps_alt = ?20, orientation = ?21, "
                     "has_exif = ?22 WHERE id = ?1",
                     err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    bind_text_or_null(st, 2, format);
    if (width > 0 && height > 0) {
        sqlite3_bind_int(st, 3, width);
        sqlite3_bind_int(st, 4, height);
    }
    bind_text_or_null(st, 5, m->taken_at);
    bind_text_or_null(st, 6, m->tz_offset);
    if (m->taken_at[0])
        sqlite3_bind_int64(st, 7, m->taken_unix);
    bind_text_or_null(st, 8, m->taken_at[0] ? time_source : NULL);
    bind_text_or_null(st, 9, m->make);
    bind_text_or_null(st, 10, m->model);
    bind_text_or_null(st, 11, m->lens);
    bind_text_or_null(st, 12, m->software);
    bind_real_or_null(st, 13, m->focal_mm);
    bind_real_or_null(st, 14, m->focal35_mm);
    bind_real_or_null(st, 15, m->fnumber);
    bind_real_or_null(st, 16, m->exposure_s);
    if (m->iso > 0)
        sqlite3_bind_int(st, 17, m->iso);
    bind_real_or_null(st, 18, m->gps_lat);
    bind_real_or_null(st, 19, m->gps_lon);
    bind_real_or_null(st, 20, m->gps_alt);
    sqlite3_bind_int(st, 21, m->orientation);
    sqlite3_bind_int(st, 22, m->has_exif);
    return catalog_step_done(cat, st, "store metadata", err);
}

/* ---- models and vectors -----------------------------------------------------------------------
 */

int catalog_model_ensure(struct catalog *cat, const char *name, int dim, int64_t *model_id,
                         struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat, "SELECT id, dim FROM models WHERE name = ?1", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);
        int d = sqlite3_column_int(st, 1);
        sqlite3_finalize(st);
        if (d != dim)
            return sb_fail(err, SB_EDB,
                           "catalog: model '%s' was recorded with %d dimensions, not %d", name, d,
                           dim);
        *model_id = id;
        return SB_OK;
    }
    sqlite3_finalize(st);
    if (s != SQLITE_DONE)
        return catalog_db_fail(cat, err, "find model");
    st = catalog_prep(cat, "INSERT INTO models(name, dim) VALUES (?1, ?2)", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, dim);
    int rc = catalog_step_done(cat, st, "add model", err);
    if (rc)
        return rc;
    *model_id = sqlite3_last_insert_rowid(cat->db);
    return SB_OK;
}

int catalog_vector_put(struct catalog *cat, int64_t model_id, int64_t photo_id, const float *v,
                       int dim, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat,
                                    "INSERT OR REPLACE INTO vectors(model_id, photo_id, vec) "
                                    "VALUES (?1, ?2, ?3)",
                                    err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, model_id);
    sqlite3_bind_int64(st, 2, photo_id);
    sqlite3_bind_blob(st, 3, v, (int)((size_t)dim * sizeof(float)), SQLITE_STATIC);
    int rc = catalog_step_done(cat, st, "store vector", err);
    if (rc)
        return rc;
    st = catalog_prep(cat, "UPDATE models SET vec_version = vec_version + 1 WHERE id = ?1", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, model_id);
    return catalog_step_done(cat, st, "store vector", err);
}

/* ---- reports ----------------------------------------------------------------------------------
 */

static int64_t scalar(struct catalog *cat, const char *sql, int *rc, struct sb_err *err)
{
    if (*rc)
        return 0;
    sqlite3_stmt *st = catalog_prep(cat, sql, err);
    if (!st) {
        *rc = SB_EDB;
        return 0;
    }
    int64_t v = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        *rc = catalog_db_fail(cat, err, "count");
    sqlite3_finalize(st);
    return v;
}

int catalog_status(struct catalog *cat, struct catalog_status *out, struct sb_err *err)
{
    struct catalog_status s;
    memset(&s, 0, sizeof(s));
    int rc = SB_OK;
    s.files = scalar(cat, "SELECT count(*) FROM files WHERE status IN (0, 1, 2)", &rc, err);
    s.photos = scalar(cat, "SELECT count(DISTINCT photo_id) FROM files WHERE status = 1", &rc, err);
    int64_t ok = scalar(cat, "SELECT count(*) FROM files WHERE status = 1", &rc, err);
    s.duplicates = ok - s.photos;
    s.failed = scalar(cat,
                      "SELECT count(*) FROM files f WHERE f.status = 2 OR (f.status = 1 AND "
                      "EXISTS (SELECT 1 FROM jobs j WHERE j.photo_id = f.photo_id AND "
                      "j.state = 2))",
                      &rc, err);
    s.missing = scalar(cat, "SELECT count(*) FROM files WHERE status = 4", &rc, err);
    s.ignored = scalar(cat, "SELECT count(*) FROM files WHERE status = 3", &rc, err);
    if (rc)
        return rc;
    struct catalog_stage_count *h = &s.stages[s.nstages++];
    snprintf(h->name, sizeof(h->name), "hash");
    h->done = ok;
    h->pending = scalar(cat, "SELECT count(*) FROM files WHERE status = 0", &rc, err);
    h->failed = scalar(cat, "SELECT count(*) FROM files WHERE status = 2", &rc, err);
    if (rc)
        return rc;
    /* Per-photo stages, counted over photos that still have a present file. */
    sqlite3_stmt *st =
        catalog_prep(cat,
                     "SELECT j.stage, sum(j.state = 1), sum(j.state = 0), sum(j.state = 2) "
                     "FROM jobs j WHERE EXISTS (SELECT 1 FROM files f WHERE "
                     "f.photo_id = j.photo_id AND f.status = 1) "
                     "GROUP BY j.stage ORDER BY j.stage",
                     err);
    if (!st)
        return SB_EDB;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (s.nstages >= (int)(sizeof(s.stages) / sizeof(s.stages[0])))
            continue;
        struct catalog_stage_count *c = &s.stages[s.nstages++];
        snprintf(c->name, sizeof(c->name), "%s", (const char *)sqlite3_column_text(st, 0));
        c->done = sqlite3_column_int64(st, 1);
        c->pending = sqlite3_column_int64(st, 2);
        c->failed = sqlite3_column_int64(st, 3);
    }
    if (r != SQLITE_DONE)
        rc = catalog_db_fail(cat, err, "count stages");
    sqlite3_finalize(st);
    if (!rc)
        *out = s;
    return rc;
}

int catalog_errors(struct catalog *cat, catalog_error_fn fn, void *user, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat,
                                    "SELECT path, 'hash', coalesce(error, 'failed') FROM files "
                                    "WHERE status = 2 "
                                    "UNION ALL "
                                    "SELECT f.path, group_concat(j.stage, ','), "
                                    "coalesce(j.error, 'failed') FROM files f "
                                    "JOIN jobs j ON j.photo_id = f.photo_id "
                                    "WHERE f.status = 1 AND j.state = 2 "
                                    "GROUP BY f.path, j.error ORDER BY 1, 2",
                                    err);
    if (!st)
        return SB_EDB;
    int rc = SB_OK, s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        rc = fn(user, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2));
        if (rc)
            break;
    }
    if (!rc && s != SQLITE_DONE)
        rc = catalog_db_fail(cat, err, "list errors");
    sqlite3_finalize(st);
    return rc;
}

int catalog_check(struct catalog *cat, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat, "PRAGMA integrity_check", err);
    if (!st)
        return SB_EDB;
    int rc = SB_OK;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *r = (const char *)sqlite3_column_text(st, 0);
        if (!r || strcmp(r, "ok") != 0)
            rc = sb_fail(err, SB_ECORRUPT, "catalog integrity: %s", r ? r : "(null)");
    } else {
        rc = catalog_db_fail(cat, err, "integrity check");
    }
    sqlite3_finalize(st);
    return rc;
}
