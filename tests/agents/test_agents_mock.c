/*
 * test_agents_mock.c - bursar-mock-provider's streams, read off the wire by
 * a small HTTP client in this file (chunked framing decoded strictly, one
 * SSE event per chunk): OpenAI chat.completion.chunk streams with and
 * without stream_options.include_usage, Anthropic Messages event streams,
 * the content's pieces (count, UTF-8 kept whole, concatenation), keep-alive
 * after a stream, chunk_ms and latency_ms timing, stream_cut_after (no end
 * of stream, the connection closed), errors answered as JSON to a streaming
 * request, a malformed stream, and /stats: streamed, last_body,
 * disconnects (a client closing during hang, latency and a stream counted
 * within half a second; an idle keep-alive close not counted).
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/agents/util.h"

static const char *SCRIPT =
    "{\"models\":{"
    " \"s\":{\"default\":{\"content\":\"The quick brown fox jumps\","
    "\"usage\":{\"in\":100,\"out\":20}}},"
    " \"u8\":{\"default\":{\"content\":\"h\\u00e9llo w\\u00f6rld \\u2713 "
    "\\\"q\\\"\\n\"}},"
    " \"six\":{\"default\":{\"content\":\"abcdefghijkl\",\"chunks\":6}},"
    " \"few\":{\"default\":{\"content\":\"ab\",\"chunks\":5}},"
    " \"empty\":{\"default\":{\"content\":\"\"}},"
    " \"cut\":{\"default\":{\"content\":\"abcdefgh\",\"stream_cut_after\":2}},"
    " \"cut0\":{\"default\":{\"content\":\"abcdefgh\","
    "\"stream_cut_after\":0}},"
    " \"cutall\":{\"default\":{\"content\":\"abcdefgh\","
    "\"stream_cut_after\":9}},"
    " \"err\":{\"default\":{\"status\":429,\"error_message\":\"slow down\"}},"
    " \"slow\":{\"default\":{\"content\":\"abcd\",\"chunk_ms\":80}},"
    " \"lat\":{\"default\":{\"content\":\"abcd\",\"latency_ms\":150}},"
    " \"late\":{\"default\":{\"content\":\"x\",\"latency_ms\":20000}},"
    " \"hang\":{\"default\":{\"hang\":true,\"hang_ms\":20000}},"
    " \"drip\":{\"default\":{\"content\":\"abcdefgh\",\"chunks\":8,"
    "\"chunk_ms\":3000}},"
    " \"bad\":{\"default\":{\"malformed\":true}}"
    "}}";

/* "héllo wörld ✓ "q"\n" as the script's JSON says it */
static const char *U8_TEXT = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \"q\"\n";

static int port;
static pid_t mock;

static int
setup(void **state)
{
    (void)state;
    mock = tu_mock_start(SCRIPT, &port);
    return port > 0 ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    tu_kill(mock, 15);
    return 0;
}

/* ------------------------------------------------------ an HTTP client */

typedef struct conn {
    int fd;
    char buf[1 << 16];
    size_t have;
} conn_t;

static conn_t *
conn_open(void)
{
    conn_t *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return c;
}

static void
conn_close(conn_t **c)
{
    close((*c)->fd);
    free(*c);
    *c = NULL;
}

/* Reads more (5 s at most). Returns the bytes read, 0 at EOF. */
static size_t
conn_fill(conn_t *c)
{
    assert_true(c->have < sizeof(c->buf));
    struct pollfd p = {c->fd, POLLIN, 0};
    if (poll(&p, 1, 5000) != 1)
        fail_msg("no answer from the mock within 5 s");
    ssize_t r = recv(c->fd, c->buf + c->have, sizeof(c->buf) - c->have, 0);
    if (r < 0 && errno == ECONNRESET)
        r = 0;
    assert_true(r >= 0);
    c->have += (size_t)r;
    return (size_t)r;
}

/* Takes n bytes into dst (NULL: dropped). Returns 0, or -1 at EOF. */
static int
conn_take(conn_t *c, char *dst, size_t n)
{
    while (c->have < n)
        if (conn_fill(c) == 0)
            return -1;
    if (dst)
        memcpy(dst, c->buf, n);
    memmove(c->buf, c->buf + n, c->have - n);
    c->have -= n;
    return 0;
}

/* The next line without its CRLF into dst. Returns 0, or -1 at EOF. */
static int
conn_line(conn_t *c, char *dst, size_t cap)
{
    char *eol;
    while (!(eol = memmem(c->buf, c->have, "\r\n", 2)))
        if (conn_fill(c) == 0)
            return -1;
    size_t n = (size_t)(eol - c->buf);
    assert_true(n < cap);
    conn_take(c, dst, n);
    dst[n] = '\0';
    return conn_take(c, NULL, 2);
}

static void
http_send(conn_t *c, const char *method, const char *path, const char *headers,
          const char *body)
{
    char *req = malloc(strlen(body) + 1024);
    int n = sprintf(req,
                    "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/json\r\n%s"
                    "Content-Length: %zu\r\n\r\n%s",
                    method, path, headers, strlen(body), body);
    assert_int_equal(send(c->fd, req, (size_t)n, MSG_NOSIGNAL), n);
    free(req);
}

typedef struct resp {
    int status;
    char ctype[128], te[64];
    long clen;  /* Content-Length, -1: none */
    char *body; /* the chunks' data put together, or the body */
    size_t len;
    int chunks;   /* data chunks (chunked) */
    int whole;    /* every chunk is whole SSE events (ends with "\n\n") */
    int complete; /* the body ended as its framing says, not at EOF */
} resp_t;

static void
header(const char *line, const char *name, char *dst, size_t cap)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) == 0 && line[n] == ':')
        snprintf(dst, cap, "%s", line + n + 2);
}

/* The status line and headers. */
static void
http_head(conn_t *c, resp_t *r)
{
    memset(r, 0, sizeof(*r));
    char line[1024], cl[32] = "";
    assert_int_equal(conn_line(c, line, sizeof(line)), 0);
    assert_int_equal(sscanf(line, "HTTP/1.1 %d", &r->status), 1);
    while (conn_line(c, line, sizeof(line)) == 0 && line[0]) {
        header(line, "Content-Type", r->ctype, sizeof(r->ctype));
        header(line, "Transfer-Encoding", r->te, sizeof(r->te));
        header(line, "Content-Length", cl, sizeof(cl));
    }
    r->clen = cl[0] ? atol(cl) : -1;
    r->body = calloc(1, 1);
}

static void
body_add(resp_t *r, const char *p, size_t n)
{
    r->body = realloc(r->body, r->len + n + 1);
    memcpy(r->body + r->len, p, n);
    r->len += n;
    r->body[r->len] = '\0';
}

/* A chunked body, strictly: hex size CRLF data CRLF ... 0 CRLF CRLF. */
static void
http_chunked(conn_t *c, resp_t *r)
{
    char line[64];
    r->whole = 1;
    while (conn_line(c, line, sizeof(line)) == 0) {
        char *end;
        unsigned long n = strtoul(line, &end, 16);
        if (end == line || *end)
            fail_msg("bad chunk size line \"%s\"", line);
        if (n == 0) {
            r->complete = conn_line(c, line, sizeof(line)) == 0 && !line[0];
            assert_true(r->complete); /* no trailers, CRLF */
            return;
        }
        char *data = malloc(n);
        char crlf[2];
        if (conn_take(c, data, n) != 0) {
            free(data);
            return;
        }
        body_add(r, data, n);
        r->whole = r->whole && n >= 2 && memcmp(data + n - 2, "\n\n", 2) == 0;
        free(data);
        r->chunks++;
        if (conn_take(c, crlf, 2) != 0)
            return;
        assert_memory_equal(crlf, "\r\n", 2);
    }
}

/* The body after http_head: Content-Length or chunked. */
static void
http_body(conn_t *c, resp_t *r)
{
    if (strcasecmp(r->te, "chunked") == 0) {
        http_chunked(c, r);
        return;
    }
    assert_true(r->clen >= 0);
    char *data = malloc((size_t)r->clen + 1);
    r->complete = conn_take(c, data, (size_t)r->clen) == 0;
    body_add(r, data, (size_t)r->clen);
    free(data);
}

static void
resp_clear(resp_t *r)
{
    free(r->body);
    r->body = NULL;
}

/* A request to model with "stream": true and extra (JSON members, "" for
 * none) on c, answered into r. */
static void
ask(conn_t *c, int anthropic, const char *model, const char *extra, resp_t *r)
{
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"model\":\"%s\",\"max_tokens\":16,\"messages\":[{\"role\":"
             "\"user\",\"content\":\"hi\"}],\"stream\":true%s}",
             model, extra);
    if (anthropic)
        http_send(c, "POST", "/v1/messages",
                  "x-api-key: k\r\nanthropic-version: 2023-06-01\r\n", body);
    else
        http_send(c, "POST", "/v1/chat/completions",
                  "Authorization: Bearer k\r\n", body);
    http_head(c, r);
    http_body(c, r);
}

/* ------------------------------------------------------------ the mock */

static cJSON *
stats(void)
{
    conn_t *c = conn_open();
    http_send(c, "GET", "/stats", "", "");
    resp_t r;
    http_head(c, &r);
    http_body(c, &r);
    conn_close(&c);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    resp_clear(&r);
    assert_true(cJSON_IsObject(j));
    return j;
}

static int
disconnects(void)
{
    cJSON *j = stats();
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "disconnects");
    assert_true(cJSON_IsNumber(d));
    int n = (int)d->valuedouble;
    cJSON_Delete(j);
    return n;
}

/* stats' models.model.key (a copy), NULL when absent. */
static cJSON *
model_stat(const char *model, const char *key)
{
    cJSON *j = stats();
    cJSON *m = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "models"), model);
    cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    v = v ? cJSON_Duplicate(v, 1) : NULL;
    cJSON_Delete(j);
    return v;
}

/* Waits (2 s at most) until disconnects reaches want; returns the time
 * it took. */
static double
wait_disconnects(int want)
{
    double t0 = tu_now();
    while (disconnects() < want && tu_now() - t0 < 2.0)
        tu_sleep_ms(10);
    double dt = tu_now() - t0;
    assert_int_equal(disconnects(), want);
    return dt;
}

/* ------------------------------------------------------ server-sent events */

#define EV_MAX 64

typedef struct events {
    int n;
    char *name[EV_MAX]; /* "event:" ("" without) */
    char *data[EV_MAX];
    cJSON *json[EV_MAX]; /* data parsed, NULL when it is not JSON */
} events_t;

/* Splits body into events, each "event: NAME\ndata: DATA\n\n" (named) or
 * "data: DATA\n\n"; anything else fails the test. */
static void
events_parse(const char *body, int named, events_t *e)
{
    memset(e, 0, sizeof(*e));
    const char *p = body;
    while (*p) {
        const char *end = strstr(p, "\n\n");
        if (!end)
            fail_msg("an event not ended by a blank line: %s", p);
        assert_true(e->n < EV_MAX);
        char *ev = strndup(p, (size_t)(end - p));
        char *data = ev;
        if (named) {
            char *nl = strchr(ev, '\n');
            if (strncmp(ev, "event: ", 7) != 0 || !nl)
                fail_msg("no event: line in %s", ev);
            *nl = '\0';
            e->name[e->n] = strdup(ev + 7);
            data = nl + 1;
        } else {
            e->name[e->n] = strdup("");
        }
        if (strncmp(data, "data: ", 6) != 0 || strchr(data, '\n'))
            fail_msg("not one data: line: %s", data);
        e->data[e->n] = strdup(data + 6);
        e->json[e->n] = cJSON_Parse(data + 6);
        e->n++;
        free(ev);
        p = end + 2;
    }
}

static void
events_clear(events_t *e)
{
    for (int i = 0; i < e->n; i++) {
        free(e->name[i]);
        free(e->data[i]);
        cJSON_Delete(e->json[i]);
    }
    e->n = 0;
}

static const cJSON *
jget(const cJSON *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); k && o;
         k = strtok_r(NULL, ".", &save))
        o = cJSON_IsArray(o) ? cJSON_GetArrayItem(o, atoi(k))
                             : cJSON_GetObjectItemCaseSensitive(o, k);
    return o;
}

static const char *
jstr(const cJSON *o, const char *path)
{
    const cJSON *v = jget(o, path);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static long
jnum(const cJSON *o, const char *path)
{
    const cJSON *v = jget(o, path);
    assert_true(cJSON_IsNumber(v));
    return (long)v->valuedouble;
}

/* A stream's framing: 200, text/event-stream, chunked, one event a chunk,
 * ended (complete) or cut. */
static void
check_framing(const resp_t *r, int complete)
{
    assert_int_equal(r->status, 200);
    assert_string_equal(r->ctype, "text/event-stream");
    assert_string_equal(r->te, "chunked");
    assert_int_equal(r->clen, -1);
    assert_int_equal(r->complete, complete);
    assert_true(r->whole);
}

/* ---------------------------------------------------------------- OpenAI */

/* Checks an OpenAI stream of model: the role chunk and the finish chunk
 * exactly as OpenAI writes them, the pieces (their count and text into
 * text), the usage chunk when include_usage (tin, tout), [DONE]. With
 * complete unset the stream was cut: no finish, no [DONE]. */
static void
check_openai(const resp_t *r, const char *model, int include_usage, int pieces,
             char *text, long tin, long tout, int complete)
{
    check_framing(r, complete);
    events_t e;
    events_parse(r->body, 0, &e);
    assert_int_equal(r->chunks, e.n);
    int want = 1 + pieces + (complete ? 2 + include_usage : 0);
    assert_int_equal(e.n, want);
    const char *id = jstr(e.json[0], "id");
    long created = jnum(e.json[0], "created");
    assert_int_equal(strncmp(id, "chatcmpl-mock-", 14), 0);
    const char *u = include_usage ? ",\"usage\":null" : "";
    char head[512], exp[1024];
    snprintf(head, sizeof(head),
             "{\"id\":\"%s\",\"object\":\"chat.completion.chunk\","
             "\"created\":%ld,\"model\":\"%s\",\"system_fingerprint\":null,",
             id, created, model);
    snprintf(exp, sizeof(exp),
             "%s\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
             "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]%s}",
             head, u);
    assert_string_equal(e.data[0], exp);
    text[0] = '\0';
    for (int i = 1; i <= pieces; i++) {
        /* the same chunk with only the piece in the delta */
        assert_non_null(e.json[i]);
        assert_string_equal(jstr(e.json[i], "id"), id);
        assert_int_equal(jnum(e.json[i], "created"), created);
        const cJSON *d = jget(e.json[i], "choices.0.delta");
        assert_int_equal(cJSON_GetArraySize(d), 1);
        assert_true(cJSON_IsNull(jget(e.json[i], "choices.0.finish_reason")));
        assert_int_equal(include_usage, cJSON_IsNull(jget(e.json[i], "usage")));
        strcat(text, jstr(d, "content"));
    }
    if (complete) {
        snprintf(exp, sizeof(exp),
                 "%s\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                 "\"finish_reason\":\"stop\"}]%s}",
                 head, u);
        assert_string_equal(e.data[pieces + 1], exp);
        if (include_usage) {
            snprintf(exp, sizeof(exp),
                     "%s\"choices\":[],\"usage\":{\"prompt_tokens\":%ld,"
                     "\"completion_tokens\":%ld,\"total_tokens\":%ld}}",
                     head, tin, tout, tin + tout);
            assert_string_equal(e.data[pieces + 2], exp);
        }
        assert_string_equal(e.data[e.n - 1], "[DONE]");
    }
    for (int i = 0; i < e.n - (complete ? 1 : 0); i++)
        assert_non_null(e.json[i]);
    events_clear(&e);
}

static void
test_openai_stream(void **state)
{
    (void)state;
    int d0 = disconnects();
    conn_t *c = conn_open();
    resp_t r;
    char text[256];
    ask(c, 0, "s", "", &r);
    check_openai(&r, "s", 0, 4, text, 100, 20, 1);
    assert_string_equal(text, "The quick brown fox jumps");
    resp_clear(&r);
    /* the same connection: keep-alive after a stream */
    ask(c, 0, "s", ",\"stream_options\":{\"include_usage\":true}", &r);
    check_openai(&r, "s", 1, 4, text, 100, 20, 1);
    assert_string_equal(text, "The quick brown fox jumps");
    resp_clear(&r);
    /* include_usage false: no usage chunk */
    ask(c, 0, "s", ",\"stream_options\":{\"include_usage\":false}", &r);
    check_openai(&r, "s", 0, 4, text, 100, 20, 1);
    resp_clear(&r);
    /* "stream": false is one JSON body */
    http_send(c, "POST", "/v1/chat/completions", "",
              "{\"model\":\"s\",\"messages\":[],\"stream\":false}");
    http_head(c, &r);
    http_body(c, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "application/json");
    assert_true(r.complete);
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(jstr(j, "choices.0.message.content"),
                        "The quick brown fox jumps");
    assert_int_equal(jnum(j, "usage.total_tokens"), 120);
    cJSON_Delete(j);
    resp_clear(&r);
    /* an idle keep-alive connection closed is no disconnect */
    conn_close(&c);
    tu_sleep_ms(150);
    assert_int_equal(disconnects(), d0);
}

/* ------------------------------------------------------------- Anthropic */

static const char *AN_NAMES[] = {"message_start", "content_block_start",
                                 "ping"};

/* Checks an Anthropic stream of model as check_openai does. */
static void
check_anthropic(const resp_t *r, const char *model, int pieces, char *text,
                long tin, long tout, int complete)
{
    check_framing(r, complete);
    events_t e;
    events_parse(r->body, 1, &e);
    assert_int_equal(r->chunks, e.n);
    assert_int_equal(e.n, 3 + pieces + (complete ? 3 : 0));
    for (int i = 0; i < e.n; i++) {
        const char *want = i < 3                 ? AN_NAMES[i]
                           : i < 3 + pieces      ? "content_block_delta"
                           : i == 3 + pieces     ? "content_block_stop"
                           : i == 3 + pieces + 1 ? "message_delta"
                                                 : "message_stop";
        assert_string_equal(e.name[i], want);
        assert_non_null(e.json[i]);
        assert_string_equal(jstr(e.json[i], "type"), want);
    }
    const cJSON *m = jget(e.json[0], "message");
    assert_int_equal(strncmp(jstr(m, "id"), "msg_mock_", 9), 0);
    assert_string_equal(jstr(m, "type"), "message");
    assert_string_equal(jstr(m, "role"), "assistant");
    assert_string_equal(jstr(m, "model"), model);
    assert_true(cJSON_IsArray(jget(m, "content")));
    assert_int_equal(cJSON_GetArraySize(jget(m, "content")), 0);
    assert_true(cJSON_IsNull(jget(m, "stop_reason")));
    assert_int_equal(jnum(m, "usage.input_tokens"), tin);
    assert_int_equal(jnum(m, "usage.output_tokens"), 1);
    assert_string_equal(e.data[1],
                        "{\"type\":\"content_block_start\",\"index\":0,"
                        "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
    assert_string_equal(e.data[2], "{\"type\":\"ping\"}");
    text[0] = '\0';
    for (int i = 3; i < 3 + pieces; i++) {
        assert_int_equal(jnum(e.json[i], "index"), 0);
        assert_string_equal(jstr(e.json[i], "delta.type"), "text_delta");
        strcat(text, jstr(e.json[i], "delta.text"));
    }
    if (complete) {
        char exp[256];
        assert_string_equal(e.data[3 + pieces],
                            "{\"type\":\"content_block_stop\",\"index\":0}");
        snprintf(exp, sizeof(exp),
                 "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                 "\"end_turn\",\"stop_sequence\":null},\"usage\":{"
                 "\"output_tokens\":%ld}}",
                 tout);
        assert_string_equal(e.data[4 + pieces], exp);
        assert_string_equal(e.data[5 + pieces], "{\"type\":\"message_stop\"}");
    }
    events_clear(&e);
}

static void
test_anthropic_stream(void **state)
{
    (void)state;
    conn_t *c = conn_open();
    resp_t r;
    char text[256];
    ask(c, 1, "s", "", &r);
    check_anthropic(&r, "s", 4, text, 100, 20, 1);
    assert_string_equal(text, "The quick brown fox jumps");
    resp_clear(&r);
    ask(c, 1, "s", "", &r); /* keep-alive */
    check_anthropic(&r, "s", 4, text, 100, 20, 1);
    resp_clear(&r);
    conn_close(&c);
}

/* ---------------------------------------------------------------- pieces */

/* The pieces of an OpenAI stream of model into p[] (strdup'ed). */
static int
openai_pieces(conn_t *c, const char *model, char **p, int cap)
{
    resp_t r;
    ask(c, 0, model, "", &r);
    check_framing(&r, 1);
    events_t e;
    events_parse(r.body, 0, &e);
    int n = 0;
    for (int i = 1; i < e.n - 2; i++) {
        assert_true(n < cap);
        p[n++] = strdup(jstr(e.json[i], "choices.0.delta.content"));
    }
    events_clear(&e);
    resp_clear(&r);
    return n;
}

static void
test_pieces(void **state)
{
    (void)state;
    conn_t *c = conn_open();
    char *p[8], text[256] = "";
    int n;
    /* 18 characters (22 bytes) in the default 4 pieces of 4, 5, 4 and 5
     * characters, no UTF-8 sequence split (by bytes, the fourth piece
     * would start inside the check mark's) */
    n = openai_pieces(c, "u8", p, 8);
    assert_int_equal(n, 4);
    assert_string_equal(p[0], "h\xc3\xa9ll");
    assert_string_equal(p[2], "ld \xe2\x9c\x93");
    assert_string_equal(p[3], " \"q\"\n");
    for (int i = 0; i < n; i++) {
        assert_true(((unsigned char)p[i][0] & 0xC0) != 0x80);
        strcat(text, p[i]);
        free(p[i]);
    }
    assert_string_equal(text, U8_TEXT);
    resp_t r;
    ask(c, 1, "u8", "", &r);
    /* no usage in the script: "hi" is 1 token in, 22 bytes 6 out */
    check_anthropic(&r, "u8", 4, text, 1, 6, 1);
    assert_string_equal(text, U8_TEXT);
    resp_clear(&r);
    /* "chunks": 6 pieces of 2 */
    n = openai_pieces(c, "six", p, 8);
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++) {
        assert_int_equal(strlen(p[i]), 2);
        free(p[i]);
    }
    /* no more pieces than characters */
    n = openai_pieces(c, "few", p, 8);
    assert_int_equal(n, 2);
    assert_string_equal(p[0], "a");
    assert_string_equal(p[1], "b");
    free(p[0]);
    free(p[1]);
    /* empty content: no piece, the stream still ends */
    ask(c, 0, "empty", ",\"stream_options\":{\"include_usage\":true}", &r);
    check_openai(&r, "empty", 1, 0, text, 1, 1, 1);
    assert_string_equal(text, "");
    resp_clear(&r);
    conn_close(&c);
}

/* ------------------------------------------------------------------ cuts */

static void
test_stream_cut(void **state)
{
    (void)state;
    int d0 = disconnects();
    char text[256];
    resp_t r;
    /* OpenAI: two pieces, then the connection closes: no finish, no
     * [DONE], no end of the chunked body */
    conn_t *c = conn_open();
    ask(c, 0, "cut", ",\"stream_options\":{\"include_usage\":true}", &r);
    check_openai(&r, "cut", 1, 2, text, 0, 0, 0);
    assert_string_equal(text, "abcd");
    assert_null(strstr(r.body, "[DONE]"));
    assert_null(strstr(r.body, "\"stop\""));
    resp_clear(&r);
    assert_int_equal(conn_fill(c), 0); /* closed */
    conn_close(&c);
    /* Anthropic: no content_block_stop, no message_stop */
    c = conn_open();
    ask(c, 1, "cut", "", &r);
    check_anthropic(&r, "cut", 2, text, 1, 0, 0);
    assert_string_equal(text, "abcd");
    assert_null(strstr(r.body, "message_stop"));
    resp_clear(&r);
    conn_close(&c);
    /* after 0 pieces: the role chunk only */
    c = conn_open();
    ask(c, 0, "cut0", "", &r);
    check_openai(&r, "cut0", 0, 0, text, 0, 0, 0);
    resp_clear(&r);
    conn_close(&c);
    /* K over the number of pieces: every piece, then no end */
    c = conn_open();
    ask(c, 0, "cutall", "", &r);
    check_openai(&r, "cutall", 0, 4, text, 0, 0, 0);
    assert_string_equal(text, "abcdefgh");
    resp_clear(&r);
    conn_close(&c);
    /* the mock cut them: no disconnect */
    assert_int_equal(disconnects(), d0);
}

/* ---------------------------------------------------------------- errors */

static void
test_stream_error(void **state)
{
    (void)state;
    conn_t *c = conn_open();
    resp_t r;
    ask(c, 0, "err", "", &r);
    assert_int_equal(r.status, 429);
    assert_string_equal(r.ctype, "application/json");
    assert_true(r.clen > 0);
    assert_string_equal(r.te, "");
    assert_true(r.complete);
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(jstr(j, "error.message"), "slow down");
    assert_string_equal(jstr(j, "error.code"), "rate_limit_exceeded");
    cJSON_Delete(j);
    resp_clear(&r);
    ask(c, 1, "err", "", &r);
    assert_int_equal(r.status, 429);
    assert_string_equal(r.ctype, "application/json");
    j = cJSON_Parse(r.body);
    assert_string_equal(jstr(j, "type"), "error");
    assert_string_equal(jstr(j, "error.type"), "rate_limit_error");
    assert_string_equal(jstr(j, "error.message"), "slow down");
    cJSON_Delete(j);
    resp_clear(&r);
    /* a request the mock refuses (no max_tokens) is JSON too */
    http_send(c, "POST", "/v1/messages", "anthropic-version: 2023-06-01\r\n",
              "{\"model\":\"s\",\"messages\":[],\"stream\":true}");
    http_head(c, &r);
    http_body(c, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.ctype, "application/json");
    assert_non_null(strstr(r.body, "max_tokens"));
    resp_clear(&r);
    /* the connection still serves a stream */
    char text[256];
    ask(c, 0, "s", "", &r);
    check_openai(&r, "s", 0, 4, text, 100, 20, 1);
    resp_clear(&r);
    conn_close(&c);
}

static void
test_stream_malformed(void **state)
{
    (void)state;
    conn_t *c = conn_open();
    resp_t r;
    events_t e;
    ask(c, 0, "bad", "", &r);
    check_framing(&r, 1);
    events_parse(r.body, 0, &e);
    assert_int_equal(e.n, 1);
    assert_null(e.json[0]); /* not JSON */
    events_clear(&e);
    resp_clear(&r);
    ask(c, 1, "bad", "", &r);
    check_framing(&r, 1);
    events_parse(r.body, 1, &e);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.name[0], "message_start");
    assert_null(e.json[0]);
    events_clear(&e);
    resp_clear(&r);
    conn_close(&c);
}

/* ---------------------------------------------------------------- timing */

static void
test_stream_timing(void **state)
{
    (void)state;
    conn_t *c = conn_open();
    resp_t r;
    char text[256];
    /* chunk_ms 80 before each of 4 pieces: the head (with the role
     * chunk) comes at once, the end at least 320 ms later */
    http_send(c, "POST", "/v1/chat/completions", "",
              "{\"model\":\"slow\",\"messages\":[],\"stream\":true}");
    double t0 = tu_now();
    http_head(c, &r);
    double t1 = tu_now();
    http_body(c, &r);
    double t2 = tu_now();
    check_openai(&r, "slow", 0, 4, text, 0, 0, 1);
    assert_string_equal(text, "abcd");
    resp_clear(&r);
    print_message("head after %.0f ms, end after %.0f ms\n", (t1 - t0) * 1e3,
                  (t2 - t0) * 1e3);
    assert_true(t2 - t1 >= 0.30);
    /* latency_ms 150 delays the head */
    http_send(c, "POST", "/v1/chat/completions", "",
              "{\"model\":\"lat\",\"messages\":[],\"stream\":true}");
    t0 = tu_now();
    http_head(c, &r);
    t1 = tu_now();
    http_body(c, &r);
    check_openai(&r, "lat", 0, 4, text, 0, 0, 1);
    resp_clear(&r);
    assert_true(t1 - t0 >= 0.14);
    conn_close(&c);
}

/* ----------------------------------------------------------------- stats */

static void
test_stats_bodies(void **state)
{
    (void)state;
    const char *b1 =
        "{\"model\":\"s\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"}],"
        "\"temperature\":0.25,\"top_p\":0.5,\"stop\":[\"x\"],"
        "\"max_completion_tokens\":7,\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true}}";
    const char *b2 =
        "{\"model\":\"s\",\"system\":\"be brief\",\"max_tokens\":9,"
        "\"messages\":[{\"role\":\"user\",\"content\":\"b\"}]}";
    cJSON *s0 = model_stat("s", "streamed");
    cJSON *q0 = model_stat("s", "requests");
    assert_non_null(s0);
    assert_non_null(q0);
    conn_t *c = conn_open();
    resp_t r;
    http_send(c, "POST", "/v1/chat/completions", "", b1);
    http_head(c, &r);
    http_body(c, &r);
    resp_clear(&r);
    cJSON *want = cJSON_Parse(b1), *got = model_stat("s", "last_body");
    assert_true(cJSON_Compare(want, got, 1));
    cJSON_Delete(want);
    cJSON_Delete(got);
    cJSON *s1 = model_stat("s", "streamed");
    assert_int_equal(s1->valuedouble, s0->valuedouble + 1);
    /* a request without stream: not counted, its body the last */
    http_send(c, "POST", "/v1/messages", "anthropic-version: 2023-06-01\r\n",
              b2);
    http_head(c, &r);
    http_body(c, &r);
    assert_int_equal(r.status, 200);
    resp_clear(&r);
    want = cJSON_Parse(b2);
    got = model_stat("s", "last_body");
    assert_true(cJSON_Compare(want, got, 1));
    cJSON_Delete(want);
    cJSON_Delete(got);
    cJSON *s2 = model_stat("s", "streamed"), *q2 = model_stat("s", "requests");
    assert_int_equal(s2->valuedouble, s1->valuedouble);
    assert_int_equal(q2->valuedouble, q0->valuedouble + 2);
    cJSON_Delete(s0);
    cJSON_Delete(q0);
    cJSON_Delete(s1);
    cJSON_Delete(s2);
    cJSON_Delete(q2);
    conn_close(&c);
}

/* A streaming request to model on a new connection, closed when the mock
 * has received it (its last_body is there) and, with head set, after the
 * response head. */
static void
ask_and_leave(const char *model, int head)
{
    conn_t *c = conn_open();
    char body[256];
    snprintf(body, sizeof(body),
             "{\"model\":\"%s\",\"messages\":[],\"stream\":true,\"n\":%d}",
             model, rand());
    http_send(c, "POST", "/v1/chat/completions", "", body);
    if (head) {
        resp_t r;
        http_head(c, &r);
        assert_int_equal(r.status, 200);
        resp_clear(&r);
    }
    cJSON *want = cJSON_Parse(body), *got = NULL;
    double t0 = tu_now();
    while (!cJSON_Compare(want, got, 1) && tu_now() - t0 < 2.0) {
        cJSON_Delete(got);
        tu_sleep_ms(5);
        got = model_stat(model, "last_body");
    }
    assert_true(cJSON_Compare(want, got, 1));
    cJSON_Delete(want);
    cJSON_Delete(got);
    tu_sleep_ms(20); /* past the reading, into the wait */
    conn_close(&c);
}

static void
test_disconnects(void **state)
{
    (void)state;
    srand(11);
    int d0 = disconnects();
    /* during hang (20 s), latency_ms (20 s), chunk_ms (3 s): each counted
     * at once (the brief asks for ~100 ms; half a second of margin for a
     * loaded machine, far below any of the waits) */
    const char *models[] = {"hang", "late", "drip"};
    for (int i = 0; i < 3; i++) {
        ask_and_leave(models[i], i == 2);
        double dt = wait_disconnects(d0 + i + 1);
        print_message("%s: counted %.0f ms after the close\n", models[i],
                      dt * 1e3);
        assert_true(dt < 0.5);
    }
    /* counted once each */
    tu_sleep_ms(100);
    assert_int_equal(disconnects(), d0 + 3);
    /* hang and latency: no status line sent */
    cJSON *st = model_stat("late", "status");
    assert_int_equal(jnum(st, "0"), 1);
    cJSON_Delete(st);
    st = model_stat("drip", "status");
    assert_int_equal(jnum(st, "200"), 1);
    cJSON_Delete(st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_stream),
        cmocka_unit_test(test_anthropic_stream),
        cmocka_unit_test(test_pieces),
        cmocka_unit_test(test_stream_cut),
        cmocka_unit_test(test_stream_error),
        cmocka_unit_test(test_stream_malformed),
        cmocka_unit_test(test_stream_timing),
        cmocka_unit_test(test_stats_bodies),
        cmocka_unit_test(test_disconnects),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
