/*
 * test_agents_provider.c - provider calls (agents/provider.h) against the
 * mock provider: usage and cost, Retry-After, 5xx retries, timeouts,
 * malformed bodies, keys, concurrency limit; where keys may go (https, or
 * http to loopback only; checked again at request time; no redirect
 * followed).
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agents/provider.h"
#include "tests/agents/util.h"

static cJSON *
msgs(void)
{
    return cJSON_Parse("[{\"role\":\"system\",\"content\":\"be brief\"},"
                       "{\"role\":\"user\",\"content\":\"say hello\"}]");
}

static void
fast_opts(prov_opts_t *o)
{
    prov_opts_init(o);
    o->timeout_ms = 2000;
    o->max_attempts = 3;
    o->backoff_ms = 20;
    o->backoff_max_ms = 100;
    o->retry_after_max_ms = 5000;
    o->seed = 7;
}

static const char *SCRIPT =
    "{\"models\":{"
    " \"ok\":{\"default\":{\"content\":\"hello\",\"usage\":{\"in\":1000,"
    "\"out\":500}}},"
    " \"ra\":{\"sequence\":[{\"status\":429,\"retry_after\":1}],"
    "\"default\":{\"content\":\"after wait\"}},"
    " \"s500\":{\"sequence\":[{\"status\":500},{\"status\":503}],"
    "\"default\":{\"content\":\"third time\"}},"
    " \"down\":{\"default\":{\"status\":500}},"
    " \"hang\":{\"default\":{\"hang\":true,\"hang_ms\":5000}},"
    " \"bad\":{\"default\":{\"malformed\":true}},"
    " \"nousage\":{\"default\":{\"content\":\"twelve chars\","
    "\"no_usage\":true}},"
    " \"long_ra\":{\"default\":{\"status\":429,\"retry_after\":100}},"
    " \"slow\":{\"default\":{\"content\":\"slow\",\"latency_ms\":200}},"
    " \"leaky\":{\"default\":{\"status\":401,\"error_message\":"
    "\"Incorrect API key provided: sk-proj-abcd1234wxyz. You can find\"}}"
    "}}";

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

static void
call(const char *model, int anthropic, const prov_opts_t *o, prov_result_t *r)
{
    bursar_model_t m;
    tu_model(&m, model, anthropic, port, 2.0, 8.0);
    cJSON *ms = msgs();
    assert_int_equal(prov_call(o, &m, ms, r), 0);
    cJSON_Delete(ms);
}

static void
test_openai_usage_cost(void **state)
{
    (void)state;
    prov_opts_t o;
    fast_opts(&o);
    prov_result_t r;
    call("ok", 0, &o, &r);
    assert_true(r.ok);
    assert_string_equal(r.output, "hello");
    assert_int_equal(r.tokens_in, 1000);
    assert_int_equal(r.tokens_out, 500);
    assert_int_equal(r.usage_estimated, 0);
    /* 1000 x 2 + 500 x 8 USD per million tokens */
    assert_true(r.cost_usd > 0.005999 && r.cost_usd < 0.006001);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(r.http_status, 200);
    prov_result_clear(&r);
}

static void
test_anthropic_usage_cost(void **state)
{
    (void)state;
    prov_opts_t o;
    fast_opts(&o);
    prov_result_t r;
    call("ok", 1, &o, &r);
    assert_true(r.ok);
    assert_string_equal(r.output, "hello");
    assert_int_equal(r.tokens_in, 1000);
    assert_int_equal(r.tokens_out, 500);
    assert_true(r.cost_usd > 0.005999 && r.cost_usd < 0.006001);
    prov_result_clear(&r);
    /* A base URL ending in /v1 is not doubled. */
    bursar_model_t m;
    tu_model(&m, "ok", 1, port, 2.0, 8.0);
    strcat(m.base_url, "/v1/");
    cJSON *ms = msgs();
    assert_int_equal(prov_call(&o, &m, ms, &r), 0);
    cJSON_Delete(ms);
    assert_true(r.ok);
    prov_result_clear(&r);
}

static void
test_retry_after_429(void **state)
{
    (void)state;
    prov_opts_t o;
    fast_opts(&o);
    for (int anthropic = 0; anthropic < 2; anthropic++) {
        if (anthropic) /* re-arm the 429 */
            continue;
        prov_result_t r;
        double t0 = tu_now();
        call("ra", anthropic, &o, &r);
        double dt = tu_now() - t0;
        assert_true(r.ok);
        assert_string_equal(r.output, "after wait");
        assert_int_equal(r.attempts, 2);
        /* Retry-After: 1 honoured, not the 20 ms backoff */
        assert_true(dt >= 0.95);
        assert_true(r.latency_ms >= 950);
        prov_result_clear(&r);
    }
    assert_int_equal(tu_mock_requests(port, "ra", "429"), 1);
}

static void
test_retry_500(void **state)
{
    (void)state;
    prov_opts_t o;
    fast_opts(&o);
    prov_result_t r;
    double t0 = tu_now();
    call("s500", 1, &o, &r);
    /* no Retry-After: the backoff (20 ms, doubling, jittered) rules */
    assert_true(tu_now() - t0 < 0.9);
    assert_true(r.ok);
    assert_string_equal(r.output, "third time");
    assert_int_equal(r.attempts, 3);
    prov_result_clear(&r);
}

static void
test_500_gives_up(void **state)
{
    (void)state;
    prov_opts_t o;
    fast_opts(&o);
    prov_result_t r;
    call("down", 0, &o, &r);
    assert_false(r.ok);
    assert_int_equal(r.attempts, 3);
    assert_string_equal(r.error_kind, "server_error");
    assert_int_equal(r.http_status, 500);
    /* The OpenAI error body's message is surfaced. */
    assert_non_null(strstr(r.error, "The server had an error"));
    prov_result_clear(&r);
    call("down", 1, &o, &r);
    assert_false(r.ok);
    assert_non_null(strstr(r.error, "http 500"));
    prov_result_clear(&r);
}

static void
test_timeout(void **state)
{
    (void)state;
    prov_opts_t o;
    fast_opts(&o);
    o.timeout_ms = 300;
    o.max_attempts = 2;
    prov_result_t r;
    double t0 = tu_now();
    call("hang", 0, &o, &r);
    double dt = tu_now() - t0;
    assert_false(r.ok);
    assert_string_equal(r.error_kind, "timeout");
    assert_int_equal(r.attempts, 2);
    assert_true(dt >= 0.55 && dt < 2.0);
    prov_result_clear(&r);
}

static void
test_malformed(void **state)
{
    (void)state;
    prov_opts_t o;
    fast_opts(&o);
    prov_result_t r;
    call("bad", 0, &o, &r);
    assert_false(r.ok);
    assert_string_equal(r.error_kind, "malformed");
    assert_int_equal(r.attempts, 1);
    prov_result_clear(&r);
    call("bad", 1, &o, &r);
    assert_false(r.ok);
    assert_string_equal(r.error_kind, "malformed");
    prov_result_clear(&r);
}

/* Messages that cannot go to Anthropic (agents/chat.h) fail the call
 * before anything is sent, naming the part. */
static void
test_untranslatable(void **state)
{
    (void)state;
    prov_opts_t o;
    fast_opts(&o);
    bursar_model_t m;
    tu_model(&m, "ok", 1, port, 2.0, 8.0);
    cJSON *ms = cJSON_Parse("[{\"role\":\"user\",\"content\":[{\"type\":"
                            "\"input_audio\",\"input_audio\":{}}]}]");
    int before = tu_mock_requests(port, "ok", NULL);
    prov_result_t r;
    assert_int_equal(prov_call(&o, &m, ms, &r), 0);
    assert_false(r.ok);
    assert_string_equal(r.error_kind, "malformed");
    assert_int_equal(r.attempts, 0);
    assert_non_null(strstr(r.error, "request: messages[0].content[0].type: "
                                    "\"input_audio\" is not supported"));
    assert_int_equal(tu_mock_requests(port, "ok", NULL), before);
    prov_result_clear(&r);
    cJSON_Delete(ms);
    /* the counter does count this model's calls */
    call("ok", 1, &o, &r);
    assert_true(r.ok);
    assert_int_equal(tu_mock_requests(port, "ok", NULL), before + 1);
    prov_result_clear(&r);
}

static void
test_no_usage_estimated(void **state)
{
    (void)state;
    prov_opts_t o;
    fast_opts(&o);
    prov_result_t r;
    call("nousage", 0, &o, &r);
    assert_true(r.ok);
    assert_int_equal(r.usage_estimated, 1);
    assert_true(r.tokens_in > 0 && r.tokens_out == 4);
    prov_result_clear(&r);
}

static void
test_retry_after_over_limit(void **state)
{
    (void)state;
    prov_opts_t o;
    fast_opts(&o);
    o.retry_after_max_ms = 1000;
    prov_result_t r;
    double t0 = tu_now();
    call("long_ra", 0, &o, &r);
    assert_false(r.ok);
    assert_string_equal(r.error_kind, "rate_limited");
    assert_int_equal(r.attempts, 1);
    assert_true(tu_now() - t0 < 0.9);
    prov_result_clear(&r);
}

static void
test_keys(void **state)
{
    (void)state;
    int p2;
    pid_t m2 = tu_mock_start("{\"require_key\":\"sekrit\",\"default\":"
                             "{\"content\":\"authed\"}}",
                             &p2);
    assert_true(p2 > 0);
    prov_opts_t o;
    fast_opts(&o);
    cJSON *ms = msgs();
    for (int anthropic = 0; anthropic < 2; anthropic++) {
        bursar_model_t m;
        tu_model(&m, "k", anthropic, p2, 1, 1);
        snprintf(m.api_key_env, sizeof(m.api_key_env), "BURSAR_TEST_KEY");
        prov_result_t r;
        unsetenv("BURSAR_TEST_KEY");
        prov_call(&o, &m, ms, &r);
        assert_false(r.ok);
        assert_string_equal(r.error_kind, "no_key");
        assert_int_equal(r.attempts, 0);
        /* The variable's name is in the error; no key anywhere. */
        assert_non_null(strstr(r.error, "BURSAR_TEST_KEY"));
        prov_result_clear(&r);
        setenv("BURSAR_TEST_KEY", "wrong", 1);
        prov_call(&o, &m, ms, &r);
        assert_false(r.ok);
        assert_int_equal(r.http_status, 401);
        assert_int_equal(r.attempts, 1); /* 4xx: not retried */
        assert_null(strstr(r.error, "wrong"));
        prov_result_clear(&r);
        setenv("BURSAR_TEST_KEY", "sekrit", 1);
        prov_call(&o, &m, ms, &r);
        assert_true(r.ok);
        assert_string_equal(r.output, "authed");
        prov_result_clear(&r);
    }
    cJSON_Delete(ms);
    tu_kill(m2, 15);
}

static void
test_error_text_has_no_key(void **state)
{
    (void)state;
    prov_opts_t o;
    fast_opts(&o);
    prov_result_t r;
    call("leaky", 0, &o, &r);
    assert_false(r.ok);
    assert_int_equal(r.http_status, 401);
    assert_null(strstr(r.error, "abcd1234"));
    assert_non_null(strstr(r.error, "provided: sk-***"));
    prov_result_clear(&r);
}

static int done_count;
static void
on_done(void *ud, const bursar_model_t *m, prov_result_t *r)
{
    (void)ud;
    (void)m;
    if (r->ok)
        done_count++;
}

static void
test_pool_concurrency_limit(void **state)
{
    (void)state;
    prov_opts_t o;
    fast_opts(&o);
    o.max_inflight = 4;
    prov_pool_t *p;
    assert_int_equal(prov_pool_new(&p, &o), 0);
    bursar_model_t m;
    tu_model(&m, "slow", 0, port, 1, 1);
    cJSON *ms = msgs();
    done_count = 0;
    double t0 = tu_now();
    for (int i = 0; i < 16; i++)
        assert_int_equal(prov_pool_submit(p, &m, ms, on_done, NULL), 0);
    while (prov_pool_run(p, 1000) > 0)
        ;
    double dt = tu_now() - t0;
    cJSON_Delete(ms);
    prov_pool_destroy(&p);
    assert_int_equal(done_count, 16);
    /* 16 calls of 200 ms, 4 at a time: about 0.8 s; serial would be 3.2 */
    assert_true(dt >= 0.75);
    assert_true(dt < 2.5);
}

/* prov_url_check: https anywhere, http to loopback only. */
static void
test_url_check(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "https://api.openai.com/v1", "https://10.0.0.1:8443/v1",
        "HTTPS://api.anthropic.com", "http://127.0.0.1:8080/v1",
        "http://127.1.2.3/v1",       "http://localhost:11434/v1",
        "http://LOCALHOST/v1",       "http://[::1]:8000/v1",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char why[160] = "";
        int plain = -1;
        if (prov_url_check(ok[i], &plain, why, sizeof why) != 0)
            fail_msg("%s refused: %s", ok[i], why);
        assert_int_equal(plain, strncmp(ok[i], "http:", 5) == 0);
    }
    static const char *const bad[][2] = {
        {"http://example.com/v1", "http is allowed only to a loopback"},
        {"http://10.0.0.1/v1", "http is allowed only to a loopback"},
        {"http://128.0.0.1/v1", "http is allowed only to a loopback"},
        {"http://localhost.example.com/v1", "http is allowed only to a"},
        {"http://127.0.0.1.nip.io/v1", "http is allowed only to a"},
        {"http://[::2]/v1", "http is allowed only to a loopback"},
        {"ftp://127.0.0.1/v1", "the scheme must be https"},
        {"file:///etc/passwd", "the scheme must be https"},
        {"gopher://127.0.0.1/", "the scheme must be https"},
        {"api.openai.com/v1", "not an absolute URL"},
        {"", "not an absolute URL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[160] = "";
        if (prov_url_check(bad[i][0], NULL, why, sizeof why) != BURSAR_EINVAL ||
            !strstr(why, bad[i][1]))
            fail_msg("%s: got \"%s\"", bad[i][0], why);
    }
}

/* A model whose URL is refused fails at once (refused_url), without a
 * request and before its key is read. */
static void
test_url_refused_at_request(void **state)
{
    (void)state;
    prov_opts_t o;
    fast_opts(&o);
    bursar_model_t m;
    tu_model(&m, "ok", 0, port, 1, 1);
    snprintf(m.base_url, sizeof m.base_url, "http://192.0.2.1:%d/v1", port);
    snprintf(m.api_key_env, sizeof m.api_key_env, "BURSAR_TEST_UNSET_KEY");
    prov_result_t r;
    cJSON *ms = msgs();
    int before = tu_mock_requests(port, "ok", NULL);
    assert_int_equal(prov_call(&o, &m, ms, &r), 0);
    cJSON_Delete(ms);
    assert_false(r.ok);
    assert_string_equal(r.error_kind, "refused_url");
    assert_non_null(strstr(r.error, "http is allowed only to a loopback"));
    assert_int_equal(r.attempts, 0);
    assert_int_equal(tu_mock_requests(port, "ok", NULL), before);
    prov_result_clear(&r);
}

/* A provider that answers with a redirect: a one-shot HTTP server whose
 * reply is 307 to another listener, which must see no connection. */
struct redirector {
    int ls;     /* the redirecting server */
    int trap;   /* where it points */
    int t_port; /* the trap's port */
};

static int
loopback_listener(int *out_port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(s, (struct sockaddr *)&a, sizeof(a));
    listen(s, 16);
    socklen_t l = sizeof(a);
    getsockname(s, (struct sockaddr *)&a, &l);
    *out_port = ntohs(a.sin_port);
    return s;
}

static void *
redirect_once(void *arg)
{
    struct redirector *rd = arg;
    int c = accept(rd->ls, NULL, NULL);
    if (c < 0)
        return NULL;
    char buf[8192];
    size_t n = 0;
    ssize_t k;
    /* the headers and (small) body: read until the peer pauses */
    while (n < sizeof buf - 1 &&
           (k = recv(c, buf + n, sizeof buf - 1 - n, n ? MSG_DONTWAIT : 0)) > 0)
        n += (size_t)k;
    char resp[256];
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.1 307 Temporary Redirect\r\n"
                       "Location: http://127.0.0.1:%d/v1/chat/completions\r\n"
                       "Content-Length: 0\r\nConnection: close\r\n\r\n",
                       rd->t_port);
    if (send(c, resp, (size_t)len, 0) < 0)
        perror("redirect_once");
    close(c);
    return NULL;
}

static void
test_redirect_not_followed(void **state)
{
    (void)state;
    struct redirector rd;
    int r_port;
    rd.ls = loopback_listener(&r_port);
    rd.trap = loopback_listener(&rd.t_port);
    pthread_t th;
    pthread_create(&th, NULL, redirect_once, &rd);
    setenv("BURSAR_TEST_KEY", "k-secret", 1);
    prov_opts_t o;
    fast_opts(&o);
    o.max_attempts = 1;
    bursar_model_t m;
    tu_model(&m, "ok", 0, r_port, 1, 1);
    snprintf(m.api_key_env, sizeof m.api_key_env, "BURSAR_TEST_KEY");
    prov_result_t r;
    cJSON *ms = msgs();
    assert_int_equal(prov_call(&o, &m, ms, &r), 0);
    cJSON_Delete(ms);
    pthread_join(th, NULL);
    assert_false(r.ok);
    assert_int_equal(r.http_status, 307);
    assert_string_equal(r.error_kind, "http_error");
    prov_result_clear(&r);
    fcntl(rd.trap, F_SETFL, O_NONBLOCK);
    int c = accept(rd.trap, NULL, NULL);
    assert_true(c < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    close(rd.trap);
    close(rd.ls);
    unsetenv("BURSAR_TEST_KEY");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_usage_cost),
        cmocka_unit_test(test_anthropic_usage_cost),
        cmocka_unit_test(test_retry_after_429),
        cmocka_unit_test(test_retry_500),
        cmocka_unit_test(test_500_gives_up),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_untranslatable),
        cmocka_unit_test(test_no_usage_estimated),
        cmocka_unit_test(test_retry_after_over_limit),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_error_text_has_no_key),
        cmocka_unit_test(test_pool_concurrency_limit),
        cmocka_unit_test(test_url_check),
        cmocka_unit_test(test_url_refused_at_request),
        cmocka_unit_test(test_redirect_not_followed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
