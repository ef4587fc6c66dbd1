/*
 * gw_chat.c - bursar-gateway's POST /v1/chat/completions (gateway.h,
 * docs/gateway.md): the model field to a bucket, the controller's
 * decision, the upstream call and its fallbacks, validation and
 * escalation, the answer or the stream, then the outcome reported.
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents/autil.h"
#include "agents/chat.h"

#define GW_RUN_MS 100 /* longest wait between checks of a stopping client */

struct gw_chat {
    gw_t *g;
    gw_kit_t *kit;
    struct MHD_Connection *conn;
    cJSON *req;
    char tenant[GW_TENANT_MAX];
    char bucket[BURSAR_NAME_MAX];
    int direct; /* a configured model was named: no routing */
    int stream, want_usage;
    int client_outcome; /* x-bursar-outcome: client */
    validator_t *v_rf;  /* the response_format's, or NULL */
    const validator_t *v_bucket;
    bursar_decision_t d;
    int have_d;
    char tried[GW_MAX_TRIED][BURSAR_NAME_MAX];
    const char *tried_p[GW_MAX_TRIED];
    size_t n_tried;
    int escalations;
    /* the call in flight */
    bursar_model_t m;
    prov_result_t res;
    int res_done;
    chat_stream_t *cs;
    int stream_bad; /* the upstream's stream could not be read */
    char stream_err[160];
    /* the streamed reply: SSE bytes not yet given to libmicrohttpd */
    bursar_buf_t sse;
    size_t sse_off;
    int stream_end; /* 1: the upstream is done; 2: [DONE] written */
    /* the answer (not streamed) */
    chat_answer_t ans;
    /* the outcome, reported once the reply has left */
    int pending, valid;
    double cost, latency_ms;
    double spent; /* the cost of every answer of the request */
    long tin, tout;
    char served[BURSAR_NAME_MAX];
    /* failures, for the error when every model failed */
    int n_fail, n_timeout, n_refused; /* refused: an upstream 4xx */
    int n_limited, n_config; /* an upstream 429; the gateway's own setup */
    char last_error[BURSAR_NAME_MAX + 320];
    double up_s; /* waited for upstream calls (gw_chat_upstream_s) */
};

enum { GW_CALL_OK, GW_CALL_FAIL, GW_CALL_GONE };

/* gw_decide: a local decision for a bucket the controller did not list */
#define GW_UNKNOWN_BUCKET 1000

/* ------------------------------------------------------------ the reply */

/* Appends "a" "b" and the blank line that ends an event. */
static void
gw_sse_add(gw_chat_t *c, const char *a, size_t an, const char *b, size_t bn)
{
    bursar_buf_add(&c->sse, a, an);
    bursar_buf_add(&c->sse, b, bn);
    bursar_buf_add(&c->sse, "\n\n", 2);
}

static int
gw_emit(void *ud, const char *json, size_t len)
{
    gw_sse_add(ud, "data: ", 6, json, len);
    return 0;
}

/* The decision's id for the client: the controller's token, or
 * "local-" and the local id of a decision made while it was away. */
static void
gw_decision_id(const gw_chat_t *c, char *out, size_t cap)
{
    if (c->d.local)
        snprintf(out, cap, "local-%s", c->d.local_id);
    else
        snprintf(out, cap, "%s", c->d.id);
}

static size_t
gw_headers(const gw_chat_t *c, gw_hdr_t *h, char *id, size_t idcap, char *cost,
           char *esc)
{
    gw_decision_id(c, id, idcap);
    snprintf(esc, 16, "%d", c->escalations);
    size_t n = 0;
    h[n++] = (gw_hdr_t){"x-bursar-decision-id", id};
    h[n++] = (gw_hdr_t){"x-bursar-model", c->served};
    h[n++] = (gw_hdr_t){"x-bursar-bucket", c->bucket};
    h[n++] = (gw_hdr_t){"x-bursar-escalations", esc};
    if (cost) {
        snprintf(cost, 32, "%.8f", c->spent);
        h[n++] = (gw_hdr_t){"x-bursar-cost-usd", cost};
    }
    return n;
}

static enum MHD_Result
gw_answer_reply(gw_chat_t *c)
{
    char id[BURSAR_ID_MAX + 8], cost[32], esc[16];
    gw_hdr_t h[8];
    size_t n = gw_headers(c, h, id, sizeof id, cost, esc);
    char *s = cJSON_PrintUnformatted(c->ans.response);
    return gw_reply(c->conn, 200, "application/json", s, strlen(s), h, n);
}

/* --------------------------------------------------------- the outcome */

static void
gw_report(gw_chat_t *c, int success)
{
    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_OUTCOME);
    fb.success = success;
    fb.cost_usd = c->cost;
    fb.tokens_in = c->tin;
    fb.tokens_out = c->tout;
    fb.latency_ms = c->latency_ms;
    if (strcmp(c->served, c->d.model) != 0)
        fb.model = c->served;
    gw_post(c->g, c->kit->client, &c->d, &fb);
}

static void
gw_report_error(gw_chat_t *c, const char *model, const prov_result_t *r)
{
    if (strcmp(model, c->d.model) != 0)
        return; /* the protocol takes the decision's own model's only */
    bursar_feedback_t fb;
    bursar_feedback_init(&fb, BURSAR_FB_PROVIDER_ERROR);
    fb.error = r->error;
    gw_post(c->g, c->kit->client, &c->d, &fb);
}

/* Does the answer (text, finish_reason) pass the bucket's validator and
 * the response_format's? A call of tools is not an answer to validate:
 * its text is empty, and the application runs the tools and asks again. */
static int
gw_validate(const gw_chat_t *c, const char *text, const char *finish)
{
    char why[256];
    if (finish && strcmp(finish, "tool_calls") == 0)
        return 1;
    if (c->v_bucket && !validator_check(c->v_bucket, text, why, sizeof why))
        return 0;
    if (c->v_rf && !validator_check(c->v_rf, text, why, sizeof why))
        return 0;
    return 1;
}

/* ------------------------------------------------------------ the call */

static void
gw_call_done(void *ud, const bursar_model_t *m, prov_result_t *r)
{
    gw_chat_t *c = ud;
    if (strcmp(r->error_kind, "cancelled") != 0)
        gw_metrics_upstream(c->g, m->name, r->latency_ms / 1000.0);
    c->res = *r;
    r->output = NULL; /* taken */
    c->res_done = 1;
}

static size_t
gw_on_stream(void *ud, const char *p, size_t n)
{
    gw_chat_t *c = ud;
    int rc = chat_stream_feed(c->cs, p, n, gw_emit, c, c->stream_err,
                              sizeof c->stream_err);
    if (rc < 0) {
        c->stream_bad = 1;
        return 0;
    }
    return n;
}

static void
gw_fail(gw_chat_t *c, const char *model, const char *kind, const char *what)
{
    c->n_fail++;
    c->n_timeout += strcmp(kind, "timeout") == 0;
    c->n_refused += strcmp(kind, "http_error") == 0;
    c->n_limited += strcmp(kind, "rate_limited") == 0;
    c->n_config += strcmp(kind, "no_key") == 0 ||
                   strcmp(kind, "refused_url") == 0 ||
                   strcmp(kind, "config") == 0;
    snprintf(c->last_error, sizeof c->last_error, "%s: %s", model, what);
}

static void
gw_tried(gw_chat_t *c, const char *model)
{
    for (size_t i = 0; i < c->n_tried; i++)
        if (strcmp(c->tried[i], model) == 0)
            return;
    if (c->n_tried == GW_MAX_TRIED)
        return;
    bursar_copy_str(c->tried[c->n_tried], BURSAR_NAME_MAX, model);
    c->tried_p[c->n_tried] = c->tried[c->n_tried];
    c->n_tried++;
}

/* Starts the call of c->m. Returns 0, or -1 (failed: recorded). */
static int
gw_call_start(gw_chat_t *c)
{
    char err[256];
    char *body = chat_upstream_body(c->req, &c->m, c->stream,
                                    c->g->cfg.prov.max_tokens, err, sizeof err);
    if (!body) {
        gw_fail(c, c->m.name, "request", err);
        return -1;
    }
    prov_call_t call = {body, c->stream ? gw_on_stream : NULL, c};
    prov_result_clear(&c->res);
    c->res_done = c->stream_bad = 0;
    c->sse.len = c->sse_off = 0;
    chat_stream_destroy(&c->cs);
    if (c->stream)
        c->cs = chat_stream_new(c->m.provider, c->m.name, c->want_usage);
    int rc = prov_pool_submit_call(c->kit->pool, &c->m, &call, gw_call_done, c);
    free(body);
    if (rc != 0)
        gw_fail(c, c->m.name, "request", "the call could not be queued");
    return rc;
}

/* A finished call that failed: GW_CALL_GONE or GW_CALL_FAIL. */
static int
gw_call_failed(gw_chat_t *c)
{
    if (strcmp(c->res.error_kind, "cancelled") == 0 && !c->stream_bad)
        return GW_CALL_GONE;
    const char *what = c->stream_bad ? c->stream_err : c->res.error;
    gw_metrics_upstream_error(c->g, c->m.name,
                              c->stream_bad ? "malformed" : c->res.error_kind);
    gw_fail(c, c->m.name, c->res.error_kind, what);
    prov_result_t r = c->res;
    bursar_copy_str(r.error, sizeof r.error, what);
    /* a 4xx other than 429 is about the request (too long for this
     * model's context, a parameter it lacks), and a missing key or a
     * refused URL about the gateway's setup: not the provider's health.
     * The next model may serve, and no provider_error is reported. */
    if (strcmp(r.error_kind, "http_error") != 0 &&
        strcmp(r.error_kind, "no_key") != 0 &&
        strcmp(r.error_kind, "refused_url") != 0)
        gw_report_error(c, c->m.name, &r);
    return GW_CALL_FAIL;
}

/* A complete answer: read, costed, kept in c->ans. */
static int
gw_call_answer(gw_chat_t *c)
{
    char err[256];
    chat_answer_clear(&c->ans);
    const char *body = c->res.output ? c->res.output : "";
    if (chat_answer_parse(c->m.provider, body, strlen(body), c->m.name, &c->ans,
                          err, sizeof err) != 0) {
        snprintf(c->res.error, sizeof c->res.error, "%s", err);
        bursar_copy_str(c->res.error_kind, sizeof c->res.error_kind,
                        "malformed");
        return gw_call_failed(c);
    }
    c->tin = c->ans.tokens_in >= 0 ? c->ans.tokens_in : 0;
    c->tout = c->ans.tokens_out >= 0 ? c->ans.tokens_out : 0;
    if (c->ans.tokens_in < 0) { /* no usage: about 4 characters a token */
        char *p = chat_prompt_text(c->req);
        c->tin = (long)strlen(p) / 4 + 1;
        c->tout = (long)strlen(c->ans.text) / 4 + 1;
        free(p);
    }
    c->cost = prov_cost(&c->m, c->tin, c->tout);
    c->spent += c->cost;
    c->latency_ms = c->res.latency_ms;
    bursar_copy_str(c->served, sizeof c->served, c->m.name);
    return GW_CALL_OK;
}

/* Calls model name: GW_CALL_OK (an answer in c->ans, or a stream that
 * has begun), GW_CALL_FAIL (try the next) or GW_CALL_GONE. */
static int
gw_call(gw_chat_t *c, const char *name)
{
    gw_tried(c, name);
    if (!gw_model(c->g, name, &c->m)) {
        gw_fail(c, name, "config", "not in the gateway's models");
        return GW_CALL_FAIL;
    }
    if (gw_call_start(c) != 0)
        return GW_CALL_FAIL;
    /* a stream is answered from its first chunk after the role's: an
     * error right after the upstream's opening can still fall back */
    double t0 = gw_now();
    while (!c->res_done && !(c->stream && chat_stream_chunks(c->cs) >= 2))
        prov_pool_run(c->kit->pool, GW_RUN_MS);
    c->up_s += gw_now() - t0;
    if (c->res_done && !c->res.ok)
        return gw_call_failed(c);
    if (c->stream) {
        bursar_copy_str(c->served, sizeof c->served, c->m.name);
        return GW_CALL_OK;
    }
    return gw_call_answer(c);
}

/* --------------------------------------------------------- the stream */

/* The stream has ended: the error event if it failed, [DONE], the
 * outcome. */
static void
gw_stream_close(gw_chat_t *c)
{
    if (!c->res.ok || c->stream_bad) {
        gw_metrics_upstream_error(
            c->g, c->m.name, c->stream_bad ? "malformed" : c->res.error_kind);
        char *e = chat_error_body("api_error",
                                  c->stream_bad ? c->stream_err : c->res.error,
                                  NULL, "upstream_error");
        gw_sse_add(c, "data: ", 6, e, strlen(e));
        free(e);
    }
    gw_sse_add(c, "data: [DONE]", 12, "", 0);
    c->stream_end = 2;
    long tin = -1, tout = -1;
    if (!chat_stream_usage(c->cs, &tin, &tout)) {
        char *p = chat_prompt_text(c->req);
        tin = (long)strlen(p) / 4 + 1;
        tout = (long)strlen(chat_stream_text(c->cs)) / 4 + 1;
        free(p);
    }
    c->tin = tin;
    c->tout = tout;
    c->cost = prov_cost(&c->m, tin, tout);
    c->latency_ms = c->res.latency_ms;
    c->pending = 1; /* validated once [DONE] has left (gw_chat_finish) */
}

static ssize_t
gw_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    gw_chat_t *c = cls;
    for (;;) {
        if (c->sse_off < c->sse.len) {
            size_t n = c->sse.len - c->sse_off;
            if (n > max)
                n = max;
            memcpy(buf, c->sse.p + c->sse_off, n);
            c->sse_off += n;
            return (ssize_t)n;
        }
        c->sse_off = c->sse.len = 0;
        if (c->stream_end == 2)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (c->res_done) {
            if (strcmp(c->res.error_kind, "cancelled") == 0 && !c->stream_bad)
                return MHD_CONTENT_READER_END_WITH_ERROR; /* client gone */
            gw_stream_close(c);
            continue;
        }
        prov_pool_run(c->kit->pool, GW_RUN_MS);
    }
}

static enum MHD_Result
gw_stream_reply(gw_chat_t *c)
{
    struct MHD_Response *r = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 16384, gw_stream_read, c, NULL);
    if (!r)
        return MHD_NO;
    char id[BURSAR_ID_MAX + 8], esc[16];
    gw_hdr_t h[8];
    size_t n = gw_headers(c, h, id, sizeof id, NULL, esc);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    for (size_t i = 0; i < n; i++)
        MHD_add_response_header(r, h[i].name, h[i].value);
    enum MHD_Result rc = MHD_queue_response(c->conn, 200, r);
    MHD_destroy_response(r);
    return rc;
}

/* -------------------------------------------------------- the decision */

/* The error reply of a decision the controller refused or could not
 * make. */
static enum MHD_Result
gw_decide_error(gw_chat_t *c, int rc)
{
    const char *err = bursar_last_error(c->kit->client);
    if (rc == BURSAR_EREMOTE) {
        const char *type;
        char code[64];
        unsigned st = gw_ctl_status(err, &type, code, sizeof code);
        if (strcmp(code, "unknown_bucket") == 0)
            return gw_reply_error(
                c->conn, 404, type, "model", code,
                "unknown bucket \"%s\" (model \"%.100s\"): the controller "
                "serves no such bucket (GET /v1/models lists them)",
                c->bucket,
                cJSON_GetObjectItemCaseSensitive(c->req, "model")->valuestring);
        return gw_reply_error(c->conn, st, type, NULL, code, "%s",
                              gw_ctl_message(err));
    }
    if (rc ==
        GW_UNKNOWN_BUCKET) /* local: a bucket the controller did not list */
        return gw_reply_error(c->conn, 404, "not_found_error", "model",
                              "unknown_bucket",
                              "unknown bucket \"%s\": the controller is "
                              "away, and its last list of buckets has no "
                              "such bucket",
                              c->bucket);
    if (rc == BURSAR_EUNREACHABLE)
        return gw_reply_error(c->conn, 503, "api_error", NULL,
                              "controller_unreachable",
                              "the controller is unreachable and bucket "
                              "\"%s\" has no local fallback model",
                              c->bucket);
    return gw_reply_error(c->conn, 502, "api_error", NULL, NULL,
                          "the controller's answer: %s %s", bursar_strerror(rc),
                          err);
}

/* A decision: the named model's own (direct), the controller's, or an
 * escalation of the last. Returns BURSAR_OK, BURSAR_LOCAL or an error. */
static int
gw_decide(gw_chat_t *c)
{
    bursar_t *b = c->kit->client;
    if (c->direct) {
        if (c->have_d)
            return BURSAR_EEMPTY; /* one model, no second decision */
        bursar_local_init(&c->d, c->bucket);
        bursar_copy_str(c->d.model, sizeof c->d.model, c->m.name);
        bursar_copy_str(c->d.tenant, sizeof c->d.tenant, c->tenant);
        c->have_d = 1;
        return BURSAR_LOCAL;
    }
    int rc = c->have_d
                 ? bursar_escalate(b, &c->d, c->tried_p, c->n_tried, &c->d)
                 : bursar_choose(b, c->bucket, NULL, 0, &c->d);
    int listed = bursar_bucket_allows(b, c->bucket, "");
    if (listed == -2) /* this client never had the list: the gateway's */
        listed = gw_bucket_known(c->g, c->bucket) == 0 ? -1 : 0;
    if ((rc == BURSAR_LOCAL || rc == BURSAR_EUNREACHABLE) && listed == -1)
        return GW_UNKNOWN_BUCKET; /* a mistyped bucket is not served */
    if (rc == BURSAR_OK || rc == BURSAR_LOCAL) {
        c->have_d = 1;
        gw_ctl_seen(c->g, rc == BURSAR_OK);
    }
    if (rc == BURSAR_OK)
        gw_models_refresh(c->g, c->kit);
    return rc;
}

/* Tries the decision's models in order. Returns GW_CALL_OK (an answer or
 * a stream), GW_CALL_FAIL (none answered) or GW_CALL_GONE. */
static int
gw_try_models(gw_chat_t *c)
{
    const char *cand[1 + BURSAR_MAX_FALLBACKS];
    size_t n = 0;
    cand[n++] = c->d.model;
    for (size_t i = 0; i < c->d.n_fallbacks; i++)
        cand[n++] = c->d.fallbacks[i];
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        int skip = 0;
        for (size_t k = 0; k < c->n_tried && !skip; k++)
            skip = strcmp(c->tried[k], cand[i]) == 0;
        if (skip)
            continue;
        if (failed) /* another model after a failed call */
            gw_count(c->g, &c->g->st.fallbacks, 1);
        int r = gw_call(c, cand[i]);
        if (r != GW_CALL_FAIL)
            return r;
        failed = 1;
    }
    return GW_CALL_FAIL;
}

static enum MHD_Result
gw_all_failed(gw_chat_t *c)
{
    int timeouts = c->n_fail > 0 && c->n_timeout == c->n_fail;
    gw_count(c->g, &c->g->st.errors, 1);
    bursar_log("bursar-gateway: bucket %s: every model failed (%d); the "
               "last: %s\n",
               c->bucket, c->n_fail, c->last_error);
    if (c->n_fail > 0 && c->n_config == c->n_fail)
        return gw_reply_error(c->conn, 500, "api_error", NULL,
                              "gateway_misconfigured",
                              "the gateway cannot call any model of this "
                              "request (its configuration: %s)",
                              c->last_error);
    if (c->n_fail > 0 && c->n_limited == c->n_fail)
        return gw_reply_error(c->conn, 429, "rate_limit_error", NULL,
                              "upstream_rate_limited",
                              "every model tried is rate-limited (%d); the "
                              "last: %s",
                              c->n_fail, c->last_error);
    if (c->n_fail > 0 && c->n_refused == c->n_fail) /* the request's fault */
        return gw_reply_error(c->conn, 400, "invalid_request_error", NULL,
                              "upstream_refused",
                              "every model tried refused the request (%d); "
                              "the last: %s",
                              c->n_fail, c->last_error);
    return gw_reply_error(
        c->conn, timeouts ? 504 : 502, timeouts ? "timeout_error" : "api_error",
        NULL, timeouts ? "upstream_timeout" : "upstream_error",
        "every model tried failed (%d); the last: %s", c->n_fail,
        c->n_fail ? c->last_error : "none could be called");
}

/* An answer that failed validation, kept in case nothing better comes:
 * then it stands (its outcome was reported already). */
typedef struct gw_kept {
    chat_answer_t ans;
    bursar_decision_t d;
    char served[BURSAR_NAME_MAX];
    double cost;
} gw_kept_t;

static void
gw_keep(gw_chat_t *c, gw_kept_t *k)
{
    chat_answer_clear(&k->ans);
    k->ans = c->ans;
    memset(&c->ans, 0, sizeof c->ans);
    k->d = c->d;
    bursar_copy_str(k->served, sizeof k->served, c->served);
    k->cost = c->cost;
}

static enum MHD_Result
gw_kept_reply(gw_chat_t *c, gw_kept_t *k)
{
    chat_answer_clear(&c->ans);
    c->ans = k->ans;
    c->d = k->d;
    bursar_copy_str(c->served, sizeof c->served, k->served);
    c->cost = k->cost;
    c->pending = 0;
    return gw_answer_reply(c);
}

/* Decides, calls, validates and escalates until an answer stands. */
static enum MHD_Result
gw_chat_run(gw_chat_t *c)
{
    gw_kept_t kept = {0};
    int have_kept = 0;
    int rc = gw_decide(c);
    if (rc != BURSAR_OK && rc != BURSAR_LOCAL)
        return gw_decide_error(c, rc);
    for (;;) {
        int r = gw_try_models(c);
        if (r == GW_CALL_GONE) {
            gw_count(c->g, &c->g->st.cancelled, 1);
            chat_answer_clear(&kept.ans);
            return MHD_NO;
        }
        if (r == GW_CALL_FAIL)
            break;
        if (c->stream)
            return gw_stream_reply(c); /* no escalation: nothing kept */
        c->valid = gw_validate(c, c->ans.text, c->ans.finish_reason);
        if (c->valid || c->direct ||
            c->escalations >= c->g->cfg.max_escalations) {
            chat_answer_clear(&kept.ans);
            c->pending = 1;
            return gw_answer_reply(c);
        }
        /* reported whoever judges the answer: the application never
         * sees this step's decision */
        gw_report(c, 0);
        gw_keep(c, &kept);
        have_kept = 1;
        rc = gw_decide(c);
        if (rc != BURSAR_OK && rc != BURSAR_LOCAL)
            break; /* nothing to escalate to */
        c->escalations++;
        gw_count(c->g, &c->g->st.escalations, 1);
    }
    if (have_kept)
        return gw_kept_reply(c, &kept);
    return gw_all_failed(c);
}

/* --------------------------------------------------------- the request */

/* The model field: bursar/auto, bursar/<bucket> or a configured model.
 * Returns 0, or queues the error and returns -1 (*out its result). */
static int
gw_target(gw_chat_t *c, enum MHD_Result *out)
{
    const char *model =
        cJSON_GetObjectItemCaseSensitive(c->req, "model")->valuestring;
    char *prompt = chat_prompt_text(c->req);
    const char *routed = route_bucket(c->g->cfg.route, "", prompt);
    bursar_copy_str(c->bucket, sizeof c->bucket, routed);
    free(prompt);
    if (strcmp(model, "bursar/auto") == 0)
        return 0;
    if (strncmp(model, "bursar/", 7) == 0) {
        size_t n = strlen(model + 7);
        if (n == 0 || n >= BURSAR_NAME_MAX ||
            strspn(model + 7, GW_NAME_CHARS) != n) {
            *out = gw_reply_error(c->conn, 404, "not_found_error", "model",
                                  "model_not_found",
                                  "model: a bucket name has 1 to %d "
                                  "characters of A-Z a-z 0-9 . _ - : /",
                                  BURSAR_NAME_MAX - 1);
            return -1;
        }
        bursar_copy_str(c->bucket, sizeof c->bucket, model + 7);
        return 0;
    }
    if (gw_model(c->g, model, &c->m)) {
        c->direct = 1;
        return 0;
    }
    *out = gw_reply_error(c->conn, 404, "not_found_error", "model",
                          "model_not_found",
                          "model \"%.100s\" is neither bursar/auto, "
                          "bursar/<bucket> nor a model of the gateway "
                          "(GET /v1/models lists them)",
                          model);
    return -1;
}

/* The body, its checks and the validators. Returns 0, or queues the
 * error and returns -1. */
static int
gw_read(gw_chat_t *c, const char *body, size_t len, enum MHD_Result *out)
{
    char err[300];
    const char *param = NULL;
    c->req = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(c->req)) {
        *out = gw_reply_error(c->conn, 400, "invalid_request_error", NULL,
                              "invalid_json",
                              c->req ? "the body must be a JSON object"
                                     : "the body is not valid JSON");
        return -1;
    }
    if (chat_request_check(c->req, err, sizeof err, &param) != 0) {
        *out = gw_reply_error(c->conn, 400, "invalid_request_error", param,
                              "invalid_value", "%s", err);
        return -1;
    }
    if (validator_from_response_format(
            cJSON_GetObjectItemCaseSensitive(c->req, "response_format"),
            &c->v_rf, err, sizeof err) != 0) {
        *out = gw_reply_error(c->conn, 400, "invalid_request_error",
                              "response_format", "invalid_value", "%s", err);
        return -1;
    }
    c->stream =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c->req, "stream"));
    const cJSON *so =
        cJSON_GetObjectItemCaseSensitive(c->req, "stream_options");
    c->want_usage =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
    const char *oc = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND,
                                                 "x-bursar-outcome");
    c->client_outcome = oc && strcmp(oc, "client") == 0;
    if (oc && !c->client_outcome && strcmp(oc, "gateway") != 0) {
        *out = gw_reply_error(c->conn, 400, "invalid_request_error", NULL,
                              "invalid_value",
                              "header x-bursar-outcome: must be \"client\" "
                              "or \"gateway\", not \"%.40s\"",
                              oc);
        return -1;
    }
    if (gw_target(c, out) != 0)
        return -1;
    c->v_bucket = gw_cfg_validator(&c->g->cfg, c->bucket);
    return 0;
}

enum MHD_Result
gw_chat_serve(gw_t *g, struct MHD_Connection *conn, const char *tenant,
              const char *body, size_t len, gw_chat_t **out)
{
    gw_chat_t *c = bursar_calloc(1, sizeof *c);
    *out = c;
    c->g = g;
    c->conn = conn;
    bursar_copy_str(c->tenant, sizeof c->tenant, tenant);
    enum MHD_Result r = MHD_NO;
    if (gw_read(c, body, len, &r) != 0) {
        gw_count(g, &g->st.errors, 1);
        return r;
    }
    char err[256];
    c->kit = gw_kit_get(g, err, sizeof err);
    if (!c->kit)
        return gw_reply_error(conn, 503, "api_error", NULL, NULL,
                              "the gateway cannot reach its controller: %s",
                              err);
    bursar_set_tenant(c->kit->client, c->tenant[0] ? c->tenant : NULL);
    prov_pool_watch(c->kit->pool, gw_conn_fd(conn));
    return gw_chat_run(c);
}

double
gw_chat_upstream_s(const gw_chat_t *c)
{
    return c ? c->up_s : 0;
}

void
gw_chat_finish(gw_chat_t *c)
{
    if (!c)
        return;
    if (c->kit) {
        if (prov_pool_pending(c->kit->pool)) { /* a stream cut short */
            prov_pool_cancel(c->kit->pool, "the client went away");
            prov_pool_run(c->kit->pool, 0);
            gw_count(c->g, &c->g->st.cancelled, 1);
        }
        if (c->pending && c->stream)
            c->valid = c->res.ok && !c->stream_bad &&
                       chat_stream_ended(c->cs) &&
                       gw_validate(c, chat_stream_text(c->cs),
                                   chat_stream_finish_reason(c->cs));
        /* a local decision is booked whoever judges it: its spend must
         * reach the ledger */
        if (c->pending && (!c->client_outcome || c->d.local))
            gw_report(c, c->valid);
        gw_kit_put(c->g, c->kit);
    }
    chat_stream_destroy(&c->cs);
    chat_answer_clear(&c->ans);
    prov_result_clear(&c->res);
    validator_destroy(&c->v_rf);
    cJSON_Delete(c->req);
    free(c->sse.p);
    free(c);
}
