/* apple.c - import an Apple Photos library read-only (see apple.h).
 *
 * Photos.sqlite is a Core Data store: tables Z<ENTITY>, primary keys Z_PK, and many-to-many
 * joins in tables Z_<n><RELATION> whose numbers change with every macOS release (keywords:
 * Z_1KEYWORDS(Z_1ASSETATTRIBUTES, Z_36KEYWORDS / Z_38KEYWORDS / Z_40KEYWORDS ...); albums:
 * Z_26ASSETS(Z_26ALBUMS, Z_3ASSETS) / Z_27ASSETS / Z_28ASSETS ...). The join tables are found
 * by their columns, not their names. Albums are ZGENERICALBUM rows of ZKIND 2 (user albums)
 * inside folders of ZKIND 4000 (after osxphotos, _constants.py). ZDATECREATED counts seconds
 * from 2001-01-01 UTC; ZADDITIONALASSETATTRIBUTES.ZTIMEZONEOFFSET is the local offset in
 * seconds. A location of -180,-180 means none.
 *
 * psi.sqlite (search index): groups(category, content_string), assets(uuid_0, uuid_1) and
 * ga(groupid, assetid). Scene labels are category 2024 up to Photos 7 (macOS 12) and 1500
 * from Photos 8 (macOS 13), which added the text read in photos as category 1203
 * (osxphotos SearchCategory / SearchCategory_Photos8). */
#include "lightroom_internal.h"

#include "shoebox/apple.h"
#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define CORE_DATA_EPOCH 978307200 /* 2001-01-01T00:00:00Z as Unix time */
#define APPLE_TIME      "apple"   /* photos.time_source */
#define NAME_CAP        128

void apple_uuid_from_ints(int64_t uuid_0, int64_t uuid_1, char out[37])
{
    unsigned char b[16];
    uint64_t h[2] = { (uint64_t)uuid_0, (uint64_t)uuid_1 };
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 8; i++)
            b[8 * k + i] = (unsigned char)(h[k] >> (8 * i)); /* little-endian halves */
    }
    static const char hex[] = "0123456789ABCDEF";
    size_t j = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[j++] = '-';
        out[j++] = hex[b[i] >> 4];
        out[j++] = hex[b[i] & 15];
    }
    out[j] = '\0';
}

int64_t apple_time_to_unix(double core_data_seconds)
{
    return (int64_t)floor(core_data_seconds) + CORE_DATA_EPOCH;
}

/* ---- schema discovery ---------------------------------------------------------------------- */

/* name is "Z_<digits><suffix>" (any case). */
static bool is_join_column(const char *name, const char *suffix)
{
    if (strncasecmp(name, "Z_", 2) != 0 || !isdigit((unsigned char)name[2]))
        return false;
    const char *p = name + 2;
    while (isdigit((unsigned char)*p))
        p++;
    return strcasecmp(p, suffix) == 0;
}

/* Finds a join table named "Z_<n><table_suffix>" with a column "Z_<n><a>" and a column
 * "Z_<m><b>"; copies the three names. False when there is none. */
static bool find_join(sqlite3 *db, const char *table_suffix, const char *a, const char *b,
                      char table[NAME_CAP], char col_a[NAME_CAP], char col_b[NAME_CAP])
{
    sqlite3_stmt *st = NULL, *cols = NULL;
    bool found = false;
    if (sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table'", -1, &st,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1)", -1, &cols, NULL) !=
            SQLITE_OK)
        goto out;
    while (!found && sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (!t || !is_join_column(t, table_suffix) || strlen(t) >= NAME_CAP)
            continue;
        char ca[NAME_CAP] = "", cb[NAME_CAP] = "";
        sqlite3_reset(cols);
        sqlite3_bind_text(cols, 1, t, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(cols) == SQLITE_ROW) {
            const char *c = (const char *)sqlite3_column_text(cols, 0);
            if (!c || strlen(c) >= NAME_CAP)
                continue;
            if (!ca[0] && is_join_column(c, a))
                snprintf(ca, sizeof(ca), "%s", c);
            else if (!cb[0] && is_join_column(c, b))
                snprintf(cb, sizeof(cb), "%s", c);
        }
        if (ca[0] && cb[0]) {
            snprintf(table, NAME_CAP, "%s", t);
            snprintf(col_a, NAME_CAP, "%s", ca);
            snprintf(col_b, NAME_CAP, "%s", cb);
            found = true;
        }
    }
out:
    sqlite3_finalize(st);
    sqlite3_finalize(cols);
    return found;
}

/* ---- psi.sqlite ---------------------------------------------------------------------------- */

enum { PSI_LABEL = 0, PSI_TEXT = 1 };

struct psi_row {
    char uuid[37];
    int kind;
    int64_t order; /* ga.rowid: Apple's order */
    char *text;
};

struct psi {
    struct psi_row *v;
    size_t n;
};

static int cmp_psi(const void *a, const void *b)
{
    const struct psi_row *x = a, *y = b;
    int c = strcmp(x->uuid, y->uuid);
    if (c)
        return c;
    if (x->kind != y->kind)
        return x->kind - y->kind;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void psi_release(struct psi *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->v[i].text);
    free(p->v);
    memset(p, 0, sizeof(*p));
}

/* Loads labels and detected text of every asset. A missing file is no error (*have false);
 * a broken one fills why and is skipped. Only out-of-memory is returned as an error. */
static int psi_load(const char *path, int version, struct psi *out, bool *have, char *why,
                    size_t cap, struct sb_err *err)
{
    struct stat sb;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    struct sb_err e;
    int rc = SB_OK, s;
    size_t n = 0, vcap = 0;
    struct psi_row *v = NULL;
    *have = false;
    if (stat(path, &sb) != 0 && errno == ENOENT)
        return SB_OK;
    if (interop_sqlite_open_ro(path, &db, &e) != SB_OK) {
        snprintf(why, cap, "%s", e.msg);
        goto out;
    }
    if (!interop_has_column(db, "groups", "content_string") ||
        !interop_has_column(db, "assets", "uuid_1") || !interop_has_column(db, "ga", "assetid")) {
        snprintf(why, cap, "'%s' is not a Photos search index (no groups/assets/ga tables)", path);
        goto out;
    }
    if (sqlite3_prepare_v2(db,
                           "SELECT a.uuid_0, a.uuid_1, g.category, g.content_string, ga.rowid"
                           " FROM ga JOIN \"groups\" g ON g.rowid = ga.groupid"
                           " JOIN assets a ON a.rowid = ga.assetid"
                           " WHERE g.category IN (?1, ?2)",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(why, cap, "read '%s': %s", path, sqlite3_errmsg(db));
        goto out;
    }
    int label_cat = version >= 8 ? 1500 : 2024, text_cat = version >= 8 ? 1203 : -1;
    sqlite3_bind_int(st, 1, label_cat);
    sqlite3_bind_int(st, 2, text_cat);
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 3);
        if (!t || !*t) /* the strings carry a trailing NUL in the file: text stops there */
            continue;
        if (n == vcap) {
            size_t nc = vcap ? vcap * 2 : 256;
            struct psi_row *nv = realloc(v, nc * sizeof(*v));
            if (!nv) {
                rc = sb_fail(err, SB_ENOMEM, "apple search index: out of memory");
                goto out;
            }
            v = nv;
            vcap = nc;
        }
        struct psi_row *r = &v[n];
        apple_uuid_from_ints(sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), r->uuid);
        r->kind = sqlite3_column_int(st, 2) == label_cat ? PSI_LABEL : PSI_TEXT;
        r->order = sqlite3_column_int64(st, 4);
        r->text = sb_strdup(t);
        if (!r->text) {
            rc = sb_fail(err, SB_ENOMEM, "apple search index: out of memory");
            goto out;
        }
        n++;
    }
    if (s != SQLITE_DONE) {
        snprintf(why, cap, "read '%s': %s", path, sqlite3_errmsg(db));
        goto out;
    }
    if (n)
        qsort(v, n, sizeof(*v), cmp_psi);
    out->v = v;
    out->n = n;
    v = NULL;
    n = 0;
    *have = true;
out:
    for (size_t i = 0; i < n; i++)
        free(v[i].text);
    free(v);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* The rows of uuid: [*first, *first + count). */
static size_t psi_find(const struct psi *p, const char *uuid, size_t *first)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(p->v[mid].uuid, uuid) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < p->n && strcmp(p->v[end].uuid, uuid) == 0)
        end++;
    *first = lo;
    return end - lo;
}

/* ---- per asset ----------------------------------------------------------------------------- */

struct importer {
    struct catalog *cat;
    sqlite3 *db;
    const char *lib;
    sqlite3_stmt *kw_st, *alb_st;
    struct psi psi;
    struct apple_import_stats *st;
};

/* Importer failures of a row's data (an invalid keyword) are skipped; catalog ones are not. */
static int keep_db_errors(int rc, const struct sb_err *e, struct sb_err *err)
{
    if (rc == SB_EDB || rc == SB_ENOMEM)
        return sb_fail(err, rc, "%s", e->msg);
    return SB_OK;
}

static int add_keywords(struct importer *im, int64_t attr_pk, int64_t photo, struct sb_err *err)
{
    if (!im->kw_st || attr_pk <= 0)
        return SB_OK;
    int rc = SB_OK;
    sqlite3_reset(im->kw_st);
    sqlite3_bind_int64(im->kw_st, 1, attr_pk);
    while (!rc && sqlite3_step(im->kw_st) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(im->kw_st, 0);
        if (!k || !*k)
            continue;
        struct sb_err e;
        int trc = catalog_tag_add(im->cat, photo, k, CATALOG_SRC_APPLE, (double)NAN, &e);
        if (trc == SB_OK)
            im->st->keywords++;
        rc = keep_db_errors(trc, &e, err);
    }
    return rc;
}

static int add_albums(struct importer *im, int64_t asset_pk, int64_t photo, struct sb_err *err)
{
    if (!im->alb_st)
        return SB_OK;
    int rc = SB_OK;
    int64_t last = 0;
    sqlite3_reset(im->alb_st);
    sqlite3_bind_int64(im->alb_st, 1, asset_pk);
    /* rows come by album, longest path (the one up to the top folder) first */
    while (!rc && sqlite3_step(im->alb_st) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(im->alb_st, 0);
        const char *name = (const char *)sqlite3_column_text(im->alb_st, 1);
        if (id == last || !name || !*name)
            continue;
        last = id;
        rc = catalog_album_add(im->cat, photo, CATALOG_SRC_APPLE, name, err);
        if (!rc)
            im->st->albums++;
    }
    return rc;
}

static int add_text(struct importer *im, int64_t photo, const char *source, const char *text,
                    const char *model, struct sb_err *err)
{
    if (!text || !*text)
        return SB_OK;
    struct sb_err e;
    int rc = catalog_text_set(im->cat, photo, source, text, (double)NAN, model, &e);
    if (rc == SB_OK)
        im->st->texts++;
    return keep_db_errors(rc, &e, err);
}

static int add_search_info(struct importer *im, const char *uuid, int64_t photo, struct sb_err *err)
{
    size_t first = 0, n = psi_find(&im->psi, uuid, &first);
    int rc = SB_OK;
    struct sb_buf text;
    sb_buf_init(&text);
    for (size_t i = first; !rc && i < first + n; i++) {
        const struct psi_row *r = &im->psi.v[i];
        if (r->kind == PSI_LABEL) {
            struct sb_err e;
            int trc = catalog_tag_add(im->cat, photo, r->text, CATALOG_SRC_APPLE, (double)NAN, &e);
            if (trc == SB_OK)
                im->st->labels++;
            rc = keep_db_errors(trc, &e, err);
        } else {
            if (text.len)
                sb_buf_puts(&text, "\n");
            sb_buf_puts(&text, r->text);
        }
    }
    if (!rc && text.failed)
        rc = sb_fail(err, SB_ENOMEM, "apple: out of memory");
    if (!rc && text.len)
        rc = add_text(im, photo, CATALOG_SRC_APPLE ":ocr", text.data, "apple-photos", err);
    sb_buf_release(&text);
    return rc;
}

/* "YYYY-MM-DDTHH:MM:SS" of Unix time t shifted by off seconds. */
static bool format_time(int64_t t, int64_t off, char out[32])
{
    time_t tt = (time_t)(t + off);
    struct tm tm;
    if (!gmtime_r(&tt, &tm))
        return false;
    return strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm) > 0;
}

/* The original's path: ZDIRECTORY/ZFILENAME under originals/ (macOS 11+) or Masters/ (10.15),
 * or as it is when Photos references a file outside the library. *on_disk when it exists. */
static void original_path(const char *lib, const char *dir, const char *file, struct sb_buf *b,
                          bool *on_disk)
{
    static const char *const roots[] = { "originals", "Masters" };
    struct stat sb;
    *on_disk = false;
    if (dir[0] == '/') {
        sb_buf_printf(b, "%s/%s", dir, file);
        *on_disk = b->data && stat(b->data, &sb) == 0 && S_ISREG(sb.st_mode);
        return;
    }
    for (size_t i = 0; i < sizeof(roots) / sizeof(roots[0]); i++) {
        b->len = 0;
        sb_buf_printf(b, "%s/%s/%s/%s", lib, roots[i], dir, file);
        if (b->data && stat(b->data, &sb) == 0 && S_ISREG(sb.st_mode)) {
            *on_disk = true;
            return;
        }
    }
    b->len = 0;
    sb_buf_printf(b, "%s/originals/%s/%s", lib, dir, file);
}

/* Columns of the asset query. */
enum {
    A_PK,
    A_UUID,
    A_DIR,
    A_FILE,
    A_DATE,
    A_FAV,
    A_HIDDEN,
    A_LAT,
    A_LON,
    A_ATTR,
    A_TITLE,
    A_TZ,
    A_DESC,
};

static int import_asset(struct importer *im, sqlite3_stmt *q, struct sb_err *err)
{
    const char *uuid = (const char *)sqlite3_column_text(q, A_UUID);
    const char *dir = (const char *)sqlite3_column_text(q, A_DIR);
    const char *file = (const char *)sqlite3_column_text(q, A_FILE);
    if (!uuid || !*uuid)
        return SB_OK;
    struct catalog_apple_asset a;
    memset(&a, 0, sizeof(a));
    a.library = im->lib;
    a.uuid = uuid;
    a.favorite = sqlite3_column_int(q, A_FAV) != 0;
    a.hidden = sqlite3_column_int(q, A_HIDDEN) != 0;
    a.lat = a.lon = (double)NAN;
    if (sqlite3_column_type(q, A_LAT) != SQLITE_NULL &&
        sqlite3_column_type(q, A_LON) != SQLITE_NULL) {
        double lat = sqlite3_column_double(q, A_LAT), lon = sqlite3_column_double(q, A_LON);
        if (lat >= -90.0 && lat <= 90.0 && lon >= -180.0 && lon <= 180.0 &&
            !(lat == 0.0 && lon == 0.0) && lon != -180.0) {
            a.lat = lat;
            a.lon = lon;
        }
    }
    char utc[32] = "", local[32] = "", tz[8] = "";
    int64_t unix_t = 0;
    bool dated = false;
    if (sqlite3_column_type(q, A_DATE) != SQLITE_NULL) {
        double d = sqlite3_column_double(q, A_DATE);
        /* years 1900..2200: anything else is a broken row, not a date */
        if (d > -3.2e9 && d < 6.3e9) {
            unix_t = apple_time_to_unix(d);
            int64_t off = 0;
            if (sqlite3_column_type(q, A_TZ) != SQLITE_NULL) {
                off = sqlite3_column_int64(q, A_TZ);
                if (off < -16 * 3600 || off > 16 * 3600)
                    off = 0;
                int64_t m = off < 0 ? -off / 60 : off / 60;
                snprintf(tz, sizeof(tz), "%c%02d:%02d", off < 0 ? '-' : '+', (int)(m / 60),
                         (int)(m % 60));
            }
            dated = format_time(unix_t, 0, utc) && format_time(unix_t, off, local);
            if (dated)
                a.taken_at = utc;
        }
    }
    struct sb_buf path;
    sb_buf_init(&path);
    bool on_disk = false, by_hash = false;
    int rc = SB_OK;
    if (dir && file && *file) {
        original_path(im->lib, dir, file, &path, &on_disk);
        if (path.failed) {
            rc = sb_fail(err, SB_ENOMEM, "apple: out of memory");
            goto out;
        }
        a.original_path = path.data;
    }
    im->st->assets++;
    if (on_disk) {
        im->st->on_disk++;
        rc = interop_match_photo(im->cat, path.data, &a.photo_id, &by_hash, err);
        if (rc)
            goto out;
    }
    if (a.photo_id) {
        im->st->matched++;
        im->st->matched_by_hash += by_hash;
    } else {
        im->st->unmatched++;
    }
    rc = catalog_apple_asset_put(im->cat, &a, err);
    if (rc || !a.photo_id)
        goto out;
    int64_t photo = a.photo_id;
    rc = add_keywords(im, sqlite3_column_int64(q, A_ATTR), photo, err);
    if (!rc)
        rc = add_albums(im, sqlite3_column_int64(q, A_PK), photo, err);
    if (!rc)
        rc = add_text(im, photo, CATALOG_SRC_APPLE ":title",
                      (const char *)sqlite3_column_text(q, A_TITLE), NULL, err);
    if (!rc)
        rc = add_text(im, photo, CATALOG_SRC_APPLE ":description",
                      (const char *)sqlite3_column_text(q, A_DESC), NULL, err);
    if (!rc)
        rc = add_search_info(im, uuid, photo, err);
    if (!rc && !isnan(a.lat))
        rc = catalog_photo_gps_fill(im->cat, photo, a.lat, a.lon, (double)NAN, NULL, err);
    if (!rc && dated) {
        bool set = false;
        rc = catalog_photo_time_fill(im->cat, photo, local, tz[0] ? tz : NULL, unix_t, APPLE_TIME,
                                     &set, err);
        im->st->dates += set;
    }
out:
    sb_buf_release(&path);
    return rc;
}

/* ---- the import ---------------------------------------------------------------------------- */

/* Column expression: "a.COL" when the table has it, else the fallback literal. */
static const char *col_or(sqlite3 *db, const char *table, const char *col, const char *expr,
                          const char *fallback)
{
    return interop_has_column(db, table, col) ? expr : fallback;
}

static int prepare_queries(struct importer *im, const char *asset_table, sqlite3_stmt **assets,
                           struct sb_err *err)
{
    sqlite3 *db = im->db;
    bool has_attr = interop_has_column(db, "ZADDITIONALASSETATTRIBUTES", "ZASSET");
    bool has_desc = has_attr &&
                    interop_has_column(db, "ZADDITIONALASSETATTRIBUTES", "ZASSETDESCRIPTION") &&
                    interop_has_column(db, "ZASSETDESCRIPTION", "ZLONGDESCRIPTION");
    bool has_trash = interop_has_column(db, asset_table, "ZTRASHEDSTATE");
    char sql[2048];
    int n = snprintf(
        sql, sizeof(sql),
        "SELECT a.Z_PK, a.ZUUID, a.ZDIRECTORY, a.ZFILENAME, %s, %s, %s, %s, %s, %s, %s, %s, %s"
        " FROM %s a%s%s%s ORDER BY a.Z_PK",
        col_or(db, asset_table, "ZDATECREATED", "a.ZDATECREATED", "NULL"),
        col_or(db, asset_table, "ZFAVORITE", "a.ZFAVORITE", "0"),
        col_or(db, asset_table, "ZHIDDEN", "a.ZHIDDEN", "0"),
        col_or(db, asset_table, "ZLATITUDE", "a.ZLATITUDE", "NULL"),
        col_or(db, asset_table, "ZLONGITUDE", "a.ZLONGITUDE", "NULL"), has_attr ? "aa.Z_PK" : "0",
        has_attr && interop_has_column(db, "ZADDITIONALASSETATTRIBUTES", "ZTITLE") ? "aa.ZTITLE"
                                                                                   : "NULL",
        has_attr && interop_has_column(db, "ZADDITIONALASSETATTRIBUTES", "ZTIMEZONEOFFSET")
            ? "aa.ZTIMEZONEOFFSET"
            : "NULL",
        has_desc ? "d.ZLONGDESCRIPTION" : "NULL", asset_table,
        has_attr ? " LEFT JOIN ZADDITIONALASSETATTRIBUTES aa ON aa.ZASSET = a.Z_PK" : "",
        has_desc ? " LEFT JOIN ZASSETDESCRIPTION d ON d.Z_PK = aa.ZASSETDESCRIPTION" : "",
        has_trash ? " WHERE COALESCE(a.ZTRASHEDSTATE, 0) = 0" : "");
    if (n < 0 || (size_t)n >= sizeof(sql))
        return sb_fail(err, SB_EINVAL, "apple: query too long");
    if (sqlite3_prepare_v2(db, sql, -1, assets, NULL) != SQLITE_OK)
        return sb_fail(err, SB_EFORMAT, "apple library: read assets: %s", sqlite3_errmsg(db));

    char t[NAME_CAP], ca[NAME_CAP], cb[NAME_CAP];
    if (has_attr && interop_has_column(db, "ZKEYWORD", "ZTITLE") &&
        find_join(db, "KEYWORDS", "ASSETATTRIBUTES", "KEYWORDS", t, ca, cb)) {
        snprintf(sql, sizeof(sql),
                 "SELECT k.ZTITLE FROM \"%s\" j JOIN ZKEYWORD k ON k.Z_PK = j.\"%s\""
                 " WHERE j.\"%s\" = ?1 ORDER BY k.ZTITLE",
                 t, cb, ca);
        if (sqlite3_prepare_v2(db, sql, -1, &im->kw_st, NULL) != SQLITE_OK)
            im->kw_st = NULL;
    }
    if (interop_has_column(db, "ZGENERICALBUM", "ZKIND") &&
        interop_has_column(db, "ZGENERICALBUM", "ZTITLE") &&
        find_join(db, "ASSETS", "ALBUMS", "ASSETS", t, ca, cb)) {
        bool nested = interop_has_column(db, "ZGENERICALBUM", "ZPARENTFOLDER");
        bool trash = interop_has_column(db, "ZGENERICALBUM", "ZTRASHEDSTATE");
        /* user albums (kind 2) of the asset, then up through user folders (kind 4000) */
        snprintf(sql, sizeof(sql),
                 "WITH RECURSIVE up(id, parent, names, depth) AS ("
                 " SELECT a.Z_PK, %s, a.ZTITLE, 0 FROM \"%s\" j"
                 " JOIN ZGENERICALBUM a ON a.Z_PK = j.\"%s\""
                 " WHERE j.\"%s\" = ?1 AND a.ZKIND = 2 AND a.ZTITLE <> ''%s"
                 " UNION ALL SELECT up.id, %s, p.ZTITLE || '/' || up.names, up.depth + 1"
                 " FROM up JOIN ZGENERICALBUM p ON p.Z_PK = up.parent"
                 " WHERE p.ZKIND = 4000 AND p.ZTITLE <> '' AND up.depth < 32)"
                 " SELECT id, names FROM up ORDER BY id, depth DESC",
                 nested ? "a.ZPARENTFOLDER" : "NULL", t, ca, cb,
                 trash ? " AND COALESCE(a.ZTRASHEDSTATE, 0) = 0" : "",
                 nested ? "p.ZPARENTFOLDER" : "NULL");
        if (sqlite3_prepare_v2(db, sql, -1, &im->alb_st, NULL) != SQLITE_OK)
            im->alb_st = NULL;
    }
    return SB_OK;
}

int apple_import(struct catalog *cat, const struct apple_import_params *p,
                 struct apple_import_stats *st, struct sb_err *err)
{
    struct importer im;
    memset(&im, 0, sizeof(im));
    struct apple_import_stats s;
    memset(&s, 0, sizeof(s));
    im.cat = cat;
    im.st = &s;
    sqlite3_stmt *assets = NULL;
    bool in_tx = false;
    struct sb_buf dbpath, psipath;
    sb_buf_init(&dbpath);
    sb_buf_init(&psipath);
    int rc = SB_OK;
    char *lib = realpath(p->library, NULL);
    struct stat sb;
    if (!lib || stat(lib, &sb) != 0) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "apple library '%s': %s", p->library, strerror(e));
        goto out;
    }
    if (!S_ISDIR(sb.st_mode)) {
        rc = sb_fail(err, SB_EINVAL, "'%s' is not a Photos library (a .photoslibrary folder)",
                     p->library);
        goto out;
    }
    im.lib = lib;
    sb_buf_printf(&dbpath, "%s/database/Photos.sqlite", lib);
    sb_buf_printf(&psipath, "%s/database/search/psi.sqlite", lib);
    if (dbpath.failed || psipath.failed) {
        rc = sb_fail(err, SB_ENOMEM, "apple: out of memory");
        goto out;
    }
    if (stat(dbpath.data, &sb) != 0) {
        rc = sb_fail(err, SB_ENOENT, "'%s' is not a Photos library (no database/Photos.sqlite)",
                     p->library);
        goto out;
    }
    rc = interop_sqlite_open_ro(dbpath.data, &im.db, err);
    if (rc)
        goto out;
    const char *asset_table = NULL;
    if (interop_has_column(im.db, "ZASSET", "ZUUID"))
        asset_table = "ZASSET";
    else if (interop_has_column(im.db, "ZGENERICASSET", "ZUUID"))
        asset_table = "ZGENERICASSET";
    if (!asset_table || !interop_has_column(im.db, asset_table, "ZDIRECTORY") ||
        !interop_has_column(im.db, asset_table, "ZFILENAME")) {
        rc = sb_fail(err, SB_EFORMAT,
                     "'%s' is not an Apple Photos database of macOS 10.15 or later (no ZASSET "
                     "table with ZUUID, ZDIRECTORY, ZFILENAME)",
                     dbpath.data);
        goto out;
    }
    s.photos_version =
        strcmp(asset_table, "ZGENERICASSET") == 0                                      ? 5
        : interop_has_column(im.db, "ZASSET", "ZACTIVELIBRARYSCOPEPARTICIPATIONSTATE") ? 8
                                                                                       : 6;
    rc = psi_load(psipath.data, s.photos_version, &im.psi, &s.have_search, s.search_error,
                  sizeof(s.search_error), err);
    if (!rc)
        rc = prepare_queries(&im, asset_table, &assets, err);
    if (rc)
        goto out;
    rc = catalog_begin(cat, err);
    if (rc)
        goto out;
    in_tx = true;
    rc = catalog_apple_forget(cat, lib, err);
    int srow = SQLITE_ROW;
    while (!rc && (srow = sqlite3_step(assets)) == SQLITE_ROW)
        rc = import_asset(&im, assets, err);
    if (!rc && srow != SQLITE_DONE)
        rc = sb_fail(err, SB_EFORMAT, "apple library: read assets: %s", sqlite3_errmsg(im.db));
    if (!rc) {
        rc = catalog_commit(cat, err);
        in_tx = rc != SB_OK;
    }
out:
    if (in_tx)
        catalog_rollback(cat);
    if (st)
        *st = s;
    sqlite3_finalize(assets);
    sqlite3_finalize(im.kw_st);
    sqlite3_finalize(im.alb_st);
    sqlite3_close(im.db);
    psi_release(&im.psi);
    sb_buf_release(&dbpath);
    sb_buf_release(&psipath);
    free(lib);
    return rc;
}
