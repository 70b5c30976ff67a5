/* test_interop_xmp.c - XMP read/merge/write (src/interop/xmp*.c) and zero-shot auto-tags
 * (src/interop/tags.c) against tools/ref_tags.py's reference. */
#include "check.h"

#include "shoebox/catalog.h"
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/model.h"
#include "shoebox/tags.h"
#include "shoebox/util.h"
#include "shoebox/xmp.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static char data_dir[1024], tmp_dir[1024];

static char *slurp(const char *rel, size_t *len)
{
    char path[2048];
    snprintf(path, sizeof(path), "%s/%s", data_dir, rel);
    unsigned char *buf = NULL;
    struct sb_err err;
    if (sb_read_file(path, 64u << 20, &buf, len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    char *s = realloc(buf, *len + 1);
    if (s)
        s[*len] = '\0';
    return s;
}

static bool has_kw(const struct xmp_data *x, const char *k)
{
    for (size_t i = 0; i < x->nkeywords; i++) {
        if (strcmp(x->keywords[i], k) == 0)
            return true;
    }
    return false;
}

static void test_parse_fixtures(void)
{
    size_t len;
    char *s = slurp("xmp/lightroom_style.xmp", &len);
    CHECK(s != NULL);
    struct xmp_data x;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, xmp_parse(s, len, "lr", &x, &err));
    CHECK_EQ_INT(3, x.nkeywords); /* boat, Harbour, + leaf Lighthouse (Harbour not repeated) */
    CHECK(has_kw(&x, "boat") && has_kw(&x, "Harbour") && has_kw(&x, "Lighthouse"));
    CHECK_EQ_INT(2, x.nhierarchical);
    CHECK_EQ_INT(4, x.rating);
    CHECK_EQ_STR("Red", x.label);
    CHECK_EQ_STR("Harbour at dusk", x.title);
    CHECK_EQ_STR("Boats in the old harbour & the lighthouse", x.description);
    xmp_data_release(&x);
    free(s);

    s = slurp("xmp/bluesquare.xmp", &len);
    CHECK_EQ_INT(SB_OK, xmp_parse(s, len, "blue", &x, &err));
    CHECK_EQ_INT(5, x.nkeywords);
    CHECK(has_kw(&x, "Blue Square") && has_kw(&x, "XMP"));
    CHECK(x.description && strstr(x.description, "BlueSquare test file"));
    CHECK_EQ_INT(XMP_NO_RATING, x.rating);
    xmp_data_release(&x);
    free(s);
}

static void test_hostile(void)
{
    static const struct {
        const char *name;
        const char *xml;
        int code;
        const char *msg;
    } cases[] = {
        { "billion laughs",
          "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
          "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
          "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>"
          "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><a>&lol3;</a></x:xmpmeta>",
          SB_EFORMAT, "DOCTYPE" },
        { "external entity",
          "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>"
          "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">&xxe;</x:xmpmeta>",
          SB_EFORMAT, "DOCTYPE" },
        { "truncated",
          "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF "
          "xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"><rdf:Descr",
          SB_ECORRUPT, "bad XML" },
        { "not xml", "\x89PNG garbage \x01\x02", SB_ECORRUPT, "bad XML" },
        { "not xmp", "<a><b/></a>", SB_EFORMAT, "rdf:RDF" },
        { "undeclared entity", "<a>&nope;</a>", SB_ECORRUPT, "bad XML" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct xmp_data x;
        struct sb_err err;
        sb_err_clear(&err);
        int rc = xmp_parse(cases[i].xml, strlen(cases[i].xml), cases[i].name, &x, &err);
        CHECK_EQ_INT(cases[i].code, rc);
        CHECK(strstr(err.msg, cases[i].msg) != NULL);
        CHECK(strstr(err.msg, cases[i].name) != NULL);
        if (rc == SB_OK)
            xmp_data_release(&x);
    }
    /* huge: refused before parsing */
    size_t n = XMP_MAX_BYTES + 1;
    char *big = malloc(n);
    CHECK(big != NULL);
    memset(big, ' ', n);
    struct xmp_data x;
    struct sb_err err;
    CHECK_EQ_INT(SB_ETOOBIG, xmp_parse(big, n, "huge", &x, &err));
    free(big);
}

static void test_embedded(void)
{
    static const char sig[] = "http://ns.adobe.com/xap/1.0/";
    const char *pkt = "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"/>";
    unsigned char jpeg[256];
    size_t n = 0;
    jpeg[n++] = 0xFF;
    jpeg[n++] = 0xD8;
    jpeg[n++] = 0xFF; /* an APP0 first */
    jpeg[n++] = 0xE0;
    jpeg[n++] = 0;
    jpeg[n++] = 4;
    jpeg[n++] = 'J';
    jpeg[n++] = 'F';
    size_t seg = 2 + sizeof(sig) + strlen(pkt);
    jpeg[n++] = 0xFF;
    jpeg[n++] = 0xE1;
    jpeg[n++] = (unsigned char)(seg >> 8);
    jpeg[n++] = (unsigned char)seg;
    memcpy(jpeg + n, sig, sizeof(sig));
    n += sizeof(sig);
    memcpy(jpeg + n, pkt, strlen(pkt));
    n += strlen(pkt);
    jpeg[n++] = 0xFF;
    jpeg[n++] = 0xDA;
    const unsigned char *p = NULL;
    size_t plen = 0;
    CHECK(xmp_find_embedded(jpeg, n, &p, &plen));
    CHECK_EQ_INT(strlen(pkt), plen);
    CHECK(p && memcmp(p, pkt, plen) == 0);
    CHECK(!xmp_find_embedded(jpeg, 12, &p, &plen)); /* cut inside the segment */
    const char *png = "\x89PNG....iTXtXML:com.adobe.xmp....<x:xmpmeta a='1'>k</x:xmpmeta>..";
    CHECK(xmp_find_embedded((const unsigned char *)png, strlen(png), &p, &plen));
    CHECK_EQ_INT(strlen("<x:xmpmeta a='1'>k</x:xmpmeta>"), plen);
}

/* A photo file: JPEG segments, the XMP APP1 after `pad` bytes of APP2 segments, then a scan
 * and `tail` bytes; xmp_read_photo finds its keyword wherever the segment sits before the
 * scan (the reader stops at 64 KB only when a JPEG's segments end there). */
static void write_jpeg_xmp(const char *path, size_t pad, size_t tail, bool with_xmp)
{
    static const char sig[] = "http://ns.adobe.com/xap/1.0/";
    const char *pkt = "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF "
                      "xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"><rdf:Description "
                      "xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><dc:subject><rdf:Bag><rdf:li>"
                      "far</rdf:li></rdf:Bag></dc:subject></rdf:Description></rdf:RDF></x:xmpmeta>";
    size_t cap = 64 + pad + 2 * (pad / 60000 + 1) * 4 + sizeof(sig) + strlen(pkt) + tail;
    unsigned char *b = calloc(cap, 1);
    CHECK(b != NULL);
    if (!b)
        return;
    size_t n = 0;
    b[n++] = 0xFF;
    b[n++] = 0xD8;
    while (pad > 0) {
        size_t seg = pad > 60000 ? 60000 : pad;
        b[n++] = 0xFF;
        b[n++] = 0xE2;
        b[n++] = (unsigned char)((seg + 2) >> 8);
        b[n++] = (unsigned char)(seg + 2);
        memset(b + n, 'i', seg);
        n += seg;
        pad -= seg;
    }
    if (with_xmp) {
        size_t seg = 2 + sizeof(sig) + strlen(pkt);
        b[n++] = 0xFF;
        b[n++] = 0xE1;
        b[n++] = (unsigned char)(seg >> 8);
        b[n++] = (unsigned char)seg;
        memcpy(b + n, sig, sizeof(sig));
        n += sizeof(sig);
        memcpy(b + n, pkt, strlen(pkt));
        n += strlen(pkt);
    }
    b[n++] = 0xFF;
    b[n++] = 0xDA;
    memset(b + n, 0x55, tail);
    n += tail;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, sb_write_file_atomic(path, b, n, &err));
    free(b);
}

static void test_embedded_far(void)
{
    char dir[1200], photo[1400];
    snprintf(dir, sizeof(dir), "%s/xmp_far", tmp_dir);
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, sb_mkdirs(dir, &err));
    snprintf(photo, sizeof(photo), "%s/IMG_far.jpg", dir);
    /* pad: XMP in the first 64 KB, right across its end, past it, near the 1 MB head's end */
    const size_t pads[] = { 0, 65000, 65536 - 20, 130000, 900000 };
    for (size_t i = 0; i < sizeof(pads) / sizeof(pads[0]); i++) {
        write_jpeg_xmp(photo, pads[i], 2u << 20, true);
        struct xmp_data x;
        memset(&x, 0, sizeof(x));
        sb_err_clear(&err);
        CHECK_EQ_INT(SB_OK, xmp_read_photo(photo, &x, &err));
        CHECK(has_kw(&x, "far"));
        xmp_data_release(&x);
    }
    /* no XMP: none, whether the segments end early or late */
    for (int i = 0; i < 2; i++) {
        write_jpeg_xmp(photo, i ? 200000 : 100, 2u << 20, false);
        struct xmp_data x;
        memset(&x, 0, sizeof(x));
        CHECK_EQ_INT(SB_ENOENT, xmp_read_photo(photo, &x, &err));
        xmp_data_release(&x);
    }
    /* beyond the 1 MB head: not read, as before */
    write_jpeg_xmp(photo, 1100000, 1000, true);
    struct xmp_data x;
    memset(&x, 0, sizeof(x));
    CHECK_EQ_INT(SB_ENOENT, xmp_read_photo(photo, &x, &err));
    xmp_data_release(&x);
    unlink(photo);
}

static void test_merge(void)
{
    size_t len;
    char *s = slurp("xmp/lightroom_style.xmp", &len);
    const char *kw[] = { "dog", "BOAT", "Lighthouse" };
    char *out = NULL;
    size_t out_len = 0, nch = 0;
    struct sb_buf changes;
    sb_buf_init(&changes);
    struct sb_err err;
    CHECK_EQ_INT(SB_OK,
                 xmp_merge(s, len, "lr", kw, 3, "a caption", &out, &out_len, &nch, &changes, &err));
    /* dc:subject + dog, + Lighthouse (BOAT is boat); hierarchical + dog, + BOAT (Lighthouse is
     * the leaf of Things|Lighthouse); the description exists and is kept */
    CHECK_EQ_INT(4, nch);
    CHECK(changes.data && strstr(changes.data, "+ dc:subject dog"));
    CHECK(changes.data && strstr(changes.data, "dc:description kept"));
    CHECK(out && strstr(out, "acme:Secret=\"keep me\""));
    CHECK(out && strstr(out, "unknown element kept"));
    CHECK(out && strstr(out, "crs:Exposure2012=\"+0.35\""));
    CHECK(out && strstr(out, "Hafen am Abend"));
    CHECK(out && strncmp(out, "<x:xmpmeta", 10) == 0); /* no XML declaration added */
    struct xmp_data x;
    CHECK_EQ_INT(SB_OK, xmp_parse(out, out_len, "merged", &x, &err));
    CHECK(has_kw(&x, "dog") && has_kw(&x, "boat") && has_kw(&x, "Lighthouse"));
    CHECK_EQ_INT(4, x.rating);
    CHECK_EQ_STR("Boats in the old harbour & the lighthouse", x.description);
    xmp_data_release(&x);
    /* idempotent */
    char *again = NULL;
    size_t again_len = 0, nch2 = 99;
    CHECK_EQ_INT(SB_OK, xmp_merge(out, out_len, "again", kw, 3, "a caption", &again, &again_len,
                                  &nch2, NULL, &err));
    CHECK_EQ_INT(0, nch2);
    free(again);
    free(out);
    sb_buf_release(&changes);
    free(s);

    /* a new sidecar, with markup characters in the values */
    const char *kw2[] = { "fish & chips", "<tag>" };
    CHECK_EQ_INT(SB_OK, xmp_merge(NULL, 0, "new", kw2, 2, "Caption \"quoted\" <b>", &out, &out_len,
                                  &nch, NULL, &err));
    CHECK_EQ_INT(5, nch);
    CHECK_EQ_INT(SB_OK, xmp_parse(out, out_len, "new", &x, &err));
    CHECK(has_kw(&x, "fish & chips") && has_kw(&x, "<tag>"));
    CHECK_EQ_STR("Caption \"quoted\" <b>", x.description);
    xmp_data_release(&x);
    free(out);

    /* merging into a hostile or non-XMP sidecar is refused, not overwritten */
    const char *bad = "<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>";
    CHECK_EQ_INT(SB_EFORMAT,
                 xmp_merge(bad, strlen(bad), "bad", kw, 1, NULL, &out, &out_len, &nch, NULL, &err));
}

static void write_text(const char *path, const char *s)
{
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, sb_write_file_atomic(path, s, strlen(s), &err));
}

static void test_write(void)
{
    char dir[1200], photo[1400], side[1400];
    snprintf(dir, sizeof(dir), "%s/xmp_write", tmp_dir);
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, sb_mkdirs(dir, &err));
    /* darktable-style IMG_1.CR2.xmp exists: it is the one merged into */
    snprintf(photo, sizeof(photo), "%s/IMG_1.CR2", dir);
    write_text(photo, "raw bytes");
    snprintf(side, sizeof(side), "%s/IMG_1.CR2.xmp", dir);
    size_t len;
    char *lr = slurp("xmp/lightroom_style.xmp", &len);
    write_text(side, lr);
    free(lr);
    chmod(side, 0640);
    const char *kw[] = { "dog" };
    char *sc = NULL;
    bool created = true;
    size_t nch = 0;
    CHECK_EQ_INT(SB_OK,
                 xmp_write_sidecar(photo, kw, 1, NULL, false, &sc, &created, &nch, NULL, &err));
    CHECK_EQ_STR(side, sc);
    CHECK(!created);
    CHECK_EQ_INT(2, nch);
    struct stat st;
    CHECK(stat(side, &st) == 0 && (st.st_mode & 0777) == 0640); /* permissions kept */
    free(sc);
    struct xmp_data x;
    CHECK_EQ_INT(SB_OK, xmp_read_photo(photo, &x, &err));
    CHECK(has_kw(&x, "dog") && has_kw(&x, "boat"));
    xmp_data_release(&x);
    unsigned char *raw = NULL;
    size_t rlen = 0;
    CHECK_EQ_INT(SB_OK, sb_read_file(photo, 100, &raw, &rlen, &err));
    CHECK(rlen == 9 && memcmp(raw, "raw bytes", 9) == 0); /* the original is untouched */
    free(raw);

    /* no sidecar yet: IMG_2.xmp is created; a dry run creates nothing */
    snprintf(photo, sizeof(photo), "%s/IMG_2.jpg", dir);
    write_text(photo, "jpeg");
    snprintf(side, sizeof(side), "%s/IMG_2.xmp", dir);
    unlink(side); /* from an earlier run */
    CHECK_EQ_INT(SB_OK,
                 xmp_write_sidecar(photo, kw, 1, "cap", true, &sc, &created, &nch, NULL, &err));
    CHECK(created && nch == 3 && access(side, F_OK) != 0);
    free(sc);
    CHECK_EQ_INT(SB_OK,
                 xmp_write_sidecar(photo, kw, 1, "cap", false, &sc, &created, &nch, NULL, &err));
    CHECK(created && access(side, F_OK) == 0);
    CHECK_EQ_STR(side, sc);
    free(sc);

    /* a read-only folder: a clear error, nothing written (even as root) */
    char ro[1300];
    snprintf(ro, sizeof(ro), "%s/readonly", dir);
    CHECK_EQ_INT(SB_OK, sb_mkdirs(ro, &err));
    snprintf(photo, sizeof(photo), "%s/IMG_3.jpg", ro);
    write_text(photo, "jpeg");
    chmod(ro, 0555);
    sb_err_clear(&err);
    CHECK_EQ_INT(SB_EACCES,
                 xmp_write_sidecar(photo, kw, 1, NULL, false, &sc, &created, &nch, NULL, &err));
    CHECK(strstr(err.msg, "read-only") && strstr(err.msg, ro));
    snprintf(side, sizeof(side), "%s/IMG_3.xmp", ro);
    CHECK(access(side, F_OK) != 0);
    chmod(ro, 0755);
}

/* ---- zero-shot tags against tools/ref_tags.py ---------------------------------------------- */

static void test_tags_reference(void)
{
    size_t len;
    char *s = slurp("tags/tiny_b32_ref.json", &len);
    cJSON *ref = s ? cJSON_Parse(s) : NULL;
    free(s);
    CHECK(ref != NULL);
    if (!ref)
        return;
    char mdir[1200];
    snprintf(mdir, sizeof(mdir), "%s/models/tiny_b32", data_dir);
    struct clip_load_params lp = clip_load_default_params();
    lp.towers = CLIP_TOWER_TEXT;
    struct clip_model *m = NULL;
    struct clip_ctx *c = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, clip_model_load(mdir, &lp, &m, &err));
    CHECK_EQ_INT(SB_OK, clip_ctx_new(m, 1, NULL, &c, &err));
    int dim = clip_model_dim(m);
    cJSON *jv = cJSON_GetObjectItem(ref, "vocab");
    int nl = cJSON_GetArraySize(jv);
    const char *lines[64];
    for (int i = 0; i < nl && i < 64; i++)
        lines[i] = cJSON_GetArrayItem(jv, i)->valuestring;
    cJSON *jt = cJSON_GetObjectItem(ref, "templates");
    for (int i = 0; i < TAGS_NTEMPLATES; i++)
        CHECK_EQ_STR(cJSON_GetArrayItem(jt, i)->valuestring, tags_templates[i]);
    cJSON *images = cJSON_GetObjectItem(ref, "images");
    cJSON *cases = cJSON_GetObjectItem(ref, "cases");
    double max_emb = 0.0, max_prob = 0.0;
    cJSON *cs;
    cJSON_ArrayForEach(cs, cases)
    {
        struct tagger_params p = tagger_default_params();
        p.logit_scale = (float)cJSON_GetObjectItem(cs, "logit_scale")->valuedouble;
        p.min_prob = (float)cJSON_GetObjectItem(cs, "min_prob")->valuedouble;
        p.top_k = cJSON_GetObjectItem(cs, "top_k")->valueint;
        struct tagger *t = NULL;
        CHECK_EQ_INT(SB_OK, tagger_new(lines, (size_t)nl, &p, &t, &err));
        if (!t)
            break;
        CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(ref, "tags")), tagger_count(t));
        CHECK_EQ_INT(SB_OK, tagger_embed(t, c, dim, &err));
        const float *e = tagger_embeddings(t, NULL);
        cJSON *je = cJSON_GetObjectItem(ref, "embeddings");
        for (size_t i = 0; e && i < tagger_count(t); i++) {
            CHECK_EQ_STR(cJSON_GetArrayItem(cJSON_GetObjectItem(ref, "tags"), (int)i)->valuestring,
                         tagger_tag(t, i));
            for (int d = 0; d < dim; d++) {
                double diff =
                    fabs((double)e[i * (size_t)dim + (size_t)d] -
                         cJSON_GetArrayItem(cJSON_GetArrayItem(je, (int)i), d)->valuedouble);
                max_emb = diff > max_emb ? diff : max_emb;
            }
        }
        float x[64], probs[64];
        cJSON *img = cJSON_GetArrayItem(images, cJSON_GetObjectItem(cs, "image")->valueint);
        for (int d = 0; d < dim && d < 64; d++)
            x[d] = (float)cJSON_GetArrayItem(img, d)->valuedouble;
        CHECK_EQ_INT(SB_OK, tagger_scores(t, x, dim, probs, &err));
        cJSON *jp = cJSON_GetObjectItem(cs, "probs");
        for (size_t i = 0; i < tagger_count(t); i++) {
            double diff = fabs((double)probs[i] - cJSON_GetArrayItem(jp, (int)i)->valuedouble);
            max_prob = diff > max_prob ? diff : max_prob;
        }
        size_t idx[64];
        size_t k = tagger_pick(t, probs, idx, 64);
        cJSON *jk = cJSON_GetObjectItem(cs, "picked");
        CHECK_EQ_INT(cJSON_GetArraySize(jk), k);
        for (size_t i = 0; i < k && i < (size_t)cJSON_GetArraySize(jk); i++)
            CHECK_EQ_INT(cJSON_GetArrayItem(jk, (int)i)->valueint, idx[i]);
        tagger_free(t);
    }
    fprintf(stderr, "tags vs reference: max |embedding diff| %.3g, max |probability diff| %.3g\n",
            max_emb, max_prob);
    CHECK(max_emb <= 1e-5);
    CHECK(max_prob <= 1e-5);

    /* the shipped vocabulary parses, has 1000+ concepts, no repeated tag */
    size_t nb;
    const char *const *vb = tags_builtin_vocab(&nb);
    struct tagger *t = NULL;
    CHECK_EQ_INT(SB_OK, tagger_new(vb, nb, NULL, &t, &err));
    CHECK(t && tagger_count(t) >= 1000);
    for (size_t i = 0; t && i < tagger_count(t); i++) {
        for (size_t j = i + 1; j < tagger_count(t); j++) {
            if (strcasecmp(tagger_tag(t, i), tagger_tag(t, j)) == 0) {
                fprintf(stderr, "repeated tag '%s'\n", tagger_tag(t, i));
                CHECK(false);
            }
        }
    }
    tagger_free(t);
    const char *badv[] = { "ok", " @2 | x" };
    CHECK_EQ_INT(SB_EINVAL, tagger_new(badv, 2, NULL, &t, &err));
    const char *badf[] = { "ok @zero" };
    CHECK_EQ_INT(SB_EINVAL, tagger_new(badf, 1, NULL, &t, &err));
    clip_ctx_free(c);
    clip_model_free(m);
    cJSON_Delete(ref);
}

/* ---- the tags crawl stage and the catalog: user tags survive auto re-tagging -------------- */

static int count_src(void *user, const char *tag, const char *source, double score)
{
    (void)tag;
    (void)score;
    int *n = user;
    if (strcmp(source, "user") == 0)
        n[0]++;
    else if (strcmp(source, "auto") == 0)
        n[1]++;
    return 0;
}

static void test_auto_keeps_user(void)
{
    char db[1200];
    snprintf(db, sizeof(db), "%s/xmp_tags.db", tmp_dir);
    unlink(db);
    struct catalog *cat = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, catalog_open(db, false, &cat, &err));
    if (!cat)
        return;
    struct catalog_stat st = { 1, 1, 1, 1, 1 };
    unsigned char hash[16] = { 1, 2, 3 };
    int64_t pid = 0, model = 0;
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_file_touch(cat, "/x/a.jpg", &st, &err));
    CHECK_EQ_INT(SB_OK, catalog_file_set_photo(cat, 1, hash, 1, "jpeg", NULL, &pid, NULL, &err));
    CHECK_EQ_INT(SB_OK, catalog_model_ensure(cat, "m@1", 4, &model, &err));
    float v[4] = { 1, 0, 0, 0 };
    CHECK_EQ_INT(SB_OK, catalog_vector_put(cat, model, pid, v, 4, &err));
    CHECK_EQ_INT(SB_OK, catalog_tag_add(cat, pid, "dog", CATALOG_TAG_USER, (double)NAN, &err));
    CHECK_EQ_INT(SB_EINVAL, catalog_tag_add(cat, pid, "", CATALOG_TAG_USER, (double)NAN, &err));
    CHECK_EQ_INT(SB_ENOENT, catalog_tag_add(cat, 999, "x", CATALOG_TAG_USER, (double)NAN, &err));
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));

    /* a vocabulary whose first concepts point at the stored vector */
    const char *lines[] = { "dog", "beach", "cat" };
    struct tagger *t = NULL;
    CHECK_EQ_INT(SB_OK, tagger_new(lines, 3, NULL, &t, &err));
    /* no text tower here: the embeddings come from the cache, as on a second run */
    float emb[12] = { 0.8f, 0.6f, 0, 0, 0.6f, 0.8f, 0, 0, 0, 0, 1, 0 };
    char key[256];
    snprintf(key, sizeof(key), "tagvocab:m@1:%s", tagger_hash(t));
    CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
    CHECK_EQ_INT(SB_OK, catalog_cache_put(cat, key, emb, sizeof(emb), &err));
    CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
    CHECK_EQ_INT(SB_OK, tagger_prepare(t, cat, NULL, "m@1", 4, &err));
    struct crawl_plugin pl;
    CHECK_EQ_INT(SB_OK, tagger_plugin(t, "m@1", &pl, &err));
    CHECK_EQ_STR("tags:m@1", pl.stage);
    CHECK(!pl.needs_pixels);
    for (int round = 0; round < 2; round++) {
        CHECK_EQ_INT(SB_OK, catalog_begin(cat, &err));
        /* round 0: the stored vector (NULL); round 1: one "computed in this batch" */
        float fresh[4] = { 0.6f, 0.8f, 0, 0 };
        CHECK_EQ_INT(SB_OK, pl.store(pl.user, cat, pid, NULL, round ? fresh : NULL, 4, &err));
        CHECK_EQ_INT(SB_OK, catalog_commit(cat, &err));
        int n[2] = { 0, 0 };
        CHECK_EQ_INT(SB_OK, catalog_photo_tags(cat, pid, count_src, n, &err));
        CHECK_EQ_INT(1, n[0]); /* the user's "dog" is still there */
        CHECK(n[1] >= 1 && n[1] <= 3);
    }
    int64_t removed = 0;
    CHECK_EQ_INT(SB_OK, catalog_tag_remove(cat, pid, "DOG", CATALOG_TAG_USER, &removed, &err));
    CHECK_EQ_INT(1, removed);
    tagger_free(t);
    catalog_close(cat);
}

int main(void)
{
    const char *d = getenv("SHOEBOX_TESTDATA");
    const char *tmp = getenv("SHOEBOX_TMP");
    snprintf(data_dir, sizeof(data_dir), "%s", d ? d : "tests/data");
    snprintf(tmp_dir, sizeof(tmp_dir), "%s", tmp ? tmp : "/tmp");
    test_parse_fixtures();
    test_hostile();
    test_embedded();
    test_embedded_far();
    test_merge();
    test_write();
    test_tags_reference();
    test_auto_keeps_user();
    return check_exit();
}
