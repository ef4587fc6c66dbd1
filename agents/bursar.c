/*
 * bursar.c - the client library (see bursar.h for the contract).
 *
 * Transport: the "lazy pirate" pattern of the ZeroMQ guide (chapter 4): a
 * REQ socket, a poll with a timeout, and on timeout the socket is closed
 * (linger 0) and a new one is made for the next attempt. It needs nothing of
 * the server beyond plain REQ/ROUTER framing, and a stale reply can never be
 * read as the answer to a later request.
 */
#define _POSIX_C_SOURCE 200809L
#include "autil.h"
#include "bursar.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

struct bursar {
    void *ctx;
    void *sock; /* NULL until first use, and after a timeout */
    char *endpoint;
    int timeout_ms;
    int attempts;
    int backoff_ms;
    int backoff_max_ms;
    int cur_backoff_ms;   /* next offline period */
    double offline_until; /* monotonic seconds; 0: online */
    char *fallback_model;
    char *spool_path;
    char *local_path;  /* spool_path + ".local" */
    int spool_pending; /* the spool may hold lines */
    int in_replay;
    bursar_stats_t st;
    char last_error[BURSAR_ERR_MAX];
};

/* ---------------------------------------------------------------- utils */

static char *
xstrdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (!d)
        abort();
    memcpy(d, s, n);
    return d;
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

int
bursar_new(bursar_t **out, const bursar_opts_t *o)
{
    if (!out)
        return BURSAR_EINVAL;
    *out = NULL;
    if (!o || !o->endpoint || !*o->endpoint)
        return BURSAR_EINVAL;
    bursar_t *self = calloc(1, sizeof(*self));
    if (!self)
        abort();
    self->ctx = zmq_ctx_new();
    if (!self->ctx) {
        free(self);
        return BURSAR_EZMQ;
    }
    self->endpoint = xstrdup(o->endpoint);
    self->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 1000;
    self->attempts = o->attempts > 0 ? o->attempts : 1;
    self->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 500;
    self->backoff_max_ms = o->backoff_max_ms >= self->backoff_ms
                               ? o->backoff_max_ms
                               : self->backoff_ms;
    self->cur_backoff_ms = self->backoff_ms;
    self->fallback_model = xstrdup(o->fallback_model);
    if (o->spool_path && *o->spool_path) {
        self->spool_path = xstrdup(o->spool_path);
        size_t n = strlen(o->spool_path) + sizeof(".local");
        self->local_path = malloc(n);
        if (!self->local_path)
            abort();
        snprintf(self->local_path, n, "%s.local", o->spool_path);
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
    zmq_ctx_term(self->ctx);
    free(self->endpoint);
    free(self->fallback_model);
    free(self->spool_path);
    free(self->local_path);
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
    if (zmq_connect(self->sock, self->endpoint) != 0) {
        sock_close(self);
        return -1;
    }
    return 0;
}

/* One attempt: send req, wait up to timeout_ms. Returns 0 and *reply
 * (malloc'ed, NUL-terminated), or -1 on timeout / transport error. */
static int
rpc_once(bursar_t *self, const char *req, char **reply)
{
    if (sock_open(self) != 0)
        return -1;
    if (zmq_send(self->sock, req, strlen(req), ZMQ_DONTWAIT) < 0) {
        sock_close(self);
        return -1;
    }
    zmq_pollitem_t it = {self->sock, 0, ZMQ_POLLIN, 0};
    double deadline = autil_now_mono() + self->timeout_ms / 1000.0;
    for (;;) {
        double left = deadline - autil_now_mono();
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
        char *s = malloc(n + 1);
        if (!s)
            abort();
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
        return 0;
    }
    self->st.timeouts++;
    sock_close(self);
    return -1;
}

/* Sends req with retries. Returns BURSAR_OK and the parsed reply,
 * BURSAR_EUNREACHABLE, or BURSAR_EPROTO (reply not a JSON object). */
static int
rpc(bursar_t *self, const char *req, cJSON **out, char **raw)
{
    *out = NULL;
    double now = autil_now_mono();
    int tries = self->attempts;
    if (self->offline_until > 0) {
        if (now < self->offline_until)
            return BURSAR_EUNREACHABLE;
        tries = 1; /* a probe */
    }
    for (int i = 0; i < tries; i++) {
        char *reply = NULL;
        if (rpc_once(self, req, &reply) != 0)
            continue;
        self->offline_until = 0;
        self->cur_backoff_ms = self->backoff_ms;
        self->st.requests++;
        cJSON *j = cJSON_Parse(reply);
        if (raw)
            *raw = reply;
        else
            free(reply);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            return BURSAR_EPROTO;
        }
        *out = j;
        return BURSAR_OK;
    }
    self->offline_until = autil_now_mono() + self->cur_backoff_ms / 1000.0;
    self->cur_backoff_ms *= 2;
    if (self->cur_backoff_ms > self->backoff_max_ms)
        self->cur_backoff_ms = self->backoff_max_ms;
    return BURSAR_EUNREACHABLE;
}

/* Checks "ok"; on an error reply fills last_error and returns EREMOTE. */
static int
reply_check(bursar_t *self, const cJSON *j)
{
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(j, "ok");
    if (cJSON_IsTrue(ok)) {
        self->last_error[0] = '\0';
        return BURSAR_OK;
    }
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
    snprintf(self->last_error, sizeof(self->last_error), "%s: %s",
             cJSON_IsString(code) ? code->valuestring : "error",
             cJSON_IsString(msg) ? msg->valuestring : "(no message)");
    return cJSON_IsFalse(ok) ? BURSAR_EREMOTE : BURSAR_EPROTO;
}

/* Whether an error reply is the controller's own trouble (a failed
 * commit, a bug) rather than a verdict on the event: such feedback is kept
 * in the spool and sent again later, never dropped. */
static int
reply_transient(const cJSON *j)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
    if (!cJSON_IsString(code))
        return 1; /* not even an error object: not a verdict */
    return strcmp(code->valuestring, "store_error") == 0 ||
           strcmp(code->valuestring, "internal_error") == 0;
}

static void maybe_replay(bursar_t *self);

/* rpc + reply_check + replay of the spool once the controller answers. */
static int
call(bursar_t *self, const char *req, cJSON **out)
{
    int rc = rpc(self, req, out, NULL);
    if (rc != BURSAR_OK)
        return rc;
    rc = reply_check(self, *out);
    maybe_replay(self);
    return rc;
}

int
bursar_request(bursar_t *self, const char *json, char **reply)
{
    if (!self || !json || !reply)
        return BURSAR_EINVAL;
    *reply = NULL;
    cJSON *j = NULL;
    int rc = rpc(self, json, &j, reply);
    cJSON_Delete(j);
    if (rc == BURSAR_EPROTO)
        rc = BURSAR_OK; /* the raw text is what the caller asked for */
    return rc;
}

int
bursar_ping(bursar_t *self)
{
    if (!self)
        return BURSAR_EINVAL;
    cJSON *j = NULL;
    int rc = call(self, "{\"op\":\"ping\"}", &j);
    cJSON_Delete(j);
    return rc;
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

int
bursar_choose(bursar_t *self, const char *bucket, const char *const *exclude,
              size_t n_exclude, bursar_decision_t *d)
{
    if (!self || !bucket || !d || (n_exclude && !exclude))
        return BURSAR_EINVAL;
    memset(d, 0, sizeof(*d));
    bursar_copy_str(d->bucket, sizeof(d->bucket), bucket);

    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "op", "choose");
    cJSON_AddStringToObject(req, "bucket", bucket);
    if (n_exclude) {
        cJSON *ex = cJSON_AddArrayToObject(req, "exclude");
        for (size_t i = 0; i < n_exclude; i++)
            cJSON_AddItemToArray(ex, cJSON_CreateString(exclude[i]));
    }
    char *text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    cJSON *rep = NULL;
    int rc = call(self, text, &rep);
    free(text);

    if (rc == BURSAR_EUNREACHABLE) {
        if (!self->fallback_model ||
            excluded(self->fallback_model, exclude, n_exclude))
            return BURSAR_EUNREACHABLE;
        bursar_copy_str(d->model, sizeof(d->model), self->fallback_model);
        d->propensity = 1.0;
        d->local = 1;
        self->st.local_choices++;
        return BURSAR_LOCAL;
    }
    if (rc != BURSAR_OK) {
        cJSON_Delete(rep);
        return rc;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(rep, "decision_id");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(rep, "model");
    const cJSON *prop = cJSON_GetObjectItemCaseSensitive(rep, "propensity");
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(rep, "fallbacks");
    if (!cJSON_IsString(model) || !(cJSON_IsString(id) || cJSON_IsNumber(id))) {
        snprintf(self->last_error, sizeof(self->last_error),
                 "choose reply lacks decision_id or model");
        cJSON_Delete(rep);
        return BURSAR_EPROTO;
    }
    if (cJSON_IsString(id))
        bursar_copy_str(d->id, sizeof(d->id), id->valuestring);
    else
        snprintf(d->id, sizeof(d->id), "%.0f", id->valuedouble);
    bursar_copy_str(d->model, sizeof(d->model), model->valuestring);
    d->propensity = cJSON_IsNumber(prop) ? prop->valuedouble : 1.0;
    const cJSON *f;
    cJSON_ArrayForEach(f, fb)
    {
        if (d->n_fallbacks >= BURSAR_MAX_FALLBACKS)
            break;
        if (cJSON_IsString(f))
            bursar_copy_str(d->fallbacks[d->n_fallbacks++], BURSAR_NAME_MAX,
                           f->valuestring);
    }
    cJSON_Delete(rep);
    return BURSAR_OK;
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

static const char *
kind_name(bursar_fb_kind_t k)
{
    switch (k) {
    case BURSAR_FB_OUTCOME:
        return "outcome";
    case BURSAR_FB_CORRECTION:
        return "correction";
    case BURSAR_FB_PROVIDER_ERROR:
        return "provider_error";
    }
    return "outcome";
}

static cJSON *
feedback_json(const char *id, const bursar_feedback_t *fb)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "op", "feedback");
    cJSON_AddStringToObject(r, "decision_id", id);
    cJSON_AddStringToObject(r, "kind", kind_name(fb->kind));
    if (fb->kind == BURSAR_FB_OUTCOME) {
        if (fb->success >= 0)
            cJSON_AddBoolToObject(r, "success", fb->success != 0);
        else
            cJSON_AddNumberToObject(r, "reward", fb->reward);
    }
    if (fb->kind == BURSAR_FB_OUTCOME && fb->model && *fb->model)
        cJSON_AddStringToObject(r, "model", fb->model);
    if (fb->kind == BURSAR_FB_PROVIDER_ERROR)
        cJSON_AddStringToObject(r, "error", fb->error ? fb->error : "error");
    if (fb->kind != BURSAR_FB_CORRECTION) {
        if (fb->cost_usd >= 0)
            cJSON_AddNumberToObject(r, "cost_usd", fb->cost_usd);
        if (fb->tokens_in >= 0)
            cJSON_AddNumberToObject(r, "tokens_in", (double)fb->tokens_in);
        if (fb->tokens_out >= 0)
            cJSON_AddNumberToObject(r, "tokens_out", (double)fb->tokens_out);
        if (fb->latency_ms >= 0)
            cJSON_AddNumberToObject(r, "latency_ms", fb->latency_ms);
    }
    return r;
}

/* Appends one line to path under an exclusive flock, with one write(2),
 * and fsyncs before returning. */
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
    char *buf = malloc(n + 3);
    if (!buf)
        abort();
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
    free(buf);
    flock(fd, LOCK_UN);
    close(fd);
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

    if (d->local || !d->id[0]) {
        if (!self->local_path)
            return BURSAR_EUNREACHABLE;
        cJSON *line = cJSON_CreateObject();
        cJSON_AddBoolToObject(line, "local", 1);
        cJSON_AddStringToObject(line, "model", d->model);
        cJSON_AddStringToObject(line, "bucket", d->bucket);
        cJSON_AddNumberToObject(line, "time", (double)time(NULL));
        cJSON_AddItemToObject(line, "event", feedback_json("", fb));
        char *text = cJSON_PrintUnformatted(line);
        cJSON_Delete(line);
        int rc = append_line(self->local_path, text);
        free(text);
        if (rc != BURSAR_OK)
            return rc;
        self->st.spooled++;
        self->st.local_feedback++;
        return BURSAR_SPOOLED;
    }

    cJSON *req = feedback_json(d->id, fb);
    char *text = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    cJSON *rep = NULL;
    int rc = call(self, text, &rep);
    if (rc == BURSAR_OK &&
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rep, "duplicate")))
        self->st.duplicates++;
    int transient =
        (rc == BURSAR_EREMOTE || rc == BURSAR_EPROTO) && reply_transient(rep);
    cJSON_Delete(rep);
    if ((rc == BURSAR_EUNREACHABLE || transient) && self->spool_path) {
        rc = append_line(self->spool_path, text);
        if (rc == BURSAR_OK) {
            self->spool_pending = 1;
            self->st.spooled++;
            rc = BURSAR_SPOOLED;
        }
    }
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- replay */

static int
read_all(int fd, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        abort();
    if (lseek(fd, 0, SEEK_SET) < 0) {
        free(buf);
        return -1;
    }
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
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
    char *buf = NULL;
    size_t len = 0;
    int rc = BURSAR_OK;
    if (read_all(fd, &buf, &len) != 0) {
        rc = BURSAR_EIO;
        goto out;
    }
    self->in_replay = 1;
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break; /* a torn last line (crash mid-write): never acked */
        *nl = '\0';
        if (*line) {
            cJSON *rep = NULL;
            int r = rpc(self, line, &rep, NULL);
            if (r == BURSAR_EUNREACHABLE) {
                rc = BURSAR_EUNREACHABLE;
                break;
            }
            int v = r == BURSAR_OK ? reply_check(self, rep) : r;
            if (v != BURSAR_OK && (r != BURSAR_OK || reply_transient(rep))) {
                /* The controller's trouble, not a verdict on the event:
                 * keep the whole spool for a later replay (what was
                 * already sent is answered "duplicate" then). */
                cJSON_Delete(rep);
                rc = v;
                break;
            }
            if (v == BURSAR_OK) {
                self->st.replayed++;
                if (n_sent)
                    (*n_sent)++;
                if (cJSON_IsTrue(
                        cJSON_GetObjectItemCaseSensitive(rep, "duplicate")))
                    self->st.duplicates++;
            } else {
                self->st.replay_dropped++;
            }
            cJSON_Delete(rep);
        }
        line = nl + 1;
    }
    self->in_replay = 0;
    if (rc == BURSAR_OK) {
        /* Everything acknowledged: a crash before this truncation only
         * means a resend, which the controller answers "duplicate". */
        if (ftruncate(fd, 0) != 0 || fsync(fd) != 0)
            rc = BURSAR_EIO;
        else
            self->spool_pending = 0;
    }
out:
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

static void
model_from_json(bursar_model_t *m, const char *name, const cJSON *o)
{
    memset(m, 0, sizeof(*m));
    const cJSON *v;
    if (!name) {
        v = cJSON_GetObjectItemCaseSensitive(o, "name");
        name = cJSON_IsString(v) ? v->valuestring : "";
    }
    bursar_copy_str(m->name, sizeof(m->name), name);
    v = cJSON_GetObjectItemCaseSensitive(o, "provider");
    m->provider =
        (cJSON_IsString(v) && strcmp(v->valuestring, "anthropic") == 0)
            ? BURSAR_PROVIDER_ANTHROPIC
            : BURSAR_PROVIDER_OPENAI;
    v = cJSON_GetObjectItemCaseSensitive(o, "model");
    bursar_copy_str(m->model, sizeof(m->model),
                   cJSON_IsString(v) ? v->valuestring : name);
    v = cJSON_GetObjectItemCaseSensitive(o, "base_url");
    bursar_copy_str(m->base_url, sizeof(m->base_url),
                   cJSON_IsString(v) ? v->valuestring : "");
    v = cJSON_GetObjectItemCaseSensitive(o, "api_key_env");
    bursar_copy_str(m->api_key_env, sizeof(m->api_key_env),
                   cJSON_IsString(v) ? v->valuestring : "");
    v = cJSON_GetObjectItemCaseSensitive(o, "price_in_per_mtok");
    m->price_in_per_mtok = cJSON_IsNumber(v) ? v->valuedouble : 0;
    v = cJSON_GetObjectItemCaseSensitive(o, "price_out_per_mtok");
    m->price_out_per_mtok = cJSON_IsNumber(v) ? v->valuedouble : 0;
}

int
bursar_models(bursar_t *self, bursar_model_t **out, size_t *n)
{
    if (!self || !out || !n)
        return BURSAR_EINVAL;
    *out = NULL;
    *n = 0;
    cJSON *rep = NULL;
    int rc = call(self, "{\"op\":\"models\"}", &rep);
    if (rc != BURSAR_OK) {
        cJSON_Delete(rep);
        return rc;
    }
    /* "models" is an object keyed by name, or an array of objects with a
     * "name" field: both are read. */
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(rep, "models");
    if (!cJSON_IsObject(ms) && !cJSON_IsArray(ms)) {
        cJSON_Delete(rep);
        return BURSAR_EPROTO;
    }
    size_t cnt = (size_t)cJSON_GetArraySize(ms);
    bursar_model_t *arr = calloc(cnt ? cnt : 1, sizeof(*arr));
    if (!arr)
        abort();
    size_t i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, ms)
    {
        if (!cJSON_IsObject(m))
            continue;
        model_from_json(&arr[i++], cJSON_IsObject(ms) ? m->string : NULL, m);
    }
    cJSON_Delete(rep);
    *out = arr;
    *n = i;
    return BURSAR_OK;
}

void
bursar_models_free(bursar_model_t **models)
{
    if (models && *models) {
        free(*models);
        *models = NULL;
    }
}
