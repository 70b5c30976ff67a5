/* api.c - the JSON API (docs/API.md), thumbnails and originals. Every handler takes its own
 * read-only catalog connection from the pool for the request and gives it back at the end.
 * Files are found only through the catalog by id; nothing in a URL is ever used as a path.
 * Errors are {"error": text} with a status code; internal failures are logged and answered
 * with a generic text. */
#include "internal.h"

#include "shoebox/catalog.h"
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/search.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { MAX_ARG = 1024, MAX_N = 500, MAX_OFFSET = 5000, MAX_DUPE_GROUPS = 500 };

/* ---- small helpers ------------------------------------------------------------------------ */

static const char *arg(struct web_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* A whole number argument in [lo, hi], def when absent; false on a bad value. */
static bool arg_i64(struct web_request *r, const char *name, int64_t lo, int64_t hi, int64_t def,
                    int64_t *out)
{
    const char *v = arg(r, name);
    *out = def;
    if (!v || !*v)
        return true;
    return sb_parse_i64(v, lo, hi, out, NULL) == SB_OK;
}

static bool valid_date(const char *d)
{
    /* YYYY-MM-DD, optionally followed by more of an ISO timestamp */
    if (strlen(d) < 10 || strlen(d) > 32)
        return false;
    for (int i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            if (d[i] != '-')
                return false;
        } else if (d[i] < '0' || d[i] > '9') {
            return false;
        }
    }
    int month = (d[5] - '0') * 10 + (d[6] - '0'), day = (d[8] - '0') * 10 + (d[9] - '0');
    if (month < 1 || month > 12 || day < 1 || day > 31)
        return false;
    return d[10] == '\0' || d[10] == 'T' || d[10] == ' ';
}

/* Parses "/prefix/<id>" or "/prefix/<id>/<rest>": the id and what follows ("" or "/rest"). */
static bool parse_id(const char *url, const char *prefix, int64_t *id, const char **rest)
{
    size_t n = strlen(prefix);
    if (strncmp(url, prefix, n) != 0)
        return false;
    const char *p = url + n;
    char digits[20];
    size_t k = 0;
    while (p[k] >= '0' && p[k] <= '9') {
        if (k + 1 >= sizeof(digits))
            return false;
        digits[k] = p[k];
        k++;
    }
    digits[k] = '\0';
    if (k == 0 || sb_parse_i64(digits, 1, INT64_MAX, id, NULL) != SB_OK)
        return false;
    *rest = p + k;
    return true;
}

static int internal_error(struct web_request *r, const struct sb_err *err)
{
    SB_LOG_W("serve: %s: %s", r->url, err->msg);
    return web_reply_error(r, 500, "internal error");
}

static void add_str(cJSON *o, const char *key, const char *v)
{
    if (!v) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    char *c = sb_utf8_clean(v);
    cJSON_AddStringToObject(o, key, c ? c : "");
    free(c);
}

static void add_num(cJSON *o, const char *key, double v)
{
    if (isnan(v))
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, v);
}

static cJSON *paths_json(const struct catalog_photo *p)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < p->npaths; i++) {
        char *c = sb_utf8_clean(p->paths[i]);
        cJSON_AddItemToArray(a, cJSON_CreateString(c ? c : ""));
        free(c);
    }
    return a;
}

/* A result row as `shoebox search --json` writes it, plus what a grid needs. NULL when the
 * photo is gone. */
static cJSON *result_json(struct catalog *cat, int64_t id, float score)
{
    struct catalog_photo p;
    if (catalog_photo_get(cat, id, &p, NULL) != SB_OK)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)p.id);
    add_str(o, "path", p.npaths ? p.paths[0] : "");
    cJSON_AddItemToObject(o, "paths", paths_json(&p));
    add_num(o, "score", isnan(score) ? (double)NAN : round((double)score * 1e6) / 1e6);
    add_str(o, "taken_at", p.taken_at);
    cJSON_AddNumberToObject(o, "width", p.width);
    cJSON_AddNumberToObject(o, "height", p.height);
    add_str(o, "format", p.format);
    catalog_photo_release(&p);
    return o;
}

static cJSON *results_from_ids(struct catalog *cat, const int64_t *ids, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = result_json(cat, ids[i], (float)NAN);
        if (o)
            cJSON_AddItemToArray(a, o);
    }
    return a;
}

static cJSON *results_from_hits(struct catalog *cat, const struct web_hit *h, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = result_json(cat, h[i].id, h[i].score);
        if (o)
            cJSON_AddItemToArray(a, o);
    }
    return a;
}

/* ---- /api/status -------------------------------------------------------------------------- */

static int api_status(struct web_request *r, struct catalog *cat)
{
    struct catalog_status st;
    struct sb_err err;
    if (catalog_status(cat, &st, &err))
        return internal_error(r, &err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "files", (double)st.files);
    cJSON_AddNumberToObject(o, "photos", (double)st.photos);
    cJSON_AddNumberToObject(o, "duplicates", (double)st.duplicates);
    cJSON_AddNumberToObject(o, "failed", (double)st.failed);
    cJSON_AddNumberToObject(o, "missing", (double)st.missing);
    cJSON_AddNumberToObject(o, "ignored", (double)st.ignored);
    cJSON *stages = cJSON_AddObjectToObject(o, "stages");
    for (int i = 0; i < st.nstages; i++) {
        cJSON *so = cJSON_AddObjectToObject(stages, st.stages[i].name);
        cJSON_AddNumberToObject(so, "done", (double)st.stages[i].done);
        cJSON_AddNumberToObject(so, "pending", (double)st.stages[i].pending);
        cJSON_AddNumberToObject(so, "failed", (double)st.stages[i].failed);
    }
    add_str(o, "catalog", r->s->db_path);
    char name[256];
    web_model_name(r->s, name, sizeof(name));
    add_str(o, "model", name[0] ? name : NULL);
    pthread_mutex_lock(&r->s->model_mu);
    bool text = r->s->text_model != NULL;
    pthread_mutex_unlock(&r->s->model_mu);
    cJSON_AddBoolToObject(o, "text_search", text);
    struct web_store *ws = NULL;
    size_t nvec = 0;
    if (web_store_get(r->s, cat, &ws, &err) == SB_OK && ws)
        nvec = vec_store_matrix(ws->vs)->n;
    web_store_put(r->s, ws);
    cJSON_AddNumberToObject(o, "vectors", (double)nvec);
    web_crawl_json(r->s, cJSON_AddObjectToObject(o, "crawl"));
    return web_reply_json(r, 200, o);
}

/* ---- /api/search ------------------------------------------------------------------------ */

static int api_search(struct web_request *r, struct catalog *cat)
{
    struct web_query q;
    memset(&q, 0, sizeof(q));
    int64_t n, offset;
    if (!arg_i64(r, "n", 1, MAX_N, 50, &n) || !arg_i64(r, "offset", 0, MAX_OFFSET, 0, &offset))
        return web_reply_error(r, 400, "n must be 1..500 and offset 0..5000");
    q.n = (size_t)n;
    q.offset = (size_t)offset;
    const char *text = arg(r, "q");
    if (text && strlen(text) > MAX_ARG)
        return web_reply_error(r, 400, "query too long");
    q.q = (char *)(uintptr_t)(text ? text : ""); /* read only; web_search copies it */
    static const char *const names[] = { "after", "before", "in", "camera", "tag", "format" };
    const char *vals[6];
    for (int i = 0; i < 6; i++) {
        vals[i] = arg(r, names[i]);
        if (vals[i] && !*vals[i])
            vals[i] = NULL;
        if (vals[i] && strlen(vals[i]) > MAX_ARG)
            return web_reply_error(r, 400, "filter too long");
    }
    if ((vals[0] && !valid_date(vals[0])) || (vals[1] && !valid_date(vals[1])))
        return web_reply_error(r, 400, "dates are YYYY-MM-DD");
    if (vals[2] && vals[2][0] != '/')
        return web_reply_error(r, 400, "'in' must be an absolute folder");
    q.filter.after = vals[0];
    q.filter.before = vals[1];
    char folder[MAX_ARG + 1] = "";
    if (vals[2]) {
        snprintf(folder, sizeof(folder), "%s", vals[2]);
        size_t len = strlen(folder);
        while (len > 1 && folder[len - 1] == '/')
            folder[--len] = '\0';
        q.filter.folder = folder;
    }
    q.filter.camera = vals[3];
    q.filter.tag = vals[4];
    q.filter.format = vals[5];
    const char *gps = arg(r, "has_gps");
    q.filter.has_gps = gps && (strcmp(gps, "1") == 0 || strcmp(gps, "true") == 0);
    const char *ms = arg(r, "min_score");
    if (ms && *ms) {
        if (sb_parse_f32(ms, -1.0f, 1.0f, &q.min_score, NULL))
            return web_reply_error(r, 400, "min_score must be -1..1");
        q.min_score_set = true;
    }
    struct web_hit *hits = NULL;
    size_t nhits = 0;
    float used = (float)NAN;
    struct sb_err err;
    int rc = web_search(r->s, cat, &q, &hits, &nhits, &used, &err);
    if (rc == SB_EINVAL)
        return web_reply_error(r, 400, err.msg);
    if (rc == SB_EMODEL)
        return web_reply_error(r, 503, err.msg);
    cJSON *o = cJSON_CreateObject();
    if (rc == SB_ENOENT) {
        cJSON_AddItemToObject(o, "results", cJSON_CreateArray());
        cJSON_AddStringToObject(o, "notice", "no photo has been embedded yet");
    } else if (rc) {
        cJSON_Delete(o);
        return internal_error(r, &err);
    } else {
        cJSON_AddItemToObject(o, "results", results_from_hits(cat, hits, nhits));
    }
    free(hits);
    add_num(o, "min_score", isnan(used) ? (double)NAN : round((double)used * 1e6) / 1e6);
    char name[256];
    web_model_name(r->s, name, sizeof(name));
    add_str(o, "model", name[0] ? name : NULL);
    cJSON_AddNumberToObject(o, "offset", (double)q.offset);
    cJSON_AddBoolToObject(o, "more", rc == SB_OK && nhits == q.n);
    return web_reply_json(r, 200, o);
}

/* ---- /api/photos/ID ----------------------------------------------------------------------- */

static int on_tag(void *user, const char *tag, const char *source, double score)
{
    cJSON *t = cJSON_CreateObject();
    add_str(t, "tag", tag);
    add_str(t, "source", source);
    add_num(t, "score", score);
    cJSON_AddItemToArray(user, t);
    return SB_OK;
}

static int on_text(void *user, const char *source, const char *text, double confidence)
{
    (void)confidence;
    add_str(user, source, text);
    return SB_OK;
}

static int api_photo(struct web_request *r, struct catalog *cat, int64_t id)
{
    struct catalog_photo p;
    struct sb_err err;
    int rc = catalog_photo_get(cat, id, &p, &err);
    if (rc == SB_ENOENT)
        return web_reply_error(r, 404, "no such photo");
    if (rc)
        return internal_error(r, &err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)p.id);
    char hex[33];
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", p.hash[i]);
    cJSON_AddStringToObject(o, "hash", hex);
    add_str(o, "path", p.npaths ? p.paths[0] : NULL);
    cJSON_AddItemToObject(o, "paths", paths_json(&p));
    add_str(o, "taken_at", p.taken_at);
    add_str(o, "tz_offset", p.tz_offset);
    add_str(o, "time_source", p.time_source);
    add_str(o, "format", p.format);
    add_str(o, "make", p.make);
    add_str(o, "model", p.model);
    add_str(o, "lens", p.lens);
    cJSON_AddNumberToObject(o, "width", p.width);
    cJSON_AddNumberToObject(o, "height", p.height);
    if (p.iso)
        cJSON_AddNumberToObject(o, "iso", p.iso);
    else
        cJSON_AddNullToObject(o, "iso");
    add_num(o, "focal_mm", p.focal_mm);
    add_num(o, "fnumber", p.fnumber);
    add_num(o, "exposure_s", p.exposure_s);
    if (!isnan(p.gps_lat) && !isnan(p.gps_lon)) {
        cJSON *g = cJSON_AddObjectToObject(o, "gps");
        cJSON_AddNumberToObject(g, "lat", p.gps_lat);
        cJSON_AddNumberToObject(g, "lon", p.gps_lon);
        add_num(g, "alt", p.gps_alt);
    } else {
        cJSON_AddNullToObject(o, "gps");
    }
    cJSON_AddNumberToObject(o, "size", (double)p.size);
    cJSON_AddBoolToObject(o, "has_exif", p.has_exif);
    catalog_photo_release(&p);
    cJSON *tags = cJSON_AddArrayToObject(o, "tags");
    if (catalog_photo_tags(cat, id, on_tag, tags, &err)) {
        cJSON_Delete(o);
        return internal_error(r, &err);
    }
    /* texts made by the caption and OCR stages: "caption" on its own, all of them in "texts" */
    cJSON *texts = cJSON_AddObjectToObject(o, "texts");
    if (catalog_photo_texts(cat, id, on_text, texts, &err)) {
        cJSON_Delete(o);
        return internal_error(r, &err);
    }
    const cJSON *cap = cJSON_GetObjectItemCaseSensitive(texts, CATALOG_TEXT_CAPTION);
    if (cJSON_IsString(cap))
        cJSON_AddStringToObject(o, "caption", cap->valuestring);
    else
        cJSON_AddNullToObject(o, "caption");
    return web_reply_json(r, 200, o);
}

static int api_similar(struct web_request *r, struct catalog *cat, int64_t id)
{
    int64_t n;
    float min_score = 0.50f; /* photo-to-photo cutoff, as `shoebox similar` */
    if (!arg_i64(r, "n", 1, MAX_N, 30, &n))
        return web_reply_error(r, 400, "n must be 1..500");
    const char *ms = arg(r, "min_score");
    if (ms && *ms && sb_parse_f32(ms, -1.0f, 1.0f, &min_score, NULL))
        return web_reply_error(r, 400, "min_score must be -1..1");
    struct sb_err err;
    unsigned char hash[16];
    int rc = catalog_photo_hash(cat, id, hash, NULL, 0, &err);
    if (rc == SB_ENOENT)
        return web_reply_error(r, 404, "no such photo");
    if (rc)
        return internal_error(r, &err);
    struct web_hit *hits = NULL;
    size_t nhits = 0;
    rc = web_similar(r->s, cat, id, (size_t)n, min_score, &hits, &nhits, &err);
    cJSON *o = cJSON_CreateObject();
    if (rc == SB_ENOENT) {
        cJSON_AddItemToObject(o, "results", cJSON_CreateArray());
        cJSON_AddStringToObject(o, "notice", "this photo has no embedding yet");
    } else if (rc) {
        cJSON_Delete(o);
        return internal_error(r, &err);
    } else {
        cJSON_AddItemToObject(o, "results", results_from_hits(cat, hits, nhits));
    }
    free(hits);
    cJSON_AddNumberToObject(o, "query_id", (double)id);
    cJSON_AddNumberToObject(o, "min_score", round((double)min_score * 1e6) / 1e6);
    return web_reply_json(r, 200, o);
}

/* ---- browsing ---------------------------------------------------------------------------- */

struct facet_out {
    cJSON *list;
    const char *key;
};

static int on_count(void *user, const char *key, int64_t count)
{
    struct facet_out *f = user;
    cJSON *o = cJSON_CreateObject();
    add_str(o, f->key, key);
    cJSON_AddNumberToObject(o, "count", (double)count);
    cJSON_AddItemToArray(f->list, o);
    return SB_OK;
}

static int add_facet(cJSON *root, struct catalog *cat, enum catalog_facet facet, const char *list,
                     const char *key, struct sb_err *err)
{
    struct facet_out f = { cJSON_AddArrayToObject(root, list), key };
    return catalog_facet_counts(cat, facet, on_count, &f, err);
}

static int api_facet(struct web_request *r, struct catalog *cat, enum catalog_facet facet,
                     const char *list, const char *key)
{
    struct sb_err err;
    cJSON *o = cJSON_CreateObject();
    if (add_facet(o, cat, facet, list, key, &err)) {
        cJSON_Delete(o);
        return internal_error(r, &err);
    }
    return web_reply_json(r, 200, o);
}

static int api_facets(struct web_request *r, struct catalog *cat)
{
    struct sb_err err;
    cJSON *o = cJSON_CreateObject();
    if (add_facet(o, cat, CATALOG_FACET_CAMERA, "cameras", "name", &err) ||
        add_facet(o, cat, CATALOG_FACET_TAG, "tags", "name", &err) ||
        add_facet(o, cat, CATALOG_FACET_FORMAT, "formats", "name", &err)) {
        cJSON_Delete(o);
        return internal_error(r, &err);
    }
    return web_reply_json(r, 200, o);
}

static int api_rediscover(struct web_request *r, struct catalog *cat)
{
    int64_t n, seed;
    if (!arg_i64(r, "n", 1, 200, 24, &n) || !arg_i64(r, "seed", 0, INT64_MAX, 0, &seed))
        return web_reply_error(r, 400, "n must be 1..200, seed a whole number");
    uint64_t s = (uint64_t)seed;
    if (!s && getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s))
        s = (uint64_t)time(NULL);
    int64_t *ids = NULL;
    size_t nids = 0;
    struct sb_err err;
    if (web_rediscover(r->s, cat, (size_t)n, s, &ids, &nids, &err))
        return internal_error(r, &err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "results", results_from_ids(cat, ids, nids));
    free(ids);
    return web_reply_json(r, 200, o);
}

static int api_on_this_day(struct web_request *r, struct catalog *cat)
{
    char mmdd[8], year[8];
    const char *d = arg(r, "date"); /* MM-DD, default today */
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    int y = tm.tm_year + 1900;
    snprintf(year, sizeof(year), "%04d", y < 0 ? 0 : y > 9999 ? 9999 : y);
    if (d && *d) {
        if (strlen(d) != 5 || d[2] != '-' || d[0] < '0' || d[0] > '1' || d[1] < '0' || d[1] > '9' ||
            d[3] < '0' || d[3] > '3' || d[4] < '0' || d[4] > '9')
            return web_reply_error(r, 400, "date is MM-DD");
        memcpy(mmdd, d, 6);
    } else {
        snprintf(mmdd, sizeof(mmdd), "%02u-%02u", (unsigned)(tm.tm_mon + 1) % 100u,
                 (unsigned)tm.tm_mday % 100u);
    }
    int64_t *ids = NULL;
    size_t n = 0;
    struct sb_err err;
    if (catalog_on_this_day(cat, mmdd, year, 60, &ids, &n, &err))
        return internal_error(r, &err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "date", mmdd);
    cJSON_AddItemToObject(o, "results", results_from_ids(cat, ids, n));
    free(ids);
    return web_reply_json(r, 200, o);
}

/* ---- duplicates --------------------------------------------------------------------------- */

static int dupes_near(struct web_request *r, struct catalog *cat, float threshold, cJSON *o,
                      struct sb_err *err)
{
    struct web_store *ws = NULL;
    int64_t *group = NULL;
    unsigned char *mask = NULL;
    cJSON *near = cJSON_AddArrayToObject(o, "near");
    int rc = web_store_get(r->s, cat, &ws, err);
    if (rc || !ws)
        goto out;
    const struct vec_matrix *m = vec_store_matrix(ws->vs);
    group = malloc((m->n ? m->n : 1) * sizeof(*group));
    if (!group) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
        goto out;
    }
    rc = vec_store_mask(ws->vs, cat, NULL, &mask, err);
    if (rc)
        goto out;
    struct sb_pool *team = web_team_take(r->s);
    rc = vec_store_near_groups(ws->vs, mask, threshold, team, group, err);
    web_team_give(r->s, team);
    if (rc)
        goto out;
    size_t ngroups = 0;
    for (size_t g = 0; g < m->n && ngroups < MAX_DUPE_GROUPS; g++) {
        if (group[g] != (int64_t)g)
            continue; /* rows lead their own group */
        cJSON *members = cJSON_CreateArray();
        for (size_t i = g; i < m->n; i++) {
            if (group[i] != (int64_t)g)
                continue;
            cJSON *p = result_json(cat, m->ids[i], (float)NAN);
            if (p)
                cJSON_AddItemToArray(members, p);
        }
        if (cJSON_GetArraySize(members) > 1) {
            cJSON_AddItemToArray(near, members);
            ngroups++;
        } else {
            cJSON_Delete(members);
        }
    }
out:
    free(group);
    free(mask);
    web_store_put(r->s, ws);
    return rc;
}

static int api_dupes(struct web_request *r, struct catalog *cat)
{
    float threshold = 0.95f;
    const char *t = arg(r, "threshold");
    /* from SEARCH_NEAR_BASE up the groups come from the pair cache, not from all pairs */
    if (t && *t && sb_parse_f32(t, SEARCH_NEAR_BASE, 1.0f, &threshold, NULL))
        return web_reply_error(r, 400, "threshold must be 0.9..1");
    struct sb_err err;
    int64_t *ids = NULL;
    size_t n = 0;
    if (catalog_exact_dupes(cat, &ids, &n, &err))
        return internal_error(r, &err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "exact",
                          results_from_ids(cat, ids, n < MAX_DUPE_GROUPS ? n : MAX_DUPE_GROUPS));
    free(ids);
    cJSON_AddNumberToObject(o, "threshold", round((double)threshold * 1000) / 1000);
    if (dupes_near(r, cat, threshold, o, &err)) {
        cJSON_Delete(o);
        return internal_error(r, &err);
    }
    return web_reply_json(r, 200, o);
}

/* ---- crawl ------------------------------------------------------------------------------- */

static int api_index(struct web_request *r)
{
    cJSON *body = r->body ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(body, "path");
    if (!cJSON_IsString(path) || !path->valuestring[0] || strlen(path->valuestring) >= PATH_MAX) {
        cJSON_Delete(body);
        return web_reply_error(r, 400, "expected {\"path\": \"/a/folder\"}");
    }
    char *real = realpath(path->valuestring, NULL);
    cJSON_Delete(body);
    struct stat st;
    if (!real || stat(real, &st) != 0 || !(S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) {
        free(real);
        return web_reply_error(r, 400, "no such folder");
    }
    struct sb_err err;
    int rc = web_crawl_start(r->s, real, &err);
    if (rc) {
        free(real);
        return rc == SB_EINVAL ? web_reply_error(r, 409, "a crawl is running already")
                               : internal_error(r, &err);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "started", true);
    add_str(o, "root", real);
    free(real);
    return web_reply_json(r, 202, o);
}

/* ---- files ------------------------------------------------------------------------------ */

static int send_file(struct web_request *r, const char *path, const char *mime, const char *etag,
                     const char *cache)
{
    const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "If-None-Match");
    if (inm && strcmp(inm, etag) == 0) {
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!resp)
            return MHD_NO;
        MHD_add_response_header(resp, "ETag", etag);
        MHD_add_response_header(resp, "Cache-Control", cache);
        web_add_common_headers(resp);
        int ret = MHD_queue_response(r->conn, 304, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return web_reply_error(r, 404, "file not available");
    }
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", mime);
    MHD_add_response_header(resp, "ETag", etag);
    MHD_add_response_header(resp, "Cache-Control", cache);
    web_add_common_headers(resp);
    int ret = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int serve_thumb(struct web_request *r, struct catalog *cat, int64_t id)
{
    int64_t px;
    if (!arg_i64(r, "size", 1, 4096, 256, &px) || (px != 256 && px != 1024))
        return web_reply_error(r, 400, "size is 256 or 1024");
    unsigned char hash[16];
    struct sb_err err;
    int rc = catalog_photo_hash(cat, id, hash, NULL, 0, &err);
    if (rc == SB_ENOENT)
        return web_reply_error(r, 404, "no such photo");
    if (rc)
        return internal_error(r, &err);
    char path[PATH_MAX], etag[48];
    if (!crawl_thumb_path(catalog_thumb_dir(cat), hash, (int)px, path, sizeof(path)))
        return web_reply_error(r, 404, "no thumbnail");
    int k = snprintf(etag, sizeof(etag), "\"");
    for (int i = 0; i < 16; i++)
        k += snprintf(etag + k, sizeof(etag) - (size_t)k, "%02x", hash[i]);
    snprintf(etag + k, sizeof(etag) - (size_t)k, "-%d\"", (int)px);
    return send_file(r, path, "image/jpeg", etag, "private, max-age=86400");
}

static const char *mime_of(const char *format)
{
    static const char *const map[][2] = {
        { "jpeg", "image/jpeg" }, { "png", "image/png" },   { "webp", "image/webp" },
        { "gif", "image/gif" },   { "heif", "image/heic" }, { "avif", "image/avif" },
        { "tiff", "image/tiff" },
    };
    for (size_t i = 0; format && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(format, map[i][0]) == 0)
            return map[i][1];
    }
    return "application/octet-stream";
}

static int serve_original(struct web_request *r, struct catalog *cat, int64_t id)
{
    struct catalog_photo p;
    struct sb_err err;
    int rc = catalog_photo_get(cat, id, &p, &err);
    if (rc == SB_ENOENT)
        return web_reply_error(r, 404, "no such photo");
    if (rc)
        return internal_error(r, &err);
    if (!p.npaths) {
        catalog_photo_release(&p);
        return web_reply_error(r, 404, "file not available");
    }
    char etag[40];
    int k = snprintf(etag, sizeof(etag), "\"");
    for (int i = 0; i < 16; i++)
        k += snprintf(etag + k, sizeof(etag) - (size_t)k, "%02x", p.hash[i]);
    snprintf(etag + k, sizeof(etag) - (size_t)k, "\"");
    /* the content is the identity: any present copy will do; try them in order */
    int ret = MHD_NO;
    for (int i = 0; i < p.npaths; i++) {
        if (access(p.paths[i], R_OK) == 0 || i == p.npaths - 1) {
            ret = send_file(r, p.paths[i], mime_of(p.format), etag, "private, max-age=3600");
            break;
        }
    }
    catalog_photo_release(&p);
    return ret;
}

/* ---- routing ------------------------------------------------------------------------------ */

int web_api_handle(struct web_request *r)
{
    const char *u = r->url;
    struct catalog *cat = NULL;
    struct sb_err err;
    int64_t id = 0;
    const char *rest = NULL;
    int ret;
    if (strcmp(u, "/api/index") == 0 || strcmp(u, "/api/index/stop") == 0) {
        if (!r->post)
            return web_reply_error(r, 405, "use POST");
        if (strcmp(u, "/api/index") == 0)
            return api_index(r);
        web_crawl_request_stop(r->s);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "stopping", true);
        return web_reply_json(r, 200, o);
    }
    if (r->post)
        return web_reply_error(r, 405, "use GET");
    if (web_cat_get(r->s, &cat, &err))
        return internal_error(r, &err);
    if (strcmp(u, "/api/status") == 0)
        ret = api_status(r, cat);
    else if (strcmp(u, "/api/search") == 0)
        ret = api_search(r, cat);
    else if (strcmp(u, "/api/timeline") == 0)
        ret = api_facet(r, cat, CATALOG_FACET_MONTH, "months", "month");
    else if (strcmp(u, "/api/folders") == 0)
        ret = api_facet(r, cat, CATALOG_FACET_FOLDER, "folders", "path");
    else if (strcmp(u, "/api/facets") == 0)
        ret = api_facets(r, cat);
    else if (strcmp(u, "/api/rediscover") == 0)
        ret = api_rediscover(r, cat);
    else if (strcmp(u, "/api/onthisday") == 0)
        ret = api_on_this_day(r, cat);
    else if (strcmp(u, "/api/dupes") == 0)
        ret = api_dupes(r, cat);
    else if (parse_id(u, "/api/photos/", &id, &rest) && strcmp(rest, "") == 0)
        ret = api_photo(r, cat, id);
    else if (parse_id(u, "/api/photos/", &id, &rest) && strcmp(rest, "/similar") == 0)
        ret = api_similar(r, cat, id);
    else if (parse_id(u, "/thumb/", &id, &rest) && strcmp(rest, "") == 0)
        ret = serve_thumb(r, cat, id);
    else if (parse_id(u, "/photo/", &id, &rest) && strcmp(rest, "") == 0)
        ret = serve_original(r, cat, id);
    else
        ret = web_reply_error(r, 404, "not found");
    web_cat_put(r->s, cat);
    return ret;
}
