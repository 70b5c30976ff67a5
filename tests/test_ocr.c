/* test_ocr.c - OCR (Tesseract) on images with known text, the gate, the texts table and its
 * full-text search, and odd or broken inputs.
 *
 * Fixtures: tests/data/ocr/ (tools/gen_ocr_fixtures.py renders the gen_* images with known
 * words; the others are real images from ../shared/testdata, see tests/data/MANIFEST.tsv) and
 * expected.tsv (file, kind, text). Accuracy is the character error rate (ocr_cer): every
 * "text" image must be read at CER <= MAX_CER and their mean at <= MAX_MEAN_CER. */
#include "check.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/image.h"
#include "shoebox/ocr.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_CER      0.10 /* per image */
#define MAX_MEAN_CER 0.03

static const char *data_dir(void)
{
    const char *d = getenv("SHOEBOX_TESTDATA");
    return d ? d : "tests/data";
}

/* ---- CER ---------------------------------------------------------------------------------- */

static void test_cer(void)
{
    static const struct {
        const char *got, *want;
        double cer;
    } cases[] = {
        { "hello world", "hello world", 0.0 },
        { "  hello \n\n world ", "hello world", 0.0 }, /* white space collapsed */
        { "hallo world", "hello world", 1.0 / 11 },
        { "hello", "hello world", 6.0 / 11 },
        { "", "abcd", 1.0 },
        { "x", "", 1.0 },
        { "", "", 0.0 },
        { "Café", "Cafe", 0.25 }, /* code points, not bytes */
        { "crème", "crème", 0.0 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK_NEAR(cases[i].cer, ocr_cer(cases[i].got, cases[i].want), 1e-9);
}

/* ---- FTS query escaping ------------------------------------------------------------------- */

static void test_fts_query(void)
{
    static const struct {
        const char *in;
        bool all;
        const char *out; /* NULL: SB_EINVAL */
    } cases[] = {
        { "invoice 2023", true, "\"invoice\" AND \"2023\"" },
        { "invoice 2023", false, "\"invoice\" OR \"2023\"" },
        { "  one   does\tnot ", true, "\"one\" AND \"does\" AND \"not\"" },
        { "say \"hi\"", true, "\"say\" AND \"\"\"hi\"\"\"" }, /* quotes doubled */
        { "NEAR(a b)", true, "\"NEAR(a\" AND \"b)\"" },
        { "text:secret", true, "\"text:secret\"" }, /* no column filter */
        { "a OR b", true, "\"a\" AND \"OR\" AND \"b\"" },
        { "pre* ^start -not", true, "\"pre*\" AND \"^start\" AND \"-not\"" },
        { "crème", true, "\"crème\"" },
        { "* ^ - \"", true, NULL }, /* no word left */
        { "", true, NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *q = NULL;
        struct sb_err err;
        int rc = catalog_text_fts_query(cases[i].in, cases[i].all, &q, &err);
        if (cases[i].out) {
            CHECK_EQ_INT(SB_OK, rc);
            CHECK_EQ_STR(cases[i].out, q);
        } else {
            CHECK_EQ_INT(SB_EINVAL, rc);
        }
        free(q);
    }
}

/* ---- the texts table and full-text search ------------------------------------------------- */

static int64_t add_photo(struct catalog *cat, const char *path, int i)
{
    static const char *stages[] = { "probe", NULL };
    struct catalog_stat st = { 100 + i, 1, 1, 10 + i, 1 };
    unsigned char hash[16] = { 0 };
    hash[0] = (unsigned char)i;
    hash[15] = 0x5a;
    int64_t pid = 0;
    struct catalog_file *files = NULL;
    size_t n = 0;
    CHECK_EQ_INT(SB_OK, catalog_file_touch(cat, path, &st, NULL));
    CHECK_EQ_INT(SB_OK, catalog_files_pending(cat, 10, &files, &n, NULL));
    for (size_t k = 0; k < n; k++) {
        if (strcmp(files[k].path, path) == 0)
            CHECK_EQ_INT(SB_OK, catalog_file_set_photo(cat, files[k].id, hash, 100, "png", stages,
                                                       &pid, NULL, NULL));
    }
    catalog_files_free(files, n);
    return pid;
}

static int64_t search_first(struct catalog *cat, const char *q, bool all, size_t *n)
{
    struct catalog_text_hit *hits = NULL;
    struct sb_err err;
    *n = 0;
    int rc = catalog_text_search(cat, q, all, NULL, 10, &hits, n, &err);
    if (rc)
        fprintf(stderr, "search '%s': %s\n", q, err.msg);
    CHECK_EQ_INT(SB_OK, rc);
    int64_t first = *n ? hits[0].photo_id : 0;
    if (*n)
        CHECK(hits[0].score > 0);
    free(hits);
    return first;
}

static void test_texts(const char *tmp)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/test_ocr.%d/catalog.db", tmp, (int)getpid());
    struct catalog *cat = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, catalog_open(path, false, &cat, &err));
    if (!cat)
        return;
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    int64_t meme = add_photo(cat, "/lib/meme.jpg", 1);
    int64_t doc = add_photo(cat, "/lib/invoice.png", 2);
    int64_t cafe = add_photo(cat, "/lib/cafe.png", 3);
    CHECK(meme && doc && cafe);
    CHECK_EQ_INT(SB_OK, catalog_text_set(cat, meme, "ocr", "ONE DOES NOT SIMPLY\nWALK INTO MORDOR",
                                         91.5, "tesseract-test", &err));
    CHECK_EQ_INT(SB_OK,
                 catalog_text_set(cat, doc, "ocr", "INVOICE 2023\nInvoice number: 4711\nTotal due",
                                  88.0, NULL, &err));
    CHECK_EQ_INT(SB_OK, catalog_text_set(cat, cafe, "ocr", "Café crème à la carte", (double)NAN,
                                         NULL, &err));
    CHECK_EQ_INT(SB_OK, catalog_text_set(cat, cafe, "caption", "a cup of coffee on a table",
                                         (double)NAN, NULL, &err));
    CHECK_EQ_INT(SB_ENOENT, catalog_text_set(cat, 99999, "ocr", "x", 1.0, NULL, &err));
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));

    char *t = NULL;
    double c = 0;
    CHECK_EQ_INT(SB_OK, catalog_text_get(cat, meme, "ocr", &t, &c, &err));
    CHECK_EQ_STR("ONE DOES NOT SIMPLY\nWALK INTO MORDOR", t);
    CHECK_NEAR(91.5, c, 1e-9);
    free(t);
    t = NULL;
    CHECK_EQ_INT(SB_OK, catalog_text_get(cat, cafe, "ocr", &t, &c, &err));
    CHECK(isnan(c));
    free(t);
    t = NULL;
    CHECK_EQ_INT(SB_ENOENT, catalog_text_get(cat, meme, "caption", &t, &c, &err));

    size_t n = 0;
    CHECK_EQ_INT(meme, search_first(cat, "one does not simply", true, &n));
    CHECK_EQ_INT(1, n);
    CHECK_EQ_INT(doc, search_first(cat, "invoice 2023", true, &n));
    CHECK_EQ_INT(1, n);
    CHECK_EQ_INT(doc, search_first(cat, "Invoice", true, &n));           /* case-insensitive */
    CHECK_EQ_INT(cafe, search_first(cat, "creme a la carte", true, &n)); /* diacritics */
    CHECK_EQ_INT(cafe, search_first(cat, "coffee", true, &n));           /* other sources */
    search_first(cat, "mordor invoice", true, &n);
    CHECK_EQ_INT(0, n); /* AND: no photo has both */
    search_first(cat, "mordor invoice", false, &n);
    CHECK_EQ_INT(2, n); /* OR: both */
    /* FTS5 syntax in user input is text, never an error or an injection */
    static const char *nasty[] = {
        "NEAR(one simply)", "text:one",           "one*", "\"unbalanced", "one AND", "^one", "(one",
        "one OR NOT",       "'; DROP TABLE texts"
    };
    for (size_t i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++)
        search_first(cat, nasty[i], true, &n);
    /* replacing a text updates the index; an empty one removes it */
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_text_set(cat, meme, "ocr", "brace yourselves", 50, NULL, &err));
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    search_first(cat, "mordor", true, &n);
    CHECK_EQ_INT(0, n);
    CHECK_EQ_INT(meme, search_first(cat, "brace", true, &n));
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_text_set(cat, meme, "ocr", "", 0, NULL, &err));
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    search_first(cat, "brace", true, &n);
    CHECK_EQ_INT(0, n);
    CHECK_EQ_INT(SB_ENOENT, catalog_text_get(cat, meme, "ocr", &t, &c, &err));
    /* a missing file hides the photo from search */
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_file_set_missing(cat, 2, &err)); /* file id 2: invoice.png */
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    search_first(cat, "invoice", true, &n);
    CHECK_EQ_INT(0, n);
    CHECK_EQ_INT(SB_OK, catalog_check(cat, &err));
    catalog_close(cat);
}

/* ---- OCR accuracy and the gate ------------------------------------------------------------ */

static struct image *load(const char *path)
{
    struct image_decode_params dp = image_decode_default_params();
    dp.min_long = ocr_default_params().min_long;
    struct image *img = NULL;
    struct sb_err err;
    if (image_decode_file(path, &dp, &img, NULL, &err)) {
        fprintf(stderr, "decode '%s': %s\n", path, err.msg);
        return NULL;
    }
    return img;
}

static void test_accuracy(struct ocr_engine *e)
{
    char path[8192];
    snprintf(path, sizeof(path), "%s/ocr/expected.tsv", data_dir());
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    char line[4096];
    double sum = 0.0;
    int ntext = 0, gate_missed = 0, nother = 0;
    fprintf(stderr, "%-36s %-11s %5s %6s  %s\n", "file", "kind", "gate", "CER", "text");
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char *kind = strchr(line, '\t');
        char *want = kind ? strchr(kind + 1, '\t') : NULL;
        if (!want || strncmp(line, "file\t", 5) == 0)
            continue;
        *kind++ = '\0';
        *want++ = '\0';
        snprintf(path, sizeof(path), "%s/ocr/%s", data_dir(), line);
        struct image *img = load(path);
        CHECK(img != NULL);
        if (!img)
            continue;
        int score = ocr_gate_score(img);
        struct ocr_text t;
        struct sb_err err;
        int rc = ocr_engine_read(e, ntext % 2, img, &t, &err); /* both workers */
        CHECK_EQ_INT(SB_OK, rc);
        if (rc) {
            fprintf(stderr, "%s: %s\n", line, err.msg);
            image_free(img);
            continue;
        }
        double cer = ocr_cer(t.text, want);
        char flat[80];
        snprintf(flat, sizeof(flat), "%s", t.text);
        for (char *c = flat; *c; c++)
            *c = *c == '\n' ? '|' : *c;
        fprintf(stderr, "%-36s %-11s %5d %6.3f  %s\n", line, kind, score,
                strcmp(kind, "text") == 0 ? cer : (double)NAN, flat);
        if (strcmp(kind, "text") == 0) {
            ntext++;
            sum += cer;
            CHECK(cer <= MAX_CER);
            if (!t.gated && t.text[0])
                CHECK(t.confidence > 50.0f);
            if (score < OCR_GATE_MIN_SCORE)
                gate_missed++;
        } else {
            nother++;
            if (strcmp(kind, "hard") == 0)
                CHECK(score >= OCR_GATE_MIN_SCORE); /* not read well, but not skipped */
        }
        ocr_text_release(&t);
        image_free(img);
    }
    fclose(f);
    CHECK(ntext >= 10);
    double mean = ntext ? sum / ntext : 1.0;
    fprintf(stderr,
            "OCR: %d text images, mean CER %.4f (limit %.2f per image, %.2f mean); "
            "gate passes %d/%d of them; %d other images\n",
            ntext, mean, MAX_CER, MAX_MEAN_CER, ntext - gate_missed, ntext, nother);
    CHECK(mean <= MAX_MEAN_CER);
    CHECK_EQ_INT(0, gate_missed);
}

/* The gate on photos without text: the samples/ photos except Landscape_6.jpg (its stored
 * pixels carry a big "6" and orientation labels). */
static void test_gate_photos(struct ocr_engine *e)
{
    static const char *photos[] = { "cat_chelsea.png", "coffee_cup.png", "hubble_deep_field.jpg",
                                    "kodak_kodim03_hats.png", "rocket_launch_pad_night.jpg" };
    char path[1024];
    int skipped = 0;
    for (size_t i = 0; i < sizeof(photos) / sizeof(photos[0]); i++) {
        snprintf(path, sizeof(path), "%s/../../samples/%s", data_dir(), photos[i]);
        struct image *img = load(path);
        CHECK(img != NULL);
        if (!img)
            continue;
        int score = ocr_gate_score(img);
        struct ocr_text t;
        CHECK_EQ_INT(SB_OK, ocr_engine_read(e, 0, img, &t, NULL));
        fprintf(stderr, "no text: %-28s gate %4d%s  read '%.60s'\n", photos[i], score,
                t.gated ? " (skipped)" : "", t.text ? t.text : "");
        skipped += t.gated;
        ocr_text_release(&t);
        image_free(img);
    }
    fprintf(stderr, "gate: skipped %d of %zu photos without text\n", skipped,
            sizeof(photos) / sizeof(photos[0]));
    CHECK(skipped >= 3);
}

/* ---- odd inputs --------------------------------------------------------------------------- */

static void test_odd(struct ocr_engine *e)
{
    struct sb_err err;
    struct ocr_text t;
    struct image bad = { 0, 0, NULL };
    CHECK_EQ_INT(SB_EINVAL, ocr_engine_read(e, 0, &bad, &t, &err));
    CHECK_EQ_INT(SB_EINVAL, ocr_engine_read(e, 0, NULL, &t, &err));
    struct image *one = image_new(1, 1);
    CHECK_EQ_INT(SB_EINVAL, ocr_engine_read(e, 7, one, &t, &err)); /* no such worker */
    static const int sizes[][2] = { { 1, 1 }, { 3, 500 }, { 500, 3 }, { 64, 64 }, { 300, 200 } };
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        struct image *img = image_new(sizes[i][0], sizes[i][1]);
        CHECK(img != NULL);
        if (!img)
            continue;
        size_t n = (size_t)img->w * img->h * 3;
        unsigned s = 12345u + (unsigned)i;
        for (size_t k = 0; k < n; k++) { /* noise: the worst case for the gate and Tesseract */
            s = s * 1103515245u + 12345u;
            img->px[k] = (unsigned char)(s >> 16);
        }
        CHECK_EQ_INT(SB_OK, ocr_engine_read(e, 1, img, &t, &err));
        CHECK(t.text != NULL);
        ocr_text_release(&t);
        memset(img->px, 0, n); /* all black */
        CHECK_EQ_INT(0, ocr_gate_score(img));
        CHECK_EQ_INT(SB_OK, ocr_engine_read(e, 1, img, &t, &err));
        CHECK(t.gated);
        ocr_text_release(&t);
        image_free(img);
    }
    image_free(one);
    /* languages */
    CHECK_EQ_INT(SB_OK, ocr_check_lang("eng", NULL, &err));
    CHECK_EQ_INT(SB_EINVAL, ocr_check_lang("../etc/passwd", NULL, &err));
    CHECK_EQ_INT(SB_EINVAL, ocr_check_lang("eng++deu", NULL, &err));
    CHECK_EQ_INT(SB_EINVAL, ocr_check_lang("", NULL, &err));
    CHECK_EQ_INT(SB_ENOENT, ocr_check_lang("eng+xqz_sim", NULL, &err));
    CHECK(strstr(err.msg, "tesseract-ocr-xqz-sim") != NULL);
    struct ocr_engine *bad_e = NULL;
    struct ocr_params p = ocr_default_params();
    p.lang = "xqz";
    CHECK_EQ_INT(SB_ENOENT, ocr_engine_new(&p, 1, &bad_e, &err));
    CHECK(bad_e == NULL);
    CHECK_EQ_INT(SB_EINVAL, ocr_engine_new(NULL, 0, &bad_e, &err));
}

int main(void)
{
    const char *tmp = getenv("SHOEBOX_TMP");
    test_cer();
    test_fts_query();
    test_texts(tmp ? tmp : "/tmp");
    struct ocr_engine *e = NULL;
    struct sb_err err;
    struct ocr_params p = ocr_default_params();
    int rc = ocr_engine_new(&p, 2, &e, &err);
    if (rc)
        fprintf(stderr, "ocr engine: %s\n", err.msg);
    CHECK_EQ_INT(SB_OK, rc);
    if (e) {
        CHECK(strncmp(ocr_engine_model(e), "tesseract-", 10) == 0);
        test_accuracy(e);
        test_gate_photos(e);
        test_odd(e);
        struct ocr_stats st;
        ocr_engine_stats(e, &st);
        CHECK(st.images > 0 && st.gated > 0 && st.with_text >= 10);
        ocr_engine_free(e);
    }
    return check_exit();
}
