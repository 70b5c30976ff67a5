/* takeout.c - Google Takeout JSON sidecars: the capture time when EXIF has none.
 * Takeout writes "IMG_1.jpg.json" beside "IMG_1.jpg"; newer exports write
 * "IMG_1.jpg.supplemental-metadata.json"; a name is cut so that the JSON file name is at most
 * 51 bytes; and a duplicate "IMG_1(1).jpg" gets "IMG_1.jpg(1).json". crawl_takeout_sidecar()
 * finds the file for the takeout importer (src/interop/takeout.c). */
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool read_taken(const char *json_path, int64_t *unix_time)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    if (sb_read_file(json_path, 1 << 20, &buf, &len, NULL) != SB_OK)
        return false;
    bool ok = false;
    cJSON *root = cJSON_ParseWithLength((const char *)buf, len);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "photoTakenTime");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(t, "timestamp");
    if (cJSON_IsString(ts) && ts->valuestring) {
        int64_t v;
        if (sb_parse_i64(ts->valuestring, 0, 253402300799LL, &v, NULL) == SB_OK && v > 0) {
            *unix_time = v;
            ok = true;
        }
    } else if (cJSON_IsNumber(ts) && ts->valuedouble >= 1.0 && ts->valuedouble < 253402300799.0) {
        /* >= 1, not > 0: 0.5 would truncate to 0, the "no time" the string branch rejects */
        *unix_time = (int64_t)ts->valuedouble;
        ok = true;
    }
    cJSON_Delete(root);
    free(buf);
    return ok;
}

/* What to do with a candidate sidecar path: true when it is the one. */
struct sidecar_probe {
    bool (*accept)(struct sidecar_probe *pr, const char *json_path);
    int64_t *unix_time; /* crawl_takeout_time */
    char *out;          /* crawl_takeout_sidecar */
    size_t cap;
};

static bool accept_time(struct sidecar_probe *pr, const char *json_path)
{
    return read_taken(json_path, pr->unix_time);
}

static bool accept_exists(struct sidecar_probe *pr, const char *json_path)
{
    struct stat sb;
    if (stat(json_path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return false;
    int n = snprintf(pr->out, pr->cap, "%s", json_path);
    return n > 0 && (size_t)n < pr->cap;
}

/* Tries dir/<name><suffix>, and the same cut to Takeout's 51-byte limit. */
static bool try_name(const char *dir, const char *name, size_t name_len, const char *suffix,
                     struct sidecar_probe *pr)
{
    char path[PATH_MAX];
    size_t slen = strlen(suffix);
    int n = snprintf(path, sizeof(path), "%s/%.*s%s", dir, (int)name_len, name, suffix);
    if (n > 0 && (size_t)n < sizeof(path) && pr->accept(pr, path))
        return true;
    if (name_len + slen > 51 && slen < 51) {
        size_t keep = 51 - slen;
        n = snprintf(path, sizeof(path), "%s/%.*s%s", dir, (int)keep, name, suffix);
        if (n > 0 && (size_t)n < sizeof(path) && pr->accept(pr, path))
            return true;
    }
    return false;
}

static bool find_sidecar(const char *path, struct sidecar_probe *pr)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return false;
    char dir[PATH_MAX];
    size_t dlen = (size_t)(slash - path);
    if (dlen >= sizeof(dir))
        return false;
    memcpy(dir, path, dlen);
    dir[dlen] = '\0';
    const char *name = slash + 1;
    size_t nlen = strlen(name);
    if (try_name(dir, name, nlen, ".json", pr) ||
        try_name(dir, name, nlen, ".supplemental-metadata.json", pr))
        return true;
    /* newer exports cut "<name>.supplemental-metadata" itself to fit 51 bytes with ".json" */
    char cut[NAME_MAX + 32];
    int cn = snprintf(cut, sizeof(cut), "%s.supplemental-metadata", name);
    if (cn > 46 && (size_t)cn < sizeof(cut) && try_name(dir, cut, 46, ".json", pr))
        return true;
    const char *dot = strrchr(name, '.');
    size_t stem = dot ? (size_t)(dot - name) : nlen;
    if (dot && try_name(dir, name, stem, ".json", pr))
        return true;
    /* "IMG_1(2).jpg" -> "IMG_1.jpg(2).json" */
    if (dot && stem >= 3 && name[stem - 1] == ')') {
        const char *open = NULL;
        for (size_t i = stem - 1; i > 0; i--) {
            if (name[i - 1] == '(') {
                open = name + i - 1;
                break;
            }
        }
        if (open) {
            char alt[NAME_MAX + 16];
            size_t base = (size_t)(open - name);
            size_t cnt = stem - base; /* "(2)" */
            int n = snprintf(alt, sizeof(alt), "%.*s%s%.*s", (int)base, name, dot, (int)cnt, open);
            if (n > 0 && (size_t)n < sizeof(alt) && try_name(dir, alt, (size_t)n, ".json", pr))
                return true;
            /* "IMG_1(2).jpg" -> "IMG_1.jpg.supplemental-metadata(2).json" */
            n = snprintf(alt, sizeof(alt), "%.*s%s.supplemental-metadata%.*s", (int)base, name, dot,
                         (int)cnt, open);
            if (n > 0 && (size_t)n < sizeof(alt) && try_name(dir, alt, (size_t)n, ".json", pr))
                return true;
        }
    }
    return false;
}

bool crawl_takeout_time(const char *path, int64_t *unix_time)
{
    struct sidecar_probe pr = { accept_time, unix_time, NULL, 0 };
    return find_sidecar(path, &pr);
}

bool crawl_takeout_sidecar(const char *path, char *out, size_t cap)
{
    struct sidecar_probe pr = { accept_exists, NULL, out, cap };
    return find_sidecar(path, &pr);
}
