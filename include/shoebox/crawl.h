/* crawl.h - "crawl this": walk folders, hash, probe, thumbnail and embed into the catalog.
 *
 * Every step is resumable: files are recorded as they are found, hashed in batches, and each
 * photo's stages (probe, thumb, embed:<model>) are marked done in the transaction that stores
 * their results. A killed run loses at most the batch in flight; running crawl_index() again
 * continues. An unchanged tree is re-scanned with stat(2) only. */
#ifndef SHOEBOX_CRAWL_H
#define SHOEBOX_CRAWL_H

#include "shoebox/image.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sb_err;
struct sb_pool;
struct sb_progress;
struct catalog;

/* An image embedder (a CLIP-family model) as the crawler sees it. preprocess is called from
 * pool workers concurrently and must be thread-safe; embed is called from the thread that
 * called crawl_index(), one batch at a time. */
struct crawl_embedder {
    const char *model_name; /* stable id: vectors are stored per name */
    int dim;                /* output floats per image */
    int min_short;          /* the decoded image's short edge must be at least this */
    size_t input_floats;    /* floats per preprocessed image */
    int max_batch;
    void *user;
    int (*preprocess)(void *user, const struct image *rgb, float *out, struct sb_err *err);
    /* Optional (NULL: every photo is decoded to RGB for preprocess): the upright size and the
     * filter preprocess resizes an upright w x h picture with, which it leaves as it is when
     * given that size; 0 when it does not resize. A JPEG is then resized to it from the same
     * Y/Cb/Cr planes as its thumbnails (image_jpeg_planes). Thread-safe as preprocess. */
    int (*input_size)(void *user, int w, int h, int *out_w, int *out_h, enum image_filter *f);
    /* in: n * input_floats; out: n * dim, L2-normalised. */
    int (*embed)(void *user, const float *in, int n, float *out, struct sb_err *err);
};

/* Another per-photo stage (OCR, auto-tags, captions, ...), run by the crawler as a resumable
 * job like the built-in ones: the stage's job rows are added for every photo, and each photo's
 * result is stored in the batch transaction that marks the job done (or failed, with the
 * message of run()'s error). run() is called from pool workers concurrently (worker is the
 * pool worker index, for per-worker scratch) with the photo's decoded pixels when needs_pixels
 * (else rgb is NULL); store() is called on the indexing thread inside the transaction, with
 * the photo's embedding when this batch computed one (else NULL). free_result() releases what
 * run() made, stored or not.
 * finish (optional) is a second phase for work that goes faster across photos (captions
 * decode several photos at once): it is called on the indexing thread, while the pool is idle
 * (it may use it), once per work batch with the n results of run() that succeeded, before the
 * store; it updates results[i] in place (what free_result() and store() then get) or sets
 * rcs[i] and errs[i] for a photo that failed. Either way each photo's job ends in the batch's
 * transaction, so the stage stays resumable. */
struct crawl_plugin {
    const char *stage;       /* job name, unique: "ocr", "tags:<model>", "caption:<model>" */
    bool needs_pixels;       /* decode the photo for run() */
    int min_long, min_short; /* the decode must cover this (see image_decode_params) */
    void *user;
    int (*run)(void *user, int worker, const struct image *rgb, const char *path, void **result,
               struct sb_err *err);
    int (*store)(void *user, struct catalog *cat, int64_t photo_id, void *result,
                 const float *embedding, int dim, struct sb_err *err);
    void (*free_result)(void *user, void *result);
    void (*finish)(void *user, int n, void **results, int *rcs, struct sb_err *errs);
};

#define CRAWL_MAX_PLUGINS 8

struct crawl_params {
    const char *const *roots; /* folders (or single files) to index */
    int nroots;
    uint64_t max_pixels; /* refuse images larger than this (decompression bombs) */
    int thumb_small;     /* long edge of the small thumbnail (256) */
    int thumb_large;     /* long edge of the large thumbnail (1024) */
    int thumb_quality;   /* JPEG quality of thumbnails (85) */
    size_t batch;        /* items per transaction (64) */
    size_t keep_bytes;   /* bytes of new photos kept from hashing for decoding (256 MB) */
    bool retry_failed;   /* reset failed files and jobs to pending first */
    const struct crawl_embedder *embedder; /* NULL: catalog, probe and thumbnail only */
    const struct crawl_plugin *plugins;    /* nplugins more stages, after the embedding */
    int nplugins;                          /* <= CRAWL_MAX_PLUGINS */
    struct sb_pool *pool; /* workers for hashing and decoding; NULL runs on the caller */
    const struct sb_progress *progress;
};

struct crawl_params crawl_default_params(void);

/* A CLIP-family model (src/model) as a crawl_embedder: the model loaded with lp, one context of
 * batch 16 running on pool (NULL: the model's own BLAS threads). crawl points at e itself, so
 * e must not move while it is in use; ctx is usable for other passes (auto-tags) too. */
struct clip_model;
struct clip_ctx;
struct clip_load_params;
struct crawl_clip_embedder {
    struct clip_model *model;
    struct clip_ctx *ctx;
    struct crawl_embedder crawl;
};
int crawl_clip_embedder_open(const char *model_dir, const struct clip_load_params *lp,
                             struct sb_pool *pool, struct crawl_clip_embedder *e,
                             struct sb_err *err);
void crawl_clip_embedder_close(struct crawl_clip_embedder *e); /* a zeroed e is a no-op */

struct crawl_stats {
    int64_t seen;      /* files looked at in the walk */
    int64_t unchanged; /* skipped by the stat check */
    int64_t touched;   /* new or changed, queued for hashing */
    int64_t missing;   /* marked missing */
    int64_t ignored;   /* not images */
    int64_t hashed;
    int64_t new_photos;
    int64_t processed; /* photos that went through probe/thumb/embed work */
    int64_t embedded;
    int64_t failed; /* files or photo stages that failed in this run */
    bool stopped;   /* the progress callback asked to stop */
};

/* Indexes the roots into cat. Returns SB_OK when the run finished (even if files failed:
 * those are recorded in the catalog), SB_ECANCELED when stopped, another code when the
 * catalog itself failed or a root does not exist. */
int crawl_index(struct catalog *cat, const struct crawl_params *p, struct crawl_stats *stats,
                struct sb_err *err);

/* Path of a photo's cached thumbnail of long edge px: "<thumb_dir>/<hh>/<hash hex>-<px>.jpg".
 * Writes into buf (cap bytes); returns false if it does not fit. */
bool crawl_thumb_path(const char *thumb_dir, const unsigned char hash[16], int px, char *buf,
                      size_t cap);

/* xxh3-128 of a file's bytes, read with plain reads (never mmap: a file truncated under us
 * must give an error, not SIGBUS). hash is big-endian (high 64 bits first). */
int crawl_hash_file(const char *path, unsigned char hash[16], int64_t *size, struct sb_err *err);

/* Capture time from a Google Takeout JSON sidecar of the image at path (photoTakenTime), trying
 * the naming variants Takeout uses ("x.jpg.json", "x.json", "x.jpg.supplemental-metadata.json",
 * truncated names, "x(1).jpg" -> "x.jpg(1).json"). Returns true and sets *unix_time when found. */
bool crawl_takeout_time(const char *path, int64_t *unix_time);
/* The path of the Google Takeout JSON sidecar of the image at path (the same naming variants),
 * written into out (cap bytes). False when there is none (or it does not fit). */
bool crawl_takeout_sidecar(const char *path, char *out, size_t cap);

#endif
