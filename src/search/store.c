/* store.c - the per-model vector cache file: "<cache_dir>/vectors-<model id>.f16".
 *
 * Layout (little-endian): a 64-byte header {magic "SBVECF16", u32 format 4, u32 dim,
 * u64 count, i64 vector version, i64 model id, zero padding}, then count i64 photo ids
 * (ascending), count f32 scales, count f32 residuals, count f32 code norms, count x
 * search_code_bytes(dim) packed 6-bit codes (padded to a multiple of 8 bytes), and count x dim
 * fp16 values. A file of another format (2 held int8 codes, 3 the codes in another bit order)
 * is rebuilt, never read. The scan reads the codes; the fp16 rows are touched only to rescore
 * candidates (see search_topk). Written to a temporary file and renamed, so a reader sees the
 * old file or the new one, never half of one. */
#include "shoebox/search.h"

#include "shoebox/catalog.h"
#include "shoebox/err.h"
#include "shoebox/util.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_SIZE 64
static const char magic[8] = { 'S', 'B', 'V', 'E', 'C', 'F', '1', '6' };

struct file_header {
    char magic[8];
    uint32_t format, dim;
    uint64_t count;
    int64_t version, model_id;
    unsigned char pad[HEADER_SIZE - 40];
};

struct vec_store {
    struct vec_matrix m;
    int64_t model_id, version;
    char *name;
    char *near_path; /* the near-duplicate pair cache */
    /* the present-photo mask, for the catalog's present generation present_gen */
    pthread_mutex_t present_mu; /* guards present, present_gen */
    unsigned char *present;     /* m.n bytes, or NULL */
    int64_t present_gen;
    void *map; /* the mmapped file, or NULL when the matrix lives in own_* */
    size_t map_len;
    uint16_t *own_data;
    int64_t *own_ids;
    uint8_t *own_codes;
    float *own_scales, *own_resid, *own_cnorm;
};

#define FORMAT 4

/* Byte offsets of the sections for n rows of dim; false on overflow. */
struct layout {
    size_t ids, scales, resid, cnorm, codes, data, total;
};

static bool layout_of(size_t n, size_t dim, struct layout *l)
{
    size_t ids, f, codes, data;
    if (!sb_mul_size(n, 8, &ids) || !sb_mul_size(n, 4, &f) ||
        !sb_mul_size(n, search_code_bytes((int)dim), &codes) || !sb_mul3_size(n, dim, 2, &data))
        return false;
    codes = (codes + 7) & ~(size_t)7;
    l->ids = HEADER_SIZE;
    l->scales = l->ids + ids;
    l->resid = l->scales + f;
    l->cnorm = l->resid + f;
    l->codes = l->cnorm + f;
    return sb_add_size(l->codes, codes, &l->data) && sb_add_size(l->data, data, &l->total);
}

_Static_assert(sizeof(struct file_header) == HEADER_SIZE, "header layout");

const struct vec_matrix *vec_store_matrix(const struct vec_store *s)
{
    return &s->m;
}

void vec_store_close(struct vec_store *s)
{
    if (!s)
        return;
    if (s->map)
        munmap(s->map, s->map_len);
    free(s->own_data);
    free(s->own_ids);
    free(s->own_codes);
    free(s->own_scales);
    free(s->own_resid);
    free(s->own_cnorm);
    free(s->name);
    free(s->near_path);
    free(s->present);
    pthread_mutex_destroy(&s->present_mu);
    free(s);
}

int vec_store_mask(struct vec_store *s, struct catalog *cat, const struct catalog_filter *f,
                   unsigned char **mask, struct sb_err *err)
{
    const struct vec_matrix *m = &s->m;
    unsigned char *out = malloc(m->n ? m->n : 1);
    int64_t *ids = NULL, gen = 0;
    size_t n = 0;
    bool plain = catalog_filter_empty(f);
    if (!out)
        return sb_fail(err, SB_ENOMEM, "search: out of memory");
    int rc = plain ? catalog_present_generation(cat, &gen, err) : SB_OK;
    if (rc)
        goto out;
    if (plain) {
        pthread_mutex_lock(&s->present_mu);
        bool hit = s->present && s->present_gen == gen;
        if (hit)
            memcpy(out, s->present, m->n);
        pthread_mutex_unlock(&s->present_mu);
        if (hit)
            goto done;
    }
    /* the generation was read first: a change in between makes the next call refresh */
    rc = catalog_filter_photos(cat, f, &ids, &n, err);
    if (rc)
        goto out;
    search_mask_from_ids(m, ids, n, out);
    if (plain) {
        unsigned char *copy = malloc(m->n ? m->n : 1);
        if (copy) {
            memcpy(copy, out, m->n);
            pthread_mutex_lock(&s->present_mu);
            free(s->present);
            s->present = copy;
            s->present_gen = gen;
            pthread_mutex_unlock(&s->present_mu);
        }
    }
done:
    *mask = out;
    out = NULL;
out:
    free(out);
    free(ids);
    return rc;
}

int vec_store_near_groups(const struct vec_store *s, const unsigned char *mask, float threshold,
                          struct sb_pool *pool, int64_t *group, struct sb_err *err)
{
    return search_near_groups(&s->m, s->near_path, s->version, mask, threshold, pool, group, err);
}

bool vec_store_stale(const struct vec_store *s, struct catalog *cat)
{
    int64_t version = 0;
    return catalog_model_find(cat, s->name, NULL, NULL, &version, NULL) == SB_OK &&
           version != s->version;
}

/* Maps path if it is a valid cache for (model_id, version, dim). */
static struct vec_store *store_new(void)
{
    struct vec_store *s = calloc(1, sizeof(*s));
    if (s)
        pthread_mutex_init(&s->present_mu, NULL);
    return s;
}

/* The scan streams the codes and their per-row terms: asking for huge pages there lets the
 * kernel read the file into 2 MiB page-cache folios and map each with one TLB entry (a 1M-row
 * scan runs about a third faster than in 4 KiB pages, see bench/search). The fp16 rows are
 * left alone: rescoring touches a few scattered rows, and a cold read should not pull 2 MiB
 * around each. Only advice: ignored where transparent huge pages are off. */
static void advise_huge(void *map, const struct layout *l)
{
#ifdef MADV_HUGEPAGE
    long pg = sysconf(_SC_PAGESIZE);
    size_t begin = pg > 0 ? l->scales / (size_t)pg * (size_t)pg : 0;
    (void)madvise((char *)map + begin, l->data - begin, MADV_HUGEPAGE);
#else
    (void)map;
    (void)l;
#endif
}

/* Points s's matrix at the sections of the file's bytes at b (laid out as l). */
static void matrix_at(struct vec_store *s, const char *b, const struct layout *l)
{
    s->m.ids = (const int64_t *)(const void *)(b + l->ids);
    s->m.scales = (const float *)(const void *)(b + l->scales);
    s->m.resid = (const float *)(const void *)(b + l->resid);
    s->m.cnorm = (const float *)(const void *)(b + l->cnorm);
    s->m.codes = (const uint8_t *)(const void *)(b + l->codes);
    s->m.data = (const uint16_t *)(const void *)(b + l->data);
}

int vec_store_resident(struct vec_store *s, struct sb_err *err)
{
    if (!s->map)
        return SB_OK; /* empty, or the matrix is already in own memory */
    uint64_t avail = sb_mem_available();
    if (avail && s->map_len > avail / 2) /* a copy would crowd the machine: the mapping serves */
        return sb_fail(err, SB_ENOMEM,
                       "the %zu MiB vector store stays mapped: %llu MiB of memory available",
                       s->map_len >> 20, (unsigned long long)(avail >> 20));
    /* 2 MiB more, the start rounded up to 2 MiB and the rest unmapped: every 2 MiB of the
     * copy can be one huge page */
    const size_t huge = (size_t)2 << 20;
    char *raw =
        mmap(NULL, s->map_len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return sb_fail(err, SB_ENOMEM, "search: no memory for the %zu MiB vector store",
                       s->map_len >> 20);
    char *anon = raw + (huge - (uintptr_t)raw % huge) % huge; /* raw <= anon < raw + huge */
    if (anon > raw)
        munmap(raw, (size_t)(anon - raw));
    munmap(anon + s->map_len, (size_t)(raw + huge - anon));
#ifdef MADV_HUGEPAGE
    (void)madvise(anon, s->map_len, MADV_HUGEPAGE);
#endif
    memcpy(anon, s->map, s->map_len);
    (void)mprotect(anon, s->map_len, PROT_READ);
    struct layout l;
    (void)layout_of(s->m.n, (size_t)s->m.dim, &l); /* as try_map found it */
    matrix_at(s, anon, &l);
    munmap(s->map, s->map_len);
    s->map = anon;
    return SB_OK;
}

static bool try_map(struct vec_store *s, const char *path, int dim)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    struct file_header h;
    bool ok = fstat(fd, &st) == 0 && pread(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) &&
              memcmp(h.magic, magic, 8) == 0 && h.format == FORMAT && (int)h.dim == dim &&
              h.version == s->version && h.model_id == s->model_id && h.count < ((uint64_t)1 << 40);
    struct layout l;
    ok = ok && layout_of((size_t)h.count, (size_t)dim, &l) && (uint64_t)st.st_size == l.total;
    if (ok && h.count > 0) {
        void *map = mmap(NULL, l.total, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) {
            ok = false;
        } else {
            const char *b = map;
            advise_huge(map, &l);
            s->map = map;
            s->map_len = l.total;
            s->m.n = (size_t)h.count;
            s->m.dim = dim;
            matrix_at(s, b, &l);
        }
    } else if (ok) {
        s->m.n = 0;
        s->m.dim = dim;
    }
    close(fd);
    return ok;
}

struct collect {
    struct vec_store *s;
    size_t cap;
    int dim;
};

static int collect_vec(void *user, int64_t photo_id, const float *v, int dim)
{
    struct collect *c = user;
    struct vec_store *s = c->s;
    if (dim != c->dim)
        return SB_OK; /* a stray row of another size: not part of this model's matrix */
    if (s->m.n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        int64_t *ids = realloc(s->own_ids, cap * sizeof(*ids));
        if (!ids)
            return SB_ENOMEM;
        s->own_ids = ids;
        uint16_t *data = realloc(s->own_data, cap * (size_t)dim * sizeof(*data));
        if (!data)
            return SB_ENOMEM;
        s->own_data = data;
        c->cap = cap;
    }
    uint16_t *row = s->own_data + s->m.n * (size_t)dim;
    for (int i = 0; i < dim; i++)
        row[i] = search_f32_to_f16(v[i]);
    s->own_ids[s->m.n++] = photo_id;
    return SB_OK;
}

static int write_cache(const struct vec_store *s, const char *path, struct sb_err *err)
{
    struct file_header h;
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, magic, 8);
    h.format = FORMAT;
    h.dim = (uint32_t)s->m.dim;
    h.count = s->m.n;
    h.version = s->version;
    h.model_id = s->model_id;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp)
        return sb_fail(err, SB_ENOMEM, "search: out of memory");
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int rc = SB_OK;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "write '%s': %s", tmp, strerror(e));
        goto out;
    }
    bool ok = fwrite(&h, sizeof(h), 1, f) == 1;
    size_t n = s->m.n, codes = n * search_code_bytes(s->m.dim);
    static const char zeros[8] = { 0 };
    if (ok && n) {
        ok = fwrite(s->own_ids, 8, n, f) == n && fwrite(s->own_scales, 4, n, f) == n &&
             fwrite(s->own_resid, 4, n, f) == n && fwrite(s->own_cnorm, 4, n, f) == n &&
             fwrite(s->own_codes, 1, codes, f) == codes &&
             fwrite(zeros, 1, ((codes + 7) & ~(size_t)7) - codes, f) ==
                 ((codes + 7) & ~(size_t)7) - codes &&
             fwrite(s->own_data, 2 * (size_t)s->m.dim, n, f) == n;
    }
    if (fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        rc = sb_fail(err, sb_code_from_errno(e), "write '%s': %s", path, strerror(e));
    }
out:
    free(tmp);
    return rc;
}

int vec_store_open(struct catalog *cat, const char *name, const char *cache_dir,
                   struct vec_store **out, struct sb_err *err)
{
    struct vec_store *s = store_new();
    char *path = NULL;
    if (!s)
        return sb_fail(err, SB_ENOMEM, "search: out of memory");
    int dim = 0;
    s->name = sb_strdup(name);
    if (!s->name) {
        vec_store_close(s);
        return sb_fail(err, SB_ENOMEM, "search: out of memory");
    }
    int rc = catalog_model_find(cat, name, &s->model_id, &dim, &s->version, err);
    if (rc)
        goto out;
    struct sb_buf b;
    sb_buf_init(&b);
    sb_buf_printf(&b, "%s/vectors-%lld.f16", cache_dir, (long long)s->model_id);
    if (b.failed) {
        sb_buf_release(&b);
        rc = sb_fail(err, SB_ENOMEM, "search: out of memory");
        goto out;
    }
    path = b.data;
    sb_buf_init(&b);
    sb_buf_printf(&b, "%s/near-%lld.pairs", cache_dir, (long long)s->model_id);
    if (b.failed) {
        sb_buf_release(&b);
        rc = sb_fail(err, SB_ENOMEM, "search: out of memory");
        goto out;
    }
    s->near_path = b.data;
    if (try_map(s, path, dim))
        goto done;
    /* stale or absent: rebuild from the catalog */
    struct collect c = { s, 0, dim };
    s->m.n = 0;
    s->m.dim = dim;
    rc = catalog_vectors_each(cat, s->model_id, collect_vec, &c, err);
    if (rc == SB_ENOMEM)
        rc = sb_fail(err, SB_ENOMEM, "search: out of memory loading %lld vectors",
                     (long long)s->m.n);
    if (rc)
        goto out;
    s->m.ids = s->own_ids;
    s->m.data = s->own_data;
    if (s->m.n) {
        s->own_codes = malloc(s->m.n * search_code_bytes(dim));
        s->own_scales = malloc(s->m.n * sizeof(float));
        s->own_resid = malloc(s->m.n * sizeof(float));
        s->own_cnorm = malloc(s->m.n * sizeof(float));
        if (!s->own_codes || !s->own_scales || !s->own_resid || !s->own_cnorm) {
            rc = sb_fail(err, SB_ENOMEM, "search: out of memory quantizing %zu vectors", s->m.n);
            goto out;
        }
        search_quantize(&s->m, s->own_codes, s->own_scales, s->own_resid, s->own_cnorm);
        s->m.codes = s->own_codes;
        s->m.scales = s->own_scales;
        s->m.resid = s->own_resid;
        s->m.cnorm = s->own_cnorm;
    }
    /* Best effort: a read-only catalog folder still gets answers, just without the cache. */
    if (sb_mkdirs(cache_dir, NULL) == SB_OK && write_cache(s, path, NULL) == SB_OK) {
        struct vec_store *m = store_new();
        if (m) {
            m->model_id = s->model_id;
            m->version = s->version;
            m->name = s->name;
            s->name = NULL;
            m->near_path = s->near_path;
            s->near_path = NULL;
            if (try_map(m, path, dim)) {
                vec_store_close(s);
                s = m;
            } else {
                s->name = m->name;
                m->name = NULL;
                s->near_path = m->near_path;
                m->near_path = NULL;
                vec_store_close(m);
            }
        }
    }
done:
    *out = s;
    s = NULL;
out:
    free(path);
    vec_store_close(s);
    return rc;
}
