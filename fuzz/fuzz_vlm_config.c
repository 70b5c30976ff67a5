/* fuzz_vlm_config.c - libFuzzer target: the decoder-LM and captioning-VLM configs.
 *
 * Input: byte 0 picks a VLM fixture (tests/data/vlm/{idefics3,llava15,llava_qwen}: byte % 3)
 * and image splitting (bit 0 of byte / 3, an error for LLaVA); the rest
 * is config.json, then (after a NUL) generation_config.json, then (after another NUL)
 * preprocessor_config.json.
 *  - lm_config_parse() on config.json as a whole and under "text_config" (the VLMs' decoder),
 *    then lm_generation_config_parse(): a config that parses must satisfy what the loader
 *    relies on (sizes >= 1, kv heads dividing heads, an even head_dim, theta finite and
 *    positive, eps finite and >= 0 (transformers takes 0 too), stop ids in the vocabulary);
 *  - vlm_model_load() on a temporary folder holding the fuzzed config.json and
 *    preprocessor_config.json beside links to the fixture's weights and tokenizer files
 *    (vision_config, llava/idefics3 settings and preprocessing are static in src/model/vlm.c:
 *    loading is the only way in). A model that loads must report sane sizes.
 * The chat template and tokenizer files are fuzzed by fuzz_bpe; CLIP configs by fuzz_config. */
#include "shoebox/err.h"
#include "shoebox/vlm.h"

#include "lm_internal.h" /* src/model */

#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef SHOEBOX_FUZZ_VLM_DIR_DEFAULT
#define SHOEBOX_FUZZ_VLM_DIR_DEFAULT "tests/data/vlm"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fixtures[] = { "idefics3", "llava15", "llava_qwen" };
enum { NFIX = 3 };
static char dirs[NFIX][128];

static void cleanup(void)
{
    static const char *const names[] = { "model.safetensors",        "tokenizer.json",
                                         "tokenizer_config.json",    "processor_config.json",
                                         "preprocessor_config.json", "config.json" };
    char p[PATH_MAX];
    for (int i = 0; i < NFIX; i++) {
        if (!dirs[i][0])
            continue;
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
            snprintf(p, sizeof(p), "%s/%s", dirs[i], names[k]);
            unlink(p);
        }
        rmdir(dirs[i]);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *src = getenv("SHOEBOX_FUZZ_VLM_DIR");
    if (!src)
        src = SHOEBOX_FUZZ_VLM_DIR_DEFAULT;
    const char *tmp = getenv("TMPDIR");
    static const char *const linked[] = { "model.safetensors", "tokenizer.json",
                                          "tokenizer_config.json", "processor_config.json" };
    atexit(cleanup);
    for (int i = 0; i < NFIX; i++) {
        snprintf(dirs[i], sizeof(dirs[i]), "%s/sb_fuzz_vlm_XXXXXX",
                 tmp && strlen(tmp) < 80 ? tmp : "/tmp");
        if (!mkdtemp(dirs[i])) {
            dirs[i][0] = '\0';
            abort();
        }
        for (size_t k = 0; k < sizeof(linked) / sizeof(linked[0]); k++) {
            char from[PATH_MAX], to[PATH_MAX], real[PATH_MAX];
            snprintf(from, sizeof(from), "%s/%s/%s", src, fixtures[i], linked[k]);
            snprintf(to, sizeof(to), "%s/%s", dirs[i], linked[k]);
            if (!realpath(from, real))
                continue; /* a fixture without this file */
            if (symlink(real, to) != 0)
                abort();
        }
    }
    return 0;
}

static void check_lm(const struct lm_config *c)
{
    if (c->hidden < 1 || c->intermediate < 1 || c->layers < 1 || c->heads < 1 || c->kv_heads < 1 ||
        c->heads % c->kv_heads || c->head_dim < 2 || c->head_dim % 2 || c->vocab < 1 ||
        c->max_pos < 1)
        __builtin_trap();
    if (!(c->rms_eps >= 0.0f) || !isfinite(c->rms_eps) || !(c->rope_theta > 0.0f) ||
        !isfinite(c->rope_theta))
        __builtin_trap();
    /* bos may exceed the vocabulary: nothing reads lm_config.bos (the tokenizer's is used) */
    if (c->n_eos < 0 || c->n_eos > LM_MAX_STOP || c->bos < -1)
        __builtin_trap();
    for (int i = 0; i < c->n_eos; i++) {
        if (c->eos[i] < 0 || c->eos[i] >= c->vocab)
            __builtin_trap();
    }
    if (c->rope != LM_ROPE_DEFAULT && !(c->rope_factor > 0.0f && isfinite(c->rope_factor)))
        __builtin_trap();
}

static void write_file(const char *dir, const char *name, const char *data, size_t n)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return -1;
    int fix = data[0] % NFIX;
    const char *cfg = (const char *)data + 1;
    size_t rest = size - 1;
    const char *nul1 = memchr(cfg, '\0', rest);
    size_t cfg_len = nul1 ? (size_t)(nul1 - cfg) : rest;
    const char *gen = nul1 ? nul1 + 1 : NULL;
    size_t gen_rest = nul1 ? rest - cfg_len - 1 : 0;
    const char *nul2 = gen ? memchr(gen, '\0', gen_rest) : NULL;
    size_t gen_len = nul2 ? (size_t)(nul2 - gen) : gen_rest;
    const char *pre = nul2 ? nul2 + 1 : NULL;
    size_t pre_len = nul2 ? gen_rest - gen_len - 1 : 0;

    struct sb_err err;
    static const char *const keys[] = { NULL, "text_config" };
    for (int k = 0; k < 2; k++) {
        struct lm_config c;
        memset(&c, 0, sizeof(c));
        if (lm_config_parse(cfg, cfg_len, keys[k], &c, &err) != SB_OK)
            continue;
        check_lm(&c);
        if (gen && lm_generation_config_parse(gen, gen_len, &c, &err) == SB_OK)
            check_lm(&c);
    }

    write_file(dirs[fix], "config.json", cfg, cfg_len);
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/preprocessor_config.json", dirs[fix]);
    if (pre)
        write_file(dirs[fix], "preprocessor_config.json", pre, pre_len);
    else
        unlink(p);
    struct vlm_load_params lp = vlm_load_default_params();
    lp.blas_threads = 1;
    lp.split_image = (data[0] / NFIX) & 1;
    struct vlm_model *m = NULL;
    if (vlm_model_load(dirs[fix], &lp, &m, &err) == SB_OK) {
        if (vlm_model_image_size(m) < 1 || vlm_model_image_tokens(m) < 1 ||
            vlm_model_max_images(m) < 1)
            __builtin_trap();
        vlm_model_free(m);
    } else if (!err.msg[0]) {
        __builtin_trap();
    }
    return 0;
}
