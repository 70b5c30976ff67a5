/* xmp_internal.h - what src/interop/xmp*.c share: the safe libxml2 parse and RDF helpers. */
#ifndef SHOEBOX_INTEROP_XMP_INTERNAL_H
#define SHOEBOX_INTEROP_XMP_INTERNAL_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>

struct sb_err;

#define XMP_NS_RDF "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
#define XMP_NS_DC  "http://purl.org/dc/elements/1.1/"
#define XMP_NS_XMP "http://ns.adobe.com/xap/1.0/"
#define XMP_NS_LR  "http://ns.adobe.com/lightroom/1.0/"
#define XMP_NS_X   "adobe:ns:meta/"

/* A C string as libxml2's const xmlChar * (UTF-8 bytes either way). BAD_CAST casts away const,
 * which -Wcast-qual rejects; going through const void * keeps the qualifier. */
static inline const xmlChar *xmp_xc(const char *s)
{
    return (const xmlChar *)(const void *)s;
}

/* Parses buf with the network off, no entity substitution and no DOCTYPE (see xmp.h).
 * *out is freed with xmlFreeDoc(). */
int xmp_doc_parse(const char *buf, size_t len, const char *what, xmlDocPtr *out,
                  struct sb_err *err);
/* n is an element named name in namespace ns (by URI, whatever the prefix). */
bool xmp_is(const xmlNode *n, const char *ns, const char *name);
/* The first rdf:RDF element at or under n (and its siblings); NULL when none. */
xmlNode *xmp_find_rdf(xmlNode *n);

#endif
