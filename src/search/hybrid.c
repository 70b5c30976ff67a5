/* hybrid.c - text queries ranked by pixels and words together.
 *
 * final = cosine + SEARCH_TEXT_ALPHA * text + SEARCH_TAG_BETA * tag, where text =
 * (bm25 / best bm25 of the query) * (share of the query's words found in the photo's texts), in
 * [0, 1], and tag is 1 when a tag of the photo equals the query or one of its words. CLIP
 * separates a matching photo from an unrelated one by ~0.10-0.15 of cosine, so a photo showing
 * all the words of the query (+0.15) outranks every photo that only looks right, while a
 * partial or weak text match is a nudge. Photos whose texts have at least half of the words
 * (OCR misreads some), or that carry the tag, are results even under the cosine cutoff.
 * The texts are OCR, captions, titles and descriptions (catalog `texts`, FTS5). */
#include "shoebox/search.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <stdlib.h>
#include <string.h>

#define TEXT_MAX_HITS 5000 /* text matches considered per query */

struct text_match {
    int64_t id;
    float text;  /* (bm25 / best) * coverage */
    bool all;    /* at least half of the words */
    bool tagged; /* a tag equals the query or a word */
    bool done;   /* already among the cosine hits */
};

static int cmp_id(const void *a, const void *b)
{
    const struct text_match *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Entries stay in insertion order while collecting (small n); sorted by id for lookups. */
static struct text_match *find_match(struct text_match *v, size_t n, int64_t id, bool sorted)
{
    if (n == 0)
        return NULL; /* bsearch must not see a NULL array */
    if (sorted) {
        struct text_match key = { id, 0, false, false, false };
        return bsearch(&key, v, n, sizeof(*v), cmp_id);
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].id == id)
            return &v[i];
    }
    return NULL;
}

static struct text_match *add_match(struct text_match **v, size_t *n, size_t *cap, int64_t id)
{
    struct text_match *m = find_match(*v, *n, id, false);
    if (m)
        return m;
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        struct text_match *nv = realloc(*v, ncap * sizeof(**v));
        if (!nv)
            return NULL;
        *v = nv;
        *cap = ncap;
    }
    m = &(*v)[(*n)++];
    *m = (struct text_match){ id, 0.0f, false, false, false };
    return m;
}

/* The photos the query's words find in texts and tags, with their text scores, sorted by id. */
static int text_matches(struct catalog *cat, const struct catalog_filter *filter, const char *words,
                        struct text_match **out, size_t *nout, struct sb_err *err)
{
    struct catalog_text_hit *hits = NULL;
    size_t nh = 0, n = 0, cap = 0;
    struct text_match *v = NULL;
    float *cover = NULL;
    char *copy = sb_strdup(words);
    int rc = copy ? SB_OK : SB_ENOMEM;
    if (!rc)
        rc = catalog_text_search(cat, words, false, NULL, TEXT_MAX_HITS, &hits, &nh, err);
    if (rc == SB_EINVAL) /* no word in the query (only punctuation): nothing to match */
        rc = SB_OK;
    for (size_t i = 0; !rc && i < nh; i++) {
        struct text_match *m = add_match(&v, &n, &cap, hits[i].photo_id);
        if (!m)
            rc = SB_ENOMEM;
        else
            m->text = (float)(hits[i].score / hits[0].score);
    }
    free(hits);
    /* tags: the whole query, then each word; coverage: one query per word */
    int nwords = 0;
    for (int pass = 0; !rc && pass < 2; pass++) {
        char *save = NULL;
        for (char *w = pass ? strtok_r(copy, " \t\n", &save) : NULL; !rc && (pass == 0 || w);
             w = strtok_r(NULL, " \t\n", &save)) {
            const char *word = pass ? w : words;
            struct catalog_filter f = filter ? *filter : (struct catalog_filter){ 0 };
            f.tag = word;
            int64_t *ids = NULL;
            size_t nids = 0;
            if (catalog_filter_photos(cat, &f, &ids, &nids, NULL) == SB_OK) {
                for (size_t i = 0; i < nids && !rc; i++) {
                    struct text_match *m = add_match(&v, &n, &cap, ids[i]);
                    if (!m)
                        rc = SB_ENOMEM;
                    else
                        m->tagged = true;
                }
            }
            free(ids);
            if (pass == 0)
                break;
            nwords++;
        }
    }
    if (!rc && n)
        qsort(v, n, sizeof(*v), cmp_id);
    cover = calloc(n ? n : 1, sizeof(float));
    if (!rc && !cover)
        rc = SB_ENOMEM;
    if (!rc) {
        /* coverage: each word on its own */
        free(copy);
        copy = sb_strdup(words);
        char *save = NULL;
        for (char *w = copy ? strtok_r(copy, " \t\n", &save) : NULL; w;
             w = strtok_r(NULL, " \t\n", &save)) {
            struct catalog_text_hit *wh = NULL;
            size_t nw = 0;
            if (catalog_text_search(cat, w, true, NULL, TEXT_MAX_HITS, &wh, &nw, NULL) != SB_OK)
                continue;
            for (size_t i = 0; i < nw; i++) {
                struct text_match *m = find_match(v, n, wh[i].photo_id, true);
                if (m)
                    cover[m - v] += 1.0f;
            }
            free(wh);
        }
    }
    for (size_t i = 0; !rc && i < n; i++) {
        float c = nwords ? cover[i] / (float)nwords : 0.0f;
        v[i].all = nwords > 0 && 2.0f * cover[i] >= (float)nwords;
        v[i].text *= c > 1.0f ? 1.0f : c;
    }
    free(cover);
    free(copy);
    if (rc) {
        free(v);
        if (rc == SB_ENOMEM)
            sb_fail(err, SB_ENOMEM, "search: out of memory");
        return rc;
    }
    *out = v;
    *nout = n;
    return SB_OK;
}

int search_hybrid(struct catalog *cat, const struct catalog_filter *filter,
                  const struct vec_matrix *m, const unsigned char *mask, const float *q,
                  const char *words, const struct search_hit *hits, size_t nhits, size_t k,
                  struct search_hit **out, size_t *nout, struct sb_err *err)
{
    struct text_match *tm = NULL;
    size_t ntm = 0;
    int rc = text_matches(cat, filter, words, &tm, &ntm, err);
    if (rc)
        return rc;
    struct search_hit *all = malloc((nhits + ntm + 1) * sizeof(*all));
    if (!all) {
        free(tm);
        return sb_fail(err, SB_ENOMEM, "search: out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < nhits; i++) {
        struct text_match *t = find_match(tm, ntm, hits[i].photo_id, true);
        float bonus = t ? SEARCH_TEXT_ALPHA * t->text + (t->tagged ? SEARCH_TAG_BETA : 0.0f) : 0;
        all[n] = hits[i];
        all[n++].score += bonus;
        if (t)
            t->done = true;
    }
    for (size_t i = 0; i < ntm; i++) {
        const struct text_match *t = &tm[i];
        if (t->done || !(t->all || t->tagged))
            continue; /* a partial text match alone is no answer under the cutoff */
        int64_t r = search_find_row(m, t->id);
        if (r < 0 || (mask && !mask[r]))
            continue; /* filtered out, or not embedded */
        float cos = search_score_row(m, q, (size_t)r);
        all[n++] = (struct search_hit){ t->id, (size_t)r,
                                        cos + SEARCH_TEXT_ALPHA * t->text +
                                            (t->tagged ? SEARCH_TAG_BETA : 0.0f) };
    }
    search_hits_sort(all, n);
    *out = all;
    *nout = n < k ? n : k;
    free(tm);
    return SB_OK;
}
