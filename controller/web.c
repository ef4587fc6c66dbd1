/*
 * web.c - bursard's HTTP side (web.h): the bridge between the HTTP thread
 * and the daemon's loop.
 *
 * Each request is one message [seq, deadline, what] from an HTTP thread
 * ("metrics", "status" or "status since=N") and one reply [seq, status,
 * type, body] from the loop; the loop skips a request whose deadline has
 * passed (its client was answered 503), and the HTTP thread drops replies
 * of older sequence numbers, so a slow loop never gets a late answer taken
 * for a newer request's.
 *
 * The HTTP server runs a thread per connection (webd_opts_t.threaded):
 * the page (/) and /healthz are answered on their connection's thread
 * without the loop, so they never wait for it; the requests that need the
 * loop take turns on the pair (a mutex). Each has WEB_WAIT_MS in all, its
 * turn included; beyond WEB_QUEUE_MAX waiting, a request is answered 503
 * at once; at stop, the waiting ones are answered 503 within WEB_SLICE_MS.
 */
#define _POSIX_C_SOURCE 200809L
#include "controller/web.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "agents/webd.h"
#include "controller/ctl_int.h"
#include "controller/util.h"

#define WEB_WAIT_MS   5000
#define WEB_QUEUE_MAX 8
#define WEB_SLICE_MS  100

struct web {
    webd_t *httpd;
    void *loop_end; /* polled by the loop */
    void *http_end; /* used by the HTTP threads, under mu */
    uint64_t seq;   /* under mu */
    pthread_mutex_t mu;
    int has_mu;
    atomic_int waiting;  /* requests for the loop, in line or asking */
    atomic_int stopping; /* web_close began */
};

/* Served without the token (metrics.token_env): the page holds no data
 * (it asks for the token), /healthz says only that bursard is up. */
static const char *const web_open_paths[] = {"/", "/status", "/healthz"};

static const char web_json[] = "application/json";
static const char web_prom[] = "text/plain; version=0.0.4; charset=utf-8";

/* ------------------------------------------------------------ the loop */

/* What the loop answers for one kind of request. */
static void
web_render(ctl_t *ctl, const char *what, size_t wl, webd_reply_t *r)
{
    bursar_buf_t b = {0};
    if (wl == 7 && memcmp(what, "metrics", 7) == 0) {
        ctl_metrics_write(ctl, &b);
        r->type = web_prom;
    } else if (wl >= 6 && memcmp(what, "status", 6) == 0) {
        long long since = -1;
        if (wl > 13 && memcmp(what + 6, " since=", 7) == 0) {
            char n[24];
            size_t nl = wl - 13 < sizeof n - 1 ? wl - 13 : sizeof n - 1;
            memcpy(n, what + 13, nl);
            n[nl] = '\0';
            since = strtoll(n, NULL, 10);
        }
        char *s = ctl_status_json(ctl, since);
        bursar_buf_add(&b, s, strlen(s));
        free(s);
        r->type = web_json;
    } else {
        r->status = 404;
        r->type = "text/plain; charset=utf-8";
        bursar_buf_add(&b, "not found\n", 10);
        r->body = b.p;
        r->len = b.len;
        return;
    }
    r->status = 200;
    r->body = b.p;
    r->len = b.len;
}

void
web_serve(web_t *w, ctl_t *ctl)
{
    for (;;) {
        zmq_msg_t seq, dl, what;
        zmq_msg_init(&seq);
        zmq_msg_init(&dl);
        zmq_msg_init(&what);
        double deadline = 0;
        if (zmq_msg_recv(&seq, w->loop_end, ZMQ_DONTWAIT) < 0 ||
            !zmq_msg_more(&seq) ||
            zmq_msg_recv(&dl, w->loop_end, ZMQ_DONTWAIT) < 0 ||
            zmq_msg_size(&dl) != sizeof deadline || !zmq_msg_more(&dl) ||
            zmq_msg_recv(&what, w->loop_end, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&seq);
            zmq_msg_close(&dl);
            zmq_msg_close(&what);
            return;
        }
        memcpy(&deadline, zmq_msg_data(&dl), sizeof deadline);
        zmq_msg_close(&dl);
        if (util_mono_time() > deadline) { /* answered 503 already */
            zmq_msg_close(&seq);
            zmq_msg_close(&what);
            continue;
        }
        webd_reply_t r = {0, NULL, NULL, 0};
        web_render(ctl, zmq_msg_data(&what), zmq_msg_size(&what), &r);
        unsigned st = r.status;
        zmq_send(w->loop_end, zmq_msg_data(&seq), zmq_msg_size(&seq),
                 ZMQ_SNDMORE);
        zmq_send(w->loop_end, &st, sizeof st, ZMQ_SNDMORE);
        zmq_send(w->loop_end, r.type, strlen(r.type), ZMQ_SNDMORE);
        zmq_send(w->loop_end, r.body ? r.body : "", r.len, 0);
        free(r.body);
        zmq_msg_close(&seq);
        zmq_msg_close(&what);
    }
}

/* ------------------------------------------------------ the HTTP thread */

/* The next slice of a wait (seconds, at most WEB_SLICE_MS), or 0 when
 * the deadline has passed or web_close began: waits go in slices so that
 * a stop is seen. */
static double
web_slice(web_t *w, double deadline)
{
    if (atomic_load(&w->stopping))
        return 0;
    double left = deadline - util_mono_time();
    if (left <= 0)
        return 0;
    return left < WEB_SLICE_MS / 1e3 ? left : WEB_SLICE_MS / 1e3;
}

/* Waits until a reply is readable, the deadline passes or web_close
 * begins. Returns 1 when readable. */
static int
web_wait_reply(web_t *w, double deadline)
{
    double slice;
    while ((slice = web_slice(w, deadline)) > 0) {
        zmq_pollitem_t it = {w->http_end, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, (long)(slice * 1e3) + 1) > 0)
            return 1;
    }
    return 0;
}

/* Reads one reply's frames; returns 0 with r filled when it answers seq,
 * 1 for an older reply (skipped), -1 on timeout (or stop). */
static int
web_read_reply(web_t *w, uint64_t seq, double deadline, webd_reply_t *r,
               char *type, size_t tcap)
{
    if (!web_wait_reply(w, deadline))
        return -1;
    zmq_msg_t f[4];
    int n = 0, more = 1;
    for (; more && n < 4; n++) {
        zmq_msg_init(&f[n]);
        if (zmq_msg_recv(&f[n], w->http_end, 0) < 0) {
            zmq_msg_close(&f[n]);
            for (int i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            return -1;
        }
        more = zmq_msg_more(&f[n]);
    }
    int rc = 1;
    uint64_t got = 0;
    if (n == 4 && zmq_msg_size(&f[0]) == sizeof got &&
        zmq_msg_size(&f[1]) == sizeof r->status) {
        memcpy(&got, zmq_msg_data(&f[0]), sizeof got);
        if (got == seq) {
            memcpy(&r->status, zmq_msg_data(&f[1]), sizeof r->status);
            size_t tl = zmq_msg_size(&f[2]);
            tl = tl < tcap - 1 ? tl : tcap - 1;
            memcpy(type, zmq_msg_data(&f[2]), tl);
            type[tl] = '\0';
            r->type = type;
            r->len = zmq_msg_size(&f[3]);
            r->body = bursar_malloc(r->len + 1);
            memcpy(r->body, zmq_msg_data(&f[3]), r->len);
            rc = 0;
        }
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    return rc;
}

static void
web_text(webd_reply_t *r, unsigned status, const char *msg)
{
    r->status = status;
    r->body = bursar_strdup(msg);
    r->len = strlen(r->body);
}

/* Takes the pair's mutex before the deadline or web_close. Returns 1
 * when taken. */
static int
web_lock(web_t *w, double deadline)
{
    double slice;
    while ((slice = web_slice(w, deadline)) > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + (long)(slice * 1e9);
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        if (pthread_mutex_timedlock(&w->mu, &ts) == 0)
            return 1;
    }
    return 0;
}

/* Asks the loop for what; fills r (503 when the loop does not answer in
 * WEB_WAIT_MS, turn included, when too many wait, or at stop). */
static void
web_ask(web_t *w, const char *what, webd_reply_t *r)
{
    static __thread char type[128];
    double deadline = util_mono_time() + WEB_WAIT_MS / 1e3;
    int rc = -1;
    if (atomic_fetch_add(&w->waiting, 1) < WEB_QUEUE_MAX &&
        web_lock(w, deadline)) {
        uint64_t seq = ++w->seq;
        zmq_send(w->http_end, &seq, sizeof seq, ZMQ_SNDMORE);
        zmq_send(w->http_end, &deadline, sizeof deadline, ZMQ_SNDMORE);
        zmq_send(w->http_end, what, strlen(what), 0);
        while ((rc = web_read_reply(w, seq, deadline, r, type, sizeof type)) ==
               1)
            ;
        pthread_mutex_unlock(&w->mu);
    }
    atomic_fetch_sub(&w->waiting, 1);
    if (rc < 0) {
        r->type = "text/plain; charset=utf-8";
        web_text(r, 503,
                 atomic_load(&w->stopping)
                     ? "bursard is stopping\n"
                     : "bursard is busy: no answer in time; retry\n");
    }
}

/* /status.json[?since=N]: N a sample number (digits). */
static void
web_status(web_t *w, webd_req_t *rq, webd_reply_t *r)
{
    const char *since = webd_arg(rq, "since");
    if (!since) {
        web_ask(w, "status", r);
        return;
    }
    size_t n = strspn(since, "0123456789");
    if (n == 0 || n > 18 || since[n]) {
        web_text(r, 400, "since: not a sample number (digits)\n");
        return;
    }
    char what[40];
    snprintf(what, sizeof what, "status since=%s", since);
    web_ask(w, what, r);
}

static void
web_http(void *ctx, const char *path, webd_req_t *rq, webd_reply_t *r)
{
    web_t *w = ctx;
    if (strcmp(path, "/") == 0 || strcmp(path, "/status") == 0) {
        r->status = 200;
        r->type = "text/html; charset=utf-8";
        r->body = bursar_malloc(web_status_html_len + 1);
        memcpy(r->body, web_status_html, web_status_html_len);
        r->len = web_status_html_len;
    } else if (strcmp(path, "/metrics") == 0) {
        web_ask(w, "metrics", r);
    } else if (strcmp(path, "/status.json") == 0) {
        web_status(w, rq, r);
    } else if (strcmp(path, "/healthz") == 0) {
        web_text(r, 200, "ok\n");
    } else {
        web_text(r, 404, "not found: try /metrics, / or /status.json\n");
    }
}

/* ------------------------------------------------------------ lifecycle */

static int
web_pair(web_t *w, void *zctx, char *err, size_t cap)
{
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://bursard-web-%p", (void *)w);
    w->loop_end = zmq_socket(zctx, ZMQ_PAIR);
    w->http_end = zmq_socket(zctx, ZMQ_PAIR);
    int wait = WEB_WAIT_MS, linger = 0;
    zmq_setsockopt(w->http_end, ZMQ_SNDTIMEO, &wait, sizeof wait);
    zmq_setsockopt(w->http_end, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(w->loop_end, ZMQ_LINGER, &linger, sizeof linger);
    if (!w->loop_end || !w->http_end || zmq_bind(w->loop_end, ep) != 0 ||
        zmq_connect(w->http_end, ep) != 0) {
        snprintf(err, cap, "metrics: cannot make the inproc pair: %s",
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

int
web_open(web_t **out, void *zctx, const cfg_t *cfg, const char *listen,
         int quiet, char *err, size_t cap)
{
    *out = NULL;
    if (!listen)
        listen = cfg->metrics_listen;
    if (!listen)
        return 0;
    const char *token = NULL;
    if (cfg->metrics_token_env) {
        token = getenv(cfg->metrics_token_env);
        if (!token || !*token) {
            snprintf(err, cap,
                     "metrics.token_env: the variable %s is not set (or "
                     "empty)",
                     cfg->metrics_token_env);
            return -1;
        }
    }
    web_t *w = bursar_calloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    w->has_mu = 1;
    if (web_pair(w, zctx, err, cap) != 0) {
        web_close(&w);
        return -1;
    }
    webd_opts_t o = {.listen = listen,
                     .allow = (const char *const *)cfg->metrics_allow,
                     .n_allow = cfg->n_metrics_allow,
                     .token = token,
                     .name = "bursard",
                     .quiet = quiet,
                     .open_paths = web_open_paths,
                     .n_open_paths =
                         sizeof web_open_paths / sizeof web_open_paths[0],
                     .threaded = 1};
    char why[256];
    if (webd_start(&w->httpd, &o, web_http, w, why, sizeof why) != 0) {
        snprintf(err, cap, "metrics.listen: %s", why);
        web_close(&w);
        return -1;
    }
    *out = w;
    return 0;
}

void *
web_socket(const web_t *w)
{
    return w ? w->loop_end : NULL;
}

unsigned
web_port(const web_t *w)
{
    return w ? webd_port(w->httpd) : 0;
}

void
web_close(web_t **wp)
{
    web_t *w = wp ? *wp : NULL;
    if (!w)
        return;
    atomic_store(&w->stopping, 1); /* waiting requests answer 503 */
    for (int i = 0; i < 50 && atomic_load(&w->waiting) > 0; i++)
        nanosleep(&(struct timespec){0, 10000000L}, NULL); /* 10 ms */
    nanosleep(&(struct timespec){0, 20000000L}, NULL); /* their answers go */
    webd_stop(&w->httpd); /* the HTTP threads end before their socket */
    if (w->http_end)
        zmq_close(w->http_end);
    if (w->loop_end)
        zmq_close(w->loop_end);
    if (w->has_mu)
        pthread_mutex_destroy(&w->mu);
    free(w);
    *wp = NULL;
}
