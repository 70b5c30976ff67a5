/* bpe_load.c - reading tokenizer.json (huggingface/tokenizers serialisation: model, normalizer,
 * pre_tokenizer, post_processor, decoder, added_tokens), tokenizer_config.json (bos/eos
 * tokens, chat_template) and chat_template.json into a struct bpe_tokenizer. Every element of
 * the pipeline is checked against what bpe.c implements; anything else is SB_EFORMAT.
 * model.vocab and model.merges, most of a large file (Gemma's 256k pieces and ~500k merges),
 * are read by a small JSON scanner straight into the hash tables; cJSON parses the rest. A
 * 256k-piece, 323k-merge tokenizer.json loads in ~0.24 s with a 51 MB peak RSS (cJSON for all
 * of it: 115 MB). */
#include "bpe_internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MS "\xe2\x96\x81" /* U+2581 "▁", SentencePiece's space */

/* The patterns bpe.c implements, as tokenizer.json spells them (Split's pattern.Regex). */
static const char *const PAT_GPT2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char *const PAT_QWEN2 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const PAT_LLAMA3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char *type_of(const cJSON *o)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}

static bool flag(const cJSON *o, const char *key, bool dflt)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(j) ? cJSON_IsTrue(j) : dflt;
}

static const char *str_of(const cJSON *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Pipeline elements */

static int parse_normalizer(struct bpe_tokenizer *t, const cJSON *n, struct sb_err *err)
{
    if (!n || cJSON_IsNull(n))
        return SB_OK;
    const char *type = type_of(n);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "normalizers"))
        {
            int rc = parse_normalizer(t, e, err);
            if (rc)
                return rc;
        }
        return SB_OK;
    }
    if (strcmp(type, "NFC") == 0) {
        t->nfc = true;
        return SB_OK;
    }
    if (strcmp(type, "Lowercase") == 0) { /* Siglip2Tokenizer: Sequence[Lowercase, Replace] */
        if (t->prepend_space || t->replace_space)
            return sb_fail(err, SB_EFORMAT,
                           "tokenizer.json: Lowercase normalizer after the metaspace ones");
        t->lowercase = true;
        return SB_OK;
    }
    if (strcmp(type, "Prepend") == 0) {
        const char *p = str_of(n, "prepend");
        if (!p || strcmp(p, MS) != 0 || t->replace_space)
            return sb_fail(err, SB_EFORMAT,
                           "tokenizer.json: Prepend normalizer other than '▁' "
                           "first");
        t->prepend_space = true;
        return SB_OK;
    }
    if (strcmp(type, "Replace") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const char *from = str_of(pat, "String"), *to = str_of(n, "content");
        if (!from || !to || strcmp(from, " ") != 0 || strcmp(to, MS) != 0)
            return sb_fail(err, SB_EFORMAT,
                           "tokenizer.json: Replace normalizer other than ' ' "
                           "-> '▁'");
        t->replace_space = true;
        return SB_OK;
    }
    return sb_fail(err, SB_EFORMAT, "tokenizer.json: normalizer '%.40s' is not supported", type);
}

static int add_pre(struct bpe_tokenizer *t, enum bpe_pre p, struct sb_err *err)
{
    if (t->n_pre == BPE_MAX_SPLITS)
        return sb_fail(err, SB_EFORMAT, "tokenizer.json: too many pre-tokenizers");
    t->pre[t->n_pre++] = p;
    return SB_OK;
}

static int parse_pre(struct bpe_tokenizer *t, const cJSON *p, struct sb_err *err)
{
    if (!p || cJSON_IsNull(p))
        return SB_OK;
    const char *type = type_of(p);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"))
        {
            int rc = parse_pre(t, e, err);
            if (rc)
                return rc;
        }
        return SB_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        t->byte_level = true;
        t->prefix_space = flag(p, "add_prefix_space", true);
        return flag(p, "use_regex", true) ? add_pre(t, BPE_PRE_GPT2, err) : SB_OK;
    }
    if (strcmp(type, "Digits") == 0)
        return add_pre(t, flag(p, "individual_digits", false) ? BPE_PRE_DIGITS : BPE_PRE_DIGIT_RUNS,
                       err);
    if (strcmp(type, "Split") == 0) {
        const char *re = str_of(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "Regex");
        const char *lit = str_of(cJSON_GetObjectItemCaseSensitive(p, "pattern"), "String");
        const char *behavior = str_of(p, "behavior");
        /* Gemma 3's Split(" ", MergedWithPrevious) after Replace(" ", "▁"): no space is left
         * to split on, so it is a no-op */
        if (lit && strcmp(lit, " ") == 0 && behavior &&
            strcmp(behavior, "MergedWithPrevious") == 0 && !flag(p, "invert", false) &&
            t->replace_space)
            return SB_OK;
        if (!re || !behavior || strcmp(behavior, "Isolated") != 0 || flag(p, "invert", false))
            return sb_fail(err, SB_EFORMAT,
                           "tokenizer.json: only Split with an isolated regex "
                           "is supported");
        if (strcmp(re, PAT_GPT2) == 0)
            return add_pre(t, BPE_PRE_GPT2, err);
        if (strcmp(re, PAT_QWEN2) == 0)
            return add_pre(t, BPE_PRE_QWEN2, err);
        if (strcmp(re, PAT_LLAMA3) == 0)
            return add_pre(t, BPE_PRE_LLAMA3, err);
        return sb_fail(err, SB_EFORMAT, "tokenizer.json: Split pattern '%.60s' is not supported",
                       re);
    }
    return sb_fail(err, SB_EFORMAT, "tokenizer.json: pre_tokenizer '%.40s' is not supported", type);
}

static int parse_decoder(struct bpe_tokenizer *t, const cJSON *d, struct sb_err *err)
{
    if (!d || cJSON_IsNull(d))
        return SB_OK;
    const char *type = type_of(d);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "decoders"))
        {
            int rc = parse_decoder(t, e, err);
            if (rc)
                return rc;
        }
        return SB_OK;
    }
    if (strcmp(type, "ByteLevel") == 0 || strcmp(type, "ByteFallback") == 0 ||
        strcmp(type, "Fuse") == 0)
        return SB_OK;
    if (strcmp(type, "Replace") == 0) {
        const char *from = str_of(cJSON_GetObjectItemCaseSensitive(d, "pattern"), "String");
        const char *to = str_of(d, "content");
        if (!from || !to || strcmp(from, MS) != 0 || strcmp(to, " ") != 0)
            return sb_fail(err, SB_EFORMAT,
                           "tokenizer.json: Replace decoder other than '▁' -> "
                           "' '");
        t->ms_decoder = true;
        return SB_OK;
    }
    if (strcmp(type, "Strip") == 0) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(d, "start");
        const char *content = str_of(d, "content");
        if (!content || strcmp(content, " ") != 0 || !cJSON_IsNumber(st) || st->valuedouble < 0 ||
            st->valuedouble > 16)
            return sb_fail(err, SB_EFORMAT, "tokenizer.json: Strip decoder other than ' '");
        t->strip_start = (int)st->valuedouble;
        return SB_OK;
    }
    return sb_fail(err, SB_EFORMAT, "tokenizer.json: decoder '%.40s' is not supported", type);
}

/* TemplateProcessing "single": SpecialToken ids before and after the Sequence "A". */
static int parse_post(struct bpe_tokenizer *t, const cJSON *p, struct sb_err *err)
{
    if (!p || cJSON_IsNull(p))
        return SB_OK;
    const char *type = type_of(p);
    if (strcmp(type, "ByteLevel") == 0)
        return SB_OK; /* offsets only */
    if (strcmp(type, "TemplateProcessing") != 0)
        return sb_fail(err, SB_EFORMAT, "tokenizer.json: post_processor '%.40s' is not supported",
                       type);
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    bool seen_a = false;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(p, "single"))
    {
        if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) {
            seen_a = true;
            continue;
        }
        const char *name = str_of(cJSON_GetObjectItemCaseSensitive(e, "SpecialToken"), "id");
        const cJSON *sp = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(sp, "ids");
        if (!cJSON_IsArray(ids))
            return sb_fail(err, SB_ECORRUPT,
                           "tokenizer.json: post_processor special token "
                           "'%.40s' has no ids",
                           name ? name : "?");
        const cJSON *id;
        cJSON_ArrayForEach(id, ids)
        {
            int *n = seen_a ? &t->n_post_post : &t->n_post_pre;
            int32_t *dst = seen_a ? t->post_post : t->post_pre;
            if (!cJSON_IsNumber(id) || id->valuedouble < 0 ||
                id->valuedouble >= (double)BPE_MAX_VOCAB || *n == BPE_MAX_POST)
                return sb_fail(err, SB_ECORRUPT, "tokenizer.json: bad post_processor ids");
            dst[(*n)++] = (int32_t)id->valuedouble;
        }
    }
    return SB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Model, added tokens */

static int cmp_added(const void *a, const void *b)
{
    const struct bpe_added *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id);
}

static int parse_added(struct bpe_tokenizer *t, const cJSON *arr, struct sb_err *err)
{
    int n = cJSON_GetArraySize(arr);
    if (n <= 0)
        return SB_OK;
    if ((size_t)n > BPE_MAX_ADDED)
        return sb_fail(err, SB_ETOOBIG, "tokenizer.json: %d added tokens", n);
    t->added = calloc((size_t)n, sizeof(*t->added));
    if (!t->added)
        return sb_fail(err, SB_ENOMEM, "no memory for added tokens");
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const char *content = str_of(e, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!content || !content[0] || !cJSON_IsNumber(id) || id->valuedouble < 0 ||
            id->valuedouble >= (double)BPE_MAX_VOCAB)
            return sb_fail(err, SB_ECORRUPT, "tokenizer.json: bad added token");
        struct bpe_added *a = &t->added[t->n_added];
        a->len = strlen(content);
        a->content = sb_strdup(content);
        if (!a->content)
            return sb_fail(err, SB_ENOMEM, "no memory for added tokens");
        t->n_added++;
        a->id = (int32_t)id->valuedouble;
        a->special = flag(e, "special", false);
        a->lstrip = flag(e, "lstrip", false);
        a->rstrip = flag(e, "rstrip", false);
        t->added_first[(unsigned char)content[0]] = 1;
        int rc = bpe_vocab_put(t, content, a->len, a->id, err);
        if (rc)
            return rc;
    }
    qsort(t->added, t->n_added, sizeof(*t->added), cmp_added);
    return SB_OK;
}

/* Merge `rank`: the pair (a, b), both and a+b in the vocabulary. */
static int put_merge(struct bpe_tokenizer *t, const char *a, size_t la, const char *b, size_t lb,
                     uint32_t rank, struct sb_err *err)
{
    char buf[2 * BPE_MAX_TOKEN + 2];
    if (la + lb > 2 * BPE_MAX_TOKEN)
        return sb_fail(err, SB_ECORRUPT, "tokenizer.json: merge %u is too long", rank);
    int32_t ia = bpe_vocab_get(t, a, la), ib = bpe_vocab_get(t, b, lb);
    memcpy(buf, a, la);
    memcpy(buf + la, b, lb);
    int32_t ic = bpe_vocab_get(t, buf, la + lb);
    if (ia < 0 || ib < 0 || ic < 0)
        return sb_fail(err, SB_ECORRUPT,
                       "tokenizer.json: merge %u names a token not in the "
                       "vocabulary",
                       rank);
    return bpe_merge_put(t, ia, ib, rank, ic, err);
}

/* A merge "a b" (string form): exactly one space. */
static int put_merge_str(struct bpe_tokenizer *t, const char *s, size_t len, uint32_t rank,
                         struct sb_err *err)
{
    const char *sp = memchr(s, ' ', len);
    if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s)))
        return sb_fail(err, SB_ECORRUPT, "tokenizer.json: merge %u '%.40s' is not 'a b'", rank, s);
    return put_merge(t, s, (size_t)(sp - s), sp + 1, len - (size_t)(sp + 1 - s), rank, err);
}

/* A merge "a b" (string form) or ["a", "b"] (tokenizers >= 0.20), from the cJSON tree. */
static int parse_merge(struct bpe_tokenizer *t, const cJSON *m, uint32_t rank, struct sb_err *err)
{
    if (cJSON_IsString(m))
        return put_merge_str(t, m->valuestring, strlen(m->valuestring), rank, err);
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
        cJSON_IsString(cJSON_GetArrayItem(m, 0)) && cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
        const char *a = cJSON_GetArrayItem(m, 0)->valuestring;
        const char *b = cJSON_GetArrayItem(m, 1)->valuestring;
        return put_merge(t, a, strlen(a), b, strlen(b), rank, err);
    }
    return sb_fail(err, SB_ECORRUPT, "tokenizer.json: merge %u is not a pair", rank);
}

/* ------------------------------------------------------------------------------------------ */
/* model.vocab and model.merges straight from the text. A 256k-piece tokenizer.json (Gemma's)
 * holds ~800k strings there, ~100 MB as a cJSON tree; they are read here instead and blanked
 * (to {} and [] plus spaces) in a private copy of the text that cJSON then parses. */

struct scan {
    const char *p, *end;
};

static void scan_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool scan_char(struct scan *s, char c)
{
    scan_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

static int hex4(const char *p, uint32_t *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        *v = *v << 4 | (uint32_t)d;
    }
    return 0;
}

/* A JSON string at s->p, unescaped into buf (cap bytes; NULL to skip). -1 when malformed or
 * longer than cap. A lone surrogate becomes U+FFFD, as serde_json's lossy reading would not
 * accept it either way: no real tokenizer.json has one. */
static int scan_string(struct scan *s, char *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    if (!scan_char(s, '"'))
        return -1;
    while (s->p < s->end && *s->p != '"') {
        const char *run = s->p; /* plain bytes, copied at once */
        while (s->p < s->end && *s->p != '"' && *s->p != '\\' && (unsigned char)*s->p >= 0x20)
            s->p++;
        if (s->p > run) {
            size_t k = (size_t)(s->p - run);
            if (buf && n + k > cap)
                return -1;
            if (buf)
                memcpy(buf + n, run, k);
            n += k;
            continue;
        }
        char c = *s->p++;
        char tmp[4];
        size_t k = 1;
        tmp[0] = c;
        if ((unsigned char)c < 0x20)
            return -1;
        if (c == '\\') {
            if (s->p >= s->end)
                return -1;
            c = *s->p++;
            switch (c) {
            case '"':
            case '\\':
            case '/':
                tmp[0] = c;
                break;
            case 'b':
                tmp[0] = '\b';
                break;
            case 'f':
                tmp[0] = '\f';
                break;
            case 'n':
                tmp[0] = '\n';
                break;
            case 'r':
                tmp[0] = '\r';
                break;
            case 't':
                tmp[0] = '\t';
                break;
            case 'u': {
                uint32_t cp, lo;
                if (s->end - s->p < 4 || hex4(s->p, &cp))
                    return -1;
                s->p += 4;
                if (cp >= 0xd800 && cp < 0xdc00 && s->end - s->p >= 6 && s->p[0] == '\\' &&
                    s->p[1] == 'u' && !hex4(s->p + 2, &lo) && lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    s->p += 6;
                } else if (cp >= 0xd800 && cp < 0xe000) {
                    cp = 0xfffd;
                }
                k = bpe_utf8_put(tmp, cp);
                break;
            }
            default:
                return -1;
            }
        }
        if (buf) {
            if (n + k > cap)
                return -1;
            memcpy(buf + n, tmp, k);
        }
        n += k;
    }
    if (s->p >= s->end)
        return -1;
    s->p++;
    if (len)
        *len = n;
    return 0;
}

/* Any JSON value, not kept. */
static int scan_skip(struct scan *s, int depth)
{
    scan_ws(s);
    if (s->p >= s->end || depth > 64)
        return -1;
    char c = *s->p;
    if (c == '"')
        return scan_string(s, NULL, 0, NULL);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        s->p++;
        if (scan_char(s, close))
            return 0;
        do {
            if (c == '{' && (scan_string(s, NULL, 0, NULL) || !scan_char(s, ':')))
                return -1;
            if (scan_skip(s, depth + 1))
                return -1;
        } while (scan_char(s, ','));
        return scan_char(s, close) ? 0 : -1;
    }
    const char *start = s->p; /* a number or literal, up to what can follow it */
    while (s->p < s->end && *s->p != ',' && *s->p != ']' && *s->p != '}' && *s->p != ' ' &&
           *s->p != '\t' && *s->p != '\r' && *s->p != '\n')
        s->p++;
    return s->p > start ? 0 : -1;
}

/* A non-negative integer id (what vocab values are). */
static int scan_id(struct scan *s, int32_t *id)
{
    scan_ws(s);
    int64_t v = 0;
    const char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9' && v < (int64_t)BPE_MAX_VOCAB)
        v = v * 10 + (*s->p++ - '0');
    if (s->p == start || v >= (int64_t)BPE_MAX_VOCAB ||
        (s->p < s->end && strchr(".eE0123456789", *s->p)))
        return -1;
    *id = (int32_t)v;
    return 0;
}

/* At the '{' of an object: finds member `key`, leaving s at its value. */
static bool scan_find(struct scan *s, const char *key)
{
    char name[64];
    size_t n;
    if (!scan_char(s, '{') || scan_char(s, '}'))
        return false;
    do {
        if (scan_string(s, name, sizeof(name) - 1, &n) || !scan_char(s, ':'))
            return false;
        name[n] = '\0';
        if (strlen(name) == n && strcmp(name, key) == 0) {
            scan_ws(s);
            return true;
        }
        if (scan_skip(s, 1))
            return false;
    } while (scan_char(s, ','));
    return false;
}

static int scan_vocab(struct bpe_tokenizer *t, struct scan *s, struct sb_err *err)
{
    char tok[BPE_MAX_TOKEN + 1];
    size_t n;
    int32_t id;
    if (!scan_char(s, '{'))
        return sb_fail(err, SB_ECORRUPT, "tokenizer.json: model.vocab is not an object");
    if (scan_char(s, '}'))
        return SB_OK;
    do {
        if (scan_string(s, tok, BPE_MAX_TOKEN, &n) || !scan_char(s, ':'))
            return sb_fail(err, SB_ECORRUPT, "tokenizer.json: bad model.vocab entry");
        tok[n] = '\0';
        if (scan_id(s, &id))
            return sb_fail(err, SB_ECORRUPT, "tokenizer.json: vocab id of '%.40s' is bad", tok);
        int rc = bpe_vocab_put(t, tok, n, id, err);
        if (rc)
            return rc;
    } while (scan_char(s, ','));
    return scan_char(s, '}') ? SB_OK : sb_fail(err, SB_ECORRUPT, "tokenizer.json: bad model.vocab");
}

static int scan_merges(struct bpe_tokenizer *t, struct scan *s, struct sb_err *err)
{
    char a[2 * BPE_MAX_TOKEN + 2], b[BPE_MAX_TOKEN + 1];
    size_t la, lb;
    uint32_t rank = 0;
    if (!scan_char(s, '['))
        return sb_fail(err, SB_ECORRUPT, "tokenizer.json: model.merges is not an array");
    if (scan_char(s, ']'))
        return SB_OK;
    do {
        int rc;
        scan_ws(s);
        if (s->p < s->end && *s->p == '"') {
            if (scan_string(s, a, sizeof(a) - 1, &la))
                return sb_fail(err, SB_ECORRUPT, "tokenizer.json: merge %u is too long", rank);
            a[la] = '\0';
            rc = put_merge_str(t, a, la, rank, err);
        } else {
            if (!scan_char(s, '[') || scan_string(s, a, BPE_MAX_TOKEN, &la) || !scan_char(s, ',') ||
                scan_string(s, b, BPE_MAX_TOKEN, &lb) || !scan_char(s, ']'))
                return sb_fail(err, SB_ECORRUPT, "tokenizer.json: merge %u is not a pair", rank);
            rc = put_merge(t, a, la, b, lb, rank, err);
        }
        if (rc)
            return rc;
        rank++;
    } while (scan_char(s, ','));
    return scan_char(s, ']') ? SB_OK
                             : sb_fail(err, SB_ECORRUPT, "tokenizer.json: bad model.merges");
}

/* Blanks the value doc[from, to) into "{}" or "[]" and spaces. */
static void blank(char *doc, size_t from, size_t to)
{
    char close = doc[from] == '{' ? '}' : ']';
    memset(doc + from + 1, ' ', to - from - 1);
    doc[from + 1] = close;
}

/* Reads model.vocab, then model.merges, from doc and blanks them there. When the text is not
 * shaped so, nothing is read and the cJSON path (parse_model) reads them or says what is
 * wrong. */
static int scan_model(struct bpe_tokenizer *t, char *doc, size_t len, struct sb_err *err)
{
    struct scan s = { doc, doc + len };
    if (!scan_find(&s, "model"))
        return SB_OK;
    struct scan v = s, m = s;
    if (!scan_find(&v, "vocab") || !scan_find(&m, "merges") || *v.p != '{' || *m.p != '[')
        return SB_OK;
    size_t v0 = (size_t)(v.p - doc), m0 = (size_t)(m.p - doc);
    struct scan v_end = v, m_end = m;
    if (scan_skip(&v_end, 0) || scan_skip(&m_end, 0))
        return SB_OK; /* not JSON: cJSON will say so */
    /* entries are about one per ':' (vocab) and per ',' (merges): size the tables once */
    size_t n_vocab = 0, n_merges = 1;
    for (const char *p = v.p; p < v_end.p; p++)
        n_vocab += *p == ':';
    for (const char *p = m.p; p < m_end.p; p++)
        n_merges += *p == ',';
    int rc = bpe_reserve(t, n_vocab, n_merges, err);
    if (!rc)
        rc = scan_vocab(t, &v, err);
    if (!rc)
        rc = scan_merges(t, &m, err);
    if (rc)
        return rc;
    blank(doc, v0, (size_t)(v.p - doc));
    blank(doc, m0, (size_t)(m.p - doc));
    return SB_OK;
}

static int parse_model(struct bpe_tokenizer *t, const cJSON *m, struct sb_err *err)
{
    if (strcmp(type_of(m), "BPE") != 0)
        return sb_fail(err, SB_EFORMAT, "tokenizer.json: model type '%.40s' is not BPE",
                       type_of(m));
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    const char *cont = str_of(m, "continuing_subword_prefix");
    const char *eow = str_of(m, "end_of_word_suffix");
    if ((dropout && !cJSON_IsNull(dropout)) || (cont && cont[0]) || (eow && eow[0]))
        return sb_fail(err, SB_EFORMAT,
                       "tokenizer.json: BPE with dropout, subword prefix or "
                       "word suffix is not supported");
    t->byte_fallback = flag(m, "byte_fallback", false);
    t->fuse_unk = flag(m, "fuse_unk", false);
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    if (!cJSON_IsObject(vocab))
        return sb_fail(err, SB_ECORRUPT, "tokenizer.json: model.vocab is not an object");
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab)
    {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= (double)BPE_MAX_VOCAB ||
            e->valuedouble != (double)(int32_t)e->valuedouble)
            return sb_fail(err, SB_ECORRUPT, "tokenizer.json: vocab id of '%.40s' is bad",
                           e->string);
        int rc = bpe_vocab_put(t, e->string, strlen(e->string), (int32_t)e->valuedouble, err);
        if (rc)
            return rc;
    }
    uint32_t rank = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(m, "merges"))
    {
        int rc = parse_merge(t, e, rank++, err);
        if (rc)
            return rc;
    }
    const char *unk = str_of(m, "unk_token");
    t->unk_id = unk ? bpe_vocab_get(t, unk, strlen(unk)) : -1;
    return SB_OK;
}

/* byte_id: the GPT-2 alphabet character of each byte, or the <0xXX> token. */
static int fill_bytes(struct bpe_tokenizer *t, struct sb_err *err)
{
    for (int b = 0; b < 256; b++) {
        char s[8];
        size_t n;
        if (t->byte_level) {
            n = bpe_utf8_put(s, bpe_byte_to_unicode((uint8_t)b));
        } else {
            snprintf(s, sizeof(s), "<0x%02X>", b);
            n = 6;
        }
        t->byte_id[b] = bpe_vocab_get(t, s, n);
        if (t->byte_level && t->byte_id[b] < 0)
            return sb_fail(err, SB_ECORRUPT,
                           "tokenizer.json: byte-level vocabulary lacks byte "
                           "0x%02x",
                           b);
    }
    return SB_OK;
}

/* tokenizer_config.json: bos/eos tokens (a string or {"content": ...}), chat_template (a
 * string, or a list of {name, template} whose "default" entry counts). */
static const char *token_name(const cJSON *j)
{
    if (cJSON_IsString(j))
        return j->valuestring;
    return str_of(j, "content");
}

static int set_template(struct bpe_tokenizer *t, const cJSON *ct, struct sb_err *err)
{
    const char *s = cJSON_IsString(ct) ? ct->valuestring : NULL;
    if (cJSON_IsArray(ct)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, ct)
        {
            const char *name = str_of(e, "name");
            if (name && strcmp(name, "default") == 0)
                s = str_of(e, "template");
        }
    }
    if (!s)
        return SB_OK;
    free(t->chat_template);
    t->chat_template = sb_strdup(s);
    return t->chat_template ? SB_OK : sb_fail(err, SB_ENOMEM, "no memory for the chat template");
}

static int parse_config(struct bpe_tokenizer *t, const char *json, size_t len, struct sb_err *err)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    int rc = SB_OK;
    if (!cJSON_IsObject(root)) {
        rc = sb_fail(err, SB_ECORRUPT, "tokenizer_config.json: not a JSON object");
        goto out;
    }
    const char *bos = token_name(cJSON_GetObjectItemCaseSensitive(root, "bos_token"));
    const char *eos = token_name(cJSON_GetObjectItemCaseSensitive(root, "eos_token"));
    if (bos)
        t->bos_id = bpe_vocab_get(t, bos, strlen(bos));
    if (eos)
        t->eos_id = bpe_vocab_get(t, eos, strlen(eos));
    rc = set_template(t, cJSON_GetObjectItemCaseSensitive(root, "chat_template"), err);
out:
    cJSON_Delete(root);
    return rc;
}

/* bpe_load_mem on doc, which it owns: scan_model blanks vocab and merges in it, and it is
 * freed as soon as cJSON has parsed the rest (the file need not outlive the tree). */
static int load_owned(char *doc, size_t json_len, const char *config_json, size_t config_len,
                      struct bpe_tokenizer **out, struct sb_err *err)
{
    struct bpe_tokenizer *t = calloc(1, sizeof(*t));
    cJSON *root = NULL;
    int rc = SB_OK;
    if (!t) {
        rc = sb_fail(err, SB_ENOMEM, "no memory for a tokenizer");
        goto out;
    }
    t->unk_id = t->bos_id = t->eos_id = -1;
    rc = scan_model(t, doc, json_len, err);
    if (rc)
        goto out;
    root = cJSON_ParseWithLength(doc, json_len);
    free(doc);
    doc = NULL;
    if (!cJSON_IsObject(root)) {
        rc = sb_fail(err, SB_ECORRUPT, "tokenizer.json: not a JSON object");
        goto out;
    }
    rc = parse_model(t, cJSON_GetObjectItemCaseSensitive(root, "model"), err);
    if (!rc)
        rc = parse_added(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), err);
    if (!rc)
        rc = parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err);
    if (!rc)
        rc = parse_pre(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err);
    if (!rc)
        rc = parse_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), err);
    if (!rc)
        rc = parse_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), err);
    if (!rc && t->byte_level && (t->prepend_space || t->replace_space || t->byte_fallback))
        rc = sb_fail(err, SB_EFORMAT, "tokenizer.json: byte-level mixed with metaspace parts");
    /* metaspace: Llama 2 prepends "▁", Gemma does not (its first word has no "▁") */
    if (!rc && !t->byte_level && !(t->replace_space && t->ms_decoder))
        rc = sb_fail(err, SB_EFORMAT,
                     "tokenizer.json: neither byte-level nor Llama-2 / Gemma "
                     "metaspace style");
    if (!rc && t->byte_level && t->lowercase)
        rc = sb_fail(err, SB_EFORMAT, "tokenizer.json: byte-level with a Lowercase normalizer");
    if (!rc)
        rc = fill_bytes(t, err);
    if (!rc)
        rc = bpe_finish(t, err);
    for (int i = 0; !rc && i < t->n_post_pre + t->n_post_post; i++) {
        int32_t id = i < t->n_post_pre ? t->post_pre[i] : t->post_post[i - t->n_post_pre];
        if ((size_t)id >= t->n_ids)
            rc = sb_fail(err, SB_ECORRUPT, "tokenizer.json: post_processor id %d is unknown",
                         (int)id);
    }
    if (!rc && config_json)
        rc = parse_config(t, config_json, config_len, err);
out:
    free(doc);
    cJSON_Delete(root);
    if (rc) {
        bpe_free(t);
        return rc;
    }
    *out = t;
    return SB_OK;
}

int bpe_load_mem(const char *tokenizer_json, size_t json_len, const char *config_json,
                 size_t config_len, struct bpe_tokenizer **out, struct sb_err *err)
{
    if (json_len > BPE_MAX_FILE || config_len > BPE_MAX_FILE)
        return sb_fail(err, SB_ETOOBIG, "tokenizer files over %zu bytes", BPE_MAX_FILE);
    char *doc = malloc(json_len ? json_len : 1);
    if (!doc)
        return sb_fail(err, SB_ENOMEM, "no memory for tokenizer.json");
    memcpy(doc, tokenizer_json, json_len);
    return load_owned(doc, json_len, config_json, config_len, out, err);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int bpe_load(const char *model_dir, struct bpe_tokenizer **out, struct sb_err *err)
{
    char path[4096];
    unsigned char *json = NULL, *cfg = NULL, *tmpl = NULL;
    size_t json_len = 0, cfg_len = 0, tmpl_len = 0;
    struct bpe_tokenizer *t = NULL;
    cJSON *root = NULL;
    int rc = SB_OK;
    snprintf(path, sizeof(path), "%s/tokenizer.json", model_dir);
    if (!exists(path)) {
        rc = sb_fail(err, SB_ENOENT, "'%s': no tokenizer.json", model_dir);
        goto out;
    }
    rc = sb_read_file(path, BPE_MAX_FILE, &json, &json_len, err);
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", model_dir);
    if (!rc && exists(path))
        rc = sb_read_file(path, BPE_MAX_FILE, &cfg, &cfg_len, err);
    if (!rc) {
        rc = load_owned((char *)json, json_len, (const char *)cfg, cfg_len, &t, err);
        json = NULL; /* freed by load_owned */
    }
    /* chat_template.json (newer processors keep the template there) wins */
    snprintf(path, sizeof(path), "%s/chat_template.json", model_dir);
    if (!rc && exists(path)) {
        rc = sb_read_file(path, BPE_MAX_FILE, &tmpl, &tmpl_len, err);
        if (!rc) {
            root = cJSON_ParseWithLength((const char *)tmpl, tmpl_len);
            if (!cJSON_IsObject(root))
                rc = sb_fail(err, SB_ECORRUPT, "chat_template.json: not a JSON object");
            else
                rc = set_template(t, cJSON_GetObjectItemCaseSensitive(root, "chat_template"), err);
        }
    }
    if (!rc) {
        *out = t;
        t = NULL;
    }
out:
    bpe_free(t);
    cJSON_Delete(root);
    free(json);
    free(cfg);
    free(tmpl);
    return rc;
}

void bpe_free(struct bpe_tokenizer *t)
{
    if (!t)
        return;
    free(t->strs);
    free(t->vslots);
    free(t->mslots);
    free(t->id_off);
    free(t->is_special);
    for (size_t i = 0; i < t->n_added; i++)
        free(t->added[i].content);
    free(t->added);
    free(t->chat_template);
    free(t);
}
