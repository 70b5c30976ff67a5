/* xmp.h - XMP metadata: read sidecars and embedded packets, merge keywords and captions into
 * sidecars that Lightroom Classic, Capture One, digiKam and darktable read.
 *
 * Parsing uses libxml2 with the network off, no entity substitution, and any DOCTYPE refused
 * (XMP packets never carry one: refusing it stops billion-laughs and external entities before
 * the parser sees them). Input is capped at XMP_MAX_BYTES. Originals are never written: only
 * sidecars, atomically (temporary file + rename). */
#ifndef SHOEBOX_XMP_H
#define SHOEBOX_XMP_H

#include <stdbool.h>
#include <stddef.h>

struct sb_err;
struct sb_buf;
struct crawl_plugin;

#define XMP_MAX_BYTES ((size_t)4 << 20) /* a sidecar larger than this is refused */
#define XMP_NO_RATING (-100)

/* What shoebox reads from an XMP packet. Strings are UTF-8, owned by the struct. */
struct xmp_data {
    char **keywords; /* dc:subject, then the leaf of each lr:hierarchicalSubject not yet
                      * there ("Animals|Dog" -> "Dog"), without case-insensitive repeats */
    size_t nkeywords;
    char **hierarchical; /* lr:hierarchicalSubject as written ("Animals|Dog") */
    size_t nhierarchical;
    int rating;                        /* xmp:Rating (-1..5), XMP_NO_RATING when absent */
    char *label, *title, *description; /* xmp:Label; dc:title, dc:description (x-default) */
};

/* Parses an XMP packet or sidecar (buf, len bytes; need not be NUL-terminated). what names it
 * in errors. Errors: SB_ETOOBIG (over XMP_MAX_BYTES), SB_EFORMAT (a DOCTYPE / entities, or not
 * XMP), SB_ECORRUPT (not well-formed XML, e.g. truncated), SB_ENOMEM. On success *out is
 * filled; release it with xmp_data_release(). */
int xmp_parse(const char *buf, size_t len, const char *what, struct xmp_data *out,
              struct sb_err *err);
void xmp_data_release(struct xmp_data *x); /* NULL is a no-op */

/* Finds the XMP packet in a file's first bytes: the JPEG APP1 segment named
 * "http://ns.adobe.com/xap/1.0/", else (PNG, TIFF, WebP, HEIF...) a scan for an
 * <x:xmpmeta>...</x:xmpmeta> packet (XMP spec part 3, "packet scanning"). *pkt points into
 * buf. Returns false when there is none. */
bool xmp_find_embedded(const unsigned char *buf, size_t len, const unsigned char **pkt,
                       size_t *pkt_len);

/* The existing sidecar of a photo: "<path>.xmp" (darktable: IMG_0042.CR2.xmp) or "<path
 * without extension>.xmp" (Lightroom, Capture One, digiKam: IMG_0042.xmp), either case of
 * ".xmp". *out is malloc'd; SB_ENOENT when there is none. */
int xmp_sidecar_find(const char *photo_path, char **out, struct sb_err *err);
/* The sidecar to write: the existing one, else "<path without extension>.xmp". */
int xmp_sidecar_path(const char *photo_path, char **out, struct sb_err *err);

/* Reads what a photo's sidecar and embedded packet say (the sidecar wins for single values;
 * keywords are the union). SB_ENOENT when it has neither; a hostile or broken sidecar is an
 * error (the embedded packet is then not consulted). */
int xmp_read_photo(const char *photo_path, struct xmp_data *out, struct sb_err *err);

/* Merges keywords (into dc:subject and lr:hierarchicalSubject, adding those not there in any
 * case) and description (dc:description x-default, only when the packet has none: an
 * existing caption is never overwritten) into the XMP document old (old_len bytes; NULL for
 * a new sidecar). Everything else in the document is kept as it was, unknown namespaces
 * included. *out (malloc'd, *out_len bytes) is the new document; *nchanges counts what was
 * added, and changes (may be NULL) gets one line per addition ("+ dc:subject dog"). */
int xmp_merge(const char *old, size_t old_len, const char *what, const char *const *keywords,
              size_t nkeywords, const char *description, char **out, size_t *out_len,
              size_t *nchanges, struct sb_buf *changes, struct sb_err *err);

/* Writes (or with dry_run only computes) the merged sidecar of the photo at photo_path.
 * *sidecar (malloc'd, may be NULL) is its path, *created tells whether it is new, *nchanges
 * the number of additions (0: nothing written). A read-only folder or sidecar (no write bit,
 * or a read-only file system), or a failing write, is an SB_EACCES / SB_EIO error naming it. */
int xmp_write_sidecar(const char *photo_path, const char *const *keywords, size_t nkeywords,
                      const char *description, bool dry_run, char **sidecar, bool *created,
                      size_t *nchanges, struct sb_buf *changes, struct sb_err *err);

/* texts.source of the XMP title and description (full-text searchable). */
#define XMP_TEXT_TITLE       "xmp:title"
#define XMP_TEXT_DESCRIPTION "xmp:description"

/* The crawl stage "xmp" (needs_pixels false): reads each photo's sidecar and embedded packet,
 * stores the keywords as tags of source 'xmp', rating/label/title/description in the catalog,
 * and title/description as texts XMP_TEXT_TITLE / XMP_TEXT_DESCRIPTION. A photo without XMP
 * is done with its earlier XMP tags and texts removed. The walk resets this stage of a photo
 * whose sidecar is new or changed (catalog_jobs_reset_basename()), so edits are read again. */
void xmp_plugin(struct crawl_plugin *out);

#endif
