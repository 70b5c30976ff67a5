/* test_model_tokenizer.c - the CLIP tokenizer against tools/ref_tokenizer.py's expected ids
 * (tests/data/tokenizer/clip_cases.jsonl), loaded three ways: vocab.json + merges.txt, a
 * tokenizer.json with "a b" merges and one with [a, b] merges (both written here from the
 * same vocabulary, in the layout of openai/clip-vit-base-patch32's tokenizer.json). Then the
 * failure paths: missing, truncated and mistyped files, bad input, huge input. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "shoebox/err.h"
#include "shoebox/tokenizer.h"
#include "shoebox/util.h"

#define MAX_IDS 80

static char data_dir[1024];
static char tmp_dir[1024];

struct tcase {
    unsigned char *bytes;
    size_t len;
    size_t max_len;
    int32_t ids[MAX_IDS];
    size_t n;
};

static struct tcase *cases;
static size_t n_cases;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool load_cases(void)
{
    char path[1200];
    unsigned char *buf = NULL;
    size_t len = 0;
    struct sb_err err = { 0 };
    snprintf(path, sizeof(path), "%s/tokenizer/clip_cases.jsonl", data_dir);
    if (sb_read_file(path, 64 << 20, &buf, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return false;
    }
    size_t cap = 0;
    for (char *line = (char *)buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        cJSON *j = cJSON_Parse(line);
        const cJSON *hex = cJSON_GetObjectItemCaseSensitive(j, "hex");
        const cJSON *ml = cJSON_GetObjectItemCaseSensitive(j, "max_len");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j, "ids");
        CHECK(cJSON_IsString(hex) && cJSON_IsNumber(ml) && cJSON_IsArray(ids));
        if (cJSON_IsString(hex) && cJSON_IsNumber(ml) && cJSON_IsArray(ids) &&
            cJSON_GetArraySize(ids) <= MAX_IDS) {
            if (n_cases == cap) {
                cap = cap ? cap * 2 : 256;
                cases = realloc(cases, cap * sizeof(*cases));
            }
            struct tcase *c = &cases[n_cases++];
            size_t hl = strlen(hex->valuestring);
            c->len = hl / 2;
            c->bytes = malloc(c->len + 1);
            for (size_t i = 0; i < c->len; i++)
                c->bytes[i] = (unsigned char)(hexval(hex->valuestring[2 * i]) * 16 +
                                              hexval(hex->valuestring[2 * i + 1]));
            c->max_len = (size_t)ml->valuedouble;
            c->n = 0;
            for (const cJSON *it = ids->child; it; it = it->next)
                c->ids[c->n++] = (int32_t)it->valuedouble;
        }
        cJSON_Delete(j);
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    return n_cases > 0;
}

/* Runs every case; returns how many gave exactly the expected ids. */
static size_t run_cases(const struct clip_tokenizer *tok, const char *label)
{
    size_t ok = 0;
    int shown = 0;
    for (size_t i = 0; i < n_cases; i++) {
        const struct tcase *c = &cases[i];
        int32_t ids[MAX_IDS];
        size_t n = 0;
        struct sb_err err = { 0 };
        int rc = clip_tokenize_len(tok, (const char *)c->bytes, c->len, ids, c->max_len, &n, &err);
        bool same = rc == 0 && n == c->n && memcmp(ids, c->ids, n * sizeof(ids[0])) == 0;
        if (same) {
            ok++;
            continue;
        }
        if (shown++ < 10) {
            fprintf(stderr, "%s: case %zu '%.*s' max_len %zu: rc %d (%s)\n  expected", label, i,
                    (int)(c->len > 80 ? 80 : c->len), (const char *)c->bytes, c->max_len, rc,
                    err.msg);
            for (size_t k = 0; k < c->n; k++)
                fprintf(stderr, " %d", (int)c->ids[k]);
            fprintf(stderr, "\n  got     ");
            for (size_t k = 0; rc == 0 && k < n; k++)
                fprintf(stderr, " %d", (int)ids[k]);
            fprintf(stderr, "\n");
        }
    }
    fprintf(stderr, "%s: %zu/%zu cases identical\n", label, ok, n_cases);
    CHECK_EQ_INT(n_cases, ok);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* tokenizer.json written from vocab.json + merges.txt */

/* The pipeline of openai/clip-vit-base-patch32's tokenizer.json, vocab and merges left empty. */
static const char tokenizer_json_skeleton[] =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":["
    "{\"id\":49406,\"content\":\"<|startoftext|>\",\"single_word\":false,\"lstrip\":false,"
    "\"rstrip\":false,\"normalized\":true,\"special\":true},"
    "{\"id\":49407,\"content\":\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,"
    "\"rstrip\":false,\"normalized\":true,\"special\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":"
    "\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"},{\"type\":\"Lowercase\"}]},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":"
    "{\"Regex\":\"'s|'t|'re|'ve|'m|'ll|'d|[\\\\p{L}]+|[\\\\p{N}]|[^\\\\s\\\\p{L}\\\\p{N}]+\"},"
    "\"behavior\":\"Removed\",\"invert\":true},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
    "\"trim_offsets\":true,\"use_regex\":true}]},"
    "\"post_processor\":{\"type\":\"RobertaProcessing\",\"sep\":[\"<|endoftext|>\",49407],"
    "\"cls\":[\"<|startoftext|>\",49406],\"trim_offsets\":false,\"add_prefix_space\":false},"
    "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,"
    "\"use_regex\":true},"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<|endoftext|>\","
    "\"continuing_subword_prefix\":\"\",\"end_of_word_suffix\":\"</w>\",\"fuse_unk\":false,"
    "\"byte_fallback\":false,\"vocab\":{},\"merges\":[]}}";

/* Writes tokenizer.json text (malloc'd) with merges as "a b" strings or [a, b] pairs. */
static char *make_tokenizer_json(bool pairs)
{
    char path[1200];
    unsigned char *vj = NULL, *mt = NULL;
    size_t vn = 0, mn = 0;
    snprintf(path, sizeof(path), "%s/tokenizer/clip/vocab.json", data_dir);
    if (sb_read_file(path, 64 << 20, &vj, &vn, NULL))
        return NULL;
    snprintf(path, sizeof(path), "%s/tokenizer/clip/merges.txt", data_dir);
    if (sb_read_file(path, 64 << 20, &mt, &mn, NULL)) {
        free(vj);
        return NULL;
    }
    cJSON *root = cJSON_Parse(tokenizer_json_skeleton);
    cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    cJSON_ReplaceItemInObjectCaseSensitive(model, "vocab", cJSON_Parse((const char *)vj));
    cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    char *line = strchr((char *)mt, '\n'); /* skip "#version: 0.2" */
    while (line && *++line) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *sp = strchr(line, ' ');
        if (sp && *line) {
            if (pairs) {
                *sp = '\0';
                cJSON *pr = cJSON_CreateArray();
                cJSON_AddItemToArray(pr, cJSON_CreateString(line));
                cJSON_AddItemToArray(pr, cJSON_CreateString(sp + 1));
                cJSON_AddItemToArray(merges, pr);
            } else {
                cJSON_AddItemToArray(merges, cJSON_CreateString(line));
            }
        }
        line = nl;
    }
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    free(vj);
    free(mt);
    return out;
}

static struct clip_tokenizer *load_json_variant(bool pairs, const char *fname)
{
    char path[1200];
    struct clip_tokenizer *tok = NULL;
    struct sb_err err = { 0 };
    char *text = make_tokenizer_json(pairs);
    CHECK(text != NULL);
    if (!text)
        return NULL;
    snprintf(path, sizeof(path), "%s/%s", tmp_dir, fname);
    CHECK_EQ_INT(0, sb_write_file_atomic(path, text, strlen(text), &err));
    free(text);
    int rc = clip_tokenizer_load_json(path, NULL, &tok, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    CHECK_EQ_INT(0, rc);
    return tok;
}

/* ------------------------------------------------------------------------------------------ */
/* Failure paths */

static void expect_load_mem_fail(const char *vocab, const char *merges, int code, const char *what)
{
    struct clip_tokenizer *tok = NULL;
    struct sb_err err = { 0 };
    int rc = clip_tokenizer_load_mem(vocab, strlen(vocab), merges, merges ? strlen(merges) : 0,
                                     NULL, 0, &tok, &err);
    if (rc != code)
        fprintf(stderr, "  case '%s': rc %d msg '%s'\n", what, rc, err.msg);
    CHECK_EQ_INT(code, rc);
    CHECK(tok == NULL);
    CHECK(err.msg[0] != '\0');
}

static void expect_json_fail(const char *json, int code, const char *what)
{
    struct clip_tokenizer *tok = NULL;
    struct sb_err err = { 0 };
    int rc = clip_tokenizer_load_json_mem(json, strlen(json), NULL, 0, &tok, &err);
    if (rc != code)
        fprintf(stderr, "  case '%s': rc %d msg '%s'\n", what, rc, err.msg);
    CHECK_EQ_INT(code, rc);
    CHECK(tok == NULL);
}

/* A tiny valid slow vocabulary: all 256 byte symbols come from the real file in other tests;
 * here only the special tokens and two letters matter. */
#define TINY_VOCAB                                                                                 \
    "{\"a\":0,\"b\":1,\"a</w>\":2,\"b</w>\":3,\"ab</w>\":4,\"<|startoftext|>\":5,"                 \
    "\"<|endoftext|>\":6}"

static void test_failures(void)
{
    struct clip_tokenizer *tok = NULL;
    struct sb_err err = { 0 };
    char path[1200];

    /* missing files */
    snprintf(path, sizeof(path), "%s/no-such-model", tmp_dir);
    CHECK_EQ_INT(SB_ENOENT, clip_tokenizer_load(path, &tok, &err));
    CHECK(tok == NULL);
    CHECK_EQ_INT(SB_ENOENT, clip_tokenizer_load_files("/nonexistent/vocab.json",
                                                      "/nonexistent/merges.txt", NULL, &tok, &err));
    CHECK(strstr(err.msg, "/nonexistent/vocab.json") != NULL);
    CHECK_EQ_INT(SB_EINVAL, clip_tokenizer_load(NULL, &tok, &err));

    /* a tiny vocabulary works, and merges */
    CHECK_EQ_INT(0, clip_tokenizer_load_mem(TINY_VOCAB, strlen(TINY_VOCAB), "#v\na b</w>\n", 11,
                                            NULL, 0, &tok, &err));
    if (tok) {
        int32_t ids[8];
        size_t n = 0;
        CHECK_EQ_INT(0, clip_tokenize(tok, "AB ba", ids, 8, &n, &err));
        CHECK_EQ_INT(5, n); /* bos ab</w> b a</w> eos */
        CHECK_EQ_INT(5, ids[0]);
        CHECK_EQ_INT(4, ids[1]);
        CHECK_EQ_INT(1, ids[2]);
        CHECK_EQ_INT(2, ids[3]);
        CHECK_EQ_INT(6, ids[4]);
        /* "c" is not in this vocabulary: unk (<|endoftext|>) per byte, as HF's BPE */
        CHECK_EQ_INT(0, clip_tokenize(tok, "c", ids, 8, &n, &err));
        CHECK_EQ_INT(3, n);
        CHECK_EQ_INT(6, ids[1]);
        CHECK_EQ_STR("ab</w>", clip_tokenizer_token(tok, 4));
        CHECK(clip_tokenizer_token(tok, 99) == NULL);
        CHECK(clip_tokenizer_token(tok, -1) == NULL);
        clip_tokenizer_free(tok);
        tok = NULL;
    }

    /* broken vocab.json */
    expect_load_mem_fail("{\"a\":0,\"b\":1,\"<|starto", "#v\n", SB_ECORRUPT, "truncated");
    expect_load_mem_fail("[1,2,3]", "#v\n", SB_ECORRUPT, "array");
    expect_load_mem_fail("{}", "#v\n", SB_ECORRUPT, "empty");
    expect_load_mem_fail("{\"a\":\"0\"}", "#v\n", SB_ECORRUPT, "string id");
    expect_load_mem_fail("{\"a\":1e300}", "#v\n", SB_ECORRUPT, "huge id");
    expect_load_mem_fail("{\"a\":-1}", "#v\n", SB_ECORRUPT, "negative id");
    expect_load_mem_fail("{\"a\":1.5}", "#v\n", SB_ECORRUPT, "fractional id");
    expect_load_mem_fail("{\"a\":null}", "#v\n", SB_ECORRUPT, "null id");
    expect_load_mem_fail("{\"a\":0,\"<|endoftext|>\":1}", "#v\n", SB_ECORRUPT, "no bos");
    expect_load_mem_fail("{\"a\":0,\"<|startoftext|>\":1}", "#v\n", SB_ECORRUPT, "no eos");
    /* broken merges.txt */
    expect_load_mem_fail(TINY_VOCAB, "#v\na b</w> c\n", SB_ECORRUPT, "three parts");
    expect_load_mem_fail(TINY_VOCAB, "#v\nab\n", SB_ECORRUPT, "one part");
    expect_load_mem_fail(TINY_VOCAB, "#v\na b</w>\n\na b\n", SB_ECORRUPT, "empty line");
    expect_load_mem_fail(TINY_VOCAB, "#v\nx y\n", SB_ECORRUPT, "unknown tokens");
    expect_load_mem_fail(TINY_VOCAB, "#v\na b\n", SB_ECORRUPT, "result not in vocab");
    expect_load_mem_fail(TINY_VOCAB, "#v\n\xff\xfe \x01\n", SB_ECORRUPT, "binary garbage");

    /* broken tokenizer.json */
    char *good = make_tokenizer_json(false);
    CHECK(good != NULL);
    if (good) {
        size_t gl = strlen(good);
        CHECK_EQ_INT(0, clip_tokenizer_load_json_mem(good, gl, NULL, 0, &tok, &err));
        clip_tokenizer_free(tok);
        tok = NULL;
        /* truncated at many points: always an error, never a crash */
        for (size_t cut = 0; cut < gl; cut += gl / 97 + 1) {
            int rc = clip_tokenizer_load_json_mem(good, cut, NULL, 0, &tok, &err);
            CHECK(rc != 0 && tok == NULL);
        }
        free(good);
    }
    expect_json_fail("{\"model\":{\"type\":\"WordPiece\"}}", SB_EFORMAT, "wordpiece");
    expect_json_fail("{\"model\":{\"type\":\"BPE\",\"end_of_word_suffix\":\"</w>\"},"
                     "\"normalizer\":null}",
                     SB_EFORMAT, "no normalizer");
    expect_json_fail("{\"model\":42}", SB_ECORRUPT, "model not an object");
    expect_json_fail("null", SB_ECORRUPT, "null");
    expect_json_fail("", SB_ECORRUPT, "empty");
    {
        /* the skeleton with an empty vocab, and with a wrong merges type */
        expect_json_fail(tokenizer_json_skeleton, SB_ECORRUPT, "empty vocab");
        cJSON *root = cJSON_Parse(tokenizer_json_skeleton);
        cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
        cJSON_ReplaceItemInObjectCaseSensitive(model, "vocab", cJSON_Parse(TINY_VOCAB));
        cJSON_ReplaceItemInObjectCaseSensitive(model, "merges", cJSON_CreateNumber(3));
        char *s = cJSON_PrintUnformatted(root);
        expect_json_fail(s, SB_ECORRUPT, "merges is a number");
        free(s);
        cJSON_ReplaceItemInObjectCaseSensitive(model, "merges", cJSON_Parse("[[\"a\"]]"));
        s = cJSON_PrintUnformatted(root);
        expect_json_fail(s, SB_ECORRUPT, "merge pair of one");
        free(s);
        cJSON_ReplaceItemInObjectCaseSensitive(model, "merges", cJSON_Parse("[\"a b c\"]"));
        s = cJSON_PrintUnformatted(root);
        expect_json_fail(s, SB_ECORRUPT, "merge of three");
        free(s);
        cJSON_ReplaceItemInObjectCaseSensitive(model, "merges", cJSON_Parse("[\"a b</w>\"]"));
        cJSON_ReplaceItemInObjectCaseSensitive(model, "dropout", cJSON_CreateNumber(0.1));
        s = cJSON_PrintUnformatted(root);
        expect_json_fail(s, SB_EFORMAT, "dropout");
        free(s);
        cJSON_ReplaceItemInObjectCaseSensitive(model, "dropout", cJSON_CreateNull());
        s = cJSON_PrintUnformatted(root);
        CHECK_EQ_INT(0, clip_tokenizer_load_json_mem(s, strlen(s), NULL, 0, &tok, &err));
        clip_tokenizer_free(tok);
        tok = NULL;
        free(s);
        cJSON_Delete(root);
    }
}

/* ------------------------------------------------------------------------------------------ */

struct thread_arg {
    const struct clip_tokenizer *tok;
    size_t ok;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    for (int rep = 0; rep < 3; rep++)
        for (size_t i = 0; i < n_cases; i++) {
            int32_t ids[MAX_IDS];
            size_t n = 0;
            if (clip_tokenize_len(a->tok, (const char *)cases[i].bytes, cases[i].len, ids,
                                  cases[i].max_len, &n, NULL) == 0 &&
                n == cases[i].n && memcmp(ids, cases[i].ids, n * sizeof(ids[0])) == 0)
                a->ok++;
        }
    return NULL;
}

static void test_input_limits(const struct clip_tokenizer *tok)
{
    int32_t ids[MAX_IDS];
    size_t n = 0;
    struct sb_err err = { 0 };
    CHECK_EQ_INT(SB_EINVAL, clip_tokenize(tok, "cat", ids, 1, &n, &err));
    CHECK_EQ_INT(SB_EINVAL, clip_tokenize(tok, NULL, ids, 77, &n, &err));
    CHECK_EQ_INT(SB_EINVAL, clip_tokenize_len(tok, NULL, 5, ids, 77, &n, &err));
    CHECK_EQ_INT(0, clip_tokenize_len(tok, NULL, 0, ids, 77, &n, &err));
    CHECK_EQ_INT(2, n);

    size_t big = CLIP_TOKENIZER_MAX_INPUT;
    char *s = malloc(big + 1);
    static const char pat[] = "ab cd\xff\xe2\x82 \xf0\x9f\x90\xb6!";
    for (size_t i = 0; i < big; i++)
        s[i] = pat[i % (sizeof(pat) - 1)];
    CHECK_EQ_INT(0, clip_tokenize_len(tok, s, big, ids, 77, &n, &err));
    CHECK_EQ_INT(77, n);
    CHECK_EQ_INT(49407, ids[76]);
    CHECK_EQ_INT(SB_ETOOBIG, clip_tokenize_len(tok, s, big + 1, ids, 77, &n, &err));
    /* one enormous word: BPE over 256 KiB of letters */
    memset(s, 'q', big);
    CHECK_EQ_INT(0, clip_tokenize_len(tok, s, big, ids, 77, &n, &err));
    CHECK_EQ_INT(77, n);
    free(s);

    /* getters */
    CHECK_EQ_INT(49406, clip_tokenizer_bos_id(tok));
    CHECK_EQ_INT(49407, clip_tokenizer_eos_id(tok));
    CHECK_EQ_INT(49407, clip_tokenizer_pad_id(tok));
    CHECK_EQ_INT(49408, clip_tokenizer_vocab_size(tok));
    CHECK_EQ_STR("cat</w>", clip_tokenizer_token(tok, 2368));
    CHECK_EQ_STR("<|startoftext|>", clip_tokenizer_token(tok, 49406));
}

int main(void)
{
    const char *d = getenv("SHOEBOX_TESTDATA");
    const char *t = getenv("SHOEBOX_TMP");
    snprintf(data_dir, sizeof(data_dir), "%s", d ? d : "tests/data");
    snprintf(tmp_dir, sizeof(tmp_dir), "%s", t ? t : "/tmp");
    if (!load_cases()) {
        fprintf(stderr, "cannot read %s/tokenizer/clip_cases.jsonl\n", data_dir);
        return 1;
    }

    /* the model folder as HF ships it: vocab.json + merges.txt + configs */
    char dir[1200];
    struct clip_tokenizer *tok = NULL;
    struct sb_err err = { 0 };
    snprintf(dir, sizeof(dir), "%s/tokenizer/clip", data_dir);
    int rc = clip_tokenizer_load(dir, &tok, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    CHECK_EQ_INT(0, rc);
    if (tok) {
        int32_t ids[MAX_IDS];
        size_t n = 0;
        CHECK_EQ_INT(77, clip_tokenizer_max_length(tok));
        CHECK_EQ_INT(0, clip_tokenize(tok, "a photo of a cat", ids, 77, &n, &err));
        CHECK_EQ_INT(7, n);
        static const int32_t cat[] = { 49406, 320, 1125, 539, 320, 2368, 49407 };
        CHECK(n == 7 && memcmp(ids, cat, sizeof(cat)) == 0);
        run_cases(tok, "vocab.json+merges.txt");
        test_input_limits(tok);

        pthread_t th[4];
        struct thread_arg ta[4];
        for (int i = 0; i < 4; i++) {
            ta[i] = (struct thread_arg){ .tok = tok };
            CHECK_EQ_INT(0, pthread_create(&th[i], NULL, thread_main, &ta[i]));
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            CHECK_EQ_INT(3 * n_cases, ta[i].ok);
        }
        clip_tokenizer_free(tok);
    }

    tok = load_json_variant(false, "tokenizer_strings.json");
    if (tok) {
        run_cases(tok, "tokenizer.json (\"a b\" merges)");
        clip_tokenizer_free(tok);
    }
    tok = load_json_variant(true, "tokenizer_pairs.json");
    if (tok) {
        run_cases(tok, "tokenizer.json ([a, b] merges)");
        clip_tokenizer_free(tok);
    }

    test_failures();
    for (size_t i = 0; i < n_cases; i++)
        free(cases[i].bytes);
    free(cases);
    return check_exit();
}
