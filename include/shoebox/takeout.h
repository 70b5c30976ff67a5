/* takeout.h - Google Takeout JSON sidecars as a crawl stage: titles, descriptions, places,
 * people, and "-edited" versions grouped with their originals. Part of sb_interop. */
#ifndef SHOEBOX_TAKEOUT_H
#define SHOEBOX_TAKEOUT_H

#include <stdbool.h>
#include <stddef.h>

struct sb_err;
struct crawl_plugin;

/* What a sidecar says (NULL / NaN / 0 when it does not). */
struct takeout_meta {
    char *title; /* only when it is not just the file name */
    char *description;
    double lat, lon, alt; /* geoData (else geoDataExif); 0,0 means none in Takeout */
    char **people;        /* people[].name */
    size_t npeople;
};

/* Parses a sidecar (at most 1 MiB of JSON). file_name (may be NULL) is the photo's name: a
 * title equal to it is dropped. Release m with takeout_meta_release(). Errors: SB_ENOENT,
 * SB_EFORMAT (not JSON), SB_ETOOBIG. */
int takeout_read_sidecar(const char *json_path, const char *file_name, struct takeout_meta *m,
                         struct sb_err *err);
void takeout_meta_release(struct takeout_meta *m);

/* When path names an edited version ("IMG_1-edited.jpg", and localized: "-bearbeitet",
 * "-modifié", "-editado", "-modificato", "-bewerkt", ...; "(1)" after it is kept), writes the
 * original's path ("IMG_1.jpg") into out and returns true, whether or not that file exists. */
bool takeout_edited_original(const char *path, char *out, size_t cap);

/* The "takeout" crawl stage (needs no pixels): for every photo with a sidecar, stores its
 * title and description (texts "takeout:title", "takeout:description"), its position when EXIF
 * has none, people as tags with source "takeout", and the link of an edited version to its
 * original (which must be indexed). A photo without a sidecar costs a few failed stat(2)s. */
void takeout_plugin(struct crawl_plugin *out);

#endif
