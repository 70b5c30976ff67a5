/* test_model_bpe.c - tokenizer.json BPE tokenizers (bpe.h) against tools/ref_lm.py's
 * independent Python re-implementation of huggingface/tokenizers on the fixtures of
 * tools/gen_lm.py (byte-level SmolLM2 and Qwen2 styles, Llama-2 metaspace with byte
 * fallback): ids for varied texts with and without the post-processor's specials, decoding
 * with and without special tokens; the chat templates; malformed tokenizer files. */
#include "check.h"

#include "shoebox/bpe.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IDS 1024

static const char *data_dir(void)
{
    const char *d = getenv("SHOEBOX_TESTDATA");
    return d ? d : "tests/data";
}

/* name is "lm/<model>" or "siglip/<tokenizer>" under the test data */
static struct bpe_tokenizer *load(const char *name)
{
    char dir[1024];
    struct sb_err err = { 0 };
    struct bpe_tokenizer *t = NULL;
    snprintf(dir, sizeof(dir), "%s/%s", data_dir(), name);
    int rc = bpe_load(dir, &t, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc)
        fprintf(stderr, "load %s: %s\n", name, err.msg);
    return t;
}

static void test_cases(const char *name)
{
    char path[1024];
    unsigned char *buf = NULL;
    size_t len = 0;
    struct bpe_tokenizer *t = load(name);
    snprintf(path, sizeof(path), "%s/%s/tok_cases.json", data_dir(), name);
    CHECK_EQ_INT(SB_OK, sb_read_file(path, 16 << 20, &buf, &len, NULL));
    cJSON *root = cJSON_ParseWithLength((const char *)buf, len);
    CHECK(cJSON_IsArray(root));
    int n_cases = 0, n_same = 0, n_dec = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, root)
    {
        if (!t)
            break;
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        bool add = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_special"));
        int32_t want[MAX_IDS], got[MAX_IDS];
        int nw = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "ids"))
        {
            if (nw < MAX_IDS)
                want[nw++] = (int32_t)e->valuedouble;
        }
        size_t ng = 0;
        struct sb_err err = { 0 };
        int rc = bpe_encode(t, text, strlen(text), add, got, MAX_IDS, &ng, &err);
        CHECK_EQ_INT(SB_OK, rc);
        bool same = !rc && (int)ng == nw && memcmp(want, got, ng * sizeof(*got)) == 0;
        n_cases++;
        n_same += same;
        if (!same) {
            fprintf(stderr, "%s: '%s' (add %d): want", name, text, add);
            for (int i = 0; i < nw; i++)
                fprintf(stderr, " %d", (int)want[i]);
            fprintf(stderr, "\n   got");
            for (size_t i = 0; i < ng; i++)
                fprintf(stderr, " %d", (int)got[i]);
            fprintf(stderr, "\n");
        }
        CHECK(same);
        for (int skip = 0; skip < 2; skip++) {
            struct sb_buf out;
            sb_buf_init(&out);
            rc = bpe_decode(t, want, (size_t)nw, skip, &out, &err);
            CHECK_EQ_INT(SB_OK, rc);
            const char *dw = cJSON_GetObjectItem(c, skip ? "decoded_skip" : "decoded")->valuestring;
            bool ok = out.data && strcmp(out.data, dw) == 0;
            n_dec += ok;
            if (!ok)
                fprintf(stderr, "%s: decode (skip %d) of '%s': want '%s' got '%s'\n", name, skip,
                        text, dw, out.data ? out.data : "");
            CHECK(ok);
            sb_buf_release(&out);
        }
    }
    fprintf(stderr, "%s: %d/%d encodings identical, %d/%d decodings identical\n", name, n_same,
            n_cases, n_dec, 2 * n_cases);
    cJSON_Delete(root);
    free(buf);
    bpe_free(t);
}

static void check_chat(const char *name, enum bpe_chat_kind want_kind, const char *want_text,
                       const char *const *stops, int n_stops)
{
    struct bpe_tokenizer *t = load(name);
    if (!t)
        return;
    struct sb_err err = { 0 };
    enum bpe_chat_kind kind;
    CHECK_EQ_INT(SB_OK, bpe_chat_kind(t, &kind, &err));
    CHECK_EQ_INT(want_kind, kind);
    const struct bpe_chat_msg msgs[] = { { "user", "Describe this image.", 1 } };
    struct sb_buf out;
    sb_buf_init(&out);
    CHECK_EQ_INT(SB_OK, bpe_chat_apply(t, msgs, 1, true, &out, &err));
    CHECK_EQ_STR(want_text, out.data);
    sb_buf_release(&out);
    int32_t ids[8];
    int n = bpe_chat_stop_ids(t, ids, 8);
    CHECK_EQ_INT(n_stops, n);
    for (int i = 0; i < n && i < n_stops; i++)
        CHECK_EQ_INT(bpe_token_id(t, stops[i]), ids[i]);
    const struct bpe_chat_msg bad[] = { { "robot", "hi", 0 } };
    sb_buf_init(&out);
    CHECK_EQ_INT(SB_EINVAL, bpe_chat_apply(t, bad, 1, true, &out, &err));
    sb_buf_release(&out);
    bpe_free(t);
}

/* Expected texts written from each template's Jinja source (tools/gen_lm.py has them). */
static void test_chat(void)
{
    static const char *const idefics_stops[] = { "<end_of_utterance>", "<|im_end|>" };
    static const char *const chatml_stops[] = { "<|im_end|>", "<|endoftext|>" };
    static const char *const llava_stops[] = { "</s>" };
    check_chat("lm/llama_smol", BPE_CHAT_IDEFICS3,
               "<|im_start|>User:<image>Describe this image.<end_of_utterance>\nAssistant:",
               idefics_stops, 2);
    check_chat("lm/qwen2_bf16", BPE_CHAT_CHATML,
               "<|im_start|>user\n<image>\nDescribe this image.<|im_end|>\n"
               "<|im_start|>assistant\n",
               chatml_stops, 2);
    check_chat("lm/llama_ms_f16", BPE_CHAT_LLAVA15,
               "USER: <image>\nDescribe this image. ASSISTANT:", llava_stops, 1);

    /* a multi-turn conversation without images (Idefics3 puts ": " then) */
    struct bpe_tokenizer *t = load("lm/llama_smol");
    if (t) {
        const struct bpe_chat_msg msgs[] = { { "system", "Be brief.", 0 },
                                             { "user", "Hi", 0 },
                                             { "assistant", "Hello.", 0 } };
        struct sb_buf out;
        sb_buf_init(&out);
        CHECK_EQ_INT(SB_OK, bpe_chat_apply(t, msgs, 3, false, &out, NULL));
        CHECK_EQ_STR("<|im_start|>System: Be brief.<end_of_utterance>\nUser: Hi<end_of_utterance>"
                     "\nAssistant: Hello.<end_of_utterance>\n",
                     out.data);
        sb_buf_release(&out);
        bpe_free(t);
    }
}

static void test_failures(void)
{
    static const struct {
        const char *json;
        int code;
    } cases[] = {
        { "", SB_ECORRUPT },
        { "[]", SB_ECORRUPT },
        { "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", SB_EFORMAT },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}", SB_ECORRUPT },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", SB_ECORRUPT },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\"]]}"
          "}",
          SB_ECORRUPT },
        /* byte-level without the 256 byte tokens */
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{"
          "\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"}}",
          SB_ECORRUPT },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{"
          "\"type\":\"Whitespace\"}}",
          SB_EFORMAT },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{"
          "\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\w+\"},\"behavior\":\"Isolated\"}}",
          SB_EFORMAT },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":{"
          "\"type\":\"Lowercase\"}}",
          SB_EFORMAT },
        /* Gemma parts in the wrong place: Lowercase after Replace, Split(" ") that would
         * split (no Replace before it), Split(" ") isolated */
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":{"
          "\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Replace\",\"pattern\":{"
          "\"String\":\" \"},\"content\":\"\xe2\x96\x81\"},{\"type\":\"Lowercase\"}]}}",
          SB_EFORMAT },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"pre_tokenizer\":{"
          "\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":"
          "\"MergedWithPrevious\"}}",
          SB_EFORMAT },
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":{"
          "\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"},"
          "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":"
          "\"Isolated\"}}",
          SB_EFORMAT },
        /* Gemma's normalizer without its decoder: neither style */
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"normalizer\":{"
          "\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}}",
          SB_EFORMAT },
        /* no pipeline at all: neither style */
        { "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", SB_EFORMAT },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bpe_tokenizer *t = NULL;
        struct sb_err err = { 0 };
        int rc = bpe_load_mem(cases[i].json, strlen(cases[i].json), NULL, 0, &t, &err);
        if (rc != cases[i].code)
            fprintf(stderr, "failure case %zu: got %d (%s)\n", i, rc, err.msg);
        CHECK_EQ_INT(cases[i].code, rc);
        if (!rc)
            bpe_free(t);
    }
    struct bpe_tokenizer *t = NULL;
    CHECK_EQ_INT(SB_ENOENT, bpe_load("/nonexistent/tok", &t, NULL));

    /* an unknown chat template is a clear error; a tokenizer without one says so */
    t = load("lm/llama_smol");
    if (t) {
        struct sb_err err = { 0 };
        size_t n = 0;
        int32_t ids[4];
        CHECK_EQ_INT(SB_ETOOBIG, bpe_encode(t, "hello world again", 17, false, ids, 2, &n, &err));
        struct sb_buf out;
        sb_buf_init(&out);
        int32_t bad = 1 << 20;
        CHECK_EQ_INT(SB_EINVAL, bpe_decode(t, &bad, 1, false, &out, &err));
        sb_buf_release(&out);
        /* invalid UTF-8 input is replaced, not rejected; decoding stays valid UTF-8 */
        int32_t many[64];
        CHECK_EQ_INT(SB_OK, bpe_encode(t, "a\xff\xe2\x82z", 5, false, many, 64, &n, &err));
        sb_buf_init(&out);
        CHECK_EQ_INT(SB_OK, bpe_decode(t, many, n, false, &out, &err));
        CHECK_EQ_STR("a\xef\xbf\xbd\xef\xbf\xbdz", out.data);
        sb_buf_release(&out);
        bpe_free(t);
    }
    const char *cfg = "{\"chat_template\":\"{{ messages }}\"}";
    const char *json = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\xe2\x96"
                       "\x81\":3},\"merges\":[\"a b\"]},\"normalizer\":{\"type\":\"Sequence\","
                       "\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},{"
                       "\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96"
                       "\x81\"}]},\"decoder\":{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xe2"
                       "\x96\x81\"},\"content\":\" \"}}";
    struct sb_err err = { 0 };
    CHECK_EQ_INT(SB_OK, bpe_load_mem(json, strlen(json), cfg, strlen(cfg), &t, &err));
    if (t) {
        enum bpe_chat_kind k;
        CHECK_EQ_INT(SB_EFORMAT, bpe_chat_kind(t, &k, &err));
        CHECK(strstr(err.msg, "not one shoebox knows") != NULL);
        size_t n = 0;
        int32_t ids[8];
        CHECK_EQ_INT(SB_OK, bpe_encode(t, "ab", 2, false, ids, 8, &n, &err));
        CHECK_EQ_INT(2, n); /* "▁" "ab" */
        bpe_free(t);
    }
}

/* SigLIP 2's Gemma tokenizer: eos appended by the post-processor, truncation keeping it,
 * lower-casing added on top of a tokenizer.json without it. */
static void test_gemma(void)
{
    struct bpe_tokenizer *t = load("siglip/gemma_tok");
    if (!t)
        return;
    CHECK_EQ_INT(2, bpe_bos_id(t));
    CHECK_EQ_INT(1, bpe_eos_id(t));
    CHECK_EQ_INT(0, bpe_token_id(t, "<pad>"));
    struct sb_err err = { 0 };
    const char *text = "a photo of a cat sitting on a red sofa at sunset";
    int32_t all[MAX_IDS], cut[8];
    size_t n_all = 0, n_cut = 0;
    CHECK_EQ_INT(SB_OK, bpe_encode(t, text, strlen(text), true, all, MAX_IDS, &n_all, &err));
    CHECK(n_all > 8);
    CHECK_EQ_INT(SB_OK, bpe_encode_truncated(t, text, strlen(text), true, 8, cut, &n_cut, &err));
    CHECK_EQ_INT(8, n_cut);
    CHECK(memcmp(all, cut, 7 * sizeof(*cut)) == 0);
    CHECK_EQ_INT(1, cut[7]); /* <eos> survives truncation */
    /* short text: not padded, nothing cut */
    CHECK_EQ_INT(SB_OK, bpe_encode_truncated(t, "cat", 3, true, 8, cut, &n_cut, &err));
    CHECK_EQ_INT(SB_OK, bpe_encode(t, "cat", 3, true, all, MAX_IDS, &n_all, &err));
    CHECK_EQ_INT(n_all, n_cut);
    CHECK(memcmp(all, cut, n_cut * sizeof(*cut)) == 0);
    CHECK_EQ_INT(SB_EINVAL, bpe_encode_truncated(t, "cat", 3, true, 1, cut, &n_cut, &err));
    /* bpe_set_lowercase: as if the text had been lower-cased first (U+0130 -> "i" U+0307) */
    const char *upper = "A  Photo of a CAT! \xc4\xb0stanbul";
    const char *lower = "a  photo of a cat! i\xcc\x87stanbul";
    CHECK_EQ_INT(SB_OK, bpe_encode(t, lower, strlen(lower), true, all, MAX_IDS, &n_all, &err));
    bpe_set_lowercase(t);
    int32_t low[MAX_IDS];
    size_t n_low = 0;
    CHECK_EQ_INT(SB_OK, bpe_encode(t, upper, strlen(upper), true, low, MAX_IDS, &n_low, &err));
    CHECK_EQ_INT(n_all, n_low);
    CHECK(memcmp(all, low, n_low * sizeof(*low)) == 0);
    bpe_free(t);
}

/* model.vocab and model.merges are read straight from the text (bpe_load.c's scanner): JSON
 * escapes, both merge forms, whitespace, and the errors it reports itself. */
static void test_scanner(void)
{
    const char *json =
        "{ \"model\" : { \"vocab\" :\n{ \"a\" : 0 , \"b\":1,\"ab\":2,\"\\u2581\":3,"
        "\"q\\\"\\\\\\/\\n\":4,\"\\u00e9\":5,\"\\ud83d\\ude00\":6,\"\xe2\x96\x81"
        "a\":7},"
        "\"type\":\"BPE\", \"merges\" : [ [ \"a\" , \"b\" ], [\"\\u2581\",\"a\"] ] },"
        "\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\""
        "\xe2\x96\x81\"},\"decoder\":{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xe2\x96"
        "\x81\"},\"content\":\" \"}}";
    struct bpe_tokenizer *t = NULL;
    struct sb_err err = { 0 };
    CHECK_EQ_INT(SB_OK, bpe_load_mem(json, strlen(json), NULL, 0, &t, &err));
    if (t) {
        CHECK_EQ_INT(4, bpe_token_id(t, "q\"\\/\n"));
        CHECK_EQ_INT(5, bpe_token_id(t, "\xc3\xa9"));
        CHECK_EQ_INT(6, bpe_token_id(t, "\xf0\x9f\x98\x80"));
        int32_t ids[8];
        size_t n = 0;
        CHECK_EQ_INT(SB_OK, bpe_encode(t, "ab a", 4, false, ids, 8, &n, &err));
        CHECK_EQ_INT(2, n); /* "ab" (merge 0), "▁a" (merge 1): no "▁" before the first word */
        CHECK_EQ_INT(2, ids[0]);
        CHECK_EQ_INT(7, ids[1]);
        bpe_free(t);
    }
    static const char *const bad[] = {
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1.5},\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":99999999999},\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a\"]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[[\"a\",\"a\",\"a\"]]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\\x\":0},\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":[],\"merges\":[]}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = NULL;
        int rc = bpe_load_mem(bad[i], strlen(bad[i]), NULL, 0, &t, &err);
        if (rc != SB_ECORRUPT)
            fprintf(stderr, "scanner case %zu: got %d (%s)\n", i, rc, err.msg);
        CHECK_EQ_INT(SB_ECORRUPT, rc);
        if (!rc)
            bpe_free(t);
    }
}

int main(void)
{
    test_cases("lm/llama_smol");
    test_cases("lm/qwen2_bf16");
    test_cases("lm/llama_ms_f16");
    test_cases("siglip/gemma_tok");
    test_cases("siglip/gemma_lower");
    test_gemma();
    test_scanner();
    test_chat();
    test_failures();
    return check_exit();
}
