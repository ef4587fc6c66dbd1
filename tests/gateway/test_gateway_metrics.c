/*
 * test_gateway_metrics.c - bursar-gateway's Prometheus metrics (issue 12,
 * docs/gateway.md "Metrics"): the real bursard (tests/harness.h), the
 * mock provider (tests/agents/util.h) and the real gateway, spoken to
 * over raw sockets on 127.0.0.1.
 *
 * Traffic of known shape goes through the gateway: answers (one of them
 * streamed), an upstream 500 that falls back to the bucket's other model
 * (policy "cheapest" makes the failing model the first choice), a 401, a
 * 404 of an unknown model and one of an unknown path, /healthz and
 * /v1/models, then a client that leaves while the upstream is slow. The
 * scrape must count each exactly: requests by route and code (499: the
 * client left), the added latency histogram's count (one per chat
 * completion answered) and its sum below the upstream time it excludes,
 * upstream latency and errors by model and kind, fallbacks, cancelled.
 * Access control: the bearer token of metrics.token_env (401 without it),
 * and a second gateway whose metrics.allow excludes loopback closes the
 * connection without an answer. promtool (Debian package prometheus)
 * checks the exposition. Bad metrics configurations exit 1 naming their
 * JSON path, a bad --metrics exits 2, an unset token variable or an
 * address in use fails the start. The tests run in order and share the
 * daemons; the gateway exits 0 on SIGTERM at the end (LeakSanitizer in
 * the sanitizer build).
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "tests/agents/util.h"
#include "tests/gateway/gwtest.h"
#include "tests/harness.h"
#include "tests/http.h"

#define GWM_KEY_ENV    "BURSAR_GWM_PROVIDER_KEY"
#define GWM_PROV_KEY   "gwm-test-provider-key"
#define GWM_TOKEN_ENV  "BURSAR_GWM_METRICS_TOKEN"
#define GWM_TOKEN      "gwm-scrape-token-0123456789"
#define GWM_IO_TIMEOUT 15  /* seconds a socket waits */
#define GWM_GOOD_MS    300 /* the good model's upstream latency */
#define GWM_PROMTOOL   "/usr/bin/promtool"

#define R_CHAT "/v1/chat/completions"

static struct {
    th_daemon_t ctl;
    pid_t mock, gw;
    int mock_port, gw_port, met_port;
    char log[700];
    char bearer[160];
} g;

/* good-up answers after GWM_GOOD_MS; bad-up answers 500; lazy-up after
 * 5 s (a client leaves before). */
static const char *SCRIPT =
    "{\"require_key\":\"" GWM_PROV_KEY "\",\"models\":{"
    "\"good-up\":{\"default\":{\"content\":\"fine\",\"latency_ms\":300,"
    "\"usage\":{\"in\":10,\"out\":2}}},"
    "\"bad-up\":{\"default\":{\"status\":500}},"
    "\"lazy-up\":{\"default\":{\"content\":\"late\",\"latency_ms\":5000}}}}";

static void
models_json(char *buf, size_t cap)
{
    snprintf(buf, cap,
             "{\"good\":{\"provider\":\"openai\",\"model\":\"good-up\","
             "\"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key_env\":\"%s\","
             "\"price_in_per_mtok\":1,\"price_out_per_mtok\":2},"
             "\"bad\":{\"provider\":\"openai\",\"model\":\"bad-up\","
             "\"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key_env\":\"%s\","
             "\"price_in_per_mtok\":0.1,\"price_out_per_mtok\":0.2},"
             "\"lazy\":{\"provider\":\"openai\",\"model\":\"lazy-up\","
             "\"base_url\":\"http://127.0.0.1:%d/v1\",\"api_key_env\":\"%s\","
             "\"price_in_per_mtok\":1,\"price_out_per_mtok\":2}}",
             g.mock_port, GWM_KEY_ENV, g.mock_port, GWM_KEY_ENV, g.mock_port,
             GWM_KEY_ENV);
}

/* ------------------------------------------------------------ HTTP */

/* One request on a fresh connection; auth the whole Authorization value
 * or NULL, body NULL for none. The body as it came (chunks not decoded). */
static void
http_do(th_http_resp_t *r, int port, const char *method, const char *path,
        const char *auth, const char *body)
{
    char headers[256] = "";
    if (auth)
        snprintf(headers, sizeof headers, "Authorization: %s\r\n", auth);
    th_http_do(r, (unsigned)port, method, path, headers, body,
               body ? strlen(body) : 0, 0);
}

/* A chat completion of model (a bucket as "bursar/B"), with the key. */
static void
chat(th_http_resp_t *r, const char *model, int stream, const char *auth)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"model\":\"%s\",\"stream\":%s,\"messages\":[{\"role\":"
             "\"user\",\"content\":\"hello\"}]}",
             model, stream ? "true" : "false");
    http_do(r, g.gw_port, "POST", "/v1/chat/completions", auth, body);
}

static void
expect_status(th_http_resp_t *r, int status, const char *what)
{
    if (r->status != status)
        fail_msg("%s: status %d, expected %d: %.400s", what, r->status, status,
                 r->body);
}

/* ------------------------------------------------------------ scrapes */

/* GET /metrics on port with the token; the text (malloc'ed). */
static char *
scrape_port(int port)
{
    char auth[128];
    snprintf(auth, sizeof auth, "Bearer %s", GWM_TOKEN);
    th_http_resp_t r;
    http_do(&r, port, "GET", "/metrics", auth, NULL);
    expect_status(&r, 200, "GET /metrics");
    if (!strstr(r.head, "text/plain; version=0.0.4"))
        fail_msg("/metrics: not Prometheus' text format: %s", r.head);
    char *text = r.body;
    r.body = NULL;
    th_http_free(&r);
    return text;
}

static char *
scrape(void)
{
    return scrape_port(g.met_port);
}

/* The value of the sample whose name and labels are exactly series
 * (`name{k="v",...}` as the gateway writes them), or -1 when the
 * exposition has none. */
static double
sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l)
        if (strncmp(l, series, n) == 0 && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return -1;
}

/* The sum of the samples of family name with labels (0 when none). */
static double
family_sum(const char *text, const char *name)
{
    double s = 0;
    size_t n = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : l)
        if (strncmp(l, name, n) == 0 && (l[n] == '{' || l[n] == ' ')) {
            const char *sp = strchr(l, ' ');
            s += strtod(sp + 1, NULL);
        }
    return s;
}

static double
requests(const char *text, const char *route, int code)
{
    char s[256];
    snprintf(s, sizeof s,
             "bursar_gateway_requests_total{route=\"%s\",code=\"%d\"}", route,
             code);
    double v = sample(text, s);
    return v < 0 ? 0 : v;
}

static void
expect_sample(const char *text, const char *series, double want)
{
    double v = sample(text, series);
    if (v != want)
        fail_msg("%s is %g, expected %g; the scrape:\n%s", series, v, want,
                 text);
}

/* Scrapes until series has the value want (the gateway counts some
 * things after the answer has left), up to 5 s; the last text. */
static char *
scrape_until(const char *series, double want)
{
    double t0 = tu_now();
    for (;;) {
        char *text = scrape();
        if (sample(text, series) == want || tu_now() - t0 > 5.0)
            return text;
        free(text);
        tu_sleep_ms(20);
    }
}

/* ------------------------------------------------------- the daemons */

/* The port of "metrics on ..., port N" in log, waiting up to 20 s for
 * process pid; 0 when it exits first. */
static int
metrics_port(pid_t pid, const char *log)
{
    double t0 = tu_now();
    while (tu_now() - t0 < 20.0) {
        char *s = tu_read_file(log);
        const char *m = s ? strstr(s, "bursar-gateway: metrics on ") : NULL;
        const char *p = m ? strstr(m, ", port ") : NULL;
        int port = p ? atoi(p + 7) : 0;
        free(s);
        if (port > 0)
            return port;
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return 0;
        tu_sleep_ms(10);
    }
    return 0;
}

/* Starts bursar-gateway --config path --listen 127.0.0.1:0 [extra
 * args...]; its API port, its metrics port and its log. */
static pid_t
gateway_start(const char *path, const char *name, char *const *extra, int *port,
              int *mport, char *log, size_t logcap)
{
    char out[700];
    snprintf(out, sizeof out, "%s/%s.port", g.ctl.dir, name);
    snprintf(log, logcap, "%s/%s.log", g.ctl.dir, name);
    char *argv[12] = {(char *)th_need("bursar-gateway"), "--config",
                      (char *)path, "--listen", "127.0.0.1:0"};
    for (size_t i = 0; extra && extra[i] && i < 6; i++)
        argv[5 + i] = extra[i];
    pid_t pid = tu_spawn(argv, NULL, out, log);
    *port = tu_wait_port(pid, out, 20000);
    *mport = *port > 0 ? metrics_port(pid, log) : 0;
    if (*port <= 0 || *mport <= 0) {
        int st = tu_wait(pid, 1000);
        char *s = tu_read_file(log);
        fail_msg("bursar-gateway (%s) printed no port or no metrics port "
                 "within 20 s (exit %d); its log:\n%s",
                 name, st, s ? s : "(none)");
    }
    return pid;
}

/* A key of tenant acme (g.bearer); its configuration entry into entry. */
static void
new_key(char *entry, size_t cap)
{
    char key[128];
    gwt_new_key("acme", key, sizeof key, entry, cap);
    snprintf(g.bearer, sizeof g.bearer, "Bearer %.120s", key);
}

/* The gateway's configuration, with more members (",\"k\":v" or ""),
 * written to dir/name.json; the path into path. */
static void
gateway_config(char *path, size_t cap, const char *name, const char *entry,
               const char *more)
{
    char models[2048], text[8192];
    models_json(models, sizeof models);
    snprintf(text, sizeof text,
             "{\"controller\":\"%s\",\"spool\":\"%s/%s.spool\","
             "\"models\":%s,\"routing\":{\"default\":\"general\","
             "\"rules\":[]},\"keys\":[%s],\"allow_anonymous\":false,"
             "\"provider\":{\"timeout_ms\":20000,\"max_attempts\":1}%s}",
             g.ctl.endpoint, g.ctl.dir, name, models, entry, more);
    snprintf(path, cap, "%s/%s.json", g.ctl.dir, name);
    tu_write_file(path, text);
}

static char key_entry[256];

static int
setup(void **state)
{
    (void)state;
    memset(&g, 0, sizeof g);
    th_need("bursar-gateway");
    th_need("bursard");
    th_need("bursar-mock-provider");
    g.mock = tu_mock_start(SCRIPT, &g.mock_port);
    if (g.mock_port <= 0)
        fail_msg("bursar-mock-provider did not start (BURSAR_BIN_DIR %s)",
                 getenv("BURSAR_BIN_DIR"));
    char models[2048], text[8192], path[700];
    models_json(models, sizeof models);
    /* cheapest: bad is the first choice of bucket fb, good its fallback */
    snprintf(text, sizeof text,
             "{\"models\":%s,\"buckets\":{\"general\":{\"models\":"
             "[\"good\"]},\"fb\":{\"models\":[\"bad\",\"good\"]},"
             "\"lazy\":{\"models\":[\"lazy\"]}},"
             "\"policy\":{\"name\":\"cheapest\"},"
             "\"unknown_bucket\":{\"action\":\"error\"}}",
             models);
    th_setup(&g.ctl, text);
    th_start(&g.ctl);
    new_key(key_entry, sizeof key_entry);
    setenv(GWM_KEY_ENV, GWM_PROV_KEY, 1);
    setenv(GWM_TOKEN_ENV, GWM_TOKEN, 1); /* inherited by the gateways */
    /* the address from --metrics: the configuration has none */
    gateway_config(path, sizeof path, "gw", key_entry,
                   ",\"metrics\":{\"token_env\":\"" GWM_TOKEN_ENV "\"}");
    char *extra[] = {"--metrics", "127.0.0.1:0", NULL};
    g.gw = gateway_start(path, "gw", extra, &g.gw_port, &g.met_port, g.log,
                         sizeof g.log);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    if (g.gw > 0)
        tu_kill(g.gw, SIGKILL);
    if (g.mock > 0)
        tu_kill(g.mock, SIGKILL);
    th_cleanup(&g.ctl);
    return 0;
}

/* ------------------------------------------------------------ tests */

static void
test_scrape_at_start(void **state)
{
    (void)state;
    char *t = scrape();
    assert_true(family_sum(t, "bursar_gateway_requests_total") == 0);
    expect_sample(t, "bursar_gateway_requests_in_flight", 0);
    expect_sample(t, "bursar_gateway_controller_up", 1);
    expect_sample(t, "bursar_gateway_fallbacks_total", 0);
    expect_sample(t, "bursar_gateway_added_latency_seconds_count", 0);
    /* every configured model has its series before its first call */
    const char *ms[] = {"good", "bad", "lazy"};
    for (size_t i = 0; i < 3; i++) {
        char s[160];
        snprintf(s, sizeof s,
                 "bursar_gateway_upstream_latency_seconds_count{model=\"%s\"}",
                 ms[i]);
        expect_sample(t, s, 0);
    }
    if (!strstr(t, "bursar_gateway_build_info{version=\""))
        fail_msg("no bursar_gateway_build_info{version=...}:\n%s", t);
    free(t);
}

static void
test_traffic_counted(void **state)
{
    (void)state;
    th_http_resp_t r;
    for (int i = 0; i < 3; i++) {
        chat(&r, "bursar/general", 0, g.bearer);
        expect_status(&r, 200, "bursar/general");
        th_http_free(&r);
    }
    chat(&r, "bursar/general", 1, g.bearer);
    expect_status(&r, 200, "bursar/general, streamed");
    assert_non_null(strstr(r.body, "data: [DONE]"));
    th_http_free(&r);
    /* bad (the cheapest) answers 500; good serves */
    chat(&r, "bursar/fb", 0, g.bearer);
    expect_status(&r, 200, "bursar/fb");
    if (!strstr(r.head, "x-bursar-model: good"))
        fail_msg("bursar/fb not served by good: %s", r.head);
    th_http_free(&r);
    assert_int_equal(tu_mock_requests(g.mock_port, "bad-up", "500"), 1);
    chat(&r, "bursar/general", 0, NULL);
    expect_status(&r, 401, "no key");
    th_http_free(&r);
    chat(&r, "no-such-model", 0, g.bearer);
    expect_status(&r, 404, "an unknown model");
    th_http_free(&r);
    http_do(&r, g.gw_port, "GET", "/nope", g.bearer, NULL);
    expect_status(&r, 404, "GET /nope");
    th_http_free(&r);
    http_do(&r, g.gw_port, "GET", "/healthz", NULL, NULL);
    expect_status(&r, 200, "GET /healthz");
    th_http_free(&r);
    http_do(&r, g.gw_port, "GET", "/v1/models", g.bearer, NULL);
    expect_status(&r, 200, "GET /v1/models");
    th_http_free(&r);

    char *t = scrape_until("bursar_gateway_requests_in_flight", 0);
    expect_sample(t, "bursar_gateway_requests_in_flight", 0);
    assert_true(requests(t, R_CHAT, 200) == 5);
    assert_true(requests(t, R_CHAT, 401) == 1);
    assert_true(requests(t, R_CHAT, 404) == 1);
    assert_true(requests(t, "other", 404) == 1);
    assert_true(requests(t, "/healthz", 200) == 1);
    assert_true(requests(t, "/v1/models", 200) == 1);
    if (family_sum(t, "bursar_gateway_requests_total") != 10)
        fail_msg("requests_total sums to %g, expected 10:\n%s",
                 family_sum(t, "bursar_gateway_requests_total"), t);
    /* one observation per chat completion answered */
    expect_sample(t, "bursar_gateway_added_latency_seconds_count", 7);
    expect_sample(t, "bursar_gateway_added_latency_seconds_bucket{le=\"+Inf\"}",
                  7);
    expect_sample(
        t, "bursar_gateway_upstream_latency_seconds_count{model=\"good\"}", 5);
    expect_sample(
        t, "bursar_gateway_upstream_latency_seconds_count{model=\"bad\"}", 1);
    expect_sample(
        t, "bursar_gateway_upstream_latency_seconds_count{model=\"lazy\"}", 0);
    expect_sample(t,
                  "bursar_gateway_upstream_errors_total{model=\"bad\","
                  "kind=\"server_error\"}",
                  1);
    assert_true(family_sum(t, "bursar_gateway_upstream_errors_total") == 1);
    expect_sample(t, "bursar_gateway_fallbacks_total", 1);
    expect_sample(t, "bursar_gateway_escalations_total", 0);
    expect_sample(t, "bursar_gateway_cancelled_total", 0);
    expect_sample(t, "bursar_gateway_feedback_lost_total", 0);
    expect_sample(t, "bursar_gateway_feedback_refused_total", 0);
    expect_sample(t, "bursar_gateway_controller_up", 1);
    /* the added latency excludes the upstream's: good's 5 calls took at
     * least 5 x GWM_GOOD_MS; the gateway's own time for 7 requests is a
     * small part of it (half is a wide margin: a request's own time is a
     * few milliseconds, a decision's round trip included) */
    double up = sample(
        t, "bursar_gateway_upstream_latency_seconds_sum{model=\"good\"}");
    double added = sample(t, "bursar_gateway_added_latency_seconds_sum");
    print_message("upstream good: %.3f s, added: %.3f s\n", up, added);
    assert_true(up >= 5 * GWM_GOOD_MS / 1000.0);
    assert_true(added >= 0 && added < up / 2);
    free(t);
    t = scrape_until("bursar_gateway_report_queue", 0);
    expect_sample(t, "bursar_gateway_report_queue", 0);
    free(t);
}

/* 1 when the mock received a request for lazy-up. */
static int
mock_has_lazy(void)
{
    th_http_resp_t r;
    http_do(&r, g.mock_port, "GET", "/stats", NULL, NULL);
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "models"), "lazy-up");
    int has = cJSON_GetObjectItemCaseSensitive(m, "last_body") != NULL;
    cJSON_Delete(j);
    th_http_free(&r);
    return has;
}

static void
test_client_leaves(void **state)
{
    (void)state;
    const char *body = "{\"model\":\"bursar/lazy\",\"messages\":[{\"role\":"
                       "\"user\",\"content\":\"take your time\"}]}";
    char head[1024];
    int n = snprintf(head, sizeof head,
                     "POST /v1/chat/completions HTTP/1.1\r\n"
                     "Host: 127.0.0.1:%d\r\nAuthorization: %s\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     g.gw_port, g.bearer, strlen(body), body);
    int fd = th_http_connect((unsigned)g.gw_port);
    th_http_send(fd, head, (size_t)n);
    double t0 = tu_now();
    while (!mock_has_lazy()) {
        if (tu_now() - t0 > 5.0)
            fail_msg("the gateway did not call lazy-up within 5 s");
        tu_sleep_ms(20);
    }
    char *t = scrape();
    expect_sample(t, "bursar_gateway_requests_in_flight", 1);
    free(t);
    close(fd);
    t = scrape_until("bursar_gateway_cancelled_total", 1);
    expect_sample(t, "bursar_gateway_cancelled_total", 1);
    t = (free(t), scrape_until("bursar_gateway_requests_in_flight", 0));
    assert_true(requests(t, R_CHAT, 499) == 1);
    assert_true(family_sum(t, "bursar_gateway_requests_total") == 11);
    /* no answer: no added latency; a cancelled call: no upstream sample,
     * no error */
    expect_sample(t, "bursar_gateway_added_latency_seconds_count", 7);
    expect_sample(
        t, "bursar_gateway_upstream_latency_seconds_count{model=\"lazy\"}", 0);
    assert_true(family_sum(t, "bursar_gateway_upstream_errors_total") == 1);
    free(t);
}

static void
test_token_required(void **state)
{
    (void)state;
    th_http_resp_t r;
    http_do(&r, g.met_port, "GET", "/metrics", NULL, NULL);
    expect_status(&r, 401, "/metrics without the token");
    th_http_free(&r);
    http_do(&r, g.met_port, "GET", "/metrics", "Bearer not-the-token", NULL);
    expect_status(&r, 401, "/metrics with another token");
    th_http_free(&r);
    char auth[128];
    snprintf(auth, sizeof auth, "Bearer %s", GWM_TOKEN);
    http_do(&r, g.met_port, "GET", "/healthz", auth, NULL);
    expect_status(&r, 200, "the metrics' /healthz");
    th_http_free(&r);
    http_do(&r, g.met_port, "GET", "/v1/models", auth, NULL);
    expect_status(&r, 404, "the API is not on the metrics address");
    th_http_free(&r);
    /* and the metrics are not on the API's address */
    http_do(&r, g.gw_port, "GET", "/metrics", g.bearer, NULL);
    expect_status(&r, 404, "/metrics on the API's address");
    th_http_free(&r);
}

static void
test_allow_excludes_loopback(void **state)
{
    (void)state;
    char path[700], log[700];
    gateway_config(path, sizeof path, "gw2", key_entry,
                   ",\"metrics\":{\"listen\":\"127.0.0.1:0\","
                   "\"allow\":[\"10.0.0.0/8\",\"fd00::/8\"]}");
    int port = 0, mport = 0;
    pid_t pid =
        gateway_start(path, "gw2", NULL, &port, &mport, log, sizeof log);
    th_http_resp_t r;
    http_do(&r, mport, "GET", "/metrics", NULL, NULL);
    int status = r.status;
    size_t bytes = r.bytes;
    th_http_free(&r);
    /* the API still answers loopback */
    http_do(&r, port, "GET", "/healthz", NULL, NULL);
    int api = r.status;
    th_http_free(&r);
    kill(pid, SIGTERM);
    int st = tu_wait(pid, 20000);
    if (status != 0 || bytes != 0)
        fail_msg("a loopback client of metrics.allow [10.0.0.0/8, fd00::/8] "
                 "got %zu bytes (status %d), expected the connection closed",
                 bytes, status);
    assert_int_equal(api, 200);
    assert_int_equal(st, 0);
}

static void
test_promtool(void **state)
{
    (void)state;
    if (access(GWM_PROMTOOL, X_OK) != 0)
        fail_msg("%s is missing: install the Debian package prometheus "
                 "(scripts/deps.sh)",
                 GWM_PROMTOOL);
    char *t = scrape();
    char file[700], cmd[1600], out[8192];
    snprintf(file, sizeof file, "%s/metrics.txt", g.ctl.dir);
    tu_write_file(file, t);
    free(t);
    snprintf(cmd, sizeof cmd, "%s check metrics < '%s' 2>&1", GWM_PROMTOOL,
             file);
    int st = th_run(cmd, out, sizeof out);
    if (st != 0)
        fail_msg("promtool check metrics exited %d:\n%s", st, out);
}

static void
test_config_errors(void **state)
{
    (void)state;
    static const struct {
        const char *more, *needle;
    } cases[] = {
        {",\"metrics\":{\"listen\":9464}", "metrics.listen: must be"},
        {",\"metrics\":{\"listen\":\"localhost\"}", "metrics.listen: must be "
                                                    "HOST:PORT"},
        {",\"metrics\":{\"listen\":\"127.0.0.1:70000\"}", "metrics.listen: "},
        {",\"listen\":\"127.0.0.1:9000\",\"metrics\":{\"listen\":\"127.0.0.1:"
         "9000\"}",
         "metrics.listen: must differ from listen"},
        {",\"metrics\":{\"allow\":\"10.0.0.0/8\"}", "metrics.allow: must be"},
        {",\"metrics\":{\"allow\":[]}", "metrics.allow: must hold 1 to"},
        {",\"metrics\":{\"allow\":[\"127.0.0.1/8\",\"10.0.0.300/8\"]}",
         "metrics.allow[1]: "},
        {",\"metrics\":{\"allow\":[\"10.0.0.0/33\"]}", "metrics.allow[0]: "},
        {",\"metrics\":{\"allow\":[7]}", "metrics.allow[0]: "},
        {",\"metrics\":{\"token_env\":true}", "metrics.token_env: must be"},
        {",\"metrics\":{\"token_env\":\"\"}", "metrics.token_env: "},
        {",\"metrics\":{\"listen\":\"127.0.0.1:0\",\"port\":1}",
         "metrics.port: unknown key"},
        {",\"metrics\":\"127.0.0.1:9464\"", "metrics: must be"},
    };
    char path[700], out[4096];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gateway_config(path, sizeof path, "bad", key_entry, cases[i].more);
        int st = gwt_run(out, sizeof out, "--config '%s' --check-config", path);
        if (st != 1 || !strstr(out, cases[i].needle))
            fail_msg("%s: exit %d, expected 1 naming \"%s\": %s", cases[i].more,
                     st, cases[i].needle, out);
    }
    /* a good one passes */
    gateway_config(path, sizeof path, "good", key_entry,
                   ",\"metrics\":{\"listen\":\"[::1]:9464\",\"allow\":"
                   "[\"::1/128\",\"192.168.0.0/16\"],\"token_env\":\"X\"}");
    assert_int_equal(
        gwt_run(out, sizeof out, "--config '%s' --check-config", path), 0);
    /* --metrics must be HOST:PORT */
    int st = gwt_run(out, sizeof out, "--config '%s' --metrics 9464", path);
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, "--metrics"));
}

static void
test_start_failures(void **state)
{
    (void)state;
    char path[700], out[4096];
    /* the token's variable unset */
    gateway_config(path, sizeof path, "notoken", key_entry,
                   ",\"metrics\":{\"listen\":\"127.0.0.1:0\",\"token_env\":"
                   "\"BURSAR_GWM_UNSET_VARIABLE\"}");
    unsetenv("BURSAR_GWM_UNSET_VARIABLE");
    int st =
        gwt_run(out, sizeof out, "--config '%s' --listen 127.0.0.1:0", path);
    assert_int_equal(st, 1);
    if (!strstr(out, "metrics.token_env: the variable "
                     "BURSAR_GWM_UNSET_VARIABLE is not set"))
        fail_msg("an unset token variable: %s", out);
    /* the metrics address in use (the running gateway's) */
    gateway_config(path, sizeof path, "inuse", key_entry, "");
    st = gwt_run(out, sizeof out,
                 "--config '%s' --listen 127.0.0.1:0 --metrics 127.0.0.1:%d",
                 path, g.met_port);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "metrics.listen: cannot serve on"));
}

static void
test_clean_exit(void **state)
{
    (void)state;
    gwt_expect_clean_exit(&g.gw, g.log);
}

int
main(void)
{
    signal(SIGPIPE, SIG_IGN);
    th_http_timeout(GWM_IO_TIMEOUT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrape_at_start),
        cmocka_unit_test(test_traffic_counted),
        cmocka_unit_test(test_client_leaves),
        cmocka_unit_test(test_token_required),
        cmocka_unit_test(test_allow_excludes_loopback),
        cmocka_unit_test(test_promtool),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_start_failures),
        cmocka_unit_test(test_clean_exit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
