/* lightroom.c - catalog SQL of the importers: Lightroom catalogs and previews, Google Takeout,
 * Apple Photos (tables of migration 5). Each importer forgets what it stored before when it
 * imports the same source again, so a re-import never piles up stale rows. */
#include "internal.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
    if (s && *s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_id_or_null(sqlite3_stmt *st, int i, int64_t id)
{
    if (id > 0)
        sqlite3_bind_int64(st, i, id);
    else
        sqlite3_bind_null(st, i);
}

int catalog_photo_by_hash(struct catalog *cat, const unsigned char hash[16], int64_t *id,
                          struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat, "SELECT id FROM photos WHERE hash = ?1", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_blob(st, 1, hash, 16, SQLITE_STATIC);
    int rc = SB_OK, s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    else if (s == SQLITE_DONE)
        rc = sb_fail(err, SB_ENOENT, "no photo with this content");
    else
        rc = catalog_db_fail(cat, err, "find photo by hash");
    sqlite3_finalize(st);
    return rc;
}

/* Runs sql (one statement) with ?1 bound to key. */
static int exec_key(struct catalog *cat, const char *sql, const char *key, const char *what,
                    struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(cat, sql, err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    return catalog_step_done(cat, st, what, err);
}

int catalog_lr_forget(struct catalog *cat, const char *lrcat, struct sb_err *err)
{
    static const char *const sql[] = {
        "DELETE FROM tags WHERE source = 'lightroom' AND photo_id IN"
        " (SELECT photo_id FROM lr_images WHERE catalog = ?1 AND photo_id IS NOT NULL)",
        "DELETE FROM albums WHERE source = 'lightroom' AND photo_id IN"
        " (SELECT photo_id FROM lr_images WHERE catalog = ?1 AND photo_id IS NOT NULL)",
        "DELETE FROM texts WHERE source LIKE 'lightroom:%' AND photo_id IN"
        " (SELECT photo_id FROM lr_images WHERE catalog = ?1 AND photo_id IS NOT NULL)",
        "DELETE FROM lr_images WHERE catalog = ?1",
    };
    int rc = SB_OK;
    for (size_t i = 0; !rc && i < sizeof(sql) / sizeof(sql[0]); i++)
        rc = exec_key(cat, sql[i], lrcat, "forget lightroom import", err);
    return rc;
}

int catalog_lr_image_put(struct catalog *cat, const struct catalog_lr_image *im, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(
        cat,
        "INSERT OR REPLACE INTO lr_images(catalog, lr_id, photo_id, original_path, virtual_copy,"
        " rating, pick, color_label, capture_time) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, im->catalog, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, im->lr_id);
    bind_id_or_null(st, 3, im->photo_id);
    bind_text_or_null(st, 4, im->original_path);
    sqlite3_bind_int(st, 5, im->virtual_copy);
    if (im->rating >= 0)
        sqlite3_bind_int(st, 6, im->rating);
    else
        sqlite3_bind_null(st, 6);
    sqlite3_bind_int(st, 7, im->pick);
    bind_text_or_null(st, 8, im->color_label);
    bind_text_or_null(st, 9, im->capture_time);
    return catalog_step_done(cat, st, "store lightroom image", err);
}

int catalog_album_add(struct catalog *cat, int64_t photo_id, const char *source, const char *album,
                      struct sb_err *err)
{
    if (!album || !*album)
        return sb_fail(err, SB_EINVAL, "album: empty name");
    sqlite3_stmt *st = catalog_prep(
        cat, "INSERT OR IGNORE INTO albums(photo_id, source, album) VALUES (?1, ?2, ?3)", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    sqlite3_bind_text(st, 2, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, album, -1, SQLITE_STATIC);
    return catalog_step_done(cat, st, "add to album", err);
}

int catalog_photo_albums(struct catalog *cat, int64_t photo_id, catalog_tag_fn fn, void *user,
                         struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(
        cat, "SELECT album, source FROM albums WHERE photo_id = ?1 ORDER BY album, source", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    int rc = SB_OK, s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        rc = fn(user, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1), (double)NAN);
        if (rc)
            break;
    }
    if (!rc && s != SQLITE_DONE)
        rc = catalog_db_fail(cat, err, "read albums");
    sqlite3_finalize(st);
    return rc;
}

int catalog_original_set(struct catalog *cat, const char *path, const char *original_path,
                         const char *source, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(
        cat,
        "INSERT OR REPLACE INTO original_paths(path, original_path, source) VALUES (?1, ?2, ?3)",
        err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, original_path, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    return catalog_step_done(cat, st, "store original path", err);
}

int catalog_original_get(struct catalog *cat, const char *path, char *buf, size_t cap,
                         struct sb_err *err)
{
    sqlite3_stmt *st =
        catalog_prep(cat, "SELECT original_path FROM original_paths WHERE path = ?1", err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    int rc = SB_OK, s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        int n = snprintf(buf, cap, "%s", v ? v : "");
        if (n < 0 || (size_t)n >= cap)
            rc = sb_fail(err, SB_ETOOBIG, "original path of '%s' is too long", path);
    } else if (s == SQLITE_DONE) {
        rc = sb_fail(err, SB_ENOENT, "no original recorded for '%s'", path);
    } else {
        rc = catalog_db_fail(cat, err, "read original path");
    }
    sqlite3_finalize(st);
    return rc;
}

int catalog_takeout_set(struct catalog *cat, int64_t photo_id, const char *sidecar,
                        int64_t edited_of, struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(
        cat,
        "INSERT OR REPLACE INTO takeout_meta(photo_id, sidecar, edited_of) VALUES (?1, ?2, ?3)",
        err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    bind_text_or_null(st, 2, sidecar);
    bind_id_or_null(st, 3, edited_of != photo_id ? edited_of : 0);
    return catalog_step_done(cat, st, "store takeout metadata", err);
}

int catalog_takeout_edited_of(struct catalog *cat, int64_t photo_id, int64_t *original,
                              struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(
        cat, "SELECT edited_of FROM takeout_meta WHERE photo_id = ?1 AND edited_of IS NOT NULL",
        err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    int rc = SB_OK, s = sqlite3_step(st);
    if (s == SQLITE_ROW)
        *original = sqlite3_column_int64(st, 0);
    else if (s == SQLITE_DONE)
        rc = sb_fail(err, SB_ENOENT, "photo %lld is not an edited version", (long long)photo_id);
    else
        rc = catalog_db_fail(cat, err, "read takeout metadata");
    sqlite3_finalize(st);
    return rc;
}

int catalog_photo_gps_fill(struct catalog *cat, int64_t photo_id, double lat, double lon,
                           double alt, bool *set, struct sb_err *err)
{
    if (!(lat >= -90.0 && lat <= 90.0 && lon >= -180.0 && lon <= 180.0))
        return sb_fail(err, SB_EINVAL, "gps: position %g,%g out of range", lat, lon);
    sqlite3_stmt *st = catalog_prep(cat,
                                    "UPDATE photos SET gps_lat = ?2, gps_lon = ?3, gps_alt = ?4"
                                    " WHERE id = ?1 AND (gps_lat IS NULL OR gps_lon IS NULL)",
                                    err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    sqlite3_bind_double(st, 2, lat);
    sqlite3_bind_double(st, 3, lon);
    if (isnan(alt))
        sqlite3_bind_null(st, 4);
    else
        sqlite3_bind_double(st, 4, alt);
    int rc = catalog_step_done(cat, st, "store gps", err);
    if (!rc && set)
        *set = sqlite3_changes(cat->db) > 0;
    return rc;
}

int catalog_apple_forget(struct catalog *cat, const char *library, struct sb_err *err)
{
    static const char *const sql[] = {
        "DELETE FROM tags WHERE source = 'apple' AND photo_id IN"
        " (SELECT photo_id FROM apple_assets WHERE library = ?1 AND photo_id IS NOT NULL)",
        "DELETE FROM albums WHERE source = 'apple' AND photo_id IN"
        " (SELECT photo_id FROM apple_assets WHERE library = ?1 AND photo_id IS NOT NULL)",
        "DELETE FROM texts WHERE source LIKE 'apple:%' AND photo_id IN"
        " (SELECT photo_id FROM apple_assets WHERE library = ?1 AND photo_id IS NOT NULL)",
        "DELETE FROM apple_assets WHERE library = ?1",
    };
    int rc = SB_OK;
    for (size_t i = 0; !rc && i < sizeof(sql) / sizeof(sql[0]); i++)
        rc = exec_key(cat, sql[i], library, "forget apple import", err);
    return rc;
}

int catalog_apple_asset_put(struct catalog *cat, const struct catalog_apple_asset *a,
                            struct sb_err *err)
{
    sqlite3_stmt *st = catalog_prep(
        cat,
        "INSERT OR REPLACE INTO apple_assets(library, uuid, photo_id, original_path, taken_at,"
        " favorite, hidden, lat, lon) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_text(st, 1, a->library, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, a->uuid, -1, SQLITE_STATIC);
    bind_id_or_null(st, 3, a->photo_id);
    bind_text_or_null(st, 4, a->original_path);
    bind_text_or_null(st, 5, a->taken_at);
    sqlite3_bind_int(st, 6, a->favorite);
    sqlite3_bind_int(st, 7, a->hidden);
    if (isnan(a->lat) || isnan(a->lon)) {
        sqlite3_bind_null(st, 8);
        sqlite3_bind_null(st, 9);
    } else {
        sqlite3_bind_double(st, 8, a->lat);
        sqlite3_bind_double(st, 9, a->lon);
    }
    return catalog_step_done(cat, st, "store apple asset", err);
}

int catalog_photo_time_fill(struct catalog *cat, int64_t photo_id, const char *taken_at,
                            const char *tz_offset, int64_t taken_unix, const char *source,
                            bool *set, struct sb_err *err)
{
    if (!taken_at || strlen(taken_at) < 19)
        return sb_fail(err, SB_EINVAL, "capture time '%s': not YYYY-MM-DDTHH:MM:SS",
                       taken_at ? taken_at : "");
    sqlite3_stmt *st = catalog_prep(
        cat,
        "UPDATE photos SET taken_at = ?2, tz_offset = ?3, taken_unix = ?4, time_source = ?5"
        " WHERE id = ?1 AND (time_source IS NULL OR time_source = '" CATALOG_TIME_MTIME "')",
        err);
    if (!st)
        return SB_EDB;
    sqlite3_bind_int64(st, 1, photo_id);
    sqlite3_bind_text(st, 2, taken_at, -1, SQLITE_STATIC);
    bind_text_or_null(st, 3, tz_offset);
    sqlite3_bind_int64(st, 4, taken_unix);
    sqlite3_bind_text(st, 5, source, -1, SQLITE_STATIC);
    int rc = catalog_step_done(cat, st, "store capture time", err);
    if (!rc && set)
        *set = sqlite3_changes(cat->db) > 0;
    return rc;
}
