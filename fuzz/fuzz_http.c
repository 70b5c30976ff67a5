/* fuzz_http.c - libFuzzer target: the web server (src/web) fed raw HTTP request bytes.
 *
 * LLVMFuzzerInitialize makes, once, a temporary folder with a catalog of a few real photos
 * (cataloged through the catalog API the way the crawler does: files, content hashes, a
 * cached thumbnail, tags, a caption, vectors of the tiny CLIP fixture model, whose text tower
 * the server loads) and starts web_server_start() on 127.0.0.1, port 0, with a fixed token.
 * Each input is one TCP connection: connect, write the bytes, shut down the write side, read
 * the response until the server closes (or a short timeout), close. The server's thread pool
 * is made once; nothing in a request starts a thread (crawls are not fuzzed, see below).
 *
 * In the input "{P}" stands for the port (so that a corpus stays valid across runs: the seeds
 * send "Host: 127.0.0.1:{P}").
 *
 * Invariants (abort() when violated, so that libFuzzer reports the input):
 *  - no response carries the bytes of a file the catalog does not list as a photo: a secret
 *    file in the temporary folder (also reachable as a cataloged symlink, which the server
 *    must not follow) and /etc/passwd;
 *  - a request without an allowed Host (127.0.0.1/localhost/[::1] with the port) never gets
 *    a 2xx or 3xx answer (DNS rebinding);
 *  - no error answer (4xx/5xx) names the temporary folder: errors never echo file paths.
 *
 * Not fuzzed: POST /api/index with the right token starts a crawl of any folder named in the
 * body (a crawl of "/" would make every later input slow and the catalog grow), so inputs
 * that hold the token and could reach that URL (literally or %-escaped) are skipped. */
#define _GNU_SOURCE /* memmem */
#include "shoebox/catalog.h"
#include "shoebox/crawl.h"
#include "shoebox/err.h"
#include "shoebox/model.h"
#include "shoebox/web.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#ifndef SHOEBOX_FUZZ_DATA_DIR_DEFAULT
#define SHOEBOX_FUZZ_DATA_DIR_DEFAULT "tests/data"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKEN  "fuzz-token-0123456789abcdef"
#define SECRET "SB-FUZZ-SECRET-7f3a9c1e"

static char root[128];
static struct web_server *server;
static int port;
static char port_str[8];
static char allowed[3][40];

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_http: %s: %s\n", what, detail ? detail : "");
    abort();
}

static void copy_file(const char *from, const char *to)
{
    unsigned char buf[65536];
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    if (!in || !out)
        die("copy", from);
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            die("copy", to);
    fclose(in);
    if (fclose(out) != 0)
        die("copy", to);
}

/* Catalogs path as the crawler's hash step does; returns the photo id. */
static int64_t add_photo(struct catalog *cat, const char *path, unsigned char hash[16])
{
    struct sb_err err;
    static const char *const stages[] = { NULL };
    struct stat sb;
    int64_t size = 0, id = 0;
    if (stat(path, &sb) != 0 || crawl_hash_file(path, hash, &size, &err) != SB_OK)
        die("hash", path);
    struct catalog_stat st = { size, 1, 1, (int64_t)sb.st_ino, (int64_t)sb.st_dev };
    struct catalog_file *files = NULL;
    size_t n = 0;
    if (catalog_begin(cat, &err) || catalog_file_touch(cat, path, &st, &err) ||
        catalog_files_pending(cat, 10, &files, &n, &err))
        die("catalog", err.msg);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(files[i].path, path) == 0 &&
            catalog_file_set_photo(cat, files[i].id, hash, size, "jpeg", stages, &id, NULL, &err))
            die("catalog", err.msg);
    }
    catalog_files_free(files, n);
    if (catalog_commit(cat, &err) || id == 0)
        die("catalog commit", err.msg);
    return id;
}

static void make_catalog(const char *data, const char *model_dir)
{
    char path[PATH_MAX], db[PATH_MAX], thumb[PATH_MAX];
    struct sb_err err;
    snprintf(path, sizeof(path), "%s/lib", root);
    snprintf(db, sizeof(db), "%s/cat", root);
    if (mkdir(path, 0700) || mkdir(db, 0700))
        die("mkdir", root);
    snprintf(db, sizeof(db), "%s/cat/catalog.db", root);
    struct catalog *cat = NULL;
    if (catalog_open(db, false, &cat, &err))
        die("catalog_open", err.msg);

    /* the vectors of the server's model: its id and dimension come from the model itself */
    struct clip_load_params lp = clip_load_default_params();
    lp.towers = CLIP_TOWER_TEXT;
    struct clip_model *m = NULL;
    if (clip_model_load(model_dir, &lp, &m, &err))
        die("model", err.msg);
    int64_t model_id = 0;
    int dim = clip_model_dim(m);
    if (catalog_model_ensure(cat, clip_model_id(m), dim, &model_id, &err))
        die("model_ensure", err.msg);
    clip_model_free(m);

    static const char *const images[] = { "images/Nikon_D70.jpg", "images/Canon_40D.jpg",
                                          "library/exiftool_FujiS1Pro_gps_stub.jpg" };
    static const char *const captions[] = { "a red rocket on the launch pad at night",
                                            "Crème brûlée at the café", "" };
    float *v = calloc((size_t)dim, sizeof(float));
    if (!v)
        die("oom", NULL);
    for (size_t i = 0; i < sizeof(images) / sizeof(images[0]); i++) {
        char from[PATH_MAX], to[PATH_MAX];
        unsigned char hash[16];
        snprintf(from, sizeof(from), "%s/%s", data, images[i]);
        snprintf(to, sizeof(to), "%s/lib/photo%zu.jpg", root, i);
        copy_file(from, to);
        int64_t id = add_photo(cat, to, hash);
        /* the thumbnail the crawl would have cached (any JPEG will do) */
        if (i < 2 && crawl_thumb_path(catalog_thumb_dir(cat), hash, 256, thumb, sizeof(thumb))) {
            char dir[PATH_MAX];
            snprintf(dir, sizeof(dir), "%s", thumb);
            for (char *p = dir + 1; *p; p++) {
                if (*p == '/') {
                    *p = '\0';
                    mkdir(dir, 0700);
                    *p = '/';
                }
            }
            copy_file(from, thumb);
        }
        for (int j = 0; j < dim; j++)
            v[j] = (j % 3 == (int)i ? 1.0f : 0.1f) / sqrtf((float)dim);
        if (catalog_vector_put(cat, model_id, id, v, dim, &err) ||
            catalog_tag_add(cat, id, i ? "beach" : "rocket", "user", (double)NAN, &err) ||
            (captions[i][0] &&
             catalog_text_set(cat, id, CATALOG_TEXT_CAPTION, captions[i], (double)NAN, NULL, &err)))
            die("catalog", err.msg);
    }
    free(v);

    /* a secret file that is no photo, and a cataloged photo that is a symlink to it */
    char secret[PATH_MAX], link[PATH_MAX];
    snprintf(secret, sizeof(secret), "%s/secret.txt", root);
    FILE *f = fopen(secret, "w");
    if (!f || fputs(SECRET "\n", f) < 0 || fclose(f) != 0)
        die("write", secret);
    snprintf(link, sizeof(link), "%s/lib/photo9.jpg", root);
    copy_file(secret, link);
    unsigned char hash[16];
    add_photo(cat, link, hash);
    if (unlink(link) || symlink(secret, link))
        die("symlink", link);
    catalog_close(cat);
}

static int rm_tree(const char *dir)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static void at_exit(void)
{
    web_server_stop(server);
    server = NULL;
    if (root[0])
        (void)rm_tree(root);
}

/* libFuzzer runs a full LeakSanitizer scan after every input whose mallocs and frees do not
 * balance, and the server's threads (which free after the answer went out) make that most
 * inputs: 2-3x slower. Per-input leak checks are off unless -detect_leaks is given. */
static void no_per_input_leak_check(int *argc, char ***argv)
{
    static char flag[] = "-detect_leaks=0";
    for (int i = 1; i < *argc; i++) {
        if (strncmp((*argv)[i], "-detect_leaks=", 14) == 0)
            return;
    }
    char **v = calloc((size_t)*argc + 2, sizeof(*v));
    if (!v)
        return;
    memcpy(v, *argv, (size_t)*argc * sizeof(*v));
    v[(*argc)++] = flag;
    *argv = v; /* kept for the life of the process */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    no_per_input_leak_check(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    const char *tmp = getenv("TMPDIR");
    snprintf(root, sizeof(root), "%s/sb_fuzz_http_XXXXXX", tmp && strlen(tmp) < 80 ? tmp : "/tmp");
    if (!mkdtemp(root))
        die("mkdtemp", root);
    const char *data = getenv("SHOEBOX_FUZZ_DATA_DIR");
    if (!data)
        data = SHOEBOX_FUZZ_DATA_DIR_DEFAULT;
    char model_dir[PATH_MAX], db[PATH_MAX];
    snprintf(model_dir, sizeof(model_dir), "%s/models/tiny_b32", data);
    make_catalog(data, model_dir);
    snprintf(db, sizeof(db), "%s/cat/catalog.db", root);

    struct web_params p = web_default_params();
    p.db_path = db;
    p.model_dir = model_dir;
    p.host = "127.0.0.1";
    p.port = 0;
    p.token = TOKEN;
    p.threads = 2;
    p.crawl_threads = 1;
    struct sb_err err;
    if (web_server_start(&p, &server, &err))
        die("web_server_start", err.msg);
    atexit(at_exit);
    port = web_server_port(server);
    snprintf(port_str, sizeof(port_str), "%d", port);
    snprintf(allowed[0], sizeof(allowed[0]), "127.0.0.1:%d", port);
    snprintf(allowed[1], sizeof(allowed[1]), "localhost:%d", port);
    snprintf(allowed[2], sizeof(allowed[2]), "[::1]:%d", port);
    return 0;
}

/* ---- helpers on byte strings -------------------------------------------------------------- */

static const char *find(const char *hay, size_t n, const char *needle)
{
    return memmem(hay, n, needle, strlen(needle));
}

static bool find_nocase(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++) {
        if (strncasecmp(hay + i, needle, k) == 0)
            return true;
    }
    return false;
}

/* The input with every "{P}" replaced by the port. */
static char *expand(const uint8_t *data, size_t size, size_t *out_len)
{
    size_t cap = size * 2 + 1, n = 0;
    char *b = malloc(cap);
    if (!b)
        return NULL;
    for (size_t i = 0; i < size;) {
        if (i + 3 <= size && memcmp(data + i, "{P}", 3) == 0) {
            size_t k = strlen(port_str);
            memcpy(b + n, port_str, k);
            n += k;
            i += 3;
        } else {
            b[n++] = (char)data[i++];
        }
    }
    *out_len = n;
    return b;
}

/* True when the request could start a crawl: it holds the token and names /api/index (other
 * than /api/index/stop), or holds the token and a '%' (an escaped URL). */
static bool may_crawl(const char *req, size_t n)
{
    if (!find(req, n, TOKEN))
        return false;
    if (memchr(req, '%', n))
        return true;
    const char *p = req, *end = req + n;
    while ((p = find(p, (size_t)(end - p), "/api/index")) != NULL) {
        p += 10;
        if ((size_t)(end - p) < 5 || memcmp(p, "/stop", 5) != 0)
            return true;
    }
    return false;
}

/* ---- the exchange ------------------------------------------------------------------------- */

/* Walks the responses ("HTTP/1.x NNN ...\r\n headers \r\n\r\n body"), calling check (may be
 * NULL) on each status and body. Returns how many it could frame whole; *at_end tells whether
 * they make up all n bytes. */
static size_t each_response(const char *r, size_t n, bool head_only,
                            void (*check)(int status, const char *body, size_t len), bool *at_end)
{
    size_t off = 0, count = 0;
    *at_end = false;
    while (off + 12 <= n && memcmp(r + off, "HTTP/1.", 7) == 0) {
        int status = atoi(r + off + 9);
        const char *hend = find(r + off, n - off, "\r\n\r\n");
        if (!hend)
            return count;
        size_t hlen = (size_t)(hend - (r + off)) + 4;
        long long clen = 0;
        const char *h = r + off;
        for (size_t i = 0; i + 16 < hlen; i++) {
            if ((i == 0 || h[i - 1] == '\n') && strncasecmp(h + i, "Content-Length:", 15) == 0) {
                clen = atoll(h + i + 15);
                break;
            }
        }
        if (head_only || status == 304 || status == 204 || status < 200)
            clen = 0;
        if (clen < 0 || (size_t)clen > n - off - hlen) {
            if (check)
                check(status, r + off + hlen, n - off - hlen);
            return count;
        }
        if (check)
            check(status, r + off + hlen, (size_t)clen);
        off += hlen + (size_t)clen;
        count += status >= 200; /* "100 Continue" precedes the answer */
    }
    *at_end = off == n;
    return count;
}

/* How many request lines ("METHOD target HTTP/1.x") the input holds: once that many responses
 * are in, the exchange is over (MHD keeps a half-closed keep-alive connection open). */
static size_t count_requests(const char *req, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && req[i - 1] != '\n')
            continue;
        const char *eol = memchr(req + i, '\n', n - i);
        size_t len = eol ? (size_t)(eol - (req + i)) : n - i;
        if (len && req[i + len - 1] == '\r')
            len--;
        if (len > 9 && memcmp(req + i + len - 9, " HTTP/1.", 8) == 0 && req[i] >= 'A' &&
            req[i] <= 'Z')
            count++;
    }
    return count;
}

static char *exchange(const char *req, size_t n, size_t *out_len)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket", strerror(errno));
    struct timeval tv = { 2, 0 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        die("connect", strerror(errno));
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(fd, req + off, n - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may close early (e.g. after a 413): read what it said */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    size_t want = count_requests(req, n);
    bool head = n >= 5 && memcmp(req, "HEAD ", 5) == 0;
    size_t cap = 65536, len = 0;
    char *resp = malloc(cap);
    if (!resp)
        die("oom", NULL);
    /* MHD does not notice the half-close of a connection whose request is incomplete (nor
     * of a keep-alive one after its last answer), so reading until it closes would wait for
     * its 60 s timeout. Wait up to 1 s for an answer to start when the input has an end of
     * headers, 30 ms (time for an error answer) when it has not, 100 ms for the rest of an
     * answer begun; once what came frames into whole responses, as many as there were
     * request lines means done, fewer get 20 ms more. */
    bool headers_end = find(req, n, "\n\r\n") || find(req, n, "\n\n");
    int wait_ms = headers_end ? 1000 : 30;
    for (;;) {
        struct pollfd pfd = { fd, POLLIN, 0 };
        if (poll(&pfd, 1, wait_ms) <= 0)
            break;
        if (len == cap) {
            char *nr = realloc(resp, cap * 2);
            if (!nr)
                die("oom", NULL);
            resp = nr;
            cap *= 2;
        }
        ssize_t r = recv(fd, resp + len, cap - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        bool at_end = false;
        size_t got = each_response(resp, len, head, NULL, &at_end);
        if (at_end && want && got >= want)
            break;
        wait_ms = at_end ? 20 : 100; /* a body follows its headers at once (not after HEAD) */
    }
    /* close with a reset: after a FIN alone MHD keeps the connection (CLOSE_WAIT) until its
     * 60 s timeout, and at its 512-connection limit it would stop accepting */
    struct linger lg = { 1, 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    *out_len = len;
    return resp;
}

/* The request as the server may read it: raw, and with %XX escapes and '+' decoded. Text the
 * request itself holds may come back in an answer (an error echoes a bad query term): that is
 * no leak, so the checks below skip markers the request names (libFuzzer learns them from the
 * memmem() calls of the checks). */
static const char *req_raw, *req_dec;
static size_t req_raw_len, req_dec_len;

static bool request_names(const char *marker)
{
    return find(req_raw, req_raw_len, marker) || find(req_dec, req_dec_len, marker);
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

static char *percent_decode(const char *s, size_t n, size_t *out_len)
{
    char *d = malloc(n + 1);
    size_t k = 0;
    if (!d)
        die("oom", NULL);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            d[k++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            d[k++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    *out_len = k;
    return d;
}

static void check_response(int status, const char *body, size_t len)
{
    /* the folder's unique part: "sb_fuzz_http_XXXXXX" */
    const char *unique = strrchr(root, '/') + 1;
    if (status >= 400 && find(body, len, unique) && !request_names(unique)) {
        fprintf(stderr, "fuzz_http: a %d answer names the temporary folder %s\n", status, root);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 128 * 1024)
        return -1;
    size_t n = 0;
    char *req = expand(data, size, &n);
    if (!req)
        return 0;
    if (may_crawl(req, n)) {
        free(req);
        return -1;
    }
    size_t rlen = 0;
    char *resp = exchange(req, n, &rlen);

    size_t dlen = 0;
    char *dec = percent_decode(req, n, &dlen);
    req_raw = req;
    req_raw_len = n;
    req_dec = dec;
    req_dec_len = dlen;
    if ((find(resp, rlen, SECRET) && !request_names(SECRET)) ||
        (find(resp, rlen, "root:x:0:0:") && !request_names("root:x:0:0:"))) {
        fprintf(stderr, "fuzz_http: a response holds the bytes of a file that is not a photo\n");
        abort();
    }
    bool host_ok = false;
    for (int i = 0; i < 3; i++)
        host_ok |= find_nocase(req, n, allowed[i]);
    if (!host_ok && (find(resp, rlen, "HTTP/1.1 2") || find(resp, rlen, "HTTP/1.0 2") ||
                     find(resp, rlen, "HTTP/1.1 3") || find(resp, rlen, "HTTP/1.0 3"))) {
        fprintf(stderr, "fuzz_http: a request without an allowed Host got a 2xx/3xx answer\n");
        abort();
    }
    bool head = n >= 5 && memcmp(req, "HEAD ", 5) == 0;
    bool at_end;
    each_response(resp, rlen, head, check_response, &at_end);
    free(dec);
    free(resp);
    free(req);
    return 0;
}
