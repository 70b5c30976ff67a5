/* xmp.c - reading XMP: sidecar lookup, embedded packets, a safe libxml2 parse, the "xmp"
 * crawl stage. Property names and layouts: XMP specification part 1 (2012) section 7
 * (rdf:Description, arrays as rdf:Bag/Seq/Alt of rdf:li, simple properties as attributes or
 * elements) and part 2 (dc:subject bag, dc:title/dc:description language alternatives,
 * xmp:Rating, xmp:Label); lr:hierarchicalSubject is Lightroom's ("Parent|Child"). */
#include "shoebox/xmp.h"

#include "xmp_internal.h"

#include "shoebox/catalog.h"
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <pthread.h>
#include <libxml/xmlerror.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- safe parsing --------------------------------------------------------------------------- */

static const void *find_bytes(const void *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    const unsigned char *h = hay;
    if (m == 0 || n < m)
        return NULL;
    for (size_t i = 0; i + m <= n; i++) {
        if (h[i] == (unsigned char)needle[0] && memcmp(h + i, needle, m) == 0)
            return h + i;
    }
    return NULL;
}

/* libxml2 reports some errors that have no parser context (encoding conversion: "input
 * conversion failed") through its generic handler, which prints to stderr whatever the
 * XML_PARSE_NOERROR option says. Library code prints nothing: the parse runs with this
 * handler (libxml2 keeps it per thread) and the caller's is restored afterwards. */
static void xml_silent(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

/* libxml2's global state must be set up once, before threads parse: xmlInitParser() is not
 * reentrant, and the crawl workers parse sidecars side by side (two racing first parses
 * leaked a libxml2 mutex under LeakSanitizer). */
static pthread_once_t xml_once = PTHREAD_ONCE_INIT;

static void xml_init(void)
{
    xmlInitParser();
}

int xmp_doc_parse(const char *buf, size_t len, const char *what, xmlDocPtr *out, struct sb_err *err)
{
    pthread_once(&xml_once, xml_init);
    if (len > XMP_MAX_BYTES)
        return sb_fail(err, SB_ETOOBIG, "xmp '%s': %zu bytes (at most %zu)", what, len,
                       XMP_MAX_BYTES);
    if (len == 0)
        return sb_fail(err, SB_ECORRUPT, "xmp '%s': empty", what);
    /* XMP never has a DTD. Refusing one up front means no entity is ever declared, so
     * neither entity expansion (billion laughs) nor external entities (XXE) can happen, whatever
     * the libxml2 version. */
    if (find_bytes(buf, len, "<!DOCTYPE") || find_bytes(buf, len, "<!ENTITY"))
        return sb_fail(err, SB_EFORMAT, "xmp '%s': DOCTYPE/ENTITY declarations are not allowed",
                       what);
    xmlParserCtxtPtr ctx = xmlNewParserCtxt();
    if (!ctx)
        return sb_fail(err, SB_ENOMEM, "xmp '%s': out of memory", what);
    /* NONET: no network; no NOENT (entities are not substituted); no HUGE (libxml2's depth and
     * text size limits stay on). */
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING;
    xmlGenericErrorFunc old_fn = xmlGenericError;
    void *old_ctx = xmlGenericErrorContext;
    xmlSetGenericErrorFunc(NULL, xml_silent);
    xmlDocPtr doc = xmlCtxtReadMemory(ctx, buf, (int)len, NULL, NULL, opts);
    xmlSetGenericErrorFunc(old_ctx, old_fn);
    int rc = SB_OK;
    if (!doc || !ctx->wellFormed) {
        const char *msg = ctx->lastError.message ? ctx->lastError.message : "not well-formed";
        char clean[160];
        snprintf(clean, sizeof(clean), "%s", msg);
        size_t n = strlen(clean);
        while (n && (clean[n - 1] == '\n' || clean[n - 1] == ' '))
            clean[--n] = '\0';
        rc = sb_fail(err, SB_ECORRUPT, "xmp '%s': bad XML at line %d: %s", what,
                     ctx->lastError.line, clean);
        xmlFreeDoc(doc);
        doc = NULL;
    } else if (doc->intSubset || doc->extSubset) {
        rc = sb_fail(err, SB_EFORMAT, "xmp '%s': DOCTYPE is not allowed", what);
        xmlFreeDoc(doc);
        doc = NULL;
    }
    xmlFreeParserCtxt(ctx);
    if (!rc)
        *out = doc;
    return rc;
}

bool xmp_is(const xmlNode *n, const char *ns, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           strcmp((const char *)n->ns->href, ns) == 0 && strcmp((const char *)n->name, name) == 0;
}

xmlNode *xmp_find_rdf(xmlNode *n)
{
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (xmp_is(n, XMP_NS_RDF, "RDF"))
            return n;
        xmlNode *r = xmp_find_rdf(n->children);
        if (r)
            return r;
    }
    return NULL;
}

/* ---- reading properties --------------------------------------------------------------------- */

static int strv_push(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof(char *));
    if (!nv)
        return SB_ENOMEM;
    *v = nv;
    nv[*n] = sb_strdup(s);
    if (!nv[*n])
        return SB_ENOMEM;
    (*n)++;
    return SB_OK;
}

static bool strv_has(char **v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(v[i], s) == 0)
            return true;
    }
    return false;
}

/* Trimmed text content of a node; malloc'd (NULL when out of memory). */
static char *node_text(const xmlNode *n)
{
    xmlChar *t = xmlNodeGetContent(n);
    if (!t)
        return sb_strdup("");
    const char *s = (const char *)t;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t len = strlen(s);
    while (len &&
           (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    char *r = malloc(len + 1);
    if (r) {
        memcpy(r, s, len);
        r[len] = '\0';
    }
    xmlFree(t);
    return r;
}

/* Calls collect on the text of every rdf:li under an array property (any depth). */
static int each_li(const xmlNode *prop, char ***v, size_t *n)
{
    for (const xmlNode *c = prop->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        if (xmp_is(c, XMP_NS_RDF, "li")) {
            char *t = node_text(c);
            if (!t)
                return SB_ENOMEM;
            int rc = *t && !strv_has(*v, *n, t) ? strv_push(v, n, t) : SB_OK;
            free(t);
            if (rc)
                return rc;
        } else {
            int rc = each_li(c, v, n);
            if (rc)
                return rc;
        }
    }
    return SB_OK;
}

/* The x-default (else first) alternative of a language-alternative property, or its text. */
static char *alt_text(const xmlNode *prop)
{
    const xmlNode *first = NULL;
    for (const xmlNode *alt = prop->children; alt; alt = alt->next) {
        if (!xmp_is(alt, XMP_NS_RDF, "Alt") && !xmp_is(alt, XMP_NS_RDF, "Seq") &&
            !xmp_is(alt, XMP_NS_RDF, "Bag"))
            continue;
        for (const xmlNode *li = alt->children; li; li = li->next) {
            if (!xmp_is(li, XMP_NS_RDF, "li"))
                continue;
            xmlChar *lang = xmlNodeGetLang(li);
            bool def = lang && strcmp((const char *)lang, "x-default") == 0;
            xmlFree(lang);
            if (def)
                return node_text(li);
            if (!first)
                first = li;
        }
    }
    return node_text(first ? first : prop);
}

static void set_str(char **dst, char *s)
{
    if (s && !*s) {
        free(s);
        s = NULL;
    }
    if (!s)
        return;
    free(*dst);
    *dst = s;
}

static void set_rating(struct xmp_data *x, const char *s)
{
    float r;
    if (sb_parse_f32(s, -1.0f, 5.0f, &r, NULL) == SB_OK)
        x->rating = (int)lrintf(r);
}

static int read_description(const xmlNode *d, struct xmp_data *x)
{
    /* simple properties may be attributes of rdf:Description */
    for (const xmlAttr *a = d->properties; a; a = a->next) {
        if (!a->ns || !a->ns->href || strcmp((const char *)a->ns->href, XMP_NS_XMP) != 0)
            continue;
        xmlChar *v = xmlNodeListGetString(d->doc, a->children, 1);
        if (!v)
            continue;
        if (strcmp((const char *)a->name, "Rating") == 0)
            set_rating(x, (const char *)v);
        else if (strcmp((const char *)a->name, "Label") == 0)
            set_str(&x->label, sb_strdup((const char *)v));
        xmlFree(v);
    }
    for (const xmlNode *c = d->children; c; c = c->next) {
        int rc = SB_OK;
        if (xmp_is(c, XMP_NS_DC, "subject")) {
            rc = each_li(c, &x->keywords, &x->nkeywords);
        } else if (xmp_is(c, XMP_NS_LR, "hierarchicalSubject")) {
            rc = each_li(c, &x->hierarchical, &x->nhierarchical);
        } else if (xmp_is(c, XMP_NS_XMP, "Rating")) {
            char *t = node_text(c);
            if (t)
                set_rating(x, t);
            free(t);
        } else if (xmp_is(c, XMP_NS_XMP, "Label")) {
            set_str(&x->label, node_text(c));
        } else if (xmp_is(c, XMP_NS_DC, "title")) {
            set_str(&x->title, alt_text(c));
        } else if (xmp_is(c, XMP_NS_DC, "description")) {
            set_str(&x->description, alt_text(c));
        }
        if (rc)
            return rc;
    }
    return SB_OK;
}

static int walk_descriptions(const xmlNode *n, struct xmp_data *x)
{
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        int rc = xmp_is(n, XMP_NS_RDF, "Description") ? read_description(n, x)
                                                      : walk_descriptions(n->children, x);
        if (rc)
            return rc;
    }
    return SB_OK;
}

void xmp_data_release(struct xmp_data *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->nkeywords; i++)
        free(x->keywords[i]);
    for (size_t i = 0; i < x->nhierarchical; i++)
        free(x->hierarchical[i]);
    free(x->keywords);
    free(x->hierarchical);
    free(x->label);
    free(x->title);
    free(x->description);
    memset(x, 0, sizeof(*x));
    x->rating = XMP_NO_RATING;
}

int xmp_parse(const char *buf, size_t len, const char *what, struct xmp_data *out,
              struct sb_err *err)
{
    xmlDocPtr doc = NULL;
    int rc = xmp_doc_parse(buf, len, what, &doc, err);
    if (rc)
        return rc;
    struct xmp_data x;
    memset(&x, 0, sizeof(x));
    x.rating = XMP_NO_RATING;
    xmlNode *rdf = xmp_find_rdf(xmlDocGetRootElement(doc));
    if (!rdf) {
        rc = sb_fail(err, SB_EFORMAT, "xmp '%s': no rdf:RDF element (not XMP)", what);
        goto out;
    }
    rc = walk_descriptions(rdf->children, &x);
    /* leaves of hierarchical keywords that dc:subject does not list */
    for (size_t i = 0; !rc && i < x.nhierarchical; i++) {
        const char *leaf = strrchr(x.hierarchical[i], '|');
        leaf = leaf ? leaf + 1 : x.hierarchical[i];
        if (*leaf && !strv_has(x.keywords, x.nkeywords, leaf))
            rc = strv_push(&x.keywords, &x.nkeywords, leaf);
    }
    if (rc) {
        rc = sb_fail(err, SB_ENOMEM, "xmp '%s': out of memory", what);
        goto out;
    }
    *out = x;
    memset(&x, 0, sizeof(x));
out:
    xmp_data_release(&x);
    xmlFreeDoc(doc);
    return rc;
}

/* ---- embedded packets ----------------------------------------------------------------------- */

enum jpeg_walk { WALK_FOUND, WALK_END, WALK_SHORT };

/* Walks a JPEG's marker segments up to the scan (ITU T.81 B.1.1.4) looking for the XMP APP1
 * segment. WALK_SHORT: buf ended before the walk did, so more bytes could still hold it. */
static enum jpeg_walk jpeg_xmp_walk(const unsigned char *buf, size_t len, const unsigned char **pkt,
                                    size_t *pkt_len)
{
    static const char sig[] = "http://ns.adobe.com/xap/1.0/"; /* + NUL: 29 bytes */
    size_t i = 2;
    while (i + 4 <= len) {
        if (buf[i] != 0xFF)
            return WALK_END;
        unsigned m = buf[i + 1];
        if (m == 0xD8 || (m >= 0xD0 && m <= 0xD7) || m == 0x01 || m == 0xFF) {
            i += m == 0xFF ? 1 : 2;
            continue;
        }
        if (m == 0xDA || m == 0xD9)
            return WALK_END;
        size_t seg = ((size_t)buf[i + 2] << 8) | buf[i + 3];
        if (seg < 2)
            return WALK_END;
        if (i + 2 + seg > len)
            return WALK_SHORT;
        const unsigned char *p = buf + i + 4;
        size_t n = seg - 2;
        if (m == 0xE1 && n > sizeof(sig) && memcmp(p, sig, sizeof(sig)) == 0) {
            *pkt = p + sizeof(sig);
            *pkt_len = n - sizeof(sig);
            return WALK_FOUND;
        }
        i += 2 + seg;
    }
    return WALK_SHORT;
}

static bool is_jpeg(const unsigned char *buf, size_t len)
{
    return len >= 4 && buf[0] == 0xFF && buf[1] == 0xD8;
}

bool xmp_find_embedded(const unsigned char *buf, size_t len, const unsigned char **pkt,
                       size_t *pkt_len)
{
    if (is_jpeg(buf, len))
        return jpeg_xmp_walk(buf, len, pkt, pkt_len) == WALK_FOUND;
    const unsigned char *a = find_bytes(buf, len, "<x:xmpmeta");
    if (!a)
        return false;
    const char *end = "</x:xmpmeta>";
    const unsigned char *b = find_bytes(a, len - (size_t)(a - buf), end);
    if (!b)
        return false;
    *pkt = a;
    *pkt_len = (size_t)(b - a) + strlen(end);
    return true;
}

/* ---- sidecars ------------------------------------------------------------------------------- */

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* candidates[0..3]: path.xmp, path.XMP, stem.xmp, stem.XMP (stem: without the extension) */
static int candidates(const char *photo_path, char *c[4])
{
    size_t n = strlen(photo_path);
    const char *slash = strrchr(photo_path, '/');
    const char *dot = strrchr(photo_path, '.');
    size_t stem = dot && (!slash || dot > slash + 1) ? (size_t)(dot - photo_path) : n;
    for (int i = 0; i < 4; i++) {
        size_t base = i < 2 ? n : stem;
        c[i] = malloc(base + 5);
        if (!c[i]) {
            for (int j = 0; j < i; j++)
                free(c[j]);
            return SB_ENOMEM;
        }
        memcpy(c[i], photo_path, base);
        memcpy(c[i] + base, (i % 2) ? ".XMP" : ".xmp", 5);
    }
    return SB_OK;
}

static int sidecar_lookup(const char *photo_path, bool for_write, char **out, struct sb_err *err)
{
    char *c[4];
    if (candidates(photo_path, c))
        return sb_fail(err, SB_ENOMEM, "xmp: out of memory");
    int found = -1;
    /* darktable's IMG.CR2.xmp names one file exactly; prefer it over IMG.xmp */
    for (int i = 0; i < 4 && found < 0; i++) {
        if (strcmp(c[i], photo_path) != 0 && is_file(c[i]))
            found = i;
    }
    if (found < 0 && for_write)
        found = 2;
    for (int i = 0; i < 4; i++) {
        if (i != found)
            free(c[i]);
    }
    if (found < 0)
        return sb_fail(err, SB_ENOENT, "xmp: no sidecar for '%s'", photo_path);
    *out = c[found];
    return SB_OK;
}

int xmp_sidecar_find(const char *photo_path, char **out, struct sb_err *err)
{
    return sidecar_lookup(photo_path, false, out, err);
}

int xmp_sidecar_path(const char *photo_path, char **out, struct sb_err *err)
{
    return sidecar_lookup(photo_path, true, out, err);
}

/* The first bytes of a file: where JPEG APP1 and most formats keep their XMP. A JPEG is read
 * only as far as its segments before the scan go (usually within the first 64 KB), not the
 * whole megabyte: xmp_find_embedded gives the same answer on either. */
enum { HEAD_BYTES = 1 << 20, JPEG_HEAD_BYTES = 64 << 10 };

static int read_head(const char *path, unsigned char **out, size_t *len, struct sb_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        return sb_fail(err, sb_code_from_errno(e), "open '%s': %s", path, strerror(e));
    }
    unsigned char *buf = malloc(HEAD_BYTES);
    size_t n = 0, want = JPEG_HEAD_BYTES;
    int rc = SB_OK;
    if (!buf) {
        rc = sb_fail(err, SB_ENOMEM, "xmp: out of memory");
        goto out;
    }
    for (;;) {
        while (n < want) {
            size_t r = 0;
            rc = sb_read_some(fd, buf + n, want - n, &r, path, err);
            if (rc)
                goto out;
            if (r == 0)
                break;
            n += (size_t)r;
        }
        const unsigned char *pkt;
        size_t plen;
        if (n < want || want == HEAD_BYTES ||
            (is_jpeg(buf, n) && jpeg_xmp_walk(buf, n, &pkt, &plen) != WALK_SHORT))
            break; /* the whole file, the whole head, or all a JPEG's segments */
        want = HEAD_BYTES;
    }
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

static int merge_into(struct xmp_data *dst, struct xmp_data *src)
{
    for (size_t i = 0; i < src->nkeywords; i++) {
        if (!strv_has(dst->keywords, dst->nkeywords, src->keywords[i]) &&
            strv_push(&dst->keywords, &dst->nkeywords, src->keywords[i]))
            return SB_ENOMEM;
    }
    for (size_t i = 0; i < src->nhierarchical; i++) {
        if (!strv_has(dst->hierarchical, dst->nhierarchical, src->hierarchical[i]) &&
            strv_push(&dst->hierarchical, &dst->nhierarchical, src->hierarchical[i]))
            return SB_ENOMEM;
    }
    if (dst->rating == XMP_NO_RATING)
        dst->rating = src->rating;
    if (!dst->label) {
        dst->label = src->label;
        src->label = NULL;
    }
    if (!dst->title) {
        dst->title = src->title;
        src->title = NULL;
    }
    if (!dst->description) {
        dst->description = src->description;
        src->description = NULL;
    }
    return SB_OK;
}

int xmp_read_photo(const char *photo_path, struct xmp_data *out, struct sb_err *err)
{
    struct xmp_data side, emb;
    memset(&side, 0, sizeof(side));
    memset(&emb, 0, sizeof(emb));
    side.rating = emb.rating = XMP_NO_RATING;
    char *sc = NULL;
    unsigned char *file = NULL, *head = NULL;
    size_t len = 0, hlen = 0;
    bool have_side = false, have_emb = false;
    int rc = xmp_sidecar_find(photo_path, &sc, NULL);
    if (rc == SB_OK) {
        rc = sb_read_file(sc, XMP_MAX_BYTES, &file, &len, err);
        if (rc == SB_ETOOBIG)
            rc = sb_fail(err, SB_ETOOBIG, "xmp '%s': larger than %zu bytes", sc, XMP_MAX_BYTES);
        if (!rc)
            rc = xmp_parse((const char *)file, len, sc, &side, err);
        if (rc)
            goto out;
        have_side = true;
    } else if (rc != SB_ENOENT) {
        rc = sb_fail(err, rc, "xmp: out of memory");
        goto out;
    }
    rc = read_head(photo_path, &head, &hlen, err);
    if (rc)
        goto out;
    const unsigned char *pkt;
    size_t plen;
    /* a broken embedded packet is common (old software) and not worth failing the photo */
    if (xmp_find_embedded(head, hlen, &pkt, &plen) &&
        xmp_parse((const char *)pkt, plen, photo_path, &emb, NULL) == SB_OK)
        have_emb = true;
    if (!have_side && !have_emb) {
        rc = sb_fail(err, SB_ENOENT, "xmp: none for '%s'", photo_path);
        goto out;
    }
    if (have_emb && merge_into(&side, &emb)) {
        rc = sb_fail(err, SB_ENOMEM, "xmp: out of memory");
        goto out;
    }
    *out = side;
    memset(&side, 0, sizeof(side));
    rc = SB_OK;
out:
    xmp_data_release(&side);
    xmp_data_release(&emb);
    free(sc);
    free(file);
    free(head);
    return rc;
}

/* ---- the crawl stage ------------------------------------------------------------------------ */

static int plugin_run(void *user, int worker, const struct image *rgb, const char *path,
                      void **result, struct sb_err *err)
{
    (void)user;
    (void)worker;
    (void)rgb;
    struct xmp_data *x = calloc(1, sizeof(*x));
    if (!x)
        return sb_fail(err, SB_ENOMEM, "xmp: out of memory");
    int rc = xmp_read_photo(path, x, err);
    if (rc == SB_ENOENT) { /* no XMP: done, nothing to store */
        free(x);
        return SB_OK;
    }
    if (rc) {
        free(x);
        return rc;
    }
    *result = x;
    return SB_OK;
}

static int plugin_store(void *user, struct catalog *cat, int64_t photo_id, void *result,
                        const float *embedding, int dim, struct sb_err *err)
{
    (void)user;
    (void)embedding;
    (void)dim;
    struct xmp_data *x = result;
    /* no XMP (any more): its tags and texts go; a sidecar edited since is read again */
    int rc = catalog_tags_replace(cat, photo_id, CATALOG_TAG_XMP,
                                  x ? (const char *const *)x->keywords : NULL, NULL,
                                  x ? x->nkeywords : 0, err);
    if (!rc && x) {
        struct catalog_xmp cx = { x->rating == XMP_NO_RATING ? CATALOG_XMP_NO_RATING : x->rating,
                                  x->label, x->title, x->description };
        rc = catalog_xmp_set(cat, photo_id, &cx, err);
    }
    /* title and description join the full-text index (NULL removes an older text) */
    if (!rc)
        rc = catalog_text_set(cat, photo_id, XMP_TEXT_TITLE, x ? x->title : NULL, (double)NAN, NULL,
                              err);
    if (!rc)
        rc = catalog_text_set(cat, photo_id, XMP_TEXT_DESCRIPTION, x ? x->description : NULL,
                              (double)NAN, NULL, err);
    return rc;
}

static void plugin_free(void *user, void *result)
{
    (void)user;
    xmp_data_release(result);
    free(result);
}

void xmp_plugin(struct crawl_plugin *out)
{
    memset(out, 0, sizeof(*out));
    out->stage = "xmp";
    out->needs_pixels = false;
    out->run = plugin_run;
    out->store = plugin_store;
    out->free_result = plugin_free;
}
