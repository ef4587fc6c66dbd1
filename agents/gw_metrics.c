/*
 * gw_metrics.c - bursar-gateway's Prometheus metrics (gateway.h,
 * docs/gateway.md "Metrics"), served on the operator's address with
 * webd (agents/webd.h) and written with expo (agents/expo.h).
 *
 * Recording happens on the requests' threads: one mutex guards the
 * tables, which are of fixed size (models up to GW_MET_MODELS, known by
 * name; status codes 100 to 599 by route), so that recording allocates
 * nothing. The counters the gateway kept before (gw_stats_t) stay under
 * the gateway's lock. A scrape copies the tables under the mutex and
 * writes the text outside it.
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agents/expo.h"

#ifndef BURSAR_VERSION
#define BURSAR_VERSION "unknown"
#endif

#define GW_MET_CODE_MIN 100
#define GW_MET_CODES    500 /* 100 to 599 */

/* The provider layer's error kinds (prov_result_t.error_kind), and the
 * gateway's own "other" for anything else. */
static const char *const gw_met_kinds[] = {
    "rate_limited", "server_error", "timeout",     "transport", "http_error",
    "malformed",    "no_key",       "refused_url", "other"};
#define GW_MET_KINDS (sizeof gw_met_kinds / sizeof gw_met_kinds[0])

static const char *const gw_met_routes[GW_R_COUNT] = {
    "/v1/chat/completions", "/v1/models", "/v1/feedback", "/healthz",
    "/v1/models/{id}",      "other"};

/* The tables; slot GW_MET_MODELS is model="other". */
typedef struct gw_met_tab {
    uint64_t req[GW_R_COUNT][GW_MET_CODES];
    long inflight;
    expo_hist_t added;
    size_t n_models;
    char model[GW_MET_MODELS + 1][BURSAR_NAME_MAX];
    expo_hist_t upstream[GW_MET_MODELS + 1];
    uint64_t up_err[GW_MET_MODELS + 1][GW_MET_KINDS];
} gw_met_tab_t;

struct gw_metrics {
    pthread_mutex_t lock;
    gw_met_tab_t t;
};

double
gw_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
gw_metrics_new(gw_t *g)
{
    if (g->met)
        return;
    struct gw_metrics *m = bursar_calloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    expo_hist_init(&m->t.added, expo_latency_bounds, EXPO_LATENCY_N);
    for (size_t i = 0; i <= GW_MET_MODELS; i++)
        expo_hist_init(&m->t.upstream[i], expo_latency_bounds, EXPO_LATENCY_N);
    bursar_copy_str(m->t.model[GW_MET_MODELS], BURSAR_NAME_MAX, "other");
    g->met = m;
}

void
gw_metrics_destroy(gw_t *g)
{
    if (!g->met)
        return;
    pthread_mutex_destroy(&g->met->lock);
    free(g->met);
    g->met = NULL;
}

/* The slot of model, added when new (GW_MET_MODELS when the table is
 * full). Under the lock. */
static size_t
gw_met_slot(gw_met_tab_t *t, const char *model)
{
    for (size_t i = 0; i < t->n_models; i++)
        if (strcmp(t->model[i], model) == 0)
            return i;
    if (t->n_models == GW_MET_MODELS)
        return GW_MET_MODELS;
    bursar_copy_str(t->model[t->n_models], BURSAR_NAME_MAX, model);
    return t->n_models++;
}

void
gw_metrics_model(gw_t *g, const char *model)
{
    if (!g->met)
        return;
    pthread_mutex_lock(&g->met->lock);
    gw_met_slot(&g->met->t, model);
    pthread_mutex_unlock(&g->met->lock);
}

void
gw_metrics_request(gw_t *g, enum gw_route route, unsigned status)
{
    if (!g->met || route >= GW_R_COUNT)
        return;
    if (status < GW_MET_CODE_MIN || status >= GW_MET_CODE_MIN + GW_MET_CODES)
        status = 500; /* not a status: never queued by the gateway */
    pthread_mutex_lock(&g->met->lock);
    g->met->t.req[route][status - GW_MET_CODE_MIN]++;
    pthread_mutex_unlock(&g->met->lock);
}

void
gw_metrics_inflight(gw_t *g, int delta)
{
    if (!g->met)
        return;
    pthread_mutex_lock(&g->met->lock);
    g->met->t.inflight += delta;
    pthread_mutex_unlock(&g->met->lock);
}

void
gw_metrics_added(gw_t *g, double seconds)
{
    if (!g->met)
        return;
    pthread_mutex_lock(&g->met->lock);
    expo_hist_observe(&g->met->t.added, seconds > 0 ? seconds : 0);
    pthread_mutex_unlock(&g->met->lock);
}

void
gw_metrics_upstream(gw_t *g, const char *model, double seconds)
{
    if (!g->met)
        return;
    pthread_mutex_lock(&g->met->lock);
    size_t i = gw_met_slot(&g->met->t, model);
    expo_hist_observe(&g->met->t.upstream[i], seconds > 0 ? seconds : 0);
    pthread_mutex_unlock(&g->met->lock);
}

void
gw_metrics_upstream_error(gw_t *g, const char *model, const char *kind)
{
    if (!g->met)
        return;
    size_t k = 0;
    while (k < GW_MET_KINDS - 1 && strcmp(gw_met_kinds[k], kind) != 0)
        k++;
    pthread_mutex_lock(&g->met->lock);
    size_t i = gw_met_slot(&g->met->t, model);
    g->met->t.up_err[i][k]++;
    pthread_mutex_unlock(&g->met->lock);
}

/* ------------------------------------------------------------ the text */

static void
gw_met_requests(bursar_buf_t *b, const gw_met_tab_t *t)
{
    expo_family(b, "bursar_gateway_requests_total", "counter",
                "HTTP requests answered, by route and status code (499: the "
                "client left before an answer).");
    for (size_t r = 0; r < GW_R_COUNT; r++)
        for (size_t c = 0; c < GW_MET_CODES; c++) {
            if (!t->req[r][c])
                continue;
            char code[8];
            snprintf(code, sizeof code, "%zu", c + GW_MET_CODE_MIN);
            expo_sample(b, "bursar_gateway_requests_total",
                        (double)t->req[r][c], 2, "route", gw_met_routes[r],
                        "code", code);
        }
    expo_family(b, "bursar_gateway_requests_in_flight", "gauge",
                "HTTP requests being served.");
    expo_sample(b, "bursar_gateway_requests_in_flight", (double)t->inflight, 0);
    expo_family(b, "bursar_gateway_added_latency_seconds", "histogram",
                "The gateway's own time in a chat completion: from the whole "
                "request read to its answer queued (a stream: its first "
                "chunk), minus the time spent waiting for upstream calls.");
    expo_hist_write(b, "bursar_gateway_added_latency_seconds", &t->added, 0);
}

static void
gw_met_upstream(bursar_buf_t *b, const gw_met_tab_t *t)
{
    size_t n = t->n_models;
    expo_family(b, "bursar_gateway_upstream_latency_seconds", "histogram",
                "Upstream calls that finished (answers and failures, retries "
                "included; a stream until its end), by model.");
    for (size_t i = 0; i <= GW_MET_MODELS; i++)
        if (i < n || (i == GW_MET_MODELS && t->upstream[i].total))
            expo_hist_write(b, "bursar_gateway_upstream_latency_seconds",
                            &t->upstream[i], 1, "model", t->model[i]);
    expo_family(b, "bursar_gateway_upstream_errors_total", "counter",
                "Upstream calls that failed, by model and kind (the provider "
                "layer's: rate_limited, server_error, timeout, transport, "
                "http_error, malformed, no_key, refused_url).");
    for (size_t i = 0; i <= GW_MET_MODELS; i++)
        for (size_t k = 0; k < GW_MET_KINDS; k++)
            if (t->up_err[i][k])
                expo_sample(b, "bursar_gateway_upstream_errors_total",
                            (double)t->up_err[i][k], 2, "model", t->model[i],
                            "kind", gw_met_kinds[k]);
}

/* The gateway's counters (gw_stats_t), the reporters' queue and the
 * controller. */
static void
gw_met_counters(gw_t *g, bursar_buf_t *b)
{
    pthread_mutex_lock(&g->lock);
    gw_stats_t st = g->st;
    int up = !g->ctl_down;
    pthread_mutex_unlock(&g->lock);
    static const struct {
        const char *name, *help;
        size_t off;
    } c[] = {
        {"bursar_gateway_fallbacks_total",
         "Calls of another model after an upstream call failed.",
         offsetof(gw_stats_t, fallbacks)},
        {"bursar_gateway_escalations_total",
         "Escalations to a stronger model after an answer failed "
         "validation.",
         offsetof(gw_stats_t, escalations)},
        {"bursar_gateway_cancelled_total",
         "Chat completions whose client left before the answer ended (the "
         "upstream call cancelled).",
         offsetof(gw_stats_t, cancelled)},
        {"bursar_gateway_feedback_lost_total",
         "Reports (outcomes, provider errors) neither taken by the "
         "controller nor spooled.",
         offsetof(gw_stats_t, feedback_lost)},
        {"bursar_gateway_feedback_refused_total",
         "Reports the controller refused.",
         offsetof(gw_stats_t, feedback_refused)},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        unsigned long v;
        memcpy(&v, (const char *)&st + c[i].off, sizeof v);
        expo_family(b, c[i].name, "counter", c[i].help);
        expo_sample(b, c[i].name, (double)v, 0);
    }
    expo_family(b, "bursar_gateway_report_queue", "gauge",
                "Reports waiting to be sent to the controller.");
    expo_sample(b, "bursar_gateway_report_queue",
                (double)gw_reporters_queued(g), 0);
    expo_family(b, "bursar_gateway_controller_up", "gauge",
                "1 when the controller answered the last time it was asked "
                "for a decision (or at start), else 0.");
    expo_sample(b, "bursar_gateway_controller_up", up, 0);
    expo_family(b, "bursar_gateway_build_info", "gauge",
                "The gateway's version, as a label; always 1.");
    expo_sample(b, "bursar_gateway_build_info", 1, 1, "version",
                BURSAR_VERSION);
}

void
gw_metrics_write(gw_t *g, bursar_buf_t *b)
{
    if (!g->met)
        return;
    gw_met_tab_t *t = bursar_malloc(sizeof *t);
    pthread_mutex_lock(&g->met->lock);
    memcpy(t, &g->met->t, sizeof *t);
    pthread_mutex_unlock(&g->met->lock);
    gw_met_requests(b, t);
    gw_met_upstream(b, t);
    free(t);
    gw_met_counters(g, b);
}

/* ------------------------------------------------------------ serving */

static void
gw_met_serve(void *ctx, const char *path, webd_req_t *rq, webd_reply_t *r)
{
    (void)rq;
    gw_t *g = ctx;
    bursar_buf_t b = {0};
    if (strcmp(path, "/metrics") == 0) {
        gw_metrics_write(g, &b);
        r->status = 200;
        r->type = "text/plain; version=0.0.4; charset=utf-8";
    } else if (strcmp(path, "/healthz") == 0) {
        bursar_buf_add(&b, "ok\n", 3);
        r->status = 200;
    } else {
        static const char nf[] = "not found: try /metrics\n";
        bursar_buf_add(&b, nf, sizeof nf - 1);
        r->status = 404;
    }
    r->body = b.p;
    r->len = b.len;
}

int
gw_metrics_start(gw_t *g, const char *listen, char *err, size_t cap)
{
    if (!listen)
        listen = g->cfg.metrics_listen;
    if (!listen)
        return 0;
    const char *token = NULL, *env = g->cfg.metrics_token_env;
    if (env) {
        token = getenv(env);
        if (!token || !*token) {
            snprintf(err, cap,
                     "metrics.token_env: the variable %s is not set (or "
                     "empty)",
                     env);
            return -1;
        }
    }
    webd_opts_t o = {.listen = listen,
                     .allow = g->cfg.metrics_allow,
                     .n_allow = g->cfg.n_metrics_allow,
                     .token = token,
                     .name = "bursar-gateway",
                     .quiet = g->quiet};
    char why[256];
    if (webd_start(&g->web, &o, gw_met_serve, g, why, sizeof why) != 0) {
        snprintf(err, cap, "metrics.listen: %s", why);
        return -1;
    }
    return 0;
}

void
gw_metrics_stop(gw_t *g)
{
    webd_stop(&g->web);
}
