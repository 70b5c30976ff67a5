/* fuzz_takeout.c - libFuzzer target: Google Takeout sidecars and their names.
 *
 * Input: a photo file name on the first line, then the sidecar's JSON bytes. Each input
 *  - is written as "<dir>/<name>.json" (or "<dir>/x.jpg.json" when the name cannot be a file
 *    name) in a temporary folder made once, and read back with takeout_read_sidecar() (which
 *    takes a path: there is no in-memory entry point) and crawl_takeout_time();
 *  - looks its sidecar up by the photo's path with crawl_takeout_sidecar(), which must find
 *    that very file (the full "<name>.json" is always the first candidate);
 *  - maps the name to its original with takeout_edited_original() (a pure function), with a
 *    roomy and a tight output buffer.
 * Invariants: a parsed sidecar has no title equal to the file name and no empty strings, a
 * position inside [-90, 90] x [-180, 180] (or NaN), names of people that are non-empty; an
 * edited name maps to a shorter one in the same folder, and never overruns cap. */
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/takeout.h"

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void remove_dir(void)
{
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/sb_fuzz_takeout_XXXXXX", tmp && strlen(tmp) < 30 ? tmp : "/tmp");
    if (!mkdtemp(dir))
        abort();
    atexit(remove_dir);
    return 0;
}

static void check_meta(const struct takeout_meta *m, const char *name)
{
    if (m->title && (!m->title[0] || strcmp(m->title, name) == 0))
        __builtin_trap();
    if (m->description && !m->description[0])
        __builtin_trap();
    if (!isnan(m->lat) || !isnan(m->lon)) {
        if (!(m->lat >= -90.0 && m->lat <= 90.0 && m->lon >= -180.0 && m->lon <= 180.0))
            __builtin_trap();
        if (m->lat == 0.0 && m->lon == 0.0)
            __builtin_trap(); /* Takeout's "no position" */
    }
    if (m->npeople && !m->people)
        __builtin_trap();
    for (size_t i = 0; i < m->npeople; i++) {
        if (!m->people[i] || !m->people[i][0])
            __builtin_trap();
    }
}

static void check_edited(const char *name)
{
    char path[600], out[600], tight[16];
    snprintf(path, sizeof(path), "/photos/%s", name);
    if (takeout_edited_original(path, out, sizeof(out))) {
        /* same folder, a shorter name (the suffix is gone) */
        if (strlen(out) >= strlen(path) || strncmp(out, "/photos/", 8) != 0 ||
            (!strchr(name, '/') && strchr(out + 8, '/')))
            __builtin_trap();
    }
    memset(tight, 'x', sizeof(tight));
    if (takeout_edited_original(name, tight, 8) && (strlen(tight) >= 8 || tight[8] != 'x'))
        __builtin_trap();
    if (tight[8] != 'x' || tight[15] != 'x')
        __builtin_trap(); /* wrote beyond cap */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return -1;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t name_len = nl ? (size_t)(nl - data) : 0;
    const uint8_t *json = nl ? nl + 1 : data;
    size_t json_len = size - (size_t)(json - data);
    char name[256];
    if (name_len >= sizeof(name) || memchr(data, '\0', name_len))
        return -1;
    memcpy(name, data, name_len);
    name[name_len] = '\0';
    check_edited(name);
    /* a name that can be a file in dir: no '/', not "." or "..", room for ".json" */
    bool usable = name_len > 0 && name_len + 5 <= 255 && !strchr(name, '/') &&
                  strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
    const char *photo = usable ? name : "x.jpg";
    char photo_path[PATH_MAX], side[PATH_MAX], found[PATH_MAX];
    snprintf(photo_path, sizeof(photo_path), "%s/%s", dir, photo);
    snprintf(side, sizeof(side), "%s.json", photo_path);
    FILE *f = fopen(side, "wb");
    if (!f)
        abort();
    if (json_len && fwrite(json, 1, json_len, f) != json_len)
        abort();
    if (fclose(f) != 0)
        abort();

    struct takeout_meta m;
    struct sb_err err;
    if (takeout_read_sidecar(side, photo, &m, &err) == SB_OK) {
        check_meta(&m, photo);
        takeout_meta_release(&m);
    } else if (!err.msg[0]) {
        __builtin_trap();
    }
    int64_t t = 0;
    if (crawl_takeout_time(photo_path, &t) && t <= 0)
        __builtin_trap();
    if (!crawl_takeout_sidecar(photo_path, found, sizeof(found)) || strcmp(found, side) != 0)
        __builtin_trap(); /* "<photo>.json" beside the photo is always its sidecar */
    unlink(side);
    return 0;
}
