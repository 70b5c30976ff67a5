/* bpe.c - encoding and decoding with a tokenizer.json BPE tokenizer (bpe.h), as Hugging Face
 * tokenizers computes them:
 *   added tokens split out of the raw text (leftmost, longest at a position; lstrip/rstrip
 *   take the whitespace beside them) -> per remaining piece: NFC, Prepend("▁"),
 *   Replace(" ", "▁") -> pre-tokenizers (Digits, the GPT-2 / Qwen2 / Llama 3 regexes, written
 *   out by hand over code points below) -> symbols (GPT-2 byte alphabet, or characters with
 *   <0xXX> byte fallback) -> merges by rank, leftmost first on ties (a heap over a linked list,
 *   as tokenizers' Word::merge_all) -> post-processor specials.
 * Character classes: \p{L} are the L* categories, \p{N} Nd/Nl/No (utf8proc), \s the Unicode
 * White_Space property, as the Rust regex crate defines them. */
#include "bpe_internal.h"
#include "merge_heap.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ------------------------------------------------------------------------------------------ */
/* Tables */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

/* Rehashes into at least `want` slots (a power of two, at least double the current). */
static int vocab_grow(struct bpe_tokenizer *t, size_t want, struct sb_err *err)
{
    size_t cap = t->vcap ? 2 * t->vcap : 1024;
    while (cap < want)
        cap *= 2;
    struct bpe_vslot *s = malloc(cap * sizeof(*s));
    if (!s)
        return sb_fail(err, SB_ENOMEM, "no memory for the vocabulary");
    for (size_t i = 0; i < cap; i++)
        s[i].off = UINT32_MAX;
    for (size_t i = 0; i < t->vcap; i++) {
        if (t->vslots[i].off == UINT32_MAX)
            continue;
        size_t h = t->vslots[i].hash & (cap - 1);
        while (s[h].off != UINT32_MAX)
            h = (h + 1) & (cap - 1);
        s[h] = t->vslots[i];
    }
    free(t->vslots);
    t->vslots = s;
    t->vcap = cap;
    return SB_OK;
}

static struct bpe_vslot *vocab_find(const struct bpe_tokenizer *t, const char *s, size_t len)
{
    if (!t->vcap)
        return NULL;
    uint32_t hash = (uint32_t)hash_bytes(s, len);
    for (size_t h = hash & (t->vcap - 1);; h = (h + 1) & (t->vcap - 1)) {
        struct bpe_vslot *v = &t->vslots[h];
        if (v->off == UINT32_MAX)
            return v;
        if (v->hash == hash && v->len == len && memcmp(t->strs + v->off, s, len) == 0)
            return v;
    }
}

int32_t bpe_vocab_get(const struct bpe_tokenizer *t, const char *s, size_t len)
{
    const struct bpe_vslot *v = vocab_find(t, s, len);
    return v && v->off != UINT32_MAX ? v->id : -1;
}

int bpe_vocab_put(struct bpe_tokenizer *t, const char *s, size_t len, int32_t id,
                  struct sb_err *err)
{
    if (len > BPE_MAX_TOKEN)
        return sb_fail(err, SB_ECORRUPT, "tokenizer.json: a token of %zu bytes is too long", len);
    if (id < 0 || (size_t)id >= BPE_MAX_VOCAB)
        return sb_fail(err, SB_ECORRUPT, "tokenizer.json: token id %d is out of range", (int)id);
    if ((t->vcount + 1) * 2 > t->vcap) {
        int rc = vocab_grow(t, 0, err);
        if (rc)
            return rc;
    }
    struct bpe_vslot *v = vocab_find(t, s, len);
    if (v->off != UINT32_MAX) { /* a duplicate key: the last one wins, as in serde_json */
        v->id = id;
        return SB_OK;
    }
    if (t->strs_len + len + 1 > t->strs_cap) {
        size_t cap = t->strs_cap ? t->strs_cap : 65536;
        while (cap < t->strs_len + len + 1)
            cap *= 2;
        if (cap > UINT32_MAX)
            return sb_fail(err, SB_ETOOBIG, "tokenizer.json: token strings are too large");
        char *grown = realloc(t->strs, cap);
        if (!grown)
            return sb_fail(err, SB_ENOMEM, "no memory for token strings");
        t->strs = grown;
        t->strs_cap = cap;
    }
    memcpy(t->strs + t->strs_len, s, len);
    t->strs[t->strs_len + len] = '\0';
    v->off = (uint32_t)t->strs_len;
    v->len = (uint32_t)len;
    v->hash = (uint32_t)hash_bytes(s, len);
    v->id = id;
    t->strs_len += len + 1;
    t->vcount++;
    return SB_OK;
}

static uint64_t merge_key(int32_t a, int32_t b)
{
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

static int merges_grow(struct bpe_tokenizer *t, size_t want, struct sb_err *err)
{
    size_t cap = t->mcap ? 2 * t->mcap : 1024;
    while (cap < want)
        cap *= 2;
    struct bpe_mslot *s = malloc(cap * sizeof(*s));
    if (!s)
        return sb_fail(err, SB_ENOMEM, "no memory for the merges");
    for (size_t i = 0; i < cap; i++)
        s[i].key = UINT64_MAX;
    for (size_t i = 0; i < t->mcap; i++) {
        if (t->mslots[i].key == UINT64_MAX)
            continue;
        size_t h = hash_u64(t->mslots[i].key) & (cap - 1);
        while (s[h].key != UINT64_MAX)
            h = (h + 1) & (cap - 1);
        s[h] = t->mslots[i];
    }
    free(t->mslots);
    t->mslots = s;
    t->mcap = cap;
    return SB_OK;
}

static struct bpe_mslot *merge_find(const struct bpe_tokenizer *t, uint64_t key)
{
    if (!t->mcap)
        return NULL;
    size_t h = hash_u64(key) & (t->mcap - 1);
    while (t->mslots[h].key != UINT64_MAX && t->mslots[h].key != key)
        h = (h + 1) & (t->mcap - 1);
    return &t->mslots[h];
}

int bpe_merge_put(struct bpe_tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t new_id,
                  struct sb_err *err)
{
    if ((t->mcount + 1) * 2 > t->mcap) {
        int rc = merges_grow(t, 0, err);
        if (rc)
            return rc;
    }
    struct bpe_mslot *s = merge_find(t, merge_key(a, b));
    if (s->key == UINT64_MAX) {
        t->mcount++;
        s->key = merge_key(a, b);
        s->rank = rank;
        s->new_id = new_id;
    } else if (rank < s->rank) { /* tokenizers keeps the first (best) rank of a pair */
        s->rank = rank;
        s->new_id = new_id;
    }
    return SB_OK;
}

int bpe_reserve(struct bpe_tokenizer *t, size_t n_vocab, size_t n_merges, struct sb_err *err)
{
    n_vocab = n_vocab < BPE_MAX_VOCAB ? n_vocab : BPE_MAX_VOCAB;
    n_merges = n_merges < 2 * BPE_MAX_VOCAB ? n_merges : 2 * BPE_MAX_VOCAB;
    int rc = SB_OK;
    if ((t->vcount + n_vocab) * 2 > t->vcap)
        rc = vocab_grow(t, (t->vcount + n_vocab) * 2, err);
    if (!rc && (t->mcount + n_merges) * 2 > t->mcap)
        rc = merges_grow(t, (t->mcount + n_merges) * 2, err);
    return rc;
}

static const struct bpe_mslot *merge_get(const struct bpe_tokenizer *t, int32_t a, int32_t b)
{
    const struct bpe_mslot *s = merge_find(t, merge_key(a, b));
    return s && s->key != UINT64_MAX ? s : NULL;
}

int bpe_finish(struct bpe_tokenizer *t, struct sb_err *err)
{
    size_t n = 0;
    for (size_t i = 0; i < t->vcap; i++)
        if (t->vslots[i].off != UINT32_MAX && (size_t)t->vslots[i].id + 1 > n)
            n = (size_t)t->vslots[i].id + 1;
    free(t->id_off);
    free(t->is_special);
    t->id_off = malloc((n ? n : 1) * sizeof(*t->id_off));
    t->is_special = calloc(n ? n : 1, 1);
    if (!t->id_off || !t->is_special)
        return sb_fail(err, SB_ENOMEM, "no memory for the id table");
    for (size_t i = 0; i < n; i++)
        t->id_off[i] = UINT32_MAX;
    /* several strings may share an id: keep the first in slot order, deterministic */
    for (size_t i = 0; i < t->vcap; i++)
        if (t->vslots[i].off != UINT32_MAX && t->id_off[t->vslots[i].id] == UINT32_MAX)
            t->id_off[t->vslots[i].id] = t->vslots[i].off;
    for (size_t i = 0; i < t->n_added; i++) {
        /* an added token's own string is what decode() shows for its id */
        const struct bpe_vslot *v = vocab_find(t, t->added[i].content, t->added[i].len);
        if (v && v->off != UINT32_MAX)
            t->id_off[t->added[i].id] = v->off;
        t->is_special[t->added[i].id] = t->added[i].special;
    }
    t->n_ids = n;
    return SB_OK;
}

uint32_t bpe_byte_to_unicode(uint8_t b)
{
    /* GPT-2 encoder.py bytes_to_unicode: printable bytes map to themselves, the other 68 to
     * 256, 257, ... in byte order */
    if ((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae))
        return b;
    uint32_t n = 0;
    for (unsigned x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xa1 && x <= 0xac) || (x >= 0xae)))
            n++;
    return 256 + n;
}

size_t bpe_utf8_put(char *dst, uint32_t cp)
{
    unsigned char *d = (unsigned char *)dst;
    if (cp < 0x80) {
        d[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (unsigned char)(0xc0 | (cp >> 6));
        d[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (unsigned char)(0xe0 | (cp >> 12));
        d[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (unsigned char)(0xf0 | (cp >> 18));
    d[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/* ------------------------------------------------------------------------------------------ */
/* UTF-8 */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 with *bad the length of the maximal
 * invalid subpart (Unicode 3.9 / WHATWG: what Python's "replace" turns into one U+FFFD). */
static size_t utf8_valid(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= n)
            break;
        unsigned char x = s[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xbf;
        if (x < l || x > h)
            break;
    }
    if (i == need + 1)
        return need + 1;
    *bad = i;
    return 0;
}

/* Appends s[0..n) to out with invalid sequences replaced by U+FFFD. */
static void utf8_append_lossy(struct sb_buf *out, const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t bad = 0, k = utf8_valid(s + i, n - i, &bad);
        if (k) {
            sb_buf_append(out, (const char *)s + i, k);
            i += k;
        } else {
            sb_buf_append(out, "\xef\xbf\xbd", 3);
            i += bad;
        }
    }
}

static uint32_t cp_at(const unsigned char *s, size_t n, size_t *adv)
{
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t k = utf8proc_iterate(s, (utf8proc_ssize_t)n, &cp);
    if (k <= 0) { /* only valid text reaches here; be safe anyway */
        *adv = 1;
        return 0xfffd;
    }
    *adv = (size_t)k;
    return (uint32_t)cp;
}

/* ------------------------------------------------------------------------------------------ */
/* Character classes and the pre-tokenizer patterns */

static bool is_ws(uint32_t c) /* Unicode White_Space */
{
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
           c == 0x205f || c == 0x3000;
}

static bool is_letter(uint32_t c)
{
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return true;
    default:
        return false;
    }
}

static bool is_number(uint32_t c)
{
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return true;
    default:
        return false;
    }
}

static bool is_other(uint32_t c) /* [^\s\p{L}\p{N}] */
{
    return !is_ws(c) && !is_letter(c) && !is_number(c);
}

static bool is_nl(uint32_t c)
{
    return c == '\r' || c == '\n';
}

static uint32_t lower_ascii(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's|'t|'re|'ve|'m|'ll|'d at cp[i] (case-insensitive for Qwen2 / Llama 3's (?i:...)). */
static size_t contraction(const uint32_t *cp, size_t n, size_t i, bool fold)
{
    if (cp[i] != '\'' || i + 1 >= n)
        return 0;
    uint32_t a = fold ? lower_ascii(cp[i + 1]) : cp[i + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if (i + 2 >= n)
        return 0;
    uint32_t b = fold ? lower_ascii(cp[i + 2]) : cp[i + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

/* \s+(?!\S)|\s+ at a whitespace cp[i]: the run, less its last character when a non-space
 * follows and the run is longer than one. */
static size_t ws_run(const uint32_t *cp, size_t n, size_t i)
{
    size_t e = i;
    while (e < n && is_ws(cp[e]))
        e++;
    if (e < n && e - i >= 2)
        return e - i - 1;
    return e - i;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t match_gpt2(const uint32_t *cp, size_t n, size_t i)
{
    size_t k = contraction(cp, n, i, false);
    if (k)
        return k;
    size_t j = i + (cp[i] == ' ' && i + 1 < n ? 1 : 0);
    bool (*cls[3])(uint32_t) = { is_letter, is_number, is_other };
    for (int c = 0; c < 3; c++) {
        size_t s = cls[c](cp[j]) ? j : (cls[c](cp[i]) ? i : n);
        if (s == n)
            continue;
        size_t e = s;
        while (e < n && cls[c](cp[e]))
            e++;
        return e - i;
    }
    return ws_run(cp, n, i);
}

/* Qwen2: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 *        \s*[\r\n]+|\s+(?!\S)|\s+      (Llama 3: \p{N}{1,3} for \p{N}) */
static size_t match_qwen2(const uint32_t *cp, size_t n, size_t i, int max_digits)
{
    size_t k = contraction(cp, n, i, true);
    if (k)
        return k;
    size_t s = n;
    if (is_letter(cp[i]))
        s = i;
    else if (!is_nl(cp[i]) && !is_number(cp[i]) && i + 1 < n && is_letter(cp[i + 1]))
        s = i + 1;
    if (s < n) {
        size_t e = s;
        while (e < n && is_letter(cp[e]))
            e++;
        return e - i;
    }
    if (is_number(cp[i])) {
        size_t e = i;
        while (e < n && e - i < (size_t)max_digits && is_number(cp[e]))
            e++;
        return e - i;
    }
    size_t j = cp[i] == ' ' && i + 1 < n && is_other(cp[i + 1]) ? i + 1 : i;
    if (is_other(cp[j])) {
        size_t e = j;
        while (e < n && is_other(cp[e]))
            e++;
        while (e < n && is_nl(cp[e]))
            e++;
        return e - i;
    }
    /* a whitespace run: up to its last newline, else \s+(?!\S) / \s+ */
    size_t e = i;
    while (e < n && is_ws(cp[e]))
        e++;
    for (size_t x = e; x > i; x--)
        if (is_nl(cp[x - 1]))
            return x - i;
    return ws_run(cp, n, i);
}

/* ------------------------------------------------------------------------------------------ */
/* Encoding */

struct sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    bool dead;
};

struct enc {
    const struct bpe_tokenizer *t;
    int32_t *ids;
    size_t cap, n;
    bool overflow;
    /* scratch, grown as needed (bounded by BPE_MAX_INPUT) */
    struct sym *syms;
    size_t syms_cap;
    struct merge_ent *heap;
    size_t heap_n, heap_cap;
    char *buf; /* byte-level: the piece in the GPT-2 alphabet */
    size_t buf_cap;
};

static void emit(struct enc *e, int32_t id)
{
    if (e->n < e->cap)
        e->ids[e->n] = id;
    else
        e->overflow = true;
    e->n++;
}

static void heap_push(struct enc *e, struct merge_ent h)
{
    merge_heap_push(e->heap, &e->heap_n, h);
}

static void try_pair(struct enc *e, int32_t pos)
{
    int32_t nx = e->syms[pos].next;
    if (nx < 0)
        return;
    const struct bpe_mslot *m = merge_get(e->t, e->syms[pos].id, e->syms[nx].id);
    if (m)
        heap_push(e, (struct merge_ent){ m->rank, pos, m->new_id, e->syms[nx].id });
}

static int grow(void **p, size_t *cap, size_t need, size_t elem, struct sb_err *err)
{
    if (need <= *cap)
        return SB_OK;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *g = realloc(*p, c * elem);
    if (!g)
        return sb_fail(err, SB_ENOMEM, "no memory to tokenize");
    *p = g;
    *cap = c;
    return SB_OK;
}

/* Merges the n symbols in e->syms and emits their ids. */
static void merge_all(struct enc *e, size_t n)
{
    e->heap_n = 0;
    for (size_t i = 0; i < n; i++)
        try_pair(e, (int32_t)i);
    while (e->heap_n) {
        struct merge_ent h = merge_heap_pop(e->heap, &e->heap_n);
        struct sym *a = &e->syms[h.pos];
        if (a->dead || a->next < 0 || e->syms[a->next].id != h.right_id)
            continue;
        const struct bpe_mslot *m = merge_get(e->t, a->id, h.right_id);
        if (!m || m->new_id != h.new_id || m->rank != h.rank)
            continue; /* a's id changed since the push */
        struct sym *b = &e->syms[a->next];
        a->id = h.new_id;
        b->dead = true;
        a->next = b->next;
        if (b->next >= 0)
            e->syms[b->next].prev = h.pos;
        if (a->prev >= 0)
            try_pair(e, a->prev);
        try_pair(e, h.pos);
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = e->syms[i].next)
        emit(e, e->syms[i].id);
}

/* BPE on one pre-tokenized piece s[0..n) (normalized, valid UTF-8). */
static int bpe_piece(struct enc *e, const unsigned char *s, size_t n, struct sb_err *err)
{
    const struct bpe_tokenizer *t = e->t;
    if (!n)
        return SB_OK;
    int rc = grow((void **)&e->syms, &e->syms_cap, 4 * n + 1, sizeof(*e->syms), err);
    if (!rc)
        rc = grow((void **)&e->heap, &e->heap_cap, 12 * n + 16, sizeof(*e->heap), err);
    if (rc)
        return rc;
    size_t k = 0;
    if (t->byte_level) {
        for (size_t i = 0; i < n; i++)
            if (t->byte_id[s[i]] >= 0) /* a byte missing from the alphabet is dropped */
                e->syms[k++].id = t->byte_id[s[i]];
    } else {
        bool last_unk = false;
        for (size_t i = 0; i < n;) {
            size_t adv;
            cp_at(s + i, n - i, &adv);
            int32_t id = bpe_vocab_get(t, (const char *)s + i, adv);
            bool bytes_ok = t->byte_fallback;
            for (size_t b = 0; id < 0 && bytes_ok && b < adv; b++)
                bytes_ok = t->byte_id[s[i + b]] >= 0;
            if (id >= 0) {
                e->syms[k++].id = id;
                last_unk = false;
            } else if (bytes_ok) {
                for (size_t b = 0; b < adv; b++)
                    e->syms[k++].id = t->byte_id[s[i + b]];
                last_unk = false;
            } else if (t->unk_id >= 0) {
                if (!(t->fuse_unk && last_unk))
                    e->syms[k++].id = t->unk_id;
                last_unk = true;
            }
            i += adv;
        }
    }
    for (size_t i = 0; i < k; i++) {
        e->syms[i].prev = (int32_t)i - 1;
        e->syms[i].next = i + 1 < k ? (int32_t)i + 1 : -1;
        e->syms[i].dead = false;
    }
    merge_all(e, k);
    return SB_OK;
}

/* Runs pre-tokenizer step `step` on s[0..n), handing each piece to the next step. */
static int pretokenize(struct enc *e, const unsigned char *s, size_t n, int step,
                       struct sb_err *err)
{
    const struct bpe_tokenizer *t = e->t;
    if (!n)
        return SB_OK;
    if (step == t->n_pre) {
        if (t->prefix_space && s[0] != ' ') { /* ByteLevel add_prefix_space */
            int rc = grow((void **)&e->buf, &e->buf_cap, n + 2, 1, err);
            if (rc)
                return rc;
            e->buf[0] = ' ';
            memcpy(e->buf + 1, s, n);
            /* e->buf is not reused before bpe_piece returns */
            return bpe_piece(e, (const unsigned char *)e->buf, n + 1, err);
        }
        return bpe_piece(e, s, n, err);
    }
    /* code points of this piece; each level keeps its own copy on the stack of calls, so
     * decode into fresh arrays only at the level that needs them */
    size_t m = 0;
    uint32_t *cps = malloc(n * sizeof(*cps));
    size_t *offs = malloc((n + 1) * sizeof(*offs));
    int rc = SB_OK;
    if (!cps || !offs) {
        rc = sb_fail(err, SB_ENOMEM, "no memory to tokenize");
        goto out;
    }
    for (size_t i = 0; i < n;) {
        size_t adv;
        offs[m] = i;
        cps[m++] = cp_at(s + i, n - i, &adv);
        i += adv;
    }
    offs[m] = n;
    for (size_t i = 0; i < m && !rc;) {
        size_t len;
        switch (t->pre[step]) {
        case BPE_PRE_DIGITS:
        case BPE_PRE_DIGIT_RUNS:
            len = 0;
            if (is_number(cps[i])) {
                len = 1;
                while (t->pre[step] == BPE_PRE_DIGIT_RUNS && i + len < m && is_number(cps[i + len]))
                    len++;
            } else {
                while (i + len < m && !is_number(cps[i + len]))
                    len++;
            }
            break;
        case BPE_PRE_GPT2:
            len = match_gpt2(cps, m, i);
            break;
        case BPE_PRE_QWEN2:
            len = match_qwen2(cps, m, i, 1);
            break;
        case BPE_PRE_LLAMA3:
        default:
            len = match_qwen2(cps, m, i, 3);
            break;
        }
        rc = pretokenize(e, s + offs[i], offs[i + len] - offs[i], step + 1, err);
        i += len;
    }
out:
    free(cps);
    free(offs);
    return rc;
}

/* tokenizers' Lowercase normalizer: Rust's char::to_lowercase on each character, i.e. the
 * simple mapping (utf8proc_tolower) except U+0130, the one character whose full lowercase is
 * two ("i" + U+0307). Context-free: a final sigma becomes U+03C3, unlike Python's str.lower.
 * dst holds 2n bytes (no mapping grows a character by more than that). */
static size_t lowercase(unsigned char *dst, const unsigned char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t adv;
        uint32_t cp = cp_at(s + i, n - i, &adv);
        if (cp == 0x130) {
            dst[o++] = 'i';
            o += bpe_utf8_put((char *)dst + o, 0x307);
        } else {
            o += bpe_utf8_put((char *)dst + o, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
        }
        i += adv;
    }
    return o;
}

/* Normalizers on one piece between added tokens, then the pre-tokenizers. */
static int encode_piece(struct enc *e, const unsigned char *s, size_t n, struct sb_err *err)
{
    const struct bpe_tokenizer *t = e->t;
    utf8proc_uint8_t *nfc = NULL;
    unsigned char *ms = NULL, *low = NULL;
    int rc = SB_OK;
    if (!n)
        return SB_OK;
    if (t->nfc) {
        utf8proc_ssize_t k =
            utf8proc_map(s, (utf8proc_ssize_t)n, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (k < 0)
            return sb_fail(err, SB_EINVAL, "tokenize: normalization failed: %s",
                           utf8proc_errmsg(k));
        s = nfc;
        n = (size_t)k;
    }
    if (t->lowercase) {
        low = malloc(2 * n + 4);
        if (!low) {
            rc = sb_fail(err, SB_ENOMEM, "no memory to tokenize");
            goto out;
        }
        n = lowercase(low, s, n);
        s = low;
    }
    if (t->prepend_space || t->replace_space) {
        ms = malloc(3 * n + 4);
        if (!ms) {
            rc = sb_fail(err, SB_ENOMEM, "no memory to tokenize");
            goto out;
        }
        size_t o = 0;
        if (t->prepend_space)
            o += bpe_utf8_put((char *)ms + o, 0x2581);
        for (size_t i = 0; i < n; i++) {
            if (t->replace_space && s[i] == ' ')
                o += bpe_utf8_put((char *)ms + o, 0x2581);
            else
                ms[o++] = s[i];
        }
        s = ms;
        n = o;
    }
    rc = pretokenize(e, s, n, 0, err);
out:
    free(ms);
    free(low);
    free(nfc);
    return rc;
}

/* The longest added token at s[0..n), or NULL. */
static const struct bpe_added *added_at(const struct bpe_tokenizer *t, const unsigned char *s,
                                        size_t n)
{
    if (!t->added_first[s[0]])
        return NULL;
    for (size_t i = 0; i < t->n_added; i++) { /* sorted longest first */
        const struct bpe_added *a = &t->added[i];
        if (a->len <= n && memcmp(a->content, s, a->len) == 0)
            return a;
    }
    return NULL;
}

static bool ascii_ws(unsigned char c)
{
    return c == ' ' || (c >= 9 && c <= 13);
}

int bpe_encode(const struct bpe_tokenizer *tok, const char *text, size_t len, bool add_special,
               int32_t *ids, size_t cap, size_t *n_ids, struct sb_err *err)
{
    if (!tok || (!text && len) || !n_ids || (!ids && cap))
        return sb_fail(err, SB_EINVAL, "tokenize: bad arguments");
    if (len > BPE_MAX_INPUT)
        return sb_fail(err, SB_ETOOBIG, "tokenize: %zu bytes of text is over the limit %zu", len,
                       BPE_MAX_INPUT);
    struct enc e = { .t = tok, .ids = ids, .cap = cap };
    struct sb_buf clean;
    sb_buf_init(&clean);
    sb_buf_append(&clean, "", 0); /* never NULL, even for empty text */
    utf8_append_lossy(&clean, (const unsigned char *)(text ? text : ""), len);
    int rc = SB_OK;
    if (clean.failed) {
        rc = sb_fail(err, SB_ENOMEM, "no memory to tokenize");
        goto out;
    }
    if (add_special)
        for (int i = 0; i < tok->n_post_pre; i++)
            emit(&e, tok->post_pre[i]);
    const unsigned char *s = (const unsigned char *)clean.data;
    size_t n = clean.len, start = 0;
    for (size_t i = 0; i < n && !rc;) {
        const struct bpe_added *a = added_at(tok, s + i, n - i);
        if (!a) {
            i++;
            continue;
        }
        size_t end = i; /* the piece before the token; lstrip takes its trailing whitespace */
        if (a->lstrip)
            while (end > start && ascii_ws(s[end - 1]))
                end--;
        rc = encode_piece(&e, s + start, end - start, err);
        emit(&e, a->id);
        i += a->len;
        if (a->rstrip)
            while (i < n && ascii_ws(s[i]))
                i++;
        start = i;
    }
    if (!rc)
        rc = encode_piece(&e, s + start, n - start, err);
    if (!rc && add_special)
        for (int i = 0; i < tok->n_post_post; i++)
            emit(&e, tok->post_post[i]);
    if (!rc && e.overflow)
        rc = sb_fail(err, SB_ETOOBIG, "tokenize: %zu ids do not fit in %zu", e.n, cap);
    if (!rc)
        *n_ids = e.n;
out:
    free(e.syms);
    free(e.heap);
    free(e.buf);
    sb_buf_release(&clean);
    return rc;
}

int bpe_encode_truncated(const struct bpe_tokenizer *tok, const char *text, size_t len,
                         bool add_special, size_t max_len, int32_t *ids, size_t *n_ids,
                         struct sb_err *err)
{
    if (!tok || !n_ids || !ids || !max_len)
        return sb_fail(err, SB_EINVAL, "tokenize: bad arguments");
    size_t n_pre = add_special ? (size_t)tok->n_post_pre : 0;
    size_t n_post = add_special ? (size_t)tok->n_post_post : 0;
    if (n_pre + n_post >= max_len)
        return sb_fail(err, SB_EINVAL, "tokenize: max_len %zu leaves no room for the text",
                       max_len);
    if (len > BPE_MAX_INPUT)
        return sb_fail(err, SB_ETOOBIG, "tokenize: %zu bytes of text is over the limit %zu", len,
                       BPE_MAX_INPUT);
    /* an id covers at least one byte of a normalized piece; Lowercase (x1.5), Replace (a
     * space becomes 3 bytes) and Prepend (3 bytes per non-empty piece) keep that under 6
     * bytes per input byte */
    size_t cap = 6 * len + 16, n = 0;
    int32_t *all = malloc(cap * sizeof(*all));
    if (!all)
        return sb_fail(err, SB_ENOMEM, "no memory to tokenize");
    int rc = bpe_encode(tok, text, len, false, all, cap, &n, err);
    if (!rc) {
        size_t keep = n < max_len - n_pre - n_post ? n : max_len - n_pre - n_post;
        memcpy(ids, tok->post_pre, n_pre * sizeof(*ids));
        memcpy(ids + n_pre, all, keep * sizeof(*ids));
        memcpy(ids + n_pre + keep, tok->post_post, n_post * sizeof(*ids));
        *n_ids = n_pre + keep + n_post;
    }
    free(all);
    return rc;
}

void bpe_set_lowercase(struct bpe_tokenizer *tok)
{
    tok->lowercase = true;
}

/* ------------------------------------------------------------------------------------------ */
/* Decoding */

static int32_t unicode_to_byte(uint32_t cp)
{
    if (cp < 256) {
        if ((cp >= '!' && cp <= '~') || (cp >= 0xa1 && cp <= 0xac) || cp >= 0xae)
            return (int32_t)cp;
        return -1;
    }
    for (unsigned b = 0; b < 256; b++)
        if (bpe_byte_to_unicode((uint8_t)b) == cp)
            return (int32_t)b;
    return -1;
}

/* "<0xAB>" -> 0xAB, else -1 (tokenizers' ByteFallback decoder). */
static int byte_token(const char *s)
{
    if (strlen(s) != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

int bpe_decode(const struct bpe_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special,
               struct sb_buf *out, struct sb_err *err)
{
    struct sb_buf raw;
    sb_buf_init(&raw);
    int rc = SB_OK;
    for (size_t i = 0; i < n; i++) {
        const char *s = bpe_token_str(tok, ids[i]);
        if (!s) {
            rc = sb_fail(err, SB_EINVAL, "decode: unknown token id %d", (int)ids[i]);
            goto out;
        }
        if (skip_special && tok->is_special[ids[i]])
            continue;
        if (tok->ms_decoder) {
            int b = byte_token(s);
            if (b >= 0) { /* raw byte: the lossy pass below joins runs of them into UTF-8 */
                char c = (char)b;
                sb_buf_append(&raw, &c, 1);
                continue;
            }
            /* Replace("▁", " "); a byte-run must end here: flush it through the lossy pass by
             * keeping everything in raw, and rely on complete sequences being valid */
            for (const char *p = s; *p;) {
                if ((unsigned char)p[0] == 0xe2 && (unsigned char)p[1] == 0x96 &&
                    (unsigned char)p[2] == 0x81) {
                    sb_buf_append(&raw, " ", 1);
                    p += 3;
                } else {
                    sb_buf_append(&raw, p, 1);
                    p++;
                }
            }
            continue;
        }
        /* ByteLevel: each character of the token stands for one byte */
        size_t len = strlen(s);
        for (size_t k = 0; k < len;) {
            size_t adv;
            uint32_t cp = cp_at((const unsigned char *)s + k, len - k, &adv);
            int32_t b = unicode_to_byte(cp);
            if (b >= 0) {
                char c = (char)b;
                sb_buf_append(&raw, &c, 1);
            } else {
                sb_buf_append(&raw, s + k, adv);
            }
            k += adv;
        }
    }
    if (raw.failed) {
        rc = sb_fail(err, SB_ENOMEM, "no memory to decode");
        goto out;
    }
    size_t skip = 0;
    if (tok->ms_decoder) /* Strip(" ", start, 0) on the fused text */
        while (skip < (size_t)tok->strip_start && skip < raw.len && raw.data[skip] == ' ')
            skip++;
    sb_buf_append(out, "", 0); /* NUL-terminated even when empty */
    if (raw.len)
        utf8_append_lossy(out, (const unsigned char *)raw.data + skip, raw.len - skip);
    if (out->failed)
        rc = sb_fail(err, SB_ENOMEM, "no memory to decode");
out:
    sb_buf_release(&raw);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Lookups */

int32_t bpe_token_id(const struct bpe_tokenizer *tok, const char *s)
{
    return bpe_vocab_get(tok, s, strlen(s));
}

const char *bpe_token_str(const struct bpe_tokenizer *tok, int32_t id)
{
    if (id < 0 || (size_t)id >= tok->n_ids || tok->id_off[id] == UINT32_MAX)
        return NULL;
    return tok->strs + tok->id_off[id];
}

size_t bpe_vocab_size(const struct bpe_tokenizer *tok)
{
    return tok->n_ids;
}

int32_t bpe_bos_id(const struct bpe_tokenizer *tok)
{
    return tok->bos_id;
}

int32_t bpe_eos_id(const struct bpe_tokenizer *tok)
{
    return tok->eos_id;
}
