/* tokenizer_load.c - reading CLIP tokenizers from Hugging Face files: tokenizer.json (the fast
 * tokenizer) or vocab.json + merges.txt (the slow one), plus tokenizer_config.json and
 * special_tokens_map.json. Every file is untrusted: wrong types, out-of-range ids, merges
 * naming unknown tokens and truncated JSON give SB_ECORRUPT / SB_EFORMAT, never a crash.
 *
 * What HF does that we copy:
 * - merges.txt: CLIPTokenizer reads `text.strip().split("\n")[1 : 48894 + 1]`, i.e. drops the
 *   first line (the "#version" header) and uses at most 48894 merges; the fast tokenizer it
 *   converts to (CLIPConverter) uses the same list. A line that does not split into exactly
 *   two tokens would make the conversion fail, so it is an error here.
 * - tokenizers' BPE builder refuses a merge whose parts or result are not in the vocabulary
 *   (MergeTokenOutOfVocabulary); duplicate merges: the later rank wins (HashMap insert).
 * - tokenizer.json merges are "a b" strings (tokenizers < 0.20) or ["a", "b"] pairs.
 * - The tokenizer.json pipeline must be CLIP's (normalizer, Split regex, ByteLevel, "</w>");
 *   anything else is SB_EFORMAT rather than a silently different tokenization. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "shoebox/err.h"
#include "shoebox/tokenizer.h"
#include "shoebox/util.h"
#include "tokenizer_internal.h"

#define CLIP_SPLIT_REGEX "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+"

/* Puts "what: " in front of err's message. */
static int err_prefix(struct sb_err *err, int rc, const char *what)
{
    if (err && rc) {
        char tmp[sizeof(err->msg)];
        memcpy(tmp, err->msg, sizeof(tmp));
        tmp[sizeof(tmp) - 1] = '\0';
        int n = snprintf(err->msg, sizeof(err->msg), "load tokenizer '%s': ", what);
        if (n >= 0 && (size_t)n < sizeof(err->msg))
            memcpy(err->msg + n, tmp, strnlen(tmp, sizeof(err->msg) - (size_t)n - 1) + 1);
        err->msg[sizeof(err->msg) - 1] = '\0';
    }
    return rc;
}

static int get_id(const cJSON *v, int32_t *out)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < (double)TOK_MAX_ID) || floor(d) != d)
        return -1;
    *out = (int32_t)d;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Vocabulary and merges */

static int parse_vocab(struct clip_tokenizer *tok, const cJSON *vocab, struct sb_err *err)
{
    if (!cJSON_IsObject(vocab))
        return sb_fail(err, SB_ECORRUPT, "vocab is not a JSON object");
    size_t n = 0;
    for (const cJSON *it = vocab->child; it; it = it->next) {
        int32_t id;
        if (!it->string)
            return sb_fail(err, SB_ECORRUPT, "vocab entry without a key");
        if (get_id(it, &id))
            return sb_fail(err, SB_ECORRUPT, "vocab entry '%.60s' is not an id in [0, %ld)",
                           it->string, (long)TOK_MAX_ID);
        int rc = tok_vocab_put(tok, it->string, strlen(it->string), id, err);
        if (rc)
            return rc;
        n++;
    }
    if (n == 0)
        return sb_fail(err, SB_ECORRUPT, "empty vocab");
    return SB_OK;
}

static int add_merge(struct clip_tokenizer *tok, const char *a, size_t alen, const char *b,
                     size_t blen, uint32_t rank, struct sb_err *err)
{
    char buf[2 * TOK_MAX_TOKEN];
    if (alen == 0 || blen == 0 || alen > TOK_MAX_TOKEN || blen > TOK_MAX_TOKEN)
        return sb_fail(err, SB_ECORRUPT, "merge %u: bad token length", rank + 1);
    int32_t ia = tok_vocab_get(tok, a, alen), ib = tok_vocab_get(tok, b, blen);
    memcpy(buf, a, alen);
    memcpy(buf + alen, b, blen);
    int32_t inew = tok_vocab_get(tok, buf, alen + blen);
    if (ia < 0 || ib < 0 || inew < 0)
        return sb_fail(err, SB_ECORRUPT, "merge %u '%.*s %.*s' names a token not in the vocab",
                       rank + 1, (int)(alen > 40 ? 40 : alen), a, (int)(blen > 40 ? 40 : blen), b);
    return tok_merge_put(tok, ia, ib, rank, inew, err);
}

static bool py_space(unsigned char c)
{
    /* Python's str.split()/strip() whitespace within ASCII */
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F);
}

static int parse_merges_txt(struct clip_tokenizer *tok, const char *s, size_t n, struct sb_err *err)
{
    while (n && py_space((unsigned char)s[n - 1])) /* .strip() */
        n--;
    while (n && py_space((unsigned char)*s)) {
        s++;
        n--;
    }
    const char *end = s + n;
    const char *line = s;
    uint32_t rank = 0;
    bool first = true;
    while (line < end && rank < TOK_CLIP_MERGES) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *le = nl ? nl : end;
        if (first) { /* the "#version: 0.2" header, skipped whatever it says */
            first = false;
        } else {
            const char *part[3];
            size_t plen[3], np = 0;
            for (const char *p = line; p < le;) {
                while (p < le && py_space((unsigned char)*p))
                    p++;
                if (p == le)
                    break;
                const char *q = p;
                while (q < le && !py_space((unsigned char)*q))
                    q++;
                if (np < 3) {
                    part[np] = p;
                    plen[np] = (size_t)(q - p);
                }
                np++;
                p = q;
            }
            if (np != 2)
                return sb_fail(err, SB_ECORRUPT, "merges line %u has %zu tokens, expected 2",
                               rank + 2, np);
            int rc = add_merge(tok, part[0], plen[0], part[1], plen[1], rank, err);
            if (rc)
                return rc;
            rank++;
        }
        if (!nl)
            break;
        line = nl + 1;
    }
    return SB_OK;
}

static int parse_merges_json(struct clip_tokenizer *tok, const cJSON *merges, struct sb_err *err)
{
    if (!cJSON_IsArray(merges))
        return sb_fail(err, SB_ECORRUPT, "model.merges is not an array");
    uint32_t rank = 0;
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        if (rank >= TOK_MAX_MERGES)
            return sb_fail(err, SB_ETOOBIG, "more than %zu merges", TOK_MAX_MERGES);
        int rc;
        if (cJSON_IsString(m)) {
            const char *a = m->valuestring;
            const char *sp = strchr(a, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return sb_fail(err, SB_ECORRUPT, "merge %u '%.60s' is not \"a b\"", rank + 1, a);
            rc = add_merge(tok, a, (size_t)(sp - a), sp + 1, strlen(sp + 1), rank, err);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            const char *a = m->child->valuestring, *b = m->child->next->valuestring;
            rc = add_merge(tok, a, strlen(a), b, strlen(b), rank, err);
        } else {
            return sb_fail(err, SB_ECORRUPT, "merge %u is neither \"a b\" nor [a, b]", rank + 1);
        }
        if (rc)
            return rc;
    }
    return SB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Special tokens */

struct special {
    char *bos, *eos, *unk, *pad; /* contents, owned; NULL = unset */
    bool bos_norm, eos_norm, unk_norm, pad_norm;
    int64_t max_length; /* -1 = unset */
};

static void special_release(struct special *sp)
{
    free(sp->bos);
    free(sp->eos);
    free(sp->unk);
    free(sp->pad);
}

static bool json_bool(const cJSON *obj, const char *key, bool dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* A special token given as "text" or {"content": "text", "normalized": b, ...}. tokenizers'
 * AddedToken defaults to normalized=true. */
static int special_get(const cJSON *cfg, const char *key, char **content, bool *normalized,
                       struct sb_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = NULL;
    bool norm = true;
    if (!v || cJSON_IsNull(v))
        return SB_OK;
    if (cJSON_IsString(v)) {
        s = v->valuestring;
    } else if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (!cJSON_IsString(c))
            return sb_fail(err, SB_ECORRUPT, "%s has no string content", key);
        s = c->valuestring;
        norm = json_bool(v, "normalized", true);
    } else {
        return sb_fail(err, SB_ECORRUPT, "%s is neither a string nor an object", key);
    }
    if (strlen(s) == 0 || strlen(s) > TOK_MAX_TOKEN)
        return sb_fail(err, SB_ECORRUPT, "%s has a bad length", key);
    char *d = sb_strdup(s);
    if (!d)
        return sb_fail(err, SB_ENOMEM, "out of memory");
    free(*content);
    *content = d;
    *normalized = norm;
    return SB_OK;
}

/* tokenizer_config.json or special_tokens_map.json. with_added: also added_tokens_decoder. */
static int parse_config(struct clip_tokenizer *tok, struct special *sp, const char *text,
                        size_t len, bool with_added, struct sb_err *err)
{
    int rc = SB_OK;
    cJSON *cfg = cJSON_ParseWithLength(text, len);
    if (!cfg || !cJSON_IsObject(cfg)) {
        rc = sb_fail(err, SB_ECORRUPT, "not a JSON object");
        goto out;
    }
    if ((rc = special_get(cfg, "bos_token", &sp->bos, &sp->bos_norm, err)) ||
        (rc = special_get(cfg, "eos_token", &sp->eos, &sp->eos_norm, err)) ||
        (rc = special_get(cfg, "unk_token", &sp->unk, &sp->unk_norm, err)) ||
        (rc = special_get(cfg, "pad_token", &sp->pad, &sp->pad_norm, err)))
        goto out;
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(cfg, "model_max_length");
    if (cJSON_IsNumber(ml) && ml->valuedouble >= 2 && ml->valuedouble <= TOK_MAX_CTX)
        sp->max_length = (int64_t)ml->valuedouble; /* HF writes 1e30 for "no limit" */
    const cJSON *atd = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
    if (with_added && cJSON_IsObject(atd)) {
        for (const cJSON *it = atd->child; it; it = it->next) {
            int64_t id;
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
            if (!it->string || sb_parse_i64(it->string, 0, TOK_MAX_ID - 1, &id, NULL) ||
                !cJSON_IsString(c) || !cJSON_IsObject(it)) {
                rc = sb_fail(err, SB_ECORRUPT, "bad added_tokens_decoder entry");
                goto out;
            }
            rc = tok_add_token(tok, c->valuestring, strlen(c->valuestring), (int32_t)id,
                               json_bool(it, "normalized", true),
                               json_bool(it, "single_word", false), err);
            if (rc)
                goto out;
        }
    }
out:
    cJSON_Delete(cfg);
    return rc;
}

/* Resolves a special token's content to an id (vocabulary or added tokens). */
static int special_id(struct clip_tokenizer *tok, const char *content, bool normalized,
                      bool required, int32_t *out, struct sb_err *err)
{
    int32_t id = tok_vocab_get(tok, content, strlen(content));
    if (id < 0) {
        if (required)
            return sb_fail(err, SB_ECORRUPT, "special token '%.60s' is not in the vocab", content);
        return SB_OK;
    }
    /* HF adds the special tokens to its added vocabulary, so typed ones are recognised */
    int rc = tok_add_token(tok, content, strlen(content), id, normalized, false, err);
    if (rc)
        return rc;
    *out = id;
    return SB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* tokenizer.json */

static const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool str_is(const char *s, const char *want)
{
    return s && strcmp(s, want) == 0;
}

/* Sequence[NFC, Replace(Regex "\s+", " "), Lowercase], as CLIPConverter writes it. */
static int check_normalizer(const cJSON *n, struct sb_err *err)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
    if (!str_is(json_str(n, "type"), "Sequence") || !cJSON_IsArray(list) ||
        cJSON_GetArraySize(list) != 3)
        goto bad;
    const cJSON *a = list->child, *b = a->next, *c = b->next;
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(b, "pattern");
    if (!str_is(json_str(a, "type"), "NFC") || !str_is(json_str(b, "type"), "Replace") ||
        !str_is(json_str(pat, "Regex"), "\\s+") || !str_is(json_str(b, "content"), " ") ||
        !str_is(json_str(c, "type"), "Lowercase"))
        goto bad;
    return SB_OK;
bad:
    return sb_fail(err, SB_EFORMAT,
                   "normalizer is not CLIP's Sequence[NFC, Replace(\\s+), Lowercase]");
}

/* Sequence[Split(CLIP regex, Removed, invert), ByteLevel(add_prefix_space=false)]. */
static int check_pre_tokenizer(const cJSON *p, struct sb_err *err)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    if (!str_is(json_str(p, "type"), "Sequence") || !cJSON_IsArray(list) ||
        cJSON_GetArraySize(list) != 2)
        goto bad;
    const cJSON *a = list->child, *b = a->next;
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(a, "pattern");
    const cJSON *inv = cJSON_GetObjectItemCaseSensitive(a, "invert");
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(b, "add_prefix_space");
    if (!str_is(json_str(a, "type"), "Split") ||
        !str_is(json_str(pat, "Regex"), CLIP_SPLIT_REGEX) ||
        !str_is(json_str(a, "behavior"), "Removed") || !cJSON_IsTrue(inv) ||
        !str_is(json_str(b, "type"), "ByteLevel") || !cJSON_IsFalse(aps))
        goto bad;
    return SB_OK;
bad:
    return sb_fail(err, SB_EFORMAT,
                   "pre_tokenizer is not CLIP's Sequence[Split(regex), ByteLevel] (an old "
                   "pre-4.17 CLIP tokenizer.json? HF refuses those too)");
}

static int check_model(const cJSON *m, struct sb_err *err)
{
    const char *type = json_str(m, "type");
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    const cJSON *prefix = cJSON_GetObjectItemCaseSensitive(m, "continuing_subword_prefix");
    if (type && strcmp(type, "BPE") != 0)
        return sb_fail(err, SB_EFORMAT, "model type '%.40s' is not BPE", type);
    if (!str_is(json_str(m, "end_of_word_suffix"), "</w>"))
        return sb_fail(err, SB_EFORMAT, "model.end_of_word_suffix is not \"</w>\"");
    if (prefix && !cJSON_IsNull(prefix) && !str_is(json_str(m, "continuing_subword_prefix"), ""))
        return sb_fail(err, SB_EFORMAT, "model.continuing_subword_prefix is not empty");
    if (drop && !cJSON_IsNull(drop))
        return sb_fail(err, SB_EFORMAT, "model.dropout is set (not deterministic)");
    if (json_bool(m, "fuse_unk", false) || json_bool(m, "byte_fallback", false) ||
        json_bool(m, "ignore_merges", false))
        return sb_fail(err, SB_EFORMAT, "fuse_unk, byte_fallback or ignore_merges is set");
    return SB_OK;
}

/* bos/eos from the post-processor: RobertaProcessing/BertProcessing cls+sep, or
 * TemplateProcessing's single template, possibly inside a Sequence. */
static void find_bos_eos(const cJSON *pp, int32_t *bos, int32_t *eos)
{
    const char *type = json_str(pp, "type");
    if (str_is(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pp, "processors");
        if (cJSON_IsArray(list))
            for (const cJSON *it = list->child; it; it = it->next)
                find_bos_eos(it, bos, eos);
    } else if (str_is(type, "RobertaProcessing") || str_is(type, "BertProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(pp, "cls");
        const cJSON *sep = cJSON_GetObjectItemCaseSensitive(pp, "sep");
        int32_t id;
        if (cJSON_GetArraySize(cls) == 2 && !get_id(cJSON_GetArrayItem(cls, 1), &id))
            *bos = id;
        if (cJSON_GetArraySize(sep) == 2 && !get_id(cJSON_GetArrayItem(sep, 1), &id))
            *eos = id;
    } else if (str_is(type, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
        bool seen_seq = false;
        if (!cJSON_IsArray(single))
            return;
        for (const cJSON *it = single->child; it; it = it->next) {
            if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
                seen_seq = true;
                continue;
            }
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
            const char *name = json_str(st, "id");
            const cJSON *def = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
            int32_t id;
            if (cJSON_GetArraySize(ids) != 1 || get_id(ids->child, &id))
                continue;
            if (!seen_seq && *bos < 0)
                *bos = id;
            else if (seen_seq)
                *eos = id;
        }
    }
}

static int load_tokenizer_json(struct clip_tokenizer *tok, const char *text, size_t len,
                               struct sb_err *err)
{
    int rc = SB_OK;
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root || !cJSON_IsObject(root)) {
        rc = sb_fail(err, SB_ECORRUPT, "not a JSON object (truncated?)");
        goto out;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        rc = sb_fail(err, SB_ECORRUPT, "no model object");
        goto out;
    }
    if ((rc = check_model(model, err)) ||
        (rc = check_normalizer(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err)) ||
        (rc = check_pre_tokenizer(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err)))
        goto out;
    if ((rc = parse_vocab(tok, cJSON_GetObjectItemCaseSensitive(model, "vocab"), err)))
        goto out;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsArray(added)) {
        rc = sb_fail(err, SB_ECORRUPT, "added_tokens is not an array");
        goto out;
    }
    for (const cJSON *it = added ? added->child : NULL; it; it = it->next) {
        int32_t id;
        const char *c = json_str(it, "content");
        if (!c || get_id(cJSON_GetObjectItemCaseSensitive(it, "id"), &id)) {
            rc = sb_fail(err, SB_ECORRUPT, "added_tokens entry without content or id");
            goto out;
        }
        rc = tok_add_token(tok, c, strlen(c), id, json_bool(it, "normalized", true),
                           json_bool(it, "single_word", false), err);
        if (rc)
            goto out;
    }
    if ((rc = parse_merges_json(tok, cJSON_GetObjectItemCaseSensitive(model, "merges"), err)))
        goto out;
    const char *unk = json_str(model, "unk_token");
    if (unk)
        tok->unk_id = tok_vocab_get(tok, unk, strlen(unk));
    find_bos_eos(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), &tok->bos_id,
                 &tok->eos_id);
out:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Public loaders */

/* Common tail: config files, special tokens, tables. json_mode: bos/eos/unk/added tokens
 * came from tokenizer.json and the config only adds pad and model_max_length. */
static int finish_load(struct clip_tokenizer *tok, bool json_mode, const char *config,
                       size_t config_len, const char *map, size_t map_len, struct sb_err *err)
{
    int rc = SB_OK;
    struct special sp = {
        .bos_norm = true, .eos_norm = true, .unk_norm = true, .pad_norm = true, .max_length = -1
    };
    if (config && (rc = parse_config(tok, &sp, config, config_len, !json_mode, err)))
        goto out;
    if (map && (rc = parse_config(tok, &sp, map, map_len, false, err)))
        goto out;
    if (!json_mode) { /* CLIPTokenizer's defaults */
        rc = special_id(tok, sp.bos ? sp.bos : "<|startoftext|>", sp.bos_norm, true, &tok->bos_id,
                        err);
        if (!rc)
            rc = special_id(tok, sp.eos ? sp.eos : "<|endoftext|>", sp.eos_norm, true, &tok->eos_id,
                            err);
        if (!rc)
            rc = special_id(tok, sp.unk ? sp.unk : "<|endoftext|>", sp.unk_norm, false,
                            &tok->unk_id, err);
        if (rc)
            goto out;
    } else if (tok->bos_id < 0 || tok->eos_id < 0) {
        /* no usable post_processor: fall back to the CLIP names */
        if (tok->bos_id < 0)
            tok->bos_id = tok_vocab_get(tok, "<|startoftext|>", 15);
        if (tok->eos_id < 0)
            tok->eos_id = tok_vocab_get(tok, "<|endoftext|>", 13);
        if (tok->bos_id < 0 || tok->eos_id < 0) {
            rc = sb_fail(err, SB_ECORRUPT, "no <|startoftext|> / <|endoftext|> tokens");
            goto out;
        }
    }
    if (sp.pad)
        tok->pad_id = tok_vocab_get(tok, sp.pad, strlen(sp.pad));
    if (sp.max_length > 0)
        tok->max_length = (size_t)sp.max_length;
    rc = tok_finish(tok, err);
out:
    special_release(&sp);
    return rc;
}

int clip_tokenizer_load_mem(const char *vocab_json, size_t vocab_len, const char *merges_txt,
                            size_t merges_len, const char *config_json, size_t config_len,
                            struct clip_tokenizer **out, struct sb_err *err)
{
    struct clip_tokenizer *tok = NULL;
    cJSON *vocab = NULL;
    int rc = tok_new(&tok, err);
    if (rc)
        goto out;
    if (!vocab_json || vocab_len > CLIP_TOKENIZER_MAX_FILE ||
        merges_len > CLIP_TOKENIZER_MAX_FILE || config_len > CLIP_TOKENIZER_MAX_FILE) {
        rc = sb_fail(err, SB_EINVAL, "tokenizer files missing or too large");
        goto out;
    }
    vocab = cJSON_ParseWithLength(vocab_json, vocab_len);
    if (!vocab) {
        rc = sb_fail(err, SB_ECORRUPT, "vocab.json is not JSON (truncated?)");
        goto out;
    }
    if ((rc = parse_vocab(tok, vocab, err)))
        goto out;
    cJSON_Delete(vocab);
    vocab = NULL;
    if (merges_txt && (rc = parse_merges_txt(tok, merges_txt, merges_len, err)))
        goto out;
    rc = finish_load(tok, false, config_json, config_len, NULL, 0, err);
    if (rc)
        goto out;
    *out = tok;
    tok = NULL;
out:
    cJSON_Delete(vocab);
    clip_tokenizer_free(tok);
    return rc;
}

int clip_tokenizer_load_json_mem(const char *tokenizer_json, size_t json_len,
                                 const char *config_json, size_t config_len,
                                 struct clip_tokenizer **out, struct sb_err *err)
{
    struct clip_tokenizer *tok = NULL;
    int rc = tok_new(&tok, err);
    if (rc)
        goto out;
    if (!tokenizer_json || json_len > CLIP_TOKENIZER_MAX_FILE ||
        config_len > CLIP_TOKENIZER_MAX_FILE) {
        rc = sb_fail(err, SB_EINVAL, "tokenizer.json missing or too large");
        goto out;
    }
    if ((rc = load_tokenizer_json(tok, tokenizer_json, json_len, err)))
        goto out;
    rc = finish_load(tok, true, config_json, config_len, NULL, 0, err);
    if (rc)
        goto out;
    *out = tok;
    tok = NULL;
out:
    clip_tokenizer_free(tok);
    return rc;
}

static int read_opt(const char *path, unsigned char **buf, size_t *len, struct sb_err *err)
{
    struct stat st;
    if (!path || stat(path, &st) != 0)
        return SB_OK; /* optional file absent: *buf stays NULL */
    return sb_read_file(path, CLIP_TOKENIZER_MAX_FILE, buf, len, err);
}

/* Loads with any of the files; NULL paths are skipped. */
static int load_paths(const char *tokenizer_json, const char *vocab_json, const char *merges_txt,
                      const char *config_json, const char *map_json, struct clip_tokenizer **out,
                      struct sb_err *err)
{
    unsigned char *tj = NULL, *vj = NULL, *mt = NULL, *cj = NULL, *mj = NULL;
    size_t tjn = 0, vjn = 0, mtn = 0, cjn = 0, mjn = 0;
    struct clip_tokenizer *tok = NULL;
    const char *what = tokenizer_json ? tokenizer_json : vocab_json;
    int rc;
    if (tokenizer_json)
        rc = sb_read_file(tokenizer_json, CLIP_TOKENIZER_MAX_FILE, &tj, &tjn, err);
    else if (!(rc = sb_read_file(vocab_json, CLIP_TOKENIZER_MAX_FILE, &vj, &vjn, err)))
        rc = sb_read_file(merges_txt, CLIP_TOKENIZER_MAX_FILE, &mt, &mtn, err);
    if (rc)
        goto out;
    if ((rc = read_opt(config_json, &cj, &cjn, err)) || (rc = read_opt(map_json, &mj, &mjn, err)))
        goto out;
    rc = tok_new(&tok, err);
    if (rc)
        goto out;
    if (tj) {
        rc = load_tokenizer_json(tok, (const char *)tj, tjn, err);
        if (!rc)
            rc = finish_load(tok, true, (const char *)cj, cjn, (const char *)mj, mjn, err);
    } else {
        cJSON *vocab = cJSON_ParseWithLength((const char *)vj, vjn);
        if (!vocab)
            rc = sb_fail(err, SB_ECORRUPT, "not JSON (truncated?)");
        else
            rc = parse_vocab(tok, vocab, err);
        cJSON_Delete(vocab);
        if (!rc) {
            what = merges_txt;
            rc = parse_merges_txt(tok, (const char *)mt, mtn, err);
        }
        if (!rc) {
            what = config_json ? config_json : vocab_json;
            rc = finish_load(tok, false, (const char *)cj, cjn, (const char *)mj, mjn, err);
        }
    }
    if (rc) {
        err_prefix(err, rc, what);
        goto out;
    }
    *out = tok;
    tok = NULL;
out:
    clip_tokenizer_free(tok);
    free(tj);
    free(vj);
    free(mt);
    free(cj);
    free(mj);
    return rc;
}

int clip_tokenizer_load_files(const char *vocab_json, const char *merges_txt,
                              const char *config_json, struct clip_tokenizer **out,
                              struct sb_err *err)
{
    if (!vocab_json || !merges_txt || !out)
        return sb_fail(err, SB_EINVAL, "load tokenizer: NULL path");
    return load_paths(NULL, vocab_json, merges_txt, config_json, NULL, out, err);
}

int clip_tokenizer_load_json(const char *tokenizer_json, const char *config_json,
                             struct clip_tokenizer **out, struct sb_err *err)
{
    if (!tokenizer_json || !out)
        return sb_fail(err, SB_EINVAL, "load tokenizer: NULL path");
    return load_paths(tokenizer_json, NULL, NULL, config_json, NULL, out, err);
}

int clip_tokenizer_load(const char *model_dir, struct clip_tokenizer **out, struct sb_err *err)
{
    struct sb_buf p[5];
    static const char *const names[5] = { "tokenizer.json", "vocab.json", "merges.txt",
                                          "tokenizer_config.json", "special_tokens_map.json" };
    int rc = SB_OK;
    struct stat st;
    for (int i = 0; i < 5; i++) {
        sb_buf_init(&p[i]);
        sb_buf_printf(&p[i], "%s/%s", model_dir ? model_dir : "", names[i]);
    }
    for (int i = 0; i < 5; i++) {
        if (p[i].failed) {
            rc = sb_fail(err, SB_ENOMEM, "load tokenizer: out of memory");
            goto out;
        }
    }
    if (!model_dir || !out) {
        rc = sb_fail(err, SB_EINVAL, "load tokenizer: NULL argument");
        goto out;
    }
    if (stat(p[0].data, &st) == 0) {
        rc = load_paths(p[0].data, NULL, NULL, p[3].data, p[4].data, out, err);
    } else if (stat(p[1].data, &st) == 0 && stat(p[2].data, &st) == 0) {
        rc = load_paths(NULL, p[1].data, p[2].data, p[3].data, p[4].data, out, err);
    } else {
        rc = sb_fail(err, SB_ENOENT,
                     "load tokenizer '%s': neither tokenizer.json nor vocab.json + merges.txt",
                     model_dir);
    }
out:
    for (int i = 0; i < 5; i++)
        sb_buf_release(&p[i]);
    return rc;
}
