/*
 * bench_http.c - bench_http: a small HTTP/1.1 load generator, the one
 * scripts/bench_gateway.sh runs against the mock provider, bursar-gateway
 * and Portkey's gateway (issue 11's benchmark).
 *
 *   bench_http --url http://HOST:PORT/PATH --body FILE [-H 'Name: value']...
 *              [-c CONNECTIONS] [-d SECONDS | -n REQUESTS] [-w WARMUP_S]
 *              [--expect TEXT] [--timeout-ms MS] [--label TEXT]
 *
 * C keep-alive connections (default 1), one epoll loop in one thread,
 * each sending POST PATH with the body of FILE (Content-Type
 * application/json unless a -H gives one) and the given headers, the next
 * request as soon as the previous response is complete (closed loop, no
 * pipelining). First a warm-up of WARMUP_S seconds (default 1) whose
 * requests are not counted, then SECONDS of measurement (default 5) or N
 * requests. A request counts when it was sent after the warm-up; the
 * requests in flight at the end are waited for.
 *
 * Per request, from the moment the request is written:
 *   ttfb        the first byte of the response (the status line);
 *   first_data  the first byte of the body's payload (for a chunked body,
 *               the first byte of chunk data: with Server-Sent Events, the
 *               first event; a gateway that sends its headers before the
 *               upstream answered shows a small ttfb, not a small
 *               first_data);
 *   total       the complete response: Content-Length bytes, or the
 *               chunked terminator (for SSE, the end of the stream), or the
 *               connection's end when neither is given.
 * A non-2xx status, a response without TEXT (--expect) in its body, a
 * timeout (default 10000 ms) or a connection lost mid-response is an
 * error: counted, the first few printed on stderr, not in the latencies.
 * Percentiles are exact (nearest rank over every sample, sorted).
 *
 * Prints one JSON line on stdout:
 *   {"label":..,"connections":C,"requests":N,"errors":E,"seconds":S,
 *    "rps":R,"ttfb_p50_us":..,"ttfb_p99_us":..,"first_data_p50_us":..,
 *    "first_data_p99_us":..,"total_p50_us":..,"total_p99_us":..,
 *    "total_mean_us":..,"total_max_us":..,"status":{"200":n,..},
 *    "reconnects":k}
 * Exit status: 0, 1 when some request failed (the line is printed all the
 * same), 2 on bad usage or when the server cannot be reached.
 *
 * Why not wrk or hey (both in Debian): wrk reports a latency histogram of
 * complete responses only: no time to the first byte, which is what a
 * streamed completion is judged on, and no per-request samples (its
 * percentiles come from a histogram of the whole run, its Lua hooks cannot
 * see when the first byte arrived). hey's per-request CSV has no first
 * byte either and it opens a goroutine pool whose scheduling on a 2-core
 * machine weighs on the figures. Neither checks an SSE stream for its
 * terminator. This one is small, single-threaded (its own CPU use is the
 * same whatever the target) and exact.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_cli.h"
#include "policies/base.h"

#define HB_MAX_CONNS    4096
#define HB_HEAD_MAX     (64 * 1024) /* bytes of response headers */
#define HB_KEEP_BODY    (1 << 20)   /* bytes of body kept for --expect */
#define HB_MAX_HEADERS  32
#define HB_ERRORS_SHOWN 5
#define HB_STATUS_MAX   600

typedef enum { C_DOWN, C_CONNECTING, C_SENDING, C_HEAD, C_BODY } cstate_t;

typedef enum {
    B_LENGTH,  /* Content-Length */
    B_CHUNKED, /* chunked transfer encoding */
    B_EOF      /* until the connection closes */
} bmode_t;

typedef enum { K_SIZE, K_DATA, K_DATA_END, K_TRAILER } kstate_t;

typedef struct conn {
    int fd;
    cstate_t state;
    int measured;    /* sent after the warm-up */
    int inflight;    /* a request sent, its response not complete */
    size_t sent;     /* bytes of the request written */
    int64_t t_send;  /* ns, CLOCK_MONOTONIC */
    int64_t t_first; /* first response byte, 0: none yet */
    int64_t t_data;  /* first payload byte, 0: none yet */
    int64_t t_retry; /* reconnect not before (after a failure) */
    char *head;      /* HB_HEAD_MAX */
    size_t head_len;
    int status;
    int close_after; /* Connection: close */
    bmode_t mode;
    long long remain; /* B_LENGTH: body bytes; chunked: chunk bytes */
    kstate_t kstate;
    char line[256]; /* a chunk size or trailer line */
    size_t line_len;
    char *body; /* the payload so far, up to HB_KEEP_BODY */
    size_t body_len, body_cap;
} conn_t;

typedef struct samples {
    double *v; /* microseconds */
    size_t n, cap;
} samples_t;

typedef struct bench {
    /* options */
    char host[256], port[16], path[2048];
    const char *label, *expect;
    char *request; /* the whole request, built once */
    size_t request_len;
    int conns;
    double duration_s, warmup_s;
    long max_requests; /* 0: by duration */
    long timeout_ms;
    /* state */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int ep;
    conn_t *c;
    int64_t t_measure, t_end, t_last_done;
    long started; /* measured requests sent */
    int stopping;
    long done, errors, reconnects, status[HB_STATUS_MAX];
    int shown;
    samples_t ttfb, first_data, total;
} bench_t;

static int64_t
hb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
hb_sample(samples_t *s, int64_t ns)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->v = bursar_realloc(s->v, s->cap * sizeof(double));
    }
    s->v[s->n++] = (double)ns / 1000.0;
}

static int
hb_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p% of them at or below
 * it. s->v sorted. */
static double
hb_pct(const samples_t *s, double p)
{
    if (s->n == 0)
        return 0;
    size_t rank = (size_t)((p / 100.0) * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return s->v[rank - 1];
}

/* ------------------------------------------------------------ errors */

static void
hb_error(bench_t *b, conn_t *c, const char *what)
{
    if (!c->measured)
        return;
    b->errors++;
    b->done++;
    b->t_last_done = hb_now();
    if (b->shown++ >= HB_ERRORS_SHOWN)
        return;
    char shown[301];
    size_t n = c->body_len < 300 ? c->body_len : 300;
    for (size_t i = 0; i < n; i++) /* one line */
        shown[i] = (unsigned char)c->body[i] < ' ' ? ' ' : c->body[i];
    shown[n] = '\0';
    fprintf(stderr, "bench_http: %s: %s%s%s\n", b->label, what, n ? ": " : "",
            shown);
}

/* ------------------------------------------------------- connections */

static void
hb_close(bench_t *b, conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(b->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_DOWN;
    c->inflight = 0;
}

static void
hb_watch(bench_t *b, conn_t *c, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(b->ep, op, c->fd, &ev);
}

/* Opens c's connection (non-blocking). Returns 0, or -1 (errno). */
static int
hb_connect(bench_t *b, conn_t *c)
{
    c->fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&b->addr, b->addrlen) != 0 &&
        errno != EINPROGRESS) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        errno = e;
        return -1;
    }
    c->state = C_CONNECTING;
    hb_watch(b, c, EPOLLIN | EPOLLOUT, EPOLL_CTL_ADD);
    return 0;
}

/* Whether a new request may start now. */
static int
hb_may_start(bench_t *b, int64_t now)
{
    if (b->stopping)
        return 0;
    if (now < b->t_measure)
        return 1;
    if (b->max_requests > 0)
        return b->started < b->max_requests;
    return now < b->t_end;
}

static void
hb_reset_response(conn_t *c)
{
    c->head_len = 0;
    c->status = 0;
    c->close_after = 0;
    c->mode = B_EOF;
    c->remain = 0;
    c->kstate = K_SIZE;
    c->line_len = 0;
    c->body_len = 0;
    c->t_first = c->t_data = 0;
}

/* Writes what is left of the request. Returns 0, or -1 on a lost
 * connection. */
static int
hb_write(bench_t *b, conn_t *c)
{
    while (c->sent < b->request_len) {
        ssize_t w = send(c->fd, b->request + c->sent, b->request_len - c->sent,
                         MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->state != C_SENDING)
                hb_watch(b, c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
            c->state = C_SENDING;
            return 0;
        }
        if (w <= 0)
            return -1;
        c->sent += (size_t)w;
    }
    if (c->state == C_SENDING)
        hb_watch(b, c, EPOLLIN, EPOLL_CTL_MOD);
    c->state = C_HEAD;
    return 0;
}

/* Starts c's next request, when one may start. */
static void
hb_start(bench_t *b, conn_t *c, int64_t now)
{
    if (!hb_may_start(b, now))
        return;
    c->measured = now >= b->t_measure;
    if (c->measured)
        b->started++;
    hb_reset_response(c);
    c->inflight = 1;
    c->sent = 0;
    c->t_send = hb_now();
    if (hb_write(b, c) != 0) {
        hb_error(b, c, "connection lost while sending");
        hb_close(b, c);
        b->reconnects++;
    }
}

/* ---------------------------------------------------------- responses */

static void
hb_keep_body(conn_t *c, const char *p, size_t n, int64_t now)
{
    if (n == 0)
        return;
    if (!c->t_data)
        c->t_data = now;
    if (c->body_len + n > HB_KEEP_BODY)
        n = HB_KEEP_BODY - c->body_len;
    if (c->body_len + n + 1 > c->body_cap) {
        c->body_cap = (c->body_len + n + 1) * 2;
        c->body = bursar_realloc(c->body, c->body_cap);
    }
    memcpy(c->body + c->body_len, p, n);
    c->body_len += n;
    c->body[c->body_len] = '\0';
}

static const char *
hb_header(const char *line, const char *name)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    const char *v = line + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    return v;
}

/* Reads the status line and headers (c->head, NUL-terminated at the blank
 * line). Returns 0, or -1 when malformed. */
static int
hb_parse_head(conn_t *c)
{
    char *save = NULL;
    char *line = strtok_r(c->head, "\r\n", &save);
    if (!line || sscanf(line, "HTTP/1.%*d %d", &c->status) != 1)
        return -1;
    int has_length = 0;
    while ((line = strtok_r(NULL, "\r\n", &save))) {
        const char *v;
        if ((v = hb_header(line, "Content-Length"))) {
            c->remain = strtoll(v, NULL, 10);
            has_length = 1;
        } else if ((v = hb_header(line, "Transfer-Encoding"))) {
            if (strstr(v, "chunked") || strstr(v, "Chunked"))
                c->mode = B_CHUNKED;
        } else if ((v = hb_header(line, "Connection"))) {
            c->close_after = strncasecmp(v, "close", 5) == 0;
        }
    }
    if (c->mode != B_CHUNKED && has_length)
        c->mode = B_LENGTH;
    if (c->status == 204 || c->status == 304) {
        c->mode = B_LENGTH;
        c->remain = 0;
    }
    return 0;
}

/* A chunk-size or trailer line; returns 1 when the response is done, 0 to
 * go on, -1 when malformed. */
static int
hb_chunk_line(conn_t *c)
{
    c->line[c->line_len] = '\0';
    c->line_len = 0;
    if (c->kstate == K_TRAILER)
        return c->line[0] == '\r' || c->line[0] == '\n' ? 1 : 0;
    char *end;
    c->remain = strtoll(c->line, &end, 16);
    if (end == c->line || c->remain < 0)
        return -1;
    c->kstate = c->remain == 0 ? K_TRAILER : K_DATA;
    return 0;
}

/* Chunked body bytes. Returns 1 when the terminator is read, 0 to go on,
 * -1 when malformed. */
static int
hb_chunked(conn_t *c, const char *p, size_t n, int64_t now)
{
    size_t i = 0;
    while (i < n) {
        if (c->kstate == K_DATA) {
            size_t take = n - i;
            if ((long long)take > c->remain)
                take = (size_t)c->remain;
            hb_keep_body(c, p + i, take, now);
            i += take;
            c->remain -= (long long)take;
            if (c->remain == 0) {
                c->kstate = K_DATA_END;
                c->remain = 2; /* CRLF */
            }
        } else if (c->kstate == K_DATA_END) {
            i++;
            if (--c->remain == 0)
                c->kstate = K_SIZE;
        } else {
            char ch = p[i++];
            if (c->line_len + 1 >= sizeof c->line)
                return -1;
            c->line[c->line_len++] = ch;
            if (ch == '\n') {
                int r = hb_chunk_line(c);
                if (r != 0)
                    return r;
            }
        }
    }
    return 0;
}

/* Body bytes. Returns 1 when the response is complete, 0 to go on, -1
 * when malformed. */
static int
hb_body(conn_t *c, const char *p, size_t n, int64_t now)
{
    if (c->mode == B_CHUNKED)
        return hb_chunked(c, p, n, now);
    if (c->mode == B_EOF) {
        hb_keep_body(c, p, n, now);
        return 0;
    }
    size_t take = (long long)n > c->remain ? (size_t)c->remain : n;
    hb_keep_body(c, p, take, now);
    c->remain -= (long long)take;
    return c->remain == 0 ? 1 : 0;
}

/* Response bytes. Returns 1 when the response is complete, 0 to go on,
 * -1 when malformed. */
static int
hb_feed(conn_t *c, const char *p, size_t n, int64_t now)
{
    if (!c->t_first && n > 0)
        c->t_first = now;
    if (c->state == C_BODY)
        return hb_body(c, p, n, now);
    size_t from = c->head_len > 3 ? c->head_len - 3 : 0;
    size_t take = n;
    if (c->head_len + take >= HB_HEAD_MAX)
        take = HB_HEAD_MAX - 1 - c->head_len;
    memcpy(c->head + c->head_len, p, take);
    c->head_len += take;
    c->head[c->head_len] = '\0';
    char *end = strstr(c->head + from, "\r\n\r\n");
    if (!end)
        return c->head_len >= HB_HEAD_MAX - 1 ? -1 : 0;
    size_t head_bytes = (size_t)(end - c->head) + 4;
    end[2] = '\0';
    if (hb_parse_head(c) != 0)
        return -1;
    c->state = C_BODY;
    size_t used = head_bytes - (c->head_len - take);
    if (c->mode == B_LENGTH && c->remain == 0) {
        c->t_data = now;
        return 1;
    }
    return hb_body(c, p + used, n - used, now);
}

/* A complete response: its samples or its error. */
static void
hb_complete(bench_t *b, conn_t *c, int64_t now)
{
    c->inflight = 0;
    if (!c->measured)
        return;
    char what[64];
    if (c->status < 200 || c->status > 299) {
        snprintf(what, sizeof what, "status %d", c->status);
        hb_error(b, c, what);
    } else if (b->expect && (!c->body || !strstr(c->body, b->expect))) {
        hb_error(b, c, "the body lacks the --expect text");
    } else {
        b->done++;
        b->t_last_done = now;
        hb_sample(&b->ttfb, c->t_first - c->t_send);
        hb_sample(&b->first_data, (c->t_data ? c->t_data : now) - c->t_send);
        hb_sample(&b->total, now - c->t_send);
    }
    if (c->status >= 0 && c->status < HB_STATUS_MAX)
        b->status[c->status]++;
}

/* The end of the connection: completes a response read to EOF, else
 * an error; reconnects later. */
static void
hb_lost(bench_t *b, conn_t *c, int64_t now)
{
    if (c->inflight && c->state == C_BODY && c->mode == B_EOF) {
        hb_complete(b, c, now);
    } else if (c->inflight) {
        hb_error(b, c, "connection lost before the response was complete");
    }
    hb_close(b, c);
    b->reconnects++;
}

/* Reads what c has. */
static void
hb_readable(bench_t *b, conn_t *c)
{
    static char buf[64 * 1024];
    for (;;) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        int64_t now = hb_now();
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0 || !c->inflight) {
            hb_lost(b, c, now);
            return;
        }
        int done = hb_feed(c, buf, (size_t)r, now);
        if (done < 0) {
            hb_error(b, c, "malformed response");
            hb_close(b, c);
            b->reconnects++;
            return;
        }
        if (done) {
            hb_complete(b, c, now);
            if (c->close_after) {
                hb_close(b, c);
                return;
            }
            c->state = C_HEAD; /* idle (not inflight) until hb_start */
            hb_start(b, c, now);
            return;
        }
        if ((size_t)r < sizeof buf)
            return; /* most likely drained: spare a recv for EAGAIN */
    }
}

/* ------------------------------------------------------------ the loop */

static void
hb_event(bench_t *b, conn_t *c, uint32_t ev, int64_t now)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err || (ev & (EPOLLERR | EPOLLHUP))) {
            hb_close(b, c);
            c->t_retry = now + 10000000LL;
            return;
        }
        hb_watch(b, c, EPOLLIN, EPOLL_CTL_MOD);
        c->state = C_HEAD; /* idle (not inflight) until hb_start */
        hb_start(b, c, now);
        return;
    }
    if (c->state == C_SENDING && (ev & EPOLLOUT)) {
        if (hb_write(b, c) != 0) {
            hb_lost(b, c, now);
            return;
        }
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        hb_readable(b, c);
}

/* Reconnects the connections that are down and times out stuck
 * requests. */
static void
hb_tick(bench_t *b, int64_t now)
{
    for (int i = 0; i < b->conns; i++) {
        conn_t *c = &b->c[i];
        if (c->state == C_DOWN && hb_may_start(b, now) && now >= c->t_retry) {
            if (hb_connect(b, c) != 0) {
                c->t_retry = now + 10000000LL;
                b->reconnects++;
            }
        } else if (c->inflight && now - c->t_send > b->timeout_ms * 1000000LL) {
            hb_error(b, c, "timeout");
            hb_close(b, c);
            b->reconnects++;
        }
    }
}

/* Runs until the measurement is over and nothing is in flight. */
static void
hb_run(bench_t *b)
{
    struct epoll_event evs[256];
    int64_t last_tick = 0;
    for (;;) {
        int64_t now = hb_now();
        if (now - last_tick >= 5000000LL) { /* 5 ms */
            hb_tick(b, now);
            last_tick = now;
        }
        if (!hb_may_start(b, now) && now >= b->t_measure) {
            int busy = 0;
            for (int i = 0; i < b->conns; i++)
                busy |= b->c[i].inflight;
            if (!busy)
                return;
        }
        int n = epoll_wait(b->ep, evs, 256, 5);
        if (n < 0 && errno != EINTR) {
            perror("bench_http: epoll_wait");
            exit(2);
        }
        now = hb_now();
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->fd >= 0)
                hb_event(b, c, evs[i].events, now);
        }
    }
}

/* ------------------------------------------------------------- report */

static void
hb_report(bench_t *b)
{
    double secs = b->t_last_done > b->t_measure
                      ? (double)(b->t_last_done - b->t_measure) / 1e9
                      : 0;
    samples_t *s[3] = {&b->ttfb, &b->first_data, &b->total};
    for (int i = 0; i < 3; i++)
        if (s[i]->n)
            qsort(s[i]->v, s[i]->n, sizeof(double), hb_cmp);
    double sum = 0;
    for (size_t i = 0; i < b->total.n; i++)
        sum += b->total.v[i];
    printf("{\"label\":\"%s\",\"connections\":%d,\"requests\":%ld,"
           "\"errors\":%ld,\"seconds\":%.3f,\"rps\":%.1f,",
           b->label, b->conns, b->done, b->errors, secs,
           secs > 0 ? (double)b->done / secs : 0);
    printf("\"ttfb_p50_us\":%.1f,\"ttfb_p99_us\":%.1f,"
           "\"first_data_p50_us\":%.1f,\"first_data_p99_us\":%.1f,"
           "\"total_p50_us\":%.1f,\"total_p99_us\":%.1f,"
           "\"total_mean_us\":%.1f,\"total_max_us\":%.1f,\"status\":{",
           hb_pct(&b->ttfb, 50), hb_pct(&b->ttfb, 99),
           hb_pct(&b->first_data, 50), hb_pct(&b->first_data, 99),
           hb_pct(&b->total, 50), hb_pct(&b->total, 99),
           b->total.n ? sum / (double)b->total.n : 0,
           b->total.n ? b->total.v[b->total.n - 1] : 0);
    const char *sep = "";
    for (int i = 0; i < HB_STATUS_MAX; i++) {
        if (b->status[i]) {
            printf("%s\"%d\":%ld", sep, i, b->status[i]);
            sep = ",";
        }
    }
    printf("},\"reconnects\":%ld}\n", b->reconnects);
    fflush(stdout);
}

/* -------------------------------------------------------------- setup */

static void
hb_usage(FILE *f)
{
    fprintf(f, "usage: bench_http --url http://HOST:PORT/PATH --body FILE\n"
               "                  [-H 'Name: value']... [-c CONNECTIONS]\n"
               "                  [-d SECONDS | -n REQUESTS] [-w WARMUP_S]\n"
               "                  [--expect TEXT] [--timeout-ms MS] "
               "[--label TEXT]\n"
               "POSTs FILE on C keep-alive connections; prints one JSON line:\n"
               "requests, errors, rps, time to first byte, to the first body\n"
               "byte and to the complete response (p50, p99, microseconds).\n");
}

/* Splits http://HOST:PORT/PATH. Returns 0, or -1 naming what is wrong. */
static int
hb_url(bench_t *b, const char *url)
{
    if (strncmp(url, "http://", 7) != 0) {
        fprintf(stderr, "bench_http: --url: only http://HOST:PORT/PATH\n");
        return -1;
    }
    const char *h = url + 7, *slash = strchr(h, '/');
    const char *colon = memchr(h, ':', slash ? (size_t)(slash - h) : strlen(h));
    const char *hend = colon ? colon : slash ? slash : h + strlen(h);
    if (hend == h || (size_t)(hend - h) >= sizeof b->host) {
        fprintf(stderr, "bench_http: --url: no host in %s\n", url);
        return -1;
    }
    snprintf(b->host, sizeof b->host, "%.*s", (int)(hend - h), h);
    if (colon) {
        size_t n = slash ? (size_t)(slash - colon - 1) : strlen(colon + 1);
        if (n == 0 || n >= sizeof b->port) {
            fprintf(stderr, "bench_http: --url: bad port in %s\n", url);
            return -1;
        }
        snprintf(b->port, sizeof b->port, "%.*s", (int)n, colon + 1);
    } else {
        snprintf(b->port, sizeof b->port, "80");
    }
    snprintf(b->path, sizeof b->path, "%s", slash ? slash : "/");
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(b->host, b->port, &hints, &ai);
    if (rc != 0) {
        fprintf(stderr, "bench_http: --url: %s: %s\n", b->host,
                gai_strerror(rc));
        return -1;
    }
    memcpy(&b->addr, ai->ai_addr, ai->ai_addrlen);
    b->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* The request, built once: request line, Host, the -H headers, a
 * Content-Type unless given, Content-Length, the body. */
static void
hb_build(bench_t *b, char **headers, int nh, const char *body, size_t blen)
{
    size_t cap = strlen(b->path) + strlen(b->host) + blen + 256;
    int has_ct = 0;
    for (int i = 0; i < nh; i++) {
        cap += strlen(headers[i]) + 2;
        has_ct |= strncasecmp(headers[i], "Content-Type:", 13) == 0;
    }
    b->request = bursar_malloc(cap);
    int n = snprintf(b->request, cap, "POST %s HTTP/1.1\r\nHost: %s:%s\r\n",
                     b->path, b->host, b->port);
    for (int i = 0; i < nh; i++)
        n += snprintf(b->request + n, cap - (size_t)n, "%s\r\n", headers[i]);
    if (!has_ct)
        n += snprintf(b->request + n, cap - (size_t)n,
                      "Content-Type: application/json\r\n");
    n += snprintf(b->request + n, cap - (size_t)n,
                  "Content-Length: %zu\r\n\r\n", blen);
    memcpy(b->request + n, body, blen);
    b->request_len = (size_t)n + blen;
}

/* Whether the server accepts a connection at all (a clear error before
 * the run rather than a run of reconnects). */
static int
hb_reachable(bench_t *b)
{
    int fd = socket(b->addr.ss_family, SOCK_STREAM, 0);
    int ok =
        fd >= 0 && connect(fd, (struct sockaddr *)&b->addr, b->addrlen) == 0;
    if (!ok)
        fprintf(stderr, "bench_http: cannot connect to %s:%s: %s\n", b->host,
                b->port, strerror(errno));
    if (fd >= 0)
        close(fd);
    return ok;
}

static double
hb_num(const char *opt, const char *v, double lo, double hi)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "bench_http: %s: %s is not a number in [%g, %g]\n", opt,
                v, lo, hi);
        exit(2);
    }
    return x;
}

/* Reads the options into b; the -H headers into headers. */
static void
hb_options(bench_t *b, int argc, char **argv, char **headers, int *nh,
           const char **url, const char **body)
{
    static const struct option longs[] = {
        {"url", required_argument, 0, 'u'},
        {"body", required_argument, 0, 'b'},
        {"header", required_argument, 0, 'H'},
        {"connections", required_argument, 0, 'c'},
        {"duration", required_argument, 0, 'd'},
        {"requests", required_argument, 0, 'n'},
        {"warmup", required_argument, 0, 'w'},
        {"expect", required_argument, 0, 'e'},
        {"timeout-ms", required_argument, 0, 't'},
        {"label", required_argument, 0, 'l'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "u:b:H:c:d:n:w:e:t:l:h", longs,
                            NULL)) != -1) {
        switch (o) {
        case 'u':
            *url = optarg;
            break;
        case 'b':
            *body = optarg;
            break;
        case 'H':
            if (*nh >= HB_MAX_HEADERS || !strchr(optarg, ':')) {
                fprintf(stderr,
                        "bench_http: -H: '%s': want 'Name: value' "
                        "(at most %d)\n",
                        optarg, HB_MAX_HEADERS);
                exit(2);
            }
            headers[(*nh)++] = optarg;
            break;
        case 'c':
            b->conns = (int)hb_num("-c", optarg, 1, HB_MAX_CONNS);
            break;
        case 'd':
            b->duration_s = hb_num("-d", optarg, 0.001, 86400);
            break;
        case 'n':
            b->max_requests = (long)hb_num("-n", optarg, 1, 1e12);
            break;
        case 'w':
            b->warmup_s = hb_num("-w", optarg, 0, 86400);
            break;
        case 'e':
            b->expect = optarg;
            break;
        case 't':
            b->timeout_ms = (long)hb_num("--timeout-ms", optarg, 1, 1e9);
            break;
        case 'l':
            b->label = optarg;
            break;
        case 'h':
            hb_usage(stdout);
            exit(0);
        default:
            hb_usage(stderr);
            exit(2);
        }
    }
    if (optind < argc || !*url || !*body) {
        fprintf(stderr, "bench_http: %s\n",
                optind < argc ? "unexpected argument"
                              : "--url and --body are required");
        hb_usage(stderr);
        exit(2);
    }
    if (strpbrk(b->label, "\"\\")) {
        fprintf(stderr, "bench_http: --label: no quotes or backslashes\n");
        exit(2);
    }
}

static void
hb_free(bench_t *b)
{
    for (int i = 0; i < b->conns; i++) {
        hb_close(b, &b->c[i]);
        free(b->c[i].head);
        free(b->c[i].body);
    }
    free(b->c);
    free(b->request);
    free(b->ttfb.v);
    free(b->first_data.v);
    free(b->total.v);
    close(b->ep);
}

int
main(int argc, char **argv)
{
    if (bench_cli(argc, argv, NULL) == 0)
        return 0;
    static bench_t b;
    b.conns = 1;
    b.duration_s = 5;
    b.warmup_s = 1;
    b.timeout_ms = 10000;
    b.label = "";
    char *headers[HB_MAX_HEADERS];
    int nh = 0;
    const char *url = NULL, *body_path = NULL;
    hb_options(&b, argc, argv, headers, &nh, &url, &body_path);
    if (hb_url(&b, url) != 0)
        return 2;
    char *body;
    size_t blen;
    int rc = bursar_read_file(body_path, &body, &blen);
    if (rc != 0) {
        fprintf(stderr, "bench_http: --body: %s: %s\n", body_path,
                strerror(errno));
        return 2;
    }
    hb_build(&b, headers, nh, body, blen);
    free(body);
    if (!hb_reachable(&b))
        return 2;
    b.ep = epoll_create1(0);
    b.c = bursar_calloc((size_t)b.conns, sizeof(conn_t));
    for (int i = 0; i < b.conns; i++) {
        b.c[i].fd = -1;
        b.c[i].head = bursar_malloc(HB_HEAD_MAX);
    }
    b.t_measure = hb_now() + (int64_t)(b.warmup_s * 1e9);
    b.t_end = b.t_measure + (int64_t)(b.duration_s * 1e9);
    hb_run(&b);
    hb_report(&b);
    rc = b.errors > 0 || b.done == 0 ? 1 : 0;
    hb_free(&b);
    return rc;
}
