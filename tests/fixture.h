/* fixture.h - helpers the catalog/interop tests share: whole files in and out, SQL that must
 * succeed, photos added to a catalog as the crawler adds them, and a callback that collects
 * (name, source) pairs into one string ("beach(user);sea(xmp);"). Include after check.h. */
#ifndef SHOEBOX_TEST_FIXTURE_H
#define SHOEBOX_TEST_FIXTURE_H

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static inline unsigned char *fx_read_all(const char *path, size_t *len)
{
    unsigned char *buf = NULL;
    struct sb_err err;
    if (sb_read_file(path, (size_t)1 << 28, &buf, len, &err) != SB_OK) {
        fprintf(stderr, "read %s: %s\n", path, err.msg);
        return NULL;
    }
    return buf;
}

static inline int fx_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static inline void fx_exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "sql: %s\n", msg ? msg : "?");
        CHECK(0);
    }
    sqlite3_free(msg);
}

/* Catalogs `path` (stat fields from st) as one file of the photo with content hash `hash`,
 * the way the crawler's hash step does; returns the photo id. */
static inline int64_t fx_add_photo_hash(struct catalog *cat, const char *path,
                                        const unsigned char hash[16], struct catalog_stat st)
{
    struct sb_err err;
    static const char *const stages[] = { NULL };
    struct catalog_file *files = NULL;
    size_t n = 0;
    int64_t id = 0;
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_file_touch(cat, path, &st, &err));
    CHECK_EQ_INT(SB_OK, catalog_files_pending(cat, 10, &files, &n, &err));
    for (size_t i = 0; i < n; i++)
        if (strcmp(files[i].path, path) == 0)
            CHECK_EQ_INT(SB_OK, catalog_file_set_photo(cat, files[i].id, hash, st.size, "jpeg",
                                                       stages, &id, NULL, &err));
    catalog_files_free(files, n);
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    return id;
}

/* Catalogs an existing file under its real xxh3-128 content hash (big-endian, as the
 * catalog stores it). */
static inline int64_t fx_add_photo_file(struct catalog *cat, const char *path)
{
    size_t len = 0;
    unsigned char *buf = fx_read_all(path, &len);
    XXH128_hash_t h = XXH3_128bits(buf, len);
    free(buf);
    unsigned char hash[16];
    for (int i = 0; i < 8; i++) {
        hash[i] = (unsigned char)(h.high64 >> (56 - 8 * i));
        hash[8 + i] = (unsigned char)(h.low64 >> (56 - 8 * i));
    }
    struct catalog_stat st = { (int64_t)len, 1, 1, 1, 1 };
    return fx_add_photo_hash(cat, path, hash, st);
}

struct fx_collect {
    char all[2048];
};

/* A catalog_tag_fn / album callback: appends "a(b);". */
static inline int fx_collect_pair(void *user, const char *a, const char *b, double score)
{
    (void)score;
    struct fx_collect *c = user;
    size_t n = strlen(c->all);
    snprintf(c->all + n, sizeof(c->all) - n, "%s(%s);", a, b);
    return 0;
}

#endif
