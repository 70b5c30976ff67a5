/* hub.c - Hugging Face hub client: file listing, resumable verified downloads, the installed
 * models list (see hub.h). The invariant: a file under its final name is whole and verified;
 * everything in flight lives in "<name>.part" and is renamed into place only after its size
 * and (when the hub gives one) SHA-256 matched. */
#include "shoebox/hub.h"
#include "shoebox/err.h"
#include "shoebox/progress.h"
#include "shoebox/util.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HUB_MAX_FILE  ((int64_t)1 << 40) /* 1 TiB: the cap for a file whose size is unknown */
#define HUB_MAX_ERROR 2048               /* bytes of an HTTP error body kept for the message */
#define HUB_MAX_FILES 100000             /* siblings in one listing */

/* ------------------------------------------------------------------------------------------ */
/* SHA-256, FIPS 180-4 section 6.2                                                             */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 =
            k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[t] + w[t];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += k;
}

void hub_sha256_init(struct hub_sha256 *s)
{
    static const uint32_t h0[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                    0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };
    memcpy(s->h, h0, sizeof(h0));
    s->nbytes = 0;
    s->nblock = 0;
}

void hub_sha256_update(struct hub_sha256 *s, const void *data, size_t n)
{
    const unsigned char *p = data;
    s->nbytes += n;
    if (s->nblock) {
        size_t take = 64 - s->nblock < n ? 64 - s->nblock : n;
        memcpy(s->block + s->nblock, p, take);
        s->nblock += take;
        p += take;
        n -= take;
        if (s->nblock < 64)
            return;
        sha_block(s->h, s->block);
        s->nblock = 0;
    }
    for (; n >= 64; p += 64, n -= 64)
        sha_block(s->h, p);
    memcpy(s->block, p, n);
    s->nblock = n;
}

void hub_sha256_final(struct hub_sha256 *s, char hex[65])
{
    uint64_t bits = s->nbytes * 8;
    unsigned char pad[72] = { 0x80 };
    /* pad to 56 mod 64, then the message length in bits, big-endian (section 5.1.1) */
    size_t npad = s->nblock < 56 ? 56 - s->nblock : 120 - s->nblock;
    for (int i = 0; i < 8; i++)
        pad[npad + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
    uint64_t keep = s->nbytes;
    hub_sha256_update(s, pad, npad + 8);
    s->nbytes = keep;
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) {
            unsigned v = (s->h[i] >> (24 - 8 * j)) & 0xff;
            hex[8 * i + 2 * j] = digits[v >> 4];
            hex[8 * i + 2 * j + 1] = digits[v & 15];
        }
    hex[64] = '\0';
}

/* Hashes the first n bytes of the open file fd into s. */
static int sha_file_prefix(int fd, int64_t n, struct hub_sha256 *s, const char *path,
                           struct sb_err *err)
{
    unsigned char buf[1 << 16];
    if (lseek(fd, 0, SEEK_SET) < 0)
        goto fail;
    while (n > 0) {
        size_t want = n < (int64_t)sizeof(buf) ? (size_t)n : sizeof(buf);
        ssize_t got = read(fd, buf, want);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            goto fail;
        if (got == 0)
            return sb_fail(err, SB_EIO, "read '%s': file shrank while hashing", path);
        hub_sha256_update(s, buf, (size_t)got);
        n -= got;
    }
    return SB_OK;
fail:;
    int e = errno;
    return sb_fail(err, sb_code_from_errno(e), "read '%s': %s", path, strerror(e));
}

/* ------------------------------------------------------------------------------------------ */
/* Names                                                                                       */

struct hub_params hub_default_params(void)
{
    struct hub_params p;
    memset(&p, 0, sizeof(p));
    p.endpoint = HUB_DEFAULT_ENDPOINT;
    p.revision = HUB_DEFAULT_REVISION;
    p.connect_timeout = 30;
    p.low_speed_limit = 1024;
    p.low_speed_time = 60;
    return p;
}

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static int check_part(const char *s, size_t n, const char *repo, struct sb_err *err)
{
    if (n == 0 || n > 96)
        return sb_fail(err, SB_EINVAL, "repo id '%s': each part needs 1 to 96 characters", repo);
    for (size_t i = 0; i < n; i++) {
        if (!word_char(s[i]) && s[i] != '-' && s[i] != '.')
            return sb_fail(err, SB_EINVAL,
                           "repo id '%s': only letters, digits, '-', '_' and '.' are allowed",
                           repo);
        if (i > 0 && (s[i] == '-' || s[i] == '.') && s[i - 1] == s[i])
            return sb_fail(err, SB_EINVAL, "repo id '%s': \"--\" and \"..\" are not allowed", repo);
    }
    if (!word_char(s[0]) || !word_char(s[n - 1]))
        return sb_fail(err, SB_EINVAL, "repo id '%s': a part must not start or end with '-' or '.'",
                       repo);
    return SB_OK;
}

int hub_repo_check(const char *repo, struct sb_err *err)
{
    if (!repo || !*repo)
        return sb_fail(err, SB_EINVAL, "repo id is empty (expected ORG/NAME)");
    const char *slash = strchr(repo, '/');
    int rc;
    if (slash) {
        rc = check_part(repo, (size_t)(slash - repo), repo, err);
        if (rc)
            return rc;
        rc = check_part(slash + 1, strlen(slash + 1), repo, err);
    } else {
        rc = check_part(repo, strlen(repo), repo, err);
    }
    if (rc)
        return rc;
    size_t n = strlen(repo);
    if (n >= 4 && strcmp(repo + n - 4, ".git") == 0)
        return sb_fail(err, SB_EINVAL, "repo id '%s' must not end with .git", repo);
    return SB_OK;
}

int hub_repo_folder(const char *repo, char *buf, size_t cap, struct sb_err *err)
{
    int rc = hub_repo_check(repo, err);
    if (rc)
        return rc;
    const char *slash = strchr(repo, '/');
    int n = slash ? snprintf(buf, cap, "%.*s--%s", (int)(slash - repo), repo, slash + 1)
                  : snprintf(buf, cap, "%s", repo);
    if (n < 0 || (size_t)n >= cap)
        return sb_fail(err, SB_ETOOBIG, "folder name for '%s' is too long", repo);
    return SB_OK;
}

/* A file name from the hub that we may write into our folder: one plain path component. */
static bool plain_name(const char *s)
{
    if (!s || !*s || s[0] == '.' || strlen(s) > 200)
        return false;
    for (const char *p = s; *p; p++)
        if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20)
            return false;
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Listings                                                                                    */

void hub_listing_free(struct hub_listing *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->nfiles; i++)
        free(l->files[i].name);
    free(l->files);
    free(l->commit);
    free(l);
}

static struct hub_listing *listing_new(size_t cap)
{
    struct hub_listing *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->files = calloc(cap ? cap : 1, sizeof(*l->files));
    if (!l->files) {
        free(l);
        return NULL;
    }
    return l;
}

/* Appends a copy of f; the caller made room (cap from listing_new). */
static int listing_add(struct hub_listing *l, const struct hub_file *f)
{
    struct hub_file *d = &l->files[l->nfiles];
    d->name = sb_strdup(f->name);
    if (!d->name)
        return SB_ENOMEM;
    d->size = f->size;
    memcpy(d->sha256, f->sha256, sizeof(d->sha256));
    l->nfiles++;
    return SB_OK;
}

static const struct hub_file *listing_find(const struct hub_listing *l, const char *name)
{
    for (size_t i = 0; i < l->nfiles; i++)
        if (strcmp(l->files[i].name, name) == 0)
            return &l->files[i];
    return NULL;
}

static bool json_size(const cJSON *j, int64_t *out)
{
    if (!cJSON_IsNumber(j) || !(j->valuedouble >= 0) || j->valuedouble > 9007199254740992.0)
        return false;
    *out = (int64_t)j->valuedouble;
    return true;
}

static bool hex64(const char *s, char out[65])
{
    if (!s || strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c - 'A' + 'a');
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        out[i] = c;
    }
    out[64] = '\0';
    return true;
}

static int parse_listing(const char *body, size_t len, const char *repo, struct hub_listing **out,
                         struct sb_err *err)
{
    struct hub_listing *l = NULL;
    int rc = SB_OK;
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *sib = root ? cJSON_GetObjectItemCaseSensitive(root, "siblings") : NULL;
    if (!cJSON_IsArray(sib)) {
        rc =
            sb_fail(err, SB_EFORMAT, "list '%s': the hub's answer has no \"siblings\" array", repo);
        goto out;
    }
    size_t n = (size_t)cJSON_GetArraySize(sib);
    if (n > HUB_MAX_FILES) {
        rc = sb_fail(err, SB_ETOOBIG, "list '%s': %zu files is over the limit of %d", repo, n,
                     HUB_MAX_FILES);
        goto out;
    }
    l = listing_new(n);
    if (!l) {
        rc = sb_fail(err, SB_ENOMEM, "list '%s': out of memory", repo);
        goto out;
    }
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(root, "sha");
    if (cJSON_IsString(sha) && sha->valuestring[0] && strlen(sha->valuestring) < 64) {
        l->commit = sb_strdup(sha->valuestring);
        if (!l->commit) {
            rc = sb_fail(err, SB_ENOMEM, "list '%s': out of memory", repo);
            goto out;
        }
    }
    const cJSON *s;
    cJSON_ArrayForEach(s, sib)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(s, "rfilename");
        if (!cJSON_IsString(name) || !name->valuestring[0]) {
            rc = sb_fail(err, SB_EFORMAT, "list '%s': a sibling has no \"rfilename\"", repo);
            goto out;
        }
        struct hub_file f = { .name = name->valuestring, .size = -1 };
        const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(s, "lfs");
        int64_t size;
        if (cJSON_IsObject(lfs)) {
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(lfs, "sha256");
            if (cJSON_IsString(h) && !hex64(h->valuestring, f.sha256)) {
                rc = sb_fail(err, SB_EFORMAT, "list '%s': '%s' has a malformed lfs.sha256", repo,
                             f.name);
                goto out;
            }
            if (json_size(cJSON_GetObjectItemCaseSensitive(lfs, "size"), &size))
                f.size = size;
        }
        if (f.size < 0 && json_size(cJSON_GetObjectItemCaseSensitive(s, "size"), &size))
            f.size = size;
        if (listing_add(l, &f)) {
            rc = sb_fail(err, SB_ENOMEM, "list '%s': out of memory", repo);
            goto out;
        }
    }
    *out = l;
    l = NULL;
out:
    hub_listing_free(l);
    cJSON_Delete(root);
    return rc;
}

/* The files a CLIP / SigLIP / VLM folder reads besides the weights. */
static const char *const wanted_files[] = {
    "config.json",        "preprocessor_config.json", "processor_config.json",
    "tokenizer.json",     "tokenizer_config.json",    "vocab.json",
    "merges.txt",         "special_tokens_map.json",  "added_tokens.json",
    "spiece.model",       "tokenizer.model",          "generation_config.json",
    "chat_template.json", "chat_template.jinja",
};

int hub_select_files(const struct hub_listing *all, struct hub_listing **out, struct sb_err *err)
{
    const size_t nwanted = sizeof(wanted_files) / sizeof(wanted_files[0]);
    struct hub_listing *sel = listing_new(nwanted + 1);
    int rc = SB_OK;
    if (!sel || (all->commit && !(sel->commit = sb_strdup(all->commit)))) {
        rc = sb_fail(err, SB_ENOMEM, "select files: out of memory");
        goto out;
    }
    if (!listing_find(all, "config.json")) {
        rc = sb_fail(err, SB_EMODEL, "the repo has no config.json: not a transformers model");
        goto out;
    }
    for (size_t i = 0; i < nwanted; i++) {
        const struct hub_file *f = listing_find(all, wanted_files[i]);
        if (f && listing_add(sel, f)) {
            rc = sb_fail(err, SB_ENOMEM, "select files: out of memory");
            goto out;
        }
    }
    const struct hub_file *w = listing_find(all, "model.safetensors");
    if (!w)
        w = listing_find(all, "model.safetensors.index.json");
    if (!w) {
        bool bin = false;
        for (size_t i = 0; i < all->nfiles; i++)
            bin = bin || ends_with(all->files[i].name, ".bin");
        if (bin)
            rc = sb_fail(err, SB_EMODEL,
                         "this repo only has PyTorch .bin weights; shoebox reads safetensors");
        else
            rc = sb_fail(err, SB_EMODEL,
                         "no model.safetensors or model.safetensors.index.json in the repo");
        goto out;
    }
    if (listing_add(sel, w)) {
        rc = sb_fail(err, SB_ENOMEM, "select files: out of memory");
        goto out;
    }
    *out = sel;
    sel = NULL;
out:
    hub_listing_free(sel);
    return rc;
}

/* The shard names of a model.safetensors.index.json ("weight_map" values, each once, in order
 * of first appearance). *out is a malloc'd array of malloc'd names. */
static int index_shards(const char *path, char ***out, size_t *n, struct sb_err *err)
{
    unsigned char *data = NULL;
    size_t len = 0, count = 0;
    char **names = NULL;
    cJSON *root = NULL;
    int rc = sb_read_file(path, HUB_MAX_JSON, &data, &len, err);
    if (rc)
        goto out;
    root = cJSON_ParseWithLength((const char *)data, len);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        rc = sb_fail(err, SB_EFORMAT, "read '%s': no \"weight_map\" object", path);
        goto out;
    }
    size_t cap = (size_t)cJSON_GetArraySize(map);
    names = calloc(cap ? cap : 1, sizeof(*names));
    if (!names) {
        rc = sb_fail(err, SB_ENOMEM, "read '%s': out of memory", path);
        goto out;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, map)
    {
        if (!cJSON_IsString(e) || !plain_name(e->valuestring) ||
            !ends_with(e->valuestring, ".safetensors")) {
            rc = sb_fail(err, SB_EFORMAT, "read '%s': tensor '%s' maps to a bad shard name", path,
                         e->string ? e->string : "?");
            goto out;
        }
        bool seen = false;
        for (size_t i = 0; i < count && !seen; i++)
            seen = strcmp(names[i], e->valuestring) == 0;
        if (seen)
            continue;
        names[count] = sb_strdup(e->valuestring);
        if (!names[count]) {
            rc = sb_fail(err, SB_ENOMEM, "read '%s': out of memory", path);
            goto out;
        }
        count++;
    }
    *out = names;
    *n = count;
    names = NULL;
out:
    if (names)
        for (size_t i = 0; i < count; i++)
            free(names[i]);
    free(names);
    cJSON_Delete(root);
    free(data);
    return rc;
}

static void free_names(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* ------------------------------------------------------------------------------------------ */
/* HTTP                                                                                        */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT; /* written once, under curl_once */

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* One request: the easy handle and what the header callback saw. */
struct http {
    CURL *curl;
    struct curl_slist *headers;
    const struct hub_params *p;
    long status;         /* status line of the latest response (after redirects) */
    char commit[64];     /* X-Repo-Commit, from whichever response carried it */
    char error_code[64]; /* X-Error-Code of the latest response */
    char error_msg[160]; /* X-Error-Message of the latest response */
    char content_range[96];
    char errbuf[CURL_ERROR_SIZE];
    bool stopped; /* progress->stop_requested said yes */
};

static void copy_value(char *dst, size_t cap, const char *v, size_t n)
{
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t on_header(char *line, size_t size, size_t nitems, void *user)
{
    struct http *h = user;
    size_t n = size * nitems;
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        /* a new response (the first, or one after a redirect): forget the previous one's */
        h->error_code[0] = '\0';
        h->error_msg[0] = '\0';
        h->content_range[0] = '\0';
        const char *sp = memchr(line, ' ', n);
        long st = 0;
        for (const char *q = sp ? sp + 1 : line + n; q < line + n && *q >= '0' && *q <= '9'; q++)
            st = st * 10 + (*q - '0');
        h->status = st;
        return n;
    }
    const char *colon = memchr(line, ':', n);
    if (!colon)
        return n;
    size_t klen = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vlen = n - klen - 1;
    if (klen == 13 && strncasecmp(line, "X-Repo-Commit", klen) == 0)
        copy_value(h->commit, sizeof(h->commit), v, vlen);
    else if (klen == 12 && strncasecmp(line, "X-Error-Code", klen) == 0)
        copy_value(h->error_code, sizeof(h->error_code), v, vlen);
    else if (klen == 15 && strncasecmp(line, "X-Error-Message", klen) == 0)
        copy_value(h->error_msg, sizeof(h->error_msg), v, vlen);
    else if (klen == 13 && strncasecmp(line, "Content-Range", klen) == 0)
        copy_value(h->content_range, sizeof(h->content_range), v, vlen);
    return n;
}

static int on_xferinfo(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct http *h = user;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (sb_progress_stop(h->p->progress)) {
        h->stopped = true;
        return 1;
    }
    return 0;
}

static void http_close(struct http *h)
{
    if (h->curl)
        curl_easy_cleanup(h->curl);
    curl_slist_free_all(h->headers);
    h->curl = NULL;
    h->headers = NULL;
}

static int http_open(struct http *h, const struct hub_params *p, const char *url,
                     struct sb_err *err)
{
    memset(h, 0, sizeof(*h));
    h->p = p;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK)
        return sb_fail(err, SB_ENET, "curl_global_init: %s", curl_easy_strerror(curl_init_rc));
    h->curl = curl_easy_init();
    if (!h->curl)
        return sb_fail(err, SB_ENOMEM, "curl_easy_init failed");
    if (p->token && *p->token) {
        char auth[1024];
        int n = snprintf(auth, sizeof(auth), "Authorization: Bearer %s", p->token);
        if (n < 0 || (size_t)n >= sizeof(auth))
            return sb_fail(err, SB_EINVAL, "HF_TOKEN is too long");
        h->headers = curl_slist_append(NULL, auth);
        if (!h->headers)
            return sb_fail(err, SB_ENOMEM, "out of memory");
    }
    CURL *c = h->curl;
    CURLcode rc = CURLE_OK;
    /* Only http(s), for redirects too (the hub sends file downloads to a CDN with a 302).
     * libcurl drops our Authorization header when a redirect leaves the host. */
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(c, opt, val);                                                    \
    } while (0)
    SET(CURLOPT_URL, url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 1L);
    SET(CURLOPT_MAXREDIRS, 5L);
    SET(CURLOPT_CONNECTTIMEOUT, p->connect_timeout > 0 ? p->connect_timeout : 30L);
    SET(CURLOPT_LOW_SPEED_LIMIT, p->low_speed_limit > 0 ? p->low_speed_limit : 1L);
    SET(CURLOPT_LOW_SPEED_TIME, p->low_speed_time > 0 ? p->low_speed_time : 60L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_USERAGENT, "shoebox/0.1 (libcurl)");
    SET(CURLOPT_ERRORBUFFER, h->errbuf);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, h);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_XFERINFOFUNCTION, on_xferinfo);
    SET(CURLOPT_XFERINFODATA, h);
    if (h->headers)
        SET(CURLOPT_HTTPHEADER, h->headers);
#undef SET
    if (rc != CURLE_OK)
        return sb_fail(err, SB_EINTERNAL, "curl setup: %s", curl_easy_strerror(rc));
    return SB_OK;
}

/* The message for a failed transfer (curl's own words when it has them). */
static const char *curl_msg(const struct http *h, CURLcode rc)
{
    return h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
}

/* Maps an HTTP error status (and the hub's X-Error-Code) to an SB code and message, as
 * huggingface_hub's hf_raise_for_status does. what: "list 'org/name'" or
 * "download 'org/name' 'file'". */
static int http_status_fail(const struct http *h, const char *what, const char *repo,
                            const struct sb_err *body_hint, struct sb_err *err)
{
    bool token = h->p->token && *h->p->token;
    const char *code = h->error_code;
    long st = h->status;
    const char *ep = h->p->endpoint && *h->p->endpoint ? h->p->endpoint : HUB_DEFAULT_ENDPOINT;
    int eplen = (int)strlen(ep);
    while (eplen > 0 && ep[eplen - 1] == '/')
        eplen--;
    if (strcmp(code, "GatedRepo") == 0 ||
        ((st == 401 || st == 403) && strcmp(code, "RepoNotFound")))
        return sb_fail(err, SB_EACCES,
                       "%s: HTTP %ld: '%s' is gated or private: accept its licence at %.*s/%s "
                       "%s",
                       what, st, repo, eplen, ep, repo,
                       token ? "(HF_TOKEN was sent but has no access)"
                             : "and set HF_TOKEN to an access token");
    if (strcmp(code, "RepoNotFound") == 0 || (st == 404 && !code[0]))
        return sb_fail(err, SB_ENOENT, "%s: HTTP %ld, repository '%s' not found%s", what, st, repo,
                       token ? "" : " (if it is private, set HF_TOKEN)");
    if (strcmp(code, "RevisionNotFound") == 0)
        return sb_fail(err, SB_ENOENT, "%s: HTTP %ld, revision '%s' not found", what, st,
                       h->p->revision ? h->p->revision : HUB_DEFAULT_REVISION);
    if (strcmp(code, "EntryNotFound") == 0 || st == 404)
        return sb_fail(err, SB_ENOENT, "%s: HTTP %ld, file not found", what, st);
    const char *detail = h->error_msg[0] ? h->error_msg : (body_hint ? body_hint->msg : "");
    return sb_fail(err, SB_ENET, "%s: HTTP %ld%s%s", what, st, detail[0] ? ": " : "", detail);
}

/* Builds "{endpoint}{middle}{escaped rev}{tail}" into b after checking the endpoint. */
static int endpoint_base(const struct hub_params *p, struct sb_buf *b, struct sb_err *err)
{
    const char *ep = p->endpoint && *p->endpoint ? p->endpoint : HUB_DEFAULT_ENDPOINT;
    if (strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0)
        return sb_fail(err, SB_EINVAL, "endpoint '%s' is not an http:// or https:// URL", ep);
    size_t n = strlen(ep);
    while (n > 8 && ep[n - 1] == '/')
        n--;
    sb_buf_append(b, ep, n);
    return SB_OK;
}

static int escaped(CURL *c, const char *s, struct sb_buf *b)
{
    char *e = curl_easy_escape(c, s, 0);
    if (!e)
        return SB_ENOMEM;
    sb_buf_puts(b, e);
    curl_free(e);
    return SB_OK;
}

static size_t on_body_mem(char *data, size_t size, size_t nmemb, void *user)
{
    struct sb_buf *b = user;
    size_t n = size * nmemb;
    if (b->len + n > HUB_MAX_JSON)
        return 0; /* CURLE_WRITE_ERROR; the caller sees the length and reports SB_ETOOBIG */
    sb_buf_append(b, data, n);
    return b->failed ? 0 : n;
}

int hub_list_files(const struct hub_params *p, const char *repo, struct hub_listing **out,
                   struct sb_err *err)
{
    struct hub_params dflt = hub_default_params();
    if (!p)
        p = &dflt;
    struct http h;
    struct sb_buf url, body;
    sb_buf_init(&url);
    sb_buf_init(&body);
    memset(&h, 0, sizeof(h));
    char what[160];
    snprintf(what, sizeof(what), "list '%s'", repo ? repo : "");
    int rc = hub_repo_check(repo, err);
    if (rc)
        goto out;
    rc = endpoint_base(p, &url, err);
    if (rc)
        goto out;
    rc = http_open(&h, p, "about:blank", err);
    if (rc)
        goto out;
    sb_buf_printf(&url, "/api/models/%s/revision/", repo);
    if (escaped(h.curl, p->revision && *p->revision ? p->revision : HUB_DEFAULT_REVISION, &url))
        url.failed = true;
    sb_buf_puts(&url, "?blobs=true");
    if (url.failed) {
        rc = sb_fail(err, SB_ENOMEM, "%s: out of memory", what);
        goto out;
    }
    CURLcode crc = curl_easy_setopt(h.curl, CURLOPT_URL, url.data);
    if (crc == CURLE_OK)
        crc = curl_easy_setopt(h.curl, CURLOPT_WRITEFUNCTION, on_body_mem);
    if (crc == CURLE_OK)
        crc = curl_easy_setopt(h.curl, CURLOPT_WRITEDATA, &body);
    if (crc == CURLE_OK)
        crc = curl_easy_setopt(h.curl, CURLOPT_ACCEPT_ENCODING, "");
    if (crc == CURLE_OK)
        crc = curl_easy_perform(h.curl);
    if (h.stopped) {
        rc = sb_fail(err, SB_ECANCELED, "%s: canceled", what);
        goto out;
    }
    if (crc == CURLE_WRITE_ERROR && body.len + CURL_MAX_WRITE_SIZE > HUB_MAX_JSON) {
        rc = sb_fail(err, SB_ETOOBIG, "%s: the answer is over %u bytes", what, HUB_MAX_JSON);
        goto out;
    }
    if (crc != CURLE_OK) {
        rc = sb_fail(err, SB_ENET, "%s: %s", what, curl_msg(&h, crc));
        goto out;
    }
    if (h.status < 200 || h.status >= 300) {
        rc = http_status_fail(&h, what, repo, NULL, err);
        goto out;
    }
    if (body.failed || !body.data) {
        rc = sb_fail(err, body.failed ? SB_ENOMEM : SB_EFORMAT, "%s: %s", what,
                     body.failed ? "out of memory" : "empty answer");
        goto out;
    }
    rc = parse_listing(body.data, body.len, repo, out, err);
out:
    http_close(&h);
    sb_buf_release(&url);
    sb_buf_release(&body);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Downloading one file                                                                        */

struct download {
    struct http *h;
    const char *repo;
    const struct hub_file *f;
    const char *part;      /* path of the .part file */
    int fd;                /* the .part, open for writing */
    struct hub_sha256 sha; /* over the bytes in .part */
    int64_t offset;        /* bytes in .part when the request went out */
    int64_t written;       /* bytes in .part now */
    int64_t received;      /* body bytes received */
    int64_t progress_base; /* bytes of the files before this one (for the progress) */
    int64_t progress_total;
    bool started;          /* the response status has been looked at */
    bool body_is_error;    /* non-2xx: the body is an error text, not the file */
    bool restarted;        /* the server ignored our Range: .part was truncated */
    struct sb_buf errbody; /* the first HUB_MAX_ERROR bytes of an error body */
    struct sb_err fail;    /* set by a callback that stopped the transfer */
};

static int write_all(int fd, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Looks at the status of the response once, before its first body byte. */
static bool download_begin(struct download *d)
{
    d->started = true;
    long st = d->h->status;
    if (st < 200 || st >= 300) {
        d->body_is_error = true;
        return true;
    }
    if (st == 206) {
        /* "Content-Range: bytes START-END/TOTAL" (RFC 9110 section 14.4) */
        const char *cr = d->h->content_range;
        int64_t start = -1;
        if (strncmp(cr, "bytes ", 6) == 0) {
            char *end = NULL;
            errno = 0;
            long long v = strtoll(cr + 6, &end, 10);
            if (!errno && end != cr + 6 && *end == '-')
                start = v;
        }
        if (start != d->offset) {
            sb_fail(&d->fail, SB_ENET,
                    "download '%s': asked to resume at byte %" PRId64 ", the server answered '%s'",
                    d->f->name, d->offset, cr);
            return false;
        }
        return true;
    }
    if (d->offset > 0) {
        /* 200 to a Range request: the server sends the whole file, so start over */
        if (ftruncate(d->fd, 0) != 0 || lseek(d->fd, 0, SEEK_SET) < 0) {
            int e = errno;
            sb_fail(&d->fail, sb_code_from_errno(e), "truncate '%s': %s", d->part, strerror(e));
            return false;
        }
        hub_sha256_init(&d->sha);
        d->written = 0;
        d->offset = 0;
        d->restarted = true;
    }
    return true;
}

static size_t on_body_file(char *data, size_t size, size_t nmemb, void *user)
{
    struct download *d = user;
    size_t n = size * nmemb;
    if (!d->started && !download_begin(d))
        return 0;
    d->received += (int64_t)n;
    if (d->body_is_error) {
        size_t room = d->errbody.len < HUB_MAX_ERROR ? HUB_MAX_ERROR - d->errbody.len : 0;
        sb_buf_append(&d->errbody, data, n < room ? n : room);
        return n;
    }
    int64_t cap = d->f->size >= 0 ? d->f->size : HUB_MAX_FILE;
    if (d->written + (int64_t)n > cap) {
        sb_fail(&d->fail, SB_ECORRUPT,
                "download '%s': the server sent more than the %" PRId64 " bytes the hub listed",
                d->f->name, cap);
        return 0;
    }
    int e = write_all(d->fd, data, n);
    if (e) {
        sb_fail(&d->fail, sb_code_from_errno(e), "write '%s': %s", d->part, strerror(e));
        return 0;
    }
    hub_sha256_update(&d->sha, data, n);
    d->written += (int64_t)n;
    sb_progress_update(d->h->p->progress, d->f->name, d->progress_base + d->written,
                       d->progress_total);
    return n;
}

/* Downloads f into dir/f->name through dir/f->name.part, resuming what .part holds. */
static int download_file(const struct hub_params *p, const char *repo, const char *dir,
                         const struct hub_file *f, int64_t progress_base, int64_t progress_total,
                         struct hub_fetch_stats *stats, struct sb_err *err)
{
    struct http h;
    struct download d;
    struct sb_buf url, part, final;
    memset(&h, 0, sizeof(h));
    memset(&d, 0, sizeof(d));
    sb_buf_init(&url);
    sb_buf_init(&part);
    sb_buf_init(&final);
    sb_buf_init(&d.errbody);
    d.fd = -1;
    char what[300];
    snprintf(what, sizeof(what), "download '%s' '%s'", repo, f->name);
    sb_buf_printf(&final, "%s/%s", dir, f->name);
    sb_buf_printf(&part, "%s/%s.part", dir, f->name);
    int rc = endpoint_base(p, &url, err);
    if (rc)
        goto out;
    rc = http_open(&h, p, "about:blank", err);
    if (rc)
        goto out;
    sb_buf_printf(&url, "/%s/resolve/", repo);
    int erc =
        escaped(h.curl, p->revision && *p->revision ? p->revision : HUB_DEFAULT_REVISION, &url);
    sb_buf_puts(&url, "/");
    if (!erc)
        erc = escaped(h.curl, f->name, &url);
    if (erc || url.failed || part.failed || final.failed) {
        rc = sb_fail(err, SB_ENOMEM, "%s: out of memory", what);
        goto out;
    }
    d.h = &h;
    d.repo = repo;
    d.f = f;
    d.part = part.data;
    d.progress_base = progress_base;
    d.progress_total = progress_total;
    hub_sha256_init(&d.sha);
    d.fd = open(part.data, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (d.fd < 0) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "open '%s': %s", part.data, strerror(e));
        goto out;
    }
    struct stat st;
    if (fstat(d.fd, &st) != 0) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "stat '%s': %s", part.data, strerror(e));
        goto out;
    }
    d.offset = st.st_size;
    if (f->size >= 0 && d.offset > f->size) {
        d.offset = 0; /* longer than the file can be: not ours to keep */
        if (ftruncate(d.fd, 0) != 0) {
            int e = errno;
            rc = sb_fail(err, sb_code_from_errno(e), "truncate '%s': %s", part.data, strerror(e));
            goto out;
        }
    }
    if (d.offset > 0) {
        rc = sha_file_prefix(d.fd, d.offset, &d.sha, part.data, err);
        if (rc)
            goto out;
    }
    if (lseek(d.fd, d.offset, SEEK_SET) < 0) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "seek '%s': %s", part.data, strerror(e));
        goto out;
    }
    d.written = d.offset;
    bool resumed = d.offset > 0;
    if (f->size < 0 || d.offset < f->size) {
        char range[48];
        snprintf(range, sizeof(range), "%" PRId64 "-", d.offset);
        CURLcode crc = curl_easy_setopt(h.curl, CURLOPT_URL, url.data);
        if (crc == CURLE_OK)
            crc = curl_easy_setopt(h.curl, CURLOPT_WRITEFUNCTION, on_body_file);
        if (crc == CURLE_OK)
            crc = curl_easy_setopt(h.curl, CURLOPT_WRITEDATA, &d);
        /* CURLOPT_RANGE, not RESUME_FROM: a 200 answer must restart, not fail */
        if (crc == CURLE_OK && d.offset > 0)
            crc = curl_easy_setopt(h.curl, CURLOPT_RANGE, range);
        if (crc == CURLE_OK)
            crc = curl_easy_perform(h.curl);
        if (stats)
            stats->bytes_received += d.received;
        if (d.fail.code) {
            rc = sb_fail(err, d.fail.code, "%s", d.fail.msg);
            if (rc == SB_ECORRUPT)
                unlink(part.data);
            goto out;
        }
        if (h.stopped) {
            rc = sb_fail(err, SB_ECANCELED, "%s: canceled (the .part file is kept)", what);
            goto out;
        }
        if (crc != CURLE_OK) {
            rc = sb_fail(err, SB_ENET, "%s: %s (run fetch again to resume)", what,
                         curl_msg(&h, crc));
            goto out;
        }
        if (!d.started && !download_begin(&d)) { /* an empty body */
            rc = sb_fail(err, d.fail.code, "%s", d.fail.msg);
            goto out;
        }
        if (d.body_is_error) {
            struct sb_err hint = { 0 };
            if (d.errbody.data && d.errbody.len < 120 && !strchr(d.errbody.data, '<'))
                copy_value(hint.msg, sizeof(hint.msg), d.errbody.data, d.errbody.len);
            rc = http_status_fail(&h, what, repo, &hint, err);
            goto out;
        }
    }
    if (f->size >= 0 && d.written != f->size) {
        rc = sb_fail(err, SB_ENET,
                     "%s: got %" PRId64 " of %" PRId64 " bytes (run fetch again to "
                     "resume)",
                     what, d.written, f->size);
        goto out;
    }
    if (f->sha256[0]) {
        char got[65];
        hub_sha256_final(&d.sha, got);
        if (strcmp(got, f->sha256) != 0) {
            unlink(part.data);
            rc = sb_fail(err, SB_ECORRUPT,
                         "%s: SHA-256 mismatch (expected %.16s..., got %.16s...): the download "
                         "was discarded",
                         what, f->sha256, got);
            goto out;
        }
    }
    if (fsync(d.fd) != 0) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "fsync '%s': %s", part.data, strerror(e));
        goto out;
    }
    close(d.fd);
    d.fd = -1;
    if (rename(part.data, final.data) != 0) {
        int e = errno;
        rc = sb_fail(err, sb_code_from_errno(e), "rename '%s': %s", part.data, strerror(e));
        goto out;
    }
    if (stats) {
        stats->downloaded++;
        if (resumed && !d.restarted)
            stats->resumed++;
        if (!stats->commit[0] && h.commit[0])
            snprintf(stats->commit, sizeof(stats->commit), "%s", h.commit);
    }
out:
    if (d.fd >= 0) {
        close(d.fd);
        if (rc && d.written == 0 && part.data)
            unlink(part.data); /* an HTTP error before any byte: no empty .part left behind */
    }
    http_close(&h);
    sb_buf_release(&d.errbody);
    sb_buf_release(&url);
    sb_buf_release(&part);
    sb_buf_release(&final);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The manifest                                                                                */

struct manifest_entry {
    char *name;
    int64_t size;
    int64_t mtime;
    char sha256[65];
};

struct manifest {
    char *repo, *revision, *commit;
    bool complete;
    struct manifest_entry *e;
    size_t n;
};

static void manifest_release(struct manifest *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->e[i].name);
    free(m->e);
    free(m->repo);
    free(m->revision);
    free(m->commit);
    memset(m, 0, sizeof(*m));
}

static char *json_str(const cJSON *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(j) ? sb_strdup(j->valuestring) : NULL;
}

/* Reads dir/HUB_MANIFEST. A missing or unreadable one leaves m empty and returns false. */
static bool manifest_read(const char *dir, struct manifest *m)
{
    memset(m, 0, sizeof(*m));
    char path[4096];
    int pn = snprintf(path, sizeof(path), "%s/%s", dir, HUB_MANIFEST);
    if (pn < 0 || (size_t)pn >= sizeof(path))
        return false;
    unsigned char *data = NULL;
    size_t len = 0;
    if (sb_read_file(path, HUB_MAX_JSON, &data, &len, NULL))
        return false;
    cJSON *root = cJSON_ParseWithLength((const char *)data, len);
    free(data);
    const cJSON *files = root ? cJSON_GetObjectItemCaseSensitive(root, "files") : NULL;
    bool ok = cJSON_IsArray(files);
    if (ok) {
        m->repo = json_str(root, "repo");
        m->revision = json_str(root, "revision");
        m->commit = json_str(root, "commit");
        m->complete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "complete"));
        size_t cap = (size_t)cJSON_GetArraySize(files);
        m->e = calloc(cap ? cap : 1, sizeof(*m->e));
        ok = m->e != NULL;
        const cJSON *f;
        cJSON_ArrayForEach(f, files)
        {
            if (!ok)
                break;
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
            struct manifest_entry *e = &m->e[m->n];
            if (!cJSON_IsString(name) || !plain_name(name->valuestring) ||
                !json_size(cJSON_GetObjectItemCaseSensitive(f, "size"), &e->size))
                continue;
            if (!json_size(cJSON_GetObjectItemCaseSensitive(f, "mtime"), &e->mtime))
                e->mtime = -1;
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(f, "sha256");
            if (!cJSON_IsString(h) || !hex64(h->valuestring, e->sha256))
                e->sha256[0] = '\0';
            e->name = sb_strdup(name->valuestring);
            ok = e->name != NULL;
            if (ok)
                m->n++;
        }
    }
    cJSON_Delete(root);
    if (!ok)
        manifest_release(m);
    return ok;
}

static const struct manifest_entry *manifest_find(const struct manifest *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->e[i].name, name) == 0)
            return &m->e[i];
    return NULL;
}

/* Writes dir/HUB_MANIFEST atomically for the files in sel whose done[i] is set. */
static int manifest_write(const char *dir, const struct hub_params *p, const char *repo,
                          const struct hub_listing *sel, const bool *done, const int64_t *mtimes,
                          const char *commit, struct sb_err *err)
{
    char path[4096], when[32];
    int pn = snprintf(path, sizeof(path), "%s/%s", dir, HUB_MANIFEST);
    if (pn < 0 || (size_t)pn >= sizeof(path))
        return sb_fail(err, SB_ETOOBIG, "manifest path in '%s' is too long", dir);
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) || !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(when, sizeof(when), "?");
    bool complete = true;
    for (size_t i = 0; i < sel->nfiles; i++)
        complete = complete && done[i];
    int rc = SB_OK;
    char *text = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *files = NULL;
    if (root) {
        cJSON_AddStringToObject(root, "repo", repo);
        cJSON_AddStringToObject(root, "revision",
                                p->revision && *p->revision ? p->revision : HUB_DEFAULT_REVISION);
        if (commit && *commit)
            cJSON_AddStringToObject(root, "commit", commit);
        else
            cJSON_AddNullToObject(root, "commit");
        cJSON_AddStringToObject(root, "endpoint",
                                p->endpoint && *p->endpoint ? p->endpoint : HUB_DEFAULT_ENDPOINT);
        cJSON_AddBoolToObject(root, "complete", complete);
        cJSON_AddStringToObject(root, "time", when);
        files = cJSON_AddArrayToObject(root, "files");
    }
    for (size_t i = 0; files && i < sel->nfiles; i++) {
        if (!done[i])
            continue;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(files, o)) {
            cJSON_Delete(o);
            files = NULL;
            break;
        }
        cJSON_AddStringToObject(o, "name", sel->files[i].name);
        cJSON_AddNumberToObject(o, "size", (double)sel->files[i].size);
        if (sel->files[i].sha256[0])
            cJSON_AddStringToObject(o, "sha256", sel->files[i].sha256);
        cJSON_AddNumberToObject(o, "mtime", (double)mtimes[i]);
    }
    text = files ? cJSON_Print(root) : NULL;
    if (!text) {
        rc = sb_fail(err, SB_ENOMEM, "write '%s': out of memory", path);
        goto out;
    }
    rc = sb_write_file_atomic(path, text, strlen(text), err);
out:
    free(text);
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Fetch                                                                                       */

/* Is dir/f already the file the hub lists? Sets *mtime when it is. */
static int already_there(const char *dir, const struct hub_file *f, const struct manifest *old,
                         const char *commit, bool *yes, int64_t *mtime, struct sb_err *err)
{
    *yes = false;
    char path[4096];
    int pn = snprintf(path, sizeof(path), "%s/%s", dir, f->name);
    if (pn < 0 || (size_t)pn >= sizeof(path))
        return sb_fail(err, SB_ETOOBIG, "path of '%s' in '%s' is too long", f->name, dir);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || (f->size >= 0 && st.st_size != f->size))
        return SB_OK;
    const struct manifest_entry *e = manifest_find(old, f->name);
    bool recorded = e && e->size == (int64_t)st.st_size && e->mtime == (int64_t)st.st_mtime;
    if (!f->sha256[0]) {
        /* a small git file: trust it only when it came from this very commit */
        *yes = recorded && commit && old->commit && strcmp(commit, old->commit) == 0;
    } else if (recorded && strcmp(e->sha256, f->sha256) == 0) {
        *yes = true;
    } else {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return SB_OK;
        struct hub_sha256 s;
        char got[65];
        hub_sha256_init(&s);
        int rc = sha_file_prefix(fd, (int64_t)st.st_size, &s, path, err);
        close(fd);
        if (rc)
            return rc;
        hub_sha256_final(&s, got);
        *yes = strcmp(got, f->sha256) == 0;
    }
    if (*yes)
        *mtime = (int64_t)st.st_mtime;
    return SB_OK;
}

static int mtime_of(const char *dir, const char *name, int64_t *out)
{
    char path[4096];
    struct stat st;
    int pn = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (pn < 0 || (size_t)pn >= sizeof(path) || stat(path, &st) != 0)
        return SB_EIO;
    *out = (int64_t)st.st_mtime;
    return SB_OK;
}

/* Adds the index's shards (with sizes and hashes from the full listing) to sel. */
static int add_shards(const char *dir, const struct hub_listing *all, struct hub_listing **sel,
                      struct sb_err *err)
{
    char path[4096];
    int pn = snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    if (pn < 0 || (size_t)pn >= sizeof(path))
        return sb_fail(err, SB_ETOOBIG, "path in '%s' is too long", dir);
    char **names = NULL;
    size_t n = 0;
    struct hub_listing *grown = NULL;
    int rc = index_shards(path, &names, &n, err);
    if (rc)
        goto out;
    grown = listing_new((*sel)->nfiles + n);
    if (!grown || ((*sel)->commit && !(grown->commit = sb_strdup((*sel)->commit)))) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < (*sel)->nfiles; i++)
        if (listing_add(grown, &(*sel)->files[i])) {
            rc = sb_fail(err, SB_ENOMEM, "out of memory");
            goto out;
        }
    for (size_t i = 0; i < n; i++) {
        const struct hub_file *f = listing_find(all, names[i]);
        if (!f) {
            rc = sb_fail(err, SB_EMODEL,
                         "model.safetensors.index.json names shard '%s', which the repo lacks",
                         names[i]);
            goto out;
        }
        if (!listing_find(grown, f->name) && listing_add(grown, f)) {
            rc = sb_fail(err, SB_ENOMEM, "out of memory");
            goto out;
        }
    }
    hub_listing_free(*sel);
    *sel = grown;
    grown = NULL;
out:
    hub_listing_free(grown);
    free_names(names, n);
    return rc;
}

int hub_fetch(const struct hub_params *p, const char *repo, const char *dir,
              struct hub_fetch_stats *stats, struct sb_err *err)
{
    struct hub_params dflt = hub_default_params();
    if (!p)
        p = &dflt;
    struct hub_fetch_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof(*stats));
    struct hub_listing *all = NULL, *sel = NULL;
    struct manifest old;
    memset(&old, 0, sizeof(old));
    bool *done = NULL;
    int64_t *mtimes = NULL;
    const char *commit = NULL;
    int rc = hub_list_files(p, repo, &all, err);
    if (rc)
        goto out;
    rc = hub_select_files(all, &sel, err);
    if (rc) {
        struct sb_err why = *err;
        rc = sb_fail(err, rc, "fetch '%s': %s", repo, why.msg);
        goto out;
    }
    rc = sb_mkdirs(dir, err);
    if (rc)
        goto out;
    manifest_read(dir, &old);
    commit = all->commit;
    /* The index comes first: it says which shards to fetch. */
    const struct hub_file *index = listing_find(sel, "model.safetensors.index.json");
    bool index_fresh = false; /* downloaded just now, before the main loop */
    if (index) {
        bool have = false;
        int64_t mt = 0;
        rc = already_there(dir, index, &old, commit, &have, &mt, err);
        if (!rc && !have) {
            rc = download_file(p, repo, dir, index, 0, 0, stats, err);
            index_fresh = rc == SB_OK;
        }
        if (!rc)
            rc = add_shards(dir, all, &sel, err);
        if (rc)
            goto out;
    }
    done = calloc(sel->nfiles, sizeof(*done));
    mtimes = calloc(sel->nfiles, sizeof(*mtimes));
    if (!done || !mtimes) {
        rc = sb_fail(err, SB_ENOMEM, "fetch '%s': out of memory", repo);
        goto out;
    }
    stats->files = sel->nfiles;
    for (size_t i = 0; i < sel->nfiles; i++)
        stats->bytes_total += sel->files[i].size > 0 ? sel->files[i].size : 0;
    int64_t base = 0;
    for (size_t i = 0; i < sel->nfiles; i++) {
        const struct hub_file *f = &sel->files[i];
        bool have = false;
        if (index_fresh && strcmp(f->name, "model.safetensors.index.json") == 0) {
            have = true;
            if (mtime_of(dir, f->name, &mtimes[i])) {
                rc = sb_fail(err, SB_EIO, "stat '%s/%s' after download failed", dir, f->name);
                goto out;
            }
        } else {
            rc = already_there(dir, f, &old, commit, &have, &mtimes[i], err);
            if (rc)
                goto out;
            if (have)
                stats->skipped++;
        }
        if (!have) {
            rc = download_file(p, repo, dir, f, base, stats->bytes_total, stats, err);
            if (!rc && mtime_of(dir, f->name, &mtimes[i]))
                rc = sb_fail(err, SB_EIO, "stat '%s/%s' after download failed", dir, f->name);
            if (rc) {
                struct sb_err keep = *err;
                /* record what is in place so far; the download's error is the one to report */
                manifest_write(dir, p, repo, sel, done, mtimes, commit, NULL);
                *err = keep;
                goto out;
            }
        }
        done[i] = true;
        base += f->size > 0 ? f->size : 0;
        sb_progress_update(p->progress, f->name, base, stats->bytes_total);
        if (!have) {
            rc = manifest_write(dir, p, repo, sel, done, mtimes, commit, err);
            if (rc)
                goto out;
        }
    }
    rc = manifest_write(dir, p, repo, sel, done, mtimes, commit, err);
out:
    if (commit)
        snprintf(stats->commit, sizeof(stats->commit), "%s", commit);
    free(done);
    free(mtimes);
    manifest_release(&old);
    hub_listing_free(sel);
    hub_listing_free(all);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Installed models                                                                            */

void hub_installed_free(struct hub_installed *a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++) {
        free(a[i].folder);
        free(a[i].path);
        free(a[i].repo);
        free(a[i].revision);
        free(a[i].commit);
    }
    free(a);
}

static bool file_size_is(const char *dir, const char *name, int64_t size)
{
    char path[4096];
    struct stat st;
    int pn = snprintf(path, sizeof(path), "%s/%s", dir, name);
    return pn > 0 && (size_t)pn < sizeof(path) && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
           (size < 0 || (int64_t)st.st_size == size);
}

static bool loadable(const char *dir)
{
    if (!file_size_is(dir, "config.json", -1))
        return false;
    if (file_size_is(dir, "model.safetensors", -1))
        return true;
    char path[4096];
    int pn = snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    char **names = NULL;
    size_t n = 0;
    if (pn < 0 || (size_t)pn >= sizeof(path) || index_shards(path, &names, &n, NULL))
        return false;
    bool ok = n > 0;
    for (size_t i = 0; i < n && ok; i++)
        ok = file_size_is(dir, names[i], -1);
    free_names(names, n);
    return ok;
}

/* Fills everything but folder and path. */
static int describe(struct hub_installed *m, struct sb_err *err)
{
    DIR *d = opendir(m->path);
    if (!d) {
        int e = errno;
        return sb_fail(err, sb_code_from_errno(e), "open '%s': %s", m->path, strerror(e));
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        char path[4096];
        struct stat st;
        int pn = snprintf(path, sizeof(path), "%s/%s", m->path, de->d_name);
        if (pn < 0 || (size_t)pn >= sizeof(path) || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        m->bytes += (int64_t)st.st_size;
        if (ends_with(de->d_name, ".part"))
            m->npart++;
    }
    closedir(d);
    struct manifest man;
    if (manifest_read(m->path, &man)) {
        m->repo = man.repo;
        m->revision = man.revision;
        m->commit = man.commit;
        man.repo = man.revision = man.commit = NULL;
        m->nfiles = man.n;
        m->complete = man.complete && m->npart == 0;
        for (size_t i = 0; i < man.n && m->complete; i++)
            m->complete = file_size_is(m->path, man.e[i].name, man.e[i].size);
        manifest_release(&man);
    }
    m->loadable = loadable(m->path);
    return SB_OK;
}

static int by_folder(const void *a, const void *b)
{
    const struct hub_installed *x = a, *y = b;
    return strcmp(x->folder, y->folder);
}

int hub_list_installed(const char *models_dir, struct hub_installed **out, size_t *n,
                       struct sb_err *err)
{
    struct hub_installed *a = NULL;
    size_t count = 0, cap = 0;
    int rc = SB_OK;
    DIR *d = opendir(models_dir);
    if (!d) {
        int e = errno;
        if (e == ENOENT) {
            *out = NULL;
            *n = 0;
            return SB_OK;
        }
        return sb_fail(err, sb_code_from_errno(e), "open '%s': %s", models_dir, strerror(e));
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096];
        struct stat st;
        int pn = snprintf(path, sizeof(path), "%s/%s", models_dir, de->d_name);
        if (pn < 0 || (size_t)pn >= sizeof(path) || stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16, bytes;
            struct hub_installed *g = NULL;
            if (sb_mul_size(ncap, sizeof(*a), &bytes))
                g = realloc(a, bytes);
            if (!g) {
                rc = sb_fail(err, SB_ENOMEM, "list '%s': out of memory", models_dir);
                goto out;
            }
            a = g;
            cap = ncap;
        }
        struct hub_installed *m = &a[count];
        memset(m, 0, sizeof(*m));
        count++;
        m->folder = sb_strdup(de->d_name);
        m->path = sb_strdup(path);
        if (!m->folder || !m->path) {
            rc = sb_fail(err, SB_ENOMEM, "list '%s': out of memory", models_dir);
            goto out;
        }
        rc = describe(m, err);
        if (rc)
            goto out;
    }
    if (count)
        qsort(a, count, sizeof(*a), by_folder);
    *out = a;
    *n = count;
    a = NULL;
out:
    closedir(d);
    hub_installed_free(a, count);
    return rc;
}
