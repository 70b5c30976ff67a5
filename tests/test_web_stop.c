/* test_web_stop.c - web_server_stop() while clients keep sending requests that libmicrohttpd
 * answers by itself (a header line without a colon: its own "400 Bad Request").
 *
 * libmicrohttpd 0.9.75 (Debian 12) crashed here: once MHD_stop_daemon() has set a worker's
 * shutdown flag, MHD_queue_response() returns MHD_YES without queuing, and the library's own
 * error path (transmit_error_response_len) then builds the reply header of a NULL response
 * (SEGV reading 0x98 in build_header_response). The worker still handles the events of the
 * epoll round it was in when the flag was set, so a malformed request arriving as the server
 * stops hit it (found by fuzz_http at the end of its run). Each round here starts a server,
 * streams malformed requests at it from a client thread over fresh connections and stops the
 * server in the middle of the stream; before the fix a few rounds were enough to crash. The
 * checks: every round stops (no crash, no hang), answers arrive before the stop, and the
 * port is closed after it. */
#define _GNU_SOURCE
#include "check.h"

#include "shoebox/err.h"
#include "shoebox/web.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { ROUNDS = 40, MAX_CONN = 400 };

struct blast {
    int port;
    atomic_int sent;     /* connections that got their request */
    atomic_int answered; /* of which an answer was read before the stop */
    atomic_bool stop;
    int fds[MAX_CONN];
    int nfds;
};

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Opens connections one after another, each sending one malformed request (the connection
 * stays open: MHD closes it after its 400), until told to stop or the server refuses. */
static void *sender(void *arg)
{
    struct blast *b = arg;
    char req[160];
    int n = snprintf(req, sizeof(req),
                     "GET /api/status HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nno colon here\r\n\r\n",
                     b->port);
    while (!atomic_load(&b->stop) && b->nfds < MAX_CONN) {
        int fd = connect_port(b->port);
        if (fd < 0)
            break;
        b->fds[b->nfds++] = fd;
        if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
            break;
        atomic_fetch_add(&b->sent, 1);
        /* every 8th connection: wait for its answer, so that the stream is paced by the
         * server rather than by the backlog */
        if (b->nfds % 8 == 0) {
            struct pollfd pfd = { fd, POLLIN, 0 };
            char buf[64];
            if (poll(&pfd, 1, 2000) == 1 && recv(fd, buf, sizeof(buf), 0) > 12 &&
                memcmp(buf, "HTTP/1.1 400", 12) == 0)
                atomic_fetch_add(&b->answered, 1);
        }
    }
    return NULL;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *tmp = getenv("SHOEBOX_TMP");
    char db[512];
    snprintf(db, sizeof(db), "%s/test_web_stop.%d/catalog.db", tmp ? tmp : "/tmp", (int)getpid());
    int answered = 0;
    for (int round = 0; round < ROUNDS; round++) {
        struct web_params p = web_default_params();
        p.db_path = db;
        p.port = 0;
        p.threads = 2;
        p.crawl_threads = 1;
        p.token = "stop-test-token-0123456789";
        struct web_server *s = NULL;
        struct sb_err err;
        CHECK_EQ_INT(SB_OK, web_server_start(&p, &s, &err));
        if (!s)
            break;
        static struct blast b;
        memset(&b, 0, sizeof(b));
        b.port = web_server_port(s);
        pthread_t t;
        CHECK_EQ_INT(0, pthread_create(&t, NULL, sender, &b));
        /* stop once the stream runs; vary the moment a little between rounds */
        int want = 16 + (round % 8) * 8;
        for (int i = 0; i < 4000 && atomic_load(&b.sent) < want; i++)
            usleep(500);
        web_server_stop(s);
        atomic_store(&b.stop, true);
        pthread_join(t, NULL);
        CHECK(atomic_load(&b.sent) >= want);
        answered += atomic_load(&b.answered);
        /* the port is closed: a new connection is refused */
        int fd = connect_port(b.port);
        CHECK(fd < 0);
        if (fd >= 0)
            close(fd);
        for (int i = 0; i < b.nfds; i++)
            close(b.fds[i]);
    }
    CHECK(answered > 0);
    return check_exit();
}
