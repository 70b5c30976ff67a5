/* model_fixture.h - helpers the language-model tests (test_model_lm, _vlm, _moondream) share
 * to read their committed reference JSON (tools/ref_*.py outputs): the test data folder, and
 * id and float arrays out of cJSON arrays. */
#ifndef SHOEBOX_TEST_MODEL_FIXTURE_H
#define SHOEBOX_TEST_MODEL_FIXTURE_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>

static inline const char *data_dir(void)
{
    const char *d = getenv("SHOEBOX_TESTDATA");
    return d ? d : "tests/data";
}

/* Copies up to cap ids of a; returns how many a holds (may be more than cap). */
static inline int ids_of(const cJSON *a, int32_t *out, int cap)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        if (n < cap)
            out[n] = (int32_t)e->valuedouble;
        n++;
    }
    return n;
}

/* a as a malloc'd float array of *n values (NULL when out of memory). */
static inline float *floats_of(const cJSON *a, int *n)
{
    *n = cJSON_GetArraySize(a);
    float *f = calloc((size_t)*n + 1, sizeof(float));
    if (!f)
        return NULL;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        f[i++] = (float)e->valuedouble;
    }
    return f;
}

#endif
