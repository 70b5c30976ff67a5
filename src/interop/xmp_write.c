/* xmp_write.c - merging keywords and captions into XMP sidecars.
 *
 * The existing sidecar is parsed into a DOM and only added to: new rdf:li entries in the
 * dc:subject and lr:hierarchicalSubject bags (created in the first rdf:Description when
 * missing), and dc:description when there is none. Every other node (unknown namespaces,
 * develop settings, comments, xpacket wrappers) is written back as it was. */
#include "shoebox/xmp.h"

#include "xmp_internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <errno.h>
#include <libxml/xmlsave.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* A new sidecar: the layout Lightroom Classic writes (no XML declaration, x:xmpmeta root). */
static const char new_sidecar[] =
    "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\" x:xmptk=\"shoebox\">\n"
    " <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n"
    "  <rdf:Description rdf:about=\"\"\n"
    "    xmlns:dc=\"http://purl.org/dc/elements/1.1/\"\n"
    "    xmlns:lr=\"http://ns.adobe.com/lightroom/1.0/\">\n"
    "  </rdf:Description>\n"
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n";

/* The first element child of the property named ns:name in any rdf:Description under rdf. */
static xmlNode *find_prop(xmlNode *rdf, const char *ns, const char *name)
{
    for (xmlNode *d = rdf->children; d; d = d->next) {
        if (!xmp_is(d, XMP_NS_RDF, "Description"))
            continue;
        for (xmlNode *c = d->children; c; c = c->next) {
            if (xmp_is(c, ns, name))
                return c;
        }
    }
    return NULL;
}

static bool has_attr_prop(xmlNode *rdf, const char *ns, const char *name)
{
    for (xmlNode *d = rdf->children; d; d = d->next) {
        if (xmp_is(d, XMP_NS_RDF, "Description") && xmlHasNsProp(d, xmp_xc(name), xmp_xc(ns)))
            return true;
    }
    return false;
}

/* The namespace ns in scope at node, declared on node with prefix when missing. */
static xmlNs *ensure_ns(xmlDoc *doc, xmlNode *node, const char *href, const char *prefix)
{
    xmlNs *ns = xmlSearchNsByHref(doc, node, xmp_xc(href));
    if (ns)
        return ns;
    /* the prefix may be bound to another URI here: pick a free one */
    char p[32];
    snprintf(p, sizeof(p), "%s", prefix);
    for (int i = 1; xmlSearchNs(doc, node, xmp_xc(p)) && i < 100; i++)
        snprintf(p, sizeof(p), "%s%d", prefix, i);
    return xmlNewNs(node, xmp_xc(href), xmp_xc(p));
}

static xmlNode *first_description(xmlDoc *doc, xmlNode *rdf, xmlNs *rdf_ns)
{
    for (xmlNode *d = rdf->children; d; d = d->next) {
        if (xmp_is(d, XMP_NS_RDF, "Description"))
            return d;
    }
    xmlNode *d = xmlNewChild(rdf, rdf_ns, xmp_xc("Description"), NULL);
    if (d)
        xmlNewNsProp(d, rdf_ns, xmp_xc("about"), xmp_xc(""));
    (void)doc;
    return d;
}

/* The rdf:Bag (or Seq) of an array property, created when missing. */
static xmlNode *array_of(xmlNode *prop, xmlNs *rdf_ns)
{
    for (xmlNode *c = prop->children; c; c = c->next) {
        if (xmp_is(c, XMP_NS_RDF, "Bag") || xmp_is(c, XMP_NS_RDF, "Seq"))
            return c;
    }
    return xmlNewChild(prop, rdf_ns, xmp_xc("Bag"), NULL);
}

static bool array_has(const xmlNode *arr, const char *value, bool leaf)
{
    for (const xmlNode *li = arr->children; li; li = li->next) {
        if (!xmp_is(li, XMP_NS_RDF, "li"))
            continue;
        xmlChar *t = xmlNodeGetContent(li);
        bool same = false;
        if (t) {
            const char *s = (const char *)t;
            const char *bar = leaf ? strrchr(s, '|') : NULL;
            same = strcasecmp(s, value) == 0 || (bar && strcasecmp(bar + 1, value) == 0);
        }
        xmlFree(t);
        if (same)
            return true;
    }
    return false;
}

struct merge {
    xmlDoc *doc;
    xmlNode *rdf;
    xmlNs *rdf_ns;
    size_t nchanges;
    struct sb_buf *changes;
    bool oom;
};

static void add_to_array(struct merge *m, const char *ns, const char *prefix, const char *name,
                         const char *const *values, size_t n, bool leaf)
{
    xmlNode *prop = find_prop(m->rdf, ns, name);
    xmlNode *arr = NULL;
    for (size_t i = 0; i < n && !m->oom; i++) {
        if (!values[i] || !*values[i])
            continue;
        if (!prop) {
            xmlNode *d = first_description(m->doc, m->rdf, m->rdf_ns);
            xmlNs *pns = d ? ensure_ns(m->doc, d, ns, prefix) : NULL;
            prop = pns ? xmlNewChild(d, pns, xmp_xc(name), NULL) : NULL;
            if (!prop) {
                m->oom = true;
                return;
            }
        }
        if (!arr)
            arr = array_of(prop, m->rdf_ns);
        if (!arr) {
            m->oom = true;
            return;
        }
        if (array_has(arr, values[i], leaf))
            continue;
        xmlNode *li = xmlNewChild(arr, m->rdf_ns, xmp_xc("li"), NULL);
        if (!li) {
            m->oom = true;
            return;
        }
        xmlNodeAddContent(li, xmp_xc(values[i])); /* escaped on output */
        m->nchanges++;
        if (m->changes)
            sb_buf_printf(m->changes, "+ %s:%s %s\n",
                          prop->ns && prop->ns->prefix ? (const char *)prop->ns->prefix : prefix,
                          name, values[i]);
    }
}

static void add_description(struct merge *m, const char *text)
{
    if (!text || !*text)
        return;
    if (find_prop(m->rdf, XMP_NS_DC, "description") ||
        has_attr_prop(m->rdf, XMP_NS_DC, "description")) {
        if (m->changes)
            sb_buf_printf(m->changes, "= dc:description kept (the sidecar has one)\n");
        return;
    }
    xmlNode *d = first_description(m->doc, m->rdf, m->rdf_ns);
    xmlNs *dc = d ? ensure_ns(m->doc, d, XMP_NS_DC, "dc") : NULL;
    xmlNode *prop = dc ? xmlNewChild(d, dc, xmp_xc("description"), NULL) : NULL;
    xmlNode *alt = prop ? xmlNewChild(prop, m->rdf_ns, xmp_xc("Alt"), NULL) : NULL;
    xmlNode *li = alt ? xmlNewChild(alt, m->rdf_ns, xmp_xc("li"), NULL) : NULL;
    xmlNs *xml = li ? xmlSearchNs(m->doc, li, xmp_xc("xml")) : NULL;
    if (!li || !xml || !xmlSetNsProp(li, xml, xmp_xc("lang"), xmp_xc("x-default"))) {
        m->oom = true;
        return;
    }
    xmlNodeAddContent(li, xmp_xc(text));
    m->nchanges++;
    if (m->changes)
        sb_buf_printf(m->changes, "+ dc:description %s\n", text);
}

int xmp_merge(const char *old, size_t old_len, const char *what, const char *const *keywords,
              size_t nkeywords, const char *description, char **out, size_t *out_len,
              size_t *nchanges, struct sb_buf *changes, struct sb_err *err)
{
    bool fresh = !old;
    if (fresh) {
        old = new_sidecar;
        old_len = sizeof(new_sidecar) - 1;
    }
    xmlDocPtr doc = NULL;
    xmlBufferPtr buf = NULL;
    int rc = xmp_doc_parse(old, old_len, what, &doc, err);
    if (rc)
        return rc;
    struct merge m = { doc, xmp_find_rdf(xmlDocGetRootElement(doc)), NULL, 0, changes, false };
    if (!m.rdf) {
        rc = sb_fail(err, SB_EFORMAT, "xmp '%s': no rdf:RDF element; not merging into it", what);
        goto out;
    }
    m.rdf_ns = m.rdf->ns;
    add_to_array(&m, XMP_NS_DC, "dc", "subject", keywords, nkeywords, false);
    add_to_array(&m, XMP_NS_LR, "lr", "hierarchicalSubject", keywords, nkeywords, true);
    add_description(&m, description);
    if (m.oom) {
        rc = sb_fail(err, SB_ENOMEM, "xmp '%s': out of memory", what);
        goto out;
    }
    /* keep the XML declaration only when the file had one (Lightroom's sidecars have none) */
    bool decl = !fresh && old_len >= 5 && memcmp(old, "<?xml", 5) == 0;
    buf = xmlBufferCreate();
    xmlSaveCtxtPtr sc = buf ? xmlSaveToBuffer(buf, "UTF-8", decl ? 0 : XML_SAVE_NO_DECL) : NULL;
    if (!sc) {
        rc = sb_fail(err, SB_ENOMEM, "xmp '%s': out of memory", what);
        goto out;
    }
    long saved = xmlSaveDoc(sc, doc);
    xmlSaveClose(sc);
    if (saved < 0) {
        rc = sb_fail(err, SB_EIO, "xmp '%s': cannot serialise the merged document", what);
        goto out;
    }
    size_t n = (size_t)xmlBufferLength(buf);
    char *o = malloc(n + 1);
    if (!o) {
        rc = sb_fail(err, SB_ENOMEM, "xmp '%s': out of memory", what);
        goto out;
    }
    memcpy(o, xmlBufferContent(buf), n);
    o[n] = '\0';
    *out = o;
    *out_len = n;
    *nchanges = m.nchanges;
out:
    xmlBufferFree(buf);
    xmlFreeDoc(doc);
    return rc;
}

/* ---- writing -------------------------------------------------------------------------------- */

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return sb_strdup(".");
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, path, n);
        d[n] = '\0';
    }
    return d;
}

/* Refuses folders and files the user made read-only, even when we could write them (root):
 * a folder without any write bit, or on a read-only mount. */
static int check_writable(const char *dir, const char *sidecar, bool exists, struct sb_err *err)
{
    struct stat st;
    if (stat(dir, &st) != 0) {
        int e = errno;
        return sb_fail(err, sb_code_from_errno(e), "xmp write: folder '%s': %s", dir, strerror(e));
    }
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
        return sb_fail(err, SB_EACCES,
                       "xmp write: folder '%s' is on a read-only file system; no sidecar written",
                       dir);
    if (!(st.st_mode & 0222) || access(dir, W_OK) != 0)
        return sb_fail(err, SB_EACCES,
                       "xmp write: folder '%s' is read-only (mode %04o); no sidecar written", dir,
                       (unsigned)(st.st_mode & 07777));
    if (exists && stat(sidecar, &st) == 0 && (!(st.st_mode & 0222) || access(sidecar, W_OK)))
        return sb_fail(err, SB_EACCES,
                       "xmp write: sidecar '%s' is read-only (mode %04o); left as it is", sidecar,
                       (unsigned)(st.st_mode & 07777));
    return SB_OK;
}

int xmp_write_sidecar(const char *photo_path, const char *const *keywords, size_t nkeywords,
                      const char *description, bool dry_run, char **sidecar, bool *created,
                      size_t *nchanges, struct sb_buf *changes, struct sb_err *err)
{
    char *path = NULL, *dir = NULL, *merged = NULL;
    unsigned char *old = NULL;
    size_t old_len = 0, merged_len = 0, n = 0;
    struct stat st;
    int rc = xmp_sidecar_path(photo_path, &path, err);
    if (rc)
        return rc;
    bool exists = stat(path, &st) == 0;
    if (exists) {
        rc = sb_read_file(path, XMP_MAX_BYTES, &old, &old_len, err);
        if (rc == SB_ETOOBIG)
            rc = sb_fail(err, SB_ETOOBIG, "xmp '%s': larger than %zu bytes; not merging", path,
                         XMP_MAX_BYTES);
        if (rc)
            goto out;
    }
    rc = xmp_merge(exists ? (const char *)old : NULL, old_len, path, keywords, nkeywords,
                   description, &merged, &merged_len, &n, changes, err);
    if (rc || n == 0 || dry_run)
        goto out;
    dir = dir_of(path);
    if (!dir) {
        rc = sb_fail(err, SB_ENOMEM, "xmp: out of memory");
        goto out;
    }
    rc = check_writable(dir, path, exists, err);
    if (rc)
        goto out;
    rc = sb_write_file_atomic(path, merged, merged_len, err);
    if (rc) {
        /* say which sidecar, whatever the helper said */
        struct sb_err inner = *err;
        rc = sb_fail(err, rc, "xmp write '%s': %s", path, inner.msg);
        goto out;
    }
    if (exists)
        chmod(path, st.st_mode & 07777); /* keep the old sidecar's permissions */
out:
    if (!rc) {
        if (created)
            *created = !exists;
        if (nchanges)
            *nchanges = n;
        if (sidecar) {
            *sidecar = path;
            path = NULL;
        }
    }
    free(path);
    free(dir);
    free(old);
    free(merged);
    return rc;
}
