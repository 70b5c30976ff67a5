/* takeout.c - Google Takeout JSON sidecars: the capture time when EXIF has none.
 * Takeout writes "IMG_1.jpg.json" beside "IMG_1.jpg"; newer exports write
 * "IMG_1.jpg.supplemental-metadata.json"; a name is cut so that the JSON file name is at most
 * 51 bytes; and a duplicate "IMG_1(1).jpg" gets "IMG_1.jpg(1).json". */
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    } else if (cJSON_IsNumber(ts) && ts->valuedouble > 0 && ts->valuedouble < 253402300799.0) {
        *unix_time = (int64_t)ts->valuedouble;
        ok = true;
    }
    cJSON_Delete(root);
    free(buf);
    return ok;
}

/* Tries dir/<name><suffix>, and the same cut to Takeout's 51-byte limit. */
static bool try_name(const char *dir, const char *name, size_t name_len, const char *suffix,
                     int64_t *unix_time)
{
    char path[PATH_MAX];
    size_t slen = strlen(suffix);
    int n = snprintf(path, sizeof(path), "%s/%.*s%s", dir, (int)name_len, name, suffix);
    if (n > 0 && (size_t)n < sizeof(path) && read_taken(path, unix_time))
        return true;
    if (name_len + slen > 51 && slen < 51) {
        size_t keep = 51 - slen;
        n = snprintf(path, sizeof(path), "%s/%.*s%s", dir, (int)keep, name, suffix);
        if (n > 0 && (size_t)n < sizeof(path) && read_taken(path, unix_time))
            return true;
    }
    return false;
}

bool crawl_takeout_time(const char *path, int64_t *unix_time)
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
    if (try_name(dir, name, nlen, ".json", unix_time) ||
        try_name(dir, name, nlen, ".supplemental-metadata.json", unix_time))
        return true;
    const char *dot = strrchr(name, '.');
    size_t stem = dot ? (size_t)(dot - name) : nlen;
    if (dot && try_name(dir, name, stem, ".json", unix_time))
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
            if (n > 0 && (size_t)n < sizeof(alt) &&
                try_name(dir, alt, (size_t)n, ".json", unix_time))
                return true;
        }
    }
    return false;
}
