/* fuzz_config.c - libFuzzer target: clip_config_parse() (config.json) and
 * clip_preproc_parse() (preprocessor_config.json) on arbitrary bytes. A config that parses
 * must satisfy the invariants the loader relies on (sizes in range, heads dividing hidden). */
#include "shoebox/err.h"

#include "internal.h" /* src/model */

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct clip_config c;
    struct clip_preproc_config p;
    struct sb_err err;
    const char *json = (const char *)data;
    int image_size = 224;
    if (clip_config_parse(json, size, &c, &err) == SB_OK) {
        if (c.text.hidden % c.text.heads || c.vision.hidden % c.vision.heads ||
            c.patch_size > c.image_size || c.image_size < 1 || c.proj_dim < 1)
            __builtin_trap();
        image_size = c.image_size;
    }
    if (clip_preproc_parse(json, size, image_size, &p, &err) == SB_OK) {
        if (p.std[0] == 0.0f || p.std[1] == 0.0f || p.std[2] == 0.0f)
            __builtin_trap();
    }
    return 0;
}
