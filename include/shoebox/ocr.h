/* ocr.h - words in pictures: Tesseract OCR as a crawl stage ("ocr"), with a cheap pixel gate
 * that skips photos unlikely to contain text.
 *
 * An ocr_engine holds one TessBaseAPI per pool worker, created lazily by the worker that first
 * needs it and used by that worker only, so no lock guards it. Tesseract's own OpenMP threads
 * would fight our pool for the cores: ocr_engine_new() sets OMP_THREAD_LIMIT=1 (unless the
 * environment already sets it) before the first Tesseract call; call it from main's thread
 * before the pool runs anything (setenv is not thread-safe). */
#ifndef SHOEBOX_OCR_H
#define SHOEBOX_OCR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shoebox/crawl.h"

struct sb_err;
struct image;

#define OCR_STAGE        "ocr" /* the crawl job name */
#define OCR_TEXT_SOURCE  "ocr" /* the catalog texts.source of recognised text */
#define OCR_DEFAULT_LANG "eng"

struct ocr_params {
    const char *lang;     /* Tesseract languages joined by '+': "eng", "deu+eng" */
    const char *tessdata; /* folder of *.traineddata; NULL: $TESSDATA_PREFIX, else the
                             system's (Debian: /usr/share/tesseract-ocr/5/tessdata) */
    int min_long;         /* the crawler decodes at least this long edge (2000) */
    bool gate;            /* skip photos the pixel gate finds no text in (true) */
    bool osd;             /* when little text is found, detect the orientation with the
                             osd traineddata and read the turned image (true when installed) */
    float min_word_conf;  /* words Tesseract is less sure of (0-100) are dropped (65) */
};

struct ocr_params ocr_default_params(void);

/* The folder of traineddata files that lang would be loaded from (p->tessdata, else
 * $TESSDATA_PREFIX, else the first system folder holding any *.traineddata). Copies it into
 * buf; false when none is found. */
bool ocr_tessdata_dir(const char *tessdata, char *buf, size_t cap);

/* Checks that every language of lang ("deu+eng") is installed. SB_EINVAL for a malformed
 * name; SB_ENOENT naming the missing file and the Debian package that ships it
 * ("tesseract-ocr-deu"). */
int ocr_check_lang(const char *lang, const char *tessdata, struct sb_err *err);

struct ocr_engine;

/* Makes an engine for up to nworkers concurrent callers (worker indices 0..nworkers-1; with
 * an sb_pool that is sb_pool_size(pool) + 1). Checks the languages and loads worker 0's
 * Tesseract now, so a bad setup fails here. Release with ocr_engine_free(). */
int ocr_engine_new(const struct ocr_params *p, int nworkers, struct ocr_engine **out,
                   struct sb_err *err);
void ocr_engine_free(struct ocr_engine *e); /* NULL is a no-op */
/* "tesseract-5.3.0:eng" - stored with each text. Borrowed; valid until ocr_engine_free(). */
const char *ocr_engine_model(const struct ocr_engine *e);

/* What OCR found in one image. */
struct ocr_text {
    char *text;       /* UTF-8, lines separated by '\n'; "" when none. Owned: ocr_text_release */
    float confidence; /* mean word confidence 0-100 of the kept words (0 when none) */
    bool gated;       /* the gate skipped the image: Tesseract did not run */
    int rotation;     /* degrees clockwise the image was turned to read it (0, 90, 180, 270) */
};
void ocr_text_release(struct ocr_text *t);

/* Reads the text of rgb with worker's Tesseract (created on first use). Thread-safe across
 * distinct worker indices; one worker index must not be used by two threads at once. */
int ocr_engine_read(struct ocr_engine *e, int worker, const struct image *rgb, struct ocr_text *out,
                    struct sb_err *err);

/* Counters summed over the workers; read them while no read is running. */
struct ocr_stats {
    int64_t images;    /* images given to ocr_engine_read */
    int64_t gated;     /* skipped by the gate */
    int64_t with_text; /* images where text was kept */
    int64_t rotated;   /* read after turning them (OSD) */
};
void ocr_engine_stats(const struct ocr_engine *e, struct ocr_stats *out);

/* ---- the gate ------------------------------------------------------------------------------ */

/* How text-like rgb looks, from stroke statistics on a downscaled greyscale copy: the number
 * of 12x12 cells (at 800 px long edge) that lie in a row (or column) of at least 3 adjacent
 * cells full of short opposite-signed edge pairs, as letters' strokes make them. 0 for a
 * smooth photo; a line of text scores >= 6. Cheap: ~2 ms for a 2000 px image. */
int ocr_gate_score(const struct image *rgb);
#define OCR_GATE_MIN_SCORE 6 /* ocr_gate_pass: score >= this */
bool ocr_gate_pass(const struct image *rgb);

/* ---- the crawl stage ----------------------------------------------------------------------- */

/* The "ocr" stage for crawl_params.plugins: run() reads the decoded photo, store() writes the
 * text into the catalog (catalog_text_set, source "ocr"; an empty result removes an old one).
 * e must outlive the crawl. */
struct crawl_plugin ocr_crawl_plugin(struct ocr_engine *e);

/* ---- measuring ----------------------------------------------------------------------------- */

/* Character error rate: Levenshtein distance between got and want over Unicode code points,
 * after collapsing runs of white space to one space and trimming, divided by the length of
 * want (1.0 when want is empty and got is not, 0 when both are). */
double ocr_cer(const char *got, const char *want);

#endif
