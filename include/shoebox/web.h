/* web.h - the local web UI and JSON API (`shoebox serve`): a libmicrohttpd server with a
 * thread pool, static assets compiled into the binary, search over the catalog's vectors and
 * a crawl that runs in its own thread while the UI stays usable.
 *
 * Security model: the server listens on 127.0.0.1 unless told otherwise; it answers only
 * requests whose Host header names the address it serves (DNS rebinding); state-changing
 * endpoints are POST and need the per-launch token in an X-Shoebox-Token header (CSRF); files
 * are served only by catalog id. When listening on another address every request needs the
 * token (header, ?token= once, which sets a cookie, or that cookie).
 *
 * Thread rules: web_server_start() and web_server_stop() are called from one thread; the
 * server's own threads do everything in between. */
#ifndef SHOEBOX_WEB_H
#define SHOEBOX_WEB_H

#include <stdbool.h>
#include <stdint.h>

struct sb_err;
struct web_server;

enum web_precision { WEB_PRECISION_FP32 = 0, WEB_PRECISION_BF16, WEB_PRECISION_AUTO };

struct web_params {
    const char *db_path;   /* the catalog (created when absent) */
    const char *model_dir; /* CLIP folder; NULL: the one the catalog was indexed with, if any */
    const char *host;      /* address to listen on, "127.0.0.1" by default */
    int port;              /* 8111 by default; 0 picks a free port (see web_server_port) */
    const char *token;     /* NULL: a random per-launch token (getrandom) */
    int threads;           /* HTTP worker threads (default 4) */
    int crawl_threads;     /* hashing/decoding workers of a crawl (default: cores - 1) */
    enum web_precision precision;
    int64_t max_body;   /* largest POST body accepted (default 16 KiB) */
    const char *origin; /* for the log only: how the user was told to reach us; may be NULL */
};

struct web_params web_default_params(void);

/* Opens (creating) the catalog, loads the text tower when a model is known, and starts
 * serving. Errors: SB_EINVAL (bad host or params), SB_EIO (cannot listen: port in use),
 * SB_EDB, SB_EMODEL. On success *out is a running server the caller stops with
 * web_server_stop(). */
int web_server_start(const struct web_params *p, struct web_server **out, struct sb_err *err);
/* Asks a running crawl to stop, waits for it, closes the open connections (waiting up to 3 s
 * for handlers still running), stops the HTTP threads and frees. NULL: no-op. */
void web_server_stop(struct web_server *s);

int web_server_port(const struct web_server *s); /* the port actually bound */
/* The token (borrowed, valid until web_server_stop). */
const char *web_server_token(const struct web_server *s);
/* True when every request needs the token (listening beyond loopback). */
bool web_server_remote(const struct web_server *s);

#endif
