/* photos.c - catalog queries for search and display: vectors, settings, filters, photos. */
#include "internal.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int catalog_model_find(struct catalog *cat, const char *name, int64_t *model_id, int *dim,
                       int64_t *version, struct sb_err *err)
{
    sqlite3_stmt *st =
        catalog_prep(cat, "SELECT id, dim, vec_version FROM models WHERE name = ?1", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = SB_OK, s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        if (model_id)
            *model_id = sqlite3_column_int64(st, 0);
        if (dim)
            *dim = sqlite3_column_int(st, 1);
        if (version)
            *version = sqlite3_column_int64(st, 2);
    } else if (s == SQLITE_DONE) {
        rc = sb_fail(err, SB_ENOENT, "the catalog has no vectors of model '%s'", name);
    } else {
        rc = catalog_db_fail(cat, err, "find model");
    }
    sqlite3_finalize(st);
    return rc;
}

int catalog_present_generation(struct catalog *cat, int64_t *gen, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat, "SELECT gen FROM present_gen WHERE id = 0", err);
    if (!st)
        return SB_EDB;
    int rc = SB_OK;
    if (sqlite3_step(st) == SQLITE_ROW)
        *gen = sqlite3_column_int64(st, 0);
    else
        rc = catalog_db_fail(cat, err, "read present generation");
    sqlite3_finalize(st);
    return rc;
}

int catalog_models_list(struct catalog *cat, struct catalog_model_info **out, size_t *n,
                        struct sb_err *err)
{
    struct catalog_model_info *list = NULL;
    size_t cnt = 0, cap = 0;
    sqlite3_stmt *st = catalog_prep(cat,
                                    "SELECT m.name, m.dim, (SELECT count(*) FROM vectors v WHERE "
                                    "v.model_id = m.id) FROM models m ORDER BY m.id",
                                    err);
    if (!st)
        return SB_EDB;
    int rc = SB_OK, s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            cap = cap ? 2 * cap : 8;
            struct catalog_model_info *g = realloc(list, cap * sizeof(*g));
            if (!g) {
                rc = sb_fail(err, SB_ENOMEM, "out of memory");
                break;
            }
            list = g;
        }
        const unsigned char *name = sqlite3_column_text(st, 0);
        snprintf(list[cnt].name, sizeof(list[cnt].name), "%s", name ? (const char *)name : "");
        list[cnt].dim = sqlite3_column_int(st, 1);
        list[cnt].vectors = sqlite3_column_int64(st, 2);
        cnt++;
    }
    if (!rc && s != SQLITE_DONE)
        rc = catalog_db_fail(cat, err, "list models");
    sqlite3_finalize(st);
    if (rc) {
        free(list);
        return rc;
    }
    *out = list;
    *n = cnt;
    return SB_OK;
}

int catalog_vectors_each(struct catalog *cat, int64_t model_id, catalog_vector_fn fn, void *user,
                         struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(
        cat, "SELECT photo_id, vec FROM vectors WHERE model_id = ?1 ORDER BY photo_id", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, model_id);
    int rc = SB_OK, s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        int bytes = sqlite3_column_bytes(st, 1);
        const void *blob = sqlite3_column_blob(st, 1);
        if (bytes <= 0 || bytes % (int)sizeof(float) != 0 || !blob)
            continue; /* not a vector: skip rather than crash */
        rc = fn(user, sqlite3_column_int64(st, 0), blob, bytes / (int)sizeof(float));
        if (rc)
            break;
    }
    if (!rc && s != SQLITE_DONE)
        rc = catalog_db_fail(cat, err, "read vectors");
    sqlite3_finalize(st);
    return rc;
}

int catalog_vector_get(struct catalog *cat, int64_t model_id, int64_t photo_id, float *out, int dim,
                       struct sb_err *err)
{
    sqlite3_stmt *st =
        catalog_prep(cat, "SELECT vec FROM vectors WHERE model_id = ?1 AND photo_id = ?2", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, model_id);
    sqlite3_bind_int64(st, 2, photo_id);
    int rc = SB_OK, s = sqlite3_step(st);
    if (s == SQLITE_ROW && sqlite3_column_bytes(st, 0) == dim * (int)sizeof(float))
        memcpy(out, sqlite3_column_blob(st, 0), (size_t)dim * sizeof(float));
    else if (s == SQLITE_ROW || s == SQLITE_DONE)
        rc = sb_fail(err, SB_ENOENT, "photo %lld has no vector of this model", (long long)photo_id);
    else
        rc = catalog_db_fail(cat, err, "read vector");
    sqlite3_finalize(st);
    return rc;
}

int catalog_setting_get(struct catalog *cat, const char *key, char *buf, size_t cap,
                        struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat, "SELECT value FROM settings WHERE key = ?1", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rc = SB_OK, s = sqlite3_step(st);
    if (s == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        size_t n = strlen(v);
        if (n + 1 > cap)
            rc = sb_fail(err, SB_ETOOBIG, "setting '%s' is too long", key);
        else
            memcpy(buf, v, n + 1);
    } else if (s == SQLITE_ROW || s == SQLITE_DONE) {
        rc = sb_fail(err, SB_ENOENT, "setting '%s' is not set", key);
    } else {
        rc = catalog_db_fail(cat, err, "read setting");
    }
    sqlite3_finalize(st);
    return rc;
}

int catalog_setting_set(struct catalog *cat, const char *key, const char *value, struct sb_err *err)
{
    sqlite3_stmt *st =
        catalog_prep(cat, "INSERT OR REPLACE INTO settings(key, value) VALUES (?1, ?2)", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
    return catalog_step_done(cat, st, "store setting", err);
}

/* ---- filters ------------------------------------------------------------------------------ */

/* Appends the WHERE clause for present photos p passing f, with only the conditions f uses,
 * so that SQLite can drive the query from an index (tags_tag, files_present): the catch-all
 * "(?4 IS NULL OR ...)" form made every query a scan of all photos. Parameters are ?1..?8 as
 * bind_filter() binds them. */
static void filter_where(struct sb_buf *sql, const struct catalog_filter *f)
{
    static const struct catalog_filter none = { 0 };
    if (!f)
        f = &none;
    bool tag = f->tag && *f->tag;
    if (f->folder && *f->folder)
        sb_buf_puts(sql, " WHERE EXISTS (SELECT 1 FROM files f WHERE f.photo_id = p.id AND "
                         "f.status = 1 AND f.path >= ?5 AND f.path < ?6)");
    else if (tag) /* the tag drives; presence is an index probe per tagged photo */
        sb_buf_puts(sql, " WHERE EXISTS (SELECT 1 FROM files f WHERE f.photo_id = p.id AND "
                         "f.status = 1)");
    else
        sb_buf_puts(sql, " WHERE p.id IN (SELECT photo_id FROM files WHERE status = 1)");
    if (tag)
        sb_buf_puts(sql, " AND p.id IN (SELECT photo_id FROM tags WHERE tag = ?4)");
    if (f->after)
        sb_buf_puts(sql, " AND p.taken_at >= ?1");
    if (f->before)
        sb_buf_puts(sql, " AND p.taken_at < ?2");
    if (f->camera && *f->camera)
        sb_buf_puts(sql, " AND instr(lower(coalesce(p.make, '') || ' ' || coalesce(p.model, '')),"
                         " lower(?3)) > 0");
    if (f->format && *f->format)
        sb_buf_puts(sql, " AND p.format = lower(?7)");
    if (f->has_gps)
        sb_buf_puts(sql, " AND p.gps_lat IS NOT NULL AND p.gps_lon IS NOT NULL");
}

struct filter_bufs {
    char *lo, *hi;
};

static int bind_filter(sqlite3_stmt *st, const struct catalog_filter *f, struct filter_bufs *b,
                       struct sb_err *err)
{
    static const struct catalog_filter none = { 0 };
    memset(b, 0, sizeof(*b));
    if (!f)
        f = &none;
    if (f->after)
        sqlite3_bind_text(st, 1, f->after, -1, SQLITE_STATIC);
    if (f->before)
        sqlite3_bind_text(st, 2, f->before, -1, SQLITE_STATIC);
    if (f->camera && *f->camera)
        sqlite3_bind_text(st, 3, f->camera, -1, SQLITE_STATIC);
    if (f->tag && *f->tag)
        sqlite3_bind_text(st, 4, f->tag, -1, SQLITE_STATIC);
    if (f->folder && *f->folder) {
        size_t cap = strlen(f->folder) + 4;
        b->lo = malloc(cap);
        b->hi = malloc(cap);
        if (!b->lo || !b->hi)
            return sb_fail(err, SB_ENOMEM, "catalog: out of memory");
        catalog_bind_prefix(st, 5, f->folder, b->lo, b->hi, cap);
    }
    if (f->format && *f->format)
        sqlite3_bind_text(st, 7, f->format, -1, SQLITE_STATIC);
    return SB_OK;
}

static int collect_ids(struct catalog *cat, sqlite3_stmt *st, int64_t **ids, size_t *n,
                       struct sb_err *err)
{
    size_t cap = 1024, count = 0;
    int64_t *v = malloc(cap * sizeof(*v));
    if (!v)
        return sb_fail(err, SB_ENOMEM, "catalog: out of memory");
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            int64_t *nv = realloc(v, cap * 2 * sizeof(*v));
            if (!nv) {
                free(v);
                return sb_fail(err, SB_ENOMEM, "catalog: out of memory");
            }
            v = nv;
            cap *= 2;
        }
        v[count++] = sqlite3_column_int64(st, 0);
    }
    if (s != SQLITE_DONE) {
        free(v);
        return catalog_db_fail(cat, err, "select photos");
    }
    *ids = v;
    *n = count;
    return SB_OK;
}

static int select_ids(struct catalog *cat, const char *tail, const struct catalog_filter *f,
                      size_t offset, size_t max, int64_t **ids, size_t *n, struct sb_err *err)
{
    struct sb_buf sql;
    sb_buf_init(&sql);
    sb_buf_puts(&sql, "SELECT p.id FROM photos p");
    filter_where(&sql, f);
    sb_buf_puts(&sql, tail);
    if (sql.failed) {
        sb_buf_release(&sql);
        return sb_fail(err, SB_ENOMEM, "catalog: out of memory");
    }
    sqlite3_stmt *st = catalog_prep(cat, sql.data, err);
    sb_buf_release(&sql);
    if (!st)
        return SB_EDB;
    struct filter_bufs b;
    int rc = bind_filter(st, f, &b, err);
    if (!rc) {
        sqlite3_bind_int64(st, 10, max ? (int64_t)max : -1);
        sqlite3_bind_int64(st, 11, (int64_t)offset);
        rc = collect_ids(cat, st, ids, n, err);
    }
    sqlite3_finalize(st);
    free(b.lo);
    free(b.hi);
    return rc;
}

bool catalog_filter_empty(const struct catalog_filter *f)
{
    return !f || (!(f->after && *f->after) && !(f->before && *f->before) &&
                  !(f->folder && *f->folder) && !(f->camera && *f->camera) &&
                  !(f->tag && *f->tag) && !(f->format && *f->format) && !f->has_gps);
}

int catalog_filter_photos(struct catalog *cat, const struct catalog_filter *f, int64_t **ids,
                          size_t *n, struct sb_err *err)
{
    if (catalog_filter_empty(f)) {
        /* every present photo: a walk of the files_present index (100k photos: ~10 ms, where
         * the per-photo EXISTS of the general query takes ~10x that) */
        sqlite3_stmt *st = catalog_prep(
            cat, "SELECT DISTINCT photo_id FROM files WHERE status = 1 ORDER BY photo_id", err);
        if (!st)
            return SB_EDB;
        int rc = collect_ids(cat, st, ids, n, err);
        sqlite3_finalize(st);
        return rc;
    }
    return select_ids(cat, " ORDER BY p.id LIMIT ?10 OFFSET ?11", f, 0, 0, ids, n, err);
}

int catalog_photos_by_date(struct catalog *cat, const struct catalog_filter *f, size_t offset,
                           size_t max, int64_t **ids, size_t *n, struct sb_err *err)
{
    return select_ids(cat,
                      " ORDER BY p.taken_at IS NULL, p.taken_at DESC, p.id LIMIT ?10 OFFSET ?11", f,
                      offset, max, ids, n, err);
}

/* ---- one photo ---------------------------------------------------------------------------- */

static char *col_str(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return NULL;
    return sb_strdup((const char *)sqlite3_column_text(st, i));
}

static double col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? (double)NAN : sqlite3_column_double(st, i);
}

void catalog_photo_release(struct catalog_photo *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->npaths; i++)
        free(p->paths[i]);
    free(p->paths);
    free(p->taken_at);
    free(p->tz_offset);
    free(p->time_source);
    free(p->format);
    free(p->make);
    free(p->model);
    free(p->lens);
    memset(p, 0, sizeof(*p));
}

int catalog_photo_get(struct catalog *cat, int64_t id, struct catalog_photo *p, struct sb_err *err)
{
    memset(p, 0, sizeof(*p));
    sqlite3_stmt *st = catalog_prep(
        cat,
        "SELECT hash, taken_at, tz_offset, time_source, format, make, model, lens, width, "
        "height, orientation, iso, focal_mm, fnumber, exposure_s, gps_lat, gps_lon, gps_alt, "
        "size, taken_unix, has_exif FROM photos WHERE id = ?1",
        err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, id);
    int rc = SB_OK, s = sqlite3_step(st);
    if (s != SQLITE_ROW) {
        rc = s == SQLITE_DONE ? sb_fail(err, SB_ENOENT, "no photo with id %lld", (long long)id)
                              : catalog_db_fail(cat, err, "read photo");
        sqlite3_finalize(st);
        return rc;
    }
    p->id = id;
    if (sqlite3_column_bytes(st, 0) == 16)
        memcpy(p->hash, sqlite3_column_blob(st, 0), 16);
    p->taken_at = col_str(st, 1);
    p->tz_offset = col_str(st, 2);
    p->time_source = col_str(st, 3);
    p->format = col_str(st, 4);
    p->make = col_str(st, 5);
    p->model = col_str(st, 6);
    p->lens = col_str(st, 7);
    p->width = sqlite3_column_int(st, 8);
    p->height = sqlite3_column_int(st, 9);
    p->orientation = sqlite3_column_int(st, 10);
    p->iso = sqlite3_column_int(st, 11);
    p->focal_mm = col_real(st, 12);
    p->fnumber = col_real(st, 13);
    p->exposure_s = col_real(st, 14);
    p->gps_lat = col_real(st, 15);
    p->gps_lon = col_real(st, 16);
    p->gps_alt = col_real(st, 17);
    p->size = sqlite3_column_int64(st, 18);
    p->taken_unix = sqlite3_column_int64(st, 19);
    p->has_exif = sqlite3_column_int(st, 20) != 0;
    sqlite3_finalize(st);
    st = catalog_prep(cat, "SELECT path FROM files WHERE photo_id = ?1 AND status = 1 ORDER BY id",
                      err);
    if (!st) {
        catalog_photo_release(p);
        return SB_EDB;
    }
    sqlite3_bind_int64(st, 1, id);
    int cap = 0;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (p->npaths == cap) {
            int nc = cap ? cap * 2 : 4;
            char **np = realloc(p->paths, (size_t)nc * sizeof(char *));
            if (!np) {
                rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
                break;
            }
            p->paths = np;
            cap = nc;
        }
        p->paths[p->npaths] = col_str(st, 0);
        if (!p->paths[p->npaths]) {
            rc = sb_fail(err, SB_ENOMEM, "catalog: out of memory");
            break;
        }
        p->npaths++;
    }
    if (!rc && s != SQLITE_DONE)
        rc = catalog_db_fail(cat, err, "read paths");
    sqlite3_finalize(st);
    if (rc)
        catalog_photo_release(p);
    return rc;
}

int catalog_photo_by_path(struct catalog *cat, const char *path, int64_t *id, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(
        cat, "SELECT photo_id FROM files WHERE path = ?1 AND status = 1 AND photo_id IS NOT NULL",
        err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    int rc = SB_OK, s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    else if (s == SQLITE_DONE)
        rc = sb_fail(err, SB_ENOENT, "'%s' is not in the catalog", path);
    else
        rc = catalog_db_fail(cat, err, "find file");
    sqlite3_finalize(st);
    return rc;
}

int catalog_exact_dupes(struct catalog *cat, int64_t **ids, size_t *n, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat,
                                    "SELECT photo_id FROM files WHERE status = 1 "
                                    "GROUP BY photo_id HAVING count(*) > 1 ORDER BY photo_id",
                                    err);
    if (!st)
        return SB_EDB;
    int rc = collect_ids(cat, st, ids, n, err);
    sqlite3_finalize(st);
    return rc;
}
