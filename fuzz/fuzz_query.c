/* fuzz_query.c - libFuzzer target: the search query language on arbitrary text.
 *
 * 1. search_parse_terms() (src/search/query.c: "W:term" weights, + and -, id:N, image paths,
 *    words joined into one text term) on the input split into words by search_split_query(),
 *    as the web's search box is (white space; "-dog" into "-" "dog"). The parsed
 *    terms must be sane: weights finite and within the +-1000 the parser allows, ids >= 1,
 *    texts present; search_query_words() must only join texts the terms hold.
 * 2. catalog_text_fts_query() (src/catalog/text.c), which escapes user text into an FTS5
 *    MATCH expression: the expression it produces must be accepted by SQLite FTS5 (an escaping
 *    bug shows as a syntax error or as a column filter / operator taken from user text) on an
 *    in-memory table with the catalog's tokenizer (FTS5 keywords and syntax in the rows). */
#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/search.h"

#include <ctype.h>
#include <math.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_WORDS = 64 };

static sqlite3 *db;
static sqlite3_stmt *match_st;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK)
        abort();
    /* the catalog's texts_fts tokenizer (src/catalog/schema.sql.h), as a plain FTS5 table */
    const char *sql = "CREATE VIRTUAL TABLE t USING fts5(text,"
                      " tokenize='unicode61 remove_diacritics 2');"
                      "INSERT INTO t(rowid, text) VALUES (1, 'a red rocket on the launch pad'),"
                      " (2, 'Crème brûlée at the café'), (3, 'stock-companies 2019 AND OR NOT'),"
                      " (4, 'text: column \"quoted\" NEAR(x y) ^start *star');";
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        abort();
    if (sqlite3_prepare_v2(db, "SELECT rowid FROM t WHERE t MATCH ?1", -1, &match_st, NULL) !=
        SQLITE_OK)
        abort();
    return 0;
}

/* A deterministic stand-in for "is this an existing image file": names ending in .jpg. */
static bool fake_is_file(const char *path)
{
    size_t n = strlen(path);
    return n > 4 && strcmp(path + n - 4, ".jpg") == 0;
}

static void check_terms(char *text)
{
    char *argv[MAX_WORDS];
    int argc = 0;
    struct sb_err split_err;
    if (search_split_query(text, argv, MAX_WORDS, &argc, &split_err) != SB_OK)
        return; /* too many words: the web answers 400 */
    struct search_term *terms = NULL;
    size_t n = 0;
    struct sb_err err;
    for (int with_files = 0; with_files < 2; with_files++) {
        if (search_parse_terms(argc, argv, with_files ? fake_is_file : NULL, &terms, &n, &err) !=
            SB_OK) {
            if (!err.msg[0])
                __builtin_trap(); /* an error always says why */
            continue;
        }
        if (n > (size_t)argc)
            __builtin_trap();
        size_t text_len = 0;
        for (size_t i = 0; i < n; i++) {
            const struct search_term *t = &terms[i];
            if (!isfinite(t->weight) || fabsf(t->weight) > 1000.0f)
                __builtin_trap();
            switch (t->kind) {
            case SEARCH_TERM_TEXT:
                if (!t->text || !t->text[0])
                    __builtin_trap();
                if (t->weight > 0.0f)
                    text_len += strlen(t->text) + 1;
                break;
            case SEARCH_TERM_IMAGE:
                if (!with_files || !t->text || !fake_is_file(t->text))
                    __builtin_trap();
                break;
            case SEARCH_TERM_ID:
                if (t->id < 1)
                    __builtin_trap();
                break;
            default:
                __builtin_trap();
            }
        }
        char *words = search_query_words(terms, n);
        if ((words == NULL) != (text_len == 0) || (words && strlen(words) + 1 != text_len))
            __builtin_trap();
        free(words);
        search_terms_free(terms, n);
    }
}

/* Runs q through FTS5 MATCH; returns how many rows matched. Any error is an escaping bug. */
static int run_match(const char *q)
{
    sqlite3_reset(match_st);
    sqlite3_bind_text(match_st, 1, q, -1, SQLITE_STATIC);
    int rows = 0, rc;
    while ((rc = sqlite3_step(match_st)) == SQLITE_ROW)
        rows++;
    if (rc != SQLITE_DONE)
        __builtin_trap(); /* sqlite3_errmsg(db) says what FTS5 did not accept */
    sqlite3_reset(match_st);
    return rows;
}

static void check_fts(const char *text)
{
    struct sb_err err;
    for (int all = 0; all < 2; all++) {
        char *q = NULL;
        if (catalog_text_fts_query(text, all != 0, &q, &err) != SB_OK)
            continue;
        run_match(q);
        free(q);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return -1;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* a query is a C string: it ends at the first NUL */
    check_fts(text);
    check_terms(text);
    free(text);
    return 0;
}
