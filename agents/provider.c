/*
 * provider.c - provider calls over the curl multi interface (provider.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "agents/autil.h"
#include "agents/chat.h"
#include "agents/provider.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PROV_SPARE_EASY 4 /* curl handles a pool keeps for its next calls */

typedef struct job {
    struct job *next;
    bursar_model_t model;
    char *url;
    int plain_http; /* url is http to a loopback address */
    char *body;
    struct curl_slist *headers;
    CURL *easy;
    bursar_buf_t resp; /* the answer's body (not a stream's) */
    int running;       /* in the multi handle */
    double not_before; /* monotonic seconds */
    double started;    /* first attempt */
    long chars_in;     /* for the token estimate */
    int raw;           /* prov_pool_submit_call: the answer is not parsed */
    size_t (*on_stream)(void *ud, const char *p, size_t n);
    void *stream_ud;
    int status_known; /* this attempt's status was read (streams) */
    int stream_2xx;   /* ... and it is 2xx: bytes go to on_stream */
    int aborted;      /* on_stream asked to stop */
    double last_byte; /* streams: when the last byte came (monotonic) */
    prov_result_t r;
    prov_done_fn done;
    void *ud;
} job_t;

struct prov_pool {
    CURLM *multi;
    prov_opts_t o;
    job_t *jobs; /* every call not yet completed */
    size_t n_jobs;
    size_t n_running;
    unsigned rng;
    int watch_fd;                 /* prov_pool_watch, or -1 */
    CURL *spare[PROV_SPARE_EASY]; /* handles of finished calls, for reuse */
    size_t n_spare;
};

struct prov_share {
    CURLSH *sh;
    pthread_mutex_t lock[CURL_LOCK_DATA_LAST];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void
curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void
prov_opts_init(prov_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->timeout_ms = 60000;
    o->connect_timeout_ms = 5000;
    o->max_attempts = 3;
    o->backoff_ms = 250;
    o->backoff_max_ms = 8000;
    o->retry_after_max_ms = 30000;
    o->max_tokens = 1024;
    o->max_inflight = 8;
}

double
prov_cost(const bursar_model_t *m, long tokens_in, long tokens_out)
{
    return proto_price_cost(m->price_in_per_mtok, m->price_out_per_mtok,
                            (double)(tokens_in > 0 ? tokens_in : 0),
                            (double)(tokens_out > 0 ? tokens_out : 0));
}

/* ----------------------------------------------------- where keys go */

/* 127.0.0.0/8, ::1 (and ::ffff:127.x.y.z), localhost: host as curl's URL
 * parser gives it (an IPv6 address in brackets). */
static int
host_is_loopback(const char *host)
{
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    unsigned char a4[4];
    if (inet_pton(AF_INET, host, a4) == 1)
        return a4[0] == 127;
    char h[64];
    size_t n = strlen(host);
    if (n < 3 || host[0] != '[' || host[n - 1] != ']' || n - 2 >= sizeof h)
        return 0;
    memcpy(h, host + 1, n - 2);
    h[n - 2] = '\0';
    char *zone = strchr(h, '%');
    if (zone)
        *zone = '\0';
    struct in6_addr a6;
    if (inet_pton(AF_INET6, h, &a6) != 1)
        return 0;
    return IN6_IS_ADDR_LOOPBACK(&a6) ||
           (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
}

int
prov_url_check(const char *url, int *plain_http, char *why, size_t cap)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    int rc = BURSAR_EINVAL, http = 0;
    CURLUcode uc =
        u ? curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME)
          : CURLUE_OUT_OF_MEMORY;
    if (uc == CURLUE_OK)
        uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    if (uc == CURLUE_OK) {
        http = strcasecmp(scheme, "http") == 0;
        if (!http && strcasecmp(scheme, "https") != 0)
            snprintf(why, cap,
                     "the scheme must be https (or http to a loopback "
                     "address), got %.32s",
                     scheme);
        else if ((uc = curl_url_get(u, CURLUPART_HOST, &host, 0)) == CURLUE_OK)
            rc = 0;
    }
    if (uc != CURLUE_OK)
        snprintf(why, cap, "not an absolute URL (%s)", curl_url_strerror(uc));
    else if (rc == 0 && http && !host_is_loopback(host)) {
        snprintf(why, cap, "http is allowed only to a loopback address");
        rc = BURSAR_EINVAL;
    }
    if (plain_http)
        *plain_http = rc == 0 && http;
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

void
prov_default_endpoint(bursar_model_t *m)
{
    int a = m->provider == BURSAR_PROVIDER_ANTHROPIC;
    bursar_copy_str(m->base_url, sizeof m->base_url,
                    a ? PROTO_ANTHROPIC_URL : PROTO_OPENAI_URL);
    bursar_copy_str(m->api_key_env, sizeof m->api_key_env,
                    a ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY");
}

void
prov_result_clear(prov_result_t *r)
{
    if (r) {
        free(r->output);
        memset(r, 0, sizeof(*r));
    }
}

int
prov_pool_new(prov_pool_t **out, const prov_opts_t *o)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != 0)
        return -1;
    prov_pool_t *self = bursar_calloc(1, sizeof(*self));
    if (o)
        self->o = *o;
    else
        prov_opts_init(&self->o);
    if (self->o.max_inflight == 0)
        self->o.max_inflight = 1;
    if (self->o.max_attempts <= 0)
        self->o.max_attempts = 1;
    self->rng = self->o.seed ? self->o.seed : (unsigned)time(NULL);
    self->watch_fd = -1;
    self->multi = curl_multi_init();
    if (!self->multi) {
        free(self);
        return -1;
    }
    *out = self;
    return 0;
}

static void
job_free(prov_pool_t *self, job_t *j)
{
    if (j->easy) {
        if (j->running)
            curl_multi_remove_handle(self->multi, j->easy);
        if (self->n_spare < PROV_SPARE_EASY) { /* its buffers serve again */
            curl_easy_reset(j->easy);
            self->spare[self->n_spare++] = j->easy;
        } else {
            curl_easy_cleanup(j->easy);
        }
    }
    curl_slist_free_all(j->headers);
    free(j->url);
    free(j->body);
    free(j->resp.p);
    prov_result_clear(&j->r);
    free(j);
}

void
prov_pool_destroy(prov_pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    prov_pool_t *self = *self_p;
    for (job_t *j = self->jobs, *nx; j; j = nx) {
        nx = j->next;
        job_free(self, j);
    }
    while (self->n_spare)
        curl_easy_cleanup(self->spare[--self->n_spare]);
    curl_multi_cleanup(self->multi);
    free(self);
    *self_p = NULL;
}

size_t
prov_pool_pending(const prov_pool_t *self)
{
    return self->n_jobs;
}

/* ------------------------------------------------------- request bodies */

static char *
join_url(const char *base, const char *suffix)
{
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    size_t n = bl + strlen(suffix) + 1;
    char *u = bursar_malloc(n);
    memcpy(u, base, bl);
    strcpy(u + bl, suffix);
    return u;
}

static long
count_chars(const cJSON *messages)
{
    long n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(c))
            n += (long)strlen(c->valuestring);
    }
    return n;
}

/* The request body in the model's wire format (chat.h: system messages
 * go to Anthropic's "system", ...); NULL with why when the messages
 * cannot be translated. */
static char *
messages_body(const bursar_model_t *m, const cJSON *messages, int max_tokens,
              char *why, size_t cap)
{
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "model", m->model);
    cJSON_AddItemReferenceToObject(req, "messages", (cJSON *)messages);
    cJSON_AddNumberToObject(req, "max_tokens", max_tokens);
    char *s = chat_upstream_body(req, m, 0, max_tokens, why, cap);
    cJSON_Delete(req);
    return s;
}

/* ------------------------------------------------------------- transfers */

static size_t
on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    job_t *j = ud;
    size_t n = size * nmemb;
    if (j->on_stream)
        j->last_byte = autil_now_mono();
    if (j->on_stream && !j->status_known) {
        long st = 0;
        curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &st);
        j->status_known = 1;
        j->stream_2xx = st >= 200 && st < 300;
    }
    if (j->stream_2xx) {
        j->r.streamed = 1;
        size_t k = j->on_stream(j->stream_ud, p, n);
        if (k != n)
            j->aborted = 1;
        return k;
    }
    bursar_buf_add(&j->resp, p, n);
    return n;
}

/* The key goes where the URL says and nowhere else: one protocol (the
 * URL's, checked by prov_url_check), no redirect followed, and plain
 * http to loopback never through a proxy. */
static void
job_restrict(job_t *j)
{
    const char *proto = j->plain_http ? "http" : "https";
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: the _STR options */
    curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS_STR, proto);
    curl_easy_setopt(j->easy, CURLOPT_REDIR_PROTOCOLS_STR, proto);
#else
    long bits = j->plain_http ? CURLPROTO_HTTP : CURLPROTO_HTTPS;
    curl_easy_setopt(j->easy, CURLOPT_PROTOCOLS, bits);
    curl_easy_setopt(j->easy, CURLOPT_REDIR_PROTOCOLS, bits);
#endif
    (void)proto;
    curl_easy_setopt(j->easy, CURLOPT_FOLLOWLOCATION, 0L);
    if (j->plain_http)
        curl_easy_setopt(j->easy, CURLOPT_NOPROXY, "*");
}

static int
job_start(prov_pool_t *self, job_t *j)
{
    if (!j->easy) {
        j->easy =
            self->n_spare ? self->spare[--self->n_spare] : curl_easy_init();
        if (!j->easy)
            return -1;
        curl_easy_setopt(j->easy, CURLOPT_URL, j->url);
        curl_easy_setopt(j->easy, CURLOPT_POSTFIELDS, j->body);
        curl_easy_setopt(j->easy, CURLOPT_HTTPHEADER, j->headers);
        curl_easy_setopt(j->easy, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(j->easy, CURLOPT_WRITEDATA, j);
        curl_easy_setopt(j->easy, CURLOPT_PRIVATE, j);
        if (!j->on_stream) /* a stream may last: pool_check_stalls */
            curl_easy_setopt(j->easy, CURLOPT_TIMEOUT_MS, self->o.timeout_ms);
        if (self->o.share)
            curl_easy_setopt(j->easy, CURLOPT_SHARE, self->o.share->sh);
        curl_easy_setopt(j->easy, CURLOPT_CONNECTTIMEOUT_MS,
                         self->o.connect_timeout_ms);
        curl_easy_setopt(j->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(j->easy, CURLOPT_USERAGENT, "bursar-agent/0.1");
        job_restrict(j);
    }
    j->resp.len = 0;
    if (j->resp.p)
        j->resp.p[0] = '\0';
    j->status_known = j->stream_2xx = 0;
    j->last_byte = autil_now_mono();
    if (curl_multi_add_handle(self->multi, j->easy) != CURLM_OK)
        return -1;
    j->running = 1;
    j->r.attempts++;
    self->n_running++;
    return 0;
}

/* Fails job j before any request (completed on the next run). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void
job_fail_early(job_t *j, const char *kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    j->r.ok = 0;
    bursar_copy_str(j->r.error_kind, sizeof(j->r.error_kind), kind);
    vsnprintf(j->r.error, sizeof(j->r.error), fmt, ap);
    j->not_before = -1; /* marks "already failed" */
    va_end(ap);
}

/* The request's URL by the model's wire format. */
static void
job_url(job_t *j)
{
    const bursar_model_t *m = &j->model;
    if (m->provider == BURSAR_PROVIDER_ANTHROPIC) {
        /* {base_url}/v1/messages; a base URL that already ends in /v1
         * (as many configurations write it) is not doubled. */
        size_t bl = strlen(m->base_url);
        while (bl > 0 && m->base_url[bl - 1] == '/')
            bl--;
        int has_v1 = bl >= 3 && strncmp(m->base_url + bl - 3, "/v1", 3) == 0;
        j->url = join_url(m->base_url, has_v1 ? "/messages" : "/v1/messages");
    } else {
        j->url = join_url(m->base_url, "/chat/completions");
    }
}

/* The request's body by the model's wire format; messages that cannot be
 * translated fail the job before anything is sent. */
static void
job_body(prov_pool_t *self, job_t *j, const cJSON *messages)
{
    char why[256];
    j->body =
        messages_body(&j->model, messages, self->o.max_tokens, why, sizeof why);
    if (!j->body)
        job_fail_early(j, "malformed", "request: %.230s", why);
}

/* The headers, the key among them when there is one (key NULL: none). */
static void
job_headers(job_t *j, const char *key)
{
    char hdr[1024];
    j->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (j->model.provider == BURSAR_PROVIDER_ANTHROPIC) {
        j->headers =
            curl_slist_append(j->headers, "anthropic-version: 2023-06-01");
        if (key && *key) {
            snprintf(hdr, sizeof(hdr), "x-api-key: %s", key);
            j->headers = curl_slist_append(j->headers, hdr);
        }
    } else if (key && *key) {
        snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", key);
        j->headers = curl_slist_append(j->headers, hdr);
    }
    /* Expect: 100-continue would add a round trip for large bodies. */
    j->headers = curl_slist_append(j->headers, "Expect:");
    memset(hdr, 0, sizeof(hdr)); /* do not leave the key on the stack */
}

/* A new job of model m, its URL set. */
static job_t *
job_new(const bursar_model_t *m, prov_done_fn done, void *ud)
{
    job_t *j = bursar_calloc(1, sizeof(*j));
    j->model = *m;
    j->done = done;
    j->ud = ud;
    j->started = autil_now_mono();
    job_url(j);
    return j;
}

/* Checks j's URL and key, sets its headers and queues it. */
static void
job_queue(prov_pool_t *self, job_t *j)
{
    const bursar_model_t *m = &j->model;
    /* Defence in depth: the program checked the base URL already. */
    char why[160];
    const char *key = NULL;
    int failed = j->not_before < 0; /* job_body refused the messages */
    if (!failed &&
        prov_url_check(j->url, &j->plain_http, why, sizeof why) != 0) {
        job_fail_early(j, "refused_url", "base_url refused: %s", why);
    } else if (!failed && m->api_key_env[0]) {
        key = getenv(m->api_key_env);
        if (!key || !*key)
            job_fail_early(j, "no_key", "environment variable %s is not set",
                           m->api_key_env);
    }
    job_headers(j, j->not_before < 0 ? NULL : key);
    j->next = self->jobs;
    self->jobs = j;
    self->n_jobs++;
}

int
prov_pool_submit(prov_pool_t *self, const bursar_model_t *m,
                 const cJSON *messages, prov_done_fn done, void *ud)
{
    if (!self || !m || !cJSON_IsArray(messages) || !done)
        return -1;
    job_t *j = job_new(m, done, ud);
    j->chars_in = count_chars(messages);
    job_body(self, j, messages);
    job_queue(self, j);
    return 0;
}

int
prov_pool_submit_call(prov_pool_t *self, const bursar_model_t *m,
                      const prov_call_t *c, prov_done_fn done, void *ud)
{
    if (!self || !m || !c || !c->body || !done)
        return -1;
    job_t *j = job_new(m, done, ud);
    j->raw = 1;
    j->body = bursar_strdup(c->body);
    j->on_stream = c->on_stream;
    j->stream_ud = c->stream_ud;
    job_queue(self, j);
    return 0;
}

/* -------------------------------------------------------------- answers */

/* Provider error texts may quote the key, masked or not (OpenAI's 401:
 * "Incorrect API key provided: sk-abc...wxyz"): anything that looks like
 * a key is replaced before the text goes into a result or a report. */
static void
scrub_keys(char *s)
{
    for (char *p = s; *p; p++) {
        if (!(p[0] == 's' && p[1] == 'k' && (p[2] == '-' || p[2] == '_')))
            continue;
        char *e = p + 3;
        while (*e && *e != ' ' && *e != '"' && *e != ',' && *e != '\'')
            e++;
        if (e - p >= 8) {
            memcpy(p, "sk-***", 6);
            memmove(p + 6, e, strlen(e) + 1);
            p += 5;
        }
    }
}

static const char *
error_message(const cJSON *root)
{
    /* OpenAI {"error":{"message":..}}, Anthropic {"type":"error",
     * "error":{"type":..,"message":..}}, or {"error":"text"}. */
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsString(e))
        return e->valuestring;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    if (cJSON_IsString(m))
        return m->valuestring;
    return NULL;
}

/* Parses a 2xx body into j->r (chat_answer_parse reads both formats).
 * Returns 0, or -1 if malformed. */
static int
parse_ok(job_t *j)
{
    chat_answer_t a;
    char why[128];
    if (chat_answer_parse(j->model.provider, j->resp.p, j->resp.len,
                          j->model.name, &a, why, sizeof why) != 0)
        return -1;
    long tin = a.tokens_in, tout = a.tokens_out;
    char *text = a.text;
    a.text = NULL; /* taken */
    chat_answer_clear(&a);
    if (tin < 0) {
        /* No usage block: estimate ~4 characters per token. */
        j->r.usage_estimated = 1;
        tin = j->chars_in / 4 + 1;
        tout = (long)strlen(text) / 4 + 1;
    }
    j->r.ok = 1;
    j->r.output = text;
    j->r.tokens_in = tin;
    j->r.tokens_out = tout;
    j->r.cost_usd = prov_cost(&j->model, tin, tout);
    return 0;
}

static double
backoff_s(prov_pool_t *self, int attempt)
{
    double cap = self->o.backoff_max_ms / 1000.0;
    double b = self->o.backoff_ms / 1000.0;
    for (int i = 1; i < attempt && b < cap; i++)
        b *= 2;
    if (b > cap)
        b = cap;
    double u = (double)rand_r(&self->rng) / ((double)RAND_MAX + 1.0);
    return b * (0.5 + 0.5 * u);
}

/* A transfer finished: returns 1 if the job is complete, 0 if it was
 * rescheduled for a retry. */
static int
job_finish(prov_pool_t *self, job_t *j, CURLcode cc)
{
    long status = 0;
    curl_off_t ra = -1;
    curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(j->easy, CURLINFO_RETRY_AFTER, &ra);
    j->r.http_status = status;
    int retriable = 0;
    if (j->aborted) {
        bursar_copy_str(j->r.error_kind, sizeof(j->r.error_kind), "cancelled");
        snprintf(j->r.error, sizeof(j->r.error), "the stream was stopped");
        return 1;
    }
    if (cc != CURLE_OK) {
        retriable = !j->r.streamed; /* bytes passed on: no second try */
        if (cc == CURLE_OPERATION_TIMEDOUT) {
            bursar_copy_str(j->r.error_kind, sizeof(j->r.error_kind),
                            "timeout");
            snprintf(j->r.error, sizeof(j->r.error), "timeout after %ld ms",
                     self->o.timeout_ms);
        } else {
            bursar_copy_str(j->r.error_kind, sizeof(j->r.error_kind),
                            "transport");
            snprintf(j->r.error, sizeof(j->r.error), "%s",
                     cc == CURLE_PARTIAL_FILE || cc == CURLE_RECV_ERROR
                         ? "the provider closed the connection before the "
                           "end of its answer"
                         : curl_easy_strerror(cc));
        }
    } else if (status >= 200 && status < 300 && j->raw) {
        j->r.ok = 1;
        j->r.tokens_in = j->r.tokens_out = -1;
        if (!j->on_stream) {
            j->r.output = j->resp.p ? j->resp.p : bursar_strdup("");
            memset(&j->resp, 0, sizeof j->resp);
        }
        return 1;
    } else if (status >= 200 && status < 300) {
        if (parse_ok(j) == 0)
            return 1;
        bursar_copy_str(j->r.error_kind, sizeof(j->r.error_kind), "malformed");
        snprintf(j->r.error, sizeof(j->r.error),
                 "malformed response body (http %ld)", status);
        return 1;
    } else {
        cJSON *root = cJSON_Parse(j->resp.p ? j->resp.p : "");
        const char *msg = error_message(root);
        if (status == 429 || status >= 500) {
            retriable = 1;
            bursar_copy_str(j->r.error_kind, sizeof(j->r.error_kind),
                            status == 429 ? "rate_limited" : "server_error");
        } else {
            bursar_copy_str(j->r.error_kind, sizeof(j->r.error_kind),
                            "http_error");
        }
        snprintf(j->r.error, sizeof(j->r.error), "http %ld: %.200s", status,
                 msg ? msg : "(no error message)");
        scrub_keys(j->r.error);
        cJSON_Delete(root);
    }
    if (!retriable || j->r.attempts >= self->o.max_attempts)
        return 1;
    double wait = backoff_s(self, j->r.attempts);
    if (ra > 0) { /* curl reports 0 when there is no header */
        if ((double)ra * 1000.0 > self->o.retry_after_max_ms) {
            size_t n = strlen(j->r.error);
            snprintf(j->r.error + n, sizeof(j->r.error) - n,
                     " (Retry-After %lds is over the limit)", (long)ra);
            return 1;
        }
        /* Honour the server's wait; the jitter spreads the herd. */
        wait = (double)ra + wait * 0.1;
    }
    j->not_before = autil_now_mono() + wait;
    return 0;
}

static void
job_unlink(prov_pool_t *self, job_t *j)
{
    for (job_t **pp = &self->jobs; *pp; pp = &(*pp)->next)
        if (*pp == j) {
            *pp = j->next;
            self->n_jobs--;
            return;
        }
}

/* Moves the calls that failed before any request (no key, a refused URL)
 * to *done. */
static void
pool_take_failed(prov_pool_t *self, job_t **done)
{
    for (job_t *j = self->jobs, *nx; j; j = nx) {
        nx = j->next;
        if (j->not_before < 0) {
            job_unlink(self, j);
            j->next = *done;
            *done = j;
        }
    }
}

/* Starts what may start (at most max_inflight running). Returns the
 * earliest wake-up of a call waiting for its backoff, or next_wake. */
static double
pool_start_ready(prov_pool_t *self, double now, double next_wake)
{
    /* Oldest first would need a tail: the list is short and order among
     * ready calls does not matter. */
    for (job_t *j = self->jobs; j; j = j->next) {
        if (j->running)
            continue;
        if (j->not_before > now) {
            if (j->not_before < next_wake)
                next_wake = j->not_before;
            continue;
        }
        if (self->n_running >= self->o.max_inflight)
            continue;
        if (job_start(self, j) != 0) {
            bursar_copy_str(j->r.error_kind, sizeof(j->r.error_kind),
                            "transport");
            snprintf(j->r.error, sizeof(j->r.error),
                     "curl could not start the request");
            j->not_before = -1;
        }
    }
    return next_wake;
}

/* Lets curl move; completed calls (job_finish: no retry left) go to
 * *done. */
static void
pool_perform(prov_pool_t *self, job_t **done)
{
    int still = 0;
    curl_multi_perform(self->multi, &still);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(self->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        job_t *j = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        CURLcode cc = msg->data.result;
        curl_multi_remove_handle(self->multi, j->easy);
        j->running = 0;
        self->n_running--;
        if (job_finish(self, j, cc)) {
            job_unlink(self, j);
            j->next = *done;
            *done = j;
        }
    }
}

/* The watched socket is readable: its peer closed it (every call is
 * cancelled), or a request came (the watch ends). */
static void
pool_check_watch(prov_pool_t *self)
{
    char c;
    ssize_t n = recv(self->watch_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 ||
        (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        self->watch_fd = -1;
        prov_pool_cancel(self, "the client went away");
    } else if (n > 0) {
        self->watch_fd = -1;
    }
}

void
prov_pool_watch(prov_pool_t *self, int fd)
{
    self->watch_fd = fd;
}

void
prov_pool_cancel(prov_pool_t *self, const char *why)
{
    for (job_t *j = self->jobs; j; j = j->next) {
        if (j->running) {
            curl_multi_remove_handle(self->multi, j->easy);
            j->running = 0;
            self->n_running--;
        }
        job_fail_early(j, "cancelled", "%s", why ? why : "cancelled");
    }
}

/* Fails the streamed calls that got no byte for timeout_ms (moved to
 * *done): a stream has no whole-transfer timeout. */
static void
pool_check_stalls(prov_pool_t *self, double now, job_t **done)
{
    double limit = self->o.timeout_ms / 1000.0;
    for (job_t *j = self->jobs, *nx; j; j = nx) {
        nx = j->next;
        if (!j->running || !j->on_stream || now - j->last_byte < limit)
            continue;
        curl_multi_remove_handle(self->multi, j->easy);
        j->running = 0;
        self->n_running--;
        bursar_copy_str(j->r.error_kind, sizeof(j->r.error_kind), "timeout");
        snprintf(j->r.error, sizeof(j->r.error), "no byte for %ld ms",
                 self->o.timeout_ms);
        job_unlink(self, j);
        j->next = *done;
        *done = j;
    }
}

/* Waits until next_wake at the latest (a retry scheduled by job_finish
 * may wake earlier), on curl's sockets when calls are running. */
static void
pool_wait(prov_pool_t *self, double now, double next_wake)
{
    for (job_t *j = self->jobs; j; j = j->next)
        if (!j->running && j->not_before > 0 && j->not_before < next_wake)
            next_wake = j->not_before;
    double wait = next_wake - now;
    if (wait < 0)
        wait = 0;
    int ms = (int)(wait * 1000.0) + 1;
    if (self->watch_fd >= 0) {
        struct curl_waitfd w = {self->watch_fd, CURL_WAIT_POLLIN, 0};
        curl_multi_poll(self->multi, &w, 1, ms, NULL);
        if (w.revents)
            pool_check_watch(self);
    } else if (self->n_running > 0) {
        curl_multi_poll(self->multi, NULL, 0, ms, NULL);
    } else {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

size_t
prov_pool_run(prov_pool_t *self, int timeout_ms)
{
    double deadline =
        autil_now_mono() + (timeout_ms > 0 ? timeout_ms : 0) / 1e3;
    job_t *done = NULL;
    for (;;) {
        pool_take_failed(self, &done);
        double next_wake = pool_start_ready(self, autil_now_mono(), deadline);
        if (done)
            break;
        pool_perform(self, &done);
        pool_check_stalls(self, autil_now_mono(), &done);
        if (done || self->n_jobs == 0)
            break;
        double now = autil_now_mono();
        if (now >= deadline)
            break;
        pool_wait(self, now, next_wake);
    }
    /* Callbacks last: they may submit new calls. */
    while (done) {
        job_t *j = done;
        done = j->next;
        j->r.latency_ms = (autil_now_mono() - j->started) * 1000.0;
        j->done(j->ud, &j->model, &j->r);
        j->running = 0;
        job_free(self, j);
    }
    return self->n_jobs;
}

/* --------------------------------------------------- shared connections */

static void
share_lock(CURL *h, curl_lock_data data, curl_lock_access a, void *ud)
{
    (void)h;
    (void)a;
    prov_share_t *self = ud;
    pthread_mutex_lock(&self->lock[data]);
}

static void
share_unlock(CURL *h, curl_lock_data data, void *ud)
{
    (void)h;
    prov_share_t *self = ud;
    pthread_mutex_unlock(&self->lock[data]);
}

int
prov_share_new(prov_share_t **out)
{
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != 0)
        return -1;
    prov_share_t *self = bursar_calloc(1, sizeof(*self));
    self->sh = curl_share_init();
    if (!self->sh) {
        free(self);
        return -1;
    }
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&self->lock[i], NULL);
    curl_share_setopt(self->sh, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(self->sh, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(self->sh, CURLSHOPT_USERDATA, self);
    curl_share_setopt(self->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(self->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    *out = self;
    return 0;
}

void
prov_share_destroy(prov_share_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    prov_share_t *self = *self_p;
    curl_share_cleanup(self->sh);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&self->lock[i]);
    free(self);
    *self_p = NULL;
}

struct sync_ud {
    prov_result_t *r;
    int done;
};

static void
sync_done(void *ud, const bursar_model_t *m, prov_result_t *r)
{
    (void)m;
    struct sync_ud *s = ud;
    *s->r = *r;
    r->output = NULL; /* taken */
    s->done = 1;
}

int
prov_call(const prov_opts_t *o, const bursar_model_t *m, const cJSON *messages,
          prov_result_t *r)
{
    memset(r, 0, sizeof(*r));
    prov_pool_t *p;
    if (prov_pool_new(&p, o) != 0)
        return -1;
    struct sync_ud s = {r, 0};
    if (prov_pool_submit(p, m, messages, sync_done, &s) != 0) {
        prov_pool_destroy(&p);
        return -1;
    }
    while (!s.done)
        prov_pool_run(p, 1000);
    prov_pool_destroy(&p);
    return 0;
}
