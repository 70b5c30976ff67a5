/* lrprev.c - Lightroom Classic preview files (.lrprev): a sequence of sections.
 *
 * Checked against the Lightroom 5 samples in tests/data/lightroom. Each section is
 *   offset 0  4 bytes  magic "AgHg"
 *          4  2 bytes  big-endian header length H (32 in every file seen)
 *          6  2 bytes  unknown (00 00 for "header", 01 00 for levels)
 *          8  8 bytes  big-endian payload length N
 *         16  8 bytes  big-endian padding length P
 *         24  H-24     name, NUL-padded: "header", "level_1", "level_2", ...
 *          H  N        payload; then P bytes of padding; the next section follows.
 * "header" holds a Lua table as text (pyramid = { colorProfile = "AdobeRGB", levels = {
 * { height = 45, width = 67, }, ... }, uuid = "...", ... }); each level_K a complete JPEG,
 * smallest first. Every length is checked against the bytes that are there before use; a
 * section whose length points past the end (cut short or lying) is skipped by scanning for the
 * next magic, and the file is marked truncated. */
#include "shoebox/err.h"
#include "shoebox/lightroom.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECTION_MIN_HEADER 32
#define SECTION_MAX_HEADER 4096
#define HEADER_TEXT_MAX    (256 * 1024) /* the header is ~600 bytes; more is not a header */

static const unsigned char magic[4] = { 'A', 'g', 'H', 'g' };

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The offset of the next magic at or after from, or len when there is none. */
static size_t find_magic(const unsigned char *buf, size_t len, size_t from)
{
    for (size_t i = from; i + 4 <= len; i++)
        if (buf[i] == 'A' && memcmp(buf + i, magic, 4) == 0)
            return i;
    return len;
}

static bool is_ident(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Finds `key =` as a whole word in text at or after from; returns a pointer after '=' and
 * spaces, or NULL. */
static const char *find_key(const char *text, const char *from, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = strstr(from, key); p; p = strstr(p + 1, key)) {
        if (p > text && is_ident(p[-1]))
            continue;
        const char *q = p + klen;
        if (is_ident(*q))
            continue;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q != '=')
            continue;
        q++;
        while (*q == ' ' || *q == '\t')
            q++;
        return q;
    }
    return NULL;
}

static void get_string(const char *text, const char *key, char *out, size_t cap)
{
    const char *v = find_key(text, text, key);
    out[0] = '\0';
    if (!v || *v != '"')
        return;
    v++;
    size_t n = 0;
    while (v[n] && v[n] != '"' && n + 1 < cap)
        n++;
    memcpy(out, v, n);
    out[n] = '\0';
}

/* A non-negative integer at v (digits only, capped at 1e9); -1 when there is none. */
static int parse_uint(const char *v)
{
    if (!v || *v < '0' || *v > '9')
        return -1;
    long n = 0;
    while (*v >= '0' && *v <= '9') {
        n = n * 10 + (*v - '0');
        if (n > 1000000000L)
            return -1;
        v++;
    }
    return (int)n;
}

static int get_int(const char *text, const char *key)
{
    return parse_uint(find_key(text, text, key));
}

/* Reads the header's levels = { { height = H, width = W, }, ... } into the sizes array. */
static int parse_level_sizes(const char *text, int (*wh)[2], int cap)
{
    const char *p = find_key(text, text, "levels");
    if (!p || *p != '{')
        return 0;
    p++;
    int n = 0, depth = 1;
    while (*p && depth > 0 && n < cap) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            if (!end)
                break;
            size_t len = (size_t)(end - p);
            char item[256];
            if (len >= sizeof(item))
                len = sizeof(item) - 1;
            memcpy(item, p, len);
            item[len] = '\0';
            wh[n][0] = parse_uint(find_key(item, item, "width"));
            wh[n][1] = parse_uint(find_key(item, item, "height"));
            n++;
            p = end + 1;
            continue;
        }
        if (*p == '}')
            depth--;
        p++;
    }
    return n;
}

static void parse_header(const unsigned char *payload, size_t n, struct lrprev *out)
{
    if (n > HEADER_TEXT_MAX)
        n = HEADER_TEXT_MAX;
    char *text = malloc(n + 1);
    if (!text)
        return; /* the header is optional: the levels still work without it */
    memcpy(text, payload, n);
    text[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (text[i] == '\0')
            text[i] = ' ';
    get_string(text, "uuid", out->uuid, sizeof(out->uuid));
    get_string(text, "digest", out->digest, sizeof(out->digest));
    get_string(text, "colorProfile", out->color_profile, sizeof(out->color_profile));
    get_string(text, "quality", out->quality, sizeof(out->quality));
    out->cropped_width = get_int(text, "croppedWidth");
    out->cropped_height = get_int(text, "croppedHeight");
    out->format_version = get_int(text, "formatVersion");
    int wh[LRPREV_MAX_LEVELS * 4][2];
    int nl = parse_level_sizes(text, wh, (int)(sizeof(wh) / sizeof(wh[0])));
    /* sizes belong to level_1, level_2, ... in order; match them up after the sections */
    for (int i = 0; i < out->nlevels; i++) {
        int k = out->levels[i].level - 1;
        if (k >= 0 && k < nl) {
            out->levels[i].width = wh[k][0] > 0 ? wh[k][0] : 0;
            out->levels[i].height = wh[k][1] > 0 ? wh[k][1] : 0;
        }
    }
    free(text);
}

/* "level_12" -> 12; 0 when the name is not a level. */
static int level_number(const char *name)
{
    if (strncmp(name, "level_", 6) != 0)
        return 0;
    int k = parse_uint(name + 6);
    return k > 0 && k < 1000 ? k : 0;
}

static void add_level(struct lrprev *out, int k, const unsigned char *jpeg, size_t n)
{
    struct lrprev_level lv = { .level = k, .jpeg = jpeg, .len = n };
    if (out->nlevels < LRPREV_MAX_LEVELS)
        out->levels[out->nlevels++] = lv;
    else
        out->levels[LRPREV_MAX_LEVELS - 1] = lv; /* keep the latest: levels grow */
}

int lrprev_parse(const unsigned char *buf, size_t len, struct lrprev *out, struct sb_err *err)
{
    struct lrprev p;
    memset(&p, 0, sizeof(p));
    p.cropped_width = p.cropped_height = p.format_version = -1;
    const unsigned char *header = NULL;
    size_t header_len = 0;
    if (len == 0)
        return sb_fail(err, SB_ECORRUPT, "lrprev: empty file");
    if (len < 4 || memcmp(buf, magic, 4) != 0)
        return sb_fail(err, SB_EFORMAT, "lrprev: not a Lightroom preview (no AgHg magic)");
    size_t off = 0;
    while (off < len) {
        if (len - off < SECTION_MIN_HEADER || memcmp(buf + off, magic, 4) != 0) {
            /* a section header cut short, padding that lied, or junk between sections: look
             * for the next one */
            size_t next = len - off < SECTION_MIN_HEADER ? len : find_magic(buf, len, off);
            if (next == len) {
                /* trailing zeros are harmless; anything else is damage */
                for (size_t i = off; i < len; i++) {
                    if (buf[i]) {
                        p.truncated = true;
                        break;
                    }
                }
                break;
            }
            p.truncated = true;
            off = next;
            continue;
        }
        size_t hlen = ((size_t)buf[off + 4] << 8) | buf[off + 5];
        uint64_t n = be64(buf + off + 8), pad = be64(buf + off + 16);
        size_t avail = len - off;
        if (hlen < SECTION_MIN_HEADER || hlen > SECTION_MAX_HEADER || hlen > avail ||
            n > avail - hlen) {
            /* a lying or cut-short section: skip to the next magic, if any */
            p.truncated = true;
            off = find_magic(buf, len, off + 4);
            continue;
        }
        char name[17];
        size_t nlen = hlen - 24 < sizeof(name) - 1 ? hlen - 24 : sizeof(name) - 1;
        memcpy(name, buf + off + 24, nlen);
        name[nlen] = '\0';
        const unsigned char *payload = buf + off + hlen;
        int k = level_number(name);
        if (strcmp(name, "header") == 0) {
            header = payload;
            header_len = (size_t)n;
        } else if (k > 0) {
            if (n >= 4 && payload[0] == 0xFF && payload[1] == 0xD8)
                add_level(&p, k, payload, (size_t)n);
            else
                p.truncated = true; /* a level that is not a JPEG */
        }                           /* other sections (none seen yet) are skipped */
        size_t used = hlen + (size_t)n;
        if (pad > avail - used) /* padding past the end: the payload is whole, so we are done */
            break;
        off += used + (size_t)pad;
    }
    if (p.nlevels == 0)
        return sb_fail(err, SB_ECORRUPT, "lrprev: no complete preview level%s",
                       p.truncated ? " (truncated or damaged file)" : "");
    if (header)
        parse_header(header, header_len, &p);
    *out = p;
    return SB_OK;
}

int lrprev_pick(const struct lrprev *p, int level)
{
    int best = -1;
    for (int i = 0; i < p->nlevels; i++) {
        if (level > 0 && p->levels[i].level == level)
            return i;
        if (best < 0 || p->levels[i].level > p->levels[best].level)
            best = i;
    }
    return level > 0 ? -1 : best;
}

int lr_orientation_to_exif(const char *code)
{
    /* Lightroom names the corners of the stored image A (top-left), B, C, D clockwise and
     * writes which two sit on the top edge once displayed (as public Lightroom plug-ins and
     * preview viewers read them): AB=1 BA=2 CD=3 DC=4 CB=5 BC=6 AD=7 DA=8. */
    static const char *const codes[8] = { "AB", "BA", "CD", "DC", "CB", "BC", "AD", "DA" };
    if (!code)
        return 1;
    for (int i = 0; i < 8; i++)
        if (strcmp(code, codes[i]) == 0)
            return i + 1;
    return 1;
}
