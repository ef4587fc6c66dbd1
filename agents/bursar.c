/*
 * bursar.c - the client library (see bursar.h for the contract).
 *
 * Transport: the "lazy pirate" pattern of the ZeroMQ guide (chapter 4): a
 * REQ socket, a poll with a timeout, and on timeout the socket is closed
 * (linger 0) and a new one is made for the next attempt. It needs nothing of
 * the server beyond plain REQ/ROUTER framing, and a stale reply can never be
 * read as the answer to a later request.
 *
 * Every request is written and every reply read by the wire codec
 * (proto.h), the code the controller links: this file holds no JSON of its
 * own.
 */
#include "agents/bursar.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* last_error holds "code: message" */
#define BURSAR_LAST_ERROR_MAX (PROTO_MESSAGE_MAX + 64)

/* A bucket's own local fallback. */
typedef struct local_fallback {
    char bucket[BURSAR_NAME_MAX];
    char model[BURSAR_NAME_MAX];
} local_fallback_t;

struct bursar {
    void *ctx;
    int own_ctx; /* ctx is this client's (else opts.zmq_context) */
    void *sock;  /* NULL until first use, and after a timeout */
    char *endpoint;
    int timeout_ms;
    int attempts;
    int backoff_ms;
    int backoff_max_ms;
    int cur_backoff_ms;          /* next offline period */
    double offline_until;        /* monotonic seconds; 0: online */
    char *fallback_model;        /* every bucket's default local model */
    local_fallback_t *fallbacks; /* per bucket (bursar_set_fallback) */
    size_t n_fallbacks;
    proto_catalog_t cat; /* the last models reply: what each bucket allows */
    int cat_state;       /* 0: never read; 1: a models reply was read */
    char tenant[BURSAR_TENANT_MAX]; /* bursar_set_tenant; "" none */
    char *spool_path;
    int curve; /* 1: the keys below are set */
    char secret_key[BURSAR_KEY_Z85 + 1], public_key[BURSAR_KEY_Z85 + 1];
    char server_key[BURSAR_KEY_Z85 + 1];
    int spool_pending; /* the spool may hold lines */
    int in_replay;
    bursar_stats_t st;
    char last_error[BURSAR_LAST_ERROR_MAX];
};

/* ---------------------------------------------------------------- utils */

/* A copy of s, or NULL for NULL. */
static char *
opt_dup(const char *s)
{
    return s ? bursar_strdup(s) : NULL;
}

/* Seconds on the monotonic clock (timeouts and back-off). */
static double
mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void
bursar_opts_init(bursar_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->timeout_ms = 1000;
    o->attempts = 2;
    o->backoff_ms = 500;
    o->backoff_max_ms = 5000;
}

/* Reads the CURVE keys of o into self. Returns 0 or BURSAR_EINVAL. */
static int
client_keys(bursar_t *self, const bursar_opts_t *o, char *err, size_t err_len)
{
    int has_s = o->secret_key && *o->secret_key;
    int has_p = o->server_key && *o->server_key;
    if (!has_s && !has_p)
        return 0;
    if (has_s != has_p) {
        snprintf(err, err_len,
                 "CURVE needs both this client's secret key and the "
                 "server's public key; only the %s was given",
                 has_s ? "secret key" : "server key");
        return BURSAR_EINVAL;
    }
    if (bursar_key_load(o->secret_key, 1, self->secret_key, err, err_len) ||
        bursar_key_load(o->server_key, 0, self->server_key, err, err_len))
        return BURSAR_EINVAL;
    if (bursar_key_public(self->secret_key, self->public_key) != 0) {
        snprintf(err, err_len, "the secret key is not a CURVE key");
        return BURSAR_EINVAL;
    }
    self->curve = 1;
    return 0;
}

/* Whether path can serve as the spool: an existing regular file that
 * opens for writing, or a new file's directory that exists and may be
 * written. Returns 0, or BURSAR_EIO with err naming the path. */
static int
spool_check(const char *path, char *err, size_t err_len)
{
    struct stat sb;
    if (stat(path, &sb) == 0) {
        int fd = S_ISREG(sb.st_mode) ? open(path, O_RDWR | O_APPEND | O_CLOEXEC)
                                     : -1;
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        snprintf(err, err_len, "spool %s: %s", path,
                 S_ISREG(sb.st_mode) ? strerror(errno) : "not a regular file");
        return BURSAR_EIO;
    }
    if (errno != ENOENT) {
        snprintf(err, err_len, "spool %s: %s", path, strerror(errno));
        return BURSAR_EIO;
    }
    const char *slash = strrchr(path, '/');
    char *dir = slash ? bursar_strdup(path) : bursar_strdup(".");
    if (slash)
        dir[slash == path ? 1 : slash - path] = '\0';
    int rc = BURSAR_EIO;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        snprintf(err, err_len, "spool %s: directory %s does not exist", path,
                 dir);
    else if (access(dir, W_OK | X_OK) != 0)
        snprintf(err, err_len, "spool %s: directory %s is not writable: %s",
                 path, dir, strerror(errno));
    else
        rc = 0;
    free(dir);
    return rc;
}

int
bursar_new(bursar_t **out, const bursar_opts_t *o)
{
    char err[64];
    return bursar_new_err(out, o, err, sizeof err);
}

int
bursar_new_err(bursar_t **out, const bursar_opts_t *o, char *err,
               size_t err_len)
{
    if (err_len)
        err[0] = '\0';
    if (!out)
        return BURSAR_EINVAL;
    *out = NULL;
    if (!o || !o->endpoint || !*o->endpoint) {
        snprintf(err, err_len, "no endpoint");
        return BURSAR_EINVAL;
    }
    if (proto_endpoint_check(o->endpoint, err, err_len) != 0)
        return BURSAR_EINVAL; /* "localhost:7878": suggests tcp:// */
    if (o->spool_path && *o->spool_path) {
        int src = spool_check(o->spool_path, err, err_len);
        if (src)
            return src;
    }
    bursar_t *self = bursar_calloc(1, sizeof(*self));
    int krc = client_keys(self, o, err, err_len);
    if (krc) {
        free(self);
        return krc;
    }
    self->own_ctx = o->zmq_context == NULL;
    self->ctx = self->own_ctx ? zmq_ctx_new() : o->zmq_context;
    if (!self->ctx) {
        free(self);
        return BURSAR_EZMQ;
    }
    self->endpoint = opt_dup(o->endpoint);
    self->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 1000;
    self->attempts = o->attempts > 0 ? o->attempts : 1;
    self->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 500;
    self->backoff_max_ms = o->backoff_max_ms >= self->backoff_ms
                               ? o->backoff_max_ms
                               : self->backoff_ms;
    self->cur_backoff_ms = self->backoff_ms;
    self->fallback_model = opt_dup(o->fallback_model);
    if (o->spool_path && *o->spool_path) {
        self->spool_path = opt_dup(o->spool_path);
        struct stat sb;
        if (stat(self->spool_path, &sb) == 0 && sb.st_size > 0)
            self->spool_pending = 1;
    }
    *out = self;
    return BURSAR_OK;
}

static void
sock_close(bursar_t *self)
{
    if (self->sock) {
        int zero = 0;
        zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof(zero));
        zmq_close(self->sock);
        self->sock = NULL;
    }
}

void
bursar_destroy(bursar_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    bursar_t *self = *self_p;
    sock_close(self);
    if (self->own_ctx)
        zmq_ctx_term(self->ctx);
    free(self->endpoint);
    free(self->fallback_model);
    free(self->fallbacks);
    proto_catalog_free(&self->cat);
    free(self->spool_path);
    free(self);
    *self_p = NULL;
}

void
bursar_stats(const bursar_t *self, bursar_stats_t *st)
{
    *st = self->st;
}

const char *
bursar_last_error(const bursar_t *self)
{
    return self->last_error;
}

/* ------------------------------------------------------------ transport */

static int
sock_open(bursar_t *self)
{
    if (self->sock)
        return 0;
    self->sock = zmq_socket(self->ctx, ZMQ_REQ);
    if (!self->sock)
        return -1;
    int zero = 0;
    zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof(zero));
    /* Fail fast when nobody listens yet instead of queueing forever. */
    int ivl = 100;
    zmq_setsockopt(self->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl));
    if (self->curve &&
        (zmq_setsockopt(self->sock, ZMQ_CURVE_SERVERKEY, self->server_key,
                        BURSAR_KEY_Z85) != 0 ||
         zmq_setsockopt(self->sock, ZMQ_CURVE_PUBLICKEY, self->public_key,
                        BURSAR_KEY_Z85) != 0 ||
         zmq_setsockopt(self->sock, ZMQ_CURVE_SECRETKEY, self->secret_key,
                        BURSAR_KEY_Z85) != 0)) {
        sock_close(self);
        return -1;
    }
    if (zmq_connect(self->sock, self->endpoint) != 0) {
        sock_close(self);
        return -1;
    }
    return 0;
}

/* One attempt: send req, wait up to timeout_ms. Returns 0 and *reply
 * (malloc'ed, NUL-terminated, *len bytes), or -1 on timeout / transport
 * error. */
static int
rpc_once(bursar_t *self, const char *req, char **reply, size_t *len)
{
    if (sock_open(self) != 0)
        return -1;
    if (zmq_send(self->sock, req, strlen(req), ZMQ_DONTWAIT) < 0) {
        sock_close(self);
        return -1;
    }
    zmq_pollitem_t it = {self->sock, 0, ZMQ_POLLIN, 0};
    double deadline = mono_now() + self->timeout_ms / 1000.0;
    for (;;) {
        double left = deadline - mono_now();
        if (left <= 0)
            break;
        int rc = zmq_poll(&it, 1, (long)(left * 1000.0) + 1);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->sock, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        size_t n = zmq_msg_size(&m);
        char *s = bursar_malloc(n + 1);
        memcpy(s, zmq_msg_data(&m), n);
        s[n] = '\0';
        /* A reply is one frame; drain any extra frames defensively. */
        int more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        while (more) {
            zmq_msg_init(&m);
            zmq_msg_recv(&m, self->sock, 0);
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        *reply = s;
        *len = n;
        return 0;
    }
    self->st.timeouts++;
    sock_close(self);
    return -1;
}

/* Sends req with retries. Returns BURSAR_OK and the reply text (*reply,
 * malloc'ed, *len bytes), or BURSAR_EUNREACHABLE (every attempt timed out,
 * or still inside the offline period). */
static int
rpc(bursar_t *self, const char *req, char **reply, size_t *len)
{
    *reply = NULL;
    double now = mono_now();
    int tries = self->attempts;
    if (self->offline_until > 0) {
        if (now < self->offline_until)
            return BURSAR_EUNREACHABLE;
        tries = 1; /* a probe */
    }
    for (int i = 0; i < tries; i++) {
        if (rpc_once(self, req, reply, len) != 0)
            continue;
        self->offline_until = 0;
        self->cur_backoff_ms = self->backoff_ms;
        self->st.requests++;
        return BURSAR_OK;
    }
    self->offline_until = mono_now() + self->cur_backoff_ms / 1000.0;
    self->cur_backoff_ms *= 2;
    if (self->cur_backoff_ms > self->backoff_max_ms)
        self->cur_backoff_ms = self->backoff_max_ms;
    return BURSAR_EUNREACHABLE;
}

/* The codec's verdict on a reply as a return code: BURSAR_OK, BURSAR_EPROTO
 * (malformed: last_error names the field) or BURSAR_EREMOTE (an error
 * reply: last_error is "code: message"). */
static int
reply_verdict(bursar_t *self, proto_code_t parsed, const proto_reply_t *r,
              const proto_error_t *err)
{
    if (parsed != PROTO_OK) {
        snprintf(self->last_error, sizeof(self->last_error), "%s",
                 err->message);
        return BURSAR_EPROTO;
    }
    if (!r->ok) {
        snprintf(self->last_error, sizeof(self->last_error), "%s: %s",
                 proto_code_name(r->error.code), r->error.message);
        return BURSAR_EREMOTE;
    }
    self->last_error[0] = '\0';
    return BURSAR_OK;
}

/* Whether a failed exchange is the controller's own trouble (a failed
 * commit, a bug, a reply not understood) or a "retry later" (rate_limited)
 * rather than a verdict on the event: such feedback is kept in the spool
 * and sent again later, never dropped (its spend must reach the ledger). */
static int
reply_transient(int rc, const proto_reply_t *r)
{
    if (rc == BURSAR_EPROTO)
        return 1;
    return rc == BURSAR_EREMOTE && (r->error.code == PROTO_E_STORE ||
                                    r->error.code == PROTO_E_INTERNAL ||
                                    r->error.code == PROTO_E_RATE_LIMITED);
}

/* rpc, then the codec's parse of the reply to op; no replay. */
static int
exchange(bursar_t *self, const char *req, proto_op_t op, proto_reply_t *r)
{
    memset(r, 0, sizeof(*r));
    char *text = NULL;
    size_t len = 0;
    int rc = rpc(self, req, &text, &len);
    if (rc != BURSAR_OK)
        return rc;
    proto_error_t err;
    proto_code_t parsed = proto_parse_reply(text, len, op, r, &err);
    free(text);
    return reply_verdict(self, parsed, r, &err);
}

static void maybe_replay(bursar_t *self);

/* The controller answered: the spool's replay, and the buckets' models
 * read once (a client that started while the controller was away learns
 * them at its first answer). */
static void
answered(bursar_t *self)
{
    maybe_replay(self);
    if (self->cat_state == 0 && !self->in_replay) {
        char keep[BURSAR_LAST_ERROR_MAX]; /* the caller's call's */
        memcpy(keep, self->last_error, sizeof keep);
        bursar_model_t *ms = NULL;
        size_t n = 0;
        if (bursar_models(self, &ms, &n) != BURSAR_EUNREACHABLE)
            self->cat_state = 1;
        bursar_models_free(&ms);
        memcpy(self->last_error, keep, sizeof keep);
    }
}

/* exchange + replay of the spool once the controller answers. The request
 * text is the caller's (freed here). */
static int
call(bursar_t *self, char *req, proto_op_t op, proto_reply_t *r)
{
    int rc = exchange(self, req, op, r);
    free(req);
    if (rc != BURSAR_EUNREACHABLE)
        answered(self);
    return rc;
}

int
bursar_request(bursar_t *self, const char *json, char **reply)
{
    if (!self || !json || !reply)
        return BURSAR_EINVAL;
    size_t len;
    return rpc(self, json, reply, &len);
}

int
bursar_ping(bursar_t *self)
{
    if (!self)
        return BURSAR_EINVAL;
    proto_reply_t r;
    return call(self, proto_format_simple(PROTO_OP_PING), PROTO_OP_PING, &r);
}

/* --------------------------------------------------------------- choose */

static int
excluded(const char *m, const char *const *ex, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ex[i] && strcmp(ex[i], m) == 0)
            return 1;
    return 0;
}

/* A fresh local id: 32 hex digits of randomness (ids must not repeat
 * across processes and restarts: the controller keys bookings on them). */
static void
local_id_new(char out[BURSAR_LOCAL_ID_MAX])
{
    unsigned char r[16];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof r) { /* no getrandom: the clocks and the pid */
        struct timespec a, b;
        clock_gettime(CLOCK_REALTIME, &a);
        clock_gettime(CLOCK_MONOTONIC, &b);
        uint64_t x[2] = {(uint64_t)a.tv_sec * 1000000007u ^ (uint64_t)b.tv_nsec,
                         (uint64_t)a.tv_nsec << 20 ^ (uint64_t)getpid() ^
                             (uint64_t)(uintptr_t)out};
        memcpy(r, x, sizeof r);
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof r; i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[2 * sizeof r] = '\0';
}

void
bursar_local_init(bursar_decision_t *d, const char *bucket)
{
    memset(d, 0, sizeof(*d));
    bursar_copy_str(d->bucket, sizeof(d->bucket), bucket ? bucket : "");
    d->propensity = 1.0;
    d->local = 1;
    local_id_new(d->local_id);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    d->local_time = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The bucket as the last models reply described it, or NULL. */
static const proto_bucket_t *
catalog_bucket(const bursar_t *self, const char *bucket)
{
    for (size_t i = 0; i < self->cat.n_buckets; i++)
        if (strcmp(self->cat.buckets[i].name, bucket) == 0)
            return &self->cat.buckets[i];
    return NULL;
}

static int
catalog_allows(const bursar_t *self, const proto_bucket_t *kb,
               const char *model)
{
    for (size_t i = 0; i < kb->n_models; i++)
        if (strcmp(self->cat.models[kb->models[i]].name, model) == 0)
            return 1;
    return 0;
}

int
bursar_bucket_allows(const bursar_t *self, const char *bucket,
                     const char *model)
{
    if (!self || !self->cat.has_buckets)
        return -2;
    const proto_bucket_t *kb = bucket ? catalog_bucket(self, bucket) : NULL;
    if (!kb)
        return -1;
    return model ? catalog_allows(self, kb, model) : 0;
}

const char *
bursar_bucket_name(const bursar_t *self, size_t i)
{
    if (!self || !self->cat.has_buckets || i >= self->cat.n_buckets)
        return NULL;
    return self->cat.buckets[i].name;
}

/* The expected cost of the bucket's i-th model: its prices for the
 * bucket's expected tokens. */
static double
catalog_cost(const bursar_t *self, const proto_bucket_t *kb, size_t i)
{
    const proto_model_t *m = &self->cat.models[kb->models[i]];
    return proto_price_cost(m->price_in_per_mtok, m->price_out_per_mtok,
                            kb->expected_tokens_in, kb->expected_tokens_out);
}

/* The candidates of a local decision in bucket, best first: the bucket's
 * own fallback, the default one, then the bucket's models cheapest first;
 * a fallback the bucket does not allow (when its models are known) is
 * left out. Returns how many (at most cap) went into c. */
static size_t
local_candidates(const bursar_t *self, const char *bucket, const char **c,
                 size_t cap)
{
    const proto_bucket_t *kb = catalog_bucket(self, bucket);
    size_t n = 0;
    for (size_t i = 0; i < self->n_fallbacks && n < cap; i++)
        if (strcmp(self->fallbacks[i].bucket, bucket) == 0 &&
            (!kb || catalog_allows(self, kb, self->fallbacks[i].model)))
            c[n++] = self->fallbacks[i].model;
    if (self->fallback_model && n < cap &&
        (!kb || catalog_allows(self, kb, self->fallback_model)))
        c[n++] = self->fallback_model;
    size_t order[PROTO_MAX_BUCKET_MODELS], k = kb ? kb->n_models : 0;
    for (size_t i = 0; i < k; i++) { /* stable insertion sort by cost */
        size_t j = i;
        while (j > 0 &&
               catalog_cost(self, kb, order[j - 1]) > catalog_cost(self, kb, i))
            j--;
        memmove(order + j + 1, order + j, (i - j) * sizeof *order);
        order[j] = i;
    }
    for (size_t i = 0; i < k && n < cap; i++)
        c[n++] = self->cat.models[kb->models[order[i]]].name;
    return n;
}

/* A decision of the client alone (the controller away): the first
 * candidate not excluded, the others as its fallbacks. Returns
 * BURSAR_LOCAL, or BURSAR_EUNREACHABLE when no candidate is left. */
static int
local_choose(bursar_t *self, const char *bucket, const char *const *exclude,
             size_t n_exclude, bursar_decision_t *d)
{
    const char *c[PROTO_MAX_BUCKET_MODELS + BURSAR_MAX_FALLBACKS + 2];
    size_t n = local_candidates(self, bucket, c, sizeof c / sizeof c[0]);
    bursar_decision_t ld;
    bursar_local_init(&ld, bucket);
    for (size_t i = 0; i < n; i++) {
        int dup =
            excluded(c[i], exclude, n_exclude) || strcmp(c[i], ld.model) == 0;
        for (size_t k = 0; !dup && k < ld.n_fallbacks; k++)
            dup = strcmp(c[i], ld.fallbacks[k]) == 0;
        if (dup)
            continue;
        if (!ld.model[0])
            bursar_copy_str(ld.model, sizeof(ld.model), c[i]);
        else if (ld.n_fallbacks < BURSAR_MAX_FALLBACKS)
            bursar_copy_str(ld.fallbacks[ld.n_fallbacks++], BURSAR_NAME_MAX,
                            c[i]);
    }
    if (!ld.model[0])
        return BURSAR_EUNREACHABLE;
    *d = ld;
    self->st.local_choices++;
    return BURSAR_LOCAL;
}

int
bursar_set_fallback(bursar_t *self, const char *bucket, const char *model)
{
    if (!self || (bucket && (!*bucket || strlen(bucket) >= BURSAR_NAME_MAX)) ||
        (model && (!*model || strlen(model) >= BURSAR_NAME_MAX)))
        return BURSAR_EINVAL;
    if (!bucket) {
        free(self->fallback_model);
        self->fallback_model = opt_dup(model);
        return BURSAR_OK;
    }
    size_t i = 0;
    while (i < self->n_fallbacks && strcmp(self->fallbacks[i].bucket, bucket))
        i++;
    if (!model) { /* removed: the last entry takes its place */
        if (i < self->n_fallbacks)
            self->fallbacks[i] = self->fallbacks[--self->n_fallbacks];
        return BURSAR_OK;
    }
    if (i == self->n_fallbacks)
        self->fallbacks = bursar_realloc(
            self->fallbacks, ++self->n_fallbacks * sizeof *self->fallbacks);
    bursar_copy_str(self->fallbacks[i].bucket, BURSAR_NAME_MAX, bucket);
    bursar_copy_str(self->fallbacks[i].model, BURSAR_NAME_MAX, model);
    return BURSAR_OK;
}

int
bursar_set_tenant(bursar_t *self, const char *tenant)
{
    if (!self || (tenant && *tenant && !proto_tenant_valid(tenant)))
        return BURSAR_EINVAL;
    bursar_copy_str(self->tenant, sizeof self->tenant, tenant ? tenant : "");
    return BURSAR_OK;
}

/* bursar_choose and bursar_escalate: parent is the token of the decision
 * escalated, or "" (a plain choose). */
static int
choose(bursar_t *self, const char *bucket, const char *const *exclude,
       size_t n_exclude, const char *parent, bursar_decision_t *d)
{
    if (!self || !bucket || !d || (n_exclude && !exclude))
        return BURSAR_EINVAL;
    for (size_t i = 0; i < n_exclude; i++)
        if (!exclude[i])
            return BURSAR_EINVAL;
    memset(d, 0, sizeof(*d));
    bursar_copy_str(d->bucket, sizeof(d->bucket), bucket);

    proto_reply_t r;
    int rc = call(self,
                  proto_format_choose_tenant(bucket, exclude, n_exclude, parent,
                                             self->tenant),
                  PROTO_OP_CHOOSE, &r);
    if (rc == BURSAR_OK) {
        bursar_copy_str(d->id, sizeof(d->id), r.decision);
        bursar_copy_str(d->model, sizeof(d->model), r.model);
        d->propensity = r.propensity;
        d->n_fallbacks = r.n_fallbacks;
        memcpy(d->fallbacks, r.fallbacks, sizeof(d->fallbacks));
    } else if (rc == BURSAR_EUNREACHABLE) {
        rc = local_choose(self, bucket, exclude, n_exclude, d);
    }
    if (rc == BURSAR_OK || rc == BURSAR_LOCAL)
        bursar_copy_str(d->tenant, sizeof(d->tenant), self->tenant);
    return rc;
}

int
bursar_choose(bursar_t *self, const char *bucket, const char *const *exclude,
              size_t n_exclude, bursar_decision_t *d)
{
    return choose(self, bucket, exclude, n_exclude, "", d);
}

int
bursar_escalate(bursar_t *self, const bursar_decision_t *prev,
                const char *const *exclude, size_t n_exclude,
                bursar_decision_t *d)
{
    if (!prev || (prev->id[0] && !proto_token_valid(prev->id)))
        return BURSAR_EINVAL;
    /* copied first: prev and d may be the same decision */
    char parent[BURSAR_ID_MAX], bucket[BURSAR_NAME_MAX];
    bursar_copy_str(parent, sizeof(parent), prev->id);
    bursar_copy_str(bucket, sizeof(bucket), prev->bucket);
    return choose(self, bucket, exclude, n_exclude, parent, d);
}

/* -------------------------------------------------------------- feedback */

void
bursar_feedback_init(bursar_feedback_t *fb, bursar_fb_kind_t kind)
{
    memset(fb, 0, sizeof(*fb));
    fb->kind = kind;
    fb->success = 1;
    fb->cost_usd = -1;
    fb->tokens_in = -1;
    fb->tokens_out = -1;
    fb->latency_ms = -1;
}

/* The codec's form of a feedback event ("not sent" fields left out). */
static void
feedback_to_proto(const bursar_feedback_t *fb, const char *decision,
                  proto_feedback_t *f)
{
    memset(f, 0, sizeof(*f));
    f->decision = decision;
    f->kind = fb->kind == BURSAR_FB_CORRECTION       ? PROTO_KIND_CORRECTION
              : fb->kind == BURSAR_FB_PROVIDER_ERROR ? PROTO_KIND_PROVIDER_ERROR
                                                     : PROTO_KIND_OUTCOME;
    f->has_success = fb->success >= 0;
    f->success = fb->success > 0;
    f->has_reward = fb->success < 0;
    f->reward = fb->reward;
    f->has_cost = fb->cost_usd >= 0;
    f->cost_usd = fb->cost_usd;
    f->has_tokens = fb->tokens_in >= 0 || fb->tokens_out >= 0;
    f->tokens_in = fb->tokens_in >= 0 ? (double)fb->tokens_in : 0;
    f->tokens_out = fb->tokens_out >= 0 ? (double)fb->tokens_out : 0;
    f->has_latency = fb->latency_ms >= 0;
    f->latency_ms = fb->latency_ms;
    f->model = fb->model && *fb->model ? fb->model : NULL;
    f->error = fb->error;
}

/* Appends one line to path under an exclusive flock, with one write(2),
 * and fsyncs before returning. Returns BURSAR_OK, or BURSAR_EIO with
 * errno saying why. */
static int
append_line(const char *path, const char *line)
{
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return BURSAR_EIO;
    int rc = BURSAR_OK;
    while (flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) {
            close(fd);
            return BURSAR_EIO;
        }
    /* A crash mid-append leaves a last line without its newline: start on
     * a fresh line so that this event is not glued to the fragment (which
     * replay then drops alone, as it was never acknowledged). */
    size_t lead = 0;
    struct stat st;
    char last = '\n';
    if (fstat(fd, &st) == 0 && st.st_size > 0 &&
        pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n')
        lead = 1;
    size_t n = strlen(line);
    char *buf = bursar_malloc(n + 3);
    buf[0] = '\n';
    memcpy(buf + lead, line, n);
    buf[lead + n] = '\n';
    n += lead;
    size_t off = 0;
    while (off < n + 1) {
        ssize_t w = write(fd, buf + off, n + 1 - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = BURSAR_EIO;
            break;
        }
        off += (size_t)w;
    }
    if (rc == BURSAR_OK && fsync(fd) != 0)
        rc = BURSAR_EIO;
    int e = errno; /* why it failed, for the caller's message */
    free(buf);
    flock(fd, LOCK_UN);
    close(fd);
    errno = e;
    return rc;
}

/* Sends an event (text: a feedback or book request, freed here); when
 * the controller is away or in trouble, appends it to the spool. Returns
 * BURSAR_OK, BURSAR_SPOOLED or the failure. */
static int
deliver(bursar_t *self, char *text)
{
    proto_reply_t r;
    int rc = exchange(self, text, PROTO_OP_FEEDBACK, &r);
    if (rc == BURSAR_OK && r.duplicate)
        self->st.duplicates++;
    if ((rc == BURSAR_EUNREACHABLE || reply_transient(rc, &r)) &&
        self->spool_path) {
        rc = append_line(self->spool_path, text);
        if (rc == BURSAR_OK) {
            self->spool_pending = 1;
            self->st.spooled++;
            rc = BURSAR_SPOOLED;
        } else {
            snprintf(self->last_error, sizeof(self->last_error), "spool %s: %s",
                     self->spool_path, strerror(errno));
        }
    } else if (rc == BURSAR_EUNREACHABLE) {
        snprintf(self->last_error, sizeof(self->last_error),
                 "controller unreachable and no spool");
    }
    free(text);
    if (rc != BURSAR_EUNREACHABLE && rc != BURSAR_SPOOLED && rc != BURSAR_EIO)
        answered(self);
    return rc;
}

/* An event of a decision the client made alone: booked (op book). */
static int
feedback_book(bursar_t *self, const bursar_decision_t *d,
              const bursar_feedback_t *fb)
{
    if (!proto_token_valid(d->local_id) ||
        strlen(d->local_id) >= BURSAR_LOCAL_ID_MAX || !d->bucket[0] ||
        !d->model[0]) {
        snprintf(self->last_error, sizeof(self->last_error),
                 "a local decision needs its local_id, bucket and model "
                 "(bursar_local_init)");
        return BURSAR_EINVAL;
    }
    if (memchr(d->tenant, '\0', sizeof(d->tenant)) == NULL ||
        (d->tenant[0] && !proto_tenant_valid(d->tenant))) {
        snprintf(self->last_error, sizeof(self->last_error),
                 "a local decision's tenant must be 1 to %d characters of "
                 "A-Z a-z 0-9 . _ - (or empty)",
                 BURSAR_TENANT_MAX - 1);
        return BURSAR_EINVAL;
    }
    proto_feedback_t f;
    feedback_to_proto(fb, NULL, &f);
    proto_local_t l = {.id = d->local_id,
                       .bucket = d->bucket,
                       .model = d->model,
                       .time = d->local_time,
                       .tenant = d->tenant};
    int rc = deliver(self, proto_format_book(&l, &f));
    if (rc == BURSAR_OK || rc == BURSAR_SPOOLED)
        self->st.local_feedback++;
    return rc;
}

int
bursar_feedback(bursar_t *self, const bursar_decision_t *d,
                const bursar_feedback_t *fb)
{
    if (!self || !d || !fb)
        return BURSAR_EINVAL;
    if (fb->kind == BURSAR_FB_OUTCOME && fb->success < 0 &&
        !(fb->reward >= 0 && fb->reward <= 1))
        return BURSAR_EINVAL;
    if (d->local || !d->id[0])
        return feedback_book(self, d, fb);
    if (!proto_token_valid(d->id))
        return BURSAR_EINVAL;
    proto_feedback_t f;
    feedback_to_proto(fb, d->id, &f);
    return deliver(self, proto_format_feedback(&f));
}

/* ---------------------------------------------------------------- replay */

/* Sends the spool's complete lines (buf, NUL-terminated) in order. Returns
 * BURSAR_OK when every line got a verdict, else the code that stopped the
 * replay (the controller away or in trouble: keep the spool). */
static int
replay_lines(bursar_t *self, char *buf, size_t len, size_t *n_sent)
{
    char *end = buf + len;
    for (char *line = buf; line < end;) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl)
            break; /* a torn last line (crash mid-write): never acked */
        *nl = '\0';
        if (memchr(line, '\0', (size_t)(nl - line))) {
            /* a torn append that the file system left zero-filled: the
             * events after it are whole and still sent */
            self->st.replay_dropped++;
        } else if (*line) {
            proto_reply_t r;
            int rc = exchange(self, line, PROTO_OP_FEEDBACK, &r);
            if (rc == BURSAR_EUNREACHABLE || reply_transient(rc, &r))
                return rc; /* resent later: answered "duplicate" then */
            if (rc == BURSAR_OK) {
                self->st.replayed++;
                if (n_sent)
                    (*n_sent)++;
                if (r.duplicate)
                    self->st.duplicates++;
            } else {
                self->st.replay_dropped++; /* refused: unknown, expired */
                if (strstr(line, "\"op\":\"book\""))
                    self->st.book_refused++;
            }
        }
        line = nl + 1;
    }
    return BURSAR_OK;
}

int
bursar_replay(bursar_t *self, size_t *n_sent)
{
    if (n_sent)
        *n_sent = 0;
    if (!self)
        return BURSAR_EINVAL;
    if (!self->spool_path)
        return BURSAR_OK;
    int fd = open(self->spool_path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        self->spool_pending = 0;
        return errno == ENOENT ? BURSAR_OK : BURSAR_EIO;
    }
    while (flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) {
            close(fd);
            return BURSAR_EIO;
        }
    /* Read under the lock (flock holds for the file, whatever descriptor
     * reads it). */
    char *buf = NULL;
    size_t len = 0;
    int rc = bursar_read_file(self->spool_path, &buf, &len);
    if (rc == BURSAR_OK) {
        self->in_replay = 1;
        rc = replay_lines(self, buf, len, n_sent);
        self->in_replay = 0;
    }
    if (rc == BURSAR_OK) {
        /* Everything acknowledged: a crash before this truncation only
         * means a resend, which the controller answers "duplicate". */
        if (ftruncate(fd, 0) != 0 || fsync(fd) != 0)
            rc = BURSAR_EIO;
        else
            self->spool_pending = 0;
    }
    free(buf);
    flock(fd, LOCK_UN);
    close(fd);
    return rc;
}

static void
maybe_replay(bursar_t *self)
{
    if (self->spool_pending && !self->in_replay)
        bursar_replay(self, NULL);
}

/* ---------------------------------------------------------------- models */

int
bursar_models(bursar_t *self, bursar_model_t **out, size_t *n)
{
    if (!self || !out || !n)
        return BURSAR_EINVAL;
    *out = NULL;
    *n = 0;
    char *req = proto_format_simple(PROTO_OP_MODELS);
    char *text = NULL;
    size_t len = 0;
    int rc = rpc(self, req, &text, &len);
    free(req);
    if (rc != BURSAR_OK)
        return rc;
    proto_reply_t r;
    proto_error_t err;
    proto_catalog_t cat;
    proto_code_t parsed = proto_parse_catalog(text, len, &r, &cat, &err);
    free(text);
    rc = reply_verdict(self, parsed, &r, &err);
    if (rc == BURSAR_OK) {
        /* the caller's copy of the models; the catalog stays here */
        *n = cat.n_models;
        *out = *n ? bursar_malloc(*n * sizeof **out) : NULL;
        if (*n)
            memcpy(*out, cat.models, *n * sizeof **out);
        proto_catalog_free(&self->cat);
        self->cat = cat;
        self->cat_state = 1;
    }
    maybe_replay(self);
    return rc;
}

void
bursar_models_free(bursar_model_t **models)
{
    if (models && *models) {
        free(*models);
        *models = NULL;
    }
}
