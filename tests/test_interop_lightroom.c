/* test_interop_lightroom.c - .lrprev parsing (real Lightroom 5 files, synthetic newer ones,
 * broken ones), preview rescue with naming from previews.db and the catalog, and catalog
 * import (real Lightroom 5 catalog, synthetic catalog with keywords, collections and a virtual
 * copy), checking that the user's catalog is never changed. */
#include "check.h"
#include "fixture.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/lightroom.h"
#include "shoebox/util.h"

#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define LR5_DIR "lightroom/Lightroom 5 Catalog Previews.lrdata"
#define LR5_PREVIEW                                                                                \
    LR5_DIR "/3/3829/3829E5FC-7F3F-4B22-94F3-FB5E2C796026-07cc63f155500a902b21fef7be6585b5.lrprev"
#define LR5_CATALOG "lightroom/Lightroom 5 Catalog.lrcat"

static char data_dir[512], tmp_dir[512];

static void data_path(char *out, size_t cap, const char *rel)
{
    snprintf(out, cap, "%s/%s", data_dir, rel);
}

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

/* Appends one section (header length 32, as in every file seen) to b. */
static void add_section(struct sb_buf *b, const char *name, const void *payload, size_t n,
                        size_t pad)
{
    unsigned char h[32];
    memset(h, 0, sizeof(h));
    memcpy(h, "AgHg", 4);
    h[5] = 32;
    h[6] = strcmp(name, "header") == 0 ? 0 : 1;
    put_be64(h + 8, n);
    put_be64(h + 16, pad);
    memcpy(h + 24, name, strlen(name) < 8 ? strlen(name) : 8);
    sb_buf_append(b, (const char *)h, 32);
    sb_buf_append(b, payload, n);
    static const char zeros[16] = { 0 };
    sb_buf_append(b, zeros, pad);
}

/* A small JPEG: a w x h gradient with a red top-left corner. */
static unsigned char *make_jpeg(int w, int h, size_t *len)
{
    struct image *img = image_new(w, h);
    unsigned char *out = NULL;
    struct sb_err err;
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            unsigned char *p = img->px + ((size_t)y * w + x) * 3;
            bool corner = x < w / 4 && y < h / 4;
            p[0] = corner ? 230 : (unsigned char)(x * 255 / w);
            p[1] = corner ? 20 : (unsigned char)(y * 255 / h);
            p[2] = corner ? 20 : 128;
        }
    }
    if (image_encode_jpeg(img, 95, &out, len, &err))
        out = NULL;
    image_free(img);
    return out;
}

/* ---- parser -------------------------------------------------------------------------------- */

static void test_real_lrprev(void)
{
    char path[1024];
    data_path(path, sizeof(path), LR5_PREVIEW);
    size_t len = 0;
    unsigned char *buf = fx_read_all(path, &len);
    CHECK(buf != NULL);
    if (!buf)
        return;
    struct lrprev p;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, lrprev_parse(buf, len, &p, &err));
    CHECK_EQ_INT(7, p.nlevels);
    CHECK(!p.truncated);
    CHECK_EQ_STR("3829E5FC-7F3F-4B22-94F3-FB5E2C796026", p.uuid);
    CHECK_EQ_STR("07cc63f155500a902b21fef7be6585b5", p.digest);
    CHECK_EQ_STR("AdobeRGB", p.color_profile);
    CHECK_EQ_STR("final", p.quality);
    CHECK_EQ_INT(4272, p.cropped_width);
    CHECK_EQ_INT(2848, p.cropped_height);
    CHECK_EQ_INT(3, p.format_version);
    static const int widths[7] = { 67, 134, 267, 534, 1068, 2136, 4272 };
    static const size_t lens[7] = { 1820, 4501, 13801, 46993, 166393, 463586, 1534040 };
    for (int i = 0; i < 7 && i < p.nlevels; i++) {
        CHECK_EQ_INT(i + 1, p.levels[i].level);
        CHECK_EQ_INT(widths[i], p.levels[i].width);
        CHECK_EQ_INT(lens[i], p.levels[i].len);
        CHECK(p.levels[i].jpeg[0] == 0xFF && p.levels[i].jpeg[1] == 0xD8);
        CHECK(p.levels[i].jpeg[p.levels[i].len - 2] == 0xFF &&
              p.levels[i].jpeg[p.levels[i].len - 1] == 0xD9);
    }
    CHECK_EQ_INT(6, lrprev_pick(&p, 0));
    CHECK_EQ_INT(2, lrprev_pick(&p, 3));
    CHECK_EQ_INT(-1, lrprev_pick(&p, 9));
    /* the largest level decodes to the size the header says */
    struct image *img = NULL;
    struct image_decode_params dp = image_decode_default_params();
    CHECK_EQ_INT(SB_OK,
                 image_decode(p.levels[2].jpeg, p.levels[2].len, NULL, &dp, &img, NULL, &err));
    if (img) {
        CHECK_EQ_INT(267, img->w);
        CHECK_EQ_INT(178, img->h);
    }
    image_free(img);

    /* cut short anywhere: never a crash, never more levels, truncated set */
    static const size_t cuts[] = { 1,    4,    31,     32,     100,     608,    640,
                                   2000, 7008, 697952, 697990, 1000000, 2232031 };
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        struct lrprev q;
        int rc = lrprev_parse(buf, cuts[i], &q, &err);
        if (cuts[i] < 4) {
            CHECK_EQ_INT(SB_EFORMAT, rc);
        } else if (cuts[i] < 2464) { /* before level_1 is whole */
            CHECK_EQ_INT(SB_ECORRUPT, rc);
            CHECK(strstr(err.msg, "no complete preview level") != NULL);
        } else if (cuts[i] == 7008 || cuts[i] == 697952) {
            /* exactly at a section boundary: whole levels, nothing to tell it was cut */
            CHECK_EQ_INT(SB_OK, rc);
            CHECK_EQ_INT(cuts[i] == 7008 ? 2 : 6, q.nlevels);
        } else if (cuts[i] == 2232031) { /* inside the last padding */
            CHECK_EQ_INT(SB_OK, rc);
            CHECK_EQ_INT(7, q.nlevels);
        } else {
            CHECK_EQ_INT(SB_OK, rc);
            CHECK(q.nlevels >= 1 && q.nlevels < 7);
            CHECK(q.truncated);
        }
    }
    /* only the padding of the last section is missing: all levels are whole */
    struct lrprev q;
    CHECK_EQ_INT(SB_OK, lrprev_parse(buf, len - 8, &q, &err));
    CHECK_EQ_INT(7, q.nlevels);

    /* lying lengths: level_3 says it is huge; level_5 says 2^64-1 */
    unsigned char *lie = malloc(len);
    memcpy(lie, buf, len);
    put_be64(lie + 7008 + 8, (uint64_t)1 << 40);
    put_be64(lie + 67888 + 8, UINT64_MAX);
    CHECK_EQ_INT(SB_OK, lrprev_parse(lie, len, &q, &err));
    CHECK_EQ_INT(5, q.nlevels); /* 1, 2, 4, 6, 7 */
    CHECK(q.truncated);
    CHECK_EQ_INT(7, q.levels[lrprev_pick(&q, 0)].level);
    CHECK_EQ_INT(-1, lrprev_pick(&q, 3));
    /* a lying padding length and a header length of 0 */
    memcpy(lie, buf, len);
    put_be64(lie + 608 + 16, UINT64_MAX);
    CHECK_EQ_INT(SB_OK, lrprev_parse(lie, len, &q, &err));
    CHECK_EQ_INT(1, q.nlevels);
    memcpy(lie, buf, len);
    lie[608 + 5] = 0;
    CHECK_EQ_INT(SB_OK, lrprev_parse(lie, len, &q, &err));
    CHECK_EQ_INT(6, q.nlevels);
    CHECK(q.truncated);
    /* a level that is not a JPEG is dropped */
    memcpy(lie, buf, len);
    lie[697952 + 32] = 0;
    CHECK_EQ_INT(SB_OK, lrprev_parse(lie, len, &q, &err));
    CHECK_EQ_INT(6, q.nlevels);
    free(lie);
    free(buf);
}

static void test_broken_and_synthetic(void)
{
    struct lrprev p;
    struct sb_err err;
    static const unsigned char empty[1] = { 0 };
    CHECK_EQ_INT(SB_ECORRUPT, lrprev_parse(empty, 0, &p, &err));
    CHECK_EQ_STR("lrprev: empty file", err.msg);
    CHECK_EQ_INT(SB_EFORMAT,
                 lrprev_parse((const unsigned char *)"\xFF\xD8\xFF\xE0....", 8, &p, &err));
    CHECK_EQ_INT(SB_ECORRUPT, lrprev_parse((const unsigned char *)"AgHg", 4, &p, &err));

    /* a newer-style file: sRGB, formatVersion 4, an unknown section, header after a level,
     * keys in another order, trailing zeros */
    size_t jl1 = 0, jl2 = 0;
    unsigned char *j1 = make_jpeg(32, 16, &jl1), *j2 = make_jpeg(64, 32, &jl2);
    struct sb_buf b;
    sb_buf_init(&b);
    const char *hdr = "pyramid = {\n\tuuid = \"11111111-2222-3333-4444-555555555555\",\n"
                      "\tcolorProfile = \"sRGB\",\n\tformatVersion = 4,\n\tfromProxy = true,\n"
                      "\tlevels = {\n\t\t{ width = 32, height = 16, },\n"
                      "\t\t{ width = 64, height = 32, },\n\t},\n\tcroppedWidth = 64,\n"
                      "\tcroppedHeight = 32,\n\tdigest = \"abc\",\n}\n";
    add_section(&b, "level_1", j1, jl1, 3);
    add_section(&b, "header", hdr, strlen(hdr), 5);
    add_section(&b, "extra", "xyz", 3, 0);
    add_section(&b, "level_2", j2, jl2, 0);
    sb_buf_append(&b, "\0\0\0\0\0\0\0\0\0\0", 10);
    CHECK_EQ_INT(SB_OK, lrprev_parse((const unsigned char *)b.data, b.len, &p, &err));
    CHECK_EQ_INT(2, p.nlevels);
    CHECK(!p.truncated);
    CHECK_EQ_STR("11111111-2222-3333-4444-555555555555", p.uuid);
    CHECK_EQ_STR("sRGB", p.color_profile);
    CHECK_EQ_STR("abc", p.digest);
    CHECK_EQ_INT(4, p.format_version);
    CHECK_EQ_INT(64, p.cropped_width);
    CHECK_EQ_INT(64, p.levels[1].width);
    CHECK_EQ_INT(32, p.levels[1].height);
    CHECK_EQ_INT(jl2, p.levels[1].len);
    /* junk between sections is skipped */
    struct sb_buf c;
    sb_buf_init(&c);
    add_section(&c, "header", hdr, strlen(hdr), 0);
    sb_buf_append(&c, "garbage!", 8);
    add_section(&c, "level_1", j1, jl1, 0);
    CHECK_EQ_INT(SB_OK, lrprev_parse((const unsigned char *)c.data, c.len, &p, &err));
    CHECK_EQ_INT(1, p.nlevels);
    CHECK(p.truncated);
    /* a header alone */
    sb_buf_release(&c);
    sb_buf_init(&c);
    add_section(&c, "header", hdr, strlen(hdr), 0);
    CHECK_EQ_INT(SB_ECORRUPT, lrprev_parse((const unsigned char *)c.data, c.len, &p, &err));
    sb_buf_release(&c);
    sb_buf_release(&b);
    free(j1);
    free(j2);

    static const struct {
        const char *code;
        int exif;
    } orient[] = { { "AB", 1 }, { "BA", 2 }, { "CD", 3 }, { "DC", 4 }, { "CB", 5 },
                   { "BC", 6 }, { "AD", 7 }, { "DA", 8 }, { "", 1 },   { "ZZ", 1 } };
    for (size_t i = 0; i < sizeof(orient) / sizeof(orient[0]); i++)
        CHECK_EQ_INT(orient[i].exif, lr_orientation_to_exif(orient[i].code));
    CHECK_EQ_INT(1, lr_orientation_to_exif(NULL));
}

/* ---- rescue -------------------------------------------------------------------------------- */

struct seen {
    int n, failed;
    char out[8][1024], orig[8][1024];
    int w[8], h[8];
    bool vc[8];
};

static int on_item(void *user, const struct lr_preview_item *it)
{
    struct seen *s = user;
    if (it->error)
        s->failed++;
    if (s->n < 8) {
        snprintf(s->out[s->n], sizeof(s->out[0]), "%s", it->out_path ? it->out_path : "");
        snprintf(s->orig[s->n], sizeof(s->orig[0]), "%s", it->original ? it->original : "");
        s->w[s->n] = it->width;
        s->h[s->n] = it->height;
        s->vc[s->n] = it->virtual_copy;
    }
    s->n++;
    return 0;
}

static bool has_icc(const char *path)
{
    size_t len = 0;
    unsigned char *buf = fx_read_all(path, &len);
    bool found = false;
    for (size_t i = 0; buf && i + 11 < len && i < 4096; i++)
        if (memcmp(buf + i, "ICC_PROFILE", 11) == 0)
            found = true;
    free(buf);
    return found;
}

static void test_rescue_real(void)
{
    char lrdata[1024], lrcat[1024], out[1024];
    data_path(lrdata, sizeof(lrdata), LR5_DIR);
    data_path(lrcat, sizeof(lrcat), LR5_CATALOG);
    snprintf(out, sizeof(out), "%s/rescued", tmp_dir);
    struct stat before, after;
    CHECK_EQ_INT(0, stat(lrcat, &before));
    size_t clen0 = 0, clen1 = 0;
    unsigned char *c0 = fx_read_all(lrcat, &clen0);

    struct lr_previews_params p = lr_previews_default_params();
    p.lrdata = lrdata;
    p.out_dir = out;
    struct seen s;
    memset(&s, 0, sizeof(s));
    struct lr_previews_stats st;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, lr_previews_extract(&p, on_item, &s, &st, &err));
    CHECK_EQ_INT(1, st.found);
    CHECK_EQ_INT(1, st.written);
    CHECK_EQ_INT(1, st.named);
    CHECK(st.have_previews_db && st.have_catalog);
    char want[1200];
    snprintf(want, sizeof(want), "%s/Sample Images/sample3.jpg", out);
    CHECK_EQ_STR(want, s.out[0]);
    CHECK_EQ_STR("/Users/arronhartley/Pictures/Sample Images/sample3.jpg", s.orig[0]);
    CHECK_EQ_INT(4272, s.w[0]);
    CHECK_EQ_INT(2848, s.h[0]);

    /* again: the first file is kept, the new one is "-1"; --raw keeps the bytes, tags ICC */
    p.convert = false;
    p.level = 2;
    memset(&s, 0, sizeof(s));
    CHECK_EQ_INT(SB_OK, lr_previews_extract(&p, on_item, &s, &st, &err));
    snprintf(want, sizeof(want), "%s/Sample Images/sample3-1.jpg", out);
    CHECK_EQ_STR(want, s.out[0]);
    CHECK(has_icc(want));
    struct image *img = NULL;
    struct image_info info;
    CHECK_EQ_INT(SB_OK, image_decode_file(want, NULL, &img, &info, &err));
    if (img)
        CHECK_EQ_INT(134, img->w);
    image_free(img);

    /* a folder that is not there */
    p.lrdata = "/nonexistent/x.lrdata";
    CHECK_EQ_INT(SB_ENOENT, lr_previews_extract(&p, NULL, NULL, &st, &err));

    /* the user's catalog is untouched: same bytes, same mtime, no journal left */
    CHECK_EQ_INT(0, stat(lrcat, &after));
    CHECK_EQ_INT(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
    CHECK_EQ_INT(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
    unsigned char *c1 = fx_read_all(lrcat, &clen1);
    CHECK(c0 && c1 && clen0 == clen1 && memcmp(c0, c1, clen0) == 0);
    char side[1100];
    snprintf(side, sizeof(side), "%s-journal", lrcat);
    CHECK(access(side, F_OK) != 0);
    snprintf(side, sizeof(side), "%s-wal", lrcat);
    CHECK(access(side, F_OK) != 0);
    free(c0);
    free(c1);
}

/* A catalog in the Lightroom Classic layout (the tables and columns importers use). */
static const char *synthetic_catalog_sql =
    "CREATE TABLE Adobe_images (id_local INTEGER PRIMARY KEY, id_global UNIQUE NOT NULL,"
    " captureTime, colorLabels NOT NULL DEFAULT '', copyName, masterImage INTEGER, orientation,"
    " pick NOT NULL DEFAULT 0, rating, rootFile INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE AgLibraryFile (id_local INTEGER PRIMARY KEY, id_global UNIQUE NOT NULL,"
    " baseName NOT NULL DEFAULT '', extension NOT NULL DEFAULT '', folder INTEGER NOT NULL"
    " DEFAULT 0, originalFilename NOT NULL DEFAULT '');"
    "CREATE TABLE AgLibraryFolder (id_local INTEGER PRIMARY KEY, id_global UNIQUE NOT NULL,"
    " pathFromRoot NOT NULL DEFAULT '', rootFolder INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE AgLibraryRootFolder (id_local INTEGER PRIMARY KEY, id_global UNIQUE NOT NULL,"
    " absolutePath UNIQUE NOT NULL DEFAULT '', name NOT NULL DEFAULT '',"
    " relativePathFromCatalog);"
    "CREATE TABLE AgLibraryKeyword (id_local INTEGER PRIMARY KEY, id_global UNIQUE NOT NULL,"
    " dateCreated NOT NULL DEFAULT '', genealogy NOT NULL DEFAULT '', keywordType, lc_name,"
    " name, parent INTEGER);"
    "CREATE TABLE AgLibraryKeywordImage (id_local INTEGER PRIMARY KEY, image INTEGER NOT NULL"
    " DEFAULT 0, tag INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE AgLibraryIPTC (id_local INTEGER PRIMARY KEY, caption, copyright,"
    " image INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE Adobe_AdditionalMetadata (id_local INTEGER PRIMARY KEY, id_global UNIQUE NOT"
    " NULL, image INTEGER NOT NULL DEFAULT 0, xmp NOT NULL DEFAULT '');"
    "CREATE TABLE AgLibraryCollection (id_local INTEGER PRIMARY KEY, creationId NOT NULL"
    " DEFAULT '', genealogy NOT NULL DEFAULT '', imageCount, name NOT NULL DEFAULT '',"
    " parent INTEGER, systemOnly NOT NULL DEFAULT '');"
    "CREATE TABLE AgLibraryCollectionImage (id_local INTEGER PRIMARY KEY, collection INTEGER"
    " NOT NULL DEFAULT 0, image INTEGER NOT NULL DEFAULT 0, pick NOT NULL DEFAULT 0,"
    " positionInCollection);";

static void make_synthetic(const char *lrcat, const char *root)
{
    sqlite3 *db = NULL;
    CHECK_EQ_INT(SQLITE_OK, sqlite3_open(lrcat, &db));
    fx_exec_sql(db, synthetic_catalog_sql);
    char sql[4096];
    snprintf(sql, sizeof(sql),
             "INSERT INTO AgLibraryRootFolder VALUES (1, 'R1', '%s/', 'Pictures', NULL);"
             "INSERT INTO AgLibraryFolder VALUES (2, 'F2', '2020/trip/', 1);"
             "INSERT INTO AgLibraryFile VALUES (10, 'AAAA0000-0000-0000-0000-000000000010',"
             " 'beach', 'jpg', 2, 'beach.jpg');"
             "INSERT INTO AgLibraryFile VALUES (11, 'AAAA0000-0000-0000-0000-000000000011',"
             " 'moved', 'jpg', 2, 'moved.jpg');"
             "INSERT INTO AgLibraryFile VALUES (12, 'AAAA0000-0000-0000-0000-000000000012',"
             " 'gone', 'cr2', 2, 'gone.cr2');"
             "INSERT INTO Adobe_images VALUES (100, 'I100', '2020-07-01T10:00:00', 'Red', NULL,"
             " NULL, 'BC', 1, 4, 10);"
             "INSERT INTO Adobe_images VALUES (101, 'I101', NULL, '', 'Copy 1', 100, 'AB', 0,"
             " 1, 10);"
             "INSERT INTO Adobe_images VALUES (102, 'I102', NULL, 'Green', NULL, NULL, 'AB',"
             " -1, NULL, 11);"
             "INSERT INTO Adobe_images VALUES (103, 'I103', NULL, '', NULL, NULL, 'AB', 0,"
             " NULL, 12);"
             "INSERT INTO AgLibraryKeyword VALUES (1, 'K1', '', '/1', NULL, NULL, NULL, NULL);"
             "INSERT INTO AgLibraryKeyword VALUES (2, 'K2', '', '/1/2', NULL, 'places',"
             " 'Places', 1);"
             "INSERT INTO AgLibraryKeyword VALUES (3, 'K3', '', '/1/2/3', NULL, 'france',"
             " 'France', 2);"
             "INSERT INTO AgLibraryKeyword VALUES (4, 'K4', '', '/1/2/3/4', NULL, 'nice',"
             " 'Nice', 3);"
             "INSERT INTO AgLibraryKeyword VALUES (5, 'K5', '', '/1/5', NULL, 'beach', 'beach',"
             " 1);"
             "INSERT INTO AgLibraryKeywordImage VALUES (1, 100, 4);"
             "INSERT INTO AgLibraryKeywordImage VALUES (2, 100, 5);"
             "INSERT INTO AgLibraryKeywordImage VALUES (3, 101, 5);"
             "INSERT INTO AgLibraryIPTC VALUES (1, 'Sunset on the beach', NULL, 100);"
             "INSERT INTO Adobe_AdditionalMetadata VALUES (1, 'M1', 100, '<x:xmpmeta><dc:title>"
             "<rdf:Alt><rdf:li xml:lang=\"x-default\">Nice &amp; sunny</rdf:li></rdf:Alt>"
             "</dc:title></x:xmpmeta>');"
             "INSERT INTO AgLibraryCollection VALUES (1, 'com.adobe.ag.library.group', '/1',"
             " NULL, 'Travel', NULL, 0);"
             "INSERT INTO AgLibraryCollection VALUES (2, 'com.adobe.ag.library.collection',"
             " '/1/2', NULL, 'France 2020', 1, 0);"
             "INSERT INTO AgLibraryCollection VALUES (3, 'com.adobe.ag.library.collection',"
             " '/3', NULL, 'quick collection', NULL, 1);"
             "INSERT INTO AgLibraryCollectionImage VALUES (1, 2, 100, 0, 'z');"
             "INSERT INTO AgLibraryCollectionImage VALUES (2, 3, 100, 0, 'z');"
             "INSERT INTO AgLibraryCollectionImage VALUES (3, 2, 102, 0, 'z');",
             root);
    fx_exec_sql(db, sql);
    sqlite3_close(db);
}

static void test_import_synthetic(void)
{
    char root[1024], dir[1200], lrcat[1100], beach[1300], moved[1300], elsewhere[1300];
    snprintf(root, sizeof(root), "%s/lrroot", tmp_dir);
    snprintf(dir, sizeof(dir), "%s/2020/trip", root);
    snprintf(lrcat, sizeof(lrcat), "%s/synthetic.lrcat", tmp_dir);
    snprintf(beach, sizeof(beach), "%s/beach.jpg", dir);
    snprintf(moved, sizeof(moved), "%s/moved.jpg", dir);
    snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere.jpg", tmp_dir);
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, sb_mkdirs(dir, &err));
    unlink(lrcat);
    make_synthetic(lrcat, root);
    size_t jl = 0, jl2 = 0;
    unsigned char *j = make_jpeg(40, 20, &jl), *j2 = make_jpeg(48, 24, &jl2);
    CHECK_EQ_INT(0, fx_write_file(beach, j, jl));
    CHECK_EQ_INT(0, fx_write_file(moved, j2, jl2));
    CHECK_EQ_INT(0, fx_write_file(elsewhere, j2, jl2));

    char dbpath[1100];
    snprintf(dbpath, sizeof(dbpath), "%s/import.db", tmp_dir);
    unlink(dbpath);
    struct catalog *cat = NULL;
    CHECK_EQ_INT(SB_OK, catalog_open(dbpath, false, &cat, &err));
    if (!cat)
        return;
    int64_t p_beach = fx_add_photo_file(cat, beach);
    int64_t p_moved = fx_add_photo_file(cat, elsewhere); /* indexed under another path */
    CHECK(p_beach > 0 && p_moved > 0);

    struct stat before, after;
    CHECK_EQ_INT(0, stat(lrcat, &before));
    struct lr_import_params ip;
    memset(&ip, 0, sizeof(ip));
    ip.lrcat = lrcat;
    struct lr_import_stats st;
    for (int round = 0; round < 2; round++) { /* a re-import replaces, never duplicates */
        CHECK_EQ_INT(SB_OK, lr_catalog_import(cat, &ip, &st, &err));
        CHECK_EQ_INT(4, st.images);
        CHECK_EQ_INT(3, st.matched); /* beach, its virtual copy, moved (by content) */
        CHECK_EQ_INT(1, st.matched_by_hash);
        CHECK_EQ_INT(1, st.unmatched);
        CHECK_EQ_INT(2, st.keywords);
        CHECK_EQ_INT(2, st.collections);
    }
    struct fx_collect t;
    memset(&t, 0, sizeof(t));
    CHECK_EQ_INT(SB_OK, catalog_photo_tags(cat, p_beach, fx_collect_pair, &t, &err));
    CHECK(strstr(t.all, "Nice(lightroom);") != NULL);
    CHECK(strstr(t.all, "Places|France|Nice(lightroom);") != NULL);
    CHECK(strstr(t.all, "beach(lightroom);") != NULL);
    CHECK(strstr(t.all, "Copy") == NULL);
    memset(&t, 0, sizeof(t));
    CHECK_EQ_INT(SB_OK, catalog_photo_albums(cat, p_beach, fx_collect_pair, &t, &err));
    CHECK_EQ_STR("Travel/France 2020(lightroom);", t.all);
    memset(&t, 0, sizeof(t));
    CHECK_EQ_INT(SB_OK, catalog_photo_albums(cat, p_moved, fx_collect_pair, &t, &err));
    CHECK_EQ_STR("Travel/France 2020(lightroom);", t.all);
    char *text = NULL;
    CHECK_EQ_INT(SB_OK, catalog_text_get(cat, p_beach, "lightroom:caption", &text, NULL, &err));
    CHECK_EQ_STR("Sunset on the beach", text);
    free(text);
    text = NULL;
    CHECK_EQ_INT(SB_OK, catalog_text_get(cat, p_beach, "lightroom:title", &text, NULL, &err));
    CHECK_EQ_STR("Nice & sunny", text);
    free(text);

    /* ratings, picks, labels: read back with SQLite */
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    CHECK_EQ_INT(SQLITE_OK, sqlite3_open_v2(dbpath, &db, SQLITE_OPEN_READONLY, NULL));
    CHECK_EQ_INT(SQLITE_OK,
                 sqlite3_prepare_v2(db,
                                    "SELECT lr_id, coalesce(photo_id, 0), virtual_copy,"
                                    " coalesce(rating, -1), pick, coalesce(color_label, '')"
                                    " FROM lr_images ORDER BY lr_id",
                                    -1, &q, NULL));
    static const struct {
        int64_t id;
        int vc, rating, pick;
        const char *label;
    } want[] = { { 100, 0, 4, 1, "Red" },
                 { 101, 1, 1, 0, "" },
                 { 102, 0, -1, -1, "Green" },
                 { 103, 0, -1, 0, "" } };
    for (size_t i = 0; i < 4; i++) {
        CHECK_EQ_INT(SQLITE_ROW, sqlite3_step(q));
        CHECK_EQ_INT(want[i].id, sqlite3_column_int64(q, 0));
        CHECK_EQ_INT(want[i].vc, sqlite3_column_int(q, 2));
        CHECK_EQ_INT(want[i].rating, sqlite3_column_int(q, 3));
        CHECK_EQ_INT(want[i].pick, sqlite3_column_int(q, 4));
        CHECK_EQ_STR(want[i].label, (const char *)sqlite3_column_text(q, 5));
    }
    CHECK_EQ_INT(SQLITE_DONE, sqlite3_step(q));
    sqlite3_finalize(q);
    sqlite3_close(db);
    CHECK_EQ_INT(0, stat(lrcat, &after));
    CHECK_EQ_INT(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
    CHECK_EQ_INT(before.st_size, after.st_size);

    /* --map: the same catalog seen from another mount point */
    char from[1100];
    snprintf(from, sizeof(from), "/Volumes/Photos");
    const char *mf[1] = { from }, *mt[1] = { root };
    char lrcat2[1200];
    snprintf(lrcat2, sizeof(lrcat2), "%s/mapped.lrcat", tmp_dir);
    unlink(lrcat2);
    make_synthetic(lrcat2, "/Volumes/Photos");
    ip.lrcat = lrcat2;
    ip.map_from = mf;
    ip.map_to = mt;
    ip.nmap = 1;
    CHECK_EQ_INT(SB_OK, lr_catalog_import(cat, &ip, &st, &err));
    CHECK_EQ_INT(3, st.matched);

    /* not a catalog; no such file */
    ip.lrcat = dbpath; /* a SQLite file without Adobe_images */
    ip.nmap = 0;
    CHECK_EQ_INT(SB_EFORMAT, lr_catalog_import(cat, &ip, &st, &err));
    ip.lrcat = "/nonexistent.lrcat";
    CHECK_EQ_INT(SB_ENOENT, lr_catalog_import(cat, &ip, &st, &err));

    /* the real Lightroom 5 catalog: its originals are not here, so nothing matches */
    char real[1024];
    data_path(real, sizeof(real), LR5_CATALOG);
    ip.lrcat = real;
    CHECK_EQ_INT(SB_OK, lr_catalog_import(cat, &ip, &st, &err));
    CHECK_EQ_INT(3, st.images);
    CHECK_EQ_INT(0, st.matched);
    CHECK_EQ_INT(3, st.unmatched);

    /* rescue with a synthetic previews.db: orientation BC turns the preview upright, the
     * virtual copy is kept apart */
    char lrdata[1200], sub[1300], prev1[1400], prev2[1400], out[1200];
    snprintf(lrdata, sizeof(lrdata), "%s/synthetic Previews.lrdata", tmp_dir);
    snprintf(sub, sizeof(sub), "%s/A/AAAA", lrdata);
    CHECK_EQ_INT(SB_OK, sb_mkdirs(sub, &err));
    snprintf(prev1, sizeof(prev1), "%s/AAAA0000-0000-0000-0000-000000000001-d1.lrprev", sub);
    snprintf(prev2, sizeof(prev2), "%s/AAAA0000-0000-0000-0000-000000000002-d2.lrprev", sub);
    struct sb_buf b;
    sb_buf_init(&b);
    const char *hdr = "pyramid = { colorProfile = \"AdobeRGB\", levels = { { height = 20, width"
                      " = 40, }, }, uuid = \"AAAA0000-0000-0000-0000-000000000001\", }";
    add_section(&b, "header", hdr, strlen(hdr), 0);
    add_section(&b, "level_1", j, jl, 0);
    CHECK_EQ_INT(0, fx_write_file(prev1, b.data, b.len));
    sb_buf_release(&b);
    sb_buf_init(&b);
    add_section(&b, "level_1", j, jl, 0); /* no header: uuid from the file name */
    CHECK_EQ_INT(0, fx_write_file(prev2, b.data, b.len));
    sb_buf_release(&b);
    char pdb[1300];
    snprintf(pdb, sizeof(pdb), "%s/previews.db", lrdata);
    unlink(pdb);
    CHECK_EQ_INT(SQLITE_OK, sqlite3_open(pdb, &db));
    fx_exec_sql(db,
                "CREATE TABLE ImageCacheEntry ( imageId NOT NULL, uuid NOT NULL, digest NOT"
                " NULL, orientation );"
                "INSERT INTO ImageCacheEntry VALUES (100, 'AAAA0000-0000-0000-0000-000000000001',"
                " 'd1', 'BC');"
                "INSERT INTO ImageCacheEntry VALUES (101, 'AAAA0000-0000-0000-0000-000000000002',"
                " 'd2', 'AB');");
    sqlite3_close(db);
    snprintf(out, sizeof(out), "%s/rescued-synthetic", tmp_dir);
    struct lr_previews_params pp = lr_previews_default_params();
    pp.lrdata = lrdata;
    pp.catalog = lrcat;
    pp.out_dir = out;
    struct seen s;
    memset(&s, 0, sizeof(s));
    struct lr_previews_stats ps;
    CHECK_EQ_INT(SB_OK, lr_previews_extract(&pp, on_item, &s, &ps, &err));
    CHECK_EQ_INT(2, ps.written);
    CHECK_EQ_INT(1, ps.virtual_copies);
    char w1[1400], w2[1400];
    snprintf(w1, sizeof(w1), "%s/Pictures/2020/trip/beach.jpg", out);
    snprintf(w2, sizeof(w2), "%s/Pictures/2020/trip/beach-vc101.jpg", out);
    CHECK_EQ_STR(w1, s.out[0]);
    CHECK_EQ_STR(w2, s.out[1]);
    CHECK(!s.vc[0] && s.vc[1]);
    CHECK_EQ_INT(20, s.w[0]); /* rotated 90 degrees */
    CHECK_EQ_INT(40, s.h[0]);
    CHECK_EQ_INT(40, s.w[1]);
    /* the red corner moved to the top right; AdobeRGB -> sRGB made it redder */
    struct image *img = NULL, *orig = NULL;
    struct image_decode_params dp = image_decode_default_params();
    CHECK_EQ_INT(SB_OK, image_decode_file(w1, &dp, &img, NULL, &err));
    CHECK_EQ_INT(SB_OK, image_decode(j, jl, NULL, &dp, &orig, NULL, &err));
    if (img && orig) {
        const unsigned char *tr = img->px + ((size_t)1 * img->w + (img->w - 2)) * 3;
        const unsigned char *o = orig->px + ((size_t)1 * orig->w + 1) * 3;
        CHECK(tr[0] > 200 && tr[1] < 60);
        CHECK(tr[0] >= o[0]);
        CHECK(tr[1] <= o[1]);
    }
    image_free(img);
    image_free(orig);
    free(j);
    free(j2);
    catalog_close(cat);
}

int main(void)
{
    const char *d = getenv("SHOEBOX_TESTDATA");
    const char *t = getenv("SHOEBOX_TMP");
    snprintf(data_dir, sizeof(data_dir), "%s", d ? d : "tests/data");
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/test_interop_lightroom.%d", t ? t : "/tmp",
             (int)getpid());
    struct sb_err err;
    if (sb_mkdirs(tmp_dir, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_real_lrprev();
    test_broken_and_synthetic();
    test_rescue_real();
    test_import_synthetic();
    return check_exit();
}
