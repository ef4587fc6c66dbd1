/*
 * test_ctl_metrics.c - bursard's Prometheus metrics (/metrics) against
 * the real daemon: the figures after choose and feedback traffic match
 * the stats reply exactly (decisions per arm, posterior means, shares,
 * the shadow price, spend, reservations, the paced targets, health), the
 * feedback counters by kind and result, the latency histograms count
 * the requests sent, expiry; and the access rules of the address: a
 * bearer token (401 without it, 200 with it), an allow-list without
 * 127.0.0.1 (the connection closed unanswered), 405 for POST, bad
 * metrics settings named by their JSON path.
 *
 * The daemon runs with a clock that moves only by the clock op
 * (--test-clock=START), so that time-dependent figures (the paced
 * target) are the same in the scrape and in the stats reply. HTTP is
 * spoken over a raw socket, as Prometheus would.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <lmdb.h>
#include <pthread.h>
#include <time.h>
#include <zmq.h>

#include "tests/harness.h"
#include "tests/http.h"

#define START "1767225600"

#define MODELS                                                                 \
    "\"models\":{"                                                             \
    "\"a\":{\"provider\":\"openai\",\"price_in_per_mtok\":1,"                  \
    "\"price_out_per_mtok\":2},"                                               \
    "\"b\":{\"provider\":\"anthropic\",\"price_in_per_mtok\":10,"              \
    "\"price_out_per_mtok\":20},"                                              \
    "\"c\":{\"provider\":\"openai\",\"price_in_per_mtok\":0.1,"                \
    "\"price_out_per_mtok\":0.2}}"

#define COMMON                                                                 \
    "\"budget\":{\"limit_usd\":100,\"window_s\":1000000000},"                  \
    "\"explore_floor\":0.05,\"decision_ttl_s\":60,"                            \
    "\"expiry\":{\"outcome\":\"none\",\"cost\":\"expected\"},"                 \
    "\"health\":{\"failures\":2,\"cooldown_s\":10,\"max_cooldown_s\":100},"    \
    "\"limits\":{\"max_tokens_in\":1000000,\"max_tokens_out\":1000000},"       \
    "\"policy\":{\"name\":\"ts-budget\",\"seed\":7}"

#define BUCKETS                                                                \
    "\"buckets\":{"                                                            \
    "\"code\":{\"models\":[\"a\",\"b\",\"c\"],\"expected_tokens_in\":1000,"    \
    "\"expected_tokens_out\":500},"                                            \
    "\"capped\":{\"models\":[\"a\",\"b\"],\"expected_tokens_in\":1000,"        \
    "\"expected_tokens_out\":500,\"budget\":{\"limit_usd\":1,"                 \
    "\"window_s\":1000000000}}}"

static const char *const config_plain = "{" MODELS "," BUCKETS "," COMMON "}";

/* ------------------------------------------------------------ HTTP */

/* One request over a fresh connection (Connection: close); the whole
 * answer in *r (th_http_free). Returns the bytes read: 0 when the server
 * closed the connection without answering. */
static size_t
http_raw(th_http_resp_t *r, unsigned port, const char *method, const char *path,
         const char *headers)
{
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: "
                     "close\r\nContent-Length: 0\r\n\r\n",
                     method, path, headers ? headers : "");
    th_http_exchange(r, port, req, (size_t)n, 0);
    if (r->timed_out)
        fail_msg("%s %s: no answer in 5 s", method, path);
    return r->bytes;
}

/* The status of an answer. */
static int
http_status(const th_http_resp_t *r)
{
    if (r->status == 0)
        fail_msg("not an HTTP answer: %.200s", r->raw);
    return r->status;
}

/* GET path with optional headers: the status, the answer in *r
 * (th_http_free). */
static int
http_get(th_http_resp_t *r, unsigned port, const char *path,
         const char *headers)
{
    if (http_raw(r, port, "GET", path, headers) == 0)
        fail_msg("GET %s: the connection was closed without an answer", path);
    return http_status(r);
}

/* The value of one series (name{labels} exactly as written) in an
 * exposition; fails the test when absent. */
static double
mval(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : p)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    fail_msg("series %s missing from the exposition", series);
    return NAN;
}

/* The same with the series formatted. */
static double mvalf(const char *text, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static double
mvalf(const char *text, const char *fmt, ...)
{
    char s[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s, sizeof s, fmt, ap);
    va_end(ap);
    return mval(text, s);
}

/* Equal to 1e-12, relative: the exposition prints every digit. */
static void
expect_close(double got, double want, const char *what)
{
    double tol = 1e-12 * fmax(1.0, fabs(want));
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: /metrics says %.17g, stats says %.17g", what, got, want);
}

/* --------------------------------------------------------- the daemon */

/* The metrics port bursard printed on its stderr (the log), waiting up
 * to 20 s. */
static unsigned
metrics_port(const th_daemon_t *d)
{
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(d->log, "r");
        char line[512];
        unsigned port = 0;
        while (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "metrics and status page on");
            if (p && (p = strstr(p, ", port ")))
                port = (unsigned)atoi(p + 7);
        }
        if (f)
            fclose(f);
        if (port)
            return port;
        th_sleep_ms(100);
    }
    fail_msg("bursard printed no metrics port; see %s", d->log);
    return 0;
}

/* 1 if a line of the daemon's log holds s. */
static int
log_has(const th_daemon_t *d, const char *s)
{
    FILE *f = fopen(d->log, "r");
    char line[512];
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, s) != NULL;
    if (f)
        fclose(f);
    return found;
}

/* Starts bursard with --metrics 127.0.0.1:0 and the fixed test clock;
 * returns the port it chose, once it answers ping. */
static unsigned
start_with_metrics(th_daemon_t *d)
{
    d->extra[0] = "--metrics";
    d->extra[1] = "127.0.0.1:0";
    th_start_args(d, "--test-clock=" START);
    unsigned port = metrics_port(d);
    th_client_t *c = th_client_new(d->endpoint);
    cJSON_Delete(th_ok(c, "{\"op\":\"ping\"}"));
    th_client_destroy(&c);
    return port;
}

/* The exposition (in *r: th_http_free), after promtool-free sanity: 200,
 * Prometheus' content type. */
static const char *
scrape(unsigned port, th_http_resp_t *r)
{
    int st = http_get(r, port, "/metrics", NULL);
    if (st != 200)
        fail_msg("GET /metrics: %d\n%s", st, r->raw);
    assert_non_null(strstr(r->raw, "text/plain; version=0.0.4"));
    return r->body;
}

/* ------------------------------------------------------------ traffic */

typedef struct counts {
    int choose, feedback, stats, clock;
} counts_t;

static char *
choose(th_client_t *c, counts_t *n, const char *bucket, const char *model,
       const char *exclude)
{
    cJSON *r =
        th_ok(c, "{\"op\":\"choose\",\"bucket\":\"%s\",\"exclude\":[%s]}",
              bucket, exclude);
    n->choose++;
    if (model)
        assert_string_equal(th_str(r, "model"), model);
    char *id = strdup(th_str(r, "decision_id"));
    cJSON_Delete(r);
    return id;
}

/* A feedback answered ok; dup: whether it must say duplicate. */
static void
feedback(th_client_t *c, counts_t *n, int dup, const char *id, const char *rest)
{
    cJSON *r =
        th_ok(c, "{\"op\":\"feedback\",\"decision_id\":\"%s\",%s}", id, rest);
    n->feedback++;
    assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(r, "duplicate")), dup);
    cJSON_Delete(r);
}

/* The figures of every arm, and the global and bucket ledgers. */
static void
check_arms_and_budgets(const char *m, const cJSON *s)
{
    double sum = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(s, "buckets"))
    {
        const char *bn = th_str(b, "name");
        const cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItem(b, "arms"))
        {
            const char *mn = th_str(a, "model");
            char what[128];
            snprintf(what, sizeof what, "%s/%s", bn, mn);
            double pulls = mvalf(m,
                                 "bursar_decisions_total{bucket=\"%s\","
                                 "model=\"%s\"}",
                                 bn, mn);
            assert_true(pulls == th_num(a, "pulls")); /* a counter: exact */
            sum += pulls;
            expect_close(mvalf(m,
                               "bursar_arm_posterior_mean{bucket=\"%s\","
                               "model=\"%s\"}",
                               bn, mn),
                         th_num(a, "mean"), what);
            expect_close(mvalf(m,
                               "bursar_arm_traffic_share{bucket=\"%s\","
                               "model=\"%s\"}",
                               bn, mn),
                         th_num(a, "share"), what);
            expect_close(mvalf(m,
                               "bursar_arm_cost_mean_usd{bucket=\"%s\","
                               "model=\"%s\"}",
                               bn, mn),
                         th_num(a, "cost_mean_usd"), what);
        }
    }
    assert_true(sum == th_num(s, "decisions"));
    const cJSON *g = cJSON_GetObjectItem(s, "budget");
    expect_close(mval(m, "bursar_shadow_price"),
                 th_num(cJSON_GetObjectItem(s, "policy"), "mu"), "mu");
    expect_close(mval(m, "bursar_budget_spent_usd"), th_num(g, "spent_usd"),
                 "spent");
    expect_close(mval(m, "bursar_budget_reserved_usd"),
                 th_num(g, "reserved_usd"), "reserved");
    expect_close(mval(m, "bursar_budget_limit_usd"), th_num(g, "limit_usd"),
                 "limit");
    expect_close(mval(m, "bursar_budget_window_seconds"), th_num(g, "window_s"),
                 "window");
    expect_close(mval(m, "bursar_budget_target_usd"), th_num(g, "target_usd"),
                 "target");
    expect_close(mval(m, "bursar_budget_window_requests"),
                 th_num(g, "requests"), "requests");
    const cJSON *cb = cJSON_GetObjectItem(th_bucket(s, "capped"), "budget");
    static const char *const fig[][2] = {
        {"limit_usd", "limit_usd"},   {"window_seconds", "window_s"},
        {"spent_usd", "spent_usd"},   {"reserved_usd", "reserved_usd"},
        {"target_usd", "target_usd"},
    };
    for (size_t i = 0; i < sizeof fig / sizeof fig[0]; i++)
        expect_close(
            mvalf(m, "bursar_bucket_budget_%s{bucket=\"capped\"}", fig[i][0]),
            th_num(cb, fig[i][1]), fig[i][0]);
    /* "code" has no budget of its own: no series */
    assert_null(strstr(m, "bursar_bucket_budget_limit_usd{bucket=\"code\"}"));
}

/* Health of c after two provider errors: cooling down. */
static void
check_health(const char *m, const cJSON *s)
{
    const cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItem(s, "health"))
    {
        const char *mn = th_str(h, "model");
        const char *st = th_str(h, "state");
        static const char *const states[] = {"ok", "cooldown", "probing",
                                             "half_open"};
        for (size_t k = 0; k < 4; k++)
            assert_true(mvalf(m,
                              "bursar_model_health{model=\"%s\",state=\"%s\"}",
                              mn, states[k]) == (strcmp(st, states[k]) == 0));
        assert_true(mvalf(m, "bursar_model_consecutive_failures{model=\"%s\"}",
                          mn) == th_num(h, "consecutive_failures"));
        assert_true(mvalf(m, "bursar_model_provider_errors_total{model=\"%s\"}",
                          mn) == th_num(h, "errors_total"));
        const cJSON *u = cJSON_GetObjectItem(h, "cooldown_until");
        double until = cJSON_IsNumber(u) ? u->valuedouble : 0;
        expect_close(
            mvalf(m, "bursar_model_cooldown_end_seconds{model=\"%s\"}", mn),
            until, "cooldown end");
    }
    assert_string_equal(
        th_str(cJSON_GetArrayItem(cJSON_GetObjectItem(s, "health"), 2),
               "state"),
        "cooldown"); /* c, the third model */
}

/* Each op's histogram counts the requests sent. */
static void
check_requests(const char *m, const counts_t *n)
{
    static const char *const ops[] = {"choose", "feedback", "stats", "clock"};
    int want[] = {n->choose, n->feedback, n->stats, n->clock};
    for (size_t i = 0; i < 4; i++) {
        double cnt = mvalf(
            m, "bursar_request_duration_seconds_count{op=\"%s\"}", ops[i]);
        if (cnt != want[i])
            fail_msg("op %s: the histogram counts %g requests, %d were sent",
                     ops[i], cnt, want[i]);
        assert_true(mvalf(m,
                          "bursar_request_duration_seconds_bucket{op=\"%s\","
                          "le=\"+Inf\"}",
                          ops[i]) == cnt);
    }
    assert_true(mval(m, "bursar_request_duration_seconds_count{op=\"ping\"}") >=
                1);
    double commits = mval(m, "bursar_commit_duration_seconds_count");
    assert_true(commits >= 1);
    assert_true(mval(m, "bursar_commit_duration_seconds_bucket{le=\"+Inf\"}") ==
                commits);
    assert_true(mval(m, "bursar_commit_duration_seconds_sum") > 0);
}

static void
check_feedback(const char *m)
{
    static const struct {
        const char *kind, *result;
        double n;
    } want[] = {
        {"outcome", "applied", 2},          {"outcome", "duplicate", 1},
        {"outcome", "unknown_decision", 1}, {"outcome", "invalid_value", 1},
        {"correction", "applied", 1},       {"correction", "duplicate", 1},
        {"provider_error", "applied", 2},   {"provider_error", "duplicate", 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        double got =
            mvalf(m, "bursar_feedback_total{kind=\"%s\",result=\"%s\"}",
                  want[i].kind, want[i].result);
        if (got != want[i].n)
            fail_msg("feedback %s %s: %g, want %g", want[i].kind,
                     want[i].result, got, want[i].n);
    }
    /* no error that did not happen */
    assert_null(strstr(m, "result=\"store_error\""));
    assert_null(strstr(m, "kind=\"correction\",result=\"unknown_decision\""));
}

/* Choose and feedback of every kind and result; returns the decisions. */
static void
traffic(th_client_t *c, counts_t *n, char **ids)
{
    ids[0] = choose(c, n, "code", "a", "\"b\",\"c\"");
    ids[1] = choose(c, n, "code", "b", "\"a\",\"c\"");
    ids[2] = choose(c, n, "code", "a", "\"b\",\"c\"");
    ids[3] = choose(c, n, "code", "c", "\"a\",\"b\"");
    ids[4] = choose(c, n, "code", "c", "\"a\",\"b\"");
    ids[5] = choose(c, n, "capped", NULL, "");
    ids[6] = choose(c, n, "capped", NULL, "");
    ids[7] = choose(c, n, "code", NULL, "\"c\"");
    feedback(c, n, 0, ids[0],
             "\"kind\":\"outcome\",\"success\":true,\"cost_usd\":0.25");
    feedback(c, n, 1, ids[0],
             "\"kind\":\"outcome\",\"success\":false,\"cost_usd\":0.5");
    feedback(c, n, 0, ids[1],
             "\"kind\":\"outcome\",\"reward\":0.5,\"tokens_in\":1000,"
             "\"tokens_out\":300");
    feedback(c, n, 0, ids[2], "\"kind\":\"correction\"");
    feedback(c, n, 1, ids[2], "\"kind\":\"correction\"");
    feedback(c, n, 0, ids[3], "\"kind\":\"provider_error\",\"error\":\"503\"");
    feedback(c, n, 0, ids[4], "\"kind\":\"provider_error\",\"error\":\"503\"");
    feedback(c, n, 1, ids[4], "\"kind\":\"provider_error\",\"error\":\"503\"");
    th_expect_error(c, "unknown_decision",
                    "{\"op\":\"feedback\",\"decision_id\":"
                    "\"00000000000fffff\",\"kind\":\"outcome\","
                    "\"success\":true}");
    n->feedback++;
    /* above what a can cost at limits.max_tokens_in/out (3 USD) */
    th_expect_error(c, "invalid_value",
                    "{\"op\":\"feedback\",\"decision_id\":\"%s\","
                    "\"kind\":\"outcome\",\"success\":true,\"cost_usd\":100}",
                    ids[2]);
    n->feedback++;
}

static void
test_metrics_match_stats(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, config_plain);
    unsigned port = start_with_metrics(&d);
    th_client_t *c = th_client_new(d.endpoint);
    counts_t n = {0};
    char *ids[8];
    traffic(c, &n, ids);
    cJSON *s = th_ok(c, "{\"op\":\"stats\"}");
    n.stats++;
    th_http_resp_t r;
    const char *m = scrape(port, &r);
    check_arms_and_budgets(m, s);
    check_health(m, s);
    check_feedback(m);
    check_requests(m, &n);
    assert_true(mval(m, "bursar_decisions_in_flight") == 6); /* 8 - 2 */
    expect_close(mval(m, "bursar_spend_usd_total"),
                 th_num(cJSON_GetObjectItem(s, "budget"), "spent_usd"),
                 "spend since start");
    assert_true(mval(m, "bursar_build_info{version=\"" BURSAR_VERSION "\"}") ==
                1);
    assert_true(mval(m, "bursar_buckets") == 2);
    cJSON_Delete(s);
    th_http_free(&r);

    /* past decision_ttl_s: the 6 pending decisions expire at the next
     * batch, their expected costs booked */
    cJSON_Delete(th_ok(c, "{\"op\":\"clock\",\"advance_s\":61}"));
    n.clock++;
    s = th_ok(c, "{\"op\":\"stats\"}");
    n.stats++;
    m = scrape(port, &r);
    assert_true(mval(m, "bursar_decisions_expired_total") == 6);
    assert_true(mval(m, "bursar_decisions_in_flight") == 0);
    assert_true(mval(m, "bursar_budget_reserved_usd") == 0);
    expect_close(mval(m, "bursar_spend_usd_total"),
                 th_num(cJSON_GetObjectItem(s, "budget"), "spent_usd"),
                 "spend since start");
    check_arms_and_budgets(m, s);
    check_requests(m, &n);
    cJSON_Delete(s);
    th_http_free(&r);
    for (int i = 0; i < 8; i++)
        free(ids[i]);
    th_client_destroy(&c);
    assert_int_equal(th_stop(&d), 0);
    th_cleanup(&d);
}

/* ------------------------------------------------------ access control */

static void
test_token(void **state)
{
    (void)state;
    setenv("BURSAR_TEST_METRICS_TOKEN", "s3cret-Token", 1);
    th_daemon_t d;
    th_setup(&d, "{" MODELS "," BUCKETS "," COMMON
                 ",\"metrics\":{\"listen\":\"127.0.0.1:0\","
                 "\"token_env\":\"BURSAR_TEST_METRICS_TOKEN\"}}");
    th_start(&d);
    unsigned port = metrics_port(&d);
    th_http_resp_t r;
    assert_int_equal(http_get(&r, port, "/metrics", NULL), 401);
    assert_non_null(strstr(r.raw, "WWW-Authenticate: Bearer"));
    th_http_free(&r);
    assert_int_equal(
        http_get(&r, port, "/metrics", "Authorization: Bearer wrong-Token\r\n"),
        401);
    th_http_free(&r);
    assert_int_equal(http_get(&r, port, "/metrics",
                              "Authorization: Bearer s3cret-Token\r\n"),
                     200);
    assert_non_null(strstr(r.body, "# TYPE bursar_decisions_total counter"));
    th_http_free(&r);
    /* POST: 405 (with the token) */
    assert_true(http_raw(&r, port, "POST", "/metrics",
                         "Authorization: Bearer s3cret-Token\r\n") > 0);
    assert_int_equal(http_status(&r), 405);
    th_http_free(&r);
    /* SIGHUP with the token removed: said to wait for a restart, and the
     * token is still required until then */
    th_write_config(&d, "{" MODELS "," BUCKETS "," COMMON
                        ",\"metrics\":{\"listen\":\"127.0.0.1:0\"}}");
    th_signal(&d, SIGHUP);
    int said = 0;
    for (int i = 0; i < 100 && !said; i++) {
        th_sleep_ms(50);
        said = log_has(&d, "take effect at a restart");
    }
    if (!said)
        fail_msg("no warning about metrics.* on SIGHUP; see %s", d.log);
    assert_int_equal(http_get(&r, port, "/metrics", NULL), 401);
    th_http_free(&r);
    assert_int_equal(th_stop(&d), 0);
    th_cleanup(&d);
    unsetenv("BURSAR_TEST_METRICS_TOKEN");
}

static void
test_method_and_not_found(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, "{" MODELS "," BUCKETS "," COMMON
                 ",\"metrics\":{\"listen\":\"127.0.0.1:0\"}}");
    th_start(&d);
    unsigned port = metrics_port(&d);
    th_http_resp_t r;
    assert_true(http_raw(&r, port, "POST", "/metrics", NULL) > 0);
    assert_int_equal(http_status(&r), 405);
    assert_non_null(strstr(r.raw, "Allow: GET, HEAD"));
    th_http_free(&r);
    assert_int_equal(http_get(&r, port, "/nope", NULL), 404);
    th_http_free(&r);
    assert_int_equal(http_get(&r, port, "/metrics", NULL), 200);
    th_http_free(&r);
    assert_int_equal(th_stop(&d), 0);
    th_cleanup(&d);
}

static void
test_allow_excludes_loopback(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, "{" MODELS "," BUCKETS "," COMMON
                 ",\"metrics\":{\"listen\":\"127.0.0.1:0\","
                 "\"allow\":[\"10.0.0.0/8\",\"192.168.1.7\"]}}");
    th_start(&d);
    unsigned port = metrics_port(&d);
    th_http_resp_t r;
    size_t got = http_raw(&r, port, "GET", "/metrics", NULL);
    if (got != 0)
        fail_msg("a client outside metrics.allow got an answer:\n%s", r.raw);
    th_http_free(&r);
    /* the daemon still serves its clients */
    th_client_t *c = th_client_new(d.endpoint);
    cJSON_Delete(th_ok(c, "{\"op\":\"ping\"}"));
    th_client_destroy(&c);
    assert_int_equal(th_stop(&d), 0);
    th_cleanup(&d);
}

static double
mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One GET on its own thread: its status and how long it took. */
typedef struct getter {
    pthread_t t;
    unsigned port;
    const char *path;
    int status;
    double seconds;
} getter_t;

static void *
getter_run(void *arg)
{
    getter_t *g = arg;
    double t0 = mono_s();
    th_http_resp_t r;
    th_http_do(&r, g->port, "GET", g->path, NULL, NULL, 0,
               TH_HTTP_UNTIL_LENGTH);
    g->status = r.status;
    g->seconds = mono_s() - t0;
    th_http_free(&r);
    return NULL;
}

#define STALL_N 12 /* requests for the loop at once: 8 may wait */

/* A loop held up: the test holds LMDB's write lock, so bursard's next
 * batch waits to begin its transaction. Requests for the loop are
 * answered 503 within their 5 s (not 5 s more for each one ahead in
 * line), those beyond 8 waiting at once; /healthz at once. Released and
 * stopped with requests waiting, bursard exits promptly, answering them. */
static void
test_stalled_loop(void **state)
{
    (void)state;
    th_daemon_t d;
    th_setup(&d, config_plain);
    unsigned port = start_with_metrics(&d);
    th_http_timeout(20);
    MDB_env *env;
    MDB_txn *txn;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 64), 0);
    assert_int_equal(mdb_env_open(env, d.state, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    void *z = zmq_socket(th_zctx(), ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(z, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(z, d.endpoint), 0);
    const char ping[] = "{\"op\":\"ping\"}";
    assert_true(zmq_send(z, ping, sizeof ping - 1, 0) > 0);
    th_sleep_ms(300); /* the loop now waits for the lock */

    getter_t g[STALL_N], h = {.port = port, .path = "/healthz"};
    for (int i = 0; i < STALL_N; i++) {
        g[i] = (getter_t){.port = port, .path = "/metrics"};
        pthread_create(&g[i].t, NULL, getter_run, &g[i]);
    }
    pthread_create(&h.t, NULL, getter_run, &h);
    pthread_join(h.t, NULL);
    assert_int_equal(h.status, 200);
    assert_true(h.seconds < 2);
    int at_once = 0;
    for (int i = 0; i < STALL_N; i++) {
        pthread_join(g[i].t, NULL);
        if (g[i].status != 503 || g[i].seconds > 6.5)
            fail_msg("/metrics #%d while the loop is held: %d after %.1f s "
                     "(expected 503 within 5 s)",
                     i, g[i].status, g[i].seconds);
        at_once += g[i].seconds < 2;
    }
    assert_true(at_once >= STALL_N - 8);

    /* stop while requests wait, then let the loop go */
    for (int i = 0; i < 3; i++) {
        g[i] = (getter_t){.port = port, .path = "/metrics"};
        pthread_create(&g[i].t, NULL, getter_run, &g[i]);
    }
    th_sleep_ms(300);
    th_signal(&d, SIGTERM);
    mdb_txn_abort(txn);
    double t0 = mono_s();
    assert_int_equal(th_stop(&d), 0);
    for (int i = 0; i < 3; i++) {
        pthread_join(g[i].t, NULL);
        if (g[i].status != 503 && g[i].status != 0) /* 0: closed at exit */
            fail_msg("/metrics at stop: %d", g[i].status);
    }
    double took = mono_s() - t0;
    if (took > 3)
        fail_msg("bursard took %.1f s to stop with requests waiting", took);
    zmq_close(z);
    mdb_env_close(env);
    th_http_timeout(TH_HTTP_TIMEOUT_S);
    th_cleanup(&d);
}

/* Bad metrics settings: --check-config exits 1 naming the JSON path. */
static void
test_bad_config(void **state)
{
    (void)state;
    static const struct {
        const char *metrics, *path;
    } bad[] = {
        {"{\"listen\":\"nope\"}", "$.metrics.listen"},
        {"{\"listen\":\"127.0.0.1:99999\"}", "$.metrics.listen"},
        {"{\"listen\":\"127.0.0.1:0\",\"allow\":[\"x\"]}",
         "$.metrics.allow[0]"},
        {"{\"listen\":\"127.0.0.1:0\",\"allow\":[\"10.0.0.0/8\",7]}",
         "$.metrics.allow[1]"},
        {"{\"listen\":\"127.0.0.1:0\",\"token_env\":5}", "$.metrics.token_env"},
    };
    th_daemon_t d;
    th_setup(&d, config_plain);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char cfg[4096], cmd[4096], out[4096];
        snprintf(cfg, sizeof cfg,
                 "{" MODELS "," BUCKETS "," COMMON ",\"metrics\":%s}",
                 bad[i].metrics);
        th_write_config(&d, cfg);
        snprintf(cmd, sizeof cmd, "%s --check-config %s 2>&1",
                 th_need("bursard"), d.config);
        int st = th_run(cmd, out, sizeof out);
        if (st != 1 || !strstr(out, bad[i].path))
            fail_msg("metrics %s: exit %d, want 1 naming %s:\n%s",
                     bad[i].metrics, st, bad[i].path, out);
    }
    /* --metrics on the command line: exit 2 naming it */
    char cmd[4096], out[4096];
    snprintf(cmd, sizeof cmd, "%s --metrics 7878 --state-dir %s 2>&1",
             th_need("bursard"), d.state);
    int st = th_run(cmd, out, sizeof out);
    if (st != 2 || !strstr(out, "--metrics 7878"))
        fail_msg("--metrics 7878: exit %d, want 2 naming it:\n%s", st, out);
    /* a token variable that is not set: bursard does not start */
    unsetenv("BURSAR_TEST_UNSET_TOKEN");
    th_write_config(&d, "{" MODELS "," BUCKETS "," COMMON
                        ",\"metrics\":{\"listen\":\"127.0.0.1:0\","
                        "\"token_env\":\"BURSAR_TEST_UNSET_TOKEN\"}}");
    snprintf(cmd, sizeof cmd,
             "%s --config %s --state-dir %s --listen %s 2>&1 </dev/null",
             th_need("bursard"), d.config, d.state, d.endpoint);
    st = th_run(cmd, out, sizeof out);
    if (st != 1 || !strstr(out, "BURSAR_TEST_UNSET_TOKEN"))
        fail_msg("unset token_env: exit %d, want 1 naming it:\n%s", st, out);
    th_cleanup(&d);
}

static int
teardown(void **state)
{
    (void)state;
    th_kill_all();
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_metrics_match_stats, teardown),
        cmocka_unit_test_teardown(test_token, teardown),
        cmocka_unit_test_teardown(test_method_and_not_found, teardown),
        cmocka_unit_test_teardown(test_allow_excludes_loopback, teardown),
        cmocka_unit_test_teardown(test_bad_config, teardown),
        cmocka_unit_test_teardown(test_stalled_loop, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
