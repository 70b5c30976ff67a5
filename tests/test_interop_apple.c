/* test_interop_apple.c - Apple Photos import: small Photos.sqlite and psi.sqlite databases
 * built here with the real table and column names of macOS 12 (Photos 7) and macOS 13-14
 * (Photos 8/9), matched by path and by content; broken, missing and alien databases; and the
 * library left byte-for-byte unchanged. */
#include "check.h"
#include "fixture.h"

#include "shoebox/apple.h"
#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

static char tmp_dir[512];

static void test_helpers(void)
{
    char u[37];
    /* UUID bytes 00 11 22 ... FF as two little-endian signed halves (osxphotos ints_to_uuid) */
    apple_uuid_from_ints((int64_t)0x7766554433221100LL, (int64_t)0xFFEEDDCCBBAA9988ULL, u);
    CHECK_EQ_STR("00112233-4455-6677-8899-AABBCCDDEEFF", u);
    apple_uuid_from_ints(0, -1, u);
    CHECK_EQ_STR("00000000-0000-0000-FFFF-FFFFFFFFFFFF", u);
    CHECK_EQ_INT(978307200, apple_time_to_unix(0.0));
    CHECK_EQ_INT(978307200 + 700000000, apple_time_to_unix(700000000.75));
}

/* ---- building a library -------------------------------------------------------------------- */

/* The UUIDs of the four assets, as psi.sqlite stores them and as ZUUID spells them. */
static const int64_t uuid_ints[4][2] = {
    { 0x1111111111111111LL, 0x2222222222222222LL },
    { 0x3333333333333333LL, -0x4444444444444444LL },
    { 0x5555555555555555LL, 0x6666666666666666LL },
    { 0x7777777777777777LL, 0x0808080808080808LL },
};
static char uuids[4][37];

#define DATE_A     700000000.0 /* Core Data seconds */
#define TZ_A       3600
#define LAT_A      48.8584
#define LON_A      2.2945
#define PHOTOS13   8
#define PHOTOS12   7
#define CAT_LABEL8 1500
#define CAT_TEXT8  1203
#define CAT_LABEL7 2024

/* A library at lib in the layout of Photos version (7: macOS 12, 8: macOS 13-14). Assets:
 * 0 on disk (indexed by path), 1 on disk (indexed elsewhere: by content), 2 iCloud-only (not
 * on disk), 3 in the trash. */
static void make_library(const char *lib, int version)
{
    char path[1200], sql[4096];
    struct sb_err err;
    snprintf(path, sizeof(path), "%s/database/search", lib);
    CHECK_EQ_INT(SB_OK, sb_mkdirs(path, &err));
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/originals/%c", lib, uuids[i][0]);
        CHECK_EQ_INT(SB_OK, sb_mkdirs(path, &err));
        snprintf(path, sizeof(path), "%s/originals/%c/%s.jpeg", lib, uuids[i][0], uuids[i]);
        char body[64];
        int n = snprintf(body, sizeof(body), "photo %d of the library", i);
        CHECK_EQ_INT(0, fx_write_file(path, body, (size_t)n));
    }

    snprintf(path, sizeof(path), "%s/database/Photos.sqlite", lib);
    unlink(path);
    sqlite3 *db = NULL;
    CHECK_EQ_INT(SQLITE_OK, sqlite3_open(path, &db));
    bool v8 = version >= 8;
    /* the Core Data columns importers read, with their real names (osxphotos photosdb.py) */
    snprintf(
        sql, sizeof(sql),
        "CREATE TABLE ZASSET (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, Z_OPT INTEGER,"
        " %s ZFAVORITE INTEGER, ZHIDDEN INTEGER, ZKIND INTEGER, ZTRASHEDSTATE INTEGER,"
        " ZDATECREATED TIMESTAMP, ZLATITUDE FLOAT, ZLONGITUDE FLOAT, ZDIRECTORY VARCHAR,"
        " ZFILENAME VARCHAR, ZUUID VARCHAR);"
        "CREATE TABLE ZADDITIONALASSETATTRIBUTES (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER,"
        " ZASSET INTEGER, ZASSETDESCRIPTION INTEGER, ZTIMEZONEOFFSET INTEGER,"
        " ZORIGINALFILENAME VARCHAR, ZTITLE VARCHAR);"
        "CREATE TABLE ZASSETDESCRIPTION (Z_PK INTEGER PRIMARY KEY, ZASSETATTRIBUTES INTEGER,"
        " ZLONGDESCRIPTION VARCHAR);"
        "CREATE TABLE ZKEYWORD (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, ZTITLE VARCHAR);"
        "CREATE TABLE Z_1KEYWORDS (Z_1ASSETATTRIBUTES INTEGER, %s INTEGER,"
        " PRIMARY KEY (Z_1ASSETATTRIBUTES, %s));"
        "CREATE TABLE ZGENERICALBUM (Z_PK INTEGER PRIMARY KEY, Z_ENT INTEGER, ZKIND INTEGER,"
        " ZTRASHEDSTATE INTEGER, ZPARENTFOLDER INTEGER, ZTITLE VARCHAR);"
        "CREATE TABLE %s (%s INTEGER, Z_3ASSETS INTEGER, Z_FOK_3ASSETS INTEGER,"
        " PRIMARY KEY (%s, Z_3ASSETS));"
        "CREATE TABLE Z_METADATA (Z_VERSION INTEGER PRIMARY KEY, Z_UUID VARCHAR, Z_PLIST BLOB);",
        v8 ? "ZACTIVELIBRARYSCOPEPARTICIPATIONSTATE INTEGER," : "",
        v8 ? "Z_40KEYWORDS" : "Z_38KEYWORDS", v8 ? "Z_40KEYWORDS" : "Z_38KEYWORDS",
        v8 ? "Z_28ASSETS" : "Z_27ASSETS", v8 ? "Z_28ALBUMS" : "Z_27ALBUMS",
        v8 ? "Z_28ALBUMS" : "Z_27ALBUMS");
    fx_exec_sql(db, sql);
    for (int i = 0; i < 4; i++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO ZASSET(Z_PK, Z_ENT, ZFAVORITE, ZHIDDEN, ZKIND, ZTRASHEDSTATE,"
                 " ZDATECREATED, ZLATITUDE, ZLONGITUDE, ZDIRECTORY, ZFILENAME, ZUUID)"
                 " VALUES (%d, 3, %d, 0, 0, %d, %s, %s, %s, '%c', '%s.jpeg', '%s')",
                 i + 1, i == 0, i == 3, i == 0 ? "700000000.0" : "600000000.0",
                 i == 0 ? "48.8584" : "-180.0", i == 0 ? "2.2945" : "-180.0", uuids[i][0], uuids[i],
                 uuids[i]);
        fx_exec_sql(db, sql);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO ZADDITIONALASSETATTRIBUTES(Z_PK, ZASSET, ZASSETDESCRIPTION,"
                 " ZTIMEZONEOFFSET, ZORIGINALFILENAME, ZTITLE) VALUES (%d, %d, %s, %d,"
                 " 'IMG_%d.JPG', %s)",
                 10 + i, i + 1, i == 0 ? "20" : "NULL", i == 0 ? TZ_A : 0, i,
                 i == 0 ? "'Eiffel'" : "NULL");
        fx_exec_sql(db, sql);
    }
    snprintf(sql, sizeof(sql),
             "INSERT INTO ZASSETDESCRIPTION VALUES (20, 10, 'Paris trip with the kids');"
             "INSERT INTO ZKEYWORD VALUES (1, 40, 'paris'), (2, 40, 'tower'), (3, 40, 'unused');"
             "INSERT INTO Z_1KEYWORDS VALUES (10, 1), (10, 2), (11, 1);"
             /* root folder, a user folder, albums in and outside it, a trashed album, a
              * shared album (not a user album) */
             "INSERT INTO ZGENERICALBUM VALUES (1, 0, 3999, 0, NULL, NULL),"
             " (2, 0, 4000, 0, 1, 'Trips'), (3, 0, 2, 0, 2, 'France'), (4, 0, 2, 0, 1, 'Best'),"
             " (5, 0, 2, 1, 1, 'Old'), (6, 0, 1505, 0, 1, 'Shared with Bob');"
             "INSERT INTO %s VALUES (3, 1, 1), (4, 1, 2), (5, 1, 3), (6, 1, 4), (4, 2, 1);",
             v8 ? "Z_28ASSETS" : "Z_27ASSETS");
    fx_exec_sql(db, sql);
    CHECK_EQ_INT(SQLITE_OK, sqlite3_close(db));

    /* psi.sqlite: groups / assets / ga (osxphotos _photosdb_process_searchinfo.py) */
    snprintf(path, sizeof(path), "%s/database/search/psi.sqlite", lib);
    unlink(path);
    CHECK_EQ_INT(SQLITE_OK, sqlite3_open(path, &db));
    fx_exec_sql(db, "CREATE TABLE groups (rowid INTEGER PRIMARY KEY, category INT, owning_groupid"
                    " INT, content_string TEXT, normalized_string TEXT, lookup_identifier TEXT);"
                    "CREATE TABLE assets (rowid INTEGER PRIMARY KEY, uuid_0 INT, uuid_1 INT);"
                    "CREATE TABLE ga (groupid INT, assetid INT);");
    int label = v8 ? CAT_LABEL8 : CAT_LABEL7;
    snprintf(sql, sizeof(sql),
             "INSERT INTO groups VALUES (1, %d, NULL, 'Sky', 'sky', ''),"
             " (2, %d, NULL, 'Building', 'building', ''), (3, 12, NULL, 'France', 'france', ''),"
             " (4, %d, NULL, 'LIBERTÉ', 'liberte', ''), (5, %d, NULL, 'PARIS 2023', 'paris', ''),"
             " (6, %d, NULL, 'Cat', 'cat', '');"
             "INSERT INTO ga VALUES (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (1, 2), (6, 9);",
             label, label, CAT_TEXT8, CAT_TEXT8, v8 ? CAT_LABEL7 : CAT_LABEL8);
    fx_exec_sql(db, sql);
    for (int i = 0; i < 4; i++) {
        snprintf(sql, sizeof(sql), "INSERT INTO assets VALUES (%d, %lld, %lld)", i + 1,
                 (long long)uuid_ints[i][0], (long long)uuid_ints[i][1]);
        fx_exec_sql(db, sql);
    }
    CHECK_EQ_INT(SQLITE_OK, sqlite3_close(db));
}

/* ---- checks -------------------------------------------------------------------------------- */

static int collect_text(void *user, const char *source, const char *text, double confidence)
{
    (void)confidence;
    struct fx_collect *c = user;
    size_t n = strlen(c->all);
    snprintf(c->all + n, sizeof(c->all) - n, "%s=%s;", source, text);
    return 0;
}

struct snapshot {
    unsigned char *bytes;
    size_t len;
    struct stat st;
};

static void snap(const char *path, struct snapshot *s)
{
    s->bytes = fx_read_all(path, &s->len);
    CHECK_EQ_INT(0, stat(path, &s->st));
}

static void snap_same(const char *path, struct snapshot *s)
{
    struct snapshot now;
    snap(path, &now);
    CHECK(s->bytes && now.bytes && s->len == now.len && memcmp(s->bytes, now.bytes, s->len) == 0);
    CHECK_EQ_INT(s->st.st_mtim.tv_sec, now.st.st_mtim.tv_sec);
    CHECK_EQ_INT(s->st.st_mtim.tv_nsec, now.st.st_mtim.tv_nsec);
    char side[1300];
    snprintf(side, sizeof(side), "%s-journal", path);
    CHECK(access(side, F_OK) != 0);
    snprintf(side, sizeof(side), "%s-wal", path);
    CHECK(access(side, F_OK) != 0);
    free(now.bytes);
    free(s->bytes);
}

static void test_import(int version)
{
    char lib[700], photo0[1400], elsewhere[1400], dbpath[800], pdb[900], psi[900];
    snprintf(lib, sizeof(lib), "%s/Photos Library %d.photoslibrary", tmp_dir, version);
    make_library(lib, version);
    snprintf(photo0, sizeof(photo0), "%s/originals/%c/%s.jpeg", lib, uuids[0][0], uuids[0]);
    snprintf(elsewhere, sizeof(elsewhere), "%s/copy-of-1-%d.jpeg", tmp_dir, version);
    char src1[1400];
    snprintf(src1, sizeof(src1), "%s/originals/%c/%s.jpeg", lib, uuids[1][0], uuids[1]);
    size_t l1 = 0;
    unsigned char *b1 = fx_read_all(src1, &l1);
    CHECK(b1 && fx_write_file(elsewhere, b1, l1) == 0);
    free(b1);
    snprintf(dbpath, sizeof(dbpath), "%s/apple%d.db", tmp_dir, version);
    unlink(dbpath);
    snprintf(pdb, sizeof(pdb), "%s/database/Photos.sqlite", lib);
    snprintf(psi, sizeof(psi), "%s/database/search/psi.sqlite", lib);

    struct sb_err err;
    struct catalog *cat = NULL;
    CHECK_EQ_INT(SB_OK, catalog_open(dbpath, false, &cat, &err));
    if (!cat)
        return;
    int64_t pa = fx_add_photo_file(cat, photo0), pb = fx_add_photo_file(cat, elsewhere);
    CHECK(pa > 0 && pb > 0);

    struct snapshot s_db, s_psi;
    snap(pdb, &s_db);
    snap(psi, &s_psi);
    struct apple_import_params p = { lib };
    struct apple_import_stats st;
    for (int round = 0; round < 2; round++) { /* a re-import replaces, never piles up */
        int rc = apple_import(cat, &p, &st, &err);
        CHECK_EQ_INT(SB_OK, rc);
        if (rc)
            fprintf(stderr, "apple_import: %s\n", err.msg);
        CHECK_EQ_INT(version >= 8 ? 8 : 6, st.photos_version);
        CHECK_EQ_INT(3, st.assets); /* the trashed one is left out */
        CHECK_EQ_INT(2, st.on_disk);
        CHECK_EQ_INT(2, st.matched);
        CHECK_EQ_INT(1, st.matched_by_hash);
        CHECK_EQ_INT(1, st.unmatched);
        CHECK_EQ_INT(3, st.keywords);
        CHECK_EQ_INT(3, st.albums);
        CHECK_EQ_INT(3, st.labels); /* Sky and Building for 0, Sky for 1 */
        CHECK(st.have_search);
        CHECK_EQ_STR("", st.search_error);
    }

    struct fx_collect c = { "" };
    CHECK_EQ_INT(SB_OK, catalog_photo_tags(cat, pa, fx_collect_pair, &c, &err));
    CHECK_EQ_STR("Building(apple);paris(apple);Sky(apple);tower(apple);", c.all);
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(SB_OK, catalog_photo_tags(cat, pb, fx_collect_pair, &c, &err));
    CHECK_EQ_STR("paris(apple);Sky(apple);", c.all);
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(SB_OK, catalog_photo_albums(cat, pa, fx_collect_pair, &c, &err));
    CHECK_EQ_STR("Best(apple);Trips/France(apple);", c.all);
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(SB_OK, catalog_photo_albums(cat, pb, fx_collect_pair, &c, &err));
    CHECK_EQ_STR("Best(apple);", c.all);
    memset(&c, 0, sizeof(c));
    CHECK_EQ_INT(SB_OK, catalog_photo_texts(cat, pa, collect_text, &c, &err));
    if (version >= 8)
        CHECK_EQ_STR("apple:description=Paris trip with the kids;apple:ocr=LIBERTÉ\nPARIS 2023;"
                     "apple:title=Eiffel;",
                     c.all);
    else /* no detected text before macOS 13 */
        CHECK_EQ_STR("apple:description=Paris trip with the kids;apple:title=Eiffel;", c.all);

    /* full-text search reaches Apple's OCR (diacritics folded) and titles */
    struct catalog_text_hit *hits = NULL;
    size_t nh = 0;
    CHECK_EQ_INT(SB_OK, catalog_text_search(cat, "liberte", true, NULL, 10, &hits, &nh, &err));
    CHECK_EQ_INT(version >= 8 ? 1 : 0, nh);
    free(hits);
    hits = NULL;
    CHECK_EQ_INT(SB_OK, catalog_text_search(cat, "eiffel", true, NULL, 10, &hits, &nh, &err));
    CHECK(nh == 1 && hits[0].photo_id == pa);
    free(hits);

    /* GPS and capture time filled for the photo that had none; -180,-180 is no position */
    struct catalog_photo ph;
    CHECK_EQ_INT(SB_OK, catalog_photo_get(cat, pa, &ph, &err));
    CHECK_NEAR(LAT_A, ph.gps_lat, 1e-9);
    CHECK_NEAR(LON_A, ph.gps_lon, 1e-9);
    time_t t = (time_t)(apple_time_to_unix(DATE_A) + TZ_A);
    struct tm tm;
    char want[32];
    gmtime_r(&t, &tm);
    strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
    CHECK_EQ_STR(want, ph.taken_at ? ph.taken_at : "");
    CHECK_EQ_STR("+01:00", ph.tz_offset ? ph.tz_offset : "");
    CHECK_EQ_STR("apple", ph.time_source ? ph.time_source : "");
    CHECK_EQ_INT(apple_time_to_unix(DATE_A), ph.taken_unix);
    catalog_photo_release(&ph);
    CHECK_EQ_INT(SB_OK, catalog_photo_get(cat, pb, &ph, &err));
    CHECK(isnan(ph.gps_lat));
    catalog_photo_release(&ph);

    /* the library is untouched: same bytes, same mtime, no journal or WAL left */
    snap_same(pdb, &s_db);
    snap_same(psi, &s_psi);
    catalog_close(cat);
}

static void test_errors(void)
{
    char lib[700], path[900], dbpath[800];
    struct sb_err err;
    snprintf(dbpath, sizeof(dbpath), "%s/errors.db", tmp_dir);
    struct catalog *cat = NULL;
    CHECK_EQ_INT(SB_OK, catalog_open(dbpath, false, &cat, &err));
    if (!cat)
        return;
    struct apple_import_params p = { "/nonexistent/x.photoslibrary" };
    struct apple_import_stats st;
    CHECK_EQ_INT(SB_ENOENT, apple_import(cat, &p, &st, &err));

    /* a folder without database/Photos.sqlite */
    snprintf(lib, sizeof(lib), "%s/Empty.photoslibrary", tmp_dir);
    CHECK_EQ_INT(SB_OK, sb_mkdirs(lib, &err));
    p.library = lib;
    CHECK_EQ_INT(SB_ENOENT, apple_import(cat, &p, &st, &err));
    CHECK(strstr(err.msg, "no database/Photos.sqlite") != NULL);

    /* a file, not a folder */
    snprintf(path, sizeof(path), "%s/file.photoslibrary", tmp_dir);
    CHECK_EQ_INT(0, fx_write_file(path, "x", 1));
    p.library = path;
    CHECK_EQ_INT(SB_EINVAL, apple_import(cat, &p, &st, &err));

    /* Photos.sqlite that is not SQLite */
    snprintf(lib, sizeof(lib), "%s/Garbage.photoslibrary", tmp_dir);
    snprintf(path, sizeof(path), "%s/database", lib);
    CHECK_EQ_INT(SB_OK, sb_mkdirs(path, &err));
    snprintf(path, sizeof(path), "%s/database/Photos.sqlite", lib);
    static const char junk[] = "this is not a database, just some bytes that go on and on.....";
    CHECK_EQ_INT(0, fx_write_file(path, junk, sizeof(junk)));
    p.library = lib;
    CHECK_EQ_INT(SB_EFORMAT, apple_import(cat, &p, &st, &err));
    CHECK(strstr(err.msg, "Photos.sqlite") != NULL);

    /* an SQLite database of something else */
    snprintf(lib, sizeof(lib), "%s/Alien.photoslibrary", tmp_dir);
    snprintf(path, sizeof(path), "%s/database", lib);
    CHECK_EQ_INT(SB_OK, sb_mkdirs(path, &err));
    snprintf(path, sizeof(path), "%s/database/Photos.sqlite", lib);
    sqlite3 *db = NULL;
    CHECK_EQ_INT(SQLITE_OK, sqlite3_open(path, &db));
    fx_exec_sql(db, "CREATE TABLE Adobe_images (id_local INTEGER PRIMARY KEY, rootFile INTEGER)");
    sqlite3_close(db);
    CHECK_EQ_INT(SB_EFORMAT, apple_import(cat, &p, &st, &err));
    CHECK(strstr(err.msg, "not an Apple Photos database") != NULL);

    /* a broken psi.sqlite: the rest is imported, the search index is skipped and said why */
    snprintf(lib, sizeof(lib), "%s/BrokenSearch.photoslibrary", tmp_dir);
    make_library(lib, PHOTOS13);
    snprintf(path, sizeof(path), "%s/database/search/psi.sqlite", lib);
    CHECK_EQ_INT(0, fx_write_file(path, junk, sizeof(junk)));
    p.library = lib;
    CHECK_EQ_INT(SB_OK, apple_import(cat, &p, &st, &err));
    CHECK(!st.have_search);
    CHECK(strstr(st.search_error, "psi.sqlite") != NULL);
    CHECK_EQ_INT(3, st.assets);
    /* and a missing one is no error at all */
    unlink(path);
    CHECK_EQ_INT(SB_OK, apple_import(cat, &p, &st, &err));
    CHECK(!st.have_search);
    CHECK_EQ_STR("", st.search_error);
    catalog_close(cat);
}

int main(void)
{
    const char *t = getenv("SHOEBOX_TMP");
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/test_interop_apple.%d", t ? t : "/tmp", (int)getpid());
    struct sb_err err;
    if (sb_mkdirs(tmp_dir, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    for (int i = 0; i < 4; i++)
        apple_uuid_from_ints(uuid_ints[i][0], uuid_ints[i][1], uuids[i]);
    test_helpers();
    test_import(PHOTOS13);
    test_import(PHOTOS12);
    test_errors();
    return check_exit();
}
