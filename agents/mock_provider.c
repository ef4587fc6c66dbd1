/*
 * mock_provider.c - bursar-mock-provider: a scripted stand-in for LLM
 * providers, for tests and benchmarks. Speaks the OpenAI chat completions
 * and Anthropic Messages wire formats (success bodies with usage blocks,
 * streams of server-sent events as each provider sends them, error bodies
 * as each provider writes them) over HTTP/1.1 with keep-alive (bodies with
 * Content-Length, streams chunked), on 127.0.0.1 only.
 *
 *   bursar-mock-provider [--port N] [--script FILE] [--help] [--version]
 *
 * Prints the port it listens on (useful with --port 0, the default) as one
 * line on stdout, then serves until killed. One thread per connection.
 *
 * Endpoints:
 *   POST .../chat/completions   OpenAI format; "Authorization: Bearer K"
 *   POST .../v1/messages        Anthropic; "x-api-key: K" and
 *                               "anthropic-version" required
 *   GET  /stats                 {"total":n,"disconnects":n,"models":{M:
 *                                {"requests":n,"status":{"200":n,...},
 *                                 "streamed":n,"last_body":{...}}}}
 *   POST /script                replace the script (body = script JSON)
 *
 * Script (docs/agents.md):
 *   {"require_key":"K",                  optional: check the key
 *    "default":{RESPONSE},               for models not listed
 *    "models":{"NAME":{"sequence":[RESPONSE,...],   consumed in order,
 *                      "default":RESPONSE}}}        then repeated
 *   RESPONSE: {"status":200,"content":"text","echo":false,
 *              "usage":{"in":N,"out":M},"no_usage":false,
 *              "latency_ms":0,"retry_after":S,"hang":false,
 *              "malformed":false,"error_message":"...",
 *              "chunks":4,"chunk_ms":0,"stream_cut_after":K,
 *              "stall_after":K,"stall_ms":60000,
 *              "tool_calls":[{"name":"f","arguments":"{...}"}]}
 * Models are matched on the request body's "model". A request with
 * "stream": true is answered with a stream when its status is 200.
 * "tool_calls" (not streamed answers) makes the answer a call of tools:
 * OpenAI's message.tool_calls (ids call_mock_N_I, type "function",
 * arguments as given) with finish_reason "tool_calls" and content null,
 * Anthropic's tool_use blocks (ids toolu_mock_N_I, input the arguments
 * parsed) with stop_reason "tool_use"; a "content" (or "echo") set too
 * comes first as text. "stall_after" (streams) holds the stream for
 * "stall_ms" after K pieces, sending nothing: a provider that stalls.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "policies/base.h"

#define MOCK_MAX_HEADER (64 * 1024)
#define MOCK_MAX_BODY   (16 * 1024 * 1024)

static pthread_mutex_t mock_lock = PTHREAD_MUTEX_INITIALIZER;
static cJSON *mock_script; /* guarded by mock_lock */
static cJSON *mock_stats;  /* guarded by mock_lock */
static long mock_seq;

/* Counts a response the client left before it was finished. */
static void
mock_gone(void)
{
    pthread_mutex_lock(&mock_lock);
    cJSON *d = cJSON_GetObjectItemCaseSensitive(mock_stats, "disconnects");
    cJSON_SetNumberValue(d, d->valuedouble + 1);
    pthread_mutex_unlock(&mock_lock);
}

/* Waits ms milliseconds, watching the client: returns 0, or -1 as soon as
 * it has closed the connection (counted in "disconnects"). */
static int
mock_wait(int fd, long ms)
{
    if (ms <= 0)
        return 0;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = ms - ((now.tv_sec - t0.tv_sec) * 1000L +
                          (now.tv_nsec - t0.tv_nsec) / 1000000L);
        if (left <= 0)
            return 0;
        /* Not POLLIN: a request sent early is no reason to wake. */
        struct pollfd p = {fd, POLLRDHUP, 0};
        int r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            continue;
        if (r > 0)
            mock_gone(); /* POLLRDHUP, POLLHUP or POLLERR: the client left */
        return -1;
    }
}

static int
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static const char *
reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 529:
        return "Overloaded";
    default:
        return "Status";
    }
}

static int
send_response(int fd, int status, const char *body, long retry_after,
              int keep_alive)
{
    char head[512];
    size_t blen = strlen(body);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n",
                     status, reason(status), blen);
    if (retry_after >= 0)
        n += snprintf(head + n, sizeof(head) - (size_t)n,
                      "Retry-After: %ld\r\n", retry_after);
    n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: %s\r\n\r\n",
                  keep_alive ? "keep-alive" : "close");
    if (write_all(fd, head, (size_t)n) != 0)
        return -1;
    return write_all(fd, body, blen);
}

static void
sbuf_str(bursar_buf_t *b, const char *s)
{
    bursar_buf_add(b, s, strlen(s));
}

static void
sbuf_long(bursar_buf_t *b, long v)
{
    char t[32];
    bursar_buf_add(b, t, (size_t)snprintf(t, sizeof(t), "%ld", v));
}

/* n bytes of s as a JSON string, quotes included. */
static void
sbuf_json(bursar_buf_t *b, const char *s, size_t n)
{
    bursar_buf_add(b, "\"", 1);
    size_t run = 0; /* bytes copied as they are */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        bursar_buf_add(b, s + run, i - run);
        run = i + 1;
        char e[8];
        if (c == '"' || c == '\\')
            snprintf(e, sizeof(e), "\\%c", c);
        else if (c == '\n')
            snprintf(e, sizeof(e), "\\n");
        else
            snprintf(e, sizeof(e), "\\u%04x", c);
        sbuf_str(b, e);
    }
    bursar_buf_add(b, s + run, n - run);
    bursar_buf_add(b, "\"", 1);
}

/* ------------------------------------------------------------ bodies */

typedef enum { FMT_OPENAI, FMT_ANTHROPIC } fmt_t;

static char *
error_body(fmt_t fmt, int status, const char *message)
{
    cJSON *b = cJSON_CreateObject();
    if (fmt == FMT_ANTHROPIC) {
        const char *type = status == 429   ? "rate_limit_error"
                           : status == 401 ? "authentication_error"
                           : status == 404 ? "not_found_error"
                           : status == 529 ? "overloaded_error"
                           : status >= 500 ? "api_error"
                                           : "invalid_request_error";
        cJSON_AddStringToObject(b, "type", "error");
        cJSON *e = cJSON_AddObjectToObject(b, "error");
        cJSON_AddStringToObject(e, "type", type);
        cJSON_AddStringToObject(e, "message", message);
    } else {
        const char *type = status == 429   ? "requests"
                           : status >= 500 ? "server_error"
                                           : "invalid_request_error";
        const char *code = status == 429   ? "rate_limit_exceeded"
                           : status == 401 ? "invalid_api_key"
                           : status == 404 ? "model_not_found"
                                           : NULL;
        cJSON *e = cJSON_AddObjectToObject(b, "error");
        cJSON_AddStringToObject(e, "message", message);
        cJSON_AddStringToObject(e, "type", type);
        cJSON_AddNullToObject(e, "param");
        if (code)
            cJSON_AddStringToObject(e, "code", code);
        else
            cJSON_AddNullToObject(e, "code");
    }
    char *s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    return s;
}

static long
approx_tokens(const char *s)
{
    return (long)strlen(s) / 4 + 1;
}

/* The script's tool calls as Anthropic tool_use blocks appended to
 * content (input: the arguments parsed, {} when they are not a JSON
 * object). */
static void
an_tool_blocks(cJSON *content, const cJSON *calls, long seq)
{
    int i = 0;
    const cJSON *tc;
    cJSON_ArrayForEach(tc, calls)
    {
        char id[64];
        snprintf(id, sizeof(id), "toolu_mock_%ld_%d", seq, i++);
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(tc, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(tc, "arguments");
        cJSON *in = cJSON_IsString(args)   ? cJSON_Parse(args->valuestring)
                    : cJSON_IsObject(args) ? cJSON_Duplicate(args, 1)
                                           : NULL;
        if (!cJSON_IsObject(in)) {
            cJSON_Delete(in);
            in = cJSON_CreateObject();
        }
        cJSON *b = cJSON_CreateObject();
        cJSON_AddStringToObject(b, "type", "tool_use");
        cJSON_AddStringToObject(b, "id", id);
        cJSON_AddStringToObject(b, "name",
                                cJSON_IsString(nm) ? nm->valuestring : "tool");
        cJSON_AddItemToObject(b, "input", in);
        cJSON_AddItemToArray(content, b);
    }
}

/* The script's tool calls as OpenAI's message.tool_calls (arguments: the
 * script's string, or its object printed). */
static void
oa_tool_calls(cJSON *msg, const cJSON *calls, long seq)
{
    cJSON *arr = cJSON_AddArrayToObject(msg, "tool_calls");
    int i = 0;
    const cJSON *tc;
    cJSON_ArrayForEach(tc, calls)
    {
        char id[64];
        snprintf(id, sizeof(id), "call_mock_%ld_%d", seq, i++);
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(tc, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(tc, "arguments");
        char *printed =
            cJSON_IsString(args) || !args ? NULL : cJSON_PrintUnformatted(args);
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "id", id);
        cJSON_AddStringToObject(c, "type", "function");
        cJSON *f = cJSON_AddObjectToObject(c, "function");
        cJSON_AddStringToObject(f, "name",
                                cJSON_IsString(nm) ? nm->valuestring : "tool");
        cJSON_AddStringToObject(f, "arguments",
                                printed                ? printed
                                : cJSON_IsString(args) ? args->valuestring
                                                       : "{}");
        free(printed);
        cJSON_AddItemToArray(arr, c);
    }
}

/* What a scripted 200 answers: its text (NULL: none, a tool call only),
 * its tool calls (NULL: none), the tokens. */
typedef struct mock_ans {
    const char *content;
    const cJSON *tool_calls;
    long tin, tout;
    int no_usage;
} mock_ans_t;

static void
ok_body_anthropic(cJSON *b, const char *model, const mock_ans_t *a, long seq)
{
    char id[64];
    snprintf(id, sizeof(id), "msg_mock_%ld", seq);
    cJSON_AddStringToObject(b, "id", id);
    cJSON_AddStringToObject(b, "type", "message");
    cJSON_AddStringToObject(b, "role", "assistant");
    cJSON_AddStringToObject(b, "model", model);
    cJSON *c = cJSON_AddArrayToObject(b, "content");
    if (a->content) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "type", "text");
        cJSON_AddStringToObject(t, "text", a->content);
        cJSON_AddItemToArray(c, t);
    }
    if (a->tool_calls)
        an_tool_blocks(c, a->tool_calls, seq);
    cJSON_AddStringToObject(b, "stop_reason",
                            a->tool_calls ? "tool_use" : "end_turn");
    cJSON_AddNullToObject(b, "stop_sequence");
    if (!a->no_usage) {
        cJSON *u = cJSON_AddObjectToObject(b, "usage");
        cJSON_AddNumberToObject(u, "input_tokens", (double)a->tin);
        cJSON_AddNumberToObject(u, "output_tokens", (double)a->tout);
    }
}

static void
ok_body_openai(cJSON *b, const char *model, const mock_ans_t *a, long seq)
{
    char id[64];
    snprintf(id, sizeof(id), "chatcmpl-mock-%ld", seq);
    cJSON_AddStringToObject(b, "id", id);
    cJSON_AddStringToObject(b, "object", "chat.completion");
    cJSON_AddNumberToObject(b, "created", (double)time(NULL));
    cJSON_AddStringToObject(b, "model", model);
    cJSON *ch = cJSON_AddArrayToObject(b, "choices");
    cJSON *c0 = cJSON_CreateObject();
    cJSON_AddNumberToObject(c0, "index", 0);
    cJSON *m = cJSON_AddObjectToObject(c0, "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    if (a->content)
        cJSON_AddStringToObject(m, "content", a->content);
    else
        cJSON_AddNullToObject(m, "content");
    if (a->tool_calls)
        oa_tool_calls(m, a->tool_calls, seq);
    cJSON_AddStringToObject(c0, "finish_reason",
                            a->tool_calls ? "tool_calls" : "stop");
    cJSON_AddItemToArray(ch, c0);
    if (!a->no_usage) {
        cJSON *u = cJSON_AddObjectToObject(b, "usage");
        cJSON_AddNumberToObject(u, "prompt_tokens", (double)a->tin);
        cJSON_AddNumberToObject(u, "completion_tokens", (double)a->tout);
        cJSON_AddNumberToObject(u, "total_tokens", (double)(a->tin + a->tout));
    }
}

static char *
ok_body(fmt_t fmt, const char *model, const mock_ans_t *a, long seq)
{
    cJSON *b = cJSON_CreateObject();
    if (fmt == FMT_ANTHROPIC)
        ok_body_anthropic(b, model, a, seq);
    else
        ok_body_openai(b, model, a, seq);
    char *s = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    return s;
}

/* ---------------------------------------------------------- the script */

/* Picks the next response for model (a copy, caller deletes) and counts
 * the request. */
static cJSON *
script_next(const char *model, long *seq)
{
    pthread_mutex_lock(&mock_lock);
    *seq = ++mock_seq;
    cJSON *models = cJSON_GetObjectItemCaseSensitive(mock_script, "models");
    cJSON *m = cJSON_GetObjectItemCaseSensitive(models, model);
    cJSON *resp = NULL;
    if (m) {
        cJSON *sq = cJSON_GetObjectItemCaseSensitive(m, "sequence");
        if (cJSON_GetArraySize(sq) > 0) {
            resp = cJSON_DetachItemFromArray(sq, 0);
        } else {
            cJSON *d = cJSON_GetObjectItemCaseSensitive(m, "default");
            resp = d ? cJSON_Duplicate(d, 1) : NULL;
        }
    }
    if (!resp) {
        cJSON *d = cJSON_GetObjectItemCaseSensitive(mock_script, "default");
        resp = d ? cJSON_Duplicate(d, 1) : cJSON_CreateObject();
    }
    pthread_mutex_unlock(&mock_lock);
    return resp;
}

/* The counters of model, made on first use. Called with mock_lock. */
static cJSON *
stats_model(const char *model)
{
    cJSON *ms = cJSON_GetObjectItemCaseSensitive(mock_stats, "models");
    cJSON *m = cJSON_GetObjectItemCaseSensitive(ms, model);
    if (!m) {
        m = cJSON_AddObjectToObject(ms, model);
        cJSON_AddNumberToObject(m, "requests", 0);
        cJSON_AddObjectToObject(m, "status");
        cJSON_AddNumberToObject(m, "streamed", 0);
    }
    return m;
}

/* Counts a request answered with status (0: no status line was sent). */
static void
stats_count(const char *model, int status)
{
    char key[16];
    snprintf(key, sizeof(key), "%d", status);
    pthread_mutex_lock(&mock_lock);
    cJSON *m = stats_model(model);
    cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "requests");
    cJSON_SetNumberValue(r, r->valuedouble + 1);
    cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "status");
    cJSON *c = cJSON_GetObjectItemCaseSensitive(st, key);
    if (!c)
        cJSON_AddNumberToObject(st, key, 1);
    else
        cJSON_SetNumberValue(c, c->valuedouble + 1);
    cJSON *t = cJSON_GetObjectItemCaseSensitive(mock_stats, "total");
    cJSON_SetNumberValue(t, t->valuedouble + 1);
    pthread_mutex_unlock(&mock_lock);
}

/* Keeps a copy of a request body received for model ("last_body") and
 * counts it in "streamed" when it asks for a stream. */
static void
stats_received(const char *model, const cJSON *body)
{
    cJSON *copy = cJSON_Duplicate(body, 1);
    int streamed =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream"));
    pthread_mutex_lock(&mock_lock);
    cJSON *m = stats_model(model);
    if (streamed) {
        cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "streamed");
        cJSON_SetNumberValue(n, n->valuedouble + 1);
    }
    cJSON *old = cJSON_DetachItemFromObjectCaseSensitive(m, "last_body");
    cJSON_AddItemToObject(m, "last_body", copy);
    pthread_mutex_unlock(&mock_lock);
    cJSON_Delete(old);
}

static long
num_or(const cJSON *o, const char *k, long dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : dflt;
}

static int
flag(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* ------------------------------------------------------------- requests */

typedef struct req {
    char method[8];
    char path[512];
    char auth[512];
    char api_key[512];
    char version[64];
    int close;
    size_t content_length;
    char *body;
} req_t;

static void
header_value(const char *line, const char *name, char *dst, size_t cap)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return;
    const char *v = line + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    snprintf(dst, cap, "%s", v);
}

/* Reads one request. Returns 0, or -1 on EOF/error. buf keeps bytes
 * read past the request (pipelining) between calls. */
static int
read_request(int fd, char *buf, size_t *have, req_t *rq)
{
    memset(rq, 0, sizeof(*rq));
    char *end;
    for (;;) {
        buf[*have] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end)
            break;
        if (*have >= MOCK_MAX_HEADER)
            return -1;
        ssize_t r = recv(fd, buf + *have, MOCK_MAX_HEADER - *have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        *have += (size_t)r;
    }
    size_t head_len = (size_t)(end - buf) + 4;
    *end = '\0';
    char *save = NULL;
    char *line = strtok_r(buf, "\r\n", &save);
    if (!line || sscanf(line, "%7s %511s", rq->method, rq->path) != 2)
        return -1;
    char cl[32] = "", conn[32] = "";
    while ((line = strtok_r(NULL, "\r\n", &save))) {
        header_value(line, "Content-Length", cl, sizeof(cl));
        header_value(line, "Authorization", rq->auth, sizeof(rq->auth));
        header_value(line, "x-api-key", rq->api_key, sizeof(rq->api_key));
        header_value(line, "anthropic-version", rq->version,
                     sizeof(rq->version));
        header_value(line, "Connection", conn, sizeof(conn));
    }
    rq->close = strcasecmp(conn, "close") == 0;
    rq->content_length = (size_t)strtoul(cl, NULL, 10);
    if (rq->content_length > MOCK_MAX_BODY)
        return -1;
    rq->body = bursar_malloc(rq->content_length + 1);
    size_t extra = *have - head_len;
    size_t take = extra < rq->content_length ? extra : rq->content_length;
    memcpy(rq->body, buf + head_len, take);
    size_t got = take;
    while (got < rq->content_length) {
        ssize_t r = recv(fd, rq->body + got, rq->content_length - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(rq->body);
            rq->body = NULL;
            return -1;
        }
        got += (size_t)r;
    }
    rq->body[rq->content_length] = '\0';
    /* Keep what follows this request. */
    size_t rest = *have - head_len - take;
    memmove(buf, buf + head_len + take, rest);
    *have = rest;
    return 0;
}

static int
ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static const char *
last_user_content(const cJSON *body)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    const char *last = "";
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(c))
            last = c->valuestring;
    }
    return last;
}

static long
prompt_chars(const cJSON *body)
{
    long n = 0;
    const cJSON *sys = cJSON_GetObjectItemCaseSensitive(body, "system");
    if (cJSON_IsString(sys))
        n += (long)strlen(sys->valuestring);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(body, "messages");
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(c))
            n += (long)strlen(c->valuestring);
    }
    return n;
}

/* The request's own faults (400, 401) as an error body with *status, or
 * NULL when the script is to answer it. */
static char *
mock_reject(const req_t *rq, fmt_t fmt, const cJSON *body, const char *model,
            int *status)
{
    char want[512] = "";
    pthread_mutex_lock(&mock_lock);
    const cJSON *rk =
        cJSON_GetObjectItemCaseSensitive(mock_script, "require_key");
    if (cJSON_IsString(rk))
        snprintf(want, sizeof(want), "%s", rk->valuestring);
    pthread_mutex_unlock(&mock_lock);

    *status = 400;
    if (!cJSON_IsObject(body) || !*model ||
        !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(body, "messages")))
        return error_body(fmt, 400,
                          "request body must be JSON with model and messages");
    if (fmt == FMT_ANTHROPIC && !rq->version[0])
        return error_body(fmt, 400, "anthropic-version header is required");
    if (fmt == FMT_ANTHROPIC &&
        !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(body, "max_tokens")))
        return error_body(fmt, 400, "max_tokens: Field required");
    if (want[0] &&
        (fmt == FMT_ANTHROPIC ? strcmp(rq->api_key, want) != 0
                              : (strncmp(rq->auth, "Bearer ", 7) != 0 ||
                                 strcmp(rq->auth + 7, want) != 0))) {
        *status = 401;
        return error_body(fmt, 401,
                          fmt == FMT_ANTHROPIC ? "invalid x-api-key"
                                               : "Incorrect API key provided");
    }
    return NULL;
}

/* The body of a scripted response resp with its status (not 200, or a
 * malformed one): the error body each provider writes. */
static char *
mock_error_answer(const cJSON *resp, fmt_t fmt, int status)
{
    const cJSON *em = cJSON_GetObjectItemCaseSensitive(resp, "error_message");
    const char *msg = cJSON_IsString(em) ? em->valuestring
                      : status == 429    ? "Rate limit reached"
                      : status >= 500    ? "The server had an error"
                                         : "Bad request";
    return error_body(fmt, status, msg);
}

/* The text of a scripted 200: the content, the echo, or a default. */
static const char *
mock_content(const cJSON *resp, const cJSON *body)
{
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(resp, "content");
    return flag(resp, "echo")  ? last_user_content(body)
           : cJSON_IsString(c) ? c->valuestring
                               : "mock answer";
}

/* The tokens a scripted 200 reports: "usage" {in,out}, else about four
 * characters a token. */
static void
mock_tokens(const cJSON *resp, const cJSON *body, const char *content,
            long *tin, long *tout)
{
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(resp, "usage");
    *tin = num_or(u, "in", prompt_chars(body) / 4 + 1);
    *tout = num_or(u, "out", approx_tokens(content));
}

/* The body of a scripted 200: the content (or the echo), the tool calls
 * (then no text unless "content" or "echo" is set), the usage. */
static char *
mock_ok_answer(const cJSON *resp, const cJSON *body, const char *model,
               fmt_t fmt, long seq)
{
    mock_ans_t a = {.content = mock_content(resp, body)};
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(resp, "tool_calls");
    if (cJSON_IsArray(tc) && cJSON_GetArraySize(tc) > 0) {
        a.tool_calls = tc;
        if (!flag(resp, "echo") &&
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(resp, "content")))
            a.content = NULL;
    }
    mock_tokens(resp, body, a.content ? a.content : "", &a.tin, &a.tout);
    a.no_usage = flag(resp, "no_usage");
    return ok_body(fmt, model, &a, seq);
}

/* ------------------------------------------------------------- streams */

/* One streamed answer: its connection and what its events repeat. */
typedef struct mock_stream {
    int fd;
    fmt_t fmt;
    int keep;
    int head_sent;     /* the response head went out, with the first event */
    int include_usage; /* OpenAI: stream_options.include_usage */
    int usage;         /* usage reported (the script's no_usage unset) */
    long seq, created, tin, tout;
    const char *model;
    bursar_buf_t ev;  /* the event being written */
    bursar_buf_t out; /* it as one chunk on the wire (after the head) */
} mock_stream_t;

/* Sends the event in st->ev as one chunk, and the end of the body after
 * it when last, with one send(). Returns 0, or -1 when the client has gone
 * (counted). */
static int
stream_send(mock_stream_t *st, int last)
{
    bursar_buf_t *o = &st->out;
    o->len = 0;
    if (!st->head_sent) {
        sbuf_str(o, "HTTP/1.1 200 OK\r\n"
                    "Content-Type: text/event-stream\r\n"
                    "Cache-Control: no-cache\r\n"
                    "Transfer-Encoding: chunked\r\n");
        sbuf_str(o, st->keep ? "Connection: keep-alive\r\n\r\n"
                             : "Connection: close\r\n\r\n");
        st->head_sent = 1;
    }
    char size[32];
    bursar_buf_add(o, size,
                   (size_t)snprintf(size, sizeof(size), "%zx\r\n", st->ev.len));
    bursar_buf_add(o, st->ev.p, st->ev.len);
    sbuf_str(o, last ? "\r\n0\r\n\r\n" : "\r\n");
    st->ev.len = 0;
    if (write_all(st->fd, o->p, o->len) == 0)
        return 0;
    mock_gone();
    return -1;
}

/* An OpenAI chunk up to its "choices" value. */
static bursar_buf_t *
oa_head(mock_stream_t *st)
{
    bursar_buf_t *e = &st->ev;
    sbuf_str(e, "data: {\"id\":\"chatcmpl-mock-");
    sbuf_long(e, st->seq);
    sbuf_str(e, "\",\"object\":\"chat.completion.chunk\",\"created\":");
    sbuf_long(e, st->created);
    sbuf_str(e, ",\"model\":");
    sbuf_json(e, st->model, strlen(st->model));
    sbuf_str(e, ",\"system_fingerprint\":null,\"choices\":");
    return e;
}

/* An OpenAI chunk of choice 0: delta (JSON), or when delta is NULL the
 * content piece text[0..n); finish its finish_reason (NULL: null). */
static int
oa_chunk(mock_stream_t *st, const char *delta, const char *text, size_t n,
         const char *finish)
{
    bursar_buf_t *e = oa_head(st);
    sbuf_str(e, "[{\"index\":0,\"delta\":");
    if (delta) {
        sbuf_str(e, delta);
    } else {
        sbuf_str(e, "{\"content\":");
        sbuf_json(e, text, n);
        sbuf_str(e, "}");
    }
    sbuf_str(e, ",\"logprobs\":null,\"finish_reason\":");
    sbuf_str(e, finish ? finish : "null");
    sbuf_str(e, st->include_usage ? "}],\"usage\":null}\n\n" : "}]}\n\n");
    return stream_send(st, 0);
}

/* OpenAI's end: the finish, the usage when asked for, [DONE]. */
static int
oa_finish(mock_stream_t *st)
{
    if (oa_chunk(st, "{}", NULL, 0, "\"stop\"") != 0)
        return -1;
    if (st->include_usage && st->usage) {
        bursar_buf_t *e = oa_head(st);
        sbuf_str(e, "[],\"usage\":{\"prompt_tokens\":");
        sbuf_long(e, st->tin);
        sbuf_str(e, ",\"completion_tokens\":");
        sbuf_long(e, st->tout);
        sbuf_str(e, ",\"total_tokens\":");
        sbuf_long(e, st->tin + st->tout);
        sbuf_str(e, "}}\n\n");
        if (stream_send(st, 0) != 0)
            return -1;
    }
    sbuf_str(&st->ev, "data: [DONE]\n\n");
    return stream_send(st, 1);
}

/* An Anthropic event named name, up to its data's JSON. */
static bursar_buf_t *
an_event(mock_stream_t *st, const char *name)
{
    sbuf_str(&st->ev, "event: ");
    sbuf_str(&st->ev, name);
    sbuf_str(&st->ev, "\ndata: ");
    return &st->ev;
}

/* Anthropic's start: message_start, content_block_start, ping. */
static int
an_start(mock_stream_t *st)
{
    bursar_buf_t *e = an_event(st, "message_start");
    sbuf_str(e, "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_mock_");
    sbuf_long(e, st->seq);
    sbuf_str(e, "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    sbuf_json(e, st->model, strlen(st->model));
    sbuf_str(e, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null");
    if (st->usage) {
        sbuf_str(e, ",\"usage\":{\"input_tokens\":");
        sbuf_long(e, st->tin);
        sbuf_str(e, ",\"output_tokens\":1}");
    }
    sbuf_str(e, "}}\n\n");
    if (stream_send(st, 0) != 0)
        return -1;
    sbuf_str(an_event(st, "content_block_start"),
             "{\"type\":\"content_block_start\",\"index\":0,"
             "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
    if (stream_send(st, 0) != 0)
        return -1;
    sbuf_str(an_event(st, "ping"), "{\"type\":\"ping\"}\n\n");
    return stream_send(st, 0);
}

/* Anthropic's content piece text[0..n). */
static int
an_piece(mock_stream_t *st, const char *text, size_t n)
{
    bursar_buf_t *e = an_event(st, "content_block_delta");
    sbuf_str(e, "{\"type\":\"content_block_delta\",\"index\":0,"
                "\"delta\":{\"type\":\"text_delta\",\"text\":");
    sbuf_json(e, text, n);
    sbuf_str(e, "}}\n\n");
    return stream_send(st, 0);
}

/* Anthropic's end: content_block_stop, message_delta, message_stop. */
static int
an_finish(mock_stream_t *st)
{
    sbuf_str(an_event(st, "content_block_stop"),
             "{\"type\":\"content_block_stop\",\"index\":0}\n\n");
    if (stream_send(st, 0) != 0)
        return -1;
    bursar_buf_t *e = an_event(st, "message_delta");
    sbuf_str(e, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                "\"end_turn\",\"stop_sequence\":null}");
    if (st->usage) {
        sbuf_str(e, ",\"usage\":{\"output_tokens\":");
        sbuf_long(e, st->tout);
        sbuf_str(e, "}");
    }
    sbuf_str(e, "}\n\n");
    if (stream_send(st, 0) != 0)
        return -1;
    sbuf_str(an_event(st, "message_stop"), "{\"type\":\"message_stop\"}\n\n");
    return stream_send(st, 1);
}

/* Splits s into at most chunks (at least 1) pieces of about equal numbers
 * of characters (UTF-8 sequences kept whole), no more pieces than
 * characters. Piece i is s[(*offs)[i] .. (*offs)[i + 1]) (malloc'ed).
 * Returns the number of pieces. */
static size_t
mock_split(const char *s, long chunks, size_t **offs)
{
    size_t len = strlen(s), chars = 0;
    for (size_t i = 0; i < len; i++)
        chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    size_t n = chunks < 1 ? 1 : (size_t)chunks;
    if (n > chars)
        n = chars;
    size_t *o = bursar_malloc((n + 1) * sizeof(*o));
    size_t k = 0, c = 0; /* the next piece, the character at byte i */
    for (size_t i = 0; i < len && k < n; i++) {
        if (((unsigned char)s[i] & 0xC0) == 0x80)
            continue;
        if (c == k * chars / n) /* piece k starts at character c */
            o[k++] = i;
        c++;
    }
    o[n] = len;
    *offs = o;
    return n;
}

/* A stream with one event of truncated JSON (the script's malformed). */
static int
mock_stream_malformed(mock_stream_t *st)
{
    sbuf_str(&st->ev, st->fmt == FMT_ANTHROPIC
                          ? "event: message_start\ndata: {\"type\":"
                            "\"message_start\",\"message\":{\"id\":\n\n"
                          : "data: {\"id\":\"chatcmpl-mock\",\"choices\":"
                            "[{\"delta\n\n");
    return stream_send(st, 1);
}

/* Answers a scripted 200 to a request with "stream": true: the content in
 * "chunks" pieces, "chunk_ms" apart, held "stall_ms" after "stall_after"
 * of them, the stream cut (the connection closed) after
 * "stream_cut_after" of them. Returns -1 to close the connection. */
static int
mock_stream(int fd, const cJSON *resp, const cJSON *body, const char *model,
            fmt_t fmt, int keep, long seq)
{
    mock_stream_t st = {.fd = fd, .fmt = fmt, .keep = keep, .seq = seq};
    st.created = (long)time(NULL);
    st.model = model;
    st.usage = !flag(resp, "no_usage");
    st.include_usage =
        fmt == FMT_OPENAI &&
        flag(cJSON_GetObjectItemCaseSensitive(body, "stream_options"),
             "include_usage");
    int rc;
    if (flag(resp, "malformed")) {
        rc = mock_stream_malformed(&st);
    } else {
        const char *content = mock_content(resp, body);
        mock_tokens(resp, body, content, &st.tin, &st.tout);
        size_t *offs;
        size_t n = mock_split(content, num_or(resp, "chunks", 4), &offs);
        long cut = num_or(resp, "stream_cut_after", -1);
        long gap = num_or(resp, "chunk_ms", 0);
        long stall = num_or(resp, "stall_after", -1);
        rc = fmt == FMT_ANTHROPIC
                 ? an_start(&st)
                 : oa_chunk(&st, "{\"role\":\"assistant\",\"content\":\"\"}",
                            NULL, 0, NULL);
        for (size_t i = 0; rc == 0 && i < n && (cut < 0 || (long)i < cut);
             i++) {
            const char *p = content + offs[i];
            size_t len = offs[i + 1] - offs[i];
            rc = mock_wait(fd, gap);
            if (rc == 0)
                rc = fmt == FMT_ANTHROPIC ? an_piece(&st, p, len)
                                          : oa_chunk(&st, NULL, p, len, NULL);
            if (rc == 0 && (long)i + 1 == stall) /* an upstream that stalls */
                rc = mock_wait(fd, num_or(resp, "stall_ms", 60000));
        }
        if (rc == 0) /* cut: the end never comes */
            rc = cut >= 0               ? -1
                 : fmt == FMT_ANTHROPIC ? an_finish(&st)
                                        : oa_finish(&st);
        free(offs);
    }
    free(st.ev.p);
    free(st.out.p);
    return rc;
}

/* -------------------------------------------------------------- serving */

/* Answers with the script's next response for model: after latency_ms
 * (watching the client), a hang, a stream, or one body. Returns -1 to
 * close the connection. */
static int
mock_answer(int fd, const cJSON *body, const char *model, fmt_t fmt, int keep)
{
    long seq;
    cJSON *resp = script_next(model, &seq);
    int status = (int)num_or(resp, "status", 200), rc;
    if (mock_wait(fd, num_or(resp, "latency_ms", 0)) != 0) {
        stats_count(model, 0); /* the client left first */
        rc = -1;
    } else if (flag(resp, "hang")) {
        stats_count(model, 0);
        /* Hold the request until the client gives up (or hang_ms). */
        mock_wait(fd, num_or(resp, "hang_ms", 60000));
        rc = -1;
    } else if (status == 200 &&
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(body, "stream"))) {
        stats_count(model, 200);
        rc = mock_stream(fd, resp, body, model, fmt, keep, seq);
    } else {
        char *out = flag(resp, "malformed")
                        ? bursar_strdup("{\"id\":\"chatcmpl-mock\",\"choices\":"
                                        "[{\"mess")
                    : status != 200
                        ? mock_error_answer(resp, fmt, status)
                        : mock_ok_answer(resp, body, model, fmt, seq);
        stats_count(model, status);
        rc = send_response(fd, status, out, num_or(resp, "retry_after", -1),
                           keep);
        if (rc != 0)
            mock_gone();
        free(out);
    }
    cJSON_Delete(resp);
    return rc;
}

/* Serves one API request. Returns -1 to close the connection. */
static int
serve_api(int fd, const req_t *rq, fmt_t fmt, int keep)
{
    cJSON *body = cJSON_Parse(rq->body);
    const cJSON *mj = cJSON_GetObjectItemCaseSensitive(body, "model");
    const char *model = cJSON_IsString(mj) ? mj->valuestring : "";
    if (cJSON_IsObject(body))
        stats_received(model[0] ? model : "(none)", body);
    int status, rc;
    char *out = mock_reject(rq, fmt, body, model, &status);
    if (out) {
        stats_count(model[0] ? model : "(none)", status);
        rc = send_response(fd, status, out, -1, keep);
        free(out);
    } else {
        rc = mock_answer(fd, body, model, fmt, keep);
    }
    cJSON_Delete(body);
    return rc;
}

static void *
conn_main(void *arg)
{
    int fd = (int)(long)arg;
    char *buf = bursar_malloc(MOCK_MAX_HEADER + 1);
    size_t have = 0;
    req_t rq;
    while (read_request(fd, buf, &have, &rq) == 0) {
        int keep = !rq.close;
        int rc = 0;
        char path[512];
        snprintf(path, sizeof(path), "%s", rq.path);
        char *q = strchr(path, '?');
        if (q)
            *q = '\0';
        if (strcmp(rq.method, "GET") == 0 && strcmp(path, "/stats") == 0) {
            pthread_mutex_lock(&mock_lock);
            char *s = cJSON_PrintUnformatted(mock_stats);
            pthread_mutex_unlock(&mock_lock);
            rc = send_response(fd, 200, s, -1, keep);
            free(s);
        } else if (strcmp(rq.method, "POST") == 0 &&
                   strcmp(path, "/script") == 0) {
            cJSON *s = cJSON_Parse(rq.body);
            if (cJSON_IsObject(s)) {
                pthread_mutex_lock(&mock_lock);
                cJSON_Delete(mock_script);
                mock_script = s;
                pthread_mutex_unlock(&mock_lock);
                rc = send_response(fd, 200, "{\"ok\":true}", -1, keep);
            } else {
                cJSON_Delete(s);
                rc = send_response(fd, 400, "{\"ok\":false}", -1, keep);
            }
        } else if (strcmp(rq.method, "POST") == 0 &&
                   ends_with(path, "/chat/completions")) {
            rc = serve_api(fd, &rq, FMT_OPENAI, keep);
        } else if (strcmp(rq.method, "POST") == 0 &&
                   ends_with(path, "/v1/messages")) {
            rc = serve_api(fd, &rq, FMT_ANTHROPIC, keep);
        } else {
            char *e = error_body(FMT_OPENAI, 404, "unknown endpoint");
            rc = send_response(fd, 404, e, -1, keep);
            free(e);
        }
        free(rq.body);
        if (rc != 0 || !keep)
            break;
    }
    free(buf);
    close(fd);
    return NULL;
}

/* ---------------------------------------------------------------- main */

#ifndef BURSAR_VERSION /* the CMake project's version (agents/CMakeLists.txt)  \
                        */
#define BURSAR_VERSION "unknown"
#endif

static const char *mock_usage =
    "usage: bursar-mock-provider [--port N] [--script FILE]\n"
    "  --port N         TCP port on 127.0.0.1 (default 0: any free port;\n"
    "                   the port is printed on stdout)\n"
    "  --script FILE    the responses (docs/agents.md)\n"
    "  -h, --help       this text\n"
    "  --version        the version\n";

enum { MOCK_PORT = 256, MOCK_SCRIPT, MOCK_VERSION };

static const struct option mock_options[] = {
    {"port", required_argument, NULL, MOCK_PORT},
    {"script", required_argument, NULL, MOCK_SCRIPT},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, MOCK_VERSION},
    {NULL, 0, NULL, 0}};

/* A usage error naming what (argv's word). Returns the exit status. */
static int
mock_usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "bursar-mock-provider: %s %s\n%s", what, arg, mock_usage);
    return 2;
}

/* The options. Returns -1 to go on, or the exit status. */
static int
mock_parse(int argc, char **argv, int *port, const char **script)
{
    opterr = 0;
    int c;
    while ((c = bursar_getopt_long(argc, argv, ":h", mock_options, NULL)) !=
           -1) {
        char *end;
        long v;
        switch (c) {
        case MOCK_PORT:
            v = strtol(optarg, &end, 10);
            if (end == optarg || *end || v < 0 || v > 65535)
                return mock_usage_error("--port: not a port:", optarg);
            *port = (int)v;
            break;
        case MOCK_SCRIPT:
            *script = optarg;
            break;
        case 'h':
            fputs(mock_usage, stdout);
            return 0;
        case MOCK_VERSION:
            printf("bursar-mock-provider %s\n", BURSAR_VERSION);
            return 0;
        case ':':
            return mock_usage_error("a value is missing for", argv[optind - 1]);
        default:
            return mock_usage_error("unknown option or a value not taken:",
                                    argv[optind - 1]);
        }
    }
    if (optind < argc)
        return mock_usage_error("unexpected argument", argv[optind]);
    return -1;
}

/* The script (--script FILE, else empty) and the counters. */
static int
mock_load(const char *script_path)
{
    if (script_path) {
        char *s = NULL;
        if (bursar_read_file(script_path, &s, NULL) != 0) {
            fprintf(stderr, "bursar-mock-provider: cannot read script %s: %s\n",
                    script_path, strerror(errno));
            return 2;
        }
        mock_script = cJSON_Parse(s);
        free(s);
        if (!cJSON_IsObject(mock_script)) {
            fprintf(stderr,
                    "bursar-mock-provider: script %s: not a JSON object\n",
                    script_path);
            return 2;
        }
    } else {
        mock_script = cJSON_CreateObject();
    }
    mock_stats = cJSON_CreateObject();
    cJSON_AddNumberToObject(mock_stats, "total", 0);
    cJSON_AddNumberToObject(mock_stats, "disconnects", 0);
    cJSON_AddObjectToObject(mock_stats, "models");
    return -1;
}

/* A listening socket on 127.0.0.1:port; the port it got is printed.
 * Returns the socket, or -1. */
static int
mock_listen(int port)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(ls, 128) != 0) {
        perror("bursar-mock-provider: bind");
        return -1;
    }
    socklen_t al = sizeof(a);
    getsockname(ls, (struct sockaddr *)&a, &al);
    printf("%d\n", ntohs(a.sin_port));
    fflush(stdout);
    return ls;
}

int
main(int argc, char **argv)
{
    int port = 0;
    const char *script_path = NULL;
    int rc = mock_parse(argc, argv, &port, &script_path);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    if ((rc = mock_load(script_path)) >= 0)
        return rc;
    int ls = mock_listen(port), one = 1;
    if (ls < 0)
        return 1;
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            perror("bursar-mock-provider: accept");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, conn_main, (void *)(long)fd) != 0)
            close(fd);
        pthread_attr_destroy(&at);
    }
}
