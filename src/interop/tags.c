/* tags.c - zero-shot auto-tags (see tags.h for the recipe) and their crawl stage. */
#include "shoebox/tags.h"

#include "shoebox/catalog.h"
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/model.h"
#include "shoebox/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

const char *const tags_templates[TAGS_NTEMPLATES] = {
    "a photo of a {}.",         "a close-up photo of a {}.", "a photo of the {}.",
    "a cropped photo of a {}.", "a good photo of a {}.",
};

#define MAX_PROMPTS 8
#define RECIPE      "shoebox-tags-v1" /* bump when the math changes: the cache key moves */

struct concept {
    char *tag;
    float factor;
    char *prompts[MAX_PROMPTS];
    size_t nprompts;
};

struct tagger {
    struct tagger_params p;
    struct concept *c;
    size_t n;
    char hash[17];
    float *emb; /* n x dim */
    int dim;
    /* plugin state (indexing thread only) */
    char *stage;
    char *model_id;
    int64_t model_row; /* catalog models.id, 0 until looked up */
    float *probs, *vec;
    size_t *idx;
};

struct tagger_params tagger_default_params(void)
{
    struct tagger_params p = { 100.0f, 0.05f, 6 };
    return p;
}

static char *trim_dup(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = '\0';
    }
    return r;
}

/* "{}" in tmpl replaced by tag. */
static char *apply_template(const char *tmpl, const char *tag)
{
    const char *hole = strstr(tmpl, "{}");
    struct sb_buf b;
    sb_buf_init(&b);
    sb_buf_append(&b, tmpl, (size_t)(hole - tmpl));
    sb_buf_puts(&b, tag);
    sb_buf_puts(&b, hole + 2);
    if (b.failed) {
        sb_buf_release(&b);
        return NULL;
    }
    return b.data;
}

static void concept_release(struct concept *c)
{
    free(c->tag);
    for (size_t i = 0; i < c->nprompts; i++)
        free(c->prompts[i]);
}

static int parse_line(const char *line, struct concept *c, struct sb_err *err)
{
    memset(c, 0, sizeof(*c));
    c->factor = 1.0f;
    const char *bar = strchr(line, '|');
    size_t head = bar ? (size_t)(bar - line) : strlen(line);
    char *h = trim_dup(line, head);
    if (!h)
        return sb_fail(err, SB_ENOMEM, "tags: out of memory");
    char *at = strchr(h, '@');
    if (at) {
        *at = '\0';
        if (sb_parse_f32(at + 1, 0.01f, 100.0f, &c->factor, NULL)) {
            free(h);
            return sb_fail(err, SB_EINVAL, "tags vocabulary line '%s': bad factor", line);
        }
    }
    c->tag = trim_dup(h, strlen(h));
    free(h);
    if (!c->tag)
        return sb_fail(err, SB_ENOMEM, "tags: out of memory");
    if (!*c->tag || strlen(c->tag) > CATALOG_TAG_MAX)
        return sb_fail(err, SB_EINVAL, "tags vocabulary line '%s': empty or long tag", line);
    bool has_prompts = bar != NULL;
    while (bar) {
        const char *next = strchr(bar + 1, '|');
        size_t len = next ? (size_t)(next - bar - 1) : strlen(bar + 1);
        if (c->nprompts == MAX_PROMPTS)
            return sb_fail(err, SB_EINVAL, "tags vocabulary line '%s': more than %d prompts", line,
                           MAX_PROMPTS);
        char *pr = trim_dup(bar + 1, len);
        if (!pr)
            return sb_fail(err, SB_ENOMEM, "tags: out of memory");
        if (!*pr) {
            free(pr);
            return sb_fail(err, SB_EINVAL, "tags vocabulary line '%s': empty prompt", line);
        }
        c->prompts[c->nprompts++] = pr;
        bar = next;
    }
    for (size_t k = 0; !has_prompts && k < TAGS_NTEMPLATES; k++) {
        c->prompts[k] = apply_template(tags_templates[k], c->tag);
        if (!c->prompts[k])
            return sb_fail(err, SB_ENOMEM, "tags: out of memory");
        c->nprompts = k + 1;
    }
    return SB_OK;
}

int tagger_new(const char *const *lines, size_t n, const struct tagger_params *p,
               struct tagger **out, struct sb_err *err)
{
    struct tagger *t = calloc(1, sizeof(*t));
    int rc = SB_OK;
    XXH3_state_t *h = XXH3_createState();
    if (!t || !h || !(t->c = calloc(n ? n : 1, sizeof(*t->c)))) {
        rc = sb_fail(err, SB_ENOMEM, "tags: out of memory");
        goto out;
    }
    t->p = p ? *p : tagger_default_params();
    XXH3_64bits_reset(h);
    XXH3_64bits_update(h, RECIPE, sizeof(RECIPE));
    for (size_t i = 0; i < TAGS_NTEMPLATES; i++)
        XXH3_64bits_update(h, tags_templates[i], strlen(tags_templates[i]) + 1);
    for (size_t i = 0; i < n; i++) {
        const char *l = lines[i];
        while (*l == ' ' || *l == '\t')
            l++;
        if (!*l || *l == '#')
            continue;
        XXH3_64bits_update(h, l, strlen(l) + 1);
        rc = parse_line(l, &t->c[t->n], err);
        t->n++;
        if (rc)
            goto out;
    }
    if (t->n == 0) {
        rc = sb_fail(err, SB_EINVAL, "tags: empty vocabulary");
        goto out;
    }
    snprintf(t->hash, sizeof(t->hash), "%016llx", (unsigned long long)XXH3_64bits_digest(h));
    *out = t;
    t = NULL;
out:
    XXH3_freeState(h);
    tagger_free(t);
    return rc;
}

void tagger_free(struct tagger *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        concept_release(&t->c[i]);
    free(t->c);
    free(t->emb);
    free(t->stage);
    free(t->model_id);
    free(t->probs);
    free(t->vec);
    free(t->idx);
    free(t);
}

size_t tagger_count(const struct tagger *t)
{
    return t->n;
}

const char *tagger_tag(const struct tagger *t, size_t i)
{
    return i < t->n ? t->c[i].tag : NULL;
}

const char *const *tagger_prompts(const struct tagger *t, size_t i, size_t *n)
{
    *n = i < t->n ? t->c[i].nprompts : 0;
    return i < t->n ? (const char *const *)t->c[i].prompts : NULL;
}

const char *tagger_hash(const struct tagger *t)
{
    return t->hash;
}

const float *tagger_embeddings(const struct tagger *t, int *dim)
{
    if (dim)
        *dim = t->dim;
    return t->emb;
}

static void normalize(float *v, int dim)
{
    double s = 0.0;
    for (int i = 0; i < dim; i++)
        s += (double)v[i] * (double)v[i];
    float inv = s > 0.0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int i = 0; i < dim; i++)
        v[i] *= inv;
}

int tagger_embed(struct tagger *t, struct clip_ctx *c, int dim, struct sb_err *err)
{
    size_t total;
    if (dim <= 0 || !sb_mul_size(t->n, (size_t)dim, &total))
        return sb_fail(err, SB_EINVAL, "tags: bad embedding size %d", dim);
    float *emb = calloc(total, sizeof(float));
    float *one = malloc((size_t)dim * sizeof(float));
    int rc = SB_OK;
    if (!emb || !one) {
        rc = sb_fail(err, SB_ENOMEM, "tags: out of memory");
        goto out;
    }
    for (size_t i = 0; i < t->n && !rc; i++) {
        float *e = emb + i * (size_t)dim;
        for (size_t k = 0; k < t->c[i].nprompts && !rc; k++) {
            rc = clip_embed_text(c, t->c[i].prompts[k], one, NULL, NULL, err);
            for (int d = 0; !rc && d < dim; d++)
                e[d] += one[d]; /* each already L2-normalised */
        }
        normalize(e, dim); /* the mean's direction: dividing by the count first changes nothing */
    }
    if (rc)
        goto out;
    free(t->emb);
    t->emb = emb;
    t->dim = dim;
    emb = NULL;
out:
    free(emb);
    free(one);
    return rc;
}

int tagger_prepare(struct tagger *t, struct catalog *cat, struct clip_ctx *c, const char *model_id,
                   int dim, struct sb_err *err)
{
    char key[512];
    snprintf(key, sizeof(key), "tagvocab:%s:%s", model_id, t->hash);
    void *blob = NULL;
    size_t len = 0;
    int rc = catalog_cache_get(cat, key, &blob, &len, NULL);
    if (rc == SB_OK && dim > 0 && len == t->n * (size_t)dim * sizeof(float)) {
        free(t->emb);
        t->emb = blob;
        t->dim = dim;
        return SB_OK;
    }
    free(blob);
    rc = tagger_embed(t, c, dim, err);
    if (rc)
        return rc;
    rc = catalog_begin(cat, err);
    if (!rc)
        rc = catalog_cache_put(cat, key, t->emb, t->n * (size_t)dim * sizeof(float), err);
    if (!rc)
        rc = catalog_commit(cat, err);
    else
        catalog_rollback(cat);
    return rc;
}

int tagger_scores(const struct tagger *t, const float *x, int dim, float *probs, struct sb_err *err)
{
    if (!t->emb)
        return sb_fail(err, SB_EINVAL, "tags: vocabulary not embedded");
    if (dim != t->dim)
        return sb_fail(err, SB_EINVAL, "tags: image embedding has %d floats, vocabulary %d", dim,
                       t->dim);
    float maxl = -INFINITY;
    for (size_t i = 0; i < t->n; i++) {
        const float *e = t->emb + i * (size_t)dim;
        float s = 0.0f;
        for (int d = 0; d < dim; d++)
            s += e[d] * x[d];
        probs[i] = t->p.logit_scale * s;
        maxl = probs[i] > maxl ? probs[i] : maxl;
    }
    double sum = 0.0;
    for (size_t i = 0; i < t->n; i++) {
        probs[i] = expf(probs[i] - maxl); /* shifted: no overflow at logit_scale 100 */
        sum += (double)probs[i];
    }
    for (size_t i = 0; i < t->n; i++)
        probs[i] = (float)((double)probs[i] / sum);
    return SB_OK;
}

size_t tagger_pick(const struct tagger *t, const float *probs, size_t *idx, size_t max)
{
    size_t k = (size_t)(t->p.top_k > 0 ? t->p.top_k : 0);
    if (k > max)
        k = max;
    size_t m = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (probs[i] < t->p.min_prob * t->c[i].factor)
            continue;
        /* insertion into the best-first list of at most k (ties: lower index first) */
        size_t pos = m;
        while (pos > 0 && probs[idx[pos - 1]] < probs[i])
            pos--;
        if (pos >= k)
            continue;
        size_t end = m < k ? m : k - 1;
        for (size_t j = end; j > pos; j--)
            idx[j] = idx[j - 1];
        idx[pos] = i;
        if (m < k)
            m++;
    }
    return m;
}

/* ---- the crawl stage ------------------------------------------------------------------------ */

static int plugin_run(void *user, int worker, const struct image *rgb, const char *path,
                      void **result, struct sb_err *err)
{
    (void)user;
    (void)worker;
    (void)rgb;
    (void)path;
    (void)err;
    *result = NULL; /* all the work is in store(), which has the embedding */
    return SB_OK;
}

static int plugin_store(void *user, struct catalog *cat, int64_t photo_id, void *result,
                        const float *embedding, int dim, struct sb_err *err)
{
    (void)result;
    struct tagger *t = user;
    int rc = SB_OK;
    if (!embedding) {
        /* embedded by an earlier run (or this batch failed to): use the stored vector */
        if (!t->model_row) {
            int d;
            int64_t version;
            rc = catalog_model_find(cat, t->model_id, &t->model_row, &d, &version, err);
            if (rc == SB_ENOENT)
                return sb_fail(err, SB_ENOENT, "tags: photo %lld has no embedding",
                               (long long)photo_id);
            if (rc)
                return rc;
        }
        rc = catalog_vector_get(cat, t->model_row, photo_id, t->vec, t->dim, err);
        if (rc == SB_ENOENT)
            return sb_fail(err, SB_ENOENT, "tags: photo %lld has no embedding",
                           (long long)photo_id);
        if (rc)
            return rc;
        embedding = t->vec;
        dim = t->dim;
    }
    rc = tagger_scores(t, embedding, dim, t->probs, err);
    if (rc)
        return rc;
    size_t k = tagger_pick(t, t->probs, t->idx, (size_t)t->p.top_k);
    const char *tags[64];
    float scores[64];
    for (size_t i = 0; i < k && i < 64; i++) {
        tags[i] = t->c[t->idx[i]].tag;
        scores[i] = t->probs[t->idx[i]];
    }
    return catalog_tags_replace(cat, photo_id, CATALOG_TAG_AUTO, tags, scores, k < 64 ? k : 64,
                                err);
}

int tagger_plugin(struct tagger *t, const char *model_id, struct crawl_plugin *out,
                  struct sb_err *err)
{
    if (!t->emb)
        return sb_fail(err, SB_EINVAL, "tags: vocabulary not embedded");
    if (t->p.top_k < 0 || t->p.top_k > 64)
        return sb_fail(err, SB_EINVAL, "tags: top_k %d (0..64)", t->p.top_k);
    size_t n = strlen(model_id) + 6;
    free(t->stage);
    free(t->model_id);
    free(t->probs);
    free(t->vec);
    free(t->idx);
    t->stage = malloc(n);
    t->model_id = sb_strdup(model_id);
    t->probs = malloc(t->n * sizeof(float));
    t->vec = malloc((size_t)t->dim * sizeof(float));
    t->idx = malloc(((size_t)t->p.top_k + 1) * sizeof(size_t));
    t->model_row = 0;
    if (!t->stage || !t->model_id || !t->probs || !t->vec || !t->idx)
        return sb_fail(err, SB_ENOMEM, "tags: out of memory");
    snprintf(t->stage, n, "tags:%s", model_id);
    memset(out, 0, sizeof(*out));
    out->stage = t->stage;
    out->needs_pixels = false;
    out->user = t;
    out->run = plugin_run;
    out->store = plugin_store;
    return SB_OK;
}
