/* server.c - the HTTP side of `shoebox serve`: libmicrohttpd with a thread pool, the request
 * life cycle (body collection with a cap), the security checks every request passes (Host
 * header against DNS rebinding, the token for POST and for non-loopback listening), the
 * security headers every response carries, the static assets compiled into the binary, and a
 * stop that closes every connection before it stops libmicrohttpd (which 0.9.75 needs).
 *
 * Each request owns one struct req_state (allocated on MHD's first call, freed in the
 * completed callback): its body buffer and nothing else; the JSON tree of a reply is built
 * and freed inside the handler. */
#include "internal.h"

#include "shoebox/err.h"
#include "shoebox/log.h"
#include "shoebox/pool.h"
#include "shoebox/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_HEADER "X-Shoebox-Token"
#define TOKEN_COOKIE "shoebox_token"
#define TOKEN_SLOT   "{{SHOEBOX_TOKEN}}"

enum { MAX_URL = 2048 };

struct req_state {
    char *body;
    size_t len;
    bool too_big;
};

struct web_params web_default_params(void)
{
    struct web_params p;
    memset(&p, 0, sizeof(p));
    p.host = "127.0.0.1";
    p.port = 8111;
    p.threads = 4;
    int cores = sb_cpu_count();
    p.crawl_threads = cores > 1 ? cores - 1 : 1;
    p.max_body = 16 * 1024;
    return p;
}

/* ---- responses ---------------------------------------------------------------------------- */

void web_add_common_headers(void *response)
{
    struct MHD_Response *r = response;
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; script-src 'self'; "
                            "style-src 'self'; connect-src 'self'; object-src 'none'; "
                            "base-uri 'none'; frame-ancestors 'none'; form-action 'self'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
}

static int queue(struct MHD_Connection *conn, unsigned status, struct MHD_Response *resp)
{
    if (!resp)
        return MHD_NO;
    web_add_common_headers(resp);
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

int web_reply_json(struct web_request *r, unsigned status, cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        struct MHD_Response *resp = MHD_create_response_from_buffer(
            sizeof(oom) - 1, (void *)(uintptr_t)oom, MHD_RESPMEM_PERSISTENT);
        if (resp)
            MHD_add_response_header(resp, "Content-Type", "application/json");
        return queue(r->conn, 500, resp);
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    return queue(r->conn, status, resp);
}

int web_reply_error(struct web_request *r, unsigned status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    char *clean = sb_utf8_clean(msg);
    cJSON_AddStringToObject(o, "error", clean ? clean : "error");
    free(clean);
    return web_reply_json(r, status, o);
}

/* ---- checks ------------------------------------------------------------------------------ */

static bool token_equal(const char *a, const char *b)
{
    /* constant time in the length of b (the secret) */
    if (!a)
        return false;
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    for (size_t i = 0; i < lb; i++)
        diff |= (unsigned char)(a[i < la ? i : 0] ^ b[i]);
    return diff == 0;
}

static bool host_allowed(const struct web_server *s, const char *host)
{
    if (!host)
        return false;
    if (s->nallowed == 0)
        return true; /* listening on every address: the token guards every request */
    for (int i = 0; i < s->nallowed; i++) {
        if (strcasecmp(host, s->allowed_hosts[i]) == 0)
            return true;
    }
    return false;
}

/* A POST from a page must come from our own origin (a second line behind the token): the
 * Origin header, when the browser sends one, is "http://" + an allowed Host. */
static bool origin_allowed(const struct web_server *s, const char *origin)
{
    if (!origin || s->nallowed == 0)
        return true;
    if (strncmp(origin, "http://", 7) != 0)
        return false;
    return host_allowed(s, origin + 7);
}

/* In remote mode: the token in the header, the cookie, or ?token= (which sets the cookie). */
static bool remote_token_ok(struct web_server *s, struct MHD_Connection *conn, bool *set_cookie)
{
    *set_cookie = false;
    if (token_equal(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, TOKEN_HEADER), s->token))
        return true;
    if (token_equal(MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, TOKEN_COOKIE), s->token))
        return true;
    if (token_equal(MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "token"), s->token)) {
        *set_cookie = true;
        return true;
    }
    return false;
}

/* ---- static assets ---------------------------------------------------------------------- */

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int serve_static(struct web_request *r, bool set_cookie)
{
    const char *url = r->url;
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(
            r->s->index_len, r->s->index_html, MHD_RESPMEM_PERSISTENT);
        if (!resp)
            return MHD_NO;
        MHD_add_response_header(resp, "Content-Type", "text/html; charset=utf-8");
        MHD_add_response_header(resp, "Cache-Control", "no-store");
        if (set_cookie) {
            char cookie[160];
            snprintf(cookie, sizeof(cookie), TOKEN_COOKIE "=%s; HttpOnly; SameSite=Strict; Path=/",
                     r->s->token);
            MHD_add_response_header(resp, "Set-Cookie", cookie);
        }
        return queue(r->conn, 200, resp);
    }
    for (size_t i = 0; i < web_nassets; i++) {
        const struct web_asset *a = &web_assets[i];
        if (strcmp(url, a->path) != 0 || strcmp(a->path, "/index.html") == 0)
            continue;
        char etag[24];
        snprintf(etag, sizeof(etag), "\"%016llx\"", (unsigned long long)fnv1a(a->data, a->len));
        const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "If-None-Match");
        bool fresh = inm && strcmp(inm, etag) == 0;
        struct MHD_Response *resp =
            fresh ? MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT)
                  : MHD_create_response_from_buffer(a->len, (void *)(uintptr_t)a->data,
                                                    MHD_RESPMEM_PERSISTENT);
        if (!resp)
            return MHD_NO;
        if (!fresh)
            MHD_add_response_header(resp, "Content-Type", a->mime);
        MHD_add_response_header(resp, "ETag", etag);
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
        return queue(r->conn, fresh ? 304 : 200, resp);
    }
    return web_reply_error(r, 404, "not found");
}

/* ---- the request life cycle ------------------------------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct web_server *s = cls;
    struct req_state *rs = *con_cls;
    struct web_request r = { s, conn, url, false, NULL, 0 };
    bool post = strcmp(method, "POST") == 0;
    if (!rs) {
        rs = calloc(1, sizeof(*rs));
        if (!rs)
            return MHD_NO;
        *con_cls = rs;
        if (!post && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return (enum MHD_Result)web_reply_error(&r, 405, "method not allowed");
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        int64_t len = 0;
        if (cl && (sb_parse_i64(cl, 0, INT64_MAX, &len, NULL) || len > s->p.max_body))
            return (enum MHD_Result)web_reply_error(&r, 413, "request body too large");
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rs->too_big || !post || rs->len + n > (size_t)s->p.max_body) {
            rs->too_big = true;
            return MHD_YES;
        }
        char *nb = realloc(rs->body, rs->len + n + 1);
        if (!nb)
            return MHD_NO;
        memcpy(nb + rs->len, upload_data, n);
        rs->body = nb;
        rs->len += n;
        rs->body[rs->len] = '\0';
        return MHD_YES;
    }
    /* the whole request is in: check it */
    if (strlen(url) > MAX_URL)
        return (enum MHD_Result)web_reply_error(&r, 414, "request line too long");
    if (!host_allowed(s, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host")))
        return (enum MHD_Result)web_reply_error(&r, 403, "forbidden host");
    bool set_cookie = false;
    if (s->remote && !remote_token_ok(s, conn, &set_cookie))
        return (enum MHD_Result)web_reply_error(&r, 401, "token required");
    if (post &&
        !token_equal(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, TOKEN_HEADER), s->token))
        return (enum MHD_Result)web_reply_error(&r, 403, "missing or wrong token");
    if (post && !origin_allowed(s, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin")))
        return (enum MHD_Result)web_reply_error(&r, 403, "forbidden origin");
    if (rs->too_big)
        return (enum MHD_Result)web_reply_error(&r, 413, "request body too large");
    r.post = post;
    r.body = rs->body;
    r.body_len = rs->len;
    if (strncmp(url, "/api/", 5) == 0 || strncmp(url, "/thumb/", 7) == 0 ||
        strncmp(url, "/photo/", 7) == 0) {
        atomic_fetch_add(&s->busy, 1);
        enum MHD_Result res = (enum MHD_Result)web_api_handle(&r);
        atomic_fetch_sub(&s->busy, 1);
        return res;
    }
    if (post)
        return (enum MHD_Result)web_reply_error(&r, 405, "method not allowed");
    return (enum MHD_Result)serve_static(&r, set_cookie);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct req_state *rs = *con_cls;
    if (rs) {
        free(rs->body);
        free(rs);
        *con_cls = NULL;
    }
}

/* ---- connections and a clean stop ---------------------------------------------------------
 *
 * libmicrohttpd 0.9.75 (Debian 12's) crashes when it is stopped while a worker thread still
 * handles a request that the library rejects by itself, without calling on_request (a header
 * line without a colon, a bad HTTP version or Content-Length, a malformed chunk, a request line
 * too long, ...): MHD_stop_daemon() sets the workers' shutdown flag, a worker finishes the
 * epoll round it is in, and for such a request transmit_error_response_len() calls
 * MHD_queue_response(), which once the flag is set returns MHD_YES without queuing anything;
 * the library then builds the reply header of the NULL response (SEGV reading 0x98 in
 * build_header_response). Found by fuzz_http at exit; tests/test_web_stop.c crashed within a
 * few rounds. No request handling of ours can avoid it, so web_server_stop() never calls
 * MHD_stop_daemon() while connections are open: it refuses new ones (on_accept, the accept
 * policy), shuts down the sockets of the open ones (their reads end and their writes fail, so
 * MHD closes them promptly whatever state they are in) and waits until MHD has closed them
 * all; the workers then have nothing to handle once the flag is set (unless a handler runs
 * longer than STOP_WAIT_S: the stop then goes on, with that one connection open).
 * MHD_quiesce_daemon() is not used to refuse connections: in 0.9.75 its thread-pool branch calls
 * MHD_PANIC when a worker removes the listening socket from its epoll set at the same moment. */

enum { STOP_WAIT_S = 3 }; /* longest wait for open connections (a handler still running) */

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    struct web_server *s = cls;
    pthread_mutex_lock(&s->conn_mu);
    bool ok = !s->stopping;
    if (ok)
        s->nconn++;
    pthread_mutex_unlock(&s->conn_mu);
    return ok ? MHD_YES : MHD_NO;
}

/* MHD calls this with CLOSED before it closes the socket, so a socket in conn_fds is open while
 * conn_mu is held. A connection that fails between on_accept and STARTED (out of memory) is
 * never counted down: the stop then waits STOP_WAIT_S for nothing, which is harmless. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)socket_context;
    struct web_server *s = cls;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int fd = ci ? ci->connect_fd : -1;
    pthread_mutex_lock(&s->conn_mu);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        if (fd >= 0 && s->stopping)
            shutdown(fd, SHUT_RDWR); /* admitted just before the stop began */
        if (fd >= 0 && s->nconn_fds < WEB_CONN_LIMIT)
            s->conn_fds[s->nconn_fds++] = fd;
    } else {
        for (int i = 0; i < s->nconn_fds; i++) {
            if (s->conn_fds[i] == fd) {
                s->conn_fds[i] = s->conn_fds[--s->nconn_fds];
                break;
            }
        }
        if (s->nconn > 0 && --s->nconn == 0 && s->stopping)
            pthread_cond_broadcast(&s->conn_gone);
    }
    pthread_mutex_unlock(&s->conn_mu);
}

/* Refuses new connections, shuts the open ones down and waits (at most STOP_WAIT_S) until MHD
 * has closed them. */
static void close_connections(struct web_server *s)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += STOP_WAIT_S;
    pthread_mutex_lock(&s->conn_mu);
    s->stopping = true;
    for (int i = 0; i < s->nconn_fds; i++)
        shutdown(s->conn_fds[i], SHUT_RDWR);
    int rc = 0;
    while (s->nconn > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&s->conn_gone, &s->conn_mu, &until);
    int left = s->nconn;
    pthread_mutex_unlock(&s->conn_mu);
    if (left > 0)
        SB_LOG_W("serve: %d connection(s) still open after %d s; stopping anyway", left,
                 (int)STOP_WAIT_S);
}

/* ---- start and stop ----------------------------------------------------------------------- */

static int make_token(struct web_server *s, const char *given, struct sb_err *err)
{
    if (given) {
        size_t n = strlen(given);
        if (n < 16 || n >= sizeof(s->token))
            return sb_fail(err, SB_EINVAL, "--token must have 16 to 64 characters");
        for (size_t i = 0; i < n; i++) {
            char c = given[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '-' || c == '_'))
                return sb_fail(err, SB_EINVAL, "--token may use only letters, digits, - and _");
        }
        memcpy(s->token, given, n + 1);
        return SB_OK;
    }
    unsigned char raw[24];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n <= 0)
            return sb_fail(err, SB_EIO, "getrandom failed");
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(s->token + 2 * i, 3, "%02x", raw[i]);
    return SB_OK;
}

static int make_index(struct web_server *s, struct sb_err *err)
{
    const struct web_asset *a = NULL;
    for (size_t i = 0; i < web_nassets; i++) {
        if (strcmp(web_assets[i].path, "/index.html") == 0)
            a = &web_assets[i];
    }
    if (!a)
        return sb_fail(err, SB_EINTERNAL, "index.html is not embedded");
    const char *html = (const char *)a->data; /* NUL-terminated by the generator */
    const char *slot = strstr(html, TOKEN_SLOT);
    struct sb_buf b;
    sb_buf_init(&b);
    if (slot) {
        sb_buf_append(&b, html, (size_t)(slot - html));
        sb_buf_puts(&b, s->token);
        sb_buf_puts(&b, slot + strlen(TOKEN_SLOT));
    } else {
        sb_buf_append(&b, html, a->len);
    }
    if (b.failed) {
        sb_buf_release(&b);
        return sb_fail(err, SB_ENOMEM, "out of memory");
    }
    s->index_html = b.data;
    s->index_len = b.len;
    return SB_OK;
}

static void set_allowed_hosts(struct web_server *s, bool loopback, bool any, bool v6)
{
    s->nallowed = 0;
    if (any)
        return;
    const char *names[3] = { "127.0.0.1", "localhost", "[::1]" };
    for (int i = 0; i < 3; i++)
        snprintf(s->allowed_hosts[s->nallowed++], sizeof(s->allowed_hosts[0]), "%s:%d", names[i],
                 s->port);
    if (!loopback)
        snprintf(s->allowed_hosts[s->nallowed++], sizeof(s->allowed_hosts[0]),
                 v6 ? "[%s]:%d" : "%s:%d", s->host, s->port);
}

int web_server_start(const struct web_params *p, struct web_server **out, struct sb_err *err)
{
    struct web_server *s = calloc(1, sizeof(*s));
    int rc = SB_OK;
    if (!s)
        return sb_fail(err, SB_ENOMEM, "out of memory");
    pthread_mutex_init(&s->cat_mu, NULL);
    pthread_mutex_init(&s->model_mu, NULL);
    pthread_mutex_init(&s->team_mu, NULL);
    atomic_init(&s->busy, 0);
    pthread_mutex_init(&s->store_reopen_mu, NULL);
    pthread_mutex_init(&s->store_mu, NULL);
    pthread_mutex_init(&s->crawl_mu, NULL);
    pthread_mutex_init(&s->conn_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->conn_gone, &ca);
    pthread_condattr_destroy(&ca);
    s->p = *p;
    s->db_path = sb_strdup(p->db_path);
    s->model_dir_arg = sb_strdup(p->model_dir);
    s->host = sb_strdup(p->host ? p->host : "127.0.0.1");
    if (!s->db_path || !s->host || (p->model_dir && !s->model_dir_arg)) {
        rc = sb_fail(err, SB_ENOMEM, "out of memory");
        goto out;
    }
    if (p->port < 0 || p->port > 65535 || p->threads < 1 || p->threads > WEB_POOL_MAX ||
        p->crawl_threads < 1 || p->max_body < 1) {
        rc = sb_fail(err, SB_EINVAL, "bad server parameters");
        goto out;
    }
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    memset(&a4, 0, sizeof(a4));
    memset(&a6, 0, sizeof(a6));
    bool v6 = false;
    if (inet_pton(AF_INET, s->host, &a4.sin_addr) == 1) {
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)p->port);
    } else if (inet_pton(AF_INET6, s->host, &a6.sin6_addr) == 1) {
        v6 = true;
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)p->port);
    } else {
        rc = sb_fail(err, SB_EINVAL, "--host '%s' is not an IPv4 or IPv6 address", s->host);
        goto out;
    }
    bool loopback =
        v6 ? IN6_IS_ADDR_LOOPBACK(&a6.sin6_addr) : (ntohl(a4.sin_addr.s_addr) >> 24) == 127;
    bool any = v6 ? IN6_IS_ADDR_UNSPECIFIED(&a6.sin6_addr) : a4.sin_addr.s_addr == INADDR_ANY;
    s->remote = !loopback;
    rc = make_token(s, p->token, err);
    if (!rc)
        rc = make_index(s, err);
    if (!rc)
        rc = web_engine_init(s, err);
    if (rc)
        goto out;
    /* Bind the socket here, so that the port (for --port 0) and the allowed Host names are
     * known before the first request can arrive. MHD closes it in MHD_stop_daemon. */
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, v6 ? (const struct sockaddr *)&a6 : (const struct sockaddr *)&a4,
             v6 ? sizeof(a6) : sizeof(a4)) != 0 ||
        listen(fd, 128) != 0) {
        rc = sb_fail(err, SB_EIO, "cannot listen on %s port %d: %s", s->host, p->port,
                     strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
        rc = sb_fail(err, SB_EIO, "getsockname: %s", strerror(errno));
        close(fd);
        goto out;
    }
    s->port = ntohs(v6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                       : ((struct sockaddr_in *)&bound)->sin_port);
    set_allowed_hosts(s, loopback, any, v6);
    /* ITC: stopping wakes the polling threads at once, even when all 512 connections are
     * taken (without it, a full server waited out the 60 s connection timeout: fuzz_http) */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC;
    if (v6)
        flags |= MHD_USE_IPv6;
    s->mhd = MHD_start_daemon(
        flags, 0, on_accept, s, on_request, s, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)p->threads, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)64 * 1024, MHD_OPTION_CONNECTION_LIMIT, (unsigned)WEB_CONN_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
    if (!s->mhd) {
        close(fd);
        rc = sb_fail(err, SB_EIO, "cannot start the HTTP server on %s port %d", s->host, s->port);
        goto out;
    }
out:
    if (rc) {
        web_server_stop(s);
        return rc;
    }
    *out = s;
    return SB_OK;
}

void web_server_stop(struct web_server *s)
{
    if (!s)
        return;
    web_crawl_join(s, true);
    if (s->mhd) {
        close_connections(s); /* first: see "connections and a clean stop" */
        MHD_stop_daemon(s->mhd);
    }
    web_engine_release(s);
    pthread_mutex_destroy(&s->cat_mu);
    pthread_mutex_destroy(&s->model_mu);
    pthread_mutex_destroy(&s->team_mu);
    pthread_mutex_destroy(&s->store_reopen_mu);
    pthread_mutex_destroy(&s->store_mu);
    pthread_mutex_destroy(&s->crawl_mu);
    pthread_mutex_destroy(&s->conn_mu);
    pthread_cond_destroy(&s->conn_gone);
    free(s->index_html);
    free(s->db_path);
    free(s->model_dir_arg);
    free(s->host);
    free(s);
}

int web_server_port(const struct web_server *s)
{
    return s->port;
}

const char *web_server_token(const struct web_server *s)
{
    return s->token;
}

bool web_server_remote(const struct web_server *s)
{
    return s->remote;
}
