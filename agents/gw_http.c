/*
 * gw_http.c - bursar-gateway's HTTP server on GNU libmicrohttpd: bodies,
 * routes, application keys, replies and errors in OpenAI's shape, and the
 * small routes (/healthz, /v1/models, /v1/feedback). Chat completions are
 * gw_chat.c's.
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/gateway.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agents/chat.h"
#include "agents/webd.h"

/* One request: its body as it arrives, and what is finished after it. */
typedef struct gw_req {
    enum gw_route route;
    char model_id[BURSAR_NAME_MAX + 8]; /* GET /v1/models/{id} */
    char tenant[GW_TENANT_MAX];
    int answered; /* refused from its head */
    bursar_buf_t body;
    int too_big;
    gw_chat_t *chat;
    double t0;   /* when its head (then its whole body) had arrived */
    int counted; /* its status is in the metrics */
} gw_req_t;

/* --------------------------------------------------------------- replies */

enum MHD_Result
gw_reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
         char *body, size_t len, const gw_hdr_t *h, size_t n)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    for (size_t i = 0; i < n; i++)
        if (h[i].value)
            MHD_add_response_header(r, h[i].name, h[i].value);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

enum MHD_Result
gw_reply_error(struct MHD_Connection *conn, unsigned status, const char *type,
               const char *param, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *body = chat_error_body(type, msg, param, code);
    gw_hdr_t h[] = {{"WWW-Authenticate", status == 401 ? "Bearer" : NULL}};
    return gw_reply(conn, status, "application/json", body, strlen(body), h, 1);
}

static enum MHD_Result
gw_reply_cjson(struct MHD_Connection *conn, unsigned status, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return gw_reply(conn, status, "application/json", s, strlen(s), NULL, 0);
}

int
gw_conn_fd(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

const char *
gw_ctl_message(const char *last_error)
{
    const char *colon = strstr(last_error, ": ");
    return colon && (size_t)(colon - last_error) < 40 ? colon + 2 : last_error;
}

unsigned
gw_ctl_status(const char *last_error, const char **type, char *code, size_t cap)
{
    size_t n = strcspn(last_error, ":");
    snprintf(code, cap, "%.*s", (int)n, last_error);
    static const struct {
        const char *code;
        unsigned status;
        const char *type;
    } map[] = {
        {"unknown_bucket", 404, "not_found_error"},
        {"unknown_decision", 404, "not_found_error"},
        {"decision_expired", 404, "not_found_error"},
        {"unknown_model", 400, "invalid_request_error"},
        {"missing_field", 400, "invalid_request_error"},
        {"wrong_type", 400, "invalid_request_error"},
        {"no_model_available", 503, "api_error"},
        {"rate_limited", 429, "rate_limit_error"},
        {"forbidden", 403, "permission_error"},
        {"bad_request", 400, "invalid_request_error"},
        {"invalid_value", 400, "invalid_request_error"},
        {"bucket_limit", 429, "rate_limit_error"},
        {"budget_exhausted", 429, "rate_limit_error"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(code, map[i].code) == 0) {
            *type = map[i].type;
            return map[i].status;
        }
    *type = "api_error";
    return 502;
}

/* ----------------------------------------------------------- small routes */

static enum MHD_Result
gw_health(gw_t *g, struct MHD_Connection *conn)
{
    char err[128];
    gw_kit_t *k = gw_kit_get(g, err, sizeof err);
    int up = k && bursar_ping(k->client) == BURSAR_OK;
    gw_kit_put(g, k);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "controller", up ? "up" : "down");
    return gw_reply_cjson(conn, 200, o);
}

static void
gw_models_add(cJSON *data, const char *id, const char *owner)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", owner);
    cJSON_AddItemToArray(data, m);
}

/* The controller's buckets (asked now, else the last list it gave), added
 * as bursar/<bucket>. */
static void
gw_models_buckets(gw_t *g, cJSON *data)
{
    char err[128];
    gw_kit_t *k = gw_kit_get(g, err, sizeof err);
    if (k)
        gw_buckets_load(g, k);
    gw_kit_put(g, k);
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < g->n_buckets; i++) {
        char id[BURSAR_NAME_MAX + 8];
        snprintf(id, sizeof id, "bursar/%s", g->buckets[i]);
        gw_models_add(data, id, "bursar");
    }
    pthread_mutex_unlock(&g->lock);
}

/* GET /v1/models (id NULL), or one of them: GET /v1/models/{id}. */
static enum MHD_Result
gw_models(gw_t *g, struct MHD_Connection *conn, const char *id)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(o, "data");
    gw_models_add(data, "bursar/auto", "bursar");
    gw_models_buckets(g, data);
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < g->n_models; i++)
        gw_models_add(data, g->models[i].name,
                      g->models[i].provider == BURSAR_PROVIDER_ANTHROPIC
                          ? "anthropic"
                          : "openai");
    pthread_mutex_unlock(&g->lock);
    if (!id)
        return gw_reply_cjson(conn, 200, o);
    const cJSON *m;
    cJSON_ArrayForEach(m, data)
    {
        const cJSON *mid = cJSON_GetObjectItemCaseSensitive(m, "id");
        if (strcmp(mid->valuestring, id) != 0)
            continue;
        cJSON *one = cJSON_DetachItemViaPointer(data, (cJSON *)m);
        cJSON_Delete(o);
        return gw_reply_cjson(conn, 200, one);
    }
    cJSON_Delete(o);
    return gw_reply_error(conn, 404, "not_found_error", "model",
                          "model_not_found", "no model \"%.100s\"", id);
}

/* ------------------------------------------------------------- /v1/feedback */

/* The body's fields into d and fb. Returns 0, or -1 with the field and
 * what is wrong. */
static int
gw_feedback_parse(const cJSON *o, bursar_decision_t *d, bursar_feedback_t *fb,
                  const char **param, char *err, size_t cap)
{
    static const char *const known[] = {
        "decision_id", "correction", "reward",     "success", "cost_usd",
        "tokens_in",   "tokens_out", "latency_ms", "model"};
    const cJSON *m;
    cJSON_ArrayForEach(m, o)
    {
        size_t i = 0;
        while (i < sizeof known / sizeof known[0] &&
               strcmp(known[i], m->string) != 0)
            i++;
        if (i == sizeof known / sizeof known[0]) {
            *param = m->string;
            snprintf(err, cap, "%.60s: unknown field", m->string);
            return -1;
        }
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "decision_id");
    *param = "decision_id";
    if (cJSON_IsString(id) && strncmp(id->valuestring, "local-", 6) == 0) {
        snprintf(err, cap,
                 "decision_id: a local decision (made by the "
                 "gateway itself) takes no later feedback");
        return -1;
    }
    if (!cJSON_IsString(id) || !proto_token_valid(id->valuestring)) {
        snprintf(err, cap,
                 "decision_id: must be a decision id "
                 "(x-bursar-decision-id)");
        return -1;
    }
    memset(d, 0, sizeof *d);
    bursar_copy_str(d->id, sizeof d->id, id->valuestring);
    const cJSON *corr = cJSON_GetObjectItemCaseSensitive(o, "correction");
    const cJSON *rw = cJSON_GetObjectItemCaseSensitive(o, "reward");
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(o, "success");
    if (corr && !cJSON_IsTrue(corr)) {
        *param = "correction";
        snprintf(err, cap, "correction: must be true");
        return -1;
    }
    if (!!corr + !!rw + !!ok != 1) {
        *param = NULL;
        snprintf(err, cap,
                 "exactly one of correction, reward and success is needed");
        return -1;
    }
    bursar_feedback_init(fb, corr ? BURSAR_FB_CORRECTION : BURSAR_FB_OUTCOME);
    if (corr)
        return 0;
    if ((rw && (!cJSON_IsNumber(rw) || !(rw->valuedouble >= 0) ||
                rw->valuedouble > 1)) ||
        (ok && !cJSON_IsBool(ok))) {
        *param = rw ? "reward" : "success";
        snprintf(err, cap, "%s",
                 rw ? "reward: must be a number in [0, 1]"
                    : "success: must be a boolean");
        return -1;
    }
    fb->success = rw ? -1 : cJSON_IsTrue(ok);
    fb->reward = rw ? rw->valuedouble : 0;
    static const char *const nums[] = {"cost_usd", "tokens_in", "tokens_out",
                                       "latency_ms"};
    double v[4] = {-1, -1, -1, -1};
    for (size_t i = 0; i < 4; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, nums[i]);
        if (!x)
            continue;
        if (!cJSON_IsNumber(x) || !(x->valuedouble >= 0) ||
            x->valuedouble > 1e12) {
            *param = nums[i];
            snprintf(err, cap, "%s: must be a number >= 0", nums[i]);
            return -1;
        }
        v[i] = x->valuedouble;
    }
    fb->cost_usd = v[0];
    fb->tokens_in = (long)v[1];
    fb->tokens_out = (long)v[2];
    fb->latency_ms = v[3];
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (model && (!cJSON_IsString(model) ||
                  strlen(model->valuestring) >= BURSAR_NAME_MAX)) {
        *param = "model";
        snprintf(err, cap, "model: must be a model name");
        return -1;
    }
    fb->model = model ? model->valuestring : NULL;
    return 0;
}

static enum MHD_Result
gw_feedback_reply(struct MHD_Connection *conn, int rc, const bursar_t *b,
                  int duplicate)
{
    if (rc == BURSAR_OK || rc == BURSAR_SPOOLED) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddBoolToObject(o, "ok", 1);
        if (duplicate)
            cJSON_AddBoolToObject(o, "duplicate", 1);
        if (rc == BURSAR_SPOOLED)
            cJSON_AddBoolToObject(o, "spooled", 1);
        return gw_reply_cjson(conn, rc == BURSAR_OK ? 200 : 202, o);
    }
    if (rc == BURSAR_EREMOTE) {
        const char *type;
        char code[64];
        unsigned st =
            gw_ctl_status(bursar_last_error(b), &type, code, sizeof code);
        return gw_reply_error(conn, st, type, "decision_id", code, "%s",
                              gw_ctl_message(bursar_last_error(b)));
    }
    return gw_reply_error(conn, 502, "api_error", NULL, NULL,
                          "the controller could not take the feedback: %s",
                          bursar_strerror(rc));
}

static enum MHD_Result
gw_feedback(gw_t *g, struct MHD_Connection *conn, const gw_req_t *rq)
{
    cJSON *o =
        cJSON_ParseWithLength(rq->body.p ? rq->body.p : "", rq->body.len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return gw_reply_error(conn, 400, "invalid_request_error", NULL,
                              "invalid_json", "the body must be a JSON object");
    }
    bursar_decision_t d;
    bursar_feedback_t fb;
    const char *param = NULL;
    char err[256];
    if (gw_feedback_parse(o, &d, &fb, &param, err, sizeof err) != 0) {
        enum MHD_Result r = gw_reply_error(conn, 400, "invalid_request_error",
                                           param, "invalid_value", "%s", err);
        cJSON_Delete(o);
        return r;
    }
    gw_kit_t *k = gw_kit_get(g, err, sizeof err);
    if (!k) {
        cJSON_Delete(o);
        return gw_reply_error(conn, 503, "api_error", NULL, NULL, "%s", err);
    }
    bursar_stats_t s0, s1;
    bursar_stats(k->client, &s0);
    int rc = bursar_feedback(k->client, &d, &fb);
    bursar_stats(k->client, &s1);
    enum MHD_Result r =
        gw_feedback_reply(conn, rc, k->client, s1.duplicates > s0.duplicates);
    gw_kit_put(g, k);
    cJSON_Delete(o);
    return r;
}

/* ------------------------------------------------------------- requests */

static enum gw_route
gw_route_of(const char *url)
{
    if (strcmp(url, "/healthz") == 0)
        return GW_R_HEALTH;
    if (strcmp(url, "/v1/chat/completions") == 0)
        return GW_R_CHAT;
    if (strcmp(url, "/v1/models") == 0)
        return GW_R_MODELS;
    if (strcmp(url, "/v1/feedback") == 0)
        return GW_R_FEEDBACK;
    if (strncmp(url, "/v1/models/", 11) == 0 && url[11])
        return GW_R_MODEL;
    return GW_R_NONE;
}

/* The tenant of the request's key into tenant; 0, or -1 (no key, a key
 * not configured). */
static int
gw_auth(const gw_t *g, struct MHD_Connection *conn, char *tenant, size_t cap,
        const char **why)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h) {
        *why = "no Authorization header: send \"Authorization: Bearer KEY\"";
        if (g->cfg.allow_anonymous) {
            tenant[0] = '\0';
            return 0;
        }
        return -1;
    }
    if (strncasecmp(h, "Bearer ", 7) != 0 || strlen(h + 7) > GW_KEY_MAX) {
        *why = "the Authorization header must be \"Bearer KEY\"";
        return -1;
    }
    const char *t = gw_cfg_tenant(&g->cfg, h + 7);
    if (!t) {
        *why = "the key is not valid";
        return -1;
    }
    bursar_copy_str(tenant, cap, t);
    return 0;
}

static enum MHD_Result
gw_count_cl(void *cls, enum MHD_ValueKind kind, const char *key,
            const char *value)
{
    (void)kind;
    (void)value;
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
        (*(int *)cls)++;
    return MHD_YES;
}

/* How many Content-Length headers the request has. */
static int
gw_content_lengths(struct MHD_Connection *conn)
{
    int n = 0;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, gw_count_cl, &n);
    return n;
}

/* The Content-Length, or 0 when there is none. */
static unsigned long long
gw_content_length(struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(
        conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return cl ? strtoull(cl, NULL, 10) : 0;
}

/* The request's head, before its body is read: route, method, key,
 * framing and size. Returns 0 (rq->route and rq->tenant set), or queues
 * the error and returns -1 (*out its result). */
static int
gw_head(gw_t *g, struct MHD_Connection *conn, gw_req_t *rq, const char *url,
        const char *method, enum MHD_Result *out)
{
    static const char *const want[] = {"POST", "GET", "POST", "GET", "GET"};
    const char *why = NULL;
    rq->route = gw_route_of(url);
    if (rq->route == GW_R_MODEL)
        bursar_copy_str(rq->model_id, sizeof rq->model_id, url + 11);
    if (rq->route == GW_R_NONE)
        *out = gw_reply_error(conn, 404, "not_found_error", NULL, "unknown_url",
                              "no route %.200s %.200s", method, url);
    else if (strcmp(method, want[rq->route]) != 0)
        *out = gw_reply_error(conn, 405, "invalid_request_error", NULL,
                              "method_not_allowed", "%s takes %s, not %.20s",
                              url, want[rq->route], method);
    else if (rq->route != GW_R_HEALTH &&
             gw_auth(g, conn, rq->tenant, sizeof rq->tenant, &why) != 0)
        *out = gw_reply_error(conn, 401, "authentication_error", NULL,
                              "invalid_api_key", "%s", why);
    else if (gw_content_lengths(conn) > 1)
        *out = gw_reply_error(conn, 400, "invalid_request_error", NULL,
                              "bad_framing",
                              "more than one Content-Length header");
    else if (gw_content_length(conn) > g->cfg.max_body)
        *out = gw_reply_error(conn, 413, "invalid_request_error", NULL,
                              "request_too_large",
                              "the body is over the gateway's limit of %zu "
                              "bytes (limits.max_body_bytes)",
                              g->cfg.max_body);
    else
        return 0;
    return -1;
}

/* The request, its body read. */
static enum MHD_Result
gw_dispatch(gw_t *g, struct MHD_Connection *conn, gw_req_t *rq)
{
    if (rq->too_big)
        return gw_reply_error(conn, 413, "invalid_request_error", NULL,
                              "request_too_large",
                              "the body is over the gateway's limit of %zu "
                              "bytes (limits.max_body_bytes)",
                              g->cfg.max_body);
    switch (rq->route) {
    case GW_R_HEALTH:
        return gw_health(g, conn);
    case GW_R_MODELS:
        return gw_models(g, conn, NULL);
    case GW_R_MODEL:
        return gw_models(g, conn, rq->model_id);
    case GW_R_FEEDBACK:
        return gw_feedback(g, conn, rq);
    default:
        gw_count(g, &g->st.requests, 1);
        return gw_chat_serve(g, conn, rq->tenant, rq->body.p ? rq->body.p : "",
                             rq->body.len, &rq->chat);
    }
}

/* Appends upload bytes to the body, up to the limit. */
static void
gw_body_add(const gw_t *g, gw_req_t *rq, const char *p, size_t n)
{
    if (rq->too_big)
        return;
    if (rq->body.len + n > g->cfg.max_body) {
        rq->too_big = 1;
        free(rq->body.p);
        memset(&rq->body, 0, sizeof rq->body);
        return;
    }
    bursar_buf_add(&rq->body, p, n);
}

/* The status queued on conn, or 0 when none is. */
static unsigned
gw_status_queued(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
    return ci ? ci->http_status : 0;
}

/* The request has been answered (or not: its client left): counted, and
 * a chat completion's added latency observed. */
static void
gw_answered(gw_t *g, struct MHD_Connection *conn, gw_req_t *rq)
{
    unsigned st = gw_status_queued(conn);
    if (!st)
        return; /* nothing queued: counted as gone when it completes */
    rq->counted = 1;
    gw_metrics_request(g, rq->route, st);
    if (rq->route == GW_R_CHAT)
        gw_metrics_added(g, gw_now() - rq->t0 - gw_chat_upstream_s(rq->chat));
}

static enum MHD_Result
gw_access(void *cls, struct MHD_Connection *conn, const char *url,
          const char *method, const char *version, const char *upload,
          size_t *upload_size, void **con_cls)
{
    (void)version;
    gw_t *g = cls;
    gw_req_t *rq = *con_cls;
    if (!rq) {
        rq = bursar_calloc(1, sizeof *rq);
        *con_cls = rq;
        rq->t0 = gw_now();
        gw_metrics_inflight(g, 1);
        enum MHD_Result out = MHD_YES;
        /* refused before its body is read: an unknown client cannot make
         * the gateway hold a body */
        if (gw_head(g, conn, rq, url, method, &out) != 0) {
            rq->answered = 1;
            gw_answered(g, conn, rq);
        }
        return out;
    }
    if (rq->answered) { /* the body of a refused request: dropped */
        *upload_size = 0;
        return MHD_YES;
    }
    if (*upload_size) {
        gw_body_add(g, rq, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    rq->t0 = gw_now();
    enum MHD_Result r = gw_dispatch(g, conn, rq);
    gw_answered(g, conn, rq);
    return r;
}

static void
gw_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    gw_t *g = cls;
    gw_req_t *rq = *con_cls;
    if (!rq)
        return;
    if (!rq->counted)
        gw_metrics_request(g, rq->route, GW_STATUS_GONE);
    gw_metrics_inflight(g, -1);
    if (rq->chat)
        gw_chat_finish(rq->chat);
    free(rq->body.p);
    free(rq);
    *con_cls = NULL;
}

static void
gw_mhd_log(void *cls, const char *fmt, va_list ap)
{
    const gw_t *g = cls;
    if (g->quiet)
        return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    bursar_log("bursar-gateway: http: %s", msg);
}

int
gw_http_start(gw_t *g, char *err, size_t cap)
{
    struct sockaddr_storage ss;
    int v6 = 0;
    if (webd_listen_addr(g->cfg.listen, &ss, &v6, err, cap) != 0)
        return -1;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
                     (v6 ? MHD_USE_IPv6 : 0);
    g->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, gw_access, g, MHD_OPTION_EXTERNAL_LOGGER,
        gw_mhd_log, g, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, g->cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, g->cfg.idle_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, gw_completed, g,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!g->mhd) {
        snprintf(err, cap, "listen: cannot serve on %s (address in use?)",
                 g->cfg.listen);
        return -1;
    }
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(g->mhd, MHD_DAEMON_INFO_BIND_PORT);
    g->port = di ? di->port : 0;
    return 0;
}

void
gw_http_stop(gw_t *g)
{
    if (g->mhd)
        MHD_stop_daemon(g->mhd);
    g->mhd = NULL;
}
