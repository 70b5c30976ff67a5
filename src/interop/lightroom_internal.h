/* lightroom_internal.h - what the Lightroom, Takeout and Apple importers share: opening other
 * programs' SQLite databases read-only, path helpers, content hashing. */
#ifndef SHOEBOX_INTEROP_LIGHTROOM_INTERNAL_H
#define SHOEBOX_INTEROP_LIGHTROOM_INTERNAL_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sb_err;
struct catalog;

/* Opens a foreign database strictly read-only: the URI "file:<path>?mode=ro" (percent-encoded),
 * so SQLite never writes, creates or locks it for writing. SB_ENOENT when path is not a file,
 * SB_EFORMAT when it is not SQLite. */
int interop_sqlite_open_ro(const char *path, sqlite3 **out, struct sb_err *err);

/* True when table exists in db; when column is not NULL, also that it has that column. */
bool interop_has_column(sqlite3 *db, const char *table, const char *column);

/* A path component made safe to use as a file name: '/' and NUL-free, never "." or ".."
 * (those become "_"). Writes into out (cap bytes, truncated). */
void interop_safe_component(const char *in, size_t n, char *out, size_t cap);

/* xxh3-128 of a file's bytes, big-endian, as crawl_hash_file() computes the photo identity. */
int interop_hash_file(const char *path, unsigned char hash[16], struct sb_err *err);

/* Finds the shoebox photo of the file at path: by path (as given, then its realpath), else by
 * the content of that file. *photo is 0 when none (not an error); *by_hash tells how. Only
 * catalog failures are errors. */
int interop_match_photo(struct catalog *cat, const char *path, int64_t *photo, bool *by_hash,
                        struct sb_err *err);

#endif
