/* internal.h - what the catalog's source files share. */
#ifndef SHOEBOX_CATALOG_INTERNAL_H
#define SHOEBOX_CATALOG_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

struct sb_err;

struct catalog {
    sqlite3 *db;
    char *thumb_dir;
    bool in_tx;
};

/* Fills err with "catalog: <what>: <sqlite message>"; returns SB_EDB. */
int catalog_db_fail(struct catalog *cat, struct sb_err *err, const char *what);
/* Runs SQL without results. */
int catalog_exec(struct catalog *cat, const char *sql, struct sb_err *err);
/* Prepares sql; NULL (err filled) on failure. */
sqlite3_stmt *catalog_prep(struct catalog *cat, const char *sql, struct sb_err *err);
/* Steps a statement that returns no rows, then finalizes it. */
int catalog_step_done(struct catalog *cat, sqlite3_stmt *st, const char *what, struct sb_err *err);

/* Binds parameters i and i+1 to the half-open byte range of paths under folder prefix:
 * [prefix "/", prefix "0") ('0' follows '/'); "" or "/" match everything. lo and hi are
 * caller buffers of cap >= strlen(prefix) + 2 bytes that must outlive the statement. */
void catalog_bind_prefix(sqlite3_stmt *st, int i, const char *prefix, char *lo, char *hi,
                         size_t cap);

#endif
