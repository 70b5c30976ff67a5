/* cmd_serve.c - `shoebox serve`: the web UI and JSON API on http://127.0.0.1:8111 until
 * Ctrl-C (SIGINT) or SIGTERM, which stop a running crawl at its next safe point. */
#include "cli.h"

#include "shoebox/err.h"
#include "shoebox/util.h"
#include "shoebox/web.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char serve_help[] =
    "usage: shoebox serve [--host ADDR] [--port N] [--token T]\n\n"
    "Serves the photo library in the browser: search, photo pages with similar photos,\n"
    "rediscover, timeline, folders, duplicates, and crawling new folders with live progress.\n"
    "Nothing is fetched from the internet. Stop with Ctrl-C.\n\n"
    "options:\n"
    "  --host ADDR   listen address (default 127.0.0.1). Any other address is reachable from\n"
    "                the network: then every request needs the token (open the printed URL)\n"
    "  --port N      port (default 8111; 0 picks a free one, printed on stderr)\n"
    "  --token T     the access token (16-64 letters, digits, - or _; default: random per "
    "launch)\n"
    "  --help        this help\n"
    "The model is --model DIR, else the one the catalog was indexed with.\n";

static const char *opt(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc)
        return "";
    return argv[++*i];
}

int cmd_serve(int argc, char **argv, struct cli_ctx *ctx)
{
    struct web_params p = web_default_params();
    struct sb_err err;
    p.db_path = ctx->db_path;
    p.model_dir = ctx->model_dir;
    p.precision = ctx->precision == CLI_PRECISION_BF16   ? WEB_PRECISION_BF16
                  : ctx->precision == CLI_PRECISION_FP32 ? WEB_PRECISION_FP32
                                                         : WEB_PRECISION_AUTO;
    p.crawl_threads = ctx->threads > 1 ? ctx->threads - 1 : 1;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(serve_help, stdout);
            return CLI_EXIT_OK;
        } else if ((v = opt(argc, argv, &i, "--host"))) {
            p.host = v;
        } else if ((v = opt(argc, argv, &i, "--port"))) {
            int64_t port;
            if (sb_parse_i64(v, 0, 65535, &port, &err)) {
                cli_error("--port: %s", err.msg);
                return CLI_EXIT_USAGE;
            }
            p.port = (int)port;
        } else if ((v = opt(argc, argv, &i, "--token"))) {
            p.token = v;
        } else {
            cli_error("serve: unexpected argument '%s' (see shoebox serve --help)", argv[i]);
            return CLI_EXIT_USAGE;
        }
    }
    /* Block the stop signals before any thread starts (they inherit the mask); this thread
     * then waits for one with sigwait. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct web_server *s = NULL;
    if (web_server_start(&p, &s, &err)) {
        cli_error("serve: %s", err.msg);
        return err.code == SB_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
    }
    if (web_server_remote(s)) {
        fprintf(stderr,
                "shoebox: WARNING: listening on %s, reachable from the network. Every request "
                "needs the token; open\n  http://%s:%d/?token=%s\n",
                p.host, p.host, web_server_port(s), web_server_token(s));
    } else {
        fprintf(stderr, "shoebox: serving http://127.0.0.1:%d/ (Ctrl-C to stop)\n",
                web_server_port(s));
    }
    fflush(stderr);
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "shoebox: stopping\n");
    web_server_stop(s);
    return CLI_EXIT_OK;
}
