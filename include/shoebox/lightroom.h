/* lightroom.h - Lightroom Classic: preview files (.lrprev), preview rescue, catalog import.
 *
 * Everything here reads the user's Lightroom files read-only: catalogs and previews.db are
 * opened with SQLite's "file:...?mode=ro" URI (never locked for writing, never modified), and
 * .lrprev files with plain reads. Part of the interop module (sb_interop); the format notes
 * are in docs beside the parser (src/interop/lrprev.c). */
#ifndef SHOEBOX_LIGHTROOM_H
#define SHOEBOX_LIGHTROOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sb_err;
struct sb_progress;
struct catalog;

/* ---- one .lrprev file ---------------------------------------------------------------------- */

#define LRPREV_MAX_LEVELS 16

struct lrprev_level {
    int level;                 /* K of the section "level_K" */
    int width, height;         /* from the header's levels table (0 when it does not say) */
    const unsigned char *jpeg; /* borrowed from the parsed buffer: FF D8 ... */
    size_t len;
};

struct lrprev {
    char uuid[64], digest[64]; /* "" when the header does not say */
    char color_profile[32];    /* "AdobeRGB", "sRGB", "DisplayP3", ... or "" */
    char quality[32];          /* "standard", "final", ... or "" */
    int cropped_width, cropped_height, format_version;
    int nlevels;
    struct lrprev_level levels[LRPREV_MAX_LEVELS]; /* in file order: smallest first */
    bool truncated; /* the last section was cut short (levels before it are whole) */
};

/* Parses the sections of an .lrprev file held in buf (see src/interop/lrprev.c for the
 * layout). out's JPEG pointers borrow buf. A file that ends inside a section keeps the whole
 * levels before it and sets truncated. Errors: SB_EFORMAT (not an lrprev: no "AgHg" magic),
 * SB_ECORRUPT (zero-length, a length that points past the end before any level, or no level
 * at all), each with a message saying which section and offset. */
int lrprev_parse(const unsigned char *buf, size_t len, struct lrprev *out, struct sb_err *err);

/* The index in p->levels of level K (K >= 1), or of the largest level when K == 0;
 * -1 when there is no such level. */
int lrprev_pick(const struct lrprev *p, int level);

/* Lightroom's orientation code ("AB" upright, "BC" 90 cw, "CD" 180, "DA" 90 ccw, and the
 * mirrored "BA", "DC", "CB", "AD") as an EXIF orientation 1..8; 1 for NULL, "" or unknown. */
int lr_orientation_to_exif(const char *code);

/* ---- rescuing a previews folder ------------------------------------------------------------ */

struct lr_previews_params {
    const char *lrdata;  /* "<name> Previews.lrdata" folder */
    const char *catalog; /* the .lrcat; NULL: "<name>.lrcat" beside the .lrdata when present */
    const char *out_dir; /* where the JPEGs go, in the folder structure of the originals */
    int level;           /* 0: the largest; K: level_K (the largest when there is no level K) */
    bool convert;        /* decode, convert to sRGB, apply the orientation, re-encode; when
                            false the JPEG bytes are written as stored, tagged with an ICC
                            profile when the header names AdobeRGB */
    int quality;         /* JPEG quality when converting (95) */
    const struct sb_progress *progress;
};

struct lr_previews_params lr_previews_default_params(void);

/* What happened to one .lrprev file; strings borrowed for the callback. */
struct lr_preview_item {
    const char *lrprev;   /* the .lrprev path */
    const char *out_path; /* the written JPEG, NULL when it failed */
    const char *original; /* the original's path from the catalog, NULL when unknown */
    int64_t image_id;     /* Adobe_images.id_local, 0 when unknown */
    bool virtual_copy;
    int width, height; /* of the written image */
    const char *error; /* NULL when it worked */
};
typedef int (*lr_preview_fn)(void *user, const struct lr_preview_item *it);

struct lr_previews_stats {
    int64_t found;   /* .lrprev files */
    int64_t written; /* JPEGs written */
    int64_t named;   /* ... named after their original through previews.db and the catalog */
    int64_t virtual_copies;
    int64_t failed; /* unreadable, broken or unwritable */
    bool have_previews_db, have_catalog;
};

/* Extracts one JPEG per .lrprev under p->lrdata into p->out_dir, never overwriting a file
 * (a taken name gets "-1", "-2", ...). Named "<original folder relative to its root>/<base
 * name>.jpg" ("-vc<id>" for virtual copies) when previews.db and the catalog know it, else
 * "unknown/<uuid>.jpg". fn (may be NULL) hears about every file; a non-zero return stops.
 * Files that fail are counted and reported to fn, not returned. Returns SB_OK, SB_ENOENT when
 * lrdata is not a folder, SB_ECANCELED when progress asked to stop, or the code of fn. */
int lr_previews_extract(const struct lr_previews_params *p, lr_preview_fn fn, void *user,
                        struct lr_previews_stats *st, struct sb_err *err);

/* ---- importing a catalog ------------------------------------------------------------------- */

struct lr_import_params {
    const char *lrcat;
    /* Path prefix rewrites for catalogs made on another machine or with another mount point:
     * an original "FROM/rest" is looked for at "TO/rest". */
    const char *const *map_from, *const *map_to;
    int nmap;
};

struct lr_import_stats {
    int64_t images;          /* Adobe_images rows (virtual copies included) */
    int64_t matched;         /* found in the shoebox catalog */
    int64_t matched_by_hash; /* ... of those, by content at the original path (not indexed
                                under that path) */
    int64_t unmatched;
    int64_t keywords;    /* keyword tags stored */
    int64_t collections; /* collection memberships stored */
};

/* Reads the Lightroom catalog (read-only) and stores, for every image matched to a shoebox
 * photo (by the original's path, else by the content of the file at that path), its
 * keywords as tags with source "lightroom" (the leaf, and the hierarchy joined with '|' as
 * lr:hierarchicalSubject writes it), rating, pick flag, colour label, title, caption and
 * collections. Re-importing the same catalog replaces what it stored before. Errors: SB_ENOENT
 * (no such file), SB_EFORMAT (not a Lightroom catalog), SB_EDB. */
int lr_catalog_import(struct catalog *cat, const struct lr_import_params *p,
                      struct lr_import_stats *st, struct sb_err *err);

#endif
