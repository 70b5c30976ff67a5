/* test_model_hub.c - the hub client against a fake Hugging Face hub on 127.0.0.1 (libmicrohttpd):
 * listings with sizes and SHA-256, 302 redirects to a /cdn/ path, Range resume, a server that
 * drops the connection halfway, a server that ignores Range, a bad hash, a .bin-only repo, a
 * missing repo, a gated repo (401 until HF_TOKEN is sent), and the installed-models list.
 * Also SHA-256 test vectors (FIPS 180-2 appendix B) and repo id checks. No network. */
#include "check.h"

#include "shoebox/err.h"
#include "shoebox/hub.h"
#include "shoebox/progress.h"
#include "shoebox/util.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* The fake hub                                                                                */

enum { BIG_SIZE = 200000, SHARD1_SIZE = 70000, SHARD2_SIZE = 50000 };

struct fake_file {
    const char *repo;
    const char *name;
    unsigned char *data;
    size_t len;
    bool lfs;
    bool bad_sha; /* the listing's sha256 is of other bytes */
    char sha[65];
};

struct fake_hub {
    struct MHD_Daemon *d;
    unsigned port;
    struct fake_file files[32];
    size_t nfiles;
    pthread_mutex_t mu; /* guards the counters below (the server thread writes them) */
    int drop_next;      /* CDN answers for acme/tiny-clip model.safetensors to cut halfway */
    int cdn_requests;   /* requests to /cdn/ */
    int range_requests; /* of those, with a Range header */
    long last_range;    /* start of the last Range */
    int bin_requests;   /* requests for .bin / .msgpack / .onnx files: must stay 0 */
    int api_requests;
};

static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; p && i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (unsigned char)(x >> 24);
    }
    return p;
}

static void add_file(struct fake_hub *h, const char *repo, const char *name, const char *text,
                     size_t n, unsigned seed, bool lfs, bool bad_sha)
{
    struct fake_file *f = &h->files[h->nfiles++];
    f->repo = repo;
    f->name = name;
    if (text) {
        f->len = strlen(text);
        f->data = (unsigned char *)sb_strdup(text);
    } else {
        f->len = n;
        f->data = pattern(n, seed);
    }
    f->lfs = lfs;
    f->bad_sha = bad_sha;
    struct hub_sha256 s;
    hub_sha256_init(&s);
    hub_sha256_update(&s, f->data, f->len);
    if (bad_sha)
        hub_sha256_update(&s, "x", 1);
    hub_sha256_final(&s, f->sha);
}

static const struct fake_file *find_file(const struct fake_hub *h, const char *repo,
                                         const char *name)
{
    for (size_t i = 0; i < h->nfiles; i++)
        if (strcmp(h->files[i].repo, repo) == 0 && strcmp(h->files[i].name, name) == 0)
            return &h->files[i];
    return NULL;
}

static bool repo_exists(const struct fake_hub *h, const char *repo)
{
    for (size_t i = 0; i < h->nfiles; i++)
        if (strcmp(h->files[i].repo, repo) == 0)
            return true;
    return false;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *body,
                             const char *error_code, const char *location)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body,
                                                             MHD_RESPMEM_MUST_COPY);
    if (error_code)
        MHD_add_response_header(r, "X-Error-Code", error_code);
    if (location)
        MHD_add_response_header(r, "Location", location);
    MHD_add_response_header(r, "X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result api_listing(struct fake_hub *h, struct MHD_Connection *c, const char *repo)
{
    const char *blobs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "blobs");
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "id", repo);
    cJSON_AddStringToObject(root, "sha", "0123456789abcdef0123456789abcdef01234567");
    cJSON *sib = cJSON_AddArrayToObject(root, "siblings");
    for (size_t i = 0; i < h->nfiles; i++) {
        const struct fake_file *f = &h->files[i];
        if (strcmp(f->repo, repo) != 0)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "rfilename", f->name);
        if (blobs && strcmp(blobs, "true") == 0) {
            cJSON_AddNumberToObject(o, "size", (double)f->len);
            if (f->lfs) {
                cJSON *l = cJSON_AddObjectToObject(o, "lfs");
                cJSON_AddStringToObject(l, "sha256", f->sha);
                cJSON_AddNumberToObject(l, "size", (double)f->len);
                cJSON_AddNumberToObject(l, "pointerSize", 134);
            }
        }
        cJSON_AddItemToArray(sib, o);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    enum MHD_Result ret = reply(c, 200, s, NULL, NULL);
    free(s);
    return ret;
}

struct drop_reader {
    const struct fake_file *f;
    size_t cut; /* stop with an error after this many bytes */
};

static ssize_t drop_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct drop_reader *r = cls;
    if (pos >= r->cut)
        return MHD_CONTENT_READER_END_WITH_ERROR; /* closes the connection mid-body */
    size_t n = r->cut - (size_t)pos < max ? r->cut - (size_t)pos : max;
    memcpy(buf, r->f->data + pos, n);
    return (ssize_t)n;
}

/* /cdn/<org>/<name>/<file>: the bytes, with Range support unless the repo is acme/sharded. */
static enum MHD_Result cdn(struct fake_hub *h, struct MHD_Connection *c, const char *rest)
{
    char repo[128];
    const char *slash = strchr(rest, '/');
    slash = slash ? strchr(slash + 1, '/') : NULL;
    if (!slash || (size_t)(slash - rest) >= sizeof(repo))
        return reply(c, 404, "no", NULL, NULL);
    snprintf(repo, sizeof(repo), "%.*s", (int)(slash - rest), rest);
    const struct fake_file *f = find_file(h, repo, slash + 1);
    if (!f)
        return reply(c, 404, "no such blob", NULL, NULL);
    const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    pthread_mutex_lock(&h->mu);
    h->cdn_requests++;
    bool drop = false;
    if (strcmp(repo, "acme/tiny-clip") == 0 && strcmp(f->name, "model.safetensors") == 0 &&
        h->drop_next > 0) {
        h->drop_next--;
        drop = true;
    }
    long start = 0;
    if (range) {
        h->range_requests++;
        char *end = NULL;
        start = strncmp(range, "bytes=", 6) == 0 ? strtol(range + 6, &end, 10) : -1;
        if (!end || *end != '-')
            start = -1;
        h->last_range = start;
    }
    pthread_mutex_unlock(&h->mu);
    struct MHD_Response *r;
    unsigned status = 200;
    if (drop) {
        struct drop_reader *dr = malloc(sizeof(*dr));
        dr->f = f;
        dr->cut = f->len / 2;
        r = MHD_create_response_from_callback(f->len, 4096, drop_read, dr, free);
    } else if (range && strcmp(repo, "acme/sharded") != 0) {
        if (start < 0 || (size_t)start >= f->len)
            return reply(c, 416, "bad range", NULL, NULL);
        r = MHD_create_response_from_buffer(f->len - (size_t)start, f->data + start,
                                            MHD_RESPMEM_PERSISTENT);
        char cr[96];
        snprintf(cr, sizeof(cr), "bytes %ld-%zu/%zu", start, f->len - 1, f->len);
        MHD_add_response_header(r, "Content-Range", cr);
        status = 206;
    } else {
        r = MHD_create_response_from_buffer(f->len, f->data, MHD_RESPMEM_PERSISTENT);
    }
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
    struct fake_hub *h = cls;
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)state;
    if (strcmp(method, "GET") != 0)
        return reply(c, 405, "GET only", NULL, NULL);
    if (strncmp(url, "/cdn/", 5) == 0)
        return cdn(h, c, url + 5);
    char repo[128], rev[64], file[128];
    repo[0] = rev[0] = file[0] = '\0';
    bool api = strncmp(url, "/api/models/", 12) == 0;
    const char *p = api ? url + 12 : url + 1;
    /* <org>/<name>/... */
    const char *s1 = strchr(p, '/');
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s2 || (size_t)(s2 - p) >= sizeof(repo))
        return reply(c, 404, "not found", NULL, NULL);
    snprintf(repo, sizeof(repo), "%.*s", (int)(s2 - p), p);
    const char *kind = api ? "/revision/" : "/resolve/";
    if (strncmp(s2, kind, strlen(kind)) != 0)
        return reply(c, 404, "not found", NULL, NULL);
    const char *r = s2 + strlen(kind);
    if (api) {
        snprintf(rev, sizeof(rev), "%s", r);
    } else {
        const char *last = strrchr(r, '/');
        if (!last)
            return reply(c, 404, "not found", NULL, NULL);
        snprintf(rev, sizeof(rev), "%.*s", (int)(last - r), r);
        snprintf(file, sizeof(file), "%s", last + 1);
    }
    if (!repo_exists(h, repo))
        return reply(c, 401, "Repository not found", "RepoNotFound", NULL);
    if (strcmp(rev, "main") != 0 && strcmp(rev, "refs/pr/1") != 0)
        return reply(c, 404, "Invalid rev id", "RevisionNotFound", NULL);
    if (api) {
        pthread_mutex_lock(&h->mu);
        h->api_requests++;
        pthread_mutex_unlock(&h->mu);
        return api_listing(h, c, repo);
    }
    size_t fl = strlen(file);
    if ((fl > 4 && strcmp(file + fl - 4, ".bin") == 0) || strstr(file, ".msgpack") ||
        strstr(file, ".onnx")) {
        pthread_mutex_lock(&h->mu);
        h->bin_requests++;
        pthread_mutex_unlock(&h->mu);
    }
    if (strcmp(repo, "acme/gated") == 0) {
        const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
        if (!auth || strcmp(auth, "Bearer hf_test") != 0)
            return reply(c, 401, "Access to model acme/gated is restricted", "GatedRepo", NULL);
    }
    if (!find_file(h, repo, file))
        return reply(c, 404, "Entry not found", "EntryNotFound", NULL);
    char loc[300];
    snprintf(loc, sizeof(loc), "/cdn/%s/%s", repo, file);
    return reply(c, 302, "Found", NULL, loc);
}

static bool hub_start(struct fake_hub *h)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pthread_mutex_init(&h->mu, NULL);
    h->d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle,
                         h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    if (!h->d)
        return false;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    return h->port != 0;
}

static void hub_stop(struct fake_hub *h)
{
    if (h->d)
        MHD_stop_daemon(h->d);
    for (size_t i = 0; i < h->nfiles; i++)
        free(h->files[i].data);
    pthread_mutex_destroy(&h->mu);
}

static int counter(struct fake_hub *h, const int *field)
{
    pthread_mutex_lock(&h->mu);
    int v = *field;
    pthread_mutex_unlock(&h->mu);
    return v;
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                     */

static char *path_join(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        buf[0] = '\0';
    return buf;
}

static void rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char sub[4096];
            path_join(sub, sizeof(sub), path, de->d_name);
            rm_tree(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static bool exists(const char *dir, const char *name)
{
    char p[4096];
    struct stat st;
    path_join(p, sizeof(p), dir, name);
    return stat(p, &st) == 0;
}

static long file_len(const char *dir, const char *name)
{
    char p[4096];
    struct stat st;
    path_join(p, sizeof(p), dir, name);
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static bool same_bytes(const char *dir, const char *name, const struct fake_file *f)
{
    char p[4096];
    path_join(p, sizeof(p), dir, name);
    unsigned char *data = NULL;
    size_t len = 0;
    if (sb_read_file(p, 1 << 24, &data, &len, NULL))
        return false;
    bool same = len == f->len && memcmp(data, f->data, len) == 0;
    free(data);
    return same;
}

struct progress_seen {
    int calls;
    int64_t last_done, last_total;
};

static void on_progress(void *user, const char *stage, int64_t done, int64_t total)
{
    struct progress_seen *s = user;
    (void)stage;
    s->calls++;
    s->last_done = done;
    s->last_total = total;
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                       */

static void test_sha256(void)
{
    static const struct {
        const char *in;
        const char *hex;
    } cases[] = {
        { "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        { "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
        { "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
          "lmnopqrsmnopqrstnopqrstu",
          "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct hub_sha256 s;
        char hex[65];
        hub_sha256_init(&s);
        hub_sha256_update(&s, cases[i].in, strlen(cases[i].in));
        hub_sha256_final(&s, hex);
        CHECK_EQ_STR(cases[i].hex, hex);
        /* the same bytes fed one at a time */
        hub_sha256_init(&s);
        for (const char *p = cases[i].in; *p; p++)
            hub_sha256_update(&s, p, 1);
        hub_sha256_final(&s, hex);
        CHECK_EQ_STR(cases[i].hex, hex);
    }
    /* one million 'a', in uneven chunks */
    char chunk[777];
    memset(chunk, 'a', sizeof(chunk));
    struct hub_sha256 s;
    char hex[65];
    hub_sha256_init(&s);
    size_t left = 1000000;
    while (left) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        hub_sha256_update(&s, chunk, n);
        left -= n;
    }
    hub_sha256_final(&s, hex);
    CHECK_EQ_STR("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", hex);
}

static void test_repo_ids(void)
{
    static const struct {
        const char *repo;
        int rc;
        const char *folder;
    } cases[] = {
        { "openai/clip-vit-base-patch32", SB_OK, "openai--clip-vit-base-patch32" },
        { "google/siglip-base-patch16-224", SB_OK, "google--siglip-base-patch16-224" },
        { "gpt2", SB_OK, "gpt2" },
        { "HuggingFaceTB/SmolVLM-256M-Instruct", SB_OK, "HuggingFaceTB--SmolVLM-256M-Instruct" },
        { "", SB_EINVAL, NULL },
        { "a/b/c", SB_EINVAL, NULL },
        { "../etc", SB_EINVAL, NULL },
        { "org/..", SB_EINVAL, NULL },
        { "org/a--b", SB_EINVAL, NULL },
        { "org/-x", SB_EINVAL, NULL },
        { "org/x.", SB_EINVAL, NULL },
        { "org/x y", SB_EINVAL, NULL },
        { "org/", SB_EINVAL, NULL },
        { "/name", SB_EINVAL, NULL },
        { "org/name.git", SB_EINVAL, NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char folder[256];
        struct sb_err err;
        int rc = hub_repo_folder(cases[i].repo, folder, sizeof(folder), &err);
        CHECK_EQ_INT(cases[i].rc, rc);
        if (rc != cases[i].rc)
            fprintf(stderr, "  repo '%s'\n", cases[i].repo);
        if (!rc && cases[i].folder)
            CHECK_EQ_STR(cases[i].folder, folder);
    }
}

static void test_select(void)
{
    struct hub_file files[] = {
        { "config.json", 10, "" },      { "pytorch_model.bin", 100, "" },
        { "tf_model.h5", 100, "" },     { "flax_model.msgpack", 100, "" },
        { "onnx/model.onnx", 100, "" }, { "model.safetensors", 100, "" },
        { "tokenizer.json", 10, "" },   { "README.md", 10, "" },
        { "spiece.model", 10, "" },
    };
    struct hub_listing all = { NULL, files, sizeof(files) / sizeof(files[0]) };
    struct hub_listing *sel = NULL;
    struct sb_err err;
    CHECK_EQ_INT(SB_OK, hub_select_files(&all, &sel, &err));
    if (sel) {
        CHECK_EQ_INT(4, sel->nfiles);
        for (size_t i = 0; i < sel->nfiles; i++)
            CHECK(strstr(sel->files[i].name, ".bin") == NULL &&
                  strchr(sel->files[i].name, '/') == NULL &&
                  strcmp(sel->files[i].name, "README.md"));
    }
    hub_listing_free(sel);
    sel = NULL;
    /* .bin only */
    all.nfiles = 2;
    CHECK_EQ_INT(SB_EMODEL, hub_select_files(&all, &sel, &err));
    CHECK(strstr(err.msg, "only has PyTorch .bin weights; shoebox reads safetensors") != NULL);
    CHECK(sel == NULL);
    /* no config.json */
    all.files = files + 5;
    all.nfiles = 1;
    CHECK_EQ_INT(SB_EMODEL, hub_select_files(&all, &sel, &err));
    CHECK(strstr(err.msg, "config.json") != NULL);
}

static void test_fetch(struct fake_hub *h, const char *root)
{
    char endpoint[64], models[4096], tiny[4096], sharded[4096], bad[4096], gated[4096];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%u/", h->port);
    path_join(models, sizeof(models), root, "models");
    path_join(tiny, sizeof(tiny), models, "acme--tiny-clip");
    path_join(sharded, sizeof(sharded), models, "acme--sharded");
    path_join(bad, sizeof(bad), models, "acme--badsha");
    path_join(gated, sizeof(gated), models, "acme--gated");
    struct progress_seen seen;
    memset(&seen, 0, sizeof(seen));
    struct sb_progress prog = { .update = on_progress, .user = &seen };
    struct hub_params p = hub_default_params();
    p.endpoint = endpoint;
    p.connect_timeout = 5;
    p.progress = &prog;
    struct hub_fetch_stats st;
    struct sb_err err;
    const struct fake_file *big = find_file(h, "acme/tiny-clip", "model.safetensors");

    /* the listing */
    struct hub_listing *l = NULL;
    CHECK_EQ_INT(SB_OK, hub_list_files(&p, "acme/tiny-clip", &l, &err));
    if (l) {
        CHECK_EQ_STR("0123456789abcdef0123456789abcdef01234567", l->commit);
        bool found = false;
        for (size_t i = 0; i < l->nfiles; i++) {
            if (strcmp(l->files[i].name, "model.safetensors") == 0) {
                found = true;
                CHECK_EQ_INT(BIG_SIZE, l->files[i].size);
                CHECK_EQ_STR(big->sha, l->files[i].sha256);
            }
            if (strcmp(l->files[i].name, "config.json") == 0)
                CHECK_EQ_STR("", l->files[i].sha256);
        }
        CHECK(found);
    }
    hub_listing_free(l);

    /* 1. the connection drops halfway through the weights: a network error, a .part kept */
    h->drop_next = 1;
    int rc = hub_fetch(&p, "acme/tiny-clip", tiny, &st, &err);
    CHECK_EQ_INT(SB_ENET, rc);
    if (rc)
        fprintf(stderr, "  (expected) %s\n", err.msg);
    CHECK(strstr(err.msg, "model.safetensors") != NULL);
    CHECK(!exists(tiny, "model.safetensors"));
    long part = file_len(tiny, "model.safetensors.part");
    CHECK(part > 0 && part < BIG_SIZE);
    CHECK(exists(tiny, "config.json"));
    CHECK(exists(tiny, HUB_MANIFEST));

    /* the list sees a partial folder */
    struct hub_installed *a = NULL;
    size_t n = 0;
    CHECK_EQ_INT(SB_OK, hub_list_installed(models, &a, &n, &err));
    CHECK_EQ_INT(1, n);
    if (n == 1) {
        CHECK_EQ_STR("acme/tiny-clip", a[0].repo);
        CHECK(!a[0].complete);
        CHECK(!a[0].loadable);
        CHECK_EQ_INT(1, a[0].npart);
    }
    hub_installed_free(a, n);

    /* 2. a re-run resumes from the .part with a Range request and completes */
    int ranges0 = counter(h, &h->range_requests);
    memset(&seen, 0, sizeof(seen));
    rc = hub_fetch(&p, "acme/tiny-clip", tiny, &st, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_EQ_INT(ranges0 + 1, counter(h, &h->range_requests));
    pthread_mutex_lock(&h->mu);
    long range_start = h->last_range;
    pthread_mutex_unlock(&h->mu);
    CHECK_EQ_INT(part, range_start);
    CHECK_EQ_INT(1, st.resumed);
    CHECK_EQ_INT(1, st.downloaded); /* the small files came whole in the first run */
    CHECK_EQ_INT(BIG_SIZE - part, st.bytes_received);
    CHECK(same_bytes(tiny, "model.safetensors", big));
    CHECK(!exists(tiny, "model.safetensors.part"));
    CHECK(exists(tiny, "tokenizer.json") && exists(tiny, "vocab.json") &&
          exists(tiny, "merges.txt"));
    CHECK(!exists(tiny, "pytorch_model.bin") && !exists(tiny, "README.md") &&
          !exists(tiny, "flax_model.msgpack") && !exists(tiny, "onnx"));
    CHECK_EQ_INT(0, counter(h, &h->bin_requests));
    CHECK_EQ_STR("0123456789abcdef0123456789abcdef01234567", st.commit);
    CHECK(seen.calls > 0);
    CHECK_EQ_INT(st.bytes_total, seen.last_done);
    CHECK_EQ_INT(st.bytes_total, seen.last_total);

    /* 3. a third run downloads nothing */
    int cdn0 = counter(h, &h->cdn_requests);
    rc = hub_fetch(&p, "acme/tiny-clip", tiny, &st, &err);
    CHECK_EQ_INT(SB_OK, rc);
    CHECK_EQ_INT(0, st.downloaded);
    CHECK_EQ_INT(st.files, st.skipped);
    CHECK_EQ_INT(5, st.files); /* config, tokenizer, vocab, merges, weights */
    CHECK_EQ_INT(cdn0, counter(h, &h->cdn_requests));

    /* 4. a damaged weights file (same size, other bytes, other mtime) is fetched again */
    {
        char path[4096];
        path_join(path, sizeof(path), tiny, "model.safetensors");
        int fd = open(path, O_WRONLY);
        CHECK(fd >= 0);
        if (fd >= 0) {
            CHECK_EQ_INT(1, pwrite(fd, "Z", 1, 1000));
            struct timespec ts[2] = { { 1000000, 0 }, { 1000000, 0 } };
            futimens(fd, ts);
            close(fd);
        }
        rc = hub_fetch(&p, "acme/tiny-clip", tiny, &st, &err);
        CHECK_EQ_INT(SB_OK, rc);
        CHECK_EQ_INT(1, st.downloaded);
        CHECK(same_bytes(tiny, "model.safetensors", big));
    }

    /* 5. a sharded repo on a CDN that ignores Range: a stale .part restarts from zero */
    CHECK_EQ_INT(0, sb_mkdirs(sharded, &err));
    {
        char path[4096];
        path_join(path, sizeof(path), sharded, "model-00001-of-00002.safetensors.part");
        CHECK_EQ_INT(0, sb_write_file_atomic(path, "garbage-prefix", 14, &err));
    }
    ranges0 = counter(h, &h->range_requests);
    rc = hub_fetch(&p, "acme/sharded", sharded, &st, &err);
    CHECK_EQ_INT(SB_OK, rc);
    if (rc)
        fprintf(stderr, "  %s\n", err.msg);
    CHECK_EQ_INT(ranges0 + 1, counter(h, &h->range_requests));
    CHECK_EQ_INT(0, st.resumed);
    CHECK_EQ_INT(4, st.files); /* config, index, two shards */
    CHECK(same_bytes(sharded, "model-00001-of-00002.safetensors",
                     find_file(h, "acme/sharded", "model-00001-of-00002.safetensors")));
    CHECK(same_bytes(sharded, "model-00002-of-00002.safetensors",
                     find_file(h, "acme/sharded", "model-00002-of-00002.safetensors")));
    CHECK(!exists(sharded, "model-00003-of-00003.safetensors"));
    CHECK(!exists(sharded, "model-00001-of-00002.safetensors.part"));
    rc = hub_fetch(&p, "acme/sharded", sharded, &st, &err);
    CHECK_EQ_INT(SB_OK, rc);
    CHECK_EQ_INT(0, st.downloaded);

    /* 6. bytes that do not match the listed sha256: a clear error, no final file, no .part */
    rc = hub_fetch(&p, "acme/badsha", bad, &st, &err);
    CHECK_EQ_INT(SB_ECORRUPT, rc);
    fprintf(stderr, "  (expected) %s\n", err.msg);
    CHECK(strstr(err.msg, "SHA-256 mismatch") != NULL);
    CHECK(strstr(err.msg, "model.safetensors") != NULL);
    CHECK(!exists(bad, "model.safetensors"));
    CHECK(!exists(bad, "model.safetensors.part"));

    /* 7. a repo with only PyTorch weights */
    char binonly[4096];
    path_join(binonly, sizeof(binonly), models, "acme--binonly");
    rc = hub_fetch(&p, "acme/binonly", binonly, &st, &err);
    CHECK_EQ_INT(SB_EMODEL, rc);
    fprintf(stderr, "  (expected) %s\n", err.msg);
    CHECK(strstr(err.msg, "this repo only has PyTorch .bin weights; shoebox reads safetensors"));
    CHECK(!exists(binonly, "config.json"));
    CHECK_EQ_INT(0, counter(h, &h->bin_requests));

    /* 8. a repo that does not exist (the hub says 401 RepoNotFound to anonymous users) */
    char missing[4096];
    path_join(missing, sizeof(missing), models, "acme--missing");
    rc = hub_fetch(&p, "acme/missing", missing, &st, &err);
    CHECK_EQ_INT(SB_ENOENT, rc);
    fprintf(stderr, "  (expected) %s\n", err.msg);
    CHECK(strstr(err.msg, "not found") != NULL);

    /* 9. an unknown revision */
    p.revision = "v9";
    rc = hub_fetch(&p, "acme/tiny-clip", tiny, &st, &err);
    CHECK_EQ_INT(SB_ENOENT, rc);
    CHECK(strstr(err.msg, "revision 'v9' not found") != NULL);
    p.revision = "refs/pr/1"; /* escaped as refs%2Fpr%2F1, as huggingface_hub quotes it */
    rc = hub_fetch(&p, "acme/tiny-clip", tiny, &st, &err);
    CHECK_EQ_INT(SB_OK, rc);
    p.revision = NULL;

    /* 10. a gated repo: 401 without a token, fine with one */
    rc = hub_fetch(&p, "acme/gated", gated, &st, &err);
    CHECK_EQ_INT(SB_EACCES, rc);
    fprintf(stderr, "  (expected) %s\n", err.msg);
    CHECK(strstr(err.msg, "licence") != NULL && strstr(err.msg, "HF_TOKEN") != NULL);
    CHECK(!exists(gated, "model.safetensors"));
    CHECK(!exists(gated, "config.json.part")); /* no empty .part after an HTTP error */
    p.token = "hf_wrong";
    rc = hub_fetch(&p, "acme/gated", gated, &st, &err);
    CHECK_EQ_INT(SB_EACCES, rc);
    CHECK(strstr(err.msg, "HF_TOKEN was sent") != NULL);
    p.token = "hf_test";
    rc = hub_fetch(&p, "acme/gated", gated, &st, &err);
    CHECK_EQ_INT(SB_OK, rc);
    CHECK(same_bytes(gated, "model.safetensors", find_file(h, "acme/gated", "model.safetensors")));
    p.token = NULL;

    /* 11. bad inputs */
    rc = hub_fetch(&p, "../evil", tiny, &st, &err);
    CHECK_EQ_INT(SB_EINVAL, rc);
    p.endpoint = "file:///etc";
    rc = hub_fetch(&p, "acme/tiny-clip", tiny, &st, &err);
    CHECK_EQ_INT(SB_EINVAL, rc);
    p.endpoint = "http://127.0.0.1:1"; /* nothing listens there */
    rc = hub_fetch(&p, "acme/tiny-clip", tiny, &st, &err);
    CHECK_EQ_INT(SB_ENET, rc);
    fprintf(stderr, "  (expected) %s\n", err.msg);
    p.endpoint = endpoint;

    /* 12. the installed list */
    a = NULL;
    n = 0;
    CHECK_EQ_INT(0, sb_mkdirs(models, &err));
    {
        char hand[4096]; /* a folder the user copied in: no manifest */
        path_join(hand, sizeof(hand), models, "my-model");
        CHECK_EQ_INT(0, sb_mkdirs(hand, &err));
        char cfg[4096];
        path_join(cfg, sizeof(cfg), hand, "config.json");
        CHECK_EQ_INT(0, sb_write_file_atomic(cfg, "{}", 2, &err));
    }
    CHECK_EQ_INT(SB_OK, hub_list_installed(models, &a, &n, &err));
    CHECK_EQ_INT(5, n); /* badsha, gated, sharded, tiny-clip, my-model */
    for (size_t i = 0; i < n; i++) {
        const struct hub_installed *m = &a[i];
        if (strcmp(m->folder, "acme--tiny-clip") == 0 || strcmp(m->folder, "acme--sharded") == 0 ||
            strcmp(m->folder, "acme--gated") == 0) {
            CHECK(m->complete);
            CHECK(m->loadable);
            CHECK(m->repo != NULL);
            CHECK(m->bytes > 0);
        } else if (strcmp(m->folder, "acme--badsha") == 0) {
            CHECK_EQ_STR("acme/badsha", m->repo);
            CHECK(!m->complete);
            CHECK(!m->loadable);
        } else {
            CHECK_EQ_STR("my-model", m->folder);
            CHECK(m->repo == NULL);
            CHECK(!m->complete);
            CHECK(!m->loadable);
        }
        if (strcmp(m->folder, "acme--tiny-clip") == 0) {
            CHECK_EQ_STR("refs/pr/1", m->revision);
            CHECK_EQ_INT(5, m->nfiles);
            CHECK(m->bytes >= BIG_SIZE);
        }
    }
    CHECK(n < 2 || strcmp(a[0].folder, a[1].folder) < 0);
    hub_installed_free(a, n);
    char nowhere[4096];
    path_join(nowhere, sizeof(nowhere), root, "does-not-exist");
    CHECK_EQ_INT(SB_OK, hub_list_installed(nowhere, &a, &n, &err));
    CHECK_EQ_INT(0, n);
}

/* Fills h with the fake repos. */
static void hub_fill(struct fake_hub *h)
{
    const char *cfg = "{\"model_type\": \"clip\", \"projection_dim\": 8}";
    add_file(h, "acme/tiny-clip", "config.json", cfg, 0, 0, false, false);
    add_file(h, "acme/tiny-clip", "tokenizer.json", "{\"model\": {}}", 0, 0, false, false);
    add_file(h, "acme/tiny-clip", "vocab.json", "{\"a\": 0}", 0, 0, false, false);
    add_file(h, "acme/tiny-clip", "merges.txt", "#version: 0.2\n", 0, 0, false, false);
    add_file(h, "acme/tiny-clip", "README.md", "# tiny\n", 0, 0, false, false);
    add_file(h, "acme/tiny-clip", "model.safetensors", NULL, BIG_SIZE, 1, true, false);
    add_file(h, "acme/tiny-clip", "pytorch_model.bin", NULL, 1000, 2, true, false);
    add_file(h, "acme/tiny-clip", "flax_model.msgpack", NULL, 1000, 3, true, false);
    add_file(h, "acme/tiny-clip", "onnx/model.onnx", NULL, 1000, 4, true, false);
    add_file(h, "acme/sharded", "config.json", cfg, 0, 0, false, false);
    add_file(h, "acme/sharded", "model.safetensors.index.json",
             "{\"metadata\": {\"total_size\": 120000}, \"weight_map\": {"
             "\"a.weight\": \"model-00001-of-00002.safetensors\","
             "\"b.weight\": \"model-00002-of-00002.safetensors\","
             "\"c.weight\": \"model-00001-of-00002.safetensors\"}}",
             0, 0, false, false);
    add_file(h, "acme/sharded", "model-00001-of-00002.safetensors", NULL, SHARD1_SIZE, 5, true,
             false);
    add_file(h, "acme/sharded", "model-00002-of-00002.safetensors", NULL, SHARD2_SIZE, 6, true,
             false);
    add_file(h, "acme/sharded", "model-00003-of-00003.safetensors", NULL, 100, 7, true, false);
    add_file(h, "acme/sharded", "pytorch_model.bin.index.json", "{}", 0, 0, false, false);
    add_file(h, "acme/badsha", "config.json", cfg, 0, 0, false, false);
    add_file(h, "acme/badsha", "model.safetensors", NULL, 30000, 8, true, true);
    add_file(h, "acme/binonly", "config.json", cfg, 0, 0, false, false);
    add_file(h, "acme/binonly", "pytorch_model.bin", NULL, 3000, 9, true, false);
    add_file(h, "acme/gated", "config.json", cfg, 0, 0, false, false);
    add_file(h, "acme/gated", "model.safetensors", NULL, 3000, 10, true, false);
}

/* `test_model_hub --serve [DROPS]`: runs the fake hub for tests/e2e_model.sh. Prints the port
 * on stdout, serves until stdin closes. DROPS: how many weights downloads to cut halfway. */
static int serve(int argc, char **argv)
{
    struct fake_hub *h = calloc(1, sizeof(*h));
    if (!h)
        return 1;
    hub_fill(h);
    int64_t drops = 0;
    if (argc > 2 && sb_parse_i64(argv[2], 0, 100, &drops, NULL))
        drops = 0;
    h->drop_next = (int)drops;
    int rc = 1;
    if (hub_start(h)) {
        printf("%u\n", h->port);
        fflush(stdout);
        char buf[256];
        while (read(0, buf, sizeof(buf)) > 0)
            continue;
        rc = 0;
    }
    hub_stop(h);
    free(h);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--serve") == 0)
        return serve(argc, argv);
    test_sha256();
    test_repo_ids();
    test_select();

    const char *tmp = getenv("SHOEBOX_TMP");
    char root[4096];
    snprintf(root, sizeof(root), "%s/test_model_hub.tmp", tmp && *tmp ? tmp : "/tmp");
    rm_tree(root);
    struct sb_err err;
    CHECK_EQ_INT(0, sb_mkdirs(root, &err));

    struct fake_hub *h = calloc(1, sizeof(*h));
    if (!h)
        return 1;
    hub_fill(h);

    if (!hub_start(h)) {
        CHECK(!"the fake hub did not start");
    } else {
        test_fetch(h, root);
    }
    hub_stop(h);
    free(h);
    return check_exit();
}
