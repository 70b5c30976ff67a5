/* apple.h - import an Apple Photos library (.photoslibrary) read-only. Part of sb_interop.
 *
 * From database/Photos.sqlite (Core Data; table and join-table names vary by macOS version:
 * ZASSET since macOS 11, ZGENERICASSET on 10.15; the keyword and album join tables are found
 * by their columns): capture dates, favourites, titles, descriptions, keywords, albums and
 * GPS of the originals found on disk (originals/<X>/<UUID>.<ext> since macOS 11, Masters/ on
 * 10.15). From database/search/psi.sqlite (when present): Apple's scene labels (tags of
 * source "apple") and, on macOS 13+, the text it read in the photo (texts "apple:ocr").
 * Layouts after osxphotos (github.com/RhetTbull/osxphotos, _constants.py, photosdb.py,
 * _photosdb_process_searchinfo.py). Both databases are opened with SQLite's
 * "file:...?mode=ro" URI: never written, never locked for writing. */
#ifndef SHOEBOX_APPLE_H
#define SHOEBOX_APPLE_H

#include <stdbool.h>
#include <stdint.h>

struct sb_err;
struct catalog;

struct apple_import_params {
    const char *library; /* the .photoslibrary folder */
};

struct apple_import_stats {
    int64_t assets;          /* ZASSET rows (photos and videos, not in the trash) */
    int64_t on_disk;         /* ... whose original is in the library folder */
    int64_t matched;         /* found in the shoebox catalog */
    int64_t matched_by_hash; /* ... of those, by content (indexed under another path) */
    int64_t unmatched;
    int64_t keywords, albums, labels, texts; /* rows stored */
    int64_t dates;                           /* capture times filled in (photos without EXIF) */
    int photos_version;                      /* 5 (10.15), 6 (11-12), 8 (13+) */
    bool have_search;                        /* psi.sqlite was read */
    char search_error[256]; /* why psi.sqlite was skipped ("" when it was read or absent) */
};

/* Imports the library into cat in one transaction; re-importing the same library replaces
 * what it stored before. Matched photos get: tags (keywords and labels, source "apple"),
 * albums ("Folder/Album"), texts "apple:title", "apple:description", "apple:ocr", the GPS
 * position when EXIF has none, and the capture time when the photo has none from EXIF or
 * Takeout (time_source "apple"). Every asset gets an apple_assets row. A missing or broken
 * psi.sqlite is not an error (st->search_error says why). Errors: SB_ENOENT (no such folder,
 * or no database/Photos.sqlite in it), SB_EFORMAT (not SQLite, or not a Photos database),
 * SB_EDB. */
int apple_import(struct catalog *cat, const struct apple_import_params *p,
                 struct apple_import_stats *st, struct sb_err *err);

/* psi.sqlite stores an asset's UUID as two signed 64-bit integers (the UUID's 16 bytes as two
 * little-endian halves). Writes the upper-case "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX" form. */
void apple_uuid_from_ints(int64_t uuid_0, int64_t uuid_1, char out[37]);

/* Seconds since 2001-01-01T00:00:00Z (Core Data's reference date) as Unix time. */
int64_t apple_time_to_unix(double core_data_seconds);

#endif
