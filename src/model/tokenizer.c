/* tokenizer.c - CLIP byte-level BPE encoding, identical in ids to Hugging Face's
 * CLIPTokenizerFast (tokenizers' Rust pipeline built by transformers' CLIPConverter):
 *
 *   normalizer    Sequence[NFC, Replace(Regex `\s+` -> " "), Lowercase]
 *   pre_tokenizer Sequence[Split(Regex `'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`,
 *                 Removed, invert=true), ByteLevel(add_prefix_space=false)]
 *   model         BPE(end_of_word_suffix "</w>", continuing_subword_prefix "", unk <|endoftext|>)
 *   post          RobertaProcessing(cls <|startoftext|>, sep <|endoftext|>)
 *
 * Notes on fidelity, each checked against tools/ref_tokenizer.py:
 * - Regexes in HF tokenizers run on Oniguruma: `\s` is the Unicode White_Space set (9-13, 0x20,
 *   0x85 and the Zs/Zl/Zp categories; not 0x1C-0x1F, which Python's str.isspace() includes),
 *   \p{L} the L* categories, \p{N} Nd/Nl/No. Categories come from utf8proc.
 * - ByteLevel runs the GPT-2 split regex after the Split, but on Split's pieces (a letter run,
 *   one number, a contraction, a symbol run) it never splits further, so it is not repeated.
 * - Only whitespace falls between the Split's matches and is dropped, so leading, trailing and
 *   repeated whitespace never change the ids (the fast tokenizer does not strip(); it needn't).
 * - Lowercase is Rust's char::to_lowercase per code point: final sigma is NOT contextual
 *   ("ΟΔΥΣΣΕΥΣ" -> "οδυσσευσ", where Python's str.lower() gives a final "ς"), and U+0130 'İ'
 *   becomes "i" + U+0307 (the one unconditional multi-code-point lowercase in SpecialCasing;
 *   utf8proc_tolower() gives the simple mapping "i", so it is special-cased here).
 * - BPE merges the lowest-ranked pair first, leftmost on ties, with a heap as HF's
 *   Word::merge_all does; for real merge lists this equals the slow tokenizer's loop.
 * - Added tokens (<|startoftext|>, <|endoftext|>) typed in the text are split out first and
 *   become their ids, as HF does unless split_special_tokens=True: non-normalized ones are
 *   found in the raw text, normalized ones in the normalized text (so "<|ENDOFTEXT|>" matches
 *   when the token is normalized). Leftmost-longest, as HF's Aho-Corasick. lstrip/rstrip are
 *   not needed: they only swallow whitespace, which the Split drops anyway.
 * - Truncation (truncation=True, max_length=N) keeps [bos, first N-2 tokens, eos].
 *
 * Where the slow CLIPTokenizer (tokenization_clip.py) differs, we follow the fast one:
 * - with ftfy installed the slow one runs ftfy.fix_text and html.unescape ("&amp;" -> "&");
 * - without ftfy it uses BasicTokenizer: control and format characters (Cc, Cf: ZWJ, soft
 *   hyphen, NUL) and U+FFFD are deleted, spaces are put around CJK ideographs (so "東京" is two
 *   words, not one), and str.lower() applies the contextual final sigma;
 * - its regex runs with re.IGNORECASE and accepts "<|startoftext|>" in any case.
 * Invalid UTF-8 (which Python str input cannot carry) is replaced by U+FFFD per maximal
 * subpart, the same as bytes.decode("utf-8", "replace"). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "merge_heap.h"
#include "shoebox/err.h"
#include "shoebox/tokenizer.h"
#include "shoebox/util.h"
#include "tokenizer_internal.h"

/* ------------------------------------------------------------------------------------------ */
/* Hash tables */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a final mix for the low bits */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h;
}

static uint64_t hash_u64(uint64_t x)
{
    x ^= x >> 30; /* splitmix64 finaliser */
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

int tok_new(struct clip_tokenizer **out, struct sb_err *err)
{
    struct clip_tokenizer *tok = calloc(1, sizeof(*tok));
    if (!tok)
        return sb_fail(err, SB_ENOMEM, "tokenizer: out of memory");
    tok->unk_id = -1;
    tok->bos_id = -1;
    tok->eos_id = -1;
    tok->pad_id = -1;
    tok->max_length = TOK_DEFAULT_CTX;
    for (int b = 0; b < 256; b++) {
        tok->byte_id[b] = -1;
        tok->byte_eow_id[b] = -1;
    }
    *out = tok;
    return SB_OK;
}

void clip_tokenizer_free(struct clip_tokenizer *tok)
{
    if (!tok)
        return;
    for (size_t i = 0; i < tok->n_added; i++)
        free(tok->added[i].content);
    free(tok->added);
    free(tok->strs);
    free(tok->vslots);
    free(tok->mslots);
    free(tok->id_str);
    free(tok);
}

static int vocab_grow(struct clip_tokenizer *tok, struct sb_err *err)
{
    size_t ncap = tok->vcap ? tok->vcap * 2 : 1024;
    struct tok_vslot *ns = malloc(ncap * sizeof(*ns));
    if (!ns)
        return sb_fail(err, SB_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < ncap; i++)
        ns[i].off = UINT32_MAX;
    for (size_t i = 0; i < tok->vcap; i++) {
        struct tok_vslot *s = &tok->vslots[i];
        if (s->off == UINT32_MAX)
            continue;
        size_t j = hash_bytes(tok->strs + s->off, s->len) & (ncap - 1);
        while (ns[j].off != UINT32_MAX)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(tok->vslots);
    tok->vslots = ns;
    tok->vcap = ncap;
    return SB_OK;
}

/* The slot holding s, or the empty slot where it would go. vcap must be > 0. */
static struct tok_vslot *vocab_find(const struct clip_tokenizer *tok, const char *s, size_t len)
{
    size_t j = hash_bytes(s, len) & (tok->vcap - 1);
    for (;;) {
        struct tok_vslot *v = &tok->vslots[j];
        if (v->off == UINT32_MAX)
            return v;
        if (v->len == len && memcmp(tok->strs + v->off, s, len) == 0)
            return v;
        j = (j + 1) & (tok->vcap - 1);
    }
}

int32_t tok_vocab_get(const struct clip_tokenizer *tok, const char *s, size_t len)
{
    if (!tok->vcap)
        return -1;
    const struct tok_vslot *v = vocab_find(tok, s, len);
    return v->off == UINT32_MAX ? -1 : v->id;
}

int tok_vocab_put(struct clip_tokenizer *tok, const char *s, size_t len, int32_t id,
                  struct sb_err *err)
{
    int rc;
    if (len > TOK_MAX_TOKEN)
        return sb_fail(err, SB_ECORRUPT, "tokenizer: token of %zu bytes (limit %d)", len,
                       TOK_MAX_TOKEN);
    if (id < 0 || id >= TOK_MAX_ID)
        return sb_fail(err, SB_ECORRUPT, "tokenizer: token id %ld out of range", (long)id);
    if ((tok->vcount + 1) * 2 > tok->vcap) { /* load factor <= 1/2 */
        if (tok->vcount >= TOK_MAX_VOCAB)
            return sb_fail(err, SB_ETOOBIG, "tokenizer: more than %zu vocabulary entries",
                           TOK_MAX_VOCAB);
        rc = vocab_grow(tok, err);
        if (rc)
            return rc;
    }
    struct tok_vslot *v = vocab_find(tok, s, len);
    if (v->off != UINT32_MAX) {
        v->id = id;
        return SB_OK;
    }
    size_t need = tok->strs_len + len + 1;
    if (need > UINT32_MAX - 1)
        return sb_fail(err, SB_ETOOBIG, "tokenizer: vocabulary strings too large");
    if (need > tok->strs_cap) {
        size_t ncap = tok->strs_cap ? tok->strs_cap : 65536;
        while (ncap < need)
            ncap *= 2;
        char *ns = realloc(tok->strs, ncap);
        if (!ns)
            return sb_fail(err, SB_ENOMEM, "tokenizer: out of memory");
        tok->strs = ns;
        tok->strs_cap = ncap;
    }
    v->off = (uint32_t)tok->strs_len;
    v->len = (uint32_t)len;
    v->id = id;
    if (len)
        memcpy(tok->strs + tok->strs_len, s, len);
    tok->strs[tok->strs_len + len] = '\0';
    tok->strs_len = need;
    tok->vcount++;
    return SB_OK;
}

static int merges_grow(struct clip_tokenizer *tok, struct sb_err *err)
{
    size_t ncap = tok->mcap ? tok->mcap * 2 : 1024;
    struct tok_mslot *ns = malloc(ncap * sizeof(*ns));
    if (!ns)
        return sb_fail(err, SB_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < ncap; i++)
        ns[i].key = UINT64_MAX;
    for (size_t i = 0; i < tok->mcap; i++) {
        if (tok->mslots[i].key == UINT64_MAX)
            continue;
        size_t j = hash_u64(tok->mslots[i].key) & (ncap - 1);
        while (ns[j].key != UINT64_MAX)
            j = (j + 1) & (ncap - 1);
        ns[j] = tok->mslots[i];
    }
    free(tok->mslots);
    tok->mslots = ns;
    tok->mcap = ncap;
    return SB_OK;
}

static struct tok_mslot *merge_find(const struct clip_tokenizer *tok, uint64_t key)
{
    size_t j = hash_u64(key) & (tok->mcap - 1);
    while (tok->mslots[j].key != UINT64_MAX && tok->mslots[j].key != key)
        j = (j + 1) & (tok->mcap - 1);
    return &tok->mslots[j];
}

static uint64_t merge_key(int32_t a, int32_t b)
{
    return (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
}

int tok_merge_put(struct clip_tokenizer *tok, int32_t a, int32_t b, uint32_t rank, int32_t new_id,
                  struct sb_err *err)
{
    if ((tok->mcount + 1) * 2 > tok->mcap) {
        if (tok->mcount >= TOK_MAX_MERGES)
            return sb_fail(err, SB_ETOOBIG, "tokenizer: more than %zu merges", TOK_MAX_MERGES);
        int rc = merges_grow(tok, err);
        if (rc)
            return rc;
    }
    struct tok_mslot *m = merge_find(tok, merge_key(a, b));
    if (m->key == UINT64_MAX)
        tok->mcount++;
    m->key = merge_key(a, b);
    m->rank = rank;
    m->new_id = new_id;
    return SB_OK;
}

static const struct tok_mslot *merge_get(const struct clip_tokenizer *tok, int32_t a, int32_t b)
{
    if (!tok->mcap)
        return NULL;
    const struct tok_mslot *m = merge_find(tok, merge_key(a, b));
    return m->key == UINT64_MAX ? NULL : m;
}

int tok_add_token(struct clip_tokenizer *tok, const char *s, size_t len, int32_t id,
                  bool normalized, bool single_word, struct sb_err *err)
{
    if (len == 0 || len > TOK_MAX_TOKEN)
        return sb_fail(err, SB_ECORRUPT, "tokenizer: added token of %zu bytes", len);
    /* Matching assumes whole characters (HF's tokens are Rust Strings, so valid UTF-8) */
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (k <= 0)
            return sb_fail(err, SB_ECORRUPT, "tokenizer: added token is not valid UTF-8");
        i += (size_t)k;
    }
    if (id < 0 || id >= TOK_MAX_ID)
        return sb_fail(err, SB_ECORRUPT, "tokenizer: added token id %ld out of range", (long)id);
    for (size_t i = 0; i < tok->n_added; i++) { /* the same content again: the last wins */
        struct tok_added *a = &tok->added[i];
        if (a->len == len && memcmp(a->content, s, len) == 0) {
            a->id = id;
            a->normalized = normalized;
            a->single_word = single_word;
            return SB_OK;
        }
    }
    if (tok->n_added >= TOK_MAX_ADDED)
        return sb_fail(err, SB_ETOOBIG, "tokenizer: more than %d added tokens", TOK_MAX_ADDED);
    struct tok_added *na = realloc(tok->added, (tok->n_added + 1) * sizeof(*na));
    if (!na)
        return sb_fail(err, SB_ENOMEM, "tokenizer: out of memory");
    tok->added = na;
    char *c = malloc(len + 1);
    if (!c)
        return sb_fail(err, SB_ENOMEM, "tokenizer: out of memory");
    memcpy(c, s, len);
    c[len] = '\0';
    na[tok->n_added] = (struct tok_added){
        .content = c, .len = len, .id = id, .normalized = normalized, .single_word = single_word
    };
    tok->n_added++;
    tok->added_first[(unsigned char)s[0]] = 1;
    /* HF's added vocabulary also maps the content to the id */
    return tok_vocab_put(tok, s, len, id, err);
}

uint32_t tok_byte_to_unicode(uint8_t b)
{
    /* bytes_to_unicode() in tokenization_clip.py: printable Latin-1 maps to itself, the other
     * 68 bytes to 256, 257, ... in byte order. */
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE))
        return b;
    uint32_t n = 0;
    for (uint32_t c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE)))
            n++;
    return 256 + n;
}

static size_t utf8_put(char *dst, uint32_t cp)
{
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int tok_finish(struct clip_tokenizer *tok, struct sb_err *err)
{
    int32_t max_id = -1;
    for (size_t i = 0; i < tok->vcap; i++)
        if (tok->vslots[i].off != UINT32_MAX && tok->vslots[i].id > max_id)
            max_id = tok->vslots[i].id;
    free(tok->id_str);
    tok->n_id_str = (size_t)max_id + 1;
    tok->id_str = malloc((tok->n_id_str ? tok->n_id_str : 1) * sizeof(*tok->id_str));
    if (!tok->id_str)
        return sb_fail(err, SB_ENOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < tok->n_id_str; i++)
        tok->id_str[i] = UINT32_MAX;
    for (size_t i = 0; i < tok->vcap; i++) {
        const struct tok_vslot *v = &tok->vslots[i];
        /* several strings may share an id; keep the lowest offset so the choice is stable */
        if (v->off != UINT32_MAX && v->off < tok->id_str[v->id])
            tok->id_str[v->id] = v->off;
    }
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t n = utf8_put(s, tok_byte_to_unicode((uint8_t)b));
        tok->byte_id[b] = tok_vocab_get(tok, s, n);
        memcpy(s + n, "</w>", 4);
        tok->byte_eow_id[b] = tok_vocab_get(tok, s, n + 4);
    }
    return SB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Getters */

int32_t clip_tokenizer_bos_id(const struct clip_tokenizer *tok)
{
    return tok->bos_id;
}

int32_t clip_tokenizer_eos_id(const struct clip_tokenizer *tok)
{
    return tok->eos_id;
}

int32_t clip_tokenizer_pad_id(const struct clip_tokenizer *tok)
{
    return tok->pad_id >= 0 ? tok->pad_id : tok->eos_id;
}

size_t clip_tokenizer_vocab_size(const struct clip_tokenizer *tok)
{
    return tok->n_id_str;
}

size_t clip_tokenizer_max_length(const struct clip_tokenizer *tok)
{
    return tok->max_length;
}

const char *clip_tokenizer_token(const struct clip_tokenizer *tok, int32_t id)
{
    if (id < 0 || (size_t)id >= tok->n_id_str || tok->id_str[id] == UINT32_MAX)
        return NULL;
    return tok->strs + tok->id_str[id];
}

/* ------------------------------------------------------------------------------------------ */
/* UTF-8 */

/* Decodes one code point of valid UTF-8 at s (our own buffers only). */
static uint32_t utf8_get(const unsigned char *s, size_t *adv)
{
    if (s[0] < 0x80) {
        *adv = 1;
        return s[0];
    }
    if (s[0] < 0xE0) {
        *adv = 2;
        return (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    }
    if (s[0] < 0xF0) {
        *adv = 3;
        return (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    }
    *adv = 4;
    return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
           (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
}

/* Copies src to dst (room for 3 * n bytes) replacing each maximal ill-formed subpart by
 * U+FFFD, per Unicode 15 section 3.9 "U+FFFD Substitution of Maximal Subparts", which is
 * what CPython's UTF-8 decoder does with errors="replace". Returns the bytes written. */
static size_t utf8_sanitize(char *dst, const unsigned char *s, size_t n)
{
    size_t o = 0, i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t need = 0;
        unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c < 0x80) {
            dst[o++] = (char)c;
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        }
        size_t k = 1; /* bytes of this sequence that are valid so far */
        if (need) {
            while (k <= need && i + k < n) {
                unsigned char t = s[i + k];
                unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
                if (t < l || t > h)
                    break;
                k++;
            }
        }
        if (need && k == need + 1) {
            memcpy(dst + o, s + i, k);
            o += k;
        } else {
            o += utf8_put(dst + o, 0xFFFD);
        }
        i += k;
    }
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* Encoding */

struct enc {
    const struct clip_tokenizer *tok;
    int32_t *ids; /* content ids (no bos/eos) */
    size_t n, cap;
    /* BPE scratch, sized for the longest word seen so far */
    struct sym {
        int32_t id;
        int32_t prev, next; /* -1 at the ends */
        bool alive;
    } * syms;
    struct merge_ent *heap;
    size_t sym_cap, heap_cap, heap_n;
    struct sb_err *err;
};

static bool enc_full(const struct enc *e)
{
    return e->n >= e->cap;
}

static void enc_emit(struct enc *e, int32_t id)
{
    if (e->n < e->cap)
        e->ids[e->n++] = id;
}

static void heap_push(struct enc *e, struct merge_ent h)
{
    assert(e->heap_n < e->heap_cap);
    merge_heap_push(e->heap, &e->heap_n, h);
}

static void try_pair(struct enc *e, int32_t pos)
{
    const struct sym *s = &e->syms[pos];
    if (s->next < 0)
        return;
    const struct tok_mslot *m = merge_get(e->tok, s->id, e->syms[s->next].id);
    if (m)
        heap_push(e,
                  (struct merge_ent){ .rank = m->rank, .pos = (int32_t)pos, .new_id = m->new_id });
}

/* BPE over one pre-token of n bytes: each byte is one symbol in the byte-level alphabet, the
 * last carrying "</w>"; then HF BPE's Word::merge_all. */
static int bpe_word(struct enc *e, const unsigned char *w, size_t n)
{
    const struct clip_tokenizer *tok = e->tok;
    if (n > e->sym_cap) {
        size_t heap_need;
        if (!sb_mul_size(n, 3, &heap_need) || n > INT32_MAX / 4)
            return sb_fail(e->err, SB_ETOOBIG, "tokenize: word of %zu bytes", n);
        struct sym *ns = realloc(e->syms, n * sizeof(*ns));
        if (!ns)
            return sb_fail(e->err, SB_ENOMEM, "tokenize: out of memory");
        e->syms = ns;
        struct merge_ent *nh = realloc(e->heap, heap_need * sizeof(*nh));
        if (!nh)
            return sb_fail(e->err, SB_ENOMEM, "tokenize: out of memory");
        e->heap = nh;
        e->sym_cap = n;
        e->heap_cap = heap_need;
    }
    int32_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = i + 1 == n ? tok->byte_eow_id[w[i]] : tok->byte_id[w[i]];
        if (id < 0)
            id = tok->unk_id; /* HF BPE: unknown symbol -> unk, or dropped without one */
        if (id < 0)
            continue;
        e->syms[ns] = (struct sym){ .id = id, .prev = ns - 1, .next = ns + 1, .alive = true };
        ns++;
    }
    if (ns == 0)
        return SB_OK;
    e->syms[ns - 1].next = -1;
    /* Every pop either discards an entry or merges, and each merge pushes at most two, so the
     * heap never holds more than (ns - 1) + 2 * (ns - 1) < 3n entries. */
    e->heap_n = 0;
    for (int32_t i = 0; i + 1 < ns; i++)
        try_pair(e, i);
    while (e->heap_n) {
        struct merge_ent top = merge_heap_pop(e->heap, &e->heap_n);
        struct sym *s = &e->syms[top.pos];
        if (!s->alive || s->next < 0)
            continue;
        const struct tok_mslot *m = merge_get(tok, s->id, e->syms[s->next].id);
        if (!m || m->new_id != top.new_id)
            continue; /* stale: the pair changed since it was queued */
        struct sym *r = &e->syms[s->next];
        s->id = top.new_id;
        r->alive = false;
        s->next = r->next;
        if (s->next >= 0)
            e->syms[s->next].prev = (int32_t)top.pos;
        if (s->prev >= 0)
            try_pair(e, s->prev);
        try_pair(e, (int32_t)top.pos);
    }
    for (int32_t i = 0; i >= 0 && !enc_full(e); i = e->syms[i].next)
        enc_emit(e, e->syms[i].id);
    return SB_OK;
}

enum cls { CLS_SPACE, CLS_LETTER, CLS_NUMBER, CLS_OTHER };

static enum cls classify(uint32_t cp)
{
    if ((cp >= 9 && cp <= 13) || cp == 0x20 || cp == 0x85)
        return CLS_SPACE;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_ZS:
    case UTF8PROC_CATEGORY_ZL:
    case UTF8PROC_CATEGORY_ZP:
        return CLS_SPACE;
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
        return CLS_LETTER;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
        return CLS_NUMBER;
    default:
        return CLS_OTHER;
    }
}

/* Length of the contraction ('s 't 're 've 'm 'll 'd) at s, or 0. */
static size_t contraction(const unsigned char *s, size_t n)
{
    static const char *const forms[] = { "'s", "'t", "'re", "'ve", "'m", "'ll", "'d" };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        size_t l = strlen(forms[i]);
        if (l <= n && memcmp(s, forms[i], l) == 0)
            return l;
    }
    return 0;
}

/* The Split pre-tokenizer over normalized text, then BPE on each piece. */
static int pretokenize(struct enc *e, const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n && !enc_full(e)) {
        size_t adv;
        uint32_t cp = utf8_get(s + i, &adv);
        enum cls c = classify(cp);
        size_t start = i, end;
        size_t k = s[i] == '\'' ? contraction(s + i, n - i) : 0;
        if (c == CLS_SPACE) {
            i += adv;
            continue;
        } else if (k) {
            end = i + k;
        } else if (c == CLS_NUMBER) {
            end = i + adv;
        } else { /* a run of letters, or of "other" characters */
            end = i + adv;
            while (end < n) {
                uint32_t cp2 = utf8_get(s + end, &adv);
                if (classify(cp2) != c)
                    break;
                end += adv;
            }
        }
        int rc = bpe_word(e, s + start, end - start);
        if (rc)
            return rc;
        i = end;
    }
    return SB_OK;
}

static bool is_word_char(uint32_t cp)
{
    enum cls c = classify(cp);
    return cp == '_' || c == CLS_LETTER || c == CLS_NUMBER;
}

/* The longest added token (of the given normalized kind) matching at s[i..n), or NULL. */
static const struct tok_added *added_match(const struct clip_tokenizer *tok, const unsigned char *s,
                                           size_t i, size_t n, bool normalized)
{
    const struct tok_added *best = NULL;
    if (!tok->added_first[s[i]])
        return NULL;
    for (size_t k = 0; k < tok->n_added; k++) {
        const struct tok_added *a = &tok->added[k];
        if (a->normalized != normalized || a->len > n - i || (best && a->len <= best->len))
            continue;
        if (memcmp(s + i, a->content, a->len) != 0)
            continue;
        if (a->single_word) {
            /* HF discards a single_word match touching a word character */
            size_t j = i, adv;
            if (j > 0) {
                do
                    j--;
                while (j > 0 && (s[j] & 0xC0) == 0x80);
                if (is_word_char(utf8_get(s + j, &adv)))
                    continue;
            }
            if (i + a->len < n && is_word_char(utf8_get(s + i + a->len, &adv)))
                continue;
        }
        best = a;
    }
    return best;
}

/* NFC, `\s+` -> " ", per-code-point lowercase. dst needs room for 2 * (NFC length) bytes
 * (lowercase can grow 'İ' from 2 to 3 bytes; everything else keeps or shrinks). */
static int normalize(const unsigned char *s, size_t n, unsigned char **out, size_t *out_len,
                     struct sb_err *err)
{
    int rc = SB_OK;
    utf8proc_uint8_t *nfc = NULL;
    unsigned char *dst = NULL;
    utf8proc_ssize_t m = 0;
    if (n) {
        m = utf8proc_map(s, (utf8proc_ssize_t)n, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (m < 0) {
            rc = sb_fail(err, SB_EINVAL, "tokenize: normalization failed: %s", utf8proc_errmsg(m));
            goto out;
        }
    }
    size_t cap;
    if (!sb_mul_size((size_t)m, 2, &cap) || !sb_add_size(cap, 1, &cap)) {
        rc = sb_fail(err, SB_ETOOBIG, "tokenize: text too large");
        goto out;
    }
    dst = malloc(cap);
    if (!dst) {
        rc = sb_fail(err, SB_ENOMEM, "tokenize: out of memory");
        goto out;
    }
    size_t o = 0;
    bool in_space = false;
    for (size_t i = 0; i < (size_t)m;) {
        size_t adv;
        uint32_t cp = utf8_get(nfc + i, &adv);
        i += adv;
        if (classify(cp) == CLS_SPACE) {
            if (!in_space)
                dst[o++] = ' ';
            in_space = true;
            continue;
        }
        in_space = false;
        if (cp == 0x130) { /* SpecialCasing: 'İ' -> "i̇" */
            o += utf8_put((char *)dst + o, 'i');
            o += utf8_put((char *)dst + o, 0x307);
            continue;
        }
        o += utf8_put((char *)dst + o, (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
    }
    *out = dst;
    *out_len = o;
    dst = NULL;
out:
    free(nfc);
    free(dst);
    return rc;
}

/* One stretch of raw text free of non-normalized added tokens. */
static int encode_raw_piece(struct enc *e, const unsigned char *s, size_t n)
{
    unsigned char *norm = NULL;
    size_t m = 0;
    int rc = normalize(s, n, &norm, &m, e->err);
    if (rc)
        goto out;
    size_t start = 0;
    for (size_t i = 0; i < m && !enc_full(e);) {
        const struct tok_added *a = added_match(e->tok, norm, i, m, true);
        if (!a) {
            i++;
            continue;
        }
        rc = pretokenize(e, norm + start, i - start);
        if (rc)
            goto out;
        enc_emit(e, a->id);
        i += a->len;
        start = i;
    }
    if (start < m)
        rc = pretokenize(e, norm + start, m - start);
out:
    free(norm);
    return rc;
}

int clip_tokenize_len(const struct clip_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                      size_t max_ids, size_t *n_ids, struct sb_err *err)
{
    int rc = SB_OK;
    char *clean = NULL;
    struct enc e = { .tok = tok, .err = err };
    if (!tok || (!text && len) || !ids || !n_ids || max_ids < 2)
        return sb_fail(err, SB_EINVAL, "tokenize: bad arguments (max_ids %zu, need >= 2)", max_ids);
    if (len > CLIP_TOKENIZER_MAX_INPUT)
        return sb_fail(err, SB_ETOOBIG, "tokenize: text of %zu bytes (limit %zu)", len,
                       CLIP_TOKENIZER_MAX_INPUT);
    clean = malloc(len * 3 + 1);
    if (!clean) {
        rc = sb_fail(err, SB_ENOMEM, "tokenize: out of memory");
        goto out;
    }
    size_t n = utf8_sanitize(clean, (const unsigned char *)text, len);
    const unsigned char *s = (const unsigned char *)clean;
    e.ids = ids + 1;
    e.cap = max_ids - 2;
    size_t start = 0;
    for (size_t i = 0; i < n && !enc_full(&e);) {
        const struct tok_added *a = added_match(tok, s, i, n, false);
        if (!a) {
            i++;
            continue;
        }
        rc = encode_raw_piece(&e, s + start, i - start);
        if (rc)
            goto out;
        enc_emit(&e, a->id);
        i += a->len;
        start = i;
    }
    if (start < n && !enc_full(&e)) {
        rc = encode_raw_piece(&e, s + start, n - start);
        if (rc)
            goto out;
    }
    ids[0] = tok->bos_id;
    ids[e.n + 1] = tok->eos_id;
    *n_ids = e.n + 2;
out:
    free(e.syms);
    free(e.heap);
    free(clean);
    return rc;
}

int clip_tokenize(const struct clip_tokenizer *tok, const char *text, int32_t *ids, size_t max_ids,
                  size_t *n_ids, struct sb_err *err)
{
    if (!text)
        return sb_fail(err, SB_EINVAL, "tokenize: NULL text");
    return clip_tokenize_len(tok, text, strlen(text), ids, max_ids, n_ids, err);
}
