/* run.c - the query path the CLI and the web server share: turning terms into one query
 * vector (stored rows for photos the catalog knows, the caller's embedder for the rest). */
#include "shoebox/search.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int search_term_vector(struct catalog *cat, const struct vec_matrix *m, const struct search_term *t,
                       const struct search_embed *e, float *out, int64_t *photo_id,
                       struct sb_err *err)
{
    int64_t pid = 0;
    if (photo_id)
        *photo_id = 0;
    if (t->kind == SEARCH_TERM_ID) {
        pid = t->id;
    } else if (t->kind == SEARCH_TERM_IMAGE && cat) {
        char *real = realpath(t->text, NULL);
        if (real && catalog_photo_by_path(cat, real, &pid, NULL) != SB_OK)
            pid = 0;
        free(real);
    }
    if (pid) {
        int64_t row = search_find_row(m, pid);
        if (row >= 0) {
            search_row(m, (size_t)row, out);
            if (photo_id)
                *photo_id = pid;
            return SB_OK;
        }
        if (t->kind == SEARCH_TERM_ID)
            return sb_fail(err, SB_EINVAL, "photo id:%lld has no vector", (long long)pid);
    }
    if (t->kind == SEARCH_TERM_TEXT) {
        if (!e || !e->text)
            return sb_fail(err, SB_EMODEL, "searching by text needs the model");
        return e->text(e->user, t->text, out, m->dim, err);
    }
    /* an image file the catalog does not know: embed it */
    if (!e || !e->image)
        return sb_fail(err, SB_EINVAL, "'%s' is not in the catalog", t->text);
    return e->image(e->user, t->text, out, m->dim, err);
}

int search_query_vector(struct catalog *cat, const struct vec_matrix *m,
                        const struct search_term *terms, size_t n, const struct search_embed *e,
                        float *out, struct sb_err *err)
{
    size_t dim = (size_t)m->dim;
    float *vecs = malloc((n ? n : 1) * dim * sizeof(float));
    float *weights = malloc((n ? n : 1) * sizeof(float));
    int rc = SB_OK;
    if (!vecs || !weights) {
        rc = sb_fail(err, SB_ENOMEM, "search: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n && !rc; i++) {
        weights[i] = terms[i].weight;
        rc = search_term_vector(cat, m, &terms[i], e, vecs + i * dim, NULL, err);
    }
    if (!rc)
        rc = search_combine(vecs, weights, n, m->dim, out, err);
out:
    free(vecs);
    free(weights);
    return rc;
}

float search_default_min_score(const struct search_term *terms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (terms[i].kind == SEARCH_TERM_TEXT)
            return SEARCH_TEXT_MIN_SCORE;
    return SEARCH_IMAGE_MIN_SCORE;
}

void search_cache_dir(const char *db_path, char *buf, size_t cap)
{
    const char *slash = strrchr(db_path, '/');
    if (slash)
        snprintf(buf, cap, "%.*s/cache", (int)(slash - db_path), db_path);
    else
        snprintf(buf, cap, "cache");
}
