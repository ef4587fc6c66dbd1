/*
 * webd.c - the operator's HTTP server (webd.h) on GNU libmicrohttpd.
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/webd.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <microhttpd.h>

#include "policies/base.h"

typedef struct webd_net {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned bits;
} webd_net_t;

/* Connections at once, and the seconds one may stay idle: a scraper or a
 * browser needs one or two; clients that hold connections open without
 * finishing a request are dropped after WEBD_IDLE_S of silence. */
#define WEBD_CONNECTIONS 512u
#define WEBD_IDLE_S      10u
/* Each connection's thread (opts.threaded) needs little stack. */
#define WEBD_STACK (256u * 1024u)

struct webd {
    struct MHD_Daemon *mhd;
    webd_serve_fn serve;
    void *ctx;
    webd_net_t allow[WEBD_ALLOW_MAX];
    size_t n_allow;
    char *token;
    const char *const *open_paths;
    size_t n_open_paths;
    char name[64];
    char host[256];            /* the listen address's host, as written */
    atomic_llong limit_logged; /* when "connection limit" was last logged
                                  (monotonic seconds) */
    int quiet;
    unsigned port;
};

/* ------------------------------------------------------------ addresses */

int
webd_listen_ok(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return 0;
    const char *p = colon + 1;
    long port = 0;
    if (!*p || strlen(p) > 5)
        return 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        port = port * 10 + (*p - '0');
    }
    return port <= 65535;
}

int
webd_listen_addr(const char *listen, struct sockaddr_storage *ss, int *v6,
                 char *err, size_t cap)
{
    if (!webd_listen_ok(listen)) {
        snprintf(err, cap, "%.80s: not HOST:PORT", listen);
        return -1;
    }
    char host[256];
    const char *colon = strrchr(listen, ':');
    size_t hl = (size_t)(colon - listen);
    if (hl >= sizeof host)
        hl = sizeof host - 1;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 1 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
    if (rc != 0) {
        snprintf(err, cap, "%s: %s", listen, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    return 0;
}

/* Parses ADDRESS[/BITS]. Returns 0 or -1. */
static int
webd_net_parse(const char *s, webd_net_t *n)
{
    char a[64];
    const char *slash = strchr(s, '/');
    size_t al = slash ? (size_t)(slash - s) : strlen(s);
    if (al == 0 || al >= sizeof a)
        return -1;
    memcpy(a, s, al);
    a[al] = '\0';
    memset(n, 0, sizeof *n);
    unsigned max;
    if (inet_pton(AF_INET, a, n->addr) == 1) {
        n->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, a, n->addr) == 1) {
        n->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    n->bits = max;
    if (slash) {
        const char *p = slash + 1;
        unsigned v = 0;
        if (!*p || strlen(p) > 3)
            return -1;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            v = v * 10 + (unsigned)(*p - '0');
        }
        if (v > max)
            return -1;
        n->bits = v;
    }
    return 0;
}

int
webd_cidr_ok(const char *s)
{
    webd_net_t n;
    return webd_net_parse(s, &n) == 0;
}

static int
webd_prefix_match(const unsigned char *a, const unsigned char *net,
                  unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, net, full) != 0)
        return 0;
    if (!rest)
        return 1;
    unsigned char m = (unsigned char)(0xff << (8 - rest));
    return (a[full] & m) == (net[full] & m);
}

/* 1 if the client's address lies in one of the allowed networks (an
 * IPv4-mapped IPv6 address counts as its IPv4 address). */
static int
webd_allowed(const webd_t *w, const struct sockaddr *sa)
{
    unsigned char a4[4], a6[16];
    int v4 = 0, v6 = 0;
    if (sa->sa_family == AF_INET) {
        memcpy(a4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        v4 = 1;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(a6, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        v6 = 1;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0,    0,
                                                 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a6, mapped, 12) == 0) {
            memcpy(a4, a6 + 12, 4);
            v4 = 1;
        }
    }
    for (size_t i = 0; i < w->n_allow; i++) {
        const webd_net_t *n = &w->allow[i];
        if (n->family == AF_INET && v4 &&
            webd_prefix_match(a4, n->addr, n->bits))
            return 1;
        if (n->family == AF_INET6 && v6 &&
            webd_prefix_match(a6, n->addr, n->bits))
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------- requests */

static enum MHD_Result
webd_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addrlen;
    return webd_allowed(cls, addr) ? MHD_YES : MHD_NO;
}

static enum MHD_Result
webd_queue(struct MHD_Connection *conn, unsigned status, const char *type,
           char *body, size_t len, const char *hname, const char *hval)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body ? body : (char *)"",
        body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    /* no page of another site may frame these pages, nor learn from where
     * they were left */
    MHD_add_response_header(r, "Content-Security-Policy",
                            "frame-ancestors 'none'");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    if (hname)
        MHD_add_response_header(r, hname, hval);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result
webd_text(struct MHD_Connection *conn, unsigned status, const char *msg,
          const char *hname, const char *hval)
{
    char *b = bursar_sprintf("%s\n", msg);
    return webd_queue(conn, status, "text/plain; charset=utf-8", b, strlen(b),
                      hname, hval);
}

/* 1 if the request carries the bearer token (compared in constant time)
 * or is for one of the open paths. */
static int
webd_token_ok(const webd_t *w, struct MHD_Connection *conn, const char *url)
{
    if (!w->token)
        return 1;
    for (size_t i = 0; i < w->n_open_paths; i++)
        if (strcmp(url, w->open_paths[i]) == 0)
            return 1;
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    h += 7;
    size_t n = strlen(w->token), hl = strlen(h);
    unsigned char d = (unsigned char)(hl != n);
    for (size_t i = 0; i < n; i++)
        d |= (unsigned char)(w->token[i] ^ (i < hl ? h[i] : 0));
    return d == 0;
}

/* 1 if the request's Host names this server: an IP address, localhost
 * or the host of the listen address; any other name may be one that a
 * page elsewhere made point here (DNS rebinding), and is answered 421.
 * No Host (HTTP/1.0) is accepted. */
static int
webd_host_ok(const webd_t *w, struct MHD_Connection *conn)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_HOST);
    if (!h || h[0] == '[') /* an IPv6 literal */
        return 1;
    char name[256];
    size_t n = strcspn(h, ":");
    if (n >= sizeof name)
        return 0;
    memcpy(name, h, n);
    name[n] = '\0';
    unsigned char a[4];
    return inet_pton(AF_INET, name, a) == 1 ||
           strcasecmp(name, "localhost") == 0 || strcasecmp(name, w->host) == 0;
}

static enum MHD_Result
webd_access(void *cls, struct MHD_Connection *conn, const char *url,
            const char *method, const char *version, const char *upload,
            size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload;
    webd_t *w = cls;
    if (!*con_cls) { /* the head: refused before any body is read */
        *con_cls = w;
        if (!webd_host_ok(w, conn))
            return webd_text(conn, 421,
                             "misdirected request: the Host header names "
                             "another server (use an address, localhost or "
                             "the listen address's name)",
                             NULL, NULL);
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
            return webd_text(conn, 405, "method not allowed: GET only", "Allow",
                             "GET, HEAD");
        if (!webd_token_ok(w, conn, url))
            return webd_text(conn, 401,
                             "unauthorized: a bearer token is required",
                             "WWW-Authenticate", "Bearer");
        return MHD_YES; /* answered once the body (if any) is in */
    }
    if (*upload_size) {
        *upload_size = 0; /* a GET's body is read and ignored */
        return MHD_YES;
    }
    webd_reply_t r = {0, "text/plain; charset=utf-8", NULL, 0};
    w->serve(w->ctx, url, (webd_req_t *)conn, &r);
    if (!r.status) {
        free(r.body);
        return webd_text(conn, 500, "internal error", NULL, NULL);
    }
    return webd_queue(conn, r.status, r.type, r.body, r.len, NULL, NULL);
}

static void
webd_log(void *cls, const char *fmt, va_list ap)
{
    const webd_t *w = cls;
    if (w->quiet)
        return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* a failed bind is said by webd_start's caller, with the address (the
     * library names the port of the address it was given, 0 for some) */
    if (strncmp(msg, "Failed to bind", 14) == 0)
        return;
    /* a flood of connections would log one line each: once a minute */
    if (strstr(msg, "connection limit")) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long last = atomic_load(&w->limit_logged);
        if (last > 0 && ts.tv_sec - last < 60)
            return;
        atomic_store(&((webd_t *)w)->limit_logged, (long long)ts.tv_sec);
    }
    bursar_log("%s: http: %s", w->name, msg);
}

const char *
webd_arg(webd_req_t *rq, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)rq,
                                       MHD_GET_ARGUMENT_KIND, name);
}

/* ------------------------------------------------------------ lifecycle */

static int
webd_set_allow(webd_t *w, const webd_opts_t *o, char *err, size_t cap)
{
    static const char *const loopback[] = {"127.0.0.0/8", "::1/128"};
    const char *const *list = o->n_allow ? o->allow : loopback;
    size_t n = o->n_allow ? o->n_allow : 2;
    if (n > WEBD_ALLOW_MAX) {
        snprintf(err, cap, "allow: at most %d networks", WEBD_ALLOW_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (webd_net_parse(list[i], &w->allow[i]) != 0) {
            snprintf(err, cap, "allow[%zu]: \"%.60s\" is not ADDRESS[/BITS]", i,
                     list[i]);
            return -1;
        }
    w->n_allow = n;
    return 0;
}

int
webd_start(webd_t **out, const webd_opts_t *o, webd_serve_fn serve, void *ctx,
           char *err, size_t cap)
{
    *out = NULL;
    webd_t *w = bursar_calloc(1, sizeof *w);
    w->serve = serve;
    w->ctx = ctx;
    w->quiet = o->quiet;
    snprintf(w->name, sizeof w->name, "%s", o->name ? o->name : "bursar");
    if (o->token && *o->token)
        w->token = bursar_strdup(o->token);
    w->open_paths = o->open_paths;
    w->n_open_paths = o->n_open_paths;
    const char *colon = strrchr(o->listen, ':');
    size_t hl = colon ? (size_t)(colon - o->listen) : 0;
    if (hl < sizeof w->host)
        memcpy(w->host, o->listen, hl); /* [v6] needs no match: a literal */
    struct sockaddr_storage ss;
    int v6 = 0;
    if (webd_set_allow(w, o, err, cap) != 0 ||
        webd_listen_addr(o->listen, &ss, &v6, err, cap) != 0) {
        webd_stop(&w);
        return -1;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG | (v6 ? MHD_USE_DUAL_STACK : 0) |
                     (o->threaded ? MHD_USE_THREAD_PER_CONNECTION : 0);
    w->mhd = MHD_start_daemon(
        flags, 0, webd_accept, w, webd_access, w, MHD_OPTION_EXTERNAL_LOGGER,
        webd_log, w, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, WEBD_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, WEBD_IDLE_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)WEBD_STACK, MHD_OPTION_END);
    if (!w->mhd) {
        snprintf(err, cap, "cannot serve on %s (address in use?)", o->listen);
        webd_stop(&w);
        return -1;
    }
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_BIND_PORT);
    w->port = di ? di->port : 0;
    *out = w;
    return 0;
}

unsigned
webd_port(const webd_t *w)
{
    return w ? w->port : 0;
}

void
webd_stop(webd_t **wp)
{
    webd_t *w = wp ? *wp : NULL;
    if (!w)
        return;
    if (w->mhd)
        MHD_stop_daemon(w->mhd);
    free(w->token);
    free(w);
    *wp = NULL;
}
