/* spm.c - SentencePiece unigram tokenizer from spiece.model: a small protobuf reader for
 * ModelProto (sentencepiece_model.proto), the normalizer with its precompiled charsmap (a
 * darts-clone double array), Viterbi segmentation, and transformers' SiglipTokenizer text
 * pipeline. Everything read from the file is untrusted: every index is checked (fuzz/fuzz_spm.c).
 *
 * ModelProto fields used (sentencepiece_model.proto):
 *   1 pieces (repeated SentencePiece: 1 piece, 2 score (float), 3 type (enum))
 *   2 trainer_spec (3 model_type, 35 byte_fallback, 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id)
 *   3 normalizer_spec (1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
 *     4 remove_extra_whitespaces, 5 escape_whitespaces)
 * Unknown fields are skipped by wire type; groups (wire types 3, 4) are refused. */
#include "shoebox/spm.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

enum spm_type { /* SentencePiece.Type */
                SPM_NORMAL = 1,
                SPM_UNKNOWN = 2,
                SPM_CONTROL = 3,
                SPM_USER_DEFINED = 4,
                SPM_UNUSED = 5,
                SPM_BYTE = 6
};

struct spm_piece {
    char *s;
    size_t len;
    float score;
    int type;
};

struct spm_tokenizer {
    struct spm_piece *p;
    size_t n, cap;
    int32_t *slots; /* open-addressing hash of matchable pieces (NORMAL, USER_DEFINED) -> id */
    size_t nslots;  /* a power of two, or 0 */
    size_t max_piece_len;
    float min_score, max_score;
    int32_t unk_id, bos_id, eos_id, pad_id;
    int32_t byte_id[256]; /* <0xXX> pieces, -1 when absent */
    bool byte_fallback;
    /* normalizer_spec */
    bool add_dummy_prefix, remove_extra_ws, escape_ws;
    const uint32_t *trie; /* darts-clone units, into charsmap */
    size_t trie_units;
    const char *norm; /* replacement strings, into charsmap */
    size_t norm_len;
    unsigned char *charsmap;
    /* SiglipTokenizer */
    bool siglip, lower;
    size_t max_length;
    int32_t sig_eos, sig_pad;
    char unk_piece[64];
};

/* ------------------------------------------------------------------------------------------ */
/* Protobuf wire format */

struct pb {
    const unsigned char *p, *end;
};

static bool pb_varint(struct pb *b, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && b->p < b->end; shift += 7) {
        unsigned char c = *b->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* The next field: its number, wire type and, for wire type 2, the payload as a sub-reader. */
struct pb_field {
    uint32_t num;
    int wire;
    uint64_t v;     /* wire 0, 1 (64 bits), 5 (32 bits) */
    struct pb body; /* wire 2 */
};

static bool pb_next(struct pb *b, struct pb_field *f)
{
    uint64_t key;
    if (!pb_varint(b, &key) || key >> 3 == 0 || key >> 3 > UINT32_MAX)
        return false;
    f->num = (uint32_t)(key >> 3);
    f->wire = (int)(key & 7);
    f->v = 0;
    switch (f->wire) {
    case 0:
        return pb_varint(b, &f->v);
    case 1:
    case 5: {
        size_t n = f->wire == 1 ? 8 : 4;
        if ((size_t)(b->end - b->p) < n)
            return false;
        for (size_t i = 0; i < n; i++)
            f->v |= (uint64_t)b->p[i] << (8 * i);
        b->p += n;
        return true;
    }
    case 2: {
        uint64_t n;
        if (!pb_varint(b, &n) || n > (uint64_t)(b->end - b->p))
            return false;
        f->body = (struct pb){ b->p, b->p + n };
        b->p += n;
        return true;
    }
    default: /* groups (3, 4) and reserved types */
        return false;
    }
}

static float pb_float(uint64_t v)
{
    uint32_t u = (uint32_t)v;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

/* An int32 field (negative values come sign-extended to 64 bits). */
static bool pb_int32(uint64_t v, int32_t *out)
{
    int64_t s = (int64_t)v;
    if (s < INT32_MIN || s > INT32_MAX)
        return false;
    *out = (int32_t)s;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Loading */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull

/* The id of piece s[0..n) whose hash_bytes() is h, or -1. */
static int32_t lookup_h(const struct spm_tokenizer *t, const char *s, size_t n, uint64_t h)
{
    if (!t->nslots)
        return -1;
    size_t mask = t->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        int32_t id = t->slots[i];
        if (id < 0)
            return -1;
        if (t->p[id].len == n && memcmp(t->p[id].s, s, n) == 0)
            return id;
    }
}

static int32_t lookup(const struct spm_tokenizer *t, const char *s, size_t n)
{
    return lookup_h(t, s, n, hash_bytes(s, n));
}

static int add_piece(struct spm_tokenizer *t, struct pb body, struct sb_err *err)
{
    struct spm_piece pc = { NULL, 0, 0.0f, SPM_NORMAL };
    const unsigned char *s = NULL;
    size_t slen = 0;
    struct pb_field f;
    while (body.p < body.end) {
        if (!pb_next(&body, &f))
            return sb_fail(err, SB_ECORRUPT, "spiece.model: piece %zu is malformed", t->n);
        if (f.num == 1 && f.wire == 2) {
            s = f.body.p;
            slen = (size_t)(f.body.end - f.body.p);
        } else if (f.num == 2 && f.wire == 5) {
            pc.score = pb_float(f.v);
        } else if (f.num == 3 && f.wire == 0) {
            if (f.v < SPM_NORMAL || f.v > SPM_BYTE)
                return sb_fail(err, SB_ECORRUPT, "spiece.model: piece %zu has type %llu", t->n,
                               (unsigned long long)f.v);
            pc.type = (int)f.v;
        }
    }
    if (!s || slen == 0 || slen > 1024)
        return sb_fail(err, SB_ECORRUPT, "spiece.model: piece %zu is empty or too long", t->n);
    if (t->n >= SPM_MAX_PIECES)
        return sb_fail(err, SB_ETOOBIG, "spiece.model: more than %zu pieces", SPM_MAX_PIECES);
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 1024;
        struct spm_piece *g = realloc(t->p, cap * sizeof(*g));
        if (!g)
            return sb_fail(err, SB_ENOMEM, "no memory for pieces");
        t->p = g;
        t->cap = cap;
    }
    pc.s = malloc(slen + 1);
    if (!pc.s)
        return sb_fail(err, SB_ENOMEM, "no memory for pieces");
    memcpy(pc.s, s, slen);
    pc.s[slen] = '\0';
    pc.len = slen;
    t->p[t->n++] = pc;
    return SB_OK;
}

static int parse_trainer(struct spm_tokenizer *t, struct pb b, struct sb_err *err)
{
    struct pb_field f;
    while (b.p < b.end) {
        if (!pb_next(&b, &f))
            return sb_fail(err, SB_ECORRUPT, "spiece.model: trainer_spec is malformed");
        if (f.wire != 0)
            continue;
        bool ok = true;
        if (f.num == 3 && f.v != 1)
            return sb_fail(err, SB_EFORMAT,
                           "spiece.model: model_type %llu is not supported (unigram only)",
                           (unsigned long long)f.v);
        if (f.num == 35)
            t->byte_fallback = f.v != 0;
        else if (f.num == 40)
            ok = pb_int32(f.v, &t->unk_id);
        else if (f.num == 41)
            ok = pb_int32(f.v, &t->bos_id);
        else if (f.num == 42)
            ok = pb_int32(f.v, &t->eos_id);
        else if (f.num == 43)
            ok = pb_int32(f.v, &t->pad_id);
        if (!ok)
            return sb_fail(err, SB_ECORRUPT, "spiece.model: trainer_spec field %u out of range",
                           f.num);
    }
    return SB_OK;
}

/* precompiled_charsmap: uint32 LE trie size in bytes, the darts-clone units, then the
 * NUL-separated replacement strings. */
static int parse_charsmap(struct spm_tokenizer *t, struct pb b, struct sb_err *err)
{
    size_t n = (size_t)(b.end - b.p);
    if (n == 0)
        return SB_OK;
    if (n < 4)
        return sb_fail(err, SB_ECORRUPT, "spiece.model: precompiled_charsmap is truncated");
    uint32_t trie_bytes =
        (uint32_t)b.p[0] | (uint32_t)b.p[1] << 8 | (uint32_t)b.p[2] << 16 | (uint32_t)b.p[3] << 24;
    if (trie_bytes % 4 != 0 || trie_bytes > n - 4 || trie_bytes == 0)
        return sb_fail(err, SB_ECORRUPT, "spiece.model: precompiled_charsmap trie size %u is bad",
                       trie_bytes);
    t->charsmap = malloc(n); /* aligned copy: the units are read as uint32 */
    if (!t->charsmap)
        return sb_fail(err, SB_ENOMEM, "no memory for the charsmap");
    memcpy(t->charsmap, b.p, n);
    uint32_t *units = (uint32_t *)(void *)(t->charsmap + 4);
    size_t nu = trie_bytes / 4;
    /* the file is little-endian; so are the machines we build for, but say it */
    for (size_t i = 0; i < nu; i++) {
        const unsigned char *q = t->charsmap + 4 + 4 * i;
        units[i] =
            (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    }
    t->trie = units;
    t->trie_units = nu;
    t->norm = (const char *)t->charsmap + 4 + trie_bytes;
    t->norm_len = n - 4 - trie_bytes;
    return SB_OK;
}

static int parse_normalizer(struct spm_tokenizer *t, struct pb b, struct sb_err *err)
{
    struct pb_field f;
    while (b.p < b.end) {
        if (!pb_next(&b, &f))
            return sb_fail(err, SB_ECORRUPT, "spiece.model: normalizer_spec is malformed");
        int rc = SB_OK;
        if (f.num == 2 && f.wire == 2)
            rc = t->charsmap ? SB_OK : parse_charsmap(t, f.body, err);
        else if (f.num == 3 && f.wire == 0)
            t->add_dummy_prefix = f.v != 0;
        else if (f.num == 4 && f.wire == 0)
            t->remove_extra_ws = f.v != 0;
        else if (f.num == 5 && f.wire == 0)
            t->escape_ws = f.v != 0;
        if (rc)
            return rc;
    }
    return SB_OK;
}

static int build_index(struct spm_tokenizer *t, struct sb_err *err)
{
    size_t cap = 16;
    while (cap < 2 * t->n)
        cap *= 2;
    t->slots = malloc(cap * sizeof(*t->slots));
    if (!t->slots)
        return sb_fail(err, SB_ENOMEM, "no memory for the piece index");
    for (size_t i = 0; i < cap; i++)
        t->slots[i] = -1;
    t->nslots = cap;
    t->min_score = FLT_MAX;
    t->max_score = FLT_MIN; /* sentencepiece's initial values, kept for USER_DEFINED scores */
    for (int i = 0; i < 256; i++)
        t->byte_id[i] = -1;
    for (size_t id = 0; id < t->n; id++) {
        const struct spm_piece *pc = &t->p[id];
        if (pc->type == SPM_BYTE && pc->len == 6 && memcmp(pc->s, "<0x", 3) == 0 &&
            pc->s[5] == '>') {
            unsigned v = 0;
            for (int k = 3; k < 5; k++) {
                char ch = pc->s[k];
                v = v * 16 + (unsigned)(ch >= '0' && ch <= '9'   ? ch - '0'
                                        : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                                                 : 0);
            }
            t->byte_id[v] = (int32_t)id;
        }
        if (pc->type == SPM_NORMAL) {
            t->min_score = pc->score < t->min_score ? pc->score : t->min_score;
            t->max_score = pc->score > t->max_score ? pc->score : t->max_score;
        }
        if (pc->type != SPM_NORMAL && pc->type != SPM_USER_DEFINED)
            continue;
        if (lookup(t, pc->s, pc->len) >= 0)
            continue; /* a duplicate: the first id wins, as sentencepiece's piece map */
        size_t mask = cap - 1, i = (size_t)hash_bytes(pc->s, pc->len) & mask;
        while (t->slots[i] >= 0)
            i = (i + 1) & mask;
        t->slots[i] = (int32_t)id;
        if (pc->len > t->max_piece_len)
            t->max_piece_len = pc->len;
    }
    if (t->unk_id < 0 || (size_t)t->unk_id >= t->n || t->p[t->unk_id].type != SPM_UNKNOWN)
        return sb_fail(err, SB_ECORRUPT, "spiece.model: unk_id %d is not an unknown piece",
                       (int)t->unk_id);
    int32_t *ids[3] = { &t->bos_id, &t->eos_id, &t->pad_id };
    for (int k = 0; k < 3; k++)
        if (*ids[k] >= (int32_t)t->n)
            return sb_fail(err, SB_ECORRUPT, "spiece.model: special id %d is out of range",
                           (int)*ids[k]);
    snprintf(t->unk_piece, sizeof(t->unk_piece), "%s",
             t->p[t->unk_id].len < sizeof(t->unk_piece) ? t->p[t->unk_id].s : "<unk>");
    return SB_OK;
}

int spm_load_mem(const unsigned char *buf, size_t len, struct spm_tokenizer **out,
                 struct sb_err *err)
{
    struct spm_tokenizer *t = calloc(1, sizeof(*t));
    int rc = SB_OK;
    if (!t)
        return sb_fail(err, SB_ENOMEM, "no memory for the tokenizer");
    /* sentencepiece_model.proto defaults */
    t->unk_id = 0;
    t->bos_id = 1;
    t->eos_id = 2;
    t->pad_id = -1;
    t->add_dummy_prefix = t->remove_extra_ws = t->escape_ws = true;
    t->max_length = 64;
    if (!buf || len > SPM_MAX_FILE) {
        rc = sb_fail(err, SB_ETOOBIG, "spiece.model: missing or larger than %zu bytes",
                     SPM_MAX_FILE);
        goto out;
    }
    struct pb b = { buf, buf + len };
    struct pb_field f;
    while (b.p < b.end) {
        if (!pb_next(&b, &f)) {
            rc = sb_fail(err, SB_ECORRUPT, "spiece.model: not a ModelProto (bad field at %zu)",
                         (size_t)(b.p - buf));
            goto out;
        }
        if (f.wire != 2)
            continue;
        if (f.num == 1)
            rc = add_piece(t, f.body, err);
        else if (f.num == 2)
            rc = parse_trainer(t, f.body, err);
        else if (f.num == 3)
            rc = parse_normalizer(t, f.body, err);
        if (rc)
            goto out;
    }
    if (t->n == 0) {
        rc = sb_fail(err, SB_ECORRUPT, "spiece.model: no pieces");
        goto out;
    }
    rc = build_index(t, err);
    if (rc)
        goto out;
    t->sig_eos = t->eos_id;
    t->sig_pad = t->pad_id >= 0 ? t->pad_id : t->eos_id;
    *out = t;
    t = NULL;
out:
    spm_free(t);
    return rc;
}

int spm_load_file(const char *path, struct spm_tokenizer **out, struct sb_err *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    int rc = sb_read_file(path, SPM_MAX_FILE, &buf, &len, err);
    if (!rc)
        rc = spm_load_mem(buf, len, out, err);
    free(buf);
    return rc;
}

void spm_free(struct spm_tokenizer *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->p[i].s);
    free(t->p);
    free(t->slots);
    free(t->charsmap);
    free(t);
}

/* ------------------------------------------------------------------------------------------ */
/* Normalizer (sentencepiece normalizer.cc Normalizer::Normalize / NormalizePrefix) */

/* Longest charsmap match at s[0..n): the replacement (into t->norm) and its input length, or
 * length 0. darts-clone DoubleArray::commonPrefixSearch with its unit layout. */
static size_t charsmap_match(const struct spm_tokenizer *t, const char *s, size_t n,
                             const char **repl, size_t *repl_len)
{
    if (!t->trie)
        return 0;
    const uint32_t *u = t->trie;
    size_t nu = t->trie_units, best = 0;
    uint32_t unit = u[0];
    size_t pos = (unit >> 10) << ((unit & (1u << 9)) >> 6);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        pos ^= c;
        if (pos >= nu)
            break;
        unit = u[pos];
        if ((unit & ((1u << 31) | 0xffu)) != c)
            break;
        pos ^= (unit >> 10) << ((unit & (1u << 9)) >> 6);
        if (pos >= nu)
            break;
        if ((unit >> 8) & 1u) {
            size_t v = u[pos] & ((1u << 31) - 1);
            if (v < t->norm_len) {
                best = i + 1;
                *repl = t->norm + v;
                const char *z = memchr(*repl, '\0', t->norm_len - v);
                *repl_len = z ? (size_t)(z - *repl) : t->norm_len - v;
            }
        }
    }
    return best;
}

/* Length of the valid UTF-8 character at s (1..4), or 0 when invalid. */
static size_t utf8_len(const char *s, size_t n)
{
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &cp);
    return k > 0 ? (size_t)k : 0;
}

/* NormalizePrefix: the normalized text of the next piece of input and how much it consumed. */
static size_t norm_prefix(const struct spm_tokenizer *t, const char *s, size_t n, const char **out,
                          size_t *out_len)
{
    size_t k = charsmap_match(t, s, n, out, out_len);
    if (k)
        return k;
    k = utf8_len(s, n);
    if (!k) { /* a malformed byte: U+FFFD, one byte consumed */
        *out = "\xef\xbf\xbd";
        *out_len = 3;
        return 1;
    }
    *out = s;
    *out_len = k;
    return k;
}

static int buf_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *len + n + 1)
            c *= 2;
        char *g = realloc(*buf, c);
        if (!g)
            return SB_ENOMEM;
        *buf = g;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
    return SB_OK;
}

#define SPACE_SYM "\xe2\x96\x81" /* U+2581 */

static int normalize(const struct spm_tokenizer *t, const char *s, size_t n, bool dummy, char **out,
                     size_t *out_len)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    const char *r;
    size_t rl;
    int rc = buf_put(&buf, &len, &cap, "", 0);
    if (t->remove_extra_ws) { /* heading spaces */
        while (n) {
            size_t k = norm_prefix(t, s, n, &r, &rl);
            if (!(rl == 1 && r[0] == ' '))
                break;
            s += k;
            n -= k;
        }
    }
    if (!rc && n && dummy)
        rc = buf_put(&buf, &len, &cap, t->escape_ws ? SPACE_SYM : " ", t->escape_ws ? 3 : 1);
    bool prev_space = t->remove_extra_ws;
    while (!rc && n) {
        size_t k = norm_prefix(t, s, n, &r, &rl);
        if (prev_space && t->remove_extra_ws)
            while (rl && r[0] == ' ') {
                r++;
                rl--;
            }
        for (size_t i = 0; !rc && i < rl; i++) {
            if (t->escape_ws && r[i] == ' ')
                rc = buf_put(&buf, &len, &cap, SPACE_SYM, 3);
            else
                rc = buf_put(&buf, &len, &cap, r + i, 1);
        }
        if (rl)
            prev_space = r[rl - 1] == ' ';
        s += k;
        n -= k;
    }
    if (!rc && t->remove_extra_ws) { /* trailing spaces */
        const char *sp = t->escape_ws ? SPACE_SYM : " ";
        size_t sl = t->escape_ws ? 3 : 1;
        while (len >= sl && memcmp(buf + len - sl, sp, sl) == 0)
            len -= sl;
        buf[len] = '\0';
    }
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = len;
    return SB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Viterbi (sentencepiece unigram_model.cc Model::EncodeOptimized) */

struct vnode {
    float score;  /* best path score up to this byte position */
    int32_t id;   /* last piece of the best path ending here */
    size_t start; /* where that piece starts */
    bool reached;
};

#define UNK_PENALTY 10.0f

/* Segments s[0..n) (normalized) and appends ids to ids[*n_ids..cap). */
static int viterbi(const struct spm_tokenizer *t, const char *s, size_t n, int32_t *ids, size_t cap,
                   size_t *n_ids, struct sb_err *err)
{
    struct vnode *v = calloc(n + 1, sizeof(*v));
    int32_t *rev = NULL;
    int rc = SB_OK;
    if (!v)
        return sb_fail(err, SB_ENOMEM, "no memory to tokenize");
    v[0].reached = true;
    float unk_score = t->min_score - UNK_PENALTY;
    for (size_t at = 0; at < n;) {
        size_t ml = utf8_len(s + at, n - at);
        if (!ml)
            ml = 1;
        if (!v[at].reached) { /* cannot happen: every character has at least the unk path */
            at += ml;
            continue;
        }
        float base = v[at].score;
        bool single = false;
        /* candidate pieces in order of increasing length, as the trie's prefix search gives */
        uint64_t h = FNV_OFFSET; /* the hash of s[at..at+k), extended byte by byte */
        for (size_t k = 1; k <= t->max_piece_len && at + k <= n; k++) {
            h = (h ^ (unsigned char)s[at + k - 1]) * FNV_PRIME;
            int32_t id = lookup_h(t, s + at, k, h);
            if (id < 0)
                continue;
            const struct spm_piece *pc = &t->p[id];
            float sc = pc->type == SPM_USER_DEFINED ? (float)k * t->max_score - 0.1f : pc->score;
            float cand = sc + base;
            struct vnode *e = &v[at + k];
            if (!e->reached || cand > e->score)
                *e = (struct vnode){ cand, id, at, true };
            if (k == ml)
                single = true;
        }
        if (!single) {
            float cand = unk_score + base;
            struct vnode *e = &v[at + ml];
            if (!e->reached || cand > e->score)
                *e = (struct vnode){ cand, t->unk_id, at, true };
        }
        at += ml;
    }
    /* backtrack: pieces end to start */
    size_t cnt = 0;
    for (size_t e = n; e > 0; e = v[e].start)
        cnt++;
    rev = malloc((cnt ? cnt : 1) * sizeof(*rev) * 2);
    size_t *starts = rev ? (size_t *)calloc(cnt ? cnt : 1, sizeof(size_t)) : NULL;
    if (!rev || !starts) {
        free(starts);
        rc = sb_fail(err, SB_ENOMEM, "no memory to tokenize");
        goto out;
    }
    size_t i = cnt;
    for (size_t e = n; e > 0; e = v[e].start) {
        i--;
        rev[i] = v[e].id;
        starts[i] = v[e].start;
    }
    for (size_t k = 0; k < cnt; k++) {
        if (rev[k] == t->unk_id && t->byte_fallback) {
            /* the unknown character as its UTF-8 bytes, <0xXX> pieces */
            size_t st = starts[k], en = k + 1 < cnt ? starts[k + 1] : n;
            for (size_t b = st; b < en; b++) {
                int32_t bid = t->byte_id[(unsigned char)s[b]];
                if (*n_ids >= cap) {
                    rc = sb_fail(err, SB_ETOOBIG, "tokenize: more than %zu ids", cap);
                    break;
                }
                ids[(*n_ids)++] = bid >= 0 ? bid : t->unk_id;
            }
            if (rc)
                break;
            continue;
        }
        /* consecutive unknown pieces are merged into one (PopulateSentencePieceText) */
        if (rev[k] == t->unk_id && k > 0 && rev[k - 1] == t->unk_id)
            continue;
        if (*n_ids >= cap) {
            rc = sb_fail(err, SB_ETOOBIG, "tokenize: more than %zu ids", cap);
            break;
        }
        ids[(*n_ids)++] = rev[k];
    }
    free(starts);
out:
    free(rev);
    free(v);
    return rc;
}

int spm_encode(const struct spm_tokenizer *t, const char *text, size_t len, int add_dummy_prefix,
               int32_t *ids, size_t cap, size_t *n_ids, struct sb_err *err)
{
    if (!t || !text || !ids || !n_ids)
        return sb_fail(err, SB_EINVAL, "spm_encode: NULL argument");
    if (len > SPM_MAX_INPUT)
        return sb_fail(err, SB_ETOOBIG, "tokenize: text of %zu bytes is longer than %zu", len,
                       SPM_MAX_INPUT);
    char *norm = NULL;
    size_t nl = 0, n = 0;
    bool dummy = add_dummy_prefix < 0 ? t->add_dummy_prefix : add_dummy_prefix > 0;
    if (normalize(t, text, len, dummy, &norm, &nl))
        return sb_fail(err, SB_ENOMEM, "no memory to tokenize");
    int rc = viterbi(t, norm, nl, ids, cap, &n, err);
    free(norm);
    if (!rc)
        *n_ids = n;
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* SiglipTokenizer (transformers tokenization_siglip.py) */

/* A token of tokenizer_config.json: a string or an AddedToken dict {"content": ...}. */
static const char *config_token(const cJSON *root, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (cJSON_IsObject(j))
        j = cJSON_GetObjectItemCaseSensitive(j, "content");
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

int spm_set_siglip(struct spm_tokenizer *t, const char *model_dir, struct sb_err *err)
{
    char path[4096];
    unsigned char *buf = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    struct stat st;
    const char *unk = "<unk>", *eos = "</s>", *pad = "</s>";
    int rc = SB_OK;
    t->siglip = true;
    t->lower = true;
    t->max_length = 64;
    int n = snprintf(path, sizeof(path), "%s/tokenizer_config.json", model_dir ? model_dir : ".");
    if (model_dir && n > 0 && (size_t)n < sizeof(path) && stat(path, &st) == 0) {
        rc = sb_read_file(path, SPM_MAX_FILE, &buf, &len, err);
        if (rc)
            goto out;
        root = cJSON_ParseWithLength((const char *)buf, len);
        if (!cJSON_IsObject(root)) {
            rc = sb_fail(err, SB_ECORRUPT, "tokenizer_config.json: not a JSON object");
            goto out;
        }
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "do_lower_case");
        if (cJSON_IsBool(j))
            t->lower = cJSON_IsTrue(j);
        j = cJSON_GetObjectItemCaseSensitive(root, "model_max_length");
        if (cJSON_IsNumber(j) && j->valuedouble >= 2 && j->valuedouble <= 65536)
            t->max_length = (size_t)j->valuedouble;
        unk = config_token(root, "unk_token") ? config_token(root, "unk_token") : unk;
        eos = config_token(root, "eos_token") ? config_token(root, "eos_token") : eos;
        pad = config_token(root, "pad_token") ? config_token(root, "pad_token") : pad;
    }
    int32_t ue = -1, ee = -1, pe = -1;
    for (size_t i = 0; i < t->n; i++) { /* sp_model.piece_to_id: any piece type */
        if (ue < 0 && strcmp(t->p[i].s, unk) == 0)
            ue = (int32_t)i;
        if (ee < 0 && strcmp(t->p[i].s, eos) == 0)
            ee = (int32_t)i;
        if (pe < 0 && strcmp(t->p[i].s, pad) == 0)
            pe = (int32_t)i;
    }
    if (ee < 0 || pe < 0) {
        rc = sb_fail(err, SB_ECORRUPT, "spiece.model: no piece for eos '%.40s' or pad '%.40s'", eos,
                     pad);
        goto out;
    }
    t->sig_eos = ee;
    t->sig_pad = pe;
    if (ue >= 0 && strlen(unk) < sizeof(t->unk_piece))
        snprintf(t->unk_piece, sizeof(t->unk_piece), "%s", unk);
out:
    cJSON_Delete(root);
    free(buf);
    return rc;
}

/* Python's str.isspace() (what re's \s and str.strip() use on str). */
static bool py_space(int32_t c)
{
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
           c == 0x202f || c == 0x205f || c == 0x3000;
}

/* string.punctuation */
static bool py_punct(int32_t c)
{
    return c < 128 && c > 32 && strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", (int)c) != NULL;
}

/* "<unk>" + canonicalized text into *out (NUL-terminated). */
static int siglip_text(const struct spm_tokenizer *t, const char *text, char **out, size_t *out_len)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = buf_put(&buf, &len, &cap, t->unk_piece, strlen(t->unk_piece));
    /* tokenize(): "▁" + text.replace("▁", " "), then lowercased; _tokenize(): punctuation
     * removed, \s+ -> " ", strip() */
    if (!rc)
        rc = buf_put(&buf, &len, &cap, SPACE_SYM, 3);
    bool pending_space = false;
    const utf8proc_uint8_t *s = (const utf8proc_uint8_t *)text;
    size_t n = strlen(text);
    for (size_t i = 0; !rc && i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0) {
            c = 0xfffd;
            k = 1;
        }
        i += (size_t)k;
        if (c == 0x2581)
            c = ' ';
        if (t->lower)
            c = utf8proc_tolower(c);
        if (py_punct(c))
            continue;
        if (py_space(c)) {
            pending_space = true;
            continue;
        }
        /* a run between two kept characters becomes one space; the leading "▁" is not
         * whitespace, so strip() keeps a run right after it; a trailing run is never written */
        if (pending_space)
            rc = buf_put(&buf, &len, &cap, " ", 1);
        pending_space = false;
        utf8proc_uint8_t enc[4];
        utf8proc_ssize_t el = utf8proc_encode_char(c, enc);
        if (!rc)
            rc = buf_put(&buf, &len, &cap, (const char *)enc, (size_t)el);
    }
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = len;
    return SB_OK;
}

int spm_tokenize_siglip(const struct spm_tokenizer *t, const char *text, int32_t *ids,
                        size_t max_ids, size_t *n_ids, struct sb_err *err)
{
    if (!t || !text || !ids || !n_ids || max_ids < 1)
        return sb_fail(err, SB_EINVAL, "tokenize: bad arguments");
    size_t tl = strlen(text);
    if (tl > SPM_MAX_INPUT)
        return sb_fail(err, SB_ETOOBIG, "tokenize: text of %zu bytes is longer than %zu", tl,
                       SPM_MAX_INPUT);
    char *s = NULL;
    size_t sl = 0, cap = tl + 64, n = 0, nu = 0;
    int32_t *tmp = malloc(cap * sizeof(*tmp));
    int32_t unk_ids[64];
    int rc = tmp ? siglip_text(t, text, &s, &sl) : SB_ENOMEM;
    if (rc) {
        rc = sb_fail(err, SB_ENOMEM, "no memory to tokenize");
        goto out;
    }
    /* unk_token_length = len(sp_model.encode("<unk>")): those leading pieces are dropped */
    rc = spm_encode(t, t->unk_piece, strlen(t->unk_piece), 0, unk_ids, 64, &nu, err);
    if (!rc)
        rc = spm_encode(t, s, sl, 0, tmp, cap, &n, err);
    if (rc)
        goto out;
    size_t skip = n >= nu ? nu : 0, k = 0;
    for (size_t i = skip; i < n && k + 1 < max_ids; i++)
        ids[k++] = tmp[i];
    ids[k++] = t->sig_eos; /* build_inputs_with_special_tokens: X </s> */
    *n_ids = k;
out:
    free(s);
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Getters */

size_t spm_size(const struct spm_tokenizer *t)
{
    return t->n;
}

const char *spm_piece(const struct spm_tokenizer *t, int32_t id)
{
    return id >= 0 && (size_t)id < t->n ? t->p[id].s : NULL;
}

int32_t spm_piece_id(const struct spm_tokenizer *t, const char *s)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->p[i].s, s) == 0)
            return (int32_t)i;
    return -1;
}

int32_t spm_unk_id(const struct spm_tokenizer *t)
{
    return t->unk_id;
}

int32_t spm_eos_id(const struct spm_tokenizer *t)
{
    return t->sig_eos;
}

int32_t spm_pad_id(const struct spm_tokenizer *t)
{
    return t->sig_pad;
}

size_t spm_max_length(const struct spm_tokenizer *t)
{
    return t->max_length;
}
