/* test_catalog_migrate.c - catalogs written by an older shoebox: a read-only open (search,
 * serve, status) brings them up to date through a brief read-write connection and keeps their
 * rows; when that cannot happen, the open fails with a message that says so. */
#include "check.h"

#include "../src/catalog/schema.sql.h"
#include "shoebox/catalog.h"
#include "shoebox/err.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NMIG ((int)(sizeof(catalog_migrations) / sizeof(catalog_migrations[0])))

/* A catalog as shoebox schema 1 left it, with one cataloged file and its photo. */
static int make_v1(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    int rc = sqlite3_exec(db, catalog_migrations[0], NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(
            db,
            "INSERT INTO photos(id, hash, size, format) VALUES (1, "
            "x'00112233445566778899aabbccddeeff', 5, 'jpeg');"
            "INSERT INTO files(path, size, mtime_ns, ctime_ns, inode, dev, status, photo_id)"
            " VALUES ('/p/a.jpg', 5, 1, 1, 7, 1, 1, 1);"
            "PRAGMA user_version = 1;",
            NULL, NULL, NULL);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

static int user_version(const char *path)
{
    sqlite3 *db = NULL;
    int v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return v;
}

int main(void)
{
    const char *tmp = getenv("SHOEBOX_TMP");
    char dir[512], path[600];
    snprintf(dir, sizeof(dir), "%s/test_catalog_migrate.%d", tmp ? tmp : "/tmp", (int)getpid());
    CHECK_EQ_INT(0, mkdir(dir, 0755));
    snprintf(path, sizeof(path), "%s/old.db", dir);
    CHECK_EQ_INT(0, make_v1(path));
    CHECK_EQ_INT(1, user_version(path));

    /* read-only open upgrades, keeps the rows, and the later tables work */
    struct sb_err err = { 0 };
    struct catalog *cat = NULL;
    CHECK_EQ_INT(SB_OK, catalog_open(path, true, &cat, &err));
    if (!cat) {
        fprintf(stderr, "open: %s\n", err.msg);
        return check_exit();
    }
    struct catalog_status s;
    CHECK_EQ_INT(SB_OK, catalog_status(cat, &s, &err));
    CHECK_EQ_INT(1, s.files);
    CHECK_EQ_INT(1, s.photos);
    int64_t id = 0;
    CHECK_EQ_INT(SB_OK, catalog_photo_by_path(cat, "/p/a.jpg", &id, &err));
    CHECK_EQ_INT(1, id);
    char *text = NULL;
    int rc = catalog_text_get(cat, 1, "ocr", &text, NULL, &err); /* texts: a later migration */
    CHECK_EQ_INT(SB_ENOENT, rc);
    free(text);
    catalog_close(cat);
    CHECK_EQ_INT(NMIG, user_version(path));

    /* opening it again changes nothing */
    CHECK_EQ_INT(SB_OK, catalog_open(path, true, &cat, &err));
    catalog_close(cat);
    CHECK_EQ_INT(NMIG, user_version(path));

    /* an old catalog in a folder nobody may write: a clear error, not "no such table" later
     * (root ignores permissions, so this part runs only for other users) */
    if (geteuid() != 0) {
        char ro_dir[600], ro_path[700];
        snprintf(ro_dir, sizeof(ro_dir), "%s/ro", dir);
        CHECK_EQ_INT(0, mkdir(ro_dir, 0755));
        snprintf(ro_path, sizeof(ro_path), "%s/old.db", ro_dir);
        CHECK_EQ_INT(0, make_v1(ro_path));
        CHECK_EQ_INT(0, chmod(ro_path, 0444));
        CHECK_EQ_INT(0, chmod(ro_dir, 0555));
        cat = NULL;
        CHECK(catalog_open(ro_path, true, &cat, &err) != SB_OK);
        CHECK(cat == NULL);
        CHECK(strstr(err.msg, "older shoebox") != NULL);
        fprintf(stderr, "read-only old catalog: %s\n", err.msg);
        CHECK_EQ_INT(1, user_version(ro_path));
        chmod(ro_dir, 0755);
    } else {
        fprintf(stderr, "running as root: read-only folder case skipped\n");
    }
    return check_exit();
}
