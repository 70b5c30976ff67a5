/* catalog.h - the SQLite catalog: files, photos, metadata, work queues, vectors.
 *
 * Identity: a photo is its content (xxh3-128 of the bytes); a file is a path that holds a
 * photo. Many files may share one photo (copies); a moved file keeps its photo.
 * Work: every stage of the pipeline is a queue row (files.status for hashing, the jobs table
 * for per-photo stages: "probe", "thumb", "embed:<model>"); a stage marks work done in the
 * same transaction that stores its result, so a killed run loses at most one batch.
 * A struct catalog wraps one sqlite3 connection (WAL mode); use it from one thread at a time.
 * All SQL of shoebox lives in src/catalog. */
#ifndef SHOEBOX_CATALOG_H
#define SHOEBOX_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sb_err;
struct photo_meta;
struct catalog;

/* Opens (creating and migrating when needed) the catalog at path; parent folders are created.
 * readonly opens an existing catalog without writing. *out is released with catalog_close(). */
int catalog_open(const char *path, bool readonly, struct catalog **out, struct sb_err *err);
void catalog_close(struct catalog *cat); /* NULL is a no-op */
/* The folder beside the database that holds caches (thumbnails): "<db>.d" is avoided; it is
 * "<dir of db>/thumbs". Borrowed; valid until catalog_close(). */
const char *catalog_thumb_dir(const struct catalog *cat);

int catalog_begin(struct catalog *cat, struct sb_err *err);
int catalog_commit(struct catalog *cat, struct sb_err *err);
void catalog_rollback(struct catalog *cat);

/* ---- files and scanning ------------------------------------------------------------------ */

enum catalog_file_status {
    CATALOG_FILE_PENDING = 0, /* seen, not hashed yet (new or changed) */
    CATALOG_FILE_OK = 1,      /* hashed and attached to a photo */
    CATALOG_FILE_FAILED = 2,  /* could not be read or is not a valid image; see error */
    CATALOG_FILE_IGNORED = 3, /* not an image (by its bytes) and not named like one */
    CATALOG_FILE_MISSING = 4, /* was there before, gone at the last complete scan */
};

/* What stat(2) said about a file: a change in any of these makes the file pending again. */
struct catalog_stat {
    int64_t size, mtime_ns, ctime_ns, inode, dev;
};

struct catalog_file {
    int64_t id;
    char *path; /* owned by whoever owns the struct */
    struct catalog_stat st;
    int status;
    int64_t photo_id; /* 0 when none */
};

/* Calls fn for every file whose path starts with prefix (a folder path; "" for all).
 * The callback's strings are borrowed for the call. A non-zero return from fn stops the
 * iteration and is returned. */
typedef int (*catalog_file_fn)(void *user, const struct catalog_file *f);
int catalog_files_under(struct catalog *cat, const char *prefix, catalog_file_fn fn, void *user,
                        struct sb_err *err);

/* Inserts a new file or updates a known one whose stat changed; either way it becomes
 * PENDING (its old photo link stays until rehashed). */
int catalog_file_touch(struct catalog *cat, const char *path, const struct catalog_stat *st,
                       struct sb_err *err);
int catalog_file_set_missing(struct catalog *cat, int64_t file_id, struct sb_err *err);
int catalog_file_set_failed(struct catalog *cat, int64_t file_id, const char *error,
                            struct sb_err *err);
int catalog_file_set_ignored(struct catalog *cat, int64_t file_id, struct sb_err *err);

/* Up to max pending files (oldest first). *out is a malloc'd array the caller frees with
 * catalog_files_free(). */
int catalog_files_pending(struct catalog *cat, size_t max, struct catalog_file **out, size_t *n,
                          struct sb_err *err);
void catalog_files_free(struct catalog_file *files, size_t n);

/* Attaches a hashed file to the photo with that content hash, creating the photo (with its
 * pending jobs for every stage in `stages`, NULL-terminated) when it is new. *photo_id and
 * *created (may be NULL) are set. */
int catalog_file_set_photo(struct catalog *cat, int64_t file_id, const unsigned char hash[16],
                           int64_t size, const char *format, const char *const *stages,
                           int64_t *photo_id, bool *created, struct sb_err *err);

/* ---- photos and their jobs ---------------------------------------------------------------- */

enum catalog_job_state { CATALOG_JOB_PENDING = 0, CATALOG_JOB_DONE = 1, CATALOG_JOB_FAILED = 2 };

/* Makes sure every photo has a job row for stage (new rows pending); used when a stage is
 * enabled for a catalog that already has photos (e.g. a model is set). */
int catalog_jobs_ensure(struct catalog *cat, const char *stage, struct sb_err *err);
/* Resets failed jobs of stage (NULL: all stages) and failed files to pending. */
int catalog_jobs_retry(struct catalog *cat, const char *stage, struct sb_err *err);

/* A photo with pending work: which of the requested stages are pending, and one present
 * file that holds it. */
struct catalog_work {
    int64_t photo_id;
    unsigned char hash[16];
    char *path;           /* a present (OK) file of this photo */
    unsigned stages_mask; /* bit i set: stages[i] (as passed to catalog_work_pending) pending */
    struct catalog_stat st;
};

/* Up to max photos that have at least one of stages[0..nstages) pending and a present file.
 * Photos listed in `after` order by id: pass the last id seen to page forward. */
int catalog_work_pending(struct catalog *cat, const char *const *stages, int nstages,
                         int64_t after_id, size_t max, struct catalog_work **out, size_t *n,
                         struct sb_err *err);
void catalog_work_free(struct catalog_work *w, size_t n);

int catalog_job_set(struct catalog *cat, int64_t photo_id, const char *stage, int state,
                    const char *error, struct sb_err *err);

/* Where the capture time came from. */
#define CATALOG_TIME_EXIF    "exif"
#define CATALOG_TIME_TAKEOUT "takeout"
#define CATALOG_TIME_MTIME   "mtime"

/* Stores the probe result: metadata, display size (after orientation), format, time source. */
int catalog_photo_set_meta(struct catalog *cat, int64_t photo_id, const struct photo_meta *m,
                           const char *format, int width, int height, const char *time_source,
                           struct sb_err *err);

/* ---- models and vectors ------------------------------------------------------------------- */

/* Registers a model (by its stable id string) with its dimension; returns its small integer
 * id. A known name with another dimension is an error. */
int catalog_model_ensure(struct catalog *cat, const char *name, int dim, int64_t *model_id,
                         struct sb_err *err);
/* Stores (replacing) the vector of a photo for a model. */
int catalog_vector_put(struct catalog *cat, int64_t model_id, int64_t photo_id, const float *v,
                       int dim, struct sb_err *err);

/* One registered model: its name (the model id string), dimension and how many vectors. */
struct catalog_model_info {
    char name[128];
    int dim;
    int64_t vectors;
};
/* Every registered model, oldest first. *out is malloc'd (the caller frees it; NULL when *n is
 * 0). SB_EDB, SB_ENOMEM. */
int catalog_models_list(struct catalog *cat, struct catalog_model_info **out, size_t *n,
                        struct sb_err *err);

/* A counter that changes whenever the set of present photos (photos with a file of status
 * present) may have changed, in any connection's commit: a cache of that set is stale when it
 * moved. */
int catalog_present_generation(struct catalog *cat, int64_t *gen, struct sb_err *err);

/* Looks a model up by name: SB_ENOENT when the catalog has no vectors of it. *version changes
 * whenever a vector of the model is stored (a cache of the vectors is stale when it moved). */
int catalog_model_find(struct catalog *cat, const char *name, int64_t *model_id, int *dim,
                       int64_t *version, struct sb_err *err);
/* Calls fn for every stored vector of the model (ascending photo id). v is borrowed for the
 * call. A non-zero return from fn stops and is returned. */
typedef int (*catalog_vector_fn)(void *user, int64_t photo_id, const float *v, int dim);
int catalog_vectors_each(struct catalog *cat, int64_t model_id, catalog_vector_fn fn, void *user,
                         struct sb_err *err);
/* The vector of one photo: SB_ENOENT when it has none. */
int catalog_vector_get(struct catalog *cat, int64_t model_id, int64_t photo_id, float *out, int dim,
                       struct sb_err *err);

/* ---- settings ----------------------------------------------------------------------------- */

/* Copies the value of key into buf (cap bytes); SB_ENOENT when unset, SB_ETOOBIG if it does not
 * fit. */
int catalog_setting_get(struct catalog *cat, const char *key, char *buf, size_t cap,
                        struct sb_err *err);
int catalog_setting_set(struct catalog *cat, const char *key, const char *value,
                        struct sb_err *err);

/* ---- photos for search and display -------------------------------------------------------- */

/* Restricts a query. NULL / 0 fields do not restrict. Dates compare with the capture time
 * (taken_at, local time as the camera wrote it): after is inclusive, before exclusive; both are
 * "YYYY-MM-DD" or longer ISO prefixes. */
struct catalog_filter {
    const char *after, *before;
    const char *folder; /* photos with a present file under this folder */
    const char *camera; /* substring of make or model, any case */
    const char *tag;    /* has this tag (any source) */
    const char *format; /* "jpeg", "heif", ... */
    bool has_gps;
};

/* True when f (may be NULL) filters nothing: every present photo passes. */
bool catalog_filter_empty(const struct catalog_filter *f);
/* The ids of present photos that pass f (ascending id). *ids is malloc'd; the caller frees it. */
int catalog_filter_photos(struct catalog *cat, const struct catalog_filter *f, int64_t **ids,
                          size_t *n, struct sb_err *err);
/* Present photos that pass f, newest capture first, at most max after skipping offset. */
int catalog_photos_by_date(struct catalog *cat, const struct catalog_filter *f, size_t offset,
                           size_t max, int64_t **ids, size_t *n, struct sb_err *err);

struct catalog_photo {
    int64_t id;
    unsigned char hash[16];
    char **paths; /* present files, lowest file id first */
    int npaths;
    char *taken_at, *tz_offset, *time_source, *format, *make, *model, *lens;
    int width, height, orientation, iso;
    double focal_mm, fnumber, exposure_s, gps_lat, gps_lon, gps_alt; /* NaN when absent */
    int64_t size, taken_unix;
    bool has_exif;
};
/* Fills p (release with catalog_photo_release); SB_ENOENT for an unknown id. */
int catalog_photo_get(struct catalog *cat, int64_t id, struct catalog_photo *p, struct sb_err *err);
void catalog_photo_release(struct catalog_photo *p);
/* The photo of a present file at exactly this path: SB_ENOENT when none. */
int catalog_photo_by_path(struct catalog *cat, const char *path, int64_t *id, struct sb_err *err);
/* Ids of present photos that have more than one present file. */
int catalog_exact_dupes(struct catalog *cat, int64_t **ids, size_t *n, struct sb_err *err);

/* ---- reports ------------------------------------------------------------------------------ */

struct catalog_stage_count {
    char name[96];
    int64_t done, pending, failed;
};

struct catalog_status {
    int64_t files;      /* present files that are images (ok, pending or failed) */
    int64_t photos;     /* unique photos with at least one present file */
    int64_t duplicates; /* present files beyond the first of each photo */
    int64_t failed;     /* files that failed, or whose photo failed a stage */
    int64_t missing;    /* files gone since they were cataloged */
    int64_t ignored;    /* non-image files seen */
    struct catalog_stage_count stages[16];
    int nstages; /* "hash" first, then per-photo stages by name */
};
int catalog_status(struct catalog *cat, struct catalog_status *out, struct sb_err *err);

/* Calls fn(user, path, stages, error) for every failed present file (hash failures and failed
 * photo jobs), ordered by path; stages that failed with the same error come in one call,
 * comma-separated ("probe,thumb"). Strings are borrowed for the call. */
typedef int (*catalog_error_fn)(void *user, const char *path, const char *stage, const char *error);
int catalog_errors(struct catalog *cat, catalog_error_fn fn, void *user, struct sb_err *err);

/* Runs PRAGMA integrity_check; SB_ECORRUPT with the first message when it is not "ok". */
int catalog_check(struct catalog *cat, struct sb_err *err);

/* ---- queries of the web UI (src/catalog/web.c) ------------------------------------------- */

/* Counts of present photos grouped by one key, for browsing and filter choices. */
enum catalog_facet {
    CATALOG_FACET_MONTH,  /* "YYYY-MM" of taken_at, newest first; "" for undated */
    CATALOG_FACET_FOLDER, /* folder of each present file (photos counted once per folder) */
    CATALOG_FACET_CAMERA, /* camera model (else make), most photos first */
    CATALOG_FACET_TAG,    /* tags of present photos, most photos first */
    CATALOG_FACET_FORMAT, /* "jpeg", "png", ..., most photos first */
};
/* Calls fn(user, key, count) per group; key is borrowed for the call. A non-zero return from
 * fn stops and is returned. */
typedef int (*catalog_count_fn)(void *user, const char *key, int64_t count);
int catalog_facet_counts(struct catalog *cat, enum catalog_facet facet, catalog_count_fn fn,
                         void *user, struct sb_err *err);

/* The content hash and format of a photo (format: cap bytes, may be NULL); SB_ENOENT for an
 * unknown id. Cheaper than catalog_photo_get() (one row, no paths). */
int catalog_photo_hash(struct catalog *cat, int64_t id, unsigned char hash[16], char *format,
                       size_t cap, struct sb_err *err);

/* Calls fn(user, tag, source, score) for every tag of a photo (score NaN when none), by tag. */
typedef int (*catalog_tag_fn)(void *user, const char *tag, const char *source, double score);
int catalog_photo_tags(struct catalog *cat, int64_t id, catalog_tag_fn fn, void *user,
                       struct sb_err *err);

/* Present photos taken on month-day mmdd ("MM-DD") of a year before `year` ("YYYY"), newest
 * first, at most max. *ids is malloc'd; the caller frees it. */
int catalog_on_this_day(struct catalog *cat, const char *mmdd, const char *year, size_t max,
                        int64_t **ids, size_t *n, struct sb_err *err);

/* All present photos that have a capture time, oldest first: *ids and *times (taken_unix) are
 * malloc'd arrays of *n entries; the caller frees both. */
int catalog_photo_times(struct catalog *cat, int64_t **ids, int64_t **times, size_t *n,
                        struct sb_err *err);

/* ---- tags, XMP properties, blob cache (src/catalog/tags.c) ------------------------------- */

/* Where a tag came from (tags.source). Each source's rows are replaced on their own. */
#define CATALOG_TAG_USER "user"
#define CATALOG_TAG_AUTO "auto"
#define CATALOG_TAG_XMP  "xmp"
#define CATALOG_TAG_MAX  200 /* bytes of one tag */

/* Adds (or updates the score of) a tag of a photo from source; score NaN for none. Empty,
 * over-long or control-character tags: SB_EINVAL. Unknown photo: SB_ENOENT. */
int catalog_tag_add(struct catalog *cat, int64_t photo_id, const char *tag, const char *source,
                    double score, struct sb_err *err);
/* Removes a tag (any case) of a photo from source (NULL: every source); *removed (may be NULL)
 * is the number of rows removed. */
int catalog_tag_remove(struct catalog *cat, int64_t photo_id, const char *tag, const char *source,
                       int64_t *removed, struct sb_err *err);
/* Replaces every tag of source of a photo with tags[0..n) (scores may be NULL). Invalid tags
 * are skipped. Rows of other sources are kept. */
int catalog_tags_replace(struct catalog *cat, int64_t photo_id, const char *source,
                         const char *const *tags, const float *scores, size_t n,
                         struct sb_err *err);

/* Makes stage pending again for the photos of present files at path stem or "stem.*" (the
 * photos an XMP sidecar "stem.xmp" belongs to). *n (may be NULL): jobs reset. */
int catalog_jobs_reset_stem(struct catalog *cat, const char *stage, const char *stem, int64_t *n,
                            struct sb_err *err);

#define CATALOG_XMP_NO_RATING (-100)
/* XMP properties of a photo (from its sidecar or embedded packet). NULL strings: absent. */
struct catalog_xmp {
    int rating; /* xmp:Rating (-1 rejected, 0..5), CATALOG_XMP_NO_RATING when absent */
    char *label, *title, *description;
};
int catalog_xmp_set(struct catalog *cat, int64_t photo_id, const struct catalog_xmp *x,
                    struct sb_err *err);
/* Fills *x (release with catalog_xmp_release); SB_ENOENT when the photo has none. */
int catalog_xmp_get(struct catalog *cat, int64_t photo_id, struct catalog_xmp *x,
                    struct sb_err *err);
void catalog_xmp_release(struct catalog_xmp *x);

/* A small key-value store for computed data (e.g. text embeddings of a tag vocabulary, keyed
 * by model id and vocabulary hash). get: *data is malloc'd (the caller frees it), SB_ENOENT
 * when absent. */
int catalog_cache_get(struct catalog *cat, const char *key, void **data, size_t *len,
                      struct sb_err *err);
int catalog_cache_put(struct catalog *cat, const char *key, const void *data, size_t len,
                      struct sb_err *err);

/* ---- texts: OCR, captions, titles; full-text search (src/catalog/text.c) ----------------- */

/* texts.source values; the table is shared by every kind of text about a photo. */
#define CATALOG_TEXT_OCR     "ocr"
#define CATALOG_TEXT_CAPTION "caption"
#define CATALOG_TEXT_MAX     ((size_t)1 << 20) /* bytes of one text: longer is truncated */

/* Stores (replacing) the text of a photo from source, with its confidence (NaN: none) and the
 * model that made it (may be NULL). NULL or "" text removes the row. Unknown photo: SB_ENOENT.
 * The full-text index follows in the same transaction (triggers). */
int catalog_text_set(struct catalog *cat, int64_t photo_id, const char *source, const char *text,
                     double confidence, const char *model, struct sb_err *err);
/* The text of a photo from source: *text is malloc'd (the caller frees it), *confidence (may
 * be NULL) NaN when none. SB_ENOENT when the photo has no such text. */
int catalog_text_get(struct catalog *cat, int64_t photo_id, const char *source, char **text,
                     double *confidence, struct sb_err *err);
/* Calls fn(user, source, text, confidence) for every text of a photo, by source. Strings are
 * borrowed for the call; a non-zero return from fn stops and is returned. */
typedef int (*catalog_text_fn)(void *user, const char *source, const char *text, double confidence);
int catalog_photo_texts(struct catalog *cat, int64_t photo_id, catalog_text_fn fn, void *user,
                        struct sb_err *err);

/* Turns what a user typed into a safe FTS5 query: each word becomes a quoted string (inner
 * quotes doubled), so no FTS5 syntax (AND, NEAR, *, ^, :, column filters) can be injected;
 * words are joined with AND (match_all) or OR. Words without a letter or digit are dropped.
 * *out is malloc'd (the caller frees it); SB_EINVAL when no word is left. */
int catalog_text_fts_query(const char *user_query, bool match_all, char **out, struct sb_err *err);

struct catalog_text_hit {
    int64_t photo_id;
    double score; /* -bm25 of the best matching text of the photo: higher is better, > 0 */
};
/* Full-text search of user_query (escaped with catalog_text_fts_query) over the texts of
 * source (NULL: every source), best first, one hit per photo (its best text), at most max.
 * *hits is malloc'd (the caller frees it). Only photos with a present file are returned. */
int catalog_text_search(struct catalog *cat, const char *user_query, bool match_all,
                        const char *source, size_t max, struct catalog_text_hit **hits, size_t *n,
                        struct sb_err *err);

/* ---- imports from other programs (src/catalog/lightroom.c) -------------------------------- */

/* Tag, album and text sources of the importers. Texts use "<source>:title", ":caption",
 * ":description", ":ocr". */
#define CATALOG_SRC_LIGHTROOM "lightroom"
#define CATALOG_SRC_TAKEOUT   "takeout"
#define CATALOG_SRC_APPLE     "apple"

/* The photo with this content hash: SB_ENOENT when none. */
int catalog_photo_by_hash(struct catalog *cat, const unsigned char hash[16], int64_t *id,
                          struct sb_err *err);

/* One Adobe_images row of a Lightroom catalog as imported. */
struct catalog_lr_image {
    const char *catalog; /* the .lrcat's absolute path */
    int64_t lr_id;       /* Adobe_images.id_local */
    int64_t photo_id;    /* 0: not matched to a shoebox photo */
    const char *original_path;
    bool virtual_copy;
    int rating;               /* 0..5, -1 when unrated */
    int pick;                 /* 1 picked, -1 rejected, 0 neither */
    const char *color_label;  /* "Red", ... or NULL */
    const char *capture_time; /* as Lightroom stores it, or NULL */
};
/* Forgets what an earlier import of this catalog stored: its lr_images rows, and the
 * "lightroom" tags, albums and texts of the photos it matched. */
int catalog_lr_forget(struct catalog *cat, const char *lrcat, struct sb_err *err);
int catalog_lr_image_put(struct catalog *cat, const struct catalog_lr_image *im,
                         struct sb_err *err);

/* Adds a photo to an album (a Lightroom collection, an Apple Photos album) of source. */
int catalog_album_add(struct catalog *cat, int64_t photo_id, const char *source, const char *album,
                      struct sb_err *err);
/* Calls fn(user, album, source) for every album of a photo (reusing catalog_tag_fn's shape:
 * score is NaN). */
int catalog_photo_albums(struct catalog *cat, int64_t photo_id, catalog_tag_fn fn, void *user,
                         struct sb_err *err);

/* Records that the file at path (a rescued preview) stands for original_path (which may be on
 * a disconnected drive). */
int catalog_original_set(struct catalog *cat, const char *path, const char *original_path,
                         const char *source, struct sb_err *err);
/* The original recorded for path, copied into buf (cap bytes): SB_ENOENT when none. */
int catalog_original_get(struct catalog *cat, const char *path, char *buf, size_t cap,
                         struct sb_err *err);

/* Google Takeout: the sidecar of a photo and, for an "-edited" version, the photo it was
 * edited from (0: none). Replaces the photo's earlier row. */
int catalog_takeout_set(struct catalog *cat, int64_t photo_id, const char *sidecar,
                        int64_t edited_of, struct sb_err *err);
/* The photo that photo_id is an edited version of: SB_ENOENT when none. */
int catalog_takeout_edited_of(struct catalog *cat, int64_t photo_id, int64_t *original,
                              struct sb_err *err);

/* Sets a photo's GPS position when it has none (EXIF wins over imported positions); alt may be
 * NaN. *set (may be NULL) tells whether it was stored. */
int catalog_photo_gps_fill(struct catalog *cat, int64_t photo_id, double lat, double lon,
                           double alt, bool *set, struct sb_err *err);
/* Sets a photo's capture time from an importer (source: its time_source, e.g. "apple") when
 * it has none better: only photos whose time came from the file's mtime (or from nowhere).
 * taken_at is local "YYYY-MM-DDTHH:MM:SS", tz_offset "+HH:MM" or NULL. *set (may be NULL)
 * tells whether it was stored. */
int catalog_photo_time_fill(struct catalog *cat, int64_t photo_id, const char *taken_at,
                            const char *tz_offset, int64_t taken_unix, const char *source,
                            bool *set, struct sb_err *err);
/* One Apple Photos asset as imported. */
struct catalog_apple_asset {
    const char *library; /* the .photoslibrary's absolute path */
    const char *uuid;
    int64_t photo_id; /* 0: not matched */
    const char *original_path;
    const char *taken_at; /* "YYYY-MM-DDTHH:MM:SS" UTC, or NULL */
    bool favorite, hidden;
    double lat, lon; /* NaN when unknown */
};
/* Forgets what an earlier import of this library stored (rows, "apple" tags, albums, texts). */
int catalog_apple_forget(struct catalog *cat, const char *library, struct sb_err *err);
int catalog_apple_asset_put(struct catalog *cat, const struct catalog_apple_asset *a,
                            struct sb_err *err);

#endif
