/* takeout.c - Google Takeout sidecars as the "takeout" crawl stage.
 *
 * The sidecar of "IMG_1.jpg" is found by crawl_takeout_sidecar() (all the naming quirks live
 * there, beside the capture-time reader). Takeout writes no sidecar for an edited version
 * ("IMG_1-edited.jpg"): it takes its original's, and is linked to the original photo. */
#include "shoebox/catalog.h"
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/takeout.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The suffixes Google Photos gives edited copies, by export language. */
static const char *const edited_suffixes[] = {
    "-edited",    "-bearbeitet", "-modifié",   "-modifie",   "-modifi\x65\xcc\x81",
    "-editado",   "-modificato", "-bewerkt",   "-redigeret", "-redigert",
    "-redigerad", "-muokattu",   "-edytowane", "-upraveno",  "-szerkesztett",
    "-編集済み",  "-편집됨",
};

bool takeout_edited_original(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    const char *dot = strrchr(name, '.');
    size_t stem = dot ? (size_t)(dot - name) : strlen(name);
    /* "(n)" after the suffix stays: "IMG_1-edited(1).jpg" is the edit of "IMG_1(1).jpg" */
    size_t end = stem;
    if (end >= 3 && name[end - 1] == ')') {
        size_t i = end - 1;
        while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9')
            i--;
        if (i > 0 && name[i - 1] == '(' && i < end - 1)
            end = i - 1;
    }
    for (size_t k = 0; k < sizeof(edited_suffixes) / sizeof(edited_suffixes[0]); k++) {
        size_t sl = strlen(edited_suffixes[k]);
        if (end <= sl || strncasecmp(name + end - sl, edited_suffixes[k], sl) != 0)
            continue;
        int n = snprintf(out, cap, "%.*s%.*s%s", (int)(name - path), path, (int)(end - sl), name,
                         name + end);
        return n > 0 && (size_t)n < cap;
    }
    return false;
}

static char *json_string(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsString(v) || !v->valuestring || !v->valuestring[0])
        return NULL;
    return sb_strdup(v->valuestring);
}

static bool json_number(const cJSON *obj, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return false;
    *out = v->valuedouble;
    return true;
}

static bool read_geo(const cJSON *root, const char *key, struct takeout_meta *m)
{
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(root, key);
    double lat, lon, alt = (double)NAN;
    if (!cJSON_IsObject(g) || !json_number(g, "latitude", &lat) ||
        !json_number(g, "longitude", &lon))
        return false;
    /* Takeout writes 0.0, 0.0 when it has no position */
    if ((lat == 0.0 && lon == 0.0) || lat < -90.0 || lat > 90.0 || lon < -180.0 || lon > 180.0)
        return false;
    json_number(g, "altitude", &alt);
    m->lat = lat;
    m->lon = lon;
    m->alt = alt;
    return true;
}

void takeout_meta_release(struct takeout_meta *m)
{
    if (!m)
        return;
    free(m->title);
    free(m->description);
    for (size_t i = 0; i < m->npeople; i++)
        free(m->people[i]);
    free(m->people);
    memset(m, 0, sizeof(*m));
}

int takeout_read_sidecar(const char *json_path, const char *file_name, struct takeout_meta *m,
                         struct sb_err *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    struct takeout_meta r;
    memset(&r, 0, sizeof(r));
    r.lat = r.lon = r.alt = (double)NAN;
    int rc = sb_read_file(json_path, 1 << 20, &buf, &len, err);
    if (rc)
        goto out;
    root = cJSON_ParseWithLength((const char *)buf, len);
    if (!cJSON_IsObject(root)) {
        rc = sb_fail(err, SB_EFORMAT, "takeout sidecar '%s': not a JSON object", json_path);
        goto out;
    }
    r.title = json_string(root, "title");
    if (r.title && file_name && strcmp(r.title, file_name) == 0) {
        free(r.title); /* Takeout's title is mostly just the uploaded file's name */
        r.title = NULL;
    }
    r.description = json_string(root, "description");
    if (!read_geo(root, "geoData", &r))
        read_geo(root, "geoDataExif", &r);
    const cJSON *people = cJSON_GetObjectItemCaseSensitive(root, "people");
    int np = cJSON_IsArray(people) ? cJSON_GetArraySize(people) : 0;
    if (np > 0) {
        r.people = calloc((size_t)np, sizeof(char *));
        if (!r.people) {
            rc = sb_fail(err, SB_ENOMEM, "takeout sidecar: out of memory");
            goto out;
        }
        const cJSON *p;
        cJSON_ArrayForEach(p, people)
        {
            char *name = json_string(p, "name");
            if (name)
                r.people[r.npeople++] = name;
        }
    }
    *m = r;
    memset(&r, 0, sizeof(r));
out:
    takeout_meta_release(&r);
    cJSON_Delete(root);
    free(buf);
    return rc;
}

/* ---- the crawl stage ----------------------------------------------------------------------- */

struct takeout_result {
    char sidecar[PATH_MAX];
    char original[PATH_MAX]; /* "" unless this is an edited version */
    bool have_sidecar;
    struct takeout_meta m;
};

static int plugin_run(void *user, int worker, const struct image *rgb, const char *path,
                      void **result, struct sb_err *err)
{
    (void)user;
    (void)worker;
    (void)rgb;
    *result = NULL;
    struct takeout_result *r = calloc(1, sizeof(*r));
    if (!r)
        return sb_fail(err, SB_ENOMEM, "takeout: out of memory");
    bool edited = takeout_edited_original(path, r->original, sizeof(r->original));
    if (!edited)
        r->original[0] = '\0';
    r->have_sidecar =
        crawl_takeout_sidecar(path, r->sidecar, sizeof(r->sidecar)) ||
        (edited && crawl_takeout_sidecar(r->original, r->sidecar, sizeof(r->sidecar)));
    if (!r->have_sidecar && !edited) {
        free(r); /* not from Takeout: nothing to store */
        return SB_OK;
    }
    if (r->have_sidecar) {
        const char *slash = strrchr(edited ? r->original : path, '/');
        int rc = takeout_read_sidecar(r->sidecar, slash ? slash + 1 : path, &r->m, err);
        if (rc) {
            free(r);
            return rc;
        }
    } else {
        r->m.lat = r->m.lon = r->m.alt = (double)NAN;
    }
    *result = r;
    return SB_OK;
}

/* Errors of the catalog stop the run (SB_EDB); a bad value (a tag with control characters) is
 * skipped. */
static int keep_db_errors(int rc)
{
    return rc == SB_EDB ? rc : SB_OK;
}

static int plugin_store(void *user, struct catalog *cat, int64_t photo_id, void *result,
                        const float *embedding, int dim, struct sb_err *err)
{
    (void)user;
    (void)embedding;
    (void)dim;
    struct takeout_result *r = result;
    if (!r)
        return SB_OK;
    int64_t original = 0;
    int rc = SB_OK;
    if (r->original[0]) {
        rc = catalog_photo_by_path(cat, r->original, &original, err);
        if (rc == SB_ENOENT)
            rc = SB_OK, original = 0; /* the original is not indexed (yet) */
    }
    if (!rc && (r->have_sidecar || original))
        rc = catalog_takeout_set(cat, photo_id, r->have_sidecar ? r->sidecar : NULL, original, err);
    if (!rc && r->m.title)
        rc = keep_db_errors(catalog_text_set(cat, photo_id, CATALOG_SRC_TAKEOUT ":title",
                                             r->m.title, (double)NAN, NULL, err));
    if (!rc && r->m.description)
        rc = keep_db_errors(catalog_text_set(cat, photo_id, CATALOG_SRC_TAKEOUT ":description",
                                             r->m.description, (double)NAN, NULL, err));
    if (!rc && !isnan(r->m.lat))
        rc = keep_db_errors(
            catalog_photo_gps_fill(cat, photo_id, r->m.lat, r->m.lon, r->m.alt, NULL, err));
    for (size_t i = 0; !rc && i < r->m.npeople; i++)
        rc = keep_db_errors(
            catalog_tag_add(cat, photo_id, r->m.people[i], CATALOG_SRC_TAKEOUT, (double)NAN, err));
    return rc;
}

static void plugin_free(void *user, void *result)
{
    (void)user;
    struct takeout_result *r = result;
    if (!r)
        return;
    takeout_meta_release(&r->m);
    free(r);
}

void takeout_plugin(struct crawl_plugin *out)
{
    memset(out, 0, sizeof(*out));
    out->stage = "takeout";
    out->needs_pixels = false;
    out->run = plugin_run;
    out->store = plugin_store;
    out->free_result = plugin_free;
}
