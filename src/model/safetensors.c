/* safetensors.c - parsing and validating safetensors files (huggingface/safetensors format:
 * u64 LE header size N, N bytes of UTF-8 JSON {name: {dtype, shape, data_offsets}, ...,
 * "__metadata__": {...}}, then the data section; offsets are relative to its start).
 * Everything here is untrusted input: every size is checked before use. */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    enum st_dtype dtype;
    size_t size;
} dtypes[] = {
    { "F64", ST_F64, 8 },   { "F32", ST_F32, 4 },         { "F16", ST_F16, 2 },
    { "BF16", ST_BF16, 2 }, { "I64", ST_I64, 8 },         { "I32", ST_I32, 4 },
    { "I16", ST_I16, 2 },   { "I8", ST_I8, 1 },           { "U8", ST_U8, 1 },
    { "BOOL", ST_BOOL, 1 }, { "F8_E4M3", ST_F8_E4M3, 1 }, { "F8_E5M2", ST_F8_E5M2, 1 },
    { "U16", ST_U16, 2 },   { "U32", ST_U32, 4 },         { "U64", ST_U64, 8 },
};
#define N_DTYPES (sizeof(dtypes) / sizeof(dtypes[0]))

const char *st_dtype_name(enum st_dtype d)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == d)
            return dtypes[i].name;
    return "?";
}

size_t st_dtype_size(enum st_dtype d)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == d)
            return dtypes[i].size;
    return 0;
}

static bool dtype_from_name(const char *s, enum st_dtype *out)
{
    for (size_t i = 0; i < N_DTYPES; i++)
        if (strcmp(dtypes[i].name, s) == 0) {
            *out = dtypes[i].dtype;
            return true;
        }
    return false;
}

/* A JSON number that is a whole number in [0, 2^53]. */
static bool json_u53(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j))
        return false;
    double v = j->valuedouble;
    if (!(v >= 0.0 && v <= 9007199254740992.0) || v != (double)(uint64_t)v)
        return false;
    *out = (uint64_t)v;
    return true;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const struct st_tensor *x = *(const struct st_tensor *const *)a;
    const struct st_tensor *y = *(const struct st_tensor *const *)b;
    if (x->data != y->data)
        return x->data < y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : (x->nbytes > y->nbytes);
}

/* Parses one tensor entry j (called name) into t. */
static int parse_entry(const cJSON *j, const char *fname, const unsigned char *data,
                       size_t data_len, struct st_tensor *t, struct sb_err *err)
{
    const char *name = j->string;
    if (!cJSON_IsObject(j))
        return sb_fail(err, SB_ECORRUPT, "'%s': tensor '%s' is not an object", fname, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs))
        return sb_fail(err, SB_ECORRUPT, "'%s': tensor '%s' lacks dtype, shape or data_offsets",
                       fname, name);
    if (!dtype_from_name(dt->valuestring, &t->dtype))
        return sb_fail(err, SB_EFORMAT, "'%s': tensor '%s' has unknown dtype '%.32s'", fname, name,
                       dt->valuestring);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > ST_MAX_DIMS)
        return sb_fail(err, SB_EFORMAT, "'%s': tensor '%s' has %d dimensions (max %d)", fname, name,
                       ndim, ST_MAX_DIMS);
    t->ndim = ndim;
    size_t numel = 1;
    int d = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, shape)
    {
        uint64_t v;
        if (!json_u53(e, &v) || v > INT64_MAX || !sb_mul_size(numel, (size_t)v, &numel))
            return sb_fail(err, SB_ECORRUPT, "'%s': tensor '%s' has a bad shape", fname, name);
        t->shape[d++] = (int64_t)v;
    }
    uint64_t b0, b1;
    if (cJSON_GetArraySize(offs) != 2 || !json_u53(cJSON_GetArrayItem(offs, 0), &b0) ||
        !json_u53(cJSON_GetArrayItem(offs, 1), &b1) || b0 > b1)
        return sb_fail(err, SB_ECORRUPT, "'%s': tensor '%s' has bad data_offsets", fname, name);
    if (b1 > data_len)
        return sb_fail(err, SB_ECORRUPT,
                       "'%s': tensor '%s' data [%llu, %llu) is past the end of the data (%zu "
                       "bytes): truncated file?",
                       fname, name, (unsigned long long)b0, (unsigned long long)b1, data_len);
    size_t nbytes;
    if (!sb_mul_size(numel, st_dtype_size(t->dtype), &nbytes) || nbytes != b1 - b0)
        return sb_fail(err, SB_ECORRUPT,
                       "'%s': tensor '%s' has %llu bytes but its shape and dtype need %zu", fname,
                       name, (unsigned long long)(b1 - b0), nbytes);
    t->numel = numel;
    t->nbytes = nbytes;
    t->data = data + b0;
    return SB_OK;
}

int st_parse(const unsigned char *buf, size_t len, const char *name, struct st_file *f,
             struct sb_err *err)
{
    struct st_file r = { 0 };
    cJSON *root = NULL;
    struct st_tensor **order = NULL;
    int rc = SB_OK;
    if (len < 8) {
        rc = sb_fail(err, SB_ECORRUPT, "'%s': %zu bytes is too short for safetensors", name, len);
        goto out;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    if (hlen > ST_MAX_HEADER) {
        rc = sb_fail(err, SB_ETOOBIG, "'%s': header of %llu bytes is over the %llu byte cap", name,
                     (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
        goto out;
    }
    if (hlen > len - 8) {
        rc = sb_fail(err, SB_ECORRUPT,
                     "'%s': header length %llu is past the end of the file (%zu bytes)", name,
                     (unsigned long long)hlen, len);
        goto out;
    }
    const unsigned char *data = buf + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;
    r.header = malloc((size_t)hlen + 1);
    if (!r.header) {
        rc = sb_fail(err, SB_ENOMEM, "'%s': no memory for the header", name);
        goto out;
    }
    memcpy(r.header, buf + 8, (size_t)hlen);
    r.header[hlen] = '\0';
    r.header_len = (size_t)hlen;
    root = cJSON_ParseWithLength(r.header, (size_t)hlen);
    if (!cJSON_IsObject(root)) {
        rc = sb_fail(err, SB_ECORRUPT, "'%s': header is not a JSON object", name);
        goto out;
    }
    size_t n = 0;
    const cJSON *j;
    cJSON_ArrayForEach(j, root)
    {
        if (strcmp(j->string, "__metadata__") != 0)
            n++;
    }
    if (n > ST_MAX_TENSORS) {
        rc = sb_fail(err, SB_ETOOBIG, "'%s': %zu tensors is too many", name, n);
        goto out;
    }
    r.t = calloc(n ? n : 1, sizeof(*r.t));
    order = calloc(n ? n : 1, sizeof(*order));
    if (!r.t || !order) {
        rc = sb_fail(err, SB_ENOMEM, "'%s': no memory for %zu tensors", name, n);
        goto out;
    }
    cJSON_ArrayForEach(j, root)
    {
        if (strcmp(j->string, "__metadata__") == 0)
            continue;
        struct st_tensor *t = &r.t[r.n];
        rc = parse_entry(j, name, data, data_len, t, err);
        if (rc)
            goto out;
        t->name = sb_strdup(j->string);
        if (!t->name) {
            rc = sb_fail(err, SB_ENOMEM, "'%s': no memory", name);
            goto out;
        }
        order[r.n] = t;
        r.n++;
    }
    /* Overlapping ranges mean a corrupt or hostile file (the format forbids them). */
    qsort(order, r.n, sizeof(*order), cmp_by_offset);
    for (size_t i = 1; i < r.n; i++) {
        const struct st_tensor *a = order[i - 1], *b = order[i];
        if (a->nbytes && b->nbytes && a->data + a->nbytes > b->data) {
            rc = sb_fail(err, SB_ECORRUPT, "'%s': tensors '%s' and '%s' overlap", name, a->name,
                         b->name);
            goto out;
        }
    }
    *f = r;
    r = (struct st_file){ 0 };
out:
    free(order);
    cJSON_Delete(root);
    st_file_release(&r);
    return rc;
}

void st_file_release(struct st_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->t[i].name);
    free(f->t);
    free(f->header);
    *f = (struct st_file){ 0 };
}

const struct st_tensor *st_find(const struct st_file *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0)
            return &f->t[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* A model folder's weight files: model.safetensors, or the shards its index names */

#define MAX_JSON_FILE ((size_t)16 << 20) /* model.safetensors.index.json */
#define MAX_SHARDS    1024

int st_join_path(char *buf, size_t cap, const char *dir, const char *name, struct sb_err *err)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return sb_fail(err, SB_EINVAL, "path '%s/%s' is too long", dir, name);
    return SB_OK;
}

bool st_file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int map_file(const char *path, struct clip_mapping *m, struct sb_err *err)
{
    int rc = SB_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return sb_fail(err, sb_code_from_errno(e), "open '%s': %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "stat '%s': %s", path, strerror(e));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0) {
        rc = sb_fail(err, SB_ECORRUPT, "'%s': empty or not a regular file", path);
        goto out;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "mmap '%s': %s", path, strerror(e));
        goto out;
    }
    m->addr = p;
    m->len = (size_t)st.st_size;
out:
    close(fd);
    return rc;
}

/* Adds a shard file name (from the index) unless already listed. */
static int add_shard(char ***names, size_t *n, const char *s, struct sb_err *err)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*names)[i], s) == 0)
            return SB_OK;
    /* a shard lives beside the index: no paths, no hidden files */
    if (!s[0] || s[0] == '.' || strchr(s, '/') || strlen(s) > 255)
        return sb_fail(err, SB_ECORRUPT, "model.safetensors.index.json: bad shard name '%.60s'", s);
    if (*n >= MAX_SHARDS)
        return sb_fail(err, SB_ETOOBIG, "model.safetensors.index.json: too many shards");
    char **grown = realloc(*names, (*n + 1) * sizeof(**names));
    if (!grown)
        return sb_fail(err, SB_ENOMEM, "no memory for shard names");
    *names = grown;
    grown[*n] = sb_strdup(s);
    if (!grown[*n])
        return sb_fail(err, SB_ENOMEM, "no memory for shard names");
    (*n)++;
    return SB_OK;
}

static int read_index(const char *path, char ***names, size_t *n, struct sb_err *err)
{
    unsigned char *buf = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    int rc = sb_read_file(path, MAX_JSON_FILE, &buf, &len, err);
    if (rc)
        goto out;
    root = cJSON_ParseWithLength((const char *)buf, len);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) {
        rc = sb_fail(err, SB_ECORRUPT, "'%s': no weight_map object", path);
        goto out;
    }
    const cJSON *j;
    cJSON_ArrayForEach(j, wm)
    {
        if (!cJSON_IsString(j)) {
            rc = sb_fail(err, SB_ECORRUPT, "'%s': weight_map entry '%.60s' is not a file name",
                         path, j->string);
            goto out;
        }
        rc = add_shard(names, n, j->valuestring, err);
        if (rc)
            goto out;
    }
    if (*n == 0)
        rc = sb_fail(err, SB_ECORRUPT, "'%s': weight_map is empty", path);
out:
    cJSON_Delete(root);
    free(buf);
    return rc;
}

int st_weights_open(struct st_weights *m, const char *dir, struct sb_err *err)
{
    char path[4096];
    char **names = NULL;
    size_t n = 0;
    int rc = st_join_path(path, sizeof(path), dir, "model.safetensors", err);
    if (rc)
        goto out;
    if (st_file_exists(path)) {
        rc = add_shard(&names, &n, "model.safetensors", err);
    } else {
        rc = st_join_path(path, sizeof(path), dir, "model.safetensors.index.json", err);
        if (rc)
            goto out;
        if (!st_file_exists(path)) {
            rc = sb_fail(err, SB_ENOENT,
                         "'%s': no model.safetensors or model.safetensors.index.json", dir);
            goto out;
        }
        rc = read_index(path, &names, &n, err);
    }
    if (rc)
        goto out;
    m->files = calloc(n, sizeof(*m->files));
    m->maps = calloc(n, sizeof(*m->maps));
    if (!m->files || !m->maps) {
        rc = sb_fail(err, SB_ENOMEM, "no memory for %zu weight files", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        rc = st_join_path(path, sizeof(path), dir, names[i], err);
        if (rc)
            goto out;
        rc = map_file(path, &m->maps[i], err);
        if (rc)
            goto out;
        m->n_files = i + 1;
        rc = st_parse(m->maps[i].addr, m->maps[i].len, names[i], &m->files[i], err);
        if (rc)
            goto out;
    }
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

void st_weights_close(struct st_weights *w)
{
    for (size_t i = 0; i < w->n_files; i++) {
        st_file_release(&w->files[i]);
        munmap(w->maps[i].addr, w->maps[i].len);
    }
    free(w->files);
    free(w->maps);
    memset(w, 0, sizeof(*w));
}

const struct st_tensor *st_weights_find(const struct st_weights *w, const char *name)
{
    for (size_t i = 0; i < w->n_files; i++) {
        const struct st_tensor *t = st_find(&w->files[i], name);
        if (t)
            return t;
    }
    return NULL;
}

int st_weights_check(const struct st_weights *w, const char *name, int ndim, const int64_t *shape,
                     const struct st_tensor **out, struct sb_err *err)
{
    const struct st_tensor *t = st_weights_find(w, name);
    if (!t)
        return sb_fail(err, SB_EMODEL, "tensor '%s' is missing", name);
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return sb_fail(err, SB_EMODEL, "tensor '%s': dtype %s is not supported (F32, F16, BF16)",
                       name, st_dtype_name(t->dtype));
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char want[96] = "", got[96] = "";
        size_t wl = 0, gl = 0;
        for (int i = 0; i < ndim && wl < sizeof(want); i++)
            wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "%s%lld", i ? "," : "",
                                   (long long)shape[i]);
        for (int i = 0; i < t->ndim && gl < sizeof(got); i++)
            gl += (size_t)snprintf(got + gl, sizeof(got) - gl, "%s%lld", i ? "," : "",
                                   (long long)t->shape[i]);
        return sb_fail(err, SB_EMODEL, "tensor '%s' has shape (%s), expected (%s)", name, got,
                       want);
    }
    *out = t;
    return SB_OK;
}
