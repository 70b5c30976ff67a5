/* ocr.c - Tesseract through its C API, one TessBaseAPI per pool worker (see ocr.h).
 *
 * An image goes through: the gate (gate.c; skipped photos cost ~2 ms), a greyscale copy at a
 * resolution Tesseract reads well (long edge 1000-2600 px: small screenshots are enlarged,
 * big photos reduced), recognition in sparse-text mode (PSM 11: photos have words scattered
 * over them, not a page layout; on documents it reads the same words), and a word filter that
 * keeps words Tesseract is confident of and that contain a letter or digit (photos give
 * low-confidence junk like "a>" from foliage). When that leaves (almost) nothing and the osd
 * traineddata is installed, orientation detection says whether the image is turned; it is
 * then read again upright. */
#include "internal.h"

#include "shoebox/ocr.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <leptonica/allheaders.h>
#include <tesseract/capi.h>

#define OCR_MAX_LONG  2600 /* larger images are reduced to OCR_REDUCE_TO */
#define OCR_REDUCE_TO 2000
#define OCR_MIN_LONG  1000 /* smaller ones are enlarged (x2 at most) */
#define OCR_OSD_BELOW 8    /* kept characters under which orientation detection is tried */
#define OCR_OSD_CONF  1.5f /* orientation confidence needed to turn the image */
#define OCR_LANG_MAX  128

static const char *const tessdata_dirs[] = {
    "/usr/share/tesseract-ocr/5/tessdata",    /* Debian 12, Ubuntu 22.04+ */
    "/usr/share/tesseract-ocr/4.00/tessdata", /* Debian 11 */
    "/usr/share/tessdata",                    /* Fedora, Arch */
    "/usr/local/share/tessdata",              /* built from source, Homebrew (Intel) */
    "/opt/homebrew/share/tessdata",           /* Homebrew (Apple silicon) */
};

struct ocr_worker {
    TessBaseAPI *api; /* lang; NULL until this worker's first image */
    TessBaseAPI *osd; /* "osd"; NULL until needed */
    bool osd_failed;
    struct ocr_stats stats;
};

struct ocr_engine {
    struct ocr_params p;
    char lang[OCR_LANG_MAX];
    char tessdata[4096];
    char model[160];
    bool have_osd;
    int nworkers;
    struct ocr_worker *w; /* [nworkers]; each slot touched only by its worker */
};

struct ocr_params ocr_default_params(void)
{
    struct ocr_params p;
    memset(&p, 0, sizeof(p));
    p.lang = OCR_DEFAULT_LANG;
    p.min_long = 2000;
    p.gate = true;
    p.osd = true;
    p.min_word_conf = 65.0f;
    return p;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool has_traineddata(const char *dir, const char *lang)
{
    char path[4352];
    int n = snprintf(path, sizeof(path), "%s/%s.traineddata", dir, lang);
    return n > 0 && (size_t)n < sizeof(path) && file_exists(path);
}

bool ocr_tessdata_dir(const char *tessdata, char *buf, size_t cap)
{
    const char *env = getenv("TESSDATA_PREFIX");
    const char *dir = NULL;
    if (tessdata && *tessdata)
        dir = tessdata;
    else if (env && *env)
        dir = env;
    for (size_t i = 0; !dir && i < sizeof(tessdata_dirs) / sizeof(tessdata_dirs[0]); i++) {
        if (has_traineddata(tessdata_dirs[i], "eng") || has_traineddata(tessdata_dirs[i], "osd"))
            dir = tessdata_dirs[i];
    }
    if (!dir)
        return false;
    int n = snprintf(buf, cap, "%s", dir);
    return n > 0 && (size_t)n < cap;
}

/* Debian names a language pack after the traineddata: chi_sim -> tesseract-ocr-chi-sim. */
static void debian_package(const char *lang, size_t n, char *buf, size_t cap)
{
    int k = snprintf(buf, cap, "tesseract-ocr-");
    for (size_t i = 0; i < n && k > 0 && (size_t)k + 1 < cap; i++) {
        char c = lang[i];
        buf[k++] = c == '_' ? '-' : (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
    if (k > 0 && (size_t)k < cap)
        buf[k] = '\0';
}

int ocr_check_lang(const char *lang, const char *tessdata, struct sb_err *err)
{
    if (!lang || !*lang || strlen(lang) >= OCR_LANG_MAX)
        return sb_fail(err, SB_EINVAL, "OCR language '%s': want names like eng or deu+eng",
                       lang ? lang : "");
    for (const char *c = lang; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '_' || *c == '+';
        if (!ok) /* also keeps paths out of the name */
            return sb_fail(err, SB_EINVAL, "OCR language '%s': want names like eng or deu+eng",
                           lang);
    }
    char dir[4096];
    if (!ocr_tessdata_dir(tessdata, dir, sizeof(dir)))
        return sb_fail(err, SB_ENOENT,
                       "no Tesseract language data found: install the Debian package "
                       "tesseract-ocr-eng (or set TESSDATA_PREFIX)");
    const char *p = lang;
    while (*p) {
        const char *plus = strchr(p, '+');
        size_t n = plus ? (size_t)(plus - p) : strlen(p);
        if (n == 0)
            return sb_fail(err, SB_EINVAL, "OCR language '%s': empty name between '+'", lang);
        char one[OCR_LANG_MAX];
        snprintf(one, sizeof(one), "%.*s", (int)n, p);
        if (!has_traineddata(dir, one)) {
            char pkg[OCR_LANG_MAX + 16];
            debian_package(one, n, pkg, sizeof(pkg));
            return sb_fail(err, SB_ENOENT,
                           "OCR language '%s' is not installed (no %s.traineddata in '%s'): "
                           "install the Debian package %s",
                           one, one, dir, pkg);
        }
        p += n;
        if (*p == '+')
            p++;
    }
    return SB_OK;
}

/* ---- engine ------------------------------------------------------------------------------- */

static TessBaseAPI *api_new(const struct ocr_engine *e, const char *lang, TessOcrEngineMode oem)
{
    TessBaseAPI *api = TessBaseAPICreate();
    if (!api)
        return NULL;
    /* Tesseract talks on stderr ("Estimating resolution as ..."): results are ours to
     * report. Debug variables must be set before Init to take effect on loading. */
    char *names[] = { "debug_file" };
    char *values[] = { "/dev/null" };
    if (TessBaseAPIInit4(api, e->tessdata, lang, oem, NULL, 0, names, values, 1, 0) != 0) {
        TessBaseAPIDelete(api);
        return NULL;
    }
    TessBaseAPISetVariable(api, "debug_file", "/dev/null");
    return api;
}

int ocr_engine_new(const struct ocr_params *p, int nworkers, struct ocr_engine **out,
                   struct sb_err *err)
{
    struct ocr_params def = ocr_default_params();
    if (!p)
        p = &def;
    if (nworkers < 1 || nworkers > 4096)
        return sb_fail(err, SB_EINVAL, "ocr: %d workers", nworkers);
    const char *lang = p->lang && *p->lang ? p->lang : OCR_DEFAULT_LANG;
    int rc = ocr_check_lang(lang, p->tessdata, err);
    if (rc)
        return rc;
    struct ocr_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return sb_fail(err, SB_ENOMEM, "ocr: out of memory");
    e->p = *p;
    snprintf(e->lang, sizeof(e->lang), "%s", lang);
    e->p.lang = e->lang;
    if (!ocr_tessdata_dir(p->tessdata, e->tessdata, sizeof(e->tessdata))) {
        rc = sb_fail(err, SB_ENOENT, "no Tesseract language data found");
        goto out;
    }
    e->p.tessdata = e->tessdata;
    e->have_osd = p->osd && has_traineddata(e->tessdata, "osd");
    snprintf(e->model, sizeof(e->model), "tesseract-%s:%s", TessVersion(), e->lang);
    e->nworkers = nworkers;
    e->w = calloc((size_t)nworkers, sizeof(*e->w));
    if (!e->w) {
        rc = sb_fail(err, SB_ENOMEM, "ocr: out of memory");
        goto out;
    }
    /* OpenMP threads inside Tesseract would multiply with our pool's workers (and spin while
     * waiting): one thread each. Before the first Tesseract object is made, from main's
     * thread; an explicit setting by the user wins. */
    setenv("OMP_THREAD_LIMIT", "1", 0);
    /* Leptonica reports oddities of photos ("box outside rectangle") on stderr; they are not
     * errors of ours */
    setMsgSeverity(L_SEVERITY_NONE);
    e->w[0].api = api_new(e, e->lang, OEM_LSTM_ONLY);
    if (!e->w[0].api) {
        rc = sb_fail(err, SB_EMODEL, "ocr: Tesseract could not load '%s' from '%s'", e->lang,
                     e->tessdata);
        goto out;
    }
    *out = e;
    e = NULL;
out:
    ocr_engine_free(e);
    return rc;
}

void ocr_engine_free(struct ocr_engine *e)
{
    if (!e)
        return;
    for (int i = 0; e->w && i < e->nworkers; i++) {
        if (e->w[i].api) {
            TessBaseAPIEnd(e->w[i].api);
            TessBaseAPIDelete(e->w[i].api);
        }
        if (e->w[i].osd) {
            TessBaseAPIEnd(e->w[i].osd);
            TessBaseAPIDelete(e->w[i].osd);
        }
    }
    free(e->w);
    free(e);
}

const char *ocr_engine_model(const struct ocr_engine *e)
{
    return e->model;
}

void ocr_engine_stats(const struct ocr_engine *e, struct ocr_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < e->nworkers; i++) {
        out->images += e->w[i].stats.images;
        out->gated += e->w[i].stats.gated;
        out->with_text += e->w[i].stats.with_text;
        out->rotated += e->w[i].stats.rotated;
    }
}

void ocr_text_release(struct ocr_text *t)
{
    if (!t)
        return;
    free(t->text);
    memset(t, 0, sizeof(*t));
}

/* ---- pixels ------------------------------------------------------------------------------- */

struct grey {
    int w, h;
    unsigned char *px; /* w * h, rows top to bottom */
};

/* A greyscale copy at the size Tesseract reads best (see the file comment). */
static int grey_for_ocr(const struct image *rgb, struct grey *g, struct sb_err *err)
{
    int w = rgb->w, h = rgb->h, lng = w > h ? w : h;
    const struct image *src = rgb;
    struct image *scaled = NULL;
    double f = 1.0;
    if (lng > OCR_MAX_LONG)
        f = (double)OCR_REDUCE_TO / lng;
    else if (lng < OCR_MIN_LONG)
        f = (double)OCR_MIN_LONG / lng > 2.0 ? 2.0 : (double)OCR_MIN_LONG / lng;
    if (f != 1.0) {
        int nw = (int)(w * f + 0.5), nh = (int)(h * f + 0.5);
        scaled = image_resize(rgb, nw > 0 ? nw : 1, nh > 0 ? nh : 1, IMAGE_FILTER_BICUBIC);
        if (!scaled)
            return sb_fail(err, SB_ENOMEM, "ocr: out of memory");
        src = scaled;
    }
    size_t n;
    if (!sb_mul_size((size_t)src->w, (size_t)src->h, &n)) {
        image_free(scaled);
        return sb_fail(err, SB_ETOOBIG, "ocr: image too large");
    }
    g->px = malloc(n ? n : 1);
    if (!g->px) {
        image_free(scaled);
        return sb_fail(err, SB_ENOMEM, "ocr: out of memory");
    }
    g->w = src->w;
    g->h = src->h;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = src->px + 3 * i;
        /* ITU-R 601 luma, as PIL's convert("L") */
        g->px[i] = (unsigned char)((p[0] * 299u + p[1] * 587u + p[2] * 114u + 500u) / 1000u);
    }
    image_free(scaled);
    return SB_OK;
}

/* Turns g clockwise by deg (90, 180, 270) into out. */
static int grey_rotate(const struct grey *g, int deg, struct grey *out, struct sb_err *err)
{
    size_t n = (size_t)g->w * (size_t)g->h;
    out->px = malloc(n ? n : 1);
    if (!out->px)
        return sb_fail(err, SB_ENOMEM, "ocr: out of memory");
    bool swap = deg == 90 || deg == 270;
    out->w = swap ? g->h : g->w;
    out->h = swap ? g->w : g->h;
    for (int y = 0; y < g->h; y++) {
        for (int x = 0; x < g->w; x++) {
            int nx, ny;
            if (deg == 90) {
                nx = g->h - 1 - y;
                ny = x;
            } else if (deg == 180) {
                nx = g->w - 1 - x;
                ny = g->h - 1 - y;
            } else {
                nx = y;
                ny = g->w - 1 - x;
            }
            out->px[(size_t)ny * out->w + nx] = g->px[(size_t)y * g->w + x];
        }
    }
    return SB_OK;
}

/* ---- recognition -------------------------------------------------------------------------- */

/* A word worth keeping has a letter or digit: ASCII alnum, a Latin-1/Latin Extended letter
 * (U+00C0-U+024F, "é"), or any code point from U+0370 on (Greek, Cyrillic, CJK, ... for other
 * language packs). Symbols such as "¥" or "©" alone are junk read from textures. */
static size_t count_alnum(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned c = *p;
        if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
            n++;
        else if (c >= 0xC3 && c < 0xC0 + 0x20) /* lead byte of U+00C0..U+07FF */
            n++;
        else if (c == 0xE2 && (p[1] == 0x80 || p[1] == 0x81)) /* U+2000-U+207F: “ ” – … */
            continue;
        else if (c >= 0xE0) /* lead byte of U+0800 and up */
            n++;
    }
    return n;
}

/* Recognises g with api and keeps the confident words: *text (malloc'd) has one line per
 * text line, *chars the kept characters, *conf their mean word confidence (weighted by
 * length). */
static int recognise(const struct ocr_engine *e, TessBaseAPI *api, const struct grey *g,
                     char **text, size_t *chars, float *conf, struct sb_err *err)
{
    struct sb_buf b;
    sb_buf_init(&b);
    double conf_sum = 0.0;
    size_t kept = 0;
    TessBaseAPISetPageSegMode(api, PSM_SPARSE_TEXT);
    TessBaseAPISetImage(api, g->px, g->w, g->h, 1, g->w);
    TessBaseAPISetSourceResolution(api, 300);
    if (TessBaseAPIRecognize(api, NULL) != 0) {
        TessBaseAPIClear(api);
        return sb_fail(err, SB_EINTERNAL, "ocr: Tesseract failed to recognise the image");
    }
    TessResultIterator *it = TessBaseAPIGetIterator(api);
    bool line_has_words = false;
    if (it) {
        const TessPageIterator *pit = TessResultIteratorGetPageIteratorConst(it);
        do {
            if (TessPageIteratorIsAtBeginningOf(pit, RIL_TEXTLINE))
                line_has_words = false;
            char *word = TessResultIteratorGetUTF8Text(it, RIL_WORD);
            float c = TessResultIteratorConfidence(it, RIL_WORD);
            size_t n = word ? strlen(word) : 0, alnum = word ? count_alnum(word) : 0;
            /* a word with a single letter or digit is kept only when Tesseract is sure of it
             * ("4", "e" or "“a" out of foliage are common) */
            float need = alnum == 1 ? 90.0f : e->p.min_word_conf;
            if (word && alnum > 0 && c >= need) {
                if (line_has_words)
                    sb_buf_puts(&b, " ");
                else if (b.len)
                    sb_buf_puts(&b, "\n");
                sb_buf_puts(&b, word);
                line_has_words = true;
                kept += n;
                conf_sum += (double)c * (double)n;
            }
            TessDeleteText(word);
        } while (TessResultIteratorNext(it, RIL_WORD));
        TessResultIteratorDelete(it);
    }
    TessBaseAPIClear(api);
    if (!b.data || b.failed) {
        bool failed = b.failed;
        sb_buf_release(&b);
        if (failed)
            return sb_fail(err, SB_ENOMEM, "ocr: out of memory");
        *text = sb_strdup("");
        if (!*text)
            return sb_fail(err, SB_ENOMEM, "ocr: out of memory");
        *chars = 0;
        *conf = 0.0f;
        return SB_OK;
    }
    *text = b.data;
    *chars = kept;
    *conf = kept ? (float)(conf_sum / (double)kept) : 0.0f;
    return SB_OK;
}

/* The clockwise turn (0, 90, 180, 270) that makes g upright, per Tesseract's OSD. */
static int detect_turn(struct ocr_engine *e, struct ocr_worker *w, const struct grey *g)
{
    if (!e->have_osd || w->osd_failed)
        return 0;
    if (!w->osd) {
        w->osd = api_new(e, "osd", OEM_TESSERACT_ONLY);
        if (!w->osd) {
            w->osd_failed = true;
            return 0;
        }
    }
    int deg = 0;
    float oconf = 0.0f, sconf = 0.0f;
    const char *script = NULL;
    TessBaseAPISetPageSegMode(w->osd, PSM_OSD_ONLY);
    TessBaseAPISetImage(w->osd, g->px, g->w, g->h, 1, g->w);
    TessBaseAPISetSourceResolution(w->osd, 300);
    /* script points into the osd unicharset in Tesseract 5 (capi.h's "TessDeleteText it" is
     * stale: freeing it corrupts the heap, as valgrind showed) */
    BOOL ok = TessBaseAPIDetectOrientationScript(w->osd, &deg, &oconf, &script, &sconf);
    TessBaseAPIClear(w->osd);
    if (!ok || oconf < OCR_OSD_CONF)
        return 0;
    /* orient_deg is how far the page is turned clockwise; undo it */
    deg = ((deg % 360) + 360) % 360;
    return deg == 90 || deg == 180 || deg == 270 ? (360 - deg) % 360 : 0;
}

int ocr_engine_read(struct ocr_engine *e, int worker, const struct image *rgb, struct ocr_text *out,
                    struct sb_err *err)
{
    if (worker < 0 || worker >= e->nworkers)
        return sb_fail(err, SB_EINVAL, "ocr: worker %d of %d", worker, e->nworkers);
    if (!rgb || rgb->w <= 0 || rgb->h <= 0 || !rgb->px)
        return sb_fail(err, SB_EINVAL, "ocr: no image");
    struct ocr_worker *w = &e->w[worker];
    struct grey g = { 0 }, turned = { 0 };
    char *text = NULL, *text2 = NULL;
    size_t chars = 0, chars2 = 0;
    float conf = 0.0f, conf2 = 0.0f;
    int rotation = 0;
    int rc = SB_OK;
    memset(out, 0, sizeof(*out));
    w->stats.images++;
    int hcells = 0, vcells = 0;
    int score = ocr_gate_measure(rgb, &hcells, &vcells);
    if (e->p.gate && score < OCR_GATE_MIN_SCORE) {
        w->stats.gated++;
        out->text = sb_strdup("");
        out->gated = true;
        return out->text ? SB_OK : sb_fail(err, SB_ENOMEM, "ocr: out of memory");
    }
    if (!w->api) {
        w->api = api_new(e, e->lang, OEM_LSTM_ONLY);
        if (!w->api)
            return sb_fail(err, SB_EMODEL, "ocr: Tesseract could not load '%s'", e->lang);
    }
    rc = grey_for_ocr(rgb, &g, err);
    if (rc)
        goto out;
    rc = recognise(e, w->api, &g, &text, &chars, &conf, err);
    if (rc)
        goto out;
    if (chars < OCR_OSD_BELOW) {
        /* turned text: ask OSD; it needs a few dozen letters, so for a short turned line
         * (the gate saw stroke runs going down rather than across) try both quarter turns */
        int turns[2] = { detect_turn(e, w, &g), 0 };
        if (!turns[0] && e->p.osd && vcells > hcells) {
            turns[0] = 90;
            turns[1] = 270;
        }
        for (int i = 0; i < 2 && turns[i]; i++) {
            rc = grey_rotate(&g, turns[i], &turned, err);
            if (!rc)
                rc = recognise(e, w->api, &turned, &text2, &chars2, &conf2, err);
            free(turned.px);
            turned.px = NULL;
            if (rc)
                goto out;
            if (chars2 > chars) {
                free(text);
                text = text2;
                chars = chars2;
                conf = conf2;
                rotation = turns[i];
            } else {
                free(text2);
            }
            text2 = NULL;
        }
        if (rotation)
            w->stats.rotated++;
    }
    if (chars)
        w->stats.with_text++;
    out->text = text;
    out->confidence = conf;
    out->rotation = rotation;
    text = NULL;
out:
    free(text);
    free(text2);
    free(g.px);
    free(turned.px);
    return rc;
}

/* ---- the crawl stage ---------------------------------------------------------------------- */

static int plugin_run(void *user, int worker, const struct image *rgb, const char *path,
                      void **result, struct sb_err *err)
{
    (void)path;
    struct ocr_text *t = calloc(1, sizeof(*t));
    if (!t)
        return sb_fail(err, SB_ENOMEM, "ocr: out of memory");
    int rc = ocr_engine_read(user, worker, rgb, t, err);
    if (rc) {
        free(t);
        return rc;
    }
    *result = t;
    return SB_OK;
}

static int plugin_store(void *user, struct catalog *cat, int64_t photo_id, void *result,
                        const float *embedding, int dim, struct sb_err *err)
{
    (void)embedding;
    (void)dim;
    const struct ocr_engine *e = user;
    const struct ocr_text *t = result;
    int rc = catalog_text_set(cat, photo_id, OCR_TEXT_SOURCE, t ? t->text : NULL,
                              t ? (double)t->confidence : 0.0, ocr_engine_model(e), err);
    /* only a catalog failure stops the run; a vanished photo is this photo's failure */
    return rc == SB_ENOENT ? SB_EINVAL : rc;
}

static void plugin_free(void *user, void *result)
{
    (void)user;
    ocr_text_release(result);
    free(result);
}

struct crawl_plugin ocr_crawl_plugin(struct ocr_engine *e)
{
    struct crawl_plugin pl;
    memset(&pl, 0, sizeof(pl));
    pl.stage = OCR_STAGE;
    pl.needs_pixels = true;
    pl.min_long = e->p.min_long;
    pl.user = e;
    pl.run = plugin_run;
    pl.store = plugin_store;
    pl.free_result = plugin_free;
    return pl;
}

/* ---- measuring ---------------------------------------------------------------------------- */

/* Decodes UTF-8 into code points with white space collapsed and trimmed; invalid bytes count
 * as one code point each. *out is malloc'd. */
static int normalise(const char *s, unsigned **out, size_t *n)
{
    size_t len = strlen(s), k = 0;
    unsigned *v = malloc((len + 1) * sizeof(unsigned));
    if (!v)
        return SB_ENOMEM;
    bool space = false;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        unsigned cp = c;
        size_t step = 1;
        if (c >= 0xC0 && c < 0xE0 && i + 1 < len) {
            cp = ((c & 0x1Fu) << 6) | ((unsigned char)s[i + 1] & 0x3Fu);
            step = 2;
        } else if (c >= 0xE0 && c < 0xF0 && i + 2 < len) {
            cp = ((c & 0x0Fu) << 12) | (((unsigned char)s[i + 1] & 0x3Fu) << 6) |
                 ((unsigned char)s[i + 2] & 0x3Fu);
            step = 3;
        } else if (c >= 0xF0 && i + 3 < len) {
            cp = ((c & 0x07u) << 18) | (((unsigned char)s[i + 1] & 0x3Fu) << 12) |
                 (((unsigned char)s[i + 2] & 0x3Fu) << 6) | ((unsigned char)s[i + 3] & 0x3Fu);
            step = 4;
        }
        i += step;
        if (cp == ' ' || cp == '\n' || cp == '\t' || cp == '\r' || cp == '\f' || cp == '\v') {
            space = k > 0;
            continue;
        }
        if (space)
            v[k++] = ' ';
        space = false;
        v[k++] = cp;
    }
    *out = v;
    *n = k;
    return SB_OK;
}

double ocr_cer(const char *got, const char *want)
{
    unsigned *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    size_t *row = NULL;
    double cer = 1.0;
    if (normalise(got ? got : "", &a, &na) || normalise(want ? want : "", &b, &nb))
        goto out;
    if (nb == 0) {
        cer = na ? 1.0 : 0.0;
        goto out;
    }
    row = malloc((nb + 1) * sizeof(size_t));
    if (!row)
        goto out;
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    cer = (double)row[nb] / (double)nb;
out:
    free(row);
    free(a);
    free(b);
    return cer;
}
