/* internal.h - private parts of the crawler. */
#ifndef SHOEBOX_CRAWL_INTERNAL_H
#define SHOEBOX_CRAWL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct catalog;
struct crawl_params;
struct crawl_stats;
struct sb_err;

/* Walks one root and records new/changed/missing files. */
int crawl_scan_root(struct catalog *cat, const char *root, const struct crawl_params *p,
                    struct crawl_stats *stats, struct sb_err *err);

/* True for names of system clutter that is never a photo: .DS_Store, Thumbs.db, ._x, @eaDir... */
bool crawl_is_clutter(const char *name, bool is_dir);

/* True when the file name has an extension photos use (so failing it is an error, not a
 * silent skip). */
bool crawl_has_image_ext(const char *name);

#endif
