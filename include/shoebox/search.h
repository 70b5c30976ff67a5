/* search.h - vector search: the per-model vector store, exact top-k, query algebra, and
 * near-duplicate grouping.
 *
 * The store keeps all vectors of one model as one contiguous fp16 matrix (N x D, rows in
 * ascending photo id) in a cache file beside the catalog, mmapped read-only. The catalog's
 * vectors table stays the truth: the file records the model's vector version and is rebuilt
 * when the catalog has moved on, so a query never reads vectors row by row from SQLite.
 * fp16 halves memory and bandwidth; its rounding (relative 2^-11 per element) moves a cosine
 * by ~1e-3 at most, far below the gaps between relevant results (measured in bench/search).
 *
 * Thread rules: a struct vec_store is read-only once open and may be shared by threads (its
 * present-photo mask cache has a mutex of its own). */
#ifndef SHOEBOX_SEARCH_H
#define SHOEBOX_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sb_err;
struct sb_pool;
struct catalog;
struct catalog_filter;

/* ---- fp16 ------------------------------------------------------------------------------------ */

uint16_t search_f32_to_f16(float f); /* round to nearest even, saturating to +-inf */
float search_f16_to_f32(uint16_t h);

/* ---- the matrix and top-k ---------------------------------------------------------------- */

/* A borrowed view: n rows of dim fp16 values, and the photo id of each row (ascending).
 * Optionally also 6-bit codes of the same rows for a first pass that reads 3/8 of the fp16
 * bytes: row i is approximately scales[i] * c_i with c_i in [-31, 31]^dim (packed, see
 * src/search/internal.h), resid[i] = ||row_i - scales[i] * c_i|| bounds the error and
 * cnorm[i] = ||scales[i] * c_i||. The fp16 rows stay the exact scores. */
struct vec_matrix {
    const uint16_t *data;
    const int64_t *ids;
    size_t n;
    int dim;
    const uint8_t *codes; /* n x search_code_bytes(dim), or NULL */
    const float *scales;  /* n */
    const float *resid;   /* n */
    const float *cnorm;   /* n */
};

/* Bytes of one row's codes: 48 per started block of 64 dimensions. */
size_t search_code_bytes(int dim);
/* Fills codes, scales, resid and cnorm (caller-owned arrays of n * search_code_bytes(dim), n, n
 * and n) from m's fp16 rows. */
void search_quantize(const struct vec_matrix *m, uint8_t *codes, float *scales, float *resid,
                     float *cnorm);

struct search_hit {
    int64_t photo_id;
    size_t row;
    float score;
};

/* The k rows with the highest dot product with q (dim floats, unit length), best first; ties go
 * to the lower photo id. Rows with mask[row] == 0 (mask NULL: none) and scores below min_score
 * are skipped. out has room for k hits; *nout <= k is how many were found. The scan is split
 * over pool (NULL: the calling thread only) and uses AVX2/F16C when the CPU has them.
 * With codes the scan is two passes and still exact: pass 1 scores every row from its 6-bit
 * codes (AVX-512 VNNI+VBMI, AVX2 or portable, picked at run time) with a proven error bound b,
 * keeping the k-th best lower bound (score - b) and the rows whose upper bound (score + b)
 * can still reach it; pass 2 rescores only those in fp16. The result is the fp16 scan's, row
 * for row (memory traffic is what limits the scan, and the codes are 3/8 of the bytes). */
int search_topk(const struct vec_matrix *m, const float *q, const unsigned char *mask,
                float min_score, size_t k, struct sb_pool *pool, struct search_hit *out,
                size_t *nout, struct sb_err *err);

/* Dot product of q with row r, in fp32 (the same kernel the scan uses). */
float search_score_row(const struct vec_matrix *m, const float *q, size_t row);
/* Row r as floats. */
void search_row(const struct vec_matrix *m, size_t row, float *out);
/* The row of a photo id (binary search), or -1. */
int64_t search_find_row(const struct vec_matrix *m, int64_t photo_id);
/* mask[row] = 1 for rows whose photo id is in ids (ascending), else 0. mask has m->n bytes. */
void search_mask_from_ids(const struct vec_matrix *m, const int64_t *ids, size_t nids,
                          unsigned char *mask);

/* ---- the store -------------------------------------------------------------------------- */

struct vec_store;

/* Opens the vectors of model `name` from cat, through the cache file in cache_dir (created,
 * or rebuilt when stale). SB_ENOENT when the catalog has no vectors of that model. */
int vec_store_open(struct catalog *cat, const char *name, const char *cache_dir,
                   struct vec_store **out, struct sb_err *err);
void vec_store_close(struct vec_store *s); /* NULL is a no-op */
/* The matrix view; valid while s is open (vec_store_resident moves it). */
const struct vec_matrix *vec_store_matrix(const struct vec_store *s);
/* For a long-running process (the web server): copies the mapped file into anonymous memory
 * that asks for huge pages, whatever state the file's page cache is in, so that the scan and
 * the rescoring of scattered fp16 rows take one TLB entry per 2 MiB (1M rows: rescoring about
 * twice as fast, see bench/search). Costs the file's size in RAM (its page cache stays
 * evictable). Not thread-safe: call before sharing s. A no-op for an empty store; SB_ENOMEM,
 * s unchanged (still mapped and usable), when the copy would take more than half of the
 * memory available. */
int vec_store_resident(struct vec_store *s, struct sb_err *err);
/* True when the catalog holds newer vectors than s (reopen to see them). */
bool vec_store_stale(const struct vec_store *s, struct catalog *cat);

/* ---- query algebra ------------------------------------------------------------------------ */

enum search_term_kind { SEARCH_TERM_TEXT, SEARCH_TERM_IMAGE, SEARCH_TERM_ID };

struct search_term {
    enum search_term_kind kind;
    float weight;     /* signed: a "-" term is negative */
    const char *text; /* TEXT: the words (owned); IMAGE: the path (borrowed from argv) */
    int64_t id;       /* ID: the photo id of "id:N" */
};

/* Splits a one-line query (the web's search box) in place into words for search_parse_terms:
 * at whitespace, with "+" and "-" words of their own also when glued to a word ("cat -dog",
 * "cat +dog"), while "-0.5:night" stays one weighted term. argv has room for max words (pointers
 * into buf, or to static "+"/"-"); SB_EINVAL when the query has more. */
int search_split_query(char *buf, char **argv, int max, int *argc, struct sb_err *err);

/* Parses rclip-style terms: TERM [(+|-) TERM]..., where a TERM is "W:rest" (weight W, a number)
 * or "rest"; rest is "id:N", an image path (is_file(path) true), or text. Consecutive words
 * without an operator between them are one text ("poodle" "on" "a" "beach"). Free *terms with
 * search_terms_free(); SB_EINVAL with a message for a dangling operator or a bad id. */
int search_parse_terms(int argc, char **argv, bool (*is_file)(const char *path),
                       struct search_term **terms, size_t *n, struct sb_err *err);
void search_terms_free(struct search_term *terms, size_t n);
/* The text of the positive text terms, joined by spaces (what search_hybrid matches against
 * the photos' words); NULL when there is none. The caller frees it. */
char *search_query_words(const struct search_term *terms, size_t n);

/* out = normalize(sum weight[i] * vecs[i]) over n vectors of dim; SB_EINVAL when the sum is
 * (nearly) zero, e.g. "cat" - "cat". */
int search_combine(const float *vecs, const float *weights, size_t n, int dim, float *out,
                   struct sb_err *err);

/* ---- the query path shared by the CLI and the web server ------------------------------------ */

/* The folder of a catalog's caches (vector matrix, near-duplicate pairs): "cache" beside the
 * catalog file db_path. */
void search_cache_dir(const char *db_path, char *buf, size_t cap);

/* Default relevance cutoffs: with CLIP a text that matches scores ~0.25-0.35 and an unrelated
 * one 0.10-0.20; photo-to-photo cosines run higher (unrelated photos 0.4-0.6). */
#define SEARCH_TEXT_MIN_SCORE  0.20f
#define SEARCH_IMAGE_MIN_SCORE 0.50f

/* SEARCH_TEXT_MIN_SCORE when a term is text, else SEARCH_IMAGE_MIN_SCORE. */
float search_default_min_score(const struct search_term *terms, size_t n);

/* How terms that are not stored rows become vectors (dim floats, L2-normalised). A NULL
 * callback makes such a term an error (SB_EMODEL for text, SB_EINVAL for an image). */
struct search_embed {
    void *user;
    int (*text)(void *user, const char *text, float *out, int dim, struct sb_err *err);
    int (*image)(void *user, const char *path, float *out, int dim, struct sb_err *err);
};

/* The vector of one term: id:N and image files the catalog knows (cat may be NULL: none) are
 * their stored rows of m, other terms go through e. *photo_id (may be NULL) is the photo whose
 * row was used, else 0. SB_EINVAL for an id without a vector. */
int search_term_vector(struct catalog *cat, const struct vec_matrix *m, const struct search_term *t,
                       const struct search_embed *e, float *out, int64_t *photo_id,
                       struct sb_err *err);
/* out (m->dim floats) = the terms' vectors weighted, summed and normalised (search_combine). */
int search_query_vector(struct catalog *cat, const struct vec_matrix *m,
                        const struct search_term *terms, size_t n, const struct search_embed *e,
                        float *out, struct sb_err *err);

/* *mask (malloc'd, m->n bytes, caller frees): 1 for the store's rows whose photo is present
 * and passes f (NULL or empty: present only). The unfiltered mask is cached in the store and
 * rebuilt only when catalog_present_generation() moved, so repeated queries skip the catalog
 * walk; safe from several threads at once. */
int vec_store_mask(struct vec_store *s, struct catalog *cat, const struct catalog_filter *f,
                   unsigned char **mask, struct sb_err *err);

/* ---- hybrid text ranking ------------------------------------------------------------------ */

#define SEARCH_TEXT_ALPHA 0.15f /* weight of the full-text match (see src/search/hybrid.c) */
#define SEARCH_TAG_BETA   0.10f /* weight of a tag equal to the query or one of its words */

/* Re-ranks the cosine hits of q (best first, ideally from a deeper k) with the photos' texts
 * (OCR, captions, titles: catalog full-text search of words) and tags, by
 * final = cosine + SEARCH_TEXT_ALPHA * text + SEARCH_TAG_BETA * tag, adding the photos the
 * words find that the scan did not return (when they pass mask and have most of the words or
 * the tag). *out (malloc'd, free it) holds all of them best first; *nout = min(k, found). */
int search_hybrid(struct catalog *cat, const struct catalog_filter *filter,
                  const struct vec_matrix *m, const unsigned char *mask, const float *q,
                  const char *words, const struct search_hit *hits, size_t nhits, size_t k,
                  struct search_hit **out, size_t *nout, struct sb_err *err);

/* Sorts best first (score descending, then photo id ascending). */
void search_hits_sort(struct search_hit *h, size_t n);

/* ---- near duplicates --------------------------------------------------------------------- */

/* Pairs at cosine >= this are kept in the pair cache (thresholds below it compute all pairs). */
#define SEARCH_NEAR_BASE 0.90f

/* Groups rows (mask NULL: all) whose vectors have cosine >= threshold with some other member
 * (single linkage, union-find). group[row] is the smallest row of its group, or -1 for rows in
 * no group. group has m->n entries. Exact pair cosines (fp32 products of the fp16 rows); with
 * cache_path (may be NULL) and threshold >= SEARCH_NEAR_BASE the pairs come from that file,
 * updated first for the rows that are new or changed since it was written (only those are
 * compared with all rows), and rewritten (best effort; see src/search/dupes.c). version (0:
 * unknown) is the catalog's version of these vectors: a file written at the same version is
 * used as it is, without hashing the rows. pool (may be NULL) shares the blocks of rows out
 * over its threads, each product on one OpenBLAS thread (set for the call, then restored). */
int search_near_groups(const struct vec_matrix *m, const char *cache_path, int64_t version,
                       const unsigned char *mask, float threshold, struct sb_pool *pool,
                       int64_t *group, struct sb_err *err);
/* search_near_groups on the store's matrix with its pair cache file
 * ("<cache_dir>/near-<model id>.pairs"). Safe from several threads at once. */
int vec_store_near_groups(const struct vec_store *s, const unsigned char *mask, float threshold,
                          struct sb_pool *pool, int64_t *group, struct sb_err *err);

#endif
