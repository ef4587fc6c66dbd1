/*
 * webd.h - a small HTTP server for an operator's read-only pages: the
 * Prometheus metrics and the status page of bursard and bursar-gateway.
 *
 *     webd_opts_t o = {.listen = "127.0.0.1:9464", .name = "bursard"};
 *     webd_t *w;
 *     if (webd_start(&w, &o, serve, ctx, err, sizeof err) != 0) ...
 *     ...
 *     webd_stop(&w);
 *
 * GNU libmicrohttpd, one internal thread: serve() runs on it, one request
 * at a time (opts.threaded: a thread per connection, several at once),
 * for GET and HEAD only (other methods: 405). Access is restricted the way
 * Prometheus exporters are: the address to bind (a loopback one by default,
 * chosen by the caller), an allow-list of client networks checked when a
 * connection is accepted (loopback only unless opts.allow says otherwise: a
 * refused client's connection is closed at once), and an optional bearer token
 * (Prometheus' `authorization` scrape setting; a request without it is answered
 * 401, except for the paths in opts.open_paths).
 */
#ifndef BURSAR_AGENTS_WEBD_H
#define BURSAR_AGENTS_WEBD_H

#include <stddef.h>
#include <sys/socket.h>

#define WEBD_ALLOW_MAX 32

typedef struct webd webd_t;

/* What serve() answers: status, content type and a body from malloc
 * (webd frees it; NULL is an empty body). */
typedef struct webd_reply {
    unsigned status;
    const char *type;
    char *body;
    size_t len;
} webd_reply_t;

/* The request being served, for webd_arg. */
typedef struct webd_req webd_req_t;

/* Called for each admitted GET or HEAD request; path without the query
 * string (webd_arg reads its arguments). Fills r (status 0 is answered
 * 500). */
typedef void (*webd_serve_fn)(void *ctx, const char *path, webd_req_t *rq,
                              webd_reply_t *r);

typedef struct webd_opts {
    const char *listen;       /* HOST:PORT (port 0: any free port) */
    const char *const *allow; /* CIDR networks, n_allow of them; none:
                                 127.0.0.0/8 and ::1 */
    size_t n_allow;
    const char *token; /* bearer token required, or NULL/"" */
    const char *name;  /* the program, for log lines */
    int quiet;         /* no log lines */

    /* paths served without the token (exact match; the array outlives the
     * server) */
    const char *const *open_paths;
    size_t n_open_paths;
    /* a thread per connection: serve() may run on several threads at
     * once, and a slow answer holds no other connection */
    int threaded;
} webd_opts_t;

/* Starts serving. Returns 0, or -1 with a reason in err. */
int webd_start(webd_t **out, const webd_opts_t *o, webd_serve_fn serve,
               void *ctx, char *err, size_t cap);
/* The value of the query string's argument name in the request served
 * (decoded), or NULL; valid during serve() only. */
const char *webd_arg(webd_req_t *rq, const char *name);
/* The port bound (useful with port 0). */
unsigned webd_port(const webd_t *w);
void webd_stop(webd_t **w);

/* 1 if s is HOST:PORT with a port number up to 65535 ([v6]:PORT too;
 * 0.0.0.0 or [::] for every interface). */
int webd_listen_ok(const char *s);
/* The address of HOST:PORT (a name is resolved). Returns 0, or
 * -1 with err. */
int webd_listen_addr(const char *listen, struct sockaddr_storage *ss, int *v6,
                     char *err, size_t cap);
/* 1 if s is a network ADDRESS/BITS (IPv4 or IPv6; ADDRESS alone is one
 * host). */
int webd_cidr_ok(const char *s);

#endif
