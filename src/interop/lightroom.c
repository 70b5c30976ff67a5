/* lightroom.c - import a Lightroom Classic catalog (.lrcat, SQLite) read-only.
 *
 * The catalog is opened with "file:...?mode=ro": never locked for writing, never changed
 * (tests check its bytes and mtime). Images are matched to shoebox photos by the original's
 * path (root folder + folder + base name + extension), else by the content of the file found
 * at that path. Virtual copies are recorded but lend their keywords and ratings to no photo:
 * they share the master's file, and the master's metadata is the photo's. */
#include "lightroom_internal.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/lightroom.h"
#include "shoebox/util.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define KEYWORD_MAX_DEPTH 32

struct keyword {
    int64_t id, parent;
    char *name; /* NULL for the invisible root */
};

struct keywords {
    struct keyword *v;
    size_t n;
};

static int cmp_keyword(const void *a, const void *b)
{
    int64_t x = ((const struct keyword *)a)->id, y = ((const struct keyword *)b)->id;
    return x < y ? -1 : x > y;
}

static const struct keyword *keyword_find(const struct keywords *k, int64_t id)
{
    struct keyword key = { .id = id };
    return k->n ? bsearch(&key, k->v, k->n, sizeof(key), cmp_keyword) : NULL;
}

static void keywords_release(struct keywords *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->v[i].name);
    free(k->v);
}

static int db_fail(sqlite3 *db, struct sb_err *err, const char *what)
{
    return sb_fail(err, SB_EFORMAT, "lightroom catalog: %s: %s", what, sqlite3_errmsg(db));
}

static int load_keywords(sqlite3 *db, struct keywords *k, struct sb_err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = SB_OK, s;
    size_t cap = 0;
    if (!interop_has_column(db, "AgLibraryKeyword", "parent"))
        return SB_OK; /* no keywords table: nothing to import */
    if (sqlite3_prepare_v2(db, "SELECT id_local, parent, name FROM AgLibraryKeyword", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(db, err, "keywords");
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (k->n == cap) {
            size_t ncap = cap ? cap * 2 : 128;
            void *p = realloc(k->v, ncap * sizeof(*k->v));
            if (!p) {
                rc = sb_fail(err, SB_ENOMEM, "keywords: out of memory");
                goto out;
            }
            k->v = p;
            cap = ncap;
        }
        struct keyword *kw = &k->v[k->n++];
        kw->id = sqlite3_column_int64(st, 0);
        kw->parent = sqlite3_column_int64(st, 1);
        const char *name = (const char *)sqlite3_column_text(st, 2);
        kw->name = name && *name ? sb_strdup(name) : NULL;
    }
    if (s != SQLITE_DONE)
        rc = db_fail(db, err, "keywords");
    if (k->n)
        qsort(k->v, k->n, sizeof(*k->v), cmp_keyword);
out:
    sqlite3_finalize(st);
    return rc;
}

/* "Parent|Child|Leaf" of a keyword into b (as lr:hierarchicalSubject writes it); its depth. */
static int keyword_path(const struct keywords *k, const struct keyword *kw, struct sb_buf *b)
{
    const struct keyword *chain[KEYWORD_MAX_DEPTH];
    int n = 0;
    for (const struct keyword *p = kw; p && p->name && n < KEYWORD_MAX_DEPTH;
         p = p->parent ? keyword_find(k, p->parent) : NULL)
        chain[n++] = p;
    for (int i = n - 1; i >= 0; i--) {
        sb_buf_puts(b, chain[i]->name);
        if (i)
            sb_buf_puts(b, "|");
    }
    return n;
}

/* ---- per image ----------------------------------------------------------------------------- */

struct importer {
    struct catalog *cat;
    sqlite3 *db;
    const struct lr_import_params *p;
    const char *lrcat;
    struct keywords kw;
    sqlite3_stmt *kw_st, *iptc_st, *xmp_st, *coll_st;
    bool iptc_title;
    struct lr_import_stats *st;
};

static int add_keywords(struct importer *im, int64_t lr_id, int64_t photo, struct sb_err *err)
{
    if (!im->kw_st)
        return SB_OK;
    int rc = SB_OK, s;
    sqlite3_reset(im->kw_st);
    sqlite3_bind_int64(im->kw_st, 1, lr_id);
    while (!rc && (s = sqlite3_step(im->kw_st)) == SQLITE_ROW) {
        const struct keyword *kw = keyword_find(&im->kw, sqlite3_column_int64(im->kw_st, 0));
        if (!kw || !kw->name)
            continue;
        struct sb_buf path;
        sb_buf_init(&path);
        int depth = keyword_path(&im->kw, kw, &path);
        struct sb_err terr;
        /* an invalid keyword (control characters, too long) is skipped, not fatal */
        int trc =
            catalog_tag_add(im->cat, photo, kw->name, CATALOG_SRC_LIGHTROOM, (double)NAN, &terr);
        if (trc == SB_EDB)
            rc = sb_fail(err, SB_EDB, "%s", terr.msg);
        else if (trc == SB_OK)
            im->st->keywords++;
        if (!rc && depth > 1 && !path.failed) {
            trc = catalog_tag_add(im->cat, photo, path.data, CATALOG_SRC_LIGHTROOM, (double)NAN,
                                  &terr);
            if (trc == SB_EDB)
                rc = sb_fail(err, SB_EDB, "%s", terr.msg);
        }
        sb_buf_release(&path);
    }
    return rc;
}

/* The text of the first <rdf:li> inside <tag>...</tag> of an XMP packet (entities for &, <, >
 * and quotes decoded), or NULL. The caller frees it. */
static char *xmp_alt_text(const char *xmp, const char *tag)
{
    char open[64], close[64];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    const char *a = strstr(xmp, open), *z = a ? strstr(a, close) : NULL;
    const char *li = a ? strstr(a, "<rdf:li") : NULL;
    if (!li || li > z)
        return NULL;
    li = strchr(li, '>');
    const char *end = li ? strstr(li, "</rdf:li>") : NULL;
    if (!end || end > z)
        return NULL;
    li++;
    struct sb_buf b;
    sb_buf_init(&b);
    static const struct {
        const char *ent, *ch;
    } ents[] = {
        { "&amp;", "&" }, { "&lt;", "<" }, { "&gt;", ">" }, { "&quot;", "\"" }, { "&apos;", "'" }
    };
    for (const char *p = li; p < end;) {
        bool done = false;
        for (size_t i = 0; *p == '&' && i < sizeof(ents) / sizeof(ents[0]); i++) {
            size_t n = strlen(ents[i].ent);
            if ((size_t)(end - p) >= n && strncmp(p, ents[i].ent, n) == 0) {
                sb_buf_puts(&b, ents[i].ch);
                p += n;
                done = true;
                break;
            }
        }
        if (!done)
            sb_buf_append(&b, p++, 1);
    }
    if (b.failed || b.len == 0) {
        sb_buf_release(&b);
        return NULL;
    }
    return b.data;
}

static int set_text(struct importer *im, int64_t photo, const char *source, const char *text,
                    struct sb_err *err)
{
    if (!text || !*text)
        return SB_OK;
    struct sb_err terr;
    int rc = catalog_text_set(im->cat, photo, source, text, (double)NAN, NULL, &terr);
    if (rc == SB_EDB)
        return sb_fail(err, SB_EDB, "%s", terr.msg);
    return SB_OK;
}

static int add_texts(struct importer *im, int64_t lr_id, int64_t photo, struct sb_err *err)
{
    int rc = SB_OK;
    char *title = NULL, *caption = NULL;
    if (im->iptc_st) {
        sqlite3_reset(im->iptc_st);
        sqlite3_bind_int64(im->iptc_st, 1, lr_id);
        if (sqlite3_step(im->iptc_st) == SQLITE_ROW) {
            caption = sb_strdup((const char *)sqlite3_column_text(im->iptc_st, 0));
            title = sb_strdup((const char *)sqlite3_column_text(im->iptc_st, 1));
        }
    }
    if (im->xmp_st && (!title || !caption)) {
        /* older catalogs keep the title only in the XMP packet */
        sqlite3_reset(im->xmp_st);
        sqlite3_bind_int64(im->xmp_st, 1, lr_id);
        if (sqlite3_step(im->xmp_st) == SQLITE_ROW) {
            const char *xmp = (const char *)sqlite3_column_text(im->xmp_st, 0);
            if (xmp && !title)
                title = xmp_alt_text(xmp, "dc:title");
            if (xmp && !caption)
                caption = xmp_alt_text(xmp, "dc:description");
        }
    }
    rc = set_text(im, photo, CATALOG_SRC_LIGHTROOM ":title", title, err);
    if (!rc)
        rc = set_text(im, photo, CATALOG_SRC_LIGHTROOM ":caption", caption, err);
    free(title);
    free(caption);
    return rc;
}

static int add_collections(struct importer *im, int64_t lr_id, int64_t photo, struct sb_err *err)
{
    if (!im->coll_st)
        return SB_OK;
    int rc = SB_OK, s;
    sqlite3_reset(im->coll_st);
    sqlite3_bind_int64(im->coll_st, 1, lr_id);
    while (!rc && (s = sqlite3_step(im->coll_st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(im->coll_st, 0);
        const char *parents = (const char *)sqlite3_column_text(im->coll_st, 1);
        if (!name || !*name)
            continue;
        struct sb_buf b;
        sb_buf_init(&b);
        if (parents && *parents)
            sb_buf_printf(&b, "%s/", parents);
        sb_buf_puts(&b, name);
        if (b.failed)
            rc = sb_fail(err, SB_ENOMEM, "collections: out of memory");
        else
            rc = catalog_album_add(im->cat, photo, CATALOG_SRC_LIGHTROOM, b.data, err);
        if (!rc)
            im->st->collections++;
        sb_buf_release(&b);
    }
    return rc;
}

/* Rewrites the original's path with the first matching --map prefix. */
static void map_path(const struct lr_import_params *p, const char *in, struct sb_buf *out)
{
    for (int i = 0; i < p->nmap; i++) {
        size_t n = strlen(p->map_from[i]);
        if (n && strncmp(in, p->map_from[i], n) == 0 &&
            (in[n] == '/' || in[n] == '\0' || p->map_from[i][n - 1] == '/')) {
            sb_buf_puts(out, p->map_to[i]);
            sb_buf_puts(out, in + n);
            return;
        }
    }
    sb_buf_puts(out, in);
}

static int import_images(struct importer *im, struct sb_err *err)
{
    sqlite3 *db = im->db;
    sqlite3_stmt *st = NULL;
    int rc = SB_OK, s;
    bool has_master = interop_has_column(db, "Adobe_images", "masterImage");
    bool has_copy = interop_has_column(db, "Adobe_images", "copyName");
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "SELECT i.id_local, %s, %s, i.rating, i.pick, i.colorLabels, i.captureTime,"
             " r.absolutePath, fo.pathFromRoot, f.baseName, f.extension"
             " FROM Adobe_images i"
             " LEFT JOIN AgLibraryFile f ON f.id_local = i.rootFile"
             " LEFT JOIN AgLibraryFolder fo ON fo.id_local = f.folder"
             " LEFT JOIN AgLibraryRootFolder r ON r.id_local = fo.rootFolder"
             " ORDER BY i.id_local",
             has_master ? "i.masterImage" : "NULL", has_copy ? "i.copyName" : "NULL");
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, err, "images");
    while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
        struct catalog_lr_image r;
        memset(&r, 0, sizeof(r));
        r.catalog = im->lrcat;
        r.lr_id = sqlite3_column_int64(st, 0);
        r.virtual_copy =
            sqlite3_column_int64(st, 1) != 0 || sqlite3_column_type(st, 2) != SQLITE_NULL;
        r.rating = sqlite3_column_type(st, 3) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 3);
        if (r.rating < 0 || r.rating > 5)
            r.rating = -1;
        double pick = sqlite3_column_double(st, 4);
        r.pick = pick > 0.5 ? 1 : pick < -0.5 ? -1 : 0;
        r.color_label = (const char *)sqlite3_column_text(st, 5);
        r.capture_time = (const char *)sqlite3_column_text(st, 6);
        const char *root = (const char *)sqlite3_column_text(st, 7);
        const char *from_root = (const char *)sqlite3_column_text(st, 8);
        const char *base = (const char *)sqlite3_column_text(st, 9);
        const char *ext = (const char *)sqlite3_column_text(st, 10);
        struct sb_buf lrpath, path;
        sb_buf_init(&lrpath);
        sb_buf_init(&path);
        if (root && base) {
            sb_buf_puts(&lrpath, root);
            if (lrpath.len && lrpath.data[lrpath.len - 1] != '/')
                sb_buf_puts(&lrpath, "/");
            sb_buf_puts(&lrpath, from_root ? from_root : "");
            if (lrpath.len && lrpath.data[lrpath.len - 1] != '/')
                sb_buf_puts(&lrpath, "/");
            sb_buf_puts(&lrpath, base);
            if (ext && *ext)
                sb_buf_printf(&lrpath, ".%s", ext);
            map_path(im->p, lrpath.data ? lrpath.data : "", &path);
        }
        if (lrpath.failed || path.failed) {
            rc = sb_fail(err, SB_ENOMEM, "images: out of memory");
        } else {
            bool by_hash = false;
            if (path.data)
                rc = interop_match_photo(im->cat, path.data, &r.photo_id, &by_hash, err);
            r.original_path = path.data;
            im->st->images++;
            if (r.photo_id) {
                im->st->matched++;
                im->st->matched_by_hash += by_hash;
            } else {
                im->st->unmatched++;
            }
            if (!rc)
                rc = catalog_lr_image_put(im->cat, &r, err);
            if (!rc && r.photo_id && !r.virtual_copy) {
                rc = add_keywords(im, r.lr_id, r.photo_id, err);
                if (!rc)
                    rc = add_texts(im, r.lr_id, r.photo_id, err);
                if (!rc)
                    rc = add_collections(im, r.lr_id, r.photo_id, err);
            }
        }
        sb_buf_release(&lrpath);
        sb_buf_release(&path);
    }
    if (!rc && s != SQLITE_DONE)
        rc = db_fail(db, err, "images");
    sqlite3_finalize(st);
    return rc;
}

/* Prepares an optional statement: NULL (no error) when the catalog lacks the tables. */
static sqlite3_stmt *prep_optional(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    return st;
}

int lr_catalog_import(struct catalog *cat, const struct lr_import_params *p,
                      struct lr_import_stats *st, struct sb_err *err)
{
    struct importer im;
    memset(&im, 0, sizeof(im));
    struct lr_import_stats s;
    memset(&s, 0, sizeof(s));
    im.cat = cat;
    im.p = p;
    im.st = &s;
    bool in_tx = false;
    char *real = realpath(p->lrcat, NULL);
    int rc = interop_sqlite_open_ro(p->lrcat, &im.db, err);
    if (rc)
        goto out;
    im.lrcat = real ? real : p->lrcat;
    if (!interop_has_column(im.db, "Adobe_images", "rootFile") ||
        !interop_has_column(im.db, "AgLibraryFile", "baseName")) {
        rc =
            sb_fail(err, SB_EFORMAT, "'%s' is not a Lightroom catalog (no Adobe_images)", p->lrcat);
        goto out;
    }
    rc = load_keywords(im.db, &im.kw, err);
    if (rc)
        goto out;
    im.kw_st = prep_optional(im.db, "SELECT tag FROM AgLibraryKeywordImage WHERE image = ?1");
    im.iptc_title = interop_has_column(im.db, "AgLibraryIPTC", "title");
    im.iptc_st = prep_optional(im.db, im.iptc_title ? "SELECT caption, title FROM AgLibraryIPTC"
                                                      " WHERE image = ?1"
                                                    : "SELECT caption, NULL FROM AgLibraryIPTC"
                                                      " WHERE image = ?1");
    im.xmp_st = prep_optional(im.db, "SELECT xmp FROM Adobe_AdditionalMetadata WHERE image = ?1");
    /* ordinary collections only: smart ones have rules, not members; the quick collection is
     * systemOnly. parents: the names of enclosing collection sets, outermost first */
    im.coll_st = prep_optional(
        im.db, "WITH RECURSIVE up(id, parent, names) AS ("
               "  SELECT c.id_local, c.parent, '' FROM AgLibraryCollection c"
               "  UNION ALL SELECT up.id, p.parent,"
               "   p.name || CASE WHEN up.names = '' THEN '' ELSE '/' || up.names END"
               "  FROM up JOIN AgLibraryCollection p ON p.id_local = up.parent)"
               " SELECT c.name, (SELECT names FROM up WHERE up.id = c.id_local AND up.parent IS"
               " NULL) FROM AgLibraryCollectionImage ci"
               " JOIN AgLibraryCollection c ON c.id_local = ci.collection"
               " WHERE ci.image = ?1 AND c.creationId = 'com.adobe.ag.library.collection'"
               " AND (c.systemOnly IS NULL OR c.systemOnly = 0 OR c.systemOnly = '')"
               " ORDER BY c.name");
    rc = catalog_begin(cat, err);
    if (rc)
        goto out;
    in_tx = true;
    rc = catalog_lr_forget(cat, im.lrcat, err);
    if (!rc)
        rc = import_images(&im, err);
    if (!rc) {
        rc = catalog_commit(cat, err);
        in_tx = rc != SB_OK;
    }
out:
    if (in_tx)
        catalog_rollback(cat);
    if (st)
        *st = s;
    sqlite3_finalize(im.kw_st);
    sqlite3_finalize(im.iptc_st);
    sqlite3_finalize(im.xmp_st);
    sqlite3_finalize(im.coll_st);
    keywords_release(&im.kw);
    sqlite3_close(im.db);
    free(real);
    return rc;
}
