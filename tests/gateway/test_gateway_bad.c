/*
 * test_gateway_bad.c - bursar-gateway against bad input (issue 11): the
 * real bursard (tests/harness.h), the mock provider (tests/agents/util.h)
 * and the real gateway on 127.0.0.1, spoken to over raw sockets so that
 * anything can be sent. Each bad request gets its status and OpenAI's
 * error body ({"error":{"message","type","param","code"}}, the message
 * naming the field): malformed JSON, wrong types, an unknown bucket, a
 * body over limits.max_body_bytes, a missing or wrong key, a wrong
 * method, an unknown path; a request refused for its head (key, route,
 * method, size) answered before its body is sent, two Content-Length
 * headers refused (400 bad_framing); a client that leaves in the middle
 * of a stream, or while the gateway waits for a slow answer (the mock
 * sees the upstream call cancelled). After all of it the gateway still answers
 * /healthz and a good request, and SIGTERM ends it with status 0 (under
 * the sanitizer build LeakSanitizer makes a leak a non-zero exit); the
 * key's tenant has a budget in bursard, on which its decisions are. The
 * tests run in order and share the daemons.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/agents/util.h"
#include "tests/gateway/gwtest.h"
#include "tests/harness.h"
#include "tests/http.h"

#define GW_MAX_BODY   1048576 /* the gateway's limits.max_body_bytes */
#define GW_BIG_BODY   1000000 /* announced, under the limit, never sent */
#define GW_KEY_ENV    "BURSAR_GW_BAD_PROVIDER_KEY"
#define GW_PROV_KEY   "bad-test-provider-key"
#define GW_CONTENT    "Hello from the mock."
#define GW_IO_TIMEOUT 15 /* seconds a socket waits for the gateway */

static struct {
    th_daemon_t ctl;
    pid_t mock, gw;
    int mock_port, gw_port;
    char key[128];
    char log[700];
} g;

/* The mock: "plain-up" answers at once; "slow-up" streams 40 pieces
 * 150 ms apart (6 s), so that a client can leave in the middle;
 * "lazy-up" answers after 6 s. */
static const char *SCRIPT =
    "{\"require_key\":\"" GW_PROV_KEY "\",\"models\":{"
    "\"plain-up\":{\"default\":{\"content\":\"" GW_CONTENT "\","
    "\"usage\":{\"in\":100,\"out\":10}}},"
    "\"slow-up\":{\"default\":{\"content\":\"one two three four five six "
    "seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty twenty-one twenty-two twenty-three "
    "twenty-four twenty-five twenty-six twenty-seven twenty-eight "
    "twenty-nine thirty thirty-one thirty-two thirty-three thirty-four "
    "thirty-five thirty-six thirty-seven thirty-eight thirty-nine forty\","
    "\"chunks\":40,\"chunk_ms\":150,\"usage\":{\"in\":100,\"out\":40}}},"
    "\"lazy-up\":{\"default\":{\"content\":\"late\",\"latency_ms\":6000}}}}";

/* The models table of bursard and of the gateway. */
static void
models_json(char *buf, size_t cap)
{
    snprintf(buf, cap,
             "{\"plain\":{\"provider\":\"openai\",\"model\":\"plain-up\","
             "\"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key_env\":\"%s\","
             "\"price_in_per_mtok\":1,\"price_out_per_mtok\":2},"
             "\"slow\":{\"provider\":\"openai\",\"model\":\"slow-up\","
             "\"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key_env\":\"%s\","
             "\"price_in_per_mtok\":1,\"price_out_per_mtok\":2},"
             "\"lazy\":{\"provider\":\"anthropic\",\"model\":\"lazy-up\","
             "\"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key_env\":\"%s\","
             "\"price_in_per_mtok\":1,\"price_out_per_mtok\":2}}",
             g.mock_port, GW_KEY_ENV, g.mock_port, GW_KEY_ENV, g.mock_port,
             GW_KEY_ENV);
}

/* ------------------------------------------------------------ HTTP */

typedef struct resp {
    th_http_resp_t h; /* status, head, body (chunks decoded) */
    cJSON *json;      /* the body parsed, or NULL */
} resp_t;

static void
resp_free(resp_t *r)
{
    th_http_free(&r->h);
    cJSON_Delete(r->json);
    r->json = NULL;
}

/* Requires an HTTP response in r->h and parses its body. */
static void
resp_parse(resp_t *r)
{
    if (r->h.status == 0)
        fail_msg("not an HTTP response (%zu bytes): %.300s", r->h.bytes,
                 r->h.raw);
    r->json = cJSON_Parse(r->h.body);
}

/* One request on a fresh connection. auth: the whole Authorization
 * value, or NULL for none. body: NULL for none. extra: more header lines
 * ("Name: value\r\n"), or NULL. */
static void
http_do(resp_t *r, int port, const char *method, const char *path,
        const char *auth, const char *body, size_t body_len, const char *extra)
{
    char headers[1024] = "";
    int n = 0;
    if (auth)
        n = snprintf(headers, sizeof headers, "Authorization: %s\r\n", auth);
    if (extra)
        snprintf(headers + n, sizeof headers - (size_t)n, "%s", extra);
    th_http_do(&r->h, (unsigned)port, method, path, headers, body, body_len,
               TH_HTTP_DECHUNK);
    resp_parse(r);
}

static char bearer[160];

/* POST /v1/chat/completions with the tenant's key. */
static void
chat(resp_t *r, const char *body)
{
    http_do(r, g.gw_port, "POST", "/v1/chat/completions", bearer, body,
            strlen(body), NULL);
}

static const char *ERROR_TYPES[] = {"invalid_request_error",
                                    "authentication_error",
                                    "not_found_error",
                                    "rate_limit_error",
                                    "api_error",
                                    "timeout_error"};

/* The status, and OpenAI's error shape: error.type (this one, or when
 * NULL one of the spec's), error.message naming needle (when not NULL),
 * error.param null or a string (this one when param is not NULL),
 * error.code present. */
static void
expect_param(resp_t *r, int status, const char *type, const char *needle,
             const char *param)
{
    if (r->h.status != status)
        fail_msg("status %d, expected %d; body: %.400s", r->h.status, status,
                 r->h.body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->json, "error");
    if (!cJSON_IsObject(e))
        fail_msg("status %d: no \"error\" object in the body: %.400s", status,
                 r->h.body);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "param");
    assert_true(cJSON_IsString(t));
    assert_true(cJSON_IsString(m));
    assert_true(strlen(m->valuestring) > 0);
    if (type) {
        assert_string_equal(t->valuestring, type);
    } else {
        size_t i = 0, k = sizeof ERROR_TYPES / sizeof ERROR_TYPES[0];
        while (i < k && strcmp(t->valuestring, ERROR_TYPES[i]) != 0)
            i++;
        if (i == k)
            fail_msg("error.type \"%s\" is not one of OpenAI's",
                     t->valuestring);
    }
    if (needle && !strstr(m->valuestring, needle))
        fail_msg("status %d: error.message \"%s\" does not name \"%s\"", status,
                 m->valuestring, needle);
    assert_true(cJSON_IsNull(p) || cJSON_IsString(p));
    if (param && !(cJSON_IsString(p) && strcmp(p->valuestring, param) == 0))
        fail_msg("status %d: error.param is %s, expected \"%s\" (%s)", status,
                 cJSON_IsString(p) ? p->valuestring : "null", param,
                 m->valuestring);
    assert_non_null(cJSON_GetObjectItemCaseSensitive(e, "code"));
}

static void
expect_error(resp_t *r, int status, const char *type, const char *needle)
{
    expect_param(r, status, type, needle, NULL);
}

/* ------------------------------------------------------- the daemons */

/* bursar-gateway --config FILE --listen 127.0.0.1:0; its port from its
 * first line on stdout. Killed with the test process (PR_SET_PDEATHSIG). */
static void
gateway_start(const char *config)
{
    char out[700];
    snprintf(out, sizeof out, "%s/gateway.port", g.ctl.dir);
    snprintf(g.log, sizeof g.log, "%s/gateway.log", g.ctl.dir);
    setenv(GW_KEY_ENV, GW_PROV_KEY, 1); /* inherited by the gateway */
    char *argv[] = {(char *)th_need("bursar-gateway"),
                    "--config",
                    (char *)config,
                    "--listen",
                    "127.0.0.1:0",
                    NULL};
    g.gw = tu_spawn(argv, NULL, out, g.log);
    g.gw_port = tu_wait_port(g.gw, out, 20000);
    if (g.gw_port <= 0) {
        int st = tu_wait(g.gw, 1000);
        g.gw = 0;
        fail_msg("bursar-gateway printed no port within 20 s (exit %d); "
                 "see %s",
                 st, g.log);
    }
}

/* A key of tenant acme (g.key, bearer); *entry gets its config entry. */
static void
new_key(char *entry, size_t cap)
{
    gwt_new_key("acme", g.key, sizeof g.key, entry, cap);
    snprintf(bearer, sizeof bearer, "Bearer %s", g.key);
}

static int
setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    /* every program first: a missing one fails before anything starts */
    th_need("bursar-gateway");
    th_need("bursard");
    th_need("bursar-mock-provider");
    g.mock = tu_mock_start(SCRIPT, &g.mock_port);
    if (g.mock_port <= 0)
        fail_msg("bursar-mock-provider did not start (BURSAR_BIN_DIR %s)",
                 getenv("BURSAR_BIN_DIR"));
    char models[2048], text[8192], entry[256], path[700];
    models_json(models, sizeof models);
    snprintf(text, sizeof text,
             "{\"models\":%s,\"buckets\":{\"general\":{\"models\":"
             "[\"plain\"]},\"slow\":{\"models\":[\"slow\"]},"
             "\"lazy\":{\"models\":[\"lazy\"]}},"
             "\"unknown_bucket\":{\"action\":\"error\"},"
             "\"tenants\":{\"acme\":{\"budget\":{\"limit_usd\":10}}}}",
             models);
    th_setup(&g.ctl, text);
    th_start(&g.ctl);
    new_key(entry, sizeof entry);
    snprintf(text, sizeof text,
             "{\"controller\":\"%s\",\"spool\":\"%s/gateway.spool\","
             "\"models\":%s,\"routing\":{\"default\":\"general\","
             "\"rules\":[]},\"keys\":[%s],\"allow_anonymous\":false,"
             "\"limits\":{\"max_body_bytes\":%d,\"max_connections\":64},"
             "\"provider\":{\"timeout_ms\":20000,\"max_attempts\":1}}",
             g.ctl.endpoint, g.ctl.dir, models, entry, GW_MAX_BODY);
    snprintf(path, sizeof path, "%s/gateway.json", g.ctl.dir);
    tu_write_file(path, text);
    gateway_start(path);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    if (g.gw > 0) {
        kill(g.gw, SIGKILL);
        waitpid(g.gw, NULL, 0);
    }
    if (g.mock > 0)
        tu_kill(g.mock, SIGKILL);
    th_cleanup(&g.ctl);
    return 0;
}

/* ------------------------------------------------------------ tests */

static void
test_malformed_json(void **state)
{
    (void)state;
    resp_t r;
    chat(&r, "{\"model\":\"bursar/general\",\"messages\":[");
    expect_error(&r, 400, "invalid_request_error", NULL);
    resp_free(&r);
    chat(&r, "not json at all");
    expect_error(&r, 400, "invalid_request_error", NULL);
    resp_free(&r);
    /* JSON, not an object */
    chat(&r, "[1,2,3]");
    expect_error(&r, 400, "invalid_request_error", NULL);
    resp_free(&r);
    /* no body at all */
    http_do(&r, g.gw_port, "POST", "/v1/chat/completions", bearer, "", 0, NULL);
    expect_error(&r, 400, "invalid_request_error", NULL);
    resp_free(&r);
}

static void
test_wrong_types(void **state)
{
    (void)state;
    /* the body, what the message must name, the param (NULL: any) */
    static const struct {
        const char *body, *field, *param;
    } cases[] = {
        {"{\"model\":\"bursar/general\",\"messages\":3}", "messages",
         "messages"},
        {"{\"model\":\"bursar/general\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"hi\"}],\"stream\":\"yes\"}",
         "stream", "stream"},
        {"{\"model\":7,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         "model", "model"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "model",
         "model"},
        {"{\"model\":\"bursar/general\"}", "messages", "messages"},
        {"{\"model\":\"bursar/general\",\"messages\":[{\"role\":5,"
         "\"content\":\"hi\"}]}",
         "role", NULL},
        {"{\"model\":\"bursar/general\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"hi\"}],\"stream_options\":\"usage\"}",
         "stream_options", "stream_options"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        resp_t r;
        print_message("%s\n", cases[i].body);
        chat(&r, cases[i].body);
        expect_param(&r, 400, "invalid_request_error", cases[i].field,
                     cases[i].param);
        resp_free(&r);
    }
}

static void
test_unknown_bucket_and_model(void **state)
{
    (void)state;
    resp_t r;
    chat(&r, "{\"model\":\"bursar/no-such-bucket\",\"messages\":[{\"role\":"
             "\"user\",\"content\":\"hi\"}]}");
    expect_param(&r, 404, "not_found_error", "no-such-bucket", "model");
    resp_free(&r);
    chat(&r, "{\"model\":\"no-such-model\",\"messages\":[{\"role\":"
             "\"user\",\"content\":\"hi\"}]}");
    expect_param(&r, 404, "not_found_error", "no-such-model", "model");
    resp_free(&r);
    /* a bucket name of characters no bucket has: refused by the gateway */
    const char *odd[] = {"bursar/two words", "bursar/semi;colon",
                         "bursar/\\u00e9t\\u00e9", "bursar/new\\nline"};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
                 "\"content\":\"hi\"}]}",
                 odd[i]);
        print_message("%s\n", body);
        chat(&r, body);
        expect_param(&r, 404, "not_found_error", "A-Z a-z 0-9", "model");
        resp_free(&r);
    }
}

static void
test_body_over_limit(void **state)
{
    (void)state;
    /* valid JSON, one byte over the limit and well over it */
    size_t sizes[] = {GW_MAX_BODY + 1, 2 * GW_MAX_BODY};
    for (size_t k = 0; k < 2; k++) {
        size_t n = sizes[k];
        char *body = malloc(n + 1);
        assert_non_null(body);
        const char *pre = "{\"model\":\"bursar/general\",\"messages\":[{"
                          "\"role\":\"user\",\"content\":\"";
        const char *post = "\"}]}";
        size_t lp = strlen(pre), lq = strlen(post);
        memcpy(body, pre, lp);
        memset(body + lp, 'x', n - lp - lq);
        memcpy(body + n - lq, post, lq);
        body[n] = '\0';
        resp_t r;
        http_do(&r, g.gw_port, "POST", "/v1/chat/completions", bearer, body, n,
                NULL);
        expect_error(&r, 413, NULL, NULL);
        resp_free(&r);
        free(body);
    }
    /* at the limit it is served */
    resp_t r;
    chat(&r, "{\"model\":\"bursar/general\",\"messages\":[{\"role\":\"user\","
             "\"content\":\"small\"}]}");
    assert_int_equal(r.h.status, 200);
    resp_free(&r);
}

static void
test_missing_and_wrong_key(void **state)
{
    (void)state;
    const char *ok = "{\"model\":\"bursar/general\",\"messages\":[{\"role\":"
                     "\"user\",\"content\":\"hi\"}]}";
    char wrong[160];
    snprintf(wrong, sizeof wrong, "Bearer bsk-%043d", 0);
    char truncated[160];
    snprintf(truncated, sizeof truncated, "%.*s", (int)strlen(bearer) - 1,
             bearer);
    char basic[200];
    snprintf(basic, sizeof basic, "Basic %s", g.key);
    const char *auths[] = {NULL, wrong, truncated, basic, "Bearer ", "Bearer"};
    for (size_t i = 0; i < sizeof auths / sizeof auths[0]; i++) {
        resp_t r;
        print_message("Authorization: %s\n", auths[i] ? auths[i] : "(none)");
        http_do(&r, g.gw_port, "POST", "/v1/chat/completions", auths[i], ok,
                strlen(ok), NULL);
        expect_error(&r, 401, "authentication_error", NULL);
        resp_free(&r);
    }
    /* every /v1/ route */
    resp_t r;
    http_do(&r, g.gw_port, "GET", "/v1/models", NULL, NULL, 0, NULL);
    expect_error(&r, 401, "authentication_error", NULL);
    resp_free(&r);
    http_do(&r, g.gw_port, "POST", "/v1/feedback", wrong, "{}", 2, NULL);
    expect_error(&r, 401, "authentication_error", NULL);
    resp_free(&r);
    /* /healthz is open */
    http_do(&r, g.gw_port, "GET", "/healthz", NULL, NULL, 0, NULL);
    assert_int_equal(r.h.status, 200);
    resp_free(&r);
}

static void
test_wrong_method_and_path(void **state)
{
    (void)state;
    resp_t r;
    http_do(&r, g.gw_port, "GET", "/v1/chat/completions", bearer, NULL, 0,
            NULL);
    expect_error(&r, 405, NULL, NULL);
    resp_free(&r);
    http_do(&r, g.gw_port, "DELETE", "/v1/chat/completions", bearer, NULL, 0,
            NULL);
    expect_error(&r, 405, NULL, NULL);
    resp_free(&r);
    http_do(&r, g.gw_port, "POST", "/v1/models", bearer, "{}", 2, NULL);
    expect_error(&r, 405, NULL, NULL);
    resp_free(&r);
    http_do(&r, g.gw_port, "POST", "/v1/no-such-route", bearer, "{}", 2, NULL);
    expect_error(&r, 404, "not_found_error", NULL);
    resp_free(&r);
    http_do(&r, g.gw_port, "GET", "/no/such/path", bearer, NULL, 0, NULL);
    expect_error(&r, 404, "not_found_error", NULL);
    resp_free(&r);
}

#define GW_HEAD_DEADLINE 3 /* seconds an answer to a head may take */

/* Sends a request's head only (head: the request line and the header
 * lines, without the empty line), never its body, and reads the answer,
 * which must come whole within GW_HEAD_DEADLINE seconds. */
static void
head_only(resp_t *r, const char *head)
{
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "%s\r\n", head);
    int fd = th_http_connect((unsigned)g.gw_port);
    struct timeval tv = {GW_HEAD_DEADLINE, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    double t0 = tu_now();
    th_http_send(fd, buf, (size_t)n);
    char peek;
    ssize_t got = recv(fd, &peek, 1, MSG_PEEK);
    if (got <= 0)
        fail_msg("no answer within %d s to a head whose body never comes "
                 "(the gateway waits for the body?): %s",
                 GW_HEAD_DEADLINE, head);
    th_http_read(fd, &r->h, TH_HTTP_UNTIL_LENGTH | TH_HTTP_DECHUNK);
    resp_parse(r);
    close(fd);
    print_message("answered %d after %.3f s: %s\n", r->h.status, tu_now() - t0,
                  head);
    assert_true(tu_now() - t0 < GW_HEAD_DEADLINE);
}

/* A request refused for its head is answered before its body is read: an
 * unknown client cannot make the gateway wait for (and hold) a body. The
 * bodies announced are under limits.max_body_bytes and never sent. */
static void
test_head_checked_before_body(void **state)
{
    (void)state;
    char head[1024], wrong[160];
    snprintf(wrong, sizeof wrong, "Bearer bsk-%043d", 0);
    /* the method, the path, the Authorization header (NULL: none), the
     * status and error type expected */
    const struct {
        const char *method, *path, *auth;
        int status;
        const char *type;
    } cases[] = {
        {"POST", "/v1/chat/completions", NULL, 401, "authentication_error"},
        {"POST", "/v1/chat/completions", wrong, 401, "authentication_error"},
        {"POST", "/v1/feedback", NULL, 401, "authentication_error"},
        {"POST", "/v1/no-such-route", bearer, 404, "not_found_error"},
        {"PUT", "/v1/chat/completions", bearer, 405, "invalid_request_error"},
    };
    assert_true(GW_BIG_BODY < GW_MAX_BODY);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int n =
            snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %d\r\n",
                     cases[i].method, cases[i].path, g.gw_port, GW_BIG_BODY);
        if (cases[i].auth)
            snprintf(head + n, sizeof head - (size_t)n, "Authorization: %s\r\n",
                     cases[i].auth);
        resp_t r;
        head_only(&r, head);
        expect_error(&r, cases[i].status, cases[i].type, NULL);
        resp_free(&r);
    }
    /* over the limit, with the key: 413 from the head as well */
    snprintf(head, sizeof head,
             "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
             "Authorization: %s\r\nContent-Type: application/json\r\n"
             "Content-Length: %d\r\n",
             g.gw_port, bearer, GW_MAX_BODY + 1);
    resp_t r;
    head_only(&r, head);
    expect_error(&r, 413, "invalid_request_error", "limits.max_body_bytes");
    resp_free(&r);
}

/* Two Content-Length headers (equal or not) are refused: 400
 * bad_framing, the body not read. */
static void
test_two_content_lengths(void **state)
{
    (void)state;
    const char *body = "{\"model\":\"bursar/general\",\"messages\":[{\"role\":"
                       "\"user\",\"content\":\"framed twice\"}]}";
    size_t len = strlen(body);
    size_t second[] = {len, len + 10};
    for (size_t i = 0; i < 2; i++) {
        char extra[128];
        snprintf(extra, sizeof extra, "Content-Length: %zu\r\n", second[i]);
        resp_t r;
        print_message("Content-Length: %zu and %zu\n", len, second[i]);
        http_do(&r, g.gw_port, "POST", "/v1/chat/completions", bearer, body,
                len, extra);
        expect_error(&r, 400, "invalid_request_error", "Content-Length");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(r.json, "error"), "code");
        assert_true(cJSON_IsString(code));
        assert_string_equal(code->valuestring, "bad_framing");
        resp_free(&r);
    }
}

/* The mock's count of responses its clients left unfinished. */
static int
mock_disconnects(void)
{
    resp_t r;
    http_do(&r, g.mock_port, "GET", "/stats", NULL, NULL, 0, NULL);
    assert_int_equal(r.h.status, 200);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(r.json, "disconnects");
    if (!cJSON_IsNumber(d))
        fail_msg("the mock's /stats has no \"disconnects\": %.300s", r.h.body);
    int n = d->valueint;
    resp_free(&r);
    return n;
}

static void
test_client_leaves_mid_stream(void **state)
{
    (void)state;
    int before = mock_disconnects();
    int served = tu_mock_requests(g.mock_port, "slow-up", "200");
    const char *body =
        "{\"model\":\"bursar/slow\",\"stream\":true,\"messages\":[{\"role\":"
        "\"user\",\"content\":\"count to forty, slowly\"}]}";
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "POST /v1/chat/completions HTTP/1.1\r\n"
                     "Host: 127.0.0.1:%d\r\nAuthorization: %s\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     g.gw_port, bearer, strlen(body), body);
    int fd = th_http_connect((unsigned)g.gw_port);
    th_http_send(fd, head, (size_t)n);
    /* read up to the first event, then leave */
    char buf[16384];
    size_t have = 0;
    while (have + 1 < sizeof buf) {
        ssize_t got = recv(fd, buf + have, sizeof buf - 1 - have, 0);
        if (got <= 0)
            break;
        have += (size_t)got;
        buf[have] = '\0';
        if (strstr(buf, "\r\n\r\n") && strstr(buf, "data:"))
            break;
    }
    buf[have] = '\0';
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    if (status != 200 || !strstr(buf, "data:"))
        fail_msg("no event from the stream: %.400s", buf);
    assert_non_null(th_http_find(buf, "text/event-stream"));
    assert_null(strstr(buf, "[DONE]")); /* the stream was not over yet */
    close(fd);
    /* the gateway cancels its upstream call: the mock sees its client
     * leave long before the 6 s of the stream are over */
    double t0 = tu_now();
    int after = before;
    while (after == before && tu_now() - t0 < 4.0) {
        tu_sleep_ms(50);
        after = mock_disconnects();
    }
    print_message("the mock saw the upstream call end after %.2f s\n",
                  tu_now() - t0);
    assert_int_equal(after, before + 1);
    assert_int_equal(tu_mock_requests(g.mock_port, "slow-up", "200"),
                     served + 1);
}

/* 1 when the mock received a request for upstream model. */
static int
mock_has_body(const char *upstream)
{
    resp_t r;
    http_do(&r, g.mock_port, "GET", "/stats", NULL, NULL, 0, NULL);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(r.json, "models"), upstream);
    int has = cJSON_GetObjectItemCaseSensitive(m, "last_body") != NULL;
    resp_free(&r);
    return has;
}

/* A client that leaves while the gateway waits for a slow upstream
 * answer (not streamed, Anthropic's format): the upstream call is
 * cancelled too. */
static void
test_client_leaves_while_waiting(void **state)
{
    (void)state;
    int before = mock_disconnects();
    const char *body = "{\"model\":\"bursar/lazy\",\"messages\":[{\"role\":"
                       "\"user\",\"content\":\"take your time\"}]}";
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "POST /v1/chat/completions HTTP/1.1\r\n"
                     "Host: 127.0.0.1:%d\r\nAuthorization: %s\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     g.gw_port, bearer, strlen(body), body);
    int fd = th_http_connect((unsigned)g.gw_port);
    th_http_send(fd, head, (size_t)n);
    /* wait until the upstream call has begun: the mock keeps the body of
     * a request as soon as it arrives ("last_body") */
    double t0 = tu_now();
    while (!mock_has_body("lazy-up")) {
        if (tu_now() - t0 > 5.0)
            fail_msg("the gateway did not call the upstream within 5 s");
        tu_sleep_ms(20);
    }
    close(fd);
    t0 = tu_now();
    int after = before;
    while (after == before && tu_now() - t0 < 4.0) {
        tu_sleep_ms(50);
        after = mock_disconnects();
    }
    print_message("the mock saw the upstream call end after %.2f s\n",
                  tu_now() - t0);
    assert_int_equal(after, before + 1);
}

static void
test_still_serving_then_clean_exit(void **state)
{
    (void)state;
    resp_t r;
    http_do(&r, g.gw_port, "GET", "/healthz", NULL, NULL, 0, NULL);
    assert_int_equal(r.h.status, 200);
    assert_string_equal(th_str(r.json, "status"), "ok");
    assert_string_equal(th_str(r.json, "controller"), "up");
    resp_free(&r);
    chat(&r, "{\"model\":\"bursar/general\",\"messages\":[{\"role\":\"user\","
             "\"content\":\"still there?\"}]}");
    if (r.h.status != 200)
        fail_msg("status %d: %.400s", r.h.status, r.h.body);
    const cJSON *ch = cJSON_GetArrayItem(
        cJSON_GetObjectItemCaseSensitive(r.json, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
    assert_string_equal(th_str(msg, "content"), GW_CONTENT);
    assert_string_equal(th_str(r.json, "model"), "plain");
    assert_non_null(th_http_header(r.h.head, "x-bursar-decision-id"));
    resp_free(&r);
    /* the key's tenant is budgeted: its decisions are on acme's pacer */
    th_client_t *c = th_client_new(g.ctl.endpoint);
    cJSON *s = th_ok(c, "{\"op\":\"stats\"}");
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "tenants"), 0);
    assert_string_equal(th_str(t, "tenant"), "acme");
    assert_true(th_num(t, "requests") >= 1);
    assert_true(th_num(t, "spent_usd") + th_num(t, "reserved_usd") > 0);
    cJSON_Delete(s);
    th_client_destroy(&c);
    /* SIGTERM: a clean exit, everything freed */
    gwt_expect_clean_exit(&g.gw, g.log);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    th_http_timeout(GW_IO_TIMEOUT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_unknown_bucket_and_model),
        cmocka_unit_test(test_body_over_limit),
        cmocka_unit_test(test_missing_and_wrong_key),
        cmocka_unit_test(test_wrong_method_and_path),
        cmocka_unit_test(test_head_checked_before_body),
        cmocka_unit_test(test_two_content_lengths),
        cmocka_unit_test(test_client_leaves_mid_stream),
        cmocka_unit_test(test_client_leaves_while_waiting),
        cmocka_unit_test(test_still_serving_then_clean_exit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
