/* query.c - rclip-style query algebra: "W:term" weights, + and - between terms, text, image
 * paths and id:N references; the weighted sum of the term vectors, renormalised. */
#include "shoebox/search.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Splits "W:rest" when W is a plain number (digits, '.', a leading sign) and rest is not empty:
 * "2:dog" -> 2, "dog"; "0.5:./pool.jpg" -> 0.5, "./pool.jpg". As in rclip, a text that starts
 * with a number and a colon ("16:9 screen") reads as a weight: write "1:16:9 screen". */
static bool split_weight(const char *s, float *w, const char **rest)
{
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || !colon[1] || colon - s > 16)
        return false;
    char num[20];
    size_t n = (size_t)(colon - s);
    memcpy(num, s, n);
    num[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        char c = num[i];
        if (!((c >= '0' && c <= '9') || c == '.' || (i == 0 && (c == '-' || c == '+'))))
            return false;
    }
    float v;
    if (sb_parse_f32(num, -1000.0f, 1000.0f, &v, NULL) != SB_OK)
        return false;
    *w = v;
    *rest = colon + 1;
    return true;
}

int search_split_query(char *buf, char **argv, int max, int *argc, struct sb_err *err)
{
    static char plus[] = "+", minus[] = "-";
    int n = 0;
    char *p = buf;
    while (*p) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        if (n + 2 > max)
            return sb_fail(err, SB_EINVAL, "query has too many words");
        char *start = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
        if ((start[0] == '+' || start[0] == '-') && start[1] &&
            !(start[1] >= '0' && start[1] <= '9')) {
            argv[n++] = start[0] == '+' ? plus : minus; /* "-dog" -> "-" "dog" */
            start++;
        }
        argv[n++] = start;
    }
    *argc = n;
    return SB_OK;
}

int search_parse_terms(int argc, char **argv, bool (*is_file)(const char *path),
                       struct search_term **terms, size_t *n, struct sb_err *err)
{
    struct search_term *t = calloc((size_t)argc + 1, sizeof(*t));
    if (!t)
        return sb_fail(err, SB_ENOMEM, "search: out of memory");
    size_t count = 0;
    float sign = 1.0f;
    bool want_term = true; /* at the start, and after an operator */
    int rc = SB_OK;
    /* text words are joined into one term until an operator: "poodle" "on" "a" "beach" */
    struct sb_buf *texts = calloc((size_t)argc + 1, sizeof(*texts));
    if (!texts) {
        free(t);
        return sb_fail(err, SB_ENOMEM, "search: out of memory");
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "+") == 0 || strcmp(a, "-") == 0) {
            if (want_term) {
                rc = sb_fail(err, SB_EINVAL, "'%s' must come between two terms", a);
                goto out;
            }
            sign = a[0] == '-' ? -1.0f : 1.0f;
            want_term = true;
            continue;
        }
        float w = 1.0f;
        const char *rest = a;
        split_weight(a, &w, &rest);
        bool image = is_file && is_file(rest);
        bool id = strncmp(rest, "id:", 3) == 0;
        if (!want_term && !image && !id && t[count - 1].kind == SEARCH_TERM_TEXT && rest == a) {
            /* another word of the same text term */
            sb_buf_puts(&texts[count - 1], " ");
            sb_buf_puts(&texts[count - 1], a);
            continue;
        }
        if (!want_term) {
            rc = sb_fail(err, SB_EINVAL, "put + or - between '%s' and the term before it", a);
            goto out;
        }
        struct search_term *x = &t[count];
        x->weight = sign * w;
        if (id) {
            int64_t v;
            if (sb_parse_i64(rest + 3, 1, INT64_MAX, &v, err) != SB_OK) {
                rc = sb_fail(err, SB_EINVAL, "'%s' is not id:N with a photo id", rest);
                goto out;
            }
            x->kind = SEARCH_TERM_ID;
            x->id = v;
        } else if (image) {
            x->kind = SEARCH_TERM_IMAGE;
            x->text = rest;
        } else {
            x->kind = SEARCH_TERM_TEXT;
            sb_buf_init(&texts[count]);
            sb_buf_puts(&texts[count], rest);
        }
        count++;
        want_term = false;
        sign = 1.0f;
    }
    if (want_term && count > 0) {
        rc = sb_fail(err, SB_EINVAL, "the query ends with an operator");
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        if (t[i].kind != SEARCH_TERM_TEXT)
            continue;
        if (texts[i].failed) {
            rc = sb_fail(err, SB_ENOMEM, "search: out of memory");
            goto out;
        }
        t[i].text = texts[i].data; /* ownership moves to the caller via search_terms_free */
        texts[i].data = NULL;
    }
out:
    for (int i = 0; i <= argc; i++)
        sb_buf_release(&texts[i]);
    free(texts);
    if (rc) {
        for (size_t i = 0; i < count; i++) {
            if (t[i].kind == SEARCH_TERM_TEXT)
                free((char *)(uintptr_t)t[i].text);
        }
        free(t);
        return rc;
    }
    *terms = t;
    *n = count;
    return SB_OK;
}

void search_terms_free(struct search_term *terms, size_t n)
{
    if (!terms)
        return;
    for (size_t i = 0; i < n; i++) {
        if (terms[i].kind == SEARCH_TERM_TEXT)
            free((char *)(uintptr_t)terms[i].text);
    }
    free(terms);
}

int search_combine(const float *vecs, const float *weights, size_t n, int dim, float *out,
                   struct sb_err *err)
{
    for (int j = 0; j < dim; j++)
        out[j] = 0.0f;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < dim; j++)
            out[j] += weights[i] * vecs[i * (size_t)dim + j];
    double norm = 0.0;
    for (int j = 0; j < dim; j++)
        norm += (double)out[j] * (double)out[j];
    norm = sqrt(norm);
    if (!(norm > 1e-6))
        return sb_fail(err, SB_EINVAL, "the terms cancel out: nothing left to search for");
    float inv = (float)(1.0 / norm);
    for (int j = 0; j < dim; j++)
        out[j] *= inv;
    return SB_OK;
}

char *search_query_words(const struct search_term *terms, size_t n)
{
    struct sb_buf b;
    sb_buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        if (terms[i].kind != SEARCH_TERM_TEXT || terms[i].weight <= 0.0f)
            continue;
        if (b.len)
            sb_buf_puts(&b, " ");
        sb_buf_puts(&b, terms[i].text);
    }
    if (b.failed || !b.len) {
        sb_buf_release(&b);
        return NULL;
    }
    return b.data;
}
