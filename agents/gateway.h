/*
 * gateway.h - bursar-gateway, the OpenAI-compatible HTTP front door
 * (docs/gateway.md): its configuration (gw_cfg.c), the HTTP server on
 * GNU libmicrohttpd (gw_http.c) and the chat completions it serves
 * (gw_chat.c), on the worker library: the client (bursar.h), provider
 * calls (provider.h), the wire formats (chat.h), validators, routing.
 *
 * Threads: libmicrohttpd runs one thread per client connection, and a
 * request is served in its connection's thread from start to end: the
 * choose, the upstream call (a curl multi handle that also watches the
 * client's socket, so that a client going away cancels the call), the
 * answer, then the feedback once the answer has left. What a request
 * needs of its own (a controller client: bursar_t is not thread-safe; a
 * pool of upstream calls, which keeps its connections to the providers
 * open) is a kit, borrowed from the gateway's free list for the request
 * and returned after it, so kits (and upstream connections) outlive
 * client connections and there are about as many as requests in flight.
 */
#ifndef BURSAR_AGENTS_GATEWAY_H
#define BURSAR_AGENTS_GATEWAY_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <microhttpd.h>

#include "agents/bursar.h"
#include "agents/provider.h"
#include "agents/route.h"
#include "agents/validate.h"
#include "agents/webd.h"

#define GW_KEY_PREFIX   "bsk-"
#define GW_KEY_BYTES    32  /* random bytes of an application key */
#define GW_KEY_MAX      128 /* longest Authorization key read, bytes */
#define GW_TENANT_MAX   BURSAR_TENANT_MAX /* a tenant, incl. NUL */
#define GW_BODY_DEFAULT (1024 * 1024)     /* limits.max_body_bytes */
#define GW_CONN_DEFAULT 1024              /* limits.max_connections */
#define GW_MAX_TRIED    64                /* models tried for one request */
#define GW_ESC_MAX      8                 /* max_escalations at most */
#define GW_REPORTERS    8    /* threads sending reports (gw_report.c) */
#define GW_QUEUE_MAX    4096 /* reports waiting; more: sent by the request */
/* the characters of a bucket named in a request's model field */
#define GW_NAME_CHARS                                                          \
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-:/"

/* An application key: the SHA-256 of the key and the tenant it names. */
typedef struct gw_key {
    unsigned char sha256[32];
    char tenant[GW_TENANT_MAX];
} gw_key_t;

/* A bucket's validator (config "validators"; "*" is every bucket's). */
typedef struct gw_validator {
    char bucket[BURSAR_NAME_MAX];
    validator_t *v;
} gw_validator_t;

typedef struct gw_cfg {
    cJSON *root; /* the file, checked; the strings below point into it */
    const char *path;
    const char *listen; /* HOST:PORT */
    /* the operator's metrics address (gw_metrics.c): HOST:PORT or NULL
     * (not served), the client networks allowed (none: loopback), the
     * environment variable of a bearer token (or NULL) */
    const char *metrics_listen;
    const char *metrics_allow[WEBD_ALLOW_MAX];
    size_t n_metrics_allow;
    const char *metrics_token_env;
    const char *controller;
    const char *spool;
    const char *fallback_model;
    const cJSON *fallbacks;              /* bucket -> model, or NULL */
    const char *secret_key, *server_key; /* CURVE key specs, or NULL */
    bursar_model_t *own;                 /* the "models" table */
    size_t n_own;
    route_t *route;
    gw_validator_t *validators;
    size_t n_validators;
    int max_escalations;
    gw_key_t *keys;
    size_t n_keys;
    int allow_anonymous;
    size_t max_body;
    unsigned max_connections;
    unsigned idle_timeout_s;
    int ctl_timeout_ms, ctl_attempts, ctl_backoff_max_ms;
    prov_opts_t prov;
} gw_cfg_t;

/* Reads and checks the configuration at path. Returns 0, or -1 with
 * "JSON.PATH: what is wrong" in err. */
int gw_cfg_load(gw_cfg_t *c, const char *path, char *err, size_t cap);
void gw_cfg_free(gw_cfg_t *c);

/* The tenant of application key key (constant-time compare of the
 * hashes), or NULL. */
const char *gw_cfg_tenant(const gw_cfg_t *c, const char *key);

/* The validator of bucket (its own, else "*"), or NULL. */
const validator_t *gw_cfg_validator(const gw_cfg_t *c, const char *bucket);

/* A new application key for tenant: key gets "bsk-" and 43 base64url
 * characters, entry the configuration's {"tenant":..,"sha256":..}.
 * Returns 0, or -1 (a bad tenant name). */
int gw_new_key(const char *tenant, char *key, size_t kcap, char *entry,
               size_t ecap);

typedef struct gw_kit {
    struct gw_kit *next;
    bursar_t *client;
    prov_pool_t *pool;
} gw_kit_t;

typedef struct gw_stats {
    unsigned long requests, errors, fallbacks, escalations, cancelled,
        feedback_lost, feedback_refused;
} gw_stats_t;

typedef struct gw {
    gw_cfg_t cfg;
    bursar_opts_t bo;
    void *zmq; /* the ZeroMQ context the kits' clients share */
    prov_share_t *share;
    pthread_mutex_t lock; /* guards what follows */
    gw_kit_t *free_kits;
    unsigned long n_kits;
    bursar_model_t *models; /* merged with the controller's (wcfg_merge) */
    size_t n_models;
    int have_ctl_models; /* models came from the controller */
    int ctl_down;        /* the last decision was local (gw_ctl_seen) */
    char (*buckets)[BURSAR_NAME_MAX]; /* the controller's, as last listed */
    size_t n_buckets;
    int have_buckets; /* it listed them once */
    gw_stats_t st;
    struct gw_reporters *rep; /* gw_report.c */
    struct gw_metrics *met;   /* gw_metrics.c */
    webd_t *web;              /* the metrics address, or NULL */
    struct MHD_Daemon *mhd;
    unsigned short port;
    int quiet;
} gw_t;

/* The gateway on its configuration: the kits' template, the models (the
 * controller asked once, briefly). Returns 0 or -1 with err. */
int gw_open(gw_t *g, char *err, size_t cap);
void gw_close(gw_t *g);

/* A kit for one request (a new one when none is free), or NULL with err;
 * gw_kit_put gives it back. */
gw_kit_t *gw_kit_get(gw_t *g, char *err, size_t cap);
void gw_kit_put(gw_t *g, gw_kit_t *k);

/* After a decision of the controller: when the models came from the
 * configuration alone (the controller was away at start), they are merged
 * with the controller's now, once. */
void gw_models_refresh(gw_t *g, gw_kit_t *k);

/* The controller's buckets, asked now with kit k's client (kept for when
 * it is away; an answer without buckets keeps none). */
void gw_buckets_load(gw_t *g, gw_kit_t *k);

/* Whether the controller's last list had bucket: 1, 0, or -1 when it
 * never listed them. */
int gw_bucket_known(gw_t *g, const char *bucket);

/* A decision was made by the controller (up 1) or locally (0): a change
 * is logged. */
void gw_ctl_seen(gw_t *g, int up);

/* The configured fallbacks, each a model the gateway knows. Returns 0,
 * or -1 with "fallbacks.B: ..." in err. */
int gw_check_fallbacks(gw_t *g, char *err, size_t cap);

/* A copy of the configured model name (merged with the controller's
 * prices when it answered at start), into *m. Returns 1, or 0 when the
 * gateway has no such model. */
int gw_model(gw_t *g, const char *name, bursar_model_t *m);

/* Reports off the requests' threads (gw_report.c): gw_post queues a
 * report of decision d (copied), or sends it with client b when the queue
 * is full; gw_reporters_stop drains the queue. */
int gw_reporters_start(gw_t *g, char *err, size_t cap);
void gw_reporters_stop(gw_t *g);
void gw_post(gw_t *g, bursar_t *b, const bursar_decision_t *d,
             const bursar_feedback_t *fb);

/* Starts serving (gw_http.c). Returns 0 or -1 with err. */
int gw_http_start(gw_t *g, char *err, size_t cap);
void gw_http_stop(gw_t *g);

/* Counters, under the lock. */
void gw_count(gw_t *g, unsigned long *field, unsigned long n);

/* Reports waiting in the queue (gw_report.c). */
size_t gw_reporters_queued(gw_t *g);

/* ------------------------------------------------ metrics (gw_metrics.c) */

/* Models with series of their own (more: model="other"). */
#define GW_MET_MODELS 64

/* The routes, as the metrics label them (gw_http.c). */
enum gw_route {
    GW_R_CHAT,
    GW_R_MODELS,
    GW_R_FEEDBACK,
    GW_R_HEALTH,
    GW_R_MODEL, /* GET /v1/models/{id} */
    GW_R_NONE,
    GW_R_COUNT
};

/* The status recorded for a request whose client left before any answer
 * was queued (nginx's "client closed request"). */
#define GW_STATUS_GONE 499

/* The metrics' tables (fixed size: recording allocates nothing), made by
 * gw_open; every gw_metrics_* call is a no-op before. */
void gw_metrics_new(gw_t *g);
void gw_metrics_destroy(gw_t *g);
/* A model gets its series (zero) before its first call. */
void gw_metrics_model(gw_t *g, const char *model);
/* A request answered with status (GW_STATUS_GONE: none). */
void gw_metrics_request(gw_t *g, enum gw_route route, unsigned status);
/* Requests being served: +1 when one arrives, -1 when it is done. */
void gw_metrics_inflight(gw_t *g, int delta);
/* A chat completion's added latency: the gateway's own time, seconds. */
void gw_metrics_added(gw_t *g, double seconds);
/* An upstream call of model that finished (not cancelled), seconds. */
void gw_metrics_upstream(gw_t *g, const char *model, double seconds);
/* An upstream call of model that failed, by the provider layer's
 * error_kind (prov_result_t). */
void gw_metrics_upstream_error(gw_t *g, const char *model, const char *kind);
/* The exposition (Prometheus' text format) into b. */
void gw_metrics_write(gw_t *g, bursar_buf_t *b);
/* Serves GET /metrics and /healthz on listen (the configuration's
 * metrics.listen when NULL; neither: nothing served) with webd. Returns
 * 0, or -1 with "metrics.X: why" in err. */
int gw_metrics_start(gw_t *g, const char *listen, char *err, size_t cap);
void gw_metrics_stop(gw_t *g);
/* Seconds on the monotonic clock. */
double gw_now(void);

/* ------------------------------------------------ replies (gw_http.c) */

/* A header of a reply. */
typedef struct gw_hdr {
    const char *name, *value;
} gw_hdr_t;

/* Queues a reply: status, content type, body (taken: freed by MHD) and
 * n headers. */
enum MHD_Result gw_reply(struct MHD_Connection *conn, unsigned status,
                         const char *ctype, char *body, size_t len,
                         const gw_hdr_t *h, size_t n);

/* Queues an error in OpenAI's shape ({"error":{"message","type","param",
 * "code"}}); param and code may be NULL. */
#if defined(__GNUC__)
__attribute__((format(printf, 6, 7)))
#endif
enum MHD_Result
gw_reply_error(struct MHD_Connection *conn, unsigned status, const char *type,
               const char *param, const char *code, const char *fmt, ...);

/* The client's socket. */
int gw_conn_fd(struct MHD_Connection *conn);

/* ------------------------------------ chat completions (gw_chat.c) */

typedef struct gw_chat gw_chat_t;

/* Serves POST /v1/chat/completions with body (len bytes) for tenant
 * ("" anonymous): queues the answer, a stream or an error on conn. *out
 * gets what must be finished after the reply left (gw_chat_finish), or
 * NULL. */
enum MHD_Result gw_chat_serve(gw_t *g, struct MHD_Connection *conn,
                              const char *tenant, const char *body, size_t len,
                              gw_chat_t **out);

/* The reply has left, or the connection failed: the outcome is reported
 * (an upstream call still running is cancelled first), the kit given
 * back, c freed. */
void gw_chat_finish(gw_chat_t *c);

/* Seconds request c waited for upstream calls before its answer (a
 * stream: before its first chunk); 0 when c is NULL. */
double gw_chat_upstream_s(const gw_chat_t *c);

/* The error type and HTTP status of the controller's refusal (the code
 * before ':' in bursar_last_error). */
unsigned gw_ctl_status(const char *last_error, const char **type, char *code,
                       size_t cap);

/* The message of the controller's refusal, without its code. */
const char *gw_ctl_message(const char *last_error);

#endif
